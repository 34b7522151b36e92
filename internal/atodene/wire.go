package atodene

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The request documents. Each is written by hand, element by element in the order
// docs/protocol.md#operations gives, rather than by encoding/xml's reflection, which cost as much CPU as the HTTP exchange
// itself; the golden files in testdata pin the bytes. Empty elements are written in the long
// form <x></x>, which the service requires.

type linkInfoXML struct {
	ShopCode, LinkID, LinkPassword string
}

func (l linkInfoXML) write(d *xmlDoc) {
	d.open("linkInfo")
	d.leaf("shopCode", l.ShopCode)
	d.leaf("linkId", l.LinkID)
	d.leaf("linkPassword", l.LinkPassword)
	d.close("linkInfo")
}

type browserInfoXML struct {
	HTTPHeader, DeviceInfo string
}

func (b browserInfoXML) write(d *xmlDoc) {
	d.open("browserInfo")
	d.leaf("httpHeader", b.HTTPHeader)
	d.leaf("deviceInfo", b.DeviceInfo)
	d.close("browserInfo")
}

type customerXML struct {
	ShopOrderID, ShopOrderDate, Name, KanaName, Zip, Address, CompanyName, SectionName string
	Tel, Email, BilledAmount, Expand1, Service                                         string
}

func (c customerXML) write(d *xmlDoc) {
	d.open("customer")
	d.leaf("shopOrderId", c.ShopOrderID)
	d.leaf("shopOrderDate", c.ShopOrderDate)
	d.leaf("name", c.Name)
	d.leaf("kanaName", c.KanaName)
	d.leaf("zip", c.Zip)
	d.leaf("address", c.Address)
	d.leaf("companyName", c.CompanyName)
	d.leaf("sectionName", c.SectionName)
	d.leaf("tel", c.Tel)
	d.leaf("email", c.Email)
	d.leaf("billedAmount", c.BilledAmount)
	d.leaf("expand1", c.Expand1)
	d.leaf("service", c.Service)
	d.close("customer")
}

type shipXML struct {
	ShipName, ShipKananame, ShipZip, ShipAddress, ShipCompanyName, ShipSectionName, ShipTel string
}

func (s shipXML) write(d *xmlDoc) {
	d.open("ship")
	d.leaf("shipName", s.ShipName)
	d.leaf("shipKananame", s.ShipKananame)
	d.leaf("shipZip", s.ShipZip)
	d.leaf("shipAddress", s.ShipAddress)
	d.leaf("shipCompanyName", s.ShipCompanyName)
	d.leaf("shipSectionName", s.ShipSectionName)
	d.leaf("shipTel", s.ShipTel)
	d.close("ship")
}

type detailXML struct {
	Goods, GoodsPrice, GoodsAmount, Expand2, Expand3, Expand4 string
}

type detailsXML struct {
	Detail []detailXML
}

func (ds detailsXML) write(d *xmlDoc) {
	d.open("details")
	for _, l := range ds.Detail {
		d.open("detail")
		d.leaf("goods", l.Goods)
		d.leaf("goodsPrice", l.GoodsPrice)
		d.leaf("goodsAmount", l.GoodsAmount)
		d.leaf("expand2", l.Expand2)
		d.leaf("expand3", l.Expand3)
		d.leaf("expand4", l.Expand4)
		d.close("detail")
	}
	d.close("details")
}

// registerRequest renders transaction.do.
func registerRequest(link linkInfoXML, b browserInfoXML, c customerXML, s shipXML, ds detailsXML) []byte {
	d := newRequest(link)
	b.write(d)
	c.write(d)
	s.write(d)
	ds.write(d)
	return d.end()
}

// txRefRequest renders getauthori.do and getinvoicedata.do.
func txRefRequest(link linkInfoXML, transactionID string) []byte {
	d := newRequest(link)
	d.open("transactionInfo")
	d.leaf("transactionId", transactionID)
	d.close("transactionInfo")
	return d.end()
}

// shipmentXML is the transactionInfo of shippingrequest.do.
type shipmentXML struct {
	DeliveryType, TransactionID, DeliveryCompanyCode, DeliverySlipNo, InvoiceDate string
}

func shipmentRequest(link linkInfoXML, s shipmentXML) []byte {
	d := newRequest(link)
	d.open("transactionInfo")
	d.leaf("deliveryType", s.DeliveryType)
	d.leaf("transactionId", s.TransactionID)
	d.leaf("deliveryCompanyCode", s.DeliveryCompanyCode)
	d.leaf("deliverySlipNo", s.DeliverySlipNo)
	d.leaf("invoiceDate", s.InvoiceDate)
	d.close("transactionInfo")
	return d.end()
}

// modifyRequest renders modifytransaction.do: a cancel (updateTypeFlag 1) with no further blocks,
// or a change (2) with the whole new order.
func modifyRequest(link linkInfoXML, updateType, transactionID string, change func(*xmlDoc)) []byte {
	d := newRequest(link)
	d.open("transactionInfo")
	d.leaf("updateTypeFlag", updateType)
	d.leaf("transactionId", transactionID)
	d.close("transactionInfo")
	if change != nil {
		change(d)
	}
	return d.end()
}

type responseXML struct {
	XMLName         xml.Name        `xml:"response"`
	Result          *string         `xml:"result"`
	TransactionInfo *txInfoXML      `xml:"transactionInfo"`
	InvoiceInfo     *invoiceInfoXML `xml:"invoiceInfo"`
	Errors          []errorXML      `xml:"errors>error"`
}

type txInfoXML struct {
	ShopOrderID         string   `xml:"shopOrderId"`
	TransactionID       string   `xml:"transactionId"`
	AutoAuthoriresult   string   `xml:"autoAuthoriresult"`
	ManualAuthoriresult string   `xml:"manualAuthoriresult"`
	ManualReasons       []string `xml:"manualAuthorireasons>manualAuthorireason"`
}

type errorXML struct {
	Point   string `xml:"errorPoint"`
	Code    string `xml:"errorCode"`
	Message string `xml:"errorMessage"`
}

// invoiceInfoXML keeps every element, since the print fields are many and display-only.
type invoiceInfoXML struct {
	Elements []anyElementXML `xml:",any"`
}

type anyElementXML struct {
	XMLName  xml.Name
	Text     string          `xml:",chardata"`
	Children []anyElementXML `xml:",any"`
}

const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// xmlDoc writes a request document: the UTF-8 declaration, then the <request> tree, indented by
// two spaces per level, with a final newline.
type xmlDoc struct {
	b     []byte
	depth int
}

func newRequest(link linkInfoXML) *xmlDoc {
	d := &xmlDoc{b: make([]byte, 0, 2048)}
	d.b = append(d.b, xmlHeader...)
	d.open("request")
	link.write(d)
	return d
}

func (d *xmlDoc) end() []byte {
	d.close("request")
	return append(d.b, '\n')
}

func (d *xmlDoc) newline() {
	d.b = append(d.b, '\n')
	for range d.depth {
		d.b = append(d.b, "  "...)
	}
}

func (d *xmlDoc) open(name string) {
	if d.depth > 0 {
		d.newline()
	}
	d.b = append(append(append(d.b, '<'), name...), '>')
	d.depth++
}

func (d *xmlDoc) close(name string) {
	d.depth--
	d.newline()
	d.b = append(append(append(d.b, "</"...), name...), '>')
}

func (d *xmlDoc) leaf(name, text string) {
	d.newline()
	d.b = append(append(append(d.b, '<'), name...), '>')
	d.b = appendEscaped(d.b, text)
	d.b = append(append(append(d.b, "</"...), name...), '>')
}

// appendEscaped appends s as XML character data, escaped exactly as xml.EscapeText does: the five
// markup characters and tab, newline and carriage return as character references, and what XML
// cannot carry (invalid UTF-8, control characters) as U+FFFD.
func appendEscaped(b []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); {
		r, width := utf8.DecodeRuneInString(s[i:])
		i += width
		var esc string
		switch r {
		case '"':
			esc = "&#34;"
		case '\'':
			esc = "&#39;"
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\t':
			esc = "&#x9;"
		case '\n':
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		default:
			if xmlChar(r) && !(r == utf8.RuneError && width == 1) {
				continue
			}
			esc = "\uFFFD"
		}
		b = append(append(b, s[last:i-width]...), esc...)
		last = i
	}
	return append(b, s[last:]...)
}

// xmlChar reports whether r is in XML 1.0's Char production.
func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// errOtherCharset is what the decoder's CharsetReader answers: the declared encoding is not
// quoted, as nothing of an answer's text is.
var errOtherCharset = errors.New("an encoding other than UTF-8")

// parseResponse decodes a <response> document and checks its envelope: result is OK or NG, and an
// NG carries at least one error. The returned error is a reason for a MalformedResponseError; it
// quotes no text of the body (see decodeReason).
func parseResponse(body []byte) (*responseXML, error) {
	var r responseXML
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.CharsetReader = func(string, io.Reader) (io.Reader, error) { return nil, errOtherCharset }
	if err := dec.Decode(&r); err != nil {
		return nil, errors.New(decodeReason(dec, err))
	}
	if r.Result == nil {
		return nil, fmt.Errorf("no result element")
	}
	switch strings.TrimSpace(*r.Result) {
	case "OK":
	case "NG":
		if len(r.Errors) == 0 {
			return nil, fmt.Errorf("result NG without errors")
		}
	default:
		return nil, fmt.Errorf("result %s is neither OK nor NG", quoteToken(*r.Result, 20))
	}
	return &r, nil
}

// decodeReason describes err, the decoder's failure on an answer, by a fixed description, the line
// and the byte offset. encoding/xml's messages quote the text they stumble on ("invalid character
// entity &雅之介 (no semicolon)", a value that does not parse, an element's name), and an answer
// holds the buyer's data (getinvoicedata.do's print data): its text must reach no error, log line,
// span or dead letter (docs/operations-worker.md).
func decodeReason(dec *xml.Decoder, err error) string {
	line, _ := dec.InputPos()
	at := fmt.Sprintf("on line %d, byte %d", line, dec.InputOffset())
	var syntax *xml.SyntaxError
	var unmarshal xml.UnmarshalError
	switch {
	case errors.Is(err, io.EOF) && dec.InputOffset() == 0:
		return "empty body, not XML"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "XML ends early " + at
	case errors.Is(err, errOtherCharset):
		return "XML declared in " + errOtherCharset.Error()
	case errors.As(err, &syntax) && syntax.Msg == "unexpected EOF": // a fixed message
		return fmt.Sprintf("XML ends early on line %d, byte %d", syntax.Line, dec.InputOffset())
	case errors.As(err, &syntax):
		return fmt.Sprintf("XML syntax error on line %d, byte %d", syntax.Line, dec.InputOffset())
	case errors.As(err, &unmarshal):
		return "XML not of a response's structure (not a <response> document, or an element out of place) " + at
	}
	return "XML that does not decode " + at
}

// quoteToken quotes v, a value read from an answer, for an error, if it is a short code (ASCII
// letters, digits, '-', '_' and '.', at most n of them); otherwise it says only its length. An
// answer's elements may hold the buyer's data, which no error carries.
func quoteToken(v string, n int) string {
	if v = strings.TrimSpace(v); isToken(v, n) {
		return strconv.Quote(v)
	}
	return fmt.Sprintf("of %d characters (not quoted)", utf8.RuneCountInString(v))
}

// isToken reports whether v is a short code: 1 to n ASCII letters, digits, '-', '_' and '.'.
func isToken(v string, n int) bool {
	if v == "" || len(v) > n {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (r *responseXML) ok() bool { return strings.TrimSpace(*r.Result) == "OK" }

func (r *responseXML) providerErrors() []ProviderError {
	out := make([]ProviderError, len(r.Errors))
	for i, e := range r.Errors {
		out[i] = ProviderError{Point: strings.TrimSpace(e.Point), Code: strings.TrimSpace(e.Code), Message: strings.TrimSpace(e.Message)}
	}
	return out
}
