// Package handlers holds one handler per inbound event type and the machinery they share: typed
// decoding, middleware (recover, logging, metrics, idempotency) and the classification of handler
// errors that package consumer maps to acknowledgements and dead letters. It knows nothing of NATS:
// consumer, the JetStream adapter, turns a delivered message into a Message.
//
// A handler returns nil when the event is fully processed, an error made by Permanent to
// dead-letter the message, one made by RetryAfter to have it redelivered after a delay, and any
// other error for a transient failure that is retried with backoff until the delivery limit,
// after which the message is dead-lettered as exhausted.
package handlers

import (
	"context"
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
	// infrastructure's (tried again in place).
	LastAttempt bool
	// Replayed says an operator replayed the message from the dead-letter stream; ReplayCount is
	// its Dlq-Replay-Count header.
	Replayed    bool
	ReplayCount string
	// Envelope is filled by the decoding adapter.
	Envelope events.Envelope
	// Shop is the shop token of the subject.
	Shop string
	// Order is the order the message is about, for logs; empty when unknown.
	Order string
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
}

// Key is the event's identity, events.EventKey(Source, ID): source and id together
// (docs/events.md#event-identity).
func (m Meta) Key() string { return events.EventKey(m.Source, m.ID) }

// Event is a decoded, validated inbound event.
type Event[T any] struct {
	Meta
	Data T
}

// Decoder decodes and validates an event's data for the shop of its subject.
type Decoder[T any] func(env events.Envelope, shop string) (T, error)

// DecodeEnvelope is the decoding adapter's first half: it parses the CloudEvents envelope (the
// type must agree with the subject) into m.Envelope and m.Shop. A bad envelope is permanent with
// reason invalid.
func DecodeEnvelope(next Handler) Handler {
	return func(ctx context.Context, m *Message) error {
		env, err := events.DecodeEnvelope(m.Subject, m.Body)
		if err != nil {
			return Permanent(ReasonInvalid, err)
		}
		_, shop, _ := events.ParseSubject(m.Subject)
		m.Envelope, m.Shop = env, shop
		return next(ctx, m)
	}
}

// Typed adapts a typed handler, decoding the data of a message whose envelope DecodeEnvelope
// already parsed; invalid data is permanent with reason invalid.
func Typed[T any](decode Decoder[T], h func(context.Context, Event[T]) error) Handler {
	return func(ctx context.Context, m *Message) error {
		data, err := decode(m.Envelope, m.Shop)
		if ref, ok := any(data).(interface{ OrderRef() string }); ok && events.ValidOrderID(ref.OrderRef()) {
			m.Order = ref.OrderRef() // for the log line and the history of a dead letter
		}
		if err != nil {
			return Permanent(ReasonInvalid, err)
		}
		return h(ctx, Event[T]{Meta: metaOf(m), Data: data})
	}
}

// metaOf returns the Meta of a message whose envelope DecodeEnvelope parsed.
func metaOf(m *Message) Meta {
	at, _ := time.Parse(time.RFC3339, m.Envelope.Time) // validated; zero when absent
	return Meta{ID: m.Envelope.ID, Source: m.Envelope.Source, Type: m.Envelope.Type, Shop: m.Shop, Time: at,
		Attempt: m.Attempt, Seq: m.Sequence, Published: m.Published, PublishedCreated: m.PublishedCreated, Stream: m.Stream, Subject: m.Subject, Body: m.Body, ReplayCount: m.ReplayCount}
}

// Mux routes messages to handlers by event type. Registration happens once at start-up.
type Mux struct {
	handlers map[string]Handler
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{handlers: map[string]Handler{}} }

// Handle registers h for an event type; registering a type twice panics.
func (mux *Mux) Handle(eventType string, h Handler) {
	if _, dup := mux.handlers[eventType]; dup {
		panic(fmt.Sprintf("handlers: %s registered twice", eventType))
	}
	mux.handlers[eventType] = h
}

// Handler returns the Handler that dispatches by the subject's event type; a subject with no
// handler is invalid input.
func (mux *Mux) Handler() Handler {
	return func(ctx context.Context, m *Message) error {
		eventType, _, err := events.ParseSubject(m.Subject)
		if err != nil {
			return Permanent(ReasonInvalid, err)
		}
		h, ok := mux.handlers[eventType]
		if !ok {
			return Permanent(ReasonInvalid, fmt.Errorf("no handler for event type %q", eventType))
		}
		return h(ctx, m)
	}
}
