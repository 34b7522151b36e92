package sandbox

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
)

// The server side of the XML protocol (docs/protocol.md#operations). These structs are deliberately separate from the
// client's: the sandbox is the other party, and sharing structs would hide a mismatch between the two.
// Blocks are pointers so that an absent block can be told from an empty one. encoding/xml accepts both
// <x></x> and <x/> when decoding and writes the long form when encoding.

type linkInfoXML struct {
	ShopCode     string `xml:"shopCode"`
	LinkID       string `xml:"linkId"`
	LinkPassword string `xml:"linkPassword"`
}

type browserInfoXML struct {
	HTTPHeader string `xml:"httpHeader"`
	DeviceInfo string `xml:"deviceInfo"`
}

type customerXML struct {
	ShopOrderID   string `xml:"shopOrderId"`
	ShopOrderDate string `xml:"shopOrderDate"`
	Name          string `xml:"name"`
	KanaName      string `xml:"kanaName"`
	Zip           string `xml:"zip"`
	Address       string `xml:"address"`
	CompanyName   string `xml:"companyName"`
	SectionName   string `xml:"sectionName"`
	Tel           string `xml:"tel"`
	Email         string `xml:"email"`
	BilledAmount  string `xml:"billedAmount"`
	Expand1       string `xml:"expand1"`
	Service       string `xml:"service"`
}

type shipXML struct {
	ShipName        string `xml:"shipName"`
	ShipKananame    string `xml:"shipKananame"`
	ShipZip         string `xml:"shipZip"`
	ShipAddress     string `xml:"shipAddress"`
	ShipCompanyName string `xml:"shipCompanyName"`
	ShipSectionName string `xml:"shipSectionName"`
	ShipTel         string `xml:"shipTel"`
}

type detailXML struct {
	Goods       string `xml:"goods"`
	GoodsPrice  string `xml:"goodsPrice"`
	GoodsAmount string `xml:"goodsAmount"`
	Expand2     string `xml:"expand2"`
	Expand3     string `xml:"expand3"`
	Expand4     string `xml:"expand4"`
}

type detailsXML struct {
	Detail []detailXML `xml:"detail"`
}

type registerRequest struct {
	XMLName     xml.Name        `xml:"request"`
	LinkInfo    linkInfoXML     `xml:"linkInfo"`
	BrowserInfo *browserInfoXML `xml:"browserInfo"`
	Customer    *customerXML    `xml:"customer"`
	Ship        *shipXML        `xml:"ship"`
	Details     *detailsXML     `xml:"details"`
}

// txRefRequest serves getauthori.do and getinvoicedata.do.
type txRefRequest struct {
	XMLName         xml.Name    `xml:"request"`
	LinkInfo        linkInfoXML `xml:"linkInfo"`
	TransactionInfo struct {
		TransactionID string `xml:"transactionId"`
	} `xml:"transactionInfo"`
}

type shipmentRequest struct {
	XMLName         xml.Name    `xml:"request"`
	LinkInfo        linkInfoXML `xml:"linkInfo"`
	TransactionInfo struct {
		DeliveryType        string `xml:"deliveryType"`
		TransactionID       string `xml:"transactionId"`
		DeliveryCompanyCode string `xml:"deliveryCompanyCode"`
		DeliverySlipNo      string `xml:"deliverySlipNo"`
		InvoiceDate         string `xml:"invoiceDate"`
	} `xml:"transactionInfo"`
}

type modifyRequest struct {
	XMLName         xml.Name    `xml:"request"`
	LinkInfo        linkInfoXML `xml:"linkInfo"`
	TransactionInfo struct {
		UpdateTypeFlag string `xml:"updateTypeFlag"`
		TransactionID  string `xml:"transactionId"`
	} `xml:"transactionInfo"`
	Customer *customerXML `xml:"customer"`
	Ship     *shipXML     `xml:"ship"`
	Details  *detailsXML  `xml:"details"`
}

type responseXML struct {
	XMLName xml.Name `xml:"response"`
	Result  string   `xml:"result"`
	// Info is the operation's transactionInfo block: one of the *…InfoXML types below.
	Info    any        `xml:"transactionInfo,omitempty"`
	Invoice *xmlNode   `xml:"invoiceInfo,omitempty"`
	Errors  *errorsXML `xml:"errors,omitempty"`
}

type errorsXML struct {
	Error []errorXML `xml:"error"`
}

type registerInfoXML struct {
	ShopOrderID       string `xml:"shopOrderId"`
	TransactionID     string `xml:"transactionId"`
	AutoAuthoriresult string `xml:"autoAuthoriresult"`
}

type authoriInfoXML struct {
	TransactionID       string `xml:"transactionId"`
	AutoAuthoriresult   string `xml:"autoAuthoriresult"`
	ManualAuthoriresult string `xml:"manualAuthoriresult"`
	ManualReasons       struct {
		Reason []string `xml:"manualAuthorireason"`
	} `xml:"manualAuthorireasons"`
}

// txIDInfoXML answers shipment reports and cancels.
type txIDInfoXML struct {
	TransactionID string `xml:"transactionId"`
}

// changeInfoXML answers a change; AutoAuthoriresult is empty when the change needed no new screening.
type changeInfoXML struct {
	TransactionID     string `xml:"transactionId"`
	AutoAuthoriresult string `xml:"autoAuthoriresult"`
}

type errorXML struct {
	Point   string `xml:"errorPoint"`
	Code    string `xml:"errorCode"`
	Message string `xml:"errorMessage"`
}

// xmlNode is a generic element: text, or children. invoiceInfo is built from it because its many
// display fields are a flat ordered list better written as data than as a 100-field struct.
type xmlNode struct {
	XMLName  xml.Name
	Text     string    `xml:",chardata"`
	Children []xmlNode `xml:",any"`
}

func leaf(name, text string) xmlNode {
	return xmlNode{XMLName: xml.Name{Local: name}, Text: text}
}

func okResponse(info any) *responseXML { return &responseXML{Result: "OK", Info: info} }

func ngResponse(errs ...apiError) *responseXML {
	r := &responseXML{Result: "NG", Errors: &errorsXML{}}
	for _, e := range errs {
		r.Errors.Error = append(r.Errors.Error, errorXML(e))
	}
	return r
}

const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// decodeRequest reads a <request> document. A document declaring an encoding other than UTF-8 is
// refused, as the service spoke UTF-8 only.
func decodeRequest(body []byte, v any) error {
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.CharsetReader = func(charset string, _ io.Reader) (io.Reader, error) {
		return nil, fmt.Errorf("unsupported encoding %q", charset)
	}
	return dec.Decode(v)
}

func encodeResponse(r *responseXML) []byte {
	var buf bytes.Buffer
	buf.WriteString(xmlHeader)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(r); err != nil {
		// Every value is a plain string, so encoding cannot fail; answer as the service would if it did.
		return encodeResponse(ngResponse(apiError{"request", CodeRequest, "内部エラーが発生しました。"}))
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}
