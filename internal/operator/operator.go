// Package operator is the operator's actions on an order (docs/events.md#operator-events), for the
// publisher command and the operators' console alike: 与信を実行 (Rerun), 与信結果確認 (Recheck),
// 与信キャンセル (Cancel), 伝票番号同期 (Track), 請求書ダウンロード (RequestInvoice) and the settling
// of an unknown order (Resolve). Each checks the order's state in Redis, then publishes an ordinary
// inbound event for it to the inbound stream, with a source that names the tool and the operator
// (Config.SourcePrefix + name), which the worker records in the order's history. It never writes
// the order's state: the worker does, when it handles the event.
//
// The rules of which action an order's state allows are in one place (Allowed, WhyNot): the
// actions enforce them, and a user interface reads them to offer only the valid actions. An action
// refused for the order (its status, data gone from the stream, an event the worker would reject)
// is a Result, not an error, so that a caller acting on many orders (Bulk) reports each: published,
// or refused and why. Errors are for the infrastructure (Redis or NATS failing) and for ctx.
package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/inbound"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Config configures an Operator.
type Config struct {
	// JetStream publishes the events and reads the streams. Required.
	JetStream jetstream.JetStream
	// Store reads the orders' states and histories (the worker's Redis and key prefix). Required.
	Store *orderstate.Store
	// Inbound is the name of the worker's inbound stream, where the events go. Default "ORDERS".
	Inbound string
	// Results is the name of the worker's outcome stream, where Answers looks. Default "RESULTS".
	Results string
	// SourcePrefix heads the CloudEvents source of the events, followed by the operator's name:
	// "publisher/operator/" for the publisher command, "console/operator/" for the console. Required.
	SourcePrefix string
	// Now is the clock: the events' time. Default time.Now.
	Now func() time.Time
	// Concurrency is how many orders Bulk acts on at once. Default 32.
	Concurrency int
	// Tracing, if set, starts a trace for each event published: a producer span whose context
	// the event's headers carry to the worker. Default nil: none.
	Tracing trace.TracerProvider
}

// Operator acts on orders for operators. It is safe for concurrent use.
type Operator struct {
	js          jetstream.JetStream
	store       *orderstate.Store
	inbound     string
	results     string
	prefix      string
	now         func() time.Time
	concurrency int
	tracing     trace.TracerProvider
}

// New returns an Operator configured by cfg; a required setting missing is an error.
func New(cfg Config) (*Operator, error) {
	switch {
	case cfg.JetStream == nil:
		return nil, errors.New("operator: Config.JetStream is required")
	case cfg.Store == nil:
		return nil, errors.New("operator: Config.Store is required")
	case cfg.SourcePrefix == "":
		return nil, errors.New("operator: Config.SourcePrefix is required")
	}
	o := &Operator{js: cfg.JetStream, store: cfg.Store, inbound: cfg.Inbound, results: cfg.Results, prefix: cfg.SourcePrefix,
		now: cfg.Now, concurrency: cfg.Concurrency, tracing: cfg.Tracing}
	if o.inbound == "" {
		o.inbound = "ORDERS"
	}
	if o.results == "" {
		o.results = "RESULTS"
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.concurrency <= 0 {
		o.concurrency = 32
	}
	return o, nil
}

// namePattern is what an operator's name may hold: a login name or an e-mail address, which keeps
// the source a plain URI reference.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)

// ValidName reports whether name may name an operator: 1 to 64 of letters, digits and . _ @ + -,
// starting with a letter or digit (a login name or an e-mail address).
func ValidName(name string) bool { return namePattern.MatchString(name) }

// Source returns the CloudEvents source of the events of the named operator.
func (o *Operator) Source(name string) string { return o.prefix + name }

// Option is a knob of one call of an action.
type Option func(*options)

type options struct {
	dry  bool
	key  string
	scan int
}

// DryRun checks the order and builds the event (Result.Event), and publishes nothing.
func DryRun() Option { return func(o *options) { o.dry = true } }

// Key makes the event's id (and so its Nats-Msg-Id) a function of key, the action, the operator,
// the shop and the order, instead of a random UUID: the same call again (a form sent twice, a bulk
// action retried after a failure) publishes the same event, which the inbound stream reports as a
// duplicate within its duplicate window (Result.Duplicate) and the worker drops after it. Give each
// request of the user its own key.
func Key(key string) Option { return func(o *options) { o.key = key } }

// Scan bounds the messages of the shop Rerun reads in the inbound stream when the order's data is
// not at the position its state records (a cancelled order, a dead letter's edit). Default 100,000.
func Scan(n int) Option { return func(o *options) { o.scan = n } }

func collect(opts []Option) options {
	c := options{scan: 100000}
	for _, opt := range opts {
		opt(&c)
	}
	if c.scan < 1 {
		c.scan = 100000
	}
	return c
}

// Outcome says what became of an action.
type Outcome string

// The outcomes.
const (
	// Published: the stream stored the event, or holds it already (Result.Duplicate).
	Published Outcome = "published"
	// WouldPublish: a dry run that found nothing to refuse (Result.Event is the event).
	WouldPublish Outcome = "dry-run"
	// Refused: nothing was published (Result.Reason says why).
	Refused Outcome = "refused"
)

// Refusal is the kind of reason an action was refused.
type Refusal string

// The kinds of refusal.
const (
	// RefusedInput: the request's own values are not valid (an operator name, a shop or order ID,
	// a transaction ID, a tracking number, an unknown action), whatever the order; Problems names
	// the fields.
	RefusedInput Refusal = "input"
	// RefusedNoState: the worker holds no credit state for the order.
	RefusedNoState Refusal = "no-state"
	// RefusedStatus: the order's status is not one the action is for.
	RefusedStatus Refusal = "status"
	// RefusedDataGone: Rerun found no data of the order in the inbound stream (past its retention,
	// or the stream created again): the importer must publish it again.
	RefusedDataGone Refusal = "data-gone"
	// RefusedScanLimit: Rerun read as many messages as Scan allows without finding the order's
	// data; a larger Scan may find it.
	RefusedScanLimit Refusal = "scan-limit"
	// RefusedInvalid: the event built from the order's data would be rejected by the worker;
	// Problems names the fields.
	RefusedInvalid Refusal = "invalid"
)

// Received is an inbound event as the stream holds it: where Rerun took the order's data from.
type Received struct {
	Sequence uint64    `json:"sequence"`
	Type     string    `json:"type"`
	ID       string    `json:"id"`
	Source   string    `json:"source"`
	Stored   time.Time `json:"stored_at"`
	// Copy says it is a replay or an edit of a dead letter (it carries Dlq-Replay-Count).
	Copy bool `json:"copy,omitempty"`
	// CopyOf is the sequence of the event a copy repeats (Dlq-Published-Sequence); 0 for others.
	CopyOf uint64 `json:"copy_of,omitempty"`
	// Data is the event's data: the order, with the buyer's personal data (left out of JSON).
	Data json.RawMessage `json:"-"`
}

// Result is what became of one action on one order.
type Result struct {
	Action   Action `json:"action"`
	Shop     string `json:"shop"`
	Order    string `json:"order"`
	Operator string `json:"operator"`
	// Before is the order's credit status before the action (StatusNone for an order never
	// registered, or one the worker holds no state for); Status says it in words: "ok", "none",
	// "pending (on hold)". Both are empty when the order was not read (a refused input).
	Before orderstate.Status `json:"before"`
	Status string            `json:"status"`
	// Outcome is Published, WouldPublish or Refused; "" for an order Bulk did not get to.
	Outcome Outcome `json:"outcome"`
	// Refusal and Reason say why an action was refused: Reason is a sentence for people that
	// names the order and what to do.
	Refusal Refusal `json:"refusal,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	// Problems lists the fields at fault of an event the worker would reject (RefusedInput,
	// RefusedInvalid).
	Problems []events.Problem `json:"problems,omitempty"`
	// The event: its CloudEvents id (the causationid of the outcomes it causes), source, subject,
	// Nats-Msg-Id and time; set once it was built, in a dry run too.
	ID      string    `json:"id,omitempty"`
	Source  string    `json:"source,omitempty"`
	Subject string    `json:"subject,omitempty"`
	MsgID   string    `json:"msg_id,omitempty"`
	Time    time.Time `json:"time,omitzero"`
	// Where the stream stored it (for a duplicate, where it holds the first one).
	Stream    string `json:"stream,omitempty"`
	Sequence  uint64 `json:"sequence,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	// Event is the event itself, in a dry run.
	Event json.RawMessage `json:"event,omitempty"`
	// From is where Rerun took the order's data from.
	From *Received `json:"from,omitempty"`
	// Note is a remark for people about what the worker will do with a published event: a rerun of
	// an ng or invalid order with unchanged data changes nothing.
	Note string `json:"note,omitempty"`
}

// refuse marks r refused for why.
func (r *Result) refuse(kind Refusal, why string) {
	r.Outcome, r.Refusal, r.Reason = Refused, kind, why
}

// read reads the order's state into r, and its history when withHistory.
func (o *Operator) read(ctx context.Context, r *Result, withHistory bool) (orderstate.State, []orderstate.Entry, error) {
	st, err := o.store.Get(ctx, r.Shop, r.Order)
	if err != nil {
		return st, nil, err
	}
	r.Before, r.Status = st.Status, statusWords(st.Status, st.Review)
	if !withHistory {
		return st, nil, nil
	}
	history, err := o.store.History(ctx, r.Shop, r.Order)
	return st, history, err
}

// event builds the event of typ with data from the operator, validated as the worker validates it.
func (o *Operator) event(r *Result, typ string, data any, opt options) (inbound.Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return inbound.Event{}, err
	}
	body, err := json.Marshal(map[string]any{"type": typ, "data": json.RawMessage(raw)})
	if err != nil {
		return inbound.Event{}, err
	}
	id := ""
	if opt.key != "" {
		id = inbound.KeyedID(opt.key, string(r.Action), o.Source(r.Operator), r.Shop, r.Order)
	}
	now := o.now()
	ev, err := inbound.Wrap(body, inbound.Fill{Type: typ, Strict: true, ID: id, Source: o.Source(r.Operator), Now: now})
	if err == nil {
		r.Time = now
	}
	return ev, err
}

// publish publishes ev (or, in a dry run, keeps it in r) and records where it went.
func (o *Operator) publish(ctx context.Context, r *Result, ev inbound.Event, opt options) error {
	r.ID, r.Source, r.Subject, r.MsgID = ev.ID, o.Source(r.Operator), ev.Subject, ev.MsgID
	if opt.dry {
		r.Outcome, r.Event = WouldPublish, ev.Body
		return nil
	}
	var ack *jetstream.PubAck
	err := ev.Send(ctx, o.tracing, func(ctx context.Context, msg *nats.Msg) (err error) {
		ack, err = o.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.MsgID))
		return err
	})
	if err != nil {
		return fmt.Errorf("publishing %s to %s: %w", ev.ID, ev.Subject, err)
	}
	r.Outcome, r.Stream, r.Sequence, r.Duplicate = Published, ack.Stream, ack.Sequence, ack.Duplicate
	return nil
}
