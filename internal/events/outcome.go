package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// Credit is the data of the credit.* outcome events (docs/events.md#credit-eventscredit).
type Credit struct {
	ShopID        string          `json:"shop_id"`
	OrderID       string          `json:"order_id"`
	TransactionID string          `json:"transaction_id"`
	Result        string          `json:"result"` // ok, ng, pending, cancelled, invalid
	Review        string          `json:"review"` // "" under review, "hold" on hold
	Fee           int64           `json:"fee"`
	BilledAmount  int64           `json:"billed_amount"`
	Errors        []ProviderError `json:"errors"`
	Reasons       []string        `json:"reasons"`
	DecidedAt     string          `json:"decided_at"`
	// Normalized lists the values of the order that the worker put into ATODENE's form before
	// sending them (docs/events.md#normalisation), on the outcome of a registration or a change; left out when
	// nothing was changed.
	Normalized []Normalized `json:"normalized,omitempty"`
	// Reauthorized marks the outcome of a re-authorization (docs/lifecycle.md#re-authorization):
	// TransactionID is the new transaction, registered under a derived shopOrderId. Left out
	// otherwise.
	Reauthorized bool `json:"reauthorized,omitempty"`
}

// Normalized is one value of an order sent to ATODENE in another form than received: full-width
// digits made half-width, a cut item name, a gift's invoice mailed separately.
type Normalized struct {
	Field string `json:"field"` // the JSON path in the order's data, e.g. buyer.zip
	Value string `json:"value"` // the value sent
}

// Shipment is the data of the shipment.* outcome events.
type Shipment struct {
	ShopID         string          `json:"shop_id"`
	OrderID        string          `json:"order_id"`
	TransactionID  string          `json:"transaction_id"`
	CarrierCode    string          `json:"carrier_code"`
	TrackingNumber string          `json:"tracking_number"`
	Report         string          `json:"report"` // new, change, cancel
	Errors         []ProviderError `json:"errors"`
	ReportedAt     string          `json:"reported_at"`
}

// Invoice is the data of the invoice.* outcome events.
type Invoice struct {
	ShopID        string            `json:"shop_id"`
	OrderID       string            `json:"order_id"`
	TransactionID string            `json:"transaction_id"`
	Invoice       *InvoicePrintData `json:"invoice,omitempty"`
	Errors        []ProviderError   `json:"errors,omitempty"`
}

// ProviderError is one error of an outcome (docs/events.md#credit-eventscredit): an error ATODENE
// returned, or one the worker reports in the same form (Point "credit", "invoice_delivery").
// The handlers map the client's errors to it field by field, so the contract is defined here and
// not by the client's struct tags.
type ProviderError struct {
	Point   string `json:"point"`   // the request element at fault (ATODENE's errorPoint)
	Code    string `json:"code"`    // ATODENE's errorCode; "" for the worker's own errors
	Message string `json:"message"` // ATODENE's errorMessage (Japanese text), or the worker's reason
}

// InvoicePrintData is the print data of an enclosed invoice, in invoice.ok
// (docs/protocol.md#invoice-print-data): every element of ATODENE's invoiceInfo as the display
// string it sent, keyed by element name, and the detail lines.
//
// Its JSON is the contract's (docs/events.md#invoice-eventsinvoice): one object holding each
// element of Fields by its ATODENE name, as a string, and the detail lines under "details", an
// array of objects of strings ([] when there are none). MarshalJSON writes it; UnmarshalJSON
// reads it, and also the nested form the worker wrote before ({"fields": {...}, "details": [...]}),
// which invoice.ok outcomes stored in RESULTS still hold.
type InvoicePrintData struct {
	Fields  map[string]string
	Details []map[string]string
}

// invoiceDetails is the key of the detail lines in invoice.ok's invoice: ATODENE's element
// (details/detail*), which is never a print field of its own.
const invoiceDetails = "details"

// MarshalJSON writes the print fields and "details" side by side, keys sorted. A print field named
// "details" is an error: it would take the place of the detail lines.
func (p InvoicePrintData) MarshalJSON() ([]byte, error) {
	if _, ok := p.Fields[invoiceDetails]; ok {
		return nil, fmt.Errorf("events: invoice print data with a field named %q, the key of its detail lines", invoiceDetails)
	}
	out := make(map[string]any, len(p.Fields)+1)
	for name, v := range p.Fields {
		out[name] = v
	}
	out[invoiceDetails] = nonNil(p.Details)
	return json.Marshal(out)
}

// UnmarshalJSON reads the contract's form, or the nested form of the outcomes written before it
// (told apart by "fields" holding an object or null, where a print field holds a string). A print
// field that is not a string, or detail lines that are not an array of objects of strings, is an
// error; null stands for absent.
func (p *InvoicePrintData) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if f, ok := raw["fields"]; ok && (len(f) == 0 || f[0] != '"') {
		var nested struct {
			Fields  map[string]string   `json:"fields"`
			Details []map[string]string `json:"details"`
		}
		if err := json.Unmarshal(b, &nested); err != nil {
			return fmt.Errorf("events: invoice print data in the nested form: %w", err)
		}
		*p = InvoicePrintData{Fields: nested.Fields, Details: nested.Details}
		return nil
	}
	var out InvoicePrintData
	for name, v := range raw {
		if string(v) == "null" {
			continue
		}
		if name == invoiceDetails {
			if err := json.Unmarshal(v, &out.Details); err != nil {
				return fmt.Errorf("events: invoice print data: details: %w", err)
			}
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("events: invoice print data: %s is not a string: %w", name, err)
		}
		if out.Fields == nil {
			out.Fields = map[string]string{}
		}
		out.Fields[name] = s
	}
	*p = out
	return nil
}

// NewOutcome wraps outcome data in a CloudEvent from the worker, caused by the inbound event
// causationID. The caller chooses id (deterministic, so a retry repeats it).
func NewOutcome(id, eventType, causationID string, at time.Time, data any) ([]byte, error) {
	// Envelope with the data inline: marshalled once, where Envelope's json.RawMessage would be
	// marshalled first and then scanned and compacted again.
	type outcome struct {
		Envelope
		Data any `json:"data"`
	}
	return json.Marshal(outcome{Envelope: Envelope{
		SpecVersion:     SpecVersion,
		ID:              id,
		Source:          WorkerSource,
		Type:            eventType,
		Time:            at.Format(time.RFC3339),
		DataContentType: "application/json",
		CausationID:     causationID,
	}, Data: data})
}

// WithOutcomeID returns the outcome event body (NewOutcome's JSON) with its id set to id, all else
// as it was: an outcome reissued under a new message ID. An error means body is no such event.
func WithOutcomeID(body []byte, id string) ([]byte, error) {
	var env Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("events: reading an outcome to give it id %s: %w", id, err)
	}
	env.ID = id
	return json.Marshal(env)
}

// MarshalJSON writes absent lists as [] rather than null, as the contract shows them.
func (c Credit) MarshalJSON() ([]byte, error) {
	type plain Credit
	c.Errors, c.Reasons = nonNil(c.Errors), nonNil(c.Reasons)
	return json.Marshal(plain(c))
}

// MarshalJSON writes absent errors as [].
func (s Shipment) MarshalJSON() ([]byte, error) {
	type plain Shipment
	s.Errors = nonNil(s.Errors)
	return json.Marshal(plain(s))
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// WithTraceContext returns an outcome event (NewOutcome's JSON object) with the CloudEvents
// distributed-tracing extension attributes traceparent and, when not empty and at most
// MaxTraceStateLen characters (a longer one is what a consumer drops, TraceContext), tracestate
// added as its first attributes, or body as it is when traceparent is empty. The values are W3C trace
// context headers, written as JSON strings. The body is not parsed again: the attributes are put
// after its opening brace.
func WithTraceContext(body []byte, traceparent, tracestate string) []byte {
	if traceparent == "" || len(body) < 2 || body[0] != '{' {
		return body
	}
	out := make([]byte, 0, len(body)+len(traceparent)+len(tracestate)+32)
	quote := func(s string) []byte { q, _ := json.Marshal(s); return q } // a string always encodes
	out = append(out, `{"traceparent":`...)
	out = append(out, quote(traceparent)...)
	if tracestate != "" && len(tracestate) <= MaxTraceStateLen {
		out = append(out, `,"tracestate":`...)
		out = append(out, quote(tracestate)...)
	}
	if body[1] != '}' {
		out = append(out, ',')
	}
	return append(out, body[1:]...)
}
