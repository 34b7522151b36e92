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

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sampledata"
	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
	"github.com/atodene-worker/atodene-worker/internal/tools/stack"
)

// driver runs the workload of a scenario: it publishes each order's events one after the other,
// the next once the outcome of the previous one is in RESULTS (as an order-management system
// would), and keeps the ledger of what it published.
type driver struct {
	s   *stack.Stack
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
	// sent holds what was published of each event (the first copy), so that it can be sent again
	// after the stream that held it was lost.
	sent map[string]sentMsg
	// held names a dead-letter reason that does not end an event's script: the scenario replays
	// such letters, and the script waits for the outcome of the replay (until release).
	held string
	// stopWatch stops following RESULTS and DLQ.
	stopWatch context.CancelFunc
	// gate is held for reading by every publish attempt until its result is recorded; a
	// scenario about to lose a stream holds it for writing (closeGate), so that what the stream
	// accepted is known exactly when it is lost.
	gate sync.RWMutex

	started   atomic.Int64 // orders whose script has begun
	finished  atomic.Int64
	published atomic.Int64
	late      sync.WaitGroup // late copies still to publish
	lateCount atomic.Int64
	trackSeq  atomic.Int64
}

// sentMsg is the first copy of an event as published.
type sentMsg struct {
	subject, msgID string
	body           []byte
}

// liveEvent is what the driver has seen of an event so far.
type liveEvent struct {
	outs []Outcome
	dead bool
	ch   chan struct{} // closed and replaced on every change
}

func newDriver(s *stack.Stack, gen *generator, tag string) *driver {
	return &driver{s: s, gen: gen, tag: tag, events: map[string]*Event{}, byBody: map[[32]byte]string{},
		live: map[string]*liveEvent{}, byTracking: map[string]string{}, cancels: map[string]string{}, credits: map[string]bool{},
		sent: map[string]sentMsg{}}
}

// newEventID returns a fresh CloudEvent id.
func newEventID() string { return randomHex(16) }

// register adds an event to the ledger before it is published (with msgID), so that its outcomes
// can be attributed as soon as they appear.
func (d *driver) register(e *Event, body []byte, msgID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.events[e.Key]; !ok {
		d.events[e.Key] = e
		d.order = append(d.order, e)
		d.live[e.Key] = &liveEvent{ch: make(chan struct{})}
		d.sent[e.Key] = sentMsg{subject: e.Subject, msgID: msgID, body: body}
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
		d.gate.RLock()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := d.s.JS.PublishMsg(pctx, msg, jetstream.WithMsgID(msgID))
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
		}
		d.gate.RUnlock()
		if err == nil {
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

// send publishes an inbound event of the workload (in three copies when dup is set), with a fresh
// id and the time now.
func (d *driver) send(ctx context.Context, typ, shop, order string, data any, want Want, tracking string) (*Event, error) {
	return d.sendAt(ctx, time.Now(), typ, shop, order, data, want, tracking)
}

// sendAt is send with the event's CloudEvents time given.
func (d *driver) sendAt(ctx context.Context, at time.Time, typ, shop, order string, data any, want Want, tracking string) (*Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	id := newEventID()
	body, err := json.Marshal(events.Envelope{SpecVersion: events.SpecVersion, ID: id, Source: eventSource(d.s.Name),
		Type: typ, Time: at.Format(time.RFC3339), DataContentType: "application/json", Data: raw})
	if err != nil {
		return nil, err
	}
	subject := events.Subject(typ, shop)
	e := &Event{Key: id, Type: typ, Subject: subject, Shop: shop, Order: order, Tracking: tracking, Want: want}
	d.register(e, body, id)
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

// answered reports whether the event has an outcome or a dead letter.
func (d *driver) answered(e *Event) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.live[e.Key]
	return l.dead || len(l.outs) > 0
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
	if p.Track > 0 && p.ShipAfter > 0 {
		if err := childproc.Sleep(ctx, p.ShipAfter); err != nil {
			return nil
		}
	}
	for range p.Track {
		if err := d.track(ctx, p, index, events.TypeShipmentOK); err != nil {
			return err
		}
	}
	if p.Invoice {
		want := events.TypeInvoiceOK
		if !p.Enclosed || o.IsGift() { // a gift's invoice is mailed, never enclosed (docs/protocol.md#business-rules)
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

// watch follows RESULTS and DLQ from their start and feeds the live views until ctx ends or
// stopWatching. The consumers are ordered consumers, which recreate themselves after a NATS
// restart or a new stream leader and go on from the last message seen.
func (d *driver) watch(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	d.mu.Lock()
	d.stopWatch = cancel
	d.mu.Unlock()
	for _, w := range []struct {
		stream string
		fn     func(jetstream.Msg)
	}{{"RESULTS", d.onOutcome}, {"DLQ", d.onDeadLetter}} {
		cons, err := d.s.JS.OrderedConsumer(ctx, w.stream, jetstream.OrderedConsumerConfig{})
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

// stopWatching stops following RESULTS and DLQ: before their streams are lost, since an ordered
// consumer would go on from its last sequence on the new ones and miss their beginning.
func (d *driver) stopWatching() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopWatch != nil {
		d.stopWatch()
	}
}

func (d *driver) onOutcome(m jetstream.Msg) {
	o, ok := parseOutcome(m)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addOutcome(o)
}

// addOutcome feeds an outcome to the live views of the events it answers. d.mu must be held.
func (d *driver) addOutcome(o Outcome) {
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
	d.addDeadLetter(m.Headers().Get(dlq.HeaderReason), d.byBody[sha256.Sum256(m.Data())], m.Subject())
}

// addDeadLetter ends the live view of the event a dead letter holds (key, "" for none). d.mu must
// be held.
func (d *driver) addDeadLetter(reason, key, subject string) {
	if d.held != "" && reason == d.held {
		return // to be replayed: its outcome comes later
	}
	if l := d.live[key]; l != nil {
		d.end(l)
		return
	}
	// A timer of the worker's (a re-check, a parked event's deadline): its order goes to an
	// operator, so nothing more comes for the order's events that wait.
	if order := timerOrder(subject); order != "" {
		for _, e := range d.order {
			if l := d.live[e.Key]; e.Shop+"/"+e.Order == order && !l.dead {
				d.end(l)
			}
		}
	}
}

// feed adds what RESULTS and DLQ held, read in full, to the live views: what the watcher may not
// have delivered yet when the streams are about to be lost.
func (d *driver) feed(read *streamsRead) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range read.outs {
		d.addOutcome(o)
	}
	for _, x := range read.dead {
		d.addDeadLetter(x.Reason, x.Event, x.Subject)
	}
}

// closeGate waits for the publishes under way to be recorded and holds new ones until openGate:
// while a scenario loses a stream, so that unanswered lists exactly what the stream held.
func (d *driver) closeGate() { d.gate.Lock() }
func (d *driver) openGate()  { d.gate.Unlock() }

// end marks an event's live view as ended by a dead letter. d.mu must be held.
func (d *driver) end(l *liveEvent) {
	l.dead = true
	close(l.ch)
	l.ch = make(chan struct{})
}

// hold makes dead letters with the reason wait for their replay instead of ending their event's
// script.
func (d *driver) hold(reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.held = reason
}

// release ends the scripts still waiting for the replay of a held dead letter: the events
// unanswered yet that have one in dead.
func (d *driver) release(dead []DeadLetter) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.held = ""
	for _, x := range dead {
		if l := d.live[x.Event]; l != nil && !l.dead && len(l.outs) == 0 {
			d.end(l)
		}
	}
}

// unanswered returns the events a stream accepted that have neither an outcome nor a dead letter
// yet: what a stream that was lost held unanswered (called with the gate closed).
func (d *driver) unanswered() []*Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*Event
	for _, e := range d.order {
		if l := d.live[e.Key]; len(e.Msgs) > 0 && !l.dead && len(l.outs) == 0 {
			out = append(out, e)
		}
	}
	return out
}

// resend publishes events again as their first copy was (same body, same Nats-Msg-Id): after the
// stream that held them was lost, as an importer that reconciles with what it got back does. An
// event the worker was handling gets a copy it must recognise by its id.
func (d *driver) resend(ctx context.Context, evs []*Event) error {
	for _, e := range evs {
		d.mu.Lock()
		m := d.sent[e.Key]
		d.mu.Unlock()
		if err := d.publishRaw(ctx, e, m.subject, m.body, m.msgID); err != nil {
			return err
		}
	}
	return nil
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
		Reauth   bool   `json:"reauthorized"`
		Errors   []struct {
			Point string `json:"point"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(env.Data, &data)
	o := Outcome{MsgID: m.Headers().Get(jetstream.MsgIDHeader), Subject: m.Subject(), Type: env.Type, ID: env.ID,
		Causation: env.CausationID, Shop: data.Shop, Order: data.Order, TxID: data.TxID, Review: data.Review,
		Billed: data.Billed, Tracking: data.Tracking, Report: data.Report, Reauthorized: data.Reauth}
	if len(data.Errors) > 0 {
		o.Problem = data.Errors[0].Point
	}
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
	res, err := readStream(ctx, d.s.JS, "RESULTS")
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
	dead, err := d.deadLetters(ctx, "")
	return outs, dead, err
}

// deadLetters reads DLQ in full and returns its letters with the given reason (all of them for
// ""), attributed to events by their body.
func (d *driver) deadLetters(ctx context.Context, reason string) ([]DeadLetter, error) {
	dl, err := readStream(ctx, d.s.JS, "DLQ")
	if err != nil {
		return nil, err
	}
	var dead []DeadLetter
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range dl {
		h := m.Headers()
		if reason != "" && h.Get(dlq.HeaderReason) != reason {
			continue
		}
		seq, _ := strconv.ParseUint(h.Get(dlq.HeaderOriginalSequence), 10, 64)
		x := DeadLetter{Subject: m.Subject(), Reason: h.Get(dlq.HeaderReason), Error: h.Get(dlq.HeaderError),
			OrigStream: h.Get(dlq.HeaderOriginalStream), OrigSeq: seq, Event: d.byBody[sha256.Sum256(m.Data())]}
		if md, err := m.Metadata(); err == nil {
			x.Seq = md.Sequence.Stream
		}
		dead = append(dead, x)
	}
	return dead, nil
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

// eventSource is the CloudEvents source of a scenario's events.
func eventSource(scenario string) string { return "reliability/" + scenario }
