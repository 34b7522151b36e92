package atodene

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// The XML wire structs. Field order is element order (API.md §3). encoding/xml writes empty
// elements in the long form <x></x>, which the service requires.

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

type registerRequestXML struct {
	XMLName     xml.Name       `xml:"request"`
	LinkInfo    linkInfoXML    `xml:"linkInfo"`
	BrowserInfo browserInfoXML `xml:"browserInfo"`
	Customer    customerXML    `xml:"customer"`
	Ship        shipXML        `xml:"ship"`
	Details     detailsXML     `xml:"details"`
}

type txRefXML struct {
	TransactionID string `xml:"transactionId"`
}

// txRefRequestXML serves getauthori.do and getinvoicedata.do.
type txRefRequestXML struct {
	XMLName         xml.Name    `xml:"request"`
	LinkInfo        linkInfoXML `xml:"linkInfo"`
	TransactionInfo txRefXML    `xml:"transactionInfo"`
}

type shipmentRequestXML struct {
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

// modifyRequestXML is a change (all blocks) or a cancel (linkInfo and transactionInfo only).
type modifyRequestXML struct {
	XMLName         xml.Name    `xml:"request"`
	LinkInfo        linkInfoXML `xml:"linkInfo"`
	TransactionInfo struct {
		UpdateTypeFlag string `xml:"updateTypeFlag"`
		TransactionID  string `xml:"transactionId"`
	} `xml:"transactionInfo"`
	Customer *customerXML `xml:"customer,omitempty"`
	Ship     *shipXML     `xml:"ship,omitempty"`
	Details  *detailsXML  `xml:"details,omitempty"`
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

// encodeRequest renders a request document: UTF-8 declaration, then the <request> tree.
func encodeRequest(v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(xmlHeader)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// parseResponse decodes a <response> document and checks its envelope: result is OK or NG, and an
// NG carries at least one error. The returned error is a reason for a MalformedResponseError.
func parseResponse(body []byte) (*responseXML, error) {
	var r responseXML
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.CharsetReader = func(charset string, _ io.Reader) (io.Reader, error) {
		return nil, fmt.Errorf("unsupported encoding %q", charset)
	}
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decoding XML: %w", err)
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
		return nil, fmt.Errorf("result %q is neither OK nor NG", truncate(*r.Result, 20))
	}
	return &r, nil
}

func (r *responseXML) ok() bool { return strings.TrimSpace(*r.Result) == "OK" }

func (r *responseXML) providerErrors() []ProviderError {
	out := make([]ProviderError, len(r.Errors))
	for i, e := range r.Errors {
		out[i] = ProviderError{Point: strings.TrimSpace(e.Point), Code: strings.TrimSpace(e.Code), Message: strings.TrimSpace(e.Message)}
	}
	return out
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
