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
type InvoicePrintData struct {
	Fields  map[string]string   `json:"fields"`
	Details []map[string]string `json:"details"`
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
