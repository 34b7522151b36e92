// Package events is the event contract of docs/events.md: the CloudEvents envelope, the subjects,
// the inbound payloads with their validation, and the outcome payloads. The worker and the
// publisher share it, so an event the publisher accepts is one the worker accepts.
package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Inbound event types.
const (
	TypeOrderCreated     = "order.created"
	TypeOrderUpdated     = "order.updated"
	TypeOrderCancelled   = "order.cancelled"
	TypeTrackingEntered  = "order.tracking_entered"
	TypeInvoiceRequested = "order.invoice_requested"
	// Operator events (docs/events.md#operator-events), published by the operators' console and
	// commands.
	TypeRecheckRequested = "order.recheck_requested" // 与信結果確認
	TypeResolveRequested = "order.resolve_requested"
)

// Outcome event types.
const (
	TypeCreditOK        = "credit.ok"
	TypeCreditNG        = "credit.ng"
	TypeCreditPending   = "credit.pending"
	TypeCreditCancelled = "credit.cancelled"
	TypeCreditInvalid   = "credit.invalid"
	TypeShipmentOK      = "shipment.ok"
	TypeShipmentNG      = "shipment.ng"
	TypeInvoiceOK       = "invoice.ok"
	TypeInvoiceNG       = "invoice.ng"
)

// InboundTypes lists the inbound event types in contract order.
var InboundTypes = []string{TypeOrderCreated, TypeOrderUpdated, TypeOrderCancelled, TypeTrackingEntered, TypeInvoiceRequested,
	TypeRecheckRequested, TypeResolveRequested}

// SpecVersion is the CloudEvents version of every event.
const SpecVersion = "1.0"

// ContentType is the NATS Content-Type of a structured-mode CloudEvent.
const ContentType = "application/cloudevents+json"

// WorkerSource is the source of every outcome event.
const WorkerSource = "atodene-worker"

var shopIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// ValidShopID reports whether id is a valid shop ID ([A-Za-z0-9_-]{1,32}), safe as a subject token.
func ValidShopID(id string) bool { return shopIDPattern.MatchString(id) }

// Subject returns the subject of an event type for a shop: order.created → orders.created.<shop>,
// credit.ok → credit.ok.<shop>.
func Subject(eventType, shop string) string {
	if rest, ok := strings.CutPrefix(eventType, "order."); ok {
		return "orders." + rest + "." + shop
	}
	return eventType + "." + shop
}

// ParseSubject returns the event type and shop of a subject, or an error when the subject is not
// one of the contract's.
func ParseSubject(subject string) (eventType, shop string, err error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 3 || !ValidShopID(parts[2]) {
		return "", "", fmt.Errorf("subject %q is not <kind>.<event>.<shop>", clip(subject))
	}
	eventType = parts[0] + "." + parts[1]
	if parts[0] == "orders" {
		eventType = "order." + parts[1]
	}
	if !knownTypes[eventType] || Subject(eventType, parts[2]) != subject {
		return "", "", fmt.Errorf("subject %q is not the subject of a contract event type", clip(subject))
	}
	return eventType, parts[2], nil
}

// knownTypes holds every event type of the contract, inbound and outcome.
var knownTypes = map[string]bool{
	TypeOrderCreated: true, TypeOrderUpdated: true, TypeOrderCancelled: true, TypeTrackingEntered: true,
	TypeInvoiceRequested: true, TypeRecheckRequested: true, TypeResolveRequested: true,
	TypeCreditOK: true, TypeCreditNG: true, TypeCreditPending: true, TypeCreditCancelled: true, TypeCreditInvalid: true,
	TypeShipmentOK: true, TypeShipmentNG: true, TypeInvoiceOK: true, TypeInvoiceNG: true,
}

// Envelope is a CloudEvents 1.0 structured-mode event. Data stays raw until the type is known.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            string          `json:"time,omitempty"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	CausationID     string          `json:"causationid,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// Limits of the identifiers of an event, which the worker stores (event records, parked events,
// the history, outcomes' causationid) and logs: a UUID is 36 bytes, a URI-reference source rarely
// over 100. Longer ones are invalid input.
const (
	MaxIDLen     = 256
	MaxSourceLen = 512
)

// EventKey is the identity of an event: CloudEvents makes source and id unique together, not id
// alone (docs/events.md#event-identity), so two importers that both number their events 0001 send two events. It
// is a fixed-length digest (32 hex digits) of the pair, safe in a Redis key whatever the two
// hold.
func EventKey(source, id string) string {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(source))) // "a"+"bc" and "ab"+"c" differ
	h.Write(n[:])
	h.Write([]byte(source))
	h.Write([]byte(id))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// MsgID is the Nats-Msg-Id a publisher sets for an event (docs/events.md#event-identity): the id
// itself when it is a UUID, unique whatever the source; otherwise "ce-" and EventKey(source, id),
// so that the same id from two sources is two messages and a re-sent copy of one is dropped by the
// stream.
func MsgID(source, id string) string {
	if isUUID(id) {
		return id
	}
	return "ce-" + EventKey(source, id)
}

// isUUID reports whether s is a UUID written in its canonical 8-4-4-4-12 hexadecimal form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// Problem is one reason an event is invalid, naming the field (a JSON path such as buyer.zip).
type Problem struct {
	Field  string
	Reason string
}

// InvalidError lists every problem of an invalid event.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Reason
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

// problems collects Problems; err returns nil when there are none.
type problems []Problem

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &InvalidError{Problems: p}
}

// DecodeEnvelope parses body as a CloudEvent received on subject and checks the envelope: UTF-8
// throughout, spec version 1.0, id, source, a type that agrees with the subject, and an object in
// data. Failures are an *InvalidError.
func DecodeEnvelope(subject string, body []byte) (Envelope, error) {
	env, _, err := DecodeEvent(subject, body)
	return env, err
}

// DecodeEvent is DecodeEnvelope that also returns the shop token of the subject (valid when err is
// nil): the subject is parsed once.
func DecodeEvent(subject string, body []byte) (env Envelope, shop string, err error) {
	want, shop, subjectErr := ParseSubject(subject)
	env, err = decodeEnvelope(subject, want, subjectErr, body)
	if err != nil {
		return env, "", err
	}
	return env, shop, nil
}

// decodeEnvelope is DecodeEnvelope for a subject already parsed: want is its event type, or
// subjectErr says why it has none.
func decodeEnvelope(subject, want string, subjectErr error, body []byte) (Envelope, error) {
	// The optional CloudEvents attributes subject and dataschema are not kept, only checked.
	var in struct {
		Envelope
		Subject    json.RawMessage `json:"subject"`
		DataSchema json.RawMessage `json:"dataschema"`
	}
	env := &in.Envelope
	if !utf8.Valid(body) {
		// encoding/json would replace every invalid byte with U+FFFD: a buyer's name or address
		// would reach ATODENE altered, without anyone being told.
		return *env, &InvalidError{Problems: []Problem{{Field: "body", Reason: "is not valid UTF-8"}}}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		field := "body"
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			// an attribute of the wrong JSON type, such as "specversion": 1.0; encoding/json
			// names it by its path through the embedded Envelope
			field = strings.TrimPrefix(te.Field, "Envelope.")
		}
		return *env, &InvalidError{Problems: []Problem{{Field: field, Reason: jsonReason(err)}}}
	}
	var p problems
	// An attribute holding a control character (an ESC starting a terminal sequence, a line
	// break) is refused by name, and not checked further: the id and source are stored, logged and
	// printed in the operators' tables, and no attribute of CloudEvents may hold one (a source is a
	// URI-reference, which has none).
	bad := map[string]bool{}
	for _, a := range []struct{ name, value string }{
		{"specversion", env.SpecVersion}, {"id", env.ID}, {"source", env.Source}, {"type", env.Type},
		{"time", env.Time}, {"datacontenttype", env.DataContentType}, {"causationid", env.CausationID},
		{"subject", rawString(in.Subject)}, {"dataschema", rawString(in.DataSchema)},
	} {
		if strings.IndexFunc(a.value, unicode.IsControl) >= 0 {
			p.add(a.name, "contains a control character")
			bad[a.name] = true
		}
	}
	switch {
	case bad["specversion"]:
	case env.SpecVersion != SpecVersion:
		p.add("specversion", "must be %q, got %q", SpecVersion, clip(env.SpecVersion))
	}
	switch {
	case bad["id"]:
	case env.ID == "":
		p.add("id", "is required")
	case len(env.ID) > MaxIDLen:
		p.add("id", "is %d bytes, more than the limit of %d", len(env.ID), MaxIDLen)
	}
	switch {
	case bad["source"]:
	case env.Source == "":
		p.add("source", "is required")
	case len(env.Source) > MaxSourceLen:
		p.add("source", "is %d bytes, more than the limit of %d", len(env.Source), MaxSourceLen)
	}
	if env.Time != "" && !bad["time"] {
		env.Time = upperTZ(env.Time) // RFC 3339 §5.6's lower-case t and z, in the form the handlers parse
		if _, err := ParseTime(env.Time); err != nil {
			p.add("time", "must be RFC 3339")
		}
	}
	if ct := env.DataContentType; ct != "" && !bad["datacontenttype"] && !isJSONMediaType(ct) {
		p.add("datacontenttype", "must be application/json, got %q", clip(ct))
	}
	if subjectErr != nil {
		p.add("subject", "%v", subjectErr)
	} else if env.Type != want && !bad["type"] {
		p.add("type", "%q does not match subject %q", clip(env.Type), subject)
	}
	if d := bytes.TrimSpace(env.Data); len(d) == 0 || d[0] != '{' {
		p.add("data", "must be a JSON object")
	}
	return *env, p.err()
}

// rawString returns the JSON string raw holds, or "" when raw is absent or no string (an optional
// attribute decodeEnvelope only checks for control characters).
func rawString(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// Limits of the CloudEvents distributed-tracing extension attributes of an inbound event
// (TraceContext): a W3C traceparent of version 00 is 55 characters, and a tracestate of more than
// 512 need not be propagated (W3C Trace Context).
const (
	MaxTraceParentLen = 55
	MaxTraceStateLen  = 512
)

// TraceContext returns the CloudEvents distributed-tracing extension attributes traceparent and
// tracestate of an event's body, the W3C trace context of a producer that puts it in the event
// rather than in message headers (a CloudEvents SDK), for a traced worker to continue
// (docs/events.md#envelope). They are read apart from DecodeEnvelope and never make an event
// invalid: an attribute that is not a JSON string or is over its limit (MaxTraceParentLen,
// MaxTraceStateLen) is left out, as is tracestate without traceparent, and a body that is no JSON
// object has neither. Whether traceparent is a valid trace context is for the propagator to judge.
func TraceContext(body []byte) (traceparent, tracestate string) {
	if !mayHoldTraceParent(body) {
		return "", "" // most events: no second scan of the whole body for an attribute it lacks
	}
	return decodeTraceContext(body)
}

// decodeTraceContext is TraceContext without the look for the name first.
func decodeTraceContext(body []byte) (traceparent, tracestate string) {
	var attrs struct {
		TraceParent json.RawMessage `json:"traceparent"`
		TraceState  json.RawMessage `json:"tracestate"`
	}
	if json.Unmarshal(body, &attrs) != nil {
		return "", ""
	}
	if traceparent = traceAttribute(attrs.TraceParent, MaxTraceParentLen); traceparent == "" {
		return "", ""
	}
	return traceparent, traceAttribute(attrs.TraceState, MaxTraceStateLen)
}

// mayHoldTraceParent reports whether body's JSON could have a member named traceparent as
// encoding/json matches names, case folded (no letter of the name has a non-ASCII fold): a quoted
// string of those letters in any case, or a backslash, since a name spelled with escapes
// ("\u0074raceparent") has one.
func mayHoldTraceParent(body []byte) bool {
	const name = "traceparent"
	if bytes.IndexByte(body, '\\') >= 0 {
		return true
	}
	for rest := body; ; {
		i := bytes.IndexByte(rest, '"')
		if i < 0 {
			return false
		}
		rest = rest[i+1:]
		if len(rest) > len(name) && rest[len(name)] == '"' && bytes.EqualFold(rest[:len(name)], []byte(name)) {
			return true
		}
	}
}

// traceAttribute returns the JSON string raw, or "" when raw is no string or one of more than limit
// bytes. A string whose JSON text could not hold limit bytes or fewer (6 bytes each at most, as
// \u0000) is not unquoted at all.
func traceAttribute(raw json.RawMessage, limit int) string {
	if len(raw) < 2 || raw[0] != '"' || len(raw) > 6*limit+2 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || len(s) > limit {
		return ""
	}
	return s
}

// isJSONMediaType reports whether ct is application/json, parameters (charset) allowed.
func isJSONMediaType(ct string) bool {
	mediaType, _, err := mime.ParseMediaType(ct)
	return err == nil && mediaType == "application/json"
}

// decodeData unmarshals an event's data into v; unknown fields are ignored (forward compatibility).
func decodeData(data json.RawMessage, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		field := "data"
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			field = te.Field
		}
		return &InvalidError{Problems: []Problem{{Field: field, Reason: jsonReason(err)}}}
	}
	return nil
}

func jsonReason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		// Only the kind of the value: the value itself may be personal data (a phone as a number).
		kind, _, _ := strings.Cut(te.Value, " ")
		return fmt.Sprintf("must be a JSON %s, got %s", jsonKind(te.Type.Kind().String()), kind)
	}
	return "is not valid JSON: " + err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int64", "int", "int32":
		return "integer"
	case "string":
		return "string"
	case "struct", "map", "ptr":
		return "object"
	case "slice":
		return "array"
	}
	return goKind
}

// clip shortens a value quoted in an error, so a huge or hostile field cannot flood logs.
func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}
