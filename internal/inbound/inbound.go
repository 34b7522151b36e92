// Package inbound builds the inbound events that the tools publish to the worker (publisher, the
// operators' console): it fills in the CloudEvents envelope an event lacks, derives its subject
// from its type and shop, and validates it with the worker's own decoders, so that an event the
// worker would reject never leaves. It publishes nothing itself: Event.Send traces the caller's
// publish.
package inbound

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/tracing"
	"github.com/atodene-worker/atodene-worker/internal/tracing/natstrace"
)

// Event is an inbound event ready to publish: its subject (orders.<event>.<shop>), its CloudEvents
// id, its Nats-Msg-Id (events.MsgID of its source and id, so that the stream drops a copy within
// its duplicate window) and its body, a structured-mode CloudEvent that passed the worker's own
// validation.
type Event struct {
	Subject string
	ID      string
	MsgID   string
	Body    []byte
}

// Type is the event's type, read from its subject.
func (e Event) Type() string {
	typ, _, _ := events.ParseSubject(e.Subject)
	return typ
}

// Msg returns the NATS message of the event, with the CloudEvents content type. Publish it with
// jetstream.WithMsgID(e.MsgID).
func (e Event) Msg() *nats.Msg {
	m := nats.NewMsg(e.Subject)
	m.Data = e.Body
	m.Header.Set("Content-Type", events.ContentType)
	return m
}

// Send publishes the event's message (Msg) through publish, which sends it with
// jetstream.WithMsgID(e.MsgID), in a producer span "send <subject>" of tp that starts a new trace
// (or continues ctx's): the message's traceparent header carries it to the worker, so the event's
// handling, its ATODENE calls and its outcomes join it. With tp nil, Send only publishes. The span
// holds the event's id, type and shop, never its data.
func (e Event) Send(ctx context.Context, tp trace.TracerProvider, publish func(ctx context.Context, msg *nats.Msg) error) error {
	msg := e.Msg()
	typ, shop, _ := events.ParseSubject(e.Subject)
	return natstrace.Send(ctx, tp, msg, func(ctx context.Context) error { return publish(ctx, msg) },
		tracing.MessageID.String(tracing.Clip(e.ID)), tracing.EventType.String(typ), tracing.Shop.String(shop))
}

// Fill is what Wrap fills into an envelope that lacks it.
type Fill struct {
	// Type is the type of a data object, and of a whole event that has none.
	Type string
	// Strict says Type must also agree with the type a whole event has.
	Strict bool
	// ID is the event's id; "" for a random UUID. A whole event's own id must agree with it.
	ID string
	// Source is the CloudEvents source of an event that has none.
	Source string
	// Now is the event's time when it has none.
	Now time.Time
}

// ErrNeedType says that the input is a bare data object and no event type was given for it.
var ErrNeedType = errors.New("a data object needs an event type")

// Wrap turns raw JSON, a whole CloudEvent or just its data object, into an event: it fills in the
// envelope attributes that are missing (specversion, id, source, time, type, datacontenttype),
// derives the subject from the type and data.shop_id, and validates the result with the code the
// worker runs (events.DecodeEnvelope and the decoder of the type). A rejected event is an
// *events.InvalidError listing every problem; a data object without a type is ErrNeedType.
//
// The input is a whole CloudEvent when it has a specversion or a data attribute. Attributes it
// already has are kept, unknown ones (extensions) included.
func Wrap(raw []byte, f Fill) (Event, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil || !utf8.Valid(raw) {
		return Event{}, &events.InvalidError{Problems: []events.Problem{{Field: "body", Reason: notAnObject(raw, err)}}}
	}
	_, hasSpec := obj["specversion"]
	_, hasData := obj["data"]
	if !hasSpec && !hasData {
		if f.Type == "" {
			return Event{}, ErrNeedType
		}
		obj = map[string]json.RawMessage{"data": raw}
	}
	var p []events.Problem
	setString := func(name, value string) {
		if _, ok := obj[name]; !ok {
			obj[name], _ = json.Marshal(value)
		}
	}
	if f.Strict && f.Type != "" {
		if t, ok := stringAttr(obj, "type"); ok && obj["type"] != nil && t != f.Type {
			p = append(p, events.Problem{Field: "type", Reason: fmt.Sprintf("%q contradicts -type %s", t, f.Type)})
		}
	}
	if f.ID != "" {
		if id, ok := stringAttr(obj, "id"); ok && obj["id"] != nil && id != f.ID {
			p = append(p, events.Problem{Field: "id", Reason: fmt.Sprintf("%q contradicts -id %s", id, f.ID)})
		}
	}
	if f.ID == "" {
		f.ID = NewID()
	}
	setString("specversion", events.SpecVersion)
	setString("id", f.ID)
	setString("source", f.Source)
	setString("time", f.Now.Format(time.RFC3339))
	setString("datacontenttype", "application/json")
	if f.Type != "" {
		setString("type", f.Type)
	}
	body, err := json.Marshal(obj)
	if err != nil { // an attribute that is not valid JSON cannot come out of json.Unmarshal
		return Event{}, err
	}
	ev, more := check(obj, body)
	if p = append(p, more...); len(p) > 0 {
		return Event{}, &events.InvalidError{Problems: p}
	}
	return ev, nil
}

// check derives the subject of a filled-in event and validates it as the worker will.
func check(obj map[string]json.RawMessage, body []byte) (Event, []events.Problem) {
	var p []events.Problem
	typ, typeIsString := stringAttr(obj, "type")
	switch {
	case !typeIsString:
		// Not a string: DecodeEnvelope names the attribute and its JSON type.
	case typ == "":
		p = append(p, events.Problem{Field: "type", Reason: "is required"})
	case !IsInbound(typ):
		p = append(p, events.Problem{Field: "type", Reason: fmt.Sprintf("%q is not an inbound event type (%s)", typ, strings.Join(events.InboundTypes, ", "))})
	}
	var data struct {
		ShopID any `json:"shop_id"`
	}
	_ = json.Unmarshal(obj["data"], &data) // a data that is no object is reported by DecodeEnvelope
	shop, _ := data.ShopID.(string)
	subjectShop := shop
	if !events.ValidShopID(shop) {
		subjectShop = "_" // a stand-in, so that the rest of the envelope is still checked
		if shop != "" {
			p = append(p, events.Problem{Field: "shop_id", Reason: "must be 1-32 of A-Z, a-z, 0-9, '_' and '-' (it is the last token of the subject)"})
		}
	}
	subject := events.Subject(typ, subjectShop)
	env, err := events.DecodeEnvelope(subject, body)
	p = appendProblems(p, err, func(pr events.Problem) bool {
		// The subject is derived here, from the type and the shop, whose problems are reported above.
		return pr.Field != "subject"
	})
	if d := bytes.TrimSpace(env.Data); IsInbound(typ) && len(d) > 0 && d[0] == '{' {
		_, err := events.DecodeData(typ, env, shop)
		p = appendProblems(p, err, nil)
	}
	id, _ := stringAttr(obj, "id")
	source, _ := stringAttr(obj, "source")
	return Event{Subject: events.Subject(typ, shop), ID: id, MsgID: events.MsgID(source, id), Body: body}, p
}

// appendProblems appends the problems of an *events.InvalidError that keep accepts (all when keep
// is nil); any other error becomes a problem of the body.
func appendProblems(p []events.Problem, err error, keep func(events.Problem) bool) []events.Problem {
	if err == nil {
		return p
	}
	var ie *events.InvalidError
	if !errors.As(err, &ie) {
		return append(p, events.Problem{Field: "body", Reason: err.Error()})
	}
	for _, pr := range ie.Problems {
		if keep == nil || keep(pr) {
			p = append(p, pr)
		}
	}
	return p
}

// Problems returns the problems of an error Wrap returned: those of an *events.InvalidError, or
// the error itself as a problem of the body.
func Problems(err error) []events.Problem {
	return appendProblems(nil, err, nil)
}

// stringAttr returns a string attribute; ok is false when it is absent or not a JSON string.
func stringAttr(obj map[string]json.RawMessage, name string) (string, bool) {
	raw, present := obj[name]
	if !present {
		return "", true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// IsInbound reports whether typ is an inbound event type (events.InboundTypes).
func IsInbound(typ string) bool { return slices.Contains(events.InboundTypes, typ) }

// NewID returns a random (version 4) UUID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return uuid(b)
}

// KeyedID returns a UUID (version 8: derived by SHA-256) that is the same for the same parts, so
// that an event made again from the same parts (a form sent twice, a retried bulk action) has the
// same id and Nats-Msg-Id, and the stream and the worker take it for a duplicate.
func KeyedID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p) // lengths keep ("a", "bc") from ("ab", "c")
	}
	var b [16]byte
	copy(b[:], h.Sum(nil))
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	return uuid(b)
}

func uuid(b [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// notAnObject says why raw, which json.Unmarshal answered with err, is not a JSON object, in the
// words of the worker's decoder (docs/events.md): not UTF-8, not JSON (the parser's reason), or
// another JSON value.
func notAnObject(raw []byte, err error) string {
	var te *json.UnmarshalTypeError
	switch {
	case !utf8.Valid(raw):
		return "is not valid UTF-8"
	case errors.As(err, &te):
		kind, _, _ := strings.Cut(te.Value, " ")
		return "must be a JSON object, got " + kind
	case err != nil:
		return "is not valid JSON: " + err.Error()
	}
	return "must be a JSON object, got null"
}
