package reliability

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/childproc"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sampledata"
)

// driver runs the workload of a scenario: it publishes each order's events one after the other,
// the next once the outcome of the previous one is in RESULTS (as an order-management system
// would), and keeps the ledger of what it published.
type driver struct {
	s   *stack
	gen *generator
	tag string
	// dup publishes every message three times: again with the same Nats-Msg-Id (the stream drops
	// it within its duplicate window) and with a fresh Nats-Msg-Id but the same CloudEvent id (a
	// copy the stream cannot recognise, as after the window), at once or a few seconds later.
	dup bool

	mu     sync.Mutex
	events map[string]*Event
	order  []*Event
	byBody map[[32]byte]string
	live   map[string]*liveEvent
	// byTracking maps shop/order/tracking number to the tracking event's key.
	byTracking map[string]string
	// cancels maps shop/order to the order's order.cancelled event, and credits to its
	// order.created and order.updated events.
	cancels map[string]string
	credits map[string]bool

	started   atomic.Int64 // orders whose script has begun
	finished  atomic.Int64
	published atomic.Int64
	late      sync.WaitGroup // late copies still to publish
	lateCount atomic.Int64
	trackSeq  atomic.Int64
}

// liveEvent is what the driver has seen of an event so far.
type liveEvent struct {
	outs []Outcome
	dead bool
	ch   chan struct{} // closed and replaced on every change
}

func newDriver(s *stack, gen *generator, tag string) *driver {
	return &driver{s: s, gen: gen, tag: tag, events: map[string]*Event{}, byBody: map[[32]byte]string{},
		live: map[string]*liveEvent{}, byTracking: map[string]string{}, cancels: map[string]string{}, credits: map[string]bool{}}
}

// newEventID returns a fresh CloudEvent id.
func newEventID() string { return randomHex(16) }

// register adds an event to the ledger before it is published, so that its outcomes can be
// attributed as soon as they appear.
func (d *driver) register(e *Event, body []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.events[e.Key]; !ok {
		d.events[e.Key] = e
		d.order = append(d.order, e)
		d.live[e.Key] = &liveEvent{ch: make(chan struct{})}
	}
	d.byBody[sha256.Sum256(body)] = e.Key
	if e.Tracking != "" {
		d.byTracking[e.Shop+"/"+e.Order+"/"+e.Tracking] = e.Key
	}
	switch e.Type {
	case events.TypeOrderCancelled:
		d.cancels[e.Shop+"/"+e.Order] = e.Key
	case events.TypeOrderCreated, events.TypeOrderUpdated:
		d.credits[e.Key] = true
	}
}

// publishRaw publishes one message of e and records how the stream took it. Publishing is
// retried until the stream answers (through NATS restarts and leader elections) or ctx ends; a
// retry uses the same Nats-Msg-Id, so the stream stores it once.
func (d *driver) publishRaw(ctx context.Context, e *Event, subject string, body []byte, msgID string) error {
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set("Content-Type", events.ContentType)
	retried := false
	wait := 100 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := d.s.js.PublishMsg(pctx, msg, jetstream.WithMsgID(msgID))
		cancel()
		if err == nil {
			d.mu.Lock()
			switch {
			case !ack.Duplicate || retried && !hasSeq(e, ack.Sequence):
				e.Msgs = append(e.Msgs, Msg{Seq: ack.Sequence, MsgID: msgID})
				d.published.Add(1)
			default:
				e.Dropped++
			}
			d.mu.Unlock()
			return nil
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			return fmt.Errorf("publishing %s: %w", subject, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		retried = true
		if err := childproc.Sleep(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func hasSeq(e *Event, seq uint64) bool {
	for _, m := range e.Msgs {
		if m.Seq == seq {
			return true
		}
	}
	return false
}

// send publishes an inbound event of the workload (in three copies when dup is set).
func (d *driver) send(ctx context.Context, typ, shop, order string, data any, want Want, tracking string) (*Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	id := newEventID()
	body, err := json.Marshal(events.Envelope{SpecVersion: events.SpecVersion, ID: id, Source: "reliability/" + d.s.name,
		Type: typ, Time: time.Now().Format(time.RFC3339), DataContentType: "application/json", Data: raw})
	if err != nil {
		return nil, err
	}
	subject := events.Subject(typ, shop)
	e := &Event{Key: id, Type: typ, Subject: subject, Shop: shop, Order: order, Tracking: tracking, Want: want}
	d.register(e, body)
	if err := d.publishRaw(ctx, e, subject, body, id); err != nil {
		return e, err
	}
	if d.dup {
		if err := d.publishRaw(ctx, e, subject, body, id); err != nil {
			return e, err
		}
		late := func() { _ = d.publishRaw(context.WithoutCancel(ctx), e, subject, body, id+":copy") }
		d.lateCount.Add(1)
		if hashString(id)%2 == 0 {
			late()
		} else {
			delay := time.Duration(1000+hashString(id)%9000) * time.Millisecond
			d.late.Go(func() {
				time.Sleep(delay)
				late()
			})
		}
	}
	return e, nil
}

// wait blocks until pred holds for the event's live view, or ctx ends.
func (d *driver) wait(ctx context.Context, e *Event, pred func(*liveEvent) bool) (liveEvent, bool) {
	for {
		d.mu.Lock()
		l := d.live[e.Key]
		if pred(l) {
			snap := liveEvent{outs: append([]Outcome(nil), l.outs...), dead: l.dead}
			d.mu.Unlock()
			return snap, true
		}
		ch := l.ch
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			return liveEvent{}, false
		case <-ch:
		}
	}
}

// first waits for the event's own outcome or a dead letter.
func (d *driver) first(ctx context.Context, e *Event) (liveEvent, bool) {
	return d.wait(ctx, e, func(l *liveEvent) bool { return l.dead || len(l.outs) > 0 })
}

// decision waits for the end of the credit check an order.created or order.updated started:
// its outcome when that is not credit.pending, else the decision after it. It returns "" after
// a dead letter.
func (d *driver) decision(ctx context.Context, e *Event) (string, bool) {
	l, ok := d.wait(ctx, e, func(l *liveEvent) bool {
		if l.dead {
			return true
		}
		for _, o := range l.outs {
			if o.Type != events.TypeCreditPending {
				return true
			}
		}
		return false
	})
	if !ok || l.dead {
		return "", ok
	}
	for _, o := range l.outs {
		if o.Type != events.TypeCreditPending {
			return o.Type, true
		}
	}
	return "", false
}

// runOrder drives one order through its life as its plan says.
func (d *driver) runOrder(ctx context.Context, p *plan, index int) error {
	d.started.Add(1)
	defer d.finished.Add(1)
	o := d.gen.order(p)
	credit := Want{Direct: []string{directCredit(p.Rule)}, Final: finalCredit(p.Rule), MayBeUnknown: true}
	created, err := d.send(ctx, events.TypeOrderCreated, p.Shop, p.OrderID, o, credit, "")
	if err != nil {
		return err
	}
	l, ok := d.first(ctx, created)
	if !ok || l.dead {
		return nil
	}
	decided := l.outs[0].Type
	var queued *Event
	if decided == events.TypeCreditPending {
		if p.CancelPending {
			c, err := d.send(ctx, events.TypeOrderCancelled, p.Shop, p.OrderID, events.Cancel{ShopID: p.Shop, OrderID: p.OrderID, Reason: "buyer changed their mind"},
				Want{Direct: []string{events.TypeCreditCancelled}}, "")
			if err != nil {
				return err
			}
			if l, ok := d.first(ctx, c); !ok || l.dead {
				return nil
			}
			if p.TrackRefused {
				return d.track(ctx, p, index, events.TypeShipmentNG)
			}
			return nil
		}
		if p.TrackPending {
			want := events.TypeShipmentOK
			if finalCredit(p.Rule) != events.TypeCreditOK {
				want = events.TypeShipmentNG
			}
			if queued, err = d.sendTracking(ctx, p, index, want); err != nil {
				return err
			}
		}
		if decided, ok = d.decision(ctx, created); !ok || decided == "" {
			return nil
		}
	}
	if queued != nil {
		if l, ok := d.first(ctx, queued); !ok || l.dead {
			return nil
		}
	}
	rl := p.Rule
	if decided == events.TypeCreditNG && p.FixNG {
		o = d.gen.fix(p, o)
		rl = sampledata.Ordinary
		u, err := d.send(ctx, events.TypeOrderUpdated, p.Shop, p.OrderID, o,
			Want{Direct: []string{events.TypeCreditOK}, Final: events.TypeCreditOK, MayBeUnknown: true}, "")
		if err != nil {
			return err
		}
		if decided, ok = d.decision(ctx, u); !ok || decided == "" {
			return nil
		}
	}
	if decided == events.TypeCreditOK && p.Update {
		o = d.gen.update(o)
		// A change re-screens with the order's rule. If its answer is lost, the retry asks which
		// decision stands, and a short review may have ended by then: the decision itself.
		u, err := d.send(ctx, events.TypeOrderUpdated, p.Shop, p.OrderID, o,
			Want{Direct: []string{directCredit(rl), finalCredit(rl)}, Final: finalCredit(rl)}, "")
		if err != nil {
			return err
		}
		if decided, ok = d.decision(ctx, u); !ok || decided == "" {
			return nil
		}
	}
	if decided == events.TypeCreditOK && p.Cancel {
		c, err := d.send(ctx, events.TypeOrderCancelled, p.Shop, p.OrderID, events.Cancel{ShopID: p.Shop, OrderID: p.OrderID},
			Want{Direct: []string{events.TypeCreditCancelled}}, "")
		if err != nil {
			return err
		}
		if l, ok := d.first(ctx, c); !ok || l.dead {
			return nil
		}
		decided = events.TypeCreditCancelled
	}
	if decided != events.TypeCreditOK {
		if p.TrackRefused && queued == nil {
			return d.track(ctx, p, index, events.TypeShipmentNG)
		}
		return nil
	}
	for range p.Track {
		if err := d.track(ctx, p, index, events.TypeShipmentOK); err != nil {
			return err
		}
	}
	if p.Invoice {
		want := events.TypeInvoiceOK
		if !p.Enclosed || o.IsGift() { // a gift's invoice is mailed, never enclosed (API.md §9)
			want = events.TypeInvoiceNG
		}
		inv, err := d.send(ctx, events.TypeInvoiceRequested, p.Shop, p.OrderID, events.InvoiceRequest{ShopID: p.Shop, OrderID: p.OrderID},
			Want{Direct: []string{want}}, "")
		if err != nil {
			return err
		}
		d.first(ctx, inv)
	}
	return nil
}

// track enters a new tracking number and waits for its outcome.
func (d *driver) track(ctx context.Context, p *plan, index int, want string) error {
	t, err := d.sendTracking(ctx, p, index, want)
	if err != nil {
		return err
	}
	d.first(ctx, t)
	return nil
}

func (d *driver) sendTracking(ctx context.Context, p *plan, index int, want string) (*Event, error) {
	// Digits only (no hyphens), so that a tracking number never looks like a phone number.
	number := fmt.Sprintf("4%07d%04d", index, d.trackSeq.Add(1)%10000)
	carrier := []string{"yamato", "sagawa", "12", "yupack"}[index%4]
	data := events.Tracking{ShopID: p.Shop, OrderID: p.OrderID, Carrier: carrier, TrackingNumber: number}
	if index%3 == 0 {
		data.InvoiceDate = "2026-11-27"
	}
	return d.send(ctx, events.TypeTrackingEntered, p.Shop, p.OrderID, data, Want{Direct: []string{want}}, number)
}

// watch follows RESULTS and DLQ from their start and feeds the live views until ctx ends. The
// consumers are ordered consumers, which recreate themselves after a NATS restart or a new
// stream leader and go on from the last message seen.
func (d *driver) watch(ctx context.Context) error {
	for _, w := range []struct {
		stream string
		fn     func(jetstream.Msg)
	}{{"RESULTS", d.onOutcome}, {"DLQ", d.onDeadLetter}} {
		cons, err := d.s.js.OrderedConsumer(ctx, w.stream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return fmt.Errorf("following %s: %w", w.stream, err)
		}
		cc, err := cons.Consume(w.fn)
		if err != nil {
			return fmt.Errorf("following %s: %w", w.stream, err)
		}
		go func() { <-ctx.Done(); cc.Stop() }()
	}
	return nil
}

func (d *driver) onOutcome(m jetstream.Msg) {
	o, ok := parseOutcome(m)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	keys := []string{o.Causation}
	if o.Tracking != "" {
		keys = []string{d.byTracking[o.Shop+"/"+o.Order+"/"+o.Tracking]}
	}
	// A credit.cancelled under a credit check's cause (a re-check found the transaction
	// cancelled) answers the order's cancel too (see Check).
	if o.Type == events.TypeCreditCancelled && d.credits[o.Causation] {
		keys = append(keys, d.cancels[o.Shop+"/"+o.Order])
	}
	for _, key := range keys {
		if l := d.live[key]; l != nil {
			l.outs = append(l.outs, o)
			close(l.ch)
			l.ch = make(chan struct{})
		}
	}
}

func (d *driver) onDeadLetter(m jetstream.Msg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if l := d.live[d.byBody[sha256.Sum256(m.Data())]]; l != nil {
		l.dead = true
		close(l.ch)
		l.ch = make(chan struct{})
	}
}

// parseOutcome reads a RESULTS message.
func parseOutcome(m jetstream.Msg) (Outcome, bool) {
	var env events.Envelope
	if err := json.Unmarshal(m.Data(), &env); err != nil {
		return Outcome{}, false
	}
	var data struct {
		Shop     string `json:"shop_id"`
		Order    string `json:"order_id"`
		TxID     string `json:"transaction_id"`
		Review   string `json:"review"`
		Billed   int64  `json:"billed_amount"`
		Tracking string `json:"tracking_number"`
		Report   string `json:"report"`
	}
	_ = json.Unmarshal(env.Data, &data)
	o := Outcome{MsgID: m.Headers().Get(jetstream.MsgIDHeader), Subject: m.Subject(), Type: env.Type, ID: env.ID,
		Causation: env.CausationID, Shop: data.Shop, Order: data.Order, TxID: data.TxID, Review: data.Review,
		Billed: data.Billed, Tracking: data.Tracking, Report: data.Report}
	if md, err := m.Metadata(); err == nil {
		o.Seq = md.Sequence.Stream
	}
	return o, true
}

// readStream reads every message of a stream, from the first, with an ordered consumer.
func readStream(ctx context.Context, js jetstream.JetStream, name string) ([]jetstream.Msg, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var out []jetstream.Msg
	deadline := time.Now().Add(60 * time.Second)
	for uint64(len(out)) < info.State.Msgs {
		if time.Now().After(deadline) {
			return out, fmt.Errorf("reading %s: %d of %d messages after 60s", name, len(out), info.State.Msgs)
		}
		batch, err := c.Fetch(min(int(info.State.Msgs)-len(out), 500), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return out, err
		}
		for m := range batch.Messages() {
			out = append(out, m)
		}
	}
	return out, nil
}

// collect reads RESULTS and DLQ in full and returns them, the dead letters attributed to events
// by their body.
func (d *driver) collect(ctx context.Context) ([]Outcome, []DeadLetter, error) {
	res, err := readStream(ctx, d.s.js, "RESULTS")
	if err != nil {
		return nil, nil, err
	}
	var outs []Outcome
	for _, m := range res {
		o, ok := parseOutcome(m)
		if !ok {
			o = Outcome{MsgID: m.Headers().Get(jetstream.MsgIDHeader), Subject: m.Subject(), Type: "(not a CloudEvent)"}
		}
		outs = append(outs, o)
	}
	dl, err := readStream(ctx, d.s.js, "DLQ")
	if err != nil {
		return nil, nil, err
	}
	var dead []DeadLetter
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range dl {
		h := m.Headers()
		seq, _ := strconv.ParseUint(h.Get(dlq.HeaderOriginalSequence), 10, 64)
		x := DeadLetter{Subject: m.Subject(), Reason: h.Get(dlq.HeaderReason), Error: h.Get(dlq.HeaderError),
			OrigStream: h.Get(dlq.HeaderOriginalStream), OrigSeq: seq, Event: d.byBody[sha256.Sum256(m.Data())]}
		if md, err := m.Metadata(); err == nil {
			x.Seq = md.Sequence.Stream
		}
		dead = append(dead, x)
	}
	return outs, dead, nil
}

// ledger returns the events published so far.
func (d *driver) ledger() []*Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*Event, len(d.order))
	for i, e := range d.order {
		c := *e
		c.Msgs = append([]Msg(nil), e.Msgs...)
		out[i] = &c
	}
	return out
}
