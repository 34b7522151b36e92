// Package handlers holds one handler per inbound event type and the machinery they share: typed
// decoding, middleware (recover, logging, metrics, idempotency) and the classification of handler
// errors that package consumer maps to acknowledgements and dead letters. It knows nothing of NATS:
// consumer, the JetStream adapter, turns a delivered message into a Message.
//
// A handler returns nil when the event is fully processed, an error made by Permanent to
// dead-letter the message, one made by KeptForRetry when the event failed transiently and waits
// for its retry in its order's inbox (the message is done with), one made by RetryAfter to have it
// redelivered after a delay, and any other error for a transient failure that is retried with
// backoff until the delivery limit, after which the message is dead-lettered as exhausted.
package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// Message is a delivered message as handlers see it: no NATS types.
type Message struct {
	Subject  string
	Body     []byte
	Stream   string
	Sequence uint64
	// StreamCreated is when Stream was created (Unix ns; consumer.Config.StreamCreated), 0 when
	// unknown.
	StreamCreated int64
	// Published is the sequence the event had when it was first published: Sequence, or for a
	// replayed dead letter the sequence of the event it replays (dlq.Published).
	Published uint64
	// PublishedCreated is when the stream it was first published in was created (Unix ns; 0 when
	// unknown): the stream's own (consumer.Config.StreamCreated), or for a replay the one its dead
	// letter names (dlq.PublishedCreated). It tells apart the sequences of a stream deleted and
	// created again, which start at 1 again.
	PublishedCreated int64
	Attempt          int // delivery count, from 1
	// LastAttempt says this is the consumer's last delivery (consumer.Config.MaxDeliver): a failure
	// now dead-letters the message as exhausted instead of handing it back, unless it is the
	// infrastructure's (tried again in place). (A failed event the handler kept in its order's
	// inbox, KeptForRetry, is not; the handlers keep none on its last delivery.)
	LastAttempt bool
	// Again says the consumer runs the handler again in place, with the same delivery, after a
	// failure of Redis or JetStream: its earlier run may have done what its reply did not say.
	Again bool
	// Replayed says an operator replayed the message from the dead-letter stream; ReplayCount is
	// its Dlq-Replay-Count header.
	Replayed    bool
	ReplayCount string
	// Head is what decoding the message learned. Serve sets it once, before any middleware runs;
	// middleware and handlers only read it.
	Head Head
}

// Handler processes one message.
type Handler func(ctx context.Context, m *Message) error

// Middleware wraps a Handler with a cross-cutting concern.
type Middleware func(Handler) Handler

// Chain applies middleware so that the first one listed runs outermost.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Meta is what a handler knows of an inbound event besides its data: its CloudEvents attributes
// and the message it came in, kept so that an event that must wait can be parked as received.
type Meta struct {
	ID     string
	Source string
	Type   string
	Shop   string
	// Time is the event's CloudEvents time; zero when it has none.
	Time    time.Time
	Attempt int
	// Again says the message is handled again in place (Message.Again).
	Again bool
	// Seq is the message's sequence in the inbound stream; Published the sequence the event had
	// when it was first published (Seq, but for a replayed dead letter), in the stream created at
	// PublishedCreated (Unix ns, 0 when unknown): the order in which the shop published it.
	Seq              uint64
	Published        uint64
	PublishedCreated int64
	Stream           string
	Subject          string
	Body             []byte
	ReplayCount      string
	// Data is the event's data as decoded and validated, written again as JSON (its normal form:
	// the fields in the order of its Go type, normalised values, no white space): with the type and
	// the order, what identifies the event's content (digest). So a copy an importer wrote again
	// with its keys in another order, other spacing or a full-width zip is the same event.
	Data []byte
}

// Key is the event's identity, events.EventKey(Source, ID): source and id together
// (docs/events.md#event-identity).
func (m Meta) Key() string { return events.EventKey(m.Source, m.ID) }

// eventDigestV1 prefixes an event digest of version 1 (digest).
const eventDigestV1 = "v1:"

// digest is what identifies the content of the event, about order: "v1:" and, in lower-case hex, the
// first 16 bytes of the SHA-256 of its type, the order and its data in normal form (Data;
// docs/lifecycle.md#idempotency). The record of an event processed holds it, so that an event
// re-sent (its data written again in any JSON form, or with only its envelope's time or other
// attributes changed) is a copy,
// while another event under the same source and id (an importer that reused it) is not. Like the
// request hash (datahash.go) it is stored in Redis and outlives the code: a change to what it covers
// is a new version, and records of another version are taken for the same event
// (orderstate.Recorded).
func (m Meta) digest(order string) string {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{m.Type, order} { // length-prefixed: "a"+"bc" and "ab"+"c" differ
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	h.Write(m.Data)
	var sum [sha256.Size]byte
	return eventDigestV1 + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// Event is a decoded, validated inbound event.
type Event[T any] struct {
	Meta
	Data T
}

// Head is what the worker learned of a message by decoding it, once per handling: what logging,
// metrics, the handler and a dead letter's history read.
type Head struct {
	// Kind is what the message is: an event type (order.created), a timer's kind (poll,
	// park-deadline, inbox); "" when it could not be decoded.
	Kind  string
	Shop  string
	Order string // the order it is about; "" when unknown
	// Event is an inbound event's CloudEvents attributes and delivery; zero for a timer.
	Event Meta
	// Data is the decoded data, for the handler: an events type, or a PollRequest.
	Data any
	// Err is why decoding failed (made by Permanent, reason invalid); the handler is not called.
	Err error
}

// Decoder reads a message into h, field by field as it learns them, so that a failure (in
// h.Err) or a panic still leaves what was learned before it (kind, shop, order) for the logs.
type Decoder func(m *Message, h *Head)

// Serve returns the Handler the consume loop runs for each message: mws, the first listed
// outermost, around decoding the message into m.Head and then h. The middleware read the head
// once the call returns (Logging and metrics do): it is written once, by the decoder, before h
// runs, and nothing rewrites it. A message that did not decode ends with its Head.Err, logged and
// counted, without reaching h; a panicking decoder is caught by Recover as a panicking handler is.
func Serve(decode Decoder, h Handler, mws ...Middleware) Handler {
	return Chain(func(ctx context.Context, m *Message) error {
		m.Head = Head{}
		decode(m, &m.Head)
		if m.Head.Err != nil {
			return m.Head.Err
		}
		return h(ctx, m)
	}, mws...)
}

// EventDecoder decodes and validates an event's data for the shop of its subject.
type EventDecoder[T any] func(env events.Envelope, shop string) (T, error)

// Route is a typed event handler for a Mux: its data decoder and its handler.
type Route struct {
	decode func(env events.Envelope, shop string) (data any, order string, err error)
	handle Handler
}

// Typed makes the Route of a typed handler: decode's failure is permanent with reason invalid.
func Typed[T any](decode EventDecoder[T], h func(context.Context, Event[T]) error) Route {
	return Route{
		decode: func(env events.Envelope, shop string) (any, string, error) {
			data, err := decode(env, shop)
			order := ""
			if ref, ok := any(data).(interface{ OrderRef() string }); ok && events.ValidOrderID(ref.OrderRef()) {
				order = ref.OrderRef() // for the log line and the history of a dead letter
			}
			return data, order, err
		},
		handle: func(ctx context.Context, m *Message) error {
			return h(ctx, Event[T]{Meta: m.Head.Event, Data: m.Head.Data.(T)})
		},
	}
}

// Mux routes events to handlers by event type. Registration happens once at start-up.
type Mux struct {
	routes map[string]Route
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{routes: map[string]Route{}} }

// Handle registers r for an event type; registering a type twice panics.
func (mux *Mux) Handle(eventType string, r Route) {
	if _, dup := mux.routes[eventType]; dup {
		panic(fmt.Sprintf("handlers: %s registered twice", eventType))
	}
	mux.routes[eventType] = r
}

// Decode is the Mux's Decoder: the subject, the CloudEvents envelope (its type must agree with
// the subject) and the data of the event's type, each once. Any failure is permanent with reason
// invalid: a subject or envelope that is not an event of the contract, a type with no handler,
// data its route refuses.
func (mux *Mux) Decode(m *Message, h *Head) {
	env, shop, err := events.DecodeEvent(m.Subject, m.Body)
	if err != nil {
		h.Err = Permanent(ReasonInvalid, err)
		return
	}
	h.Kind, h.Shop, h.Event = env.Type, shop, metaOf(m, env, shop)
	r, ok := mux.routes[env.Type]
	if !ok {
		h.Err = Permanent(ReasonInvalid, fmt.Errorf("no handler for event type %q", env.Type))
		return
	}
	if h.Data, h.Order, err = r.decode(env, shop); err != nil {
		h.Err = Permanent(ReasonInvalid, err)
		return
	}
	if data, err := json.Marshal(h.Data); err == nil { // the decoded types always encode
		h.Event.Data = data
	}
}

// Handler is the Mux's Handler: the route of the event's type, with the data Decode decoded.
func (mux *Mux) Handler(ctx context.Context, m *Message) error {
	return mux.routes[m.Head.Kind].handle(ctx, m)
}

// metaOf returns the Meta of a message whose envelope decoded.
func metaOf(m *Message, env events.Envelope, shop string) Meta {
	at, _ := time.Parse(time.RFC3339, env.Time) // validated; zero when absent
	return Meta{ID: env.ID, Source: env.Source, Type: env.Type, Shop: shop, Time: at,
		Attempt: m.Attempt, Again: m.Again, Seq: m.Sequence, Published: m.Published, PublishedCreated: m.PublishedCreated, Stream: m.Stream, Subject: m.Subject, Body: m.Body, ReplayCount: m.ReplayCount,
		Data: env.Data}
}
