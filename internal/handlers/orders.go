package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Provider is what the handlers need of ATODENE; *atodene.Client implements it.
type Provider interface {
	Register(ctx context.Context, o atodene.Order) (atodene.Registration, error)
	GetAuthori(ctx context.Context, transactionID string) (atodene.Screening, error)
	Modify(ctx context.Context, transactionID string, o atodene.Order) (atodene.Change, error)
	Cancel(ctx context.Context, transactionID string) error
	ReportShipment(ctx context.Context, s atodene.Shipment) error
	InvoiceData(ctx context.Context, transactionID string) (atodene.Invoice, error)
}

// Shop is one configured shop as the handlers use it.
type Shop struct {
	ID       string
	Provider Provider
	Fees     fees.Table
	Service  string // default invoice delivery, atodene.ServiceSeparate or ServiceEnclosed
	// OrderIDPrefix is written before each order_id to make its shopOrderId, for shops that share
	// an ATODENE account; "" for none.
	OrderIDPrefix string
}

// Outcomes publishes outcome events and returns once the stream stored them.
type Outcomes interface {
	Publish(ctx context.Context, subject, msgID string, body []byte) error
}

// DeadLetters stores dead letters and returns once the stream stored them; *dlq.Writer
// implements it.
type DeadLetters interface {
	Write(ctx context.Context, l dlq.Letter) error
}

// Orders handles the events of an order's life (DESIGN.md §5–§8): the credit check, its changes
// and cancellation, polling under review, shipment reports and invoice data. The handlers of one
// order are serialized across all workers by a lease; different orders run in parallel. Every
// event handled is recorded in the order's history, with what it did.
type Orders struct {
	Store    *orderstate.Store
	Shops    func(id string) (*Shop, bool)
	Outcomes Outcomes
	Polls    Polls
	Poll     PollPolicy
	// DeadLetters stores the dead letters of parked events that waited too long.
	DeadLetters DeadLetters
	// ParkLimit is how long an event may wait for its order to get where it applies before it is
	// dead-lettered (DESIGN.md §7). Default 7 days.
	ParkLimit time.Duration
	LeaseTTL  time.Duration
	Now       func() time.Time
	Logger    *zap.Logger
}

// DefaultParkLimit is how long a parked event waits by default.
const DefaultParkLimit = 7 * 24 * time.Hour

func (o *Orders) parkLimit() time.Duration {
	if o.ParkLimit > 0 {
		return o.ParkLimit
	}
	return DefaultParkLimit
}

// lease takes the order's lease for d. An event that finds it held is queued in the order's inbox
// (orderstate.ErrQueued) for the holder to apply, so that a burst of events for one order holds
// one handler, not one per event. Timers, which have no message to queue, and events the inbox
// has no room for, wait for the lease instead (20 ms doubling to 1 s, at most the lease's lifetime:
// a crashed holder's lease expires).
func (o *Orders) lease(ctx context.Context, shop, order string, d decision) (*orderstate.Lease, error) {
	take := orderstate.Take{TTL: o.LeaseTTL, First: d.first}
	if d.ev.ID != "" {
		take.EventKey = d.ev.Key()
		if d.ev.Subject != "" && len(d.ev.Body) <= maxParkedBody {
			q := o.parked(d.ev, "the order's lease")
			take.Queue = &q
		}
	}
	wait := 20 * time.Millisecond
	deadline := o.Now().Add(o.LeaseTTL)
	for {
		take.Now = o.Now()
		lease, err := o.Store.AcquireLease(ctx, shop, order, take)
		if !errors.Is(err, orderstate.ErrLeaseHeld) {
			return lease, err
		}
		if o.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// decision is how one event changes its order.
type decision struct {
	ev Meta
	// credit marks order.created, .updated and .cancelled: one older in the stream than the last
	// applied to the order changes nothing, so that the shop's last word stands.
	credit bool
	// waits, if set, says what the order must get to before the event applies ("" when it
	// applies now). An event that must wait is parked, never retried (DESIGN.md §7).
	waits func(st orderstate.State) string
	// apply decides, calling ATODENE as needed.
	apply func(ctx context.Context, r *run, st orderstate.State) change
	// first, if not nil, is the state of an order seen for the first time, written with the lease.
	first *orderstate.State
}

// change is what a decision came to: the next state (nil: nothing to write), the error to
// return after writing it, and what the event did, for the order's history ("" records nothing).
type change struct {
	next *orderstate.State
	err  error
	did  string
}

func keep(did string) change                          { return change{did: did} }
func write(st orderstate.State, did string) change    { return change{next: &st, did: did} }
func fail(err error) change                           { return change{err: err} }
func writeThen(st orderstate.State, err error) change { return change{next: &st, err: err} }

// withOrder applies d to the order holding the order's lease, after finishing what an earlier,
// interrupted handler left undone and applying, oldest first, the events queued in the order's
// inbox while another handler held the lease; after d, it applies those queued meanwhile. Each
// event is a step: its decision is written with its history entry, then settled (parked events
// that can apply now are applied, the poll scheduled, a queued shipment reported, the outbox
// published), then committed.
//
// Every event is recorded as processed in its commit, once its decision succeeded and its effects
// are durable, and an event already recorded changes nothing: a copy of an event that got past the
// idempotency check while another delivery of it was still running must not apply it a second
// time after a later event of the order (a tracking number entered again after its correction).
//
// Taking the lease reads the state and the event record, and the last write records the event
// and releases the lease: a new order registered with ATODENE costs three Redis round trips
// (lease with the intent, answer with its outbox and history entry, commit).
func (o *Orders) withOrder(ctx context.Context, shop *Shop, order string, d decision) error {
	lease, err := o.lease(ctx, shop.ID, order, d)
	if errors.Is(err, orderstate.ErrQueued) {
		// The holder applies it; if the holder dies first, this timer's handler does.
		return o.Polls.Schedule(ctx, PollRequest{Shop: shop.ID, OrderID: order, Kind: TimerInbox}, o.Now().Add(o.LeaseTTL))
	}
	if err != nil {
		return err
	}
	held := true
	defer func() {
		if held {
			_ = lease.Release(context.WithoutCancel(ctx))
		}
	}()

	r := newRun(shop)
	r.fresh = lease.Created
	st, own, ownDone, drained := lease.State, error(nil), false, false
	var next *orderstate.Parked
	if lease.Drain {
		if next, err = lease.Next(ctx); err != nil {
			return err
		}
	}
	budget := o.Now().Add(o.LeaseTTL / 4) // bounds the inbox a handler applies, well within its timeout
	for {
		var entry *orderstate.Parked
		switch {
		case next == nil && ownDone:
			held = false // the last commit released the lease
			return own
		case next == nil:
			done := lease.EventDone
			if drained && d.ev.ID != "" {
				// A copy of this event may have been in the inbox, and applied just now.
				if done, err = o.Store.EventDone(ctx, d.ev.Key()); err != nil {
					return err
				}
			}
			st, next, own, err = o.step(ctx, r, order, lease, d, st, done, nil)
			ownDone = true
		case o.Now().After(budget):
			// Another handler goes on with the rest at once.
			err = o.Polls.Schedule(ctx, PollRequest{Shop: shop.ID, OrderID: order, Kind: TimerInbox}, o.Now())
			if err == nil && !ownDone {
				err = fmt.Errorf("order %s: its inbox holds more than one handler applies; this event is retried", order)
			}
			return errors.Join(own, err)
		default:
			entry, drained = next, true
			st, next, err = o.applyInbox(ctx, r, order, lease, st, entry)
		}
		r.fresh = false
		if err == nil {
			continue
		}
		if entry == nil || !ownDone || own != nil {
			return err // this event is retried, and the inbox with it
		}
		// This event is done; the inbox entry that failed is retried by a timer's handler.
		if o.Logger != nil {
			o.Logger.Warn("applying an order's inbox failed; retried", zap.String("shop", shop.ID), zap.String("order", order), zap.Error(err))
		}
		return o.Polls.Schedule(ctx, PollRequest{Shop: shop.ID, OrderID: order, Kind: TimerInbox}, o.Now().Add(time.Second))
	}
}

// step applies one event under the lease: it settles st, decides, writes the decision with the
// event's history entry, settles again and commits. applied is the inbox entry the event came
// from, nil for the message being handled; done says the event was processed already. It returns
// the state after the event, the inbox's next entry when the lease is kept for it, and the
// event's own error: a permanent failure for the consume loop to dead-letter, or a transient one
// to retry (then the lease is released). An inbox entry's permanent failure is dead-lettered
// here; its transient failure is err, and the entry stays first in the inbox. err is a failure of
// the step itself.
func (o *Orders) step(ctx context.Context, r *run, order string, lease *orderstate.Lease, d decision, st orderstate.State, done bool, applied *orderstate.Parked) (cur orderstate.State, next *orderstate.Parked, result, err error) {
	if st, err = o.settleAndPut(ctx, r, order, st); err != nil {
		return st, nil, nil, err
	}
	c := keep("duplicate: processed already")
	if !done {
		c = o.decide(ctx, r, order, d, st)
	}
	reason, permanent := DeadLetterReason(c.err)
	var entries []orderstate.Entry
	switch {
	case c.err == nil:
		if c.did != "" {
			entries = append(entries, o.entry(d.ev, c, r, st))
		}
	case applied == nil:
		// A transient failure is retried; a permanent one is recorded with its dead letter.
	case permanent:
		if err := o.deadLetterParked(ctx, *applied, reason, c.err); err != nil {
			return st, nil, nil, err
		}
		c.did = "dead-lettered: " + reason + ": " + c.err.Error()
		entries = append(entries, o.entry(d.ev, c, r, st))
	default:
		return st, nil, nil, c.err
	}
	cur = st
	var last *orderstate.State
	if c.next != nil {
		c.next.History = append(c.next.History, entries...)
		entries = nil
		if cur, err = o.Store.Put(ctx, r.shop.ID, order, *c.next, o.Now()); err != nil {
			return st, nil, nil, err
		}
		settled, dirty, err := o.settle(ctx, r, order, cur)
		if err != nil {
			return cur, nil, nil, err
		}
		if dirty {
			last = &settled
		}
	}
	// An event that failed is not recorded as processed: its dead letter can be replayed.
	commit := orderstate.Commit{State: last, Entries: entries, Applied: applied, Done: !done && c.err == nil,
		Release: c.err != nil && !permanent}
	written, next, err := lease.Commit(ctx, commit, o.Now())
	if err != nil {
		return cur, nil, nil, err
	}
	if last != nil {
		cur = written
	}
	if applied != nil {
		return cur, next, nil, nil
	}
	return cur, next, c.err, nil
}

// applyInbox applies an event that was queued in the order's inbox while another handler held the
// lease, as if it were being handled now.
func (o *Orders) applyInbox(ctx context.Context, r *run, order string, lease *orderstate.Lease, st orderstate.State, p *orderstate.Parked) (orderstate.State, *orderstate.Parked, error) {
	done, err := o.Store.EventDone(ctx, p.Key)
	if err != nil {
		return st, p, err
	}
	d, derr := o.storedDecision(r.shop, *p)
	if derr != nil {
		d = decision{ev: Meta{Type: p.Type, Source: p.Source, ID: p.ID}, apply: func(context.Context, *run, orderstate.State) change { return fail(derr) }}
	}
	cur, next, _, err := o.step(ctx, r, order, lease, d, st, done, p)
	return cur, next, err
}

// decide applies d to st: nothing for an event older than the order's last credit event, parking
// for one that must wait, else d's own decision.
func (o *Orders) decide(ctx context.Context, r *run, order string, d decision, st orderstate.State) change {
	if d.credit && d.ev.Seq != 0 && d.ev.Seq <= st.CreditSeq {
		return keep("no change: older in the stream than the order's last credit event")
	}
	if d.waits != nil {
		if waits := d.waits(st); waits != "" {
			return o.park(st, order, d, waits)
		}
	}
	c := d.apply(ctx, r, st)
	if d.credit && c.next != nil && d.ev.Seq > c.next.CreditSeq {
		c.next.CreditSeq = d.ev.Seq
	}
	return c
}

// entry is the history entry of an event that came to c from st: the calls made since the last
// entry of the run, and the outcomes it added to st's outbox.
func (o *Orders) entry(ev Meta, c change, r *run, st orderstate.State) orderstate.Entry {
	e := orderstate.Entry{At: o.Now().UTC(), Type: ev.Type, Source: ev.Source, ID: ev.ID, Did: c.did,
		Calls: r.calls, Status: st.Status}
	if c.next != nil {
		e.Status = c.next.Status
		for _, out := range c.next.Outbox[min(len(st.Outbox), len(c.next.Outbox)):] {
			e.Outcomes = append(e.Outcomes, out.Type())
		}
	}
	r.calls = nil // the next entry of this run lists its own calls
	return e
}

// settleAndPut settles st and writes what settling changed.
func (o *Orders) settleAndPut(ctx context.Context, r *run, order string, st orderstate.State) (orderstate.State, error) {
	next, dirty, err := o.settle(ctx, r, order, st)
	if err != nil || !dirty {
		return st, err
	}
	return o.Store.Put(ctx, r.shop.ID, order, next, o.Now())
}

// settle makes the state's promises durable: parked events that can apply now are applied, the
// deadline of those still waiting has its timer, the poll of a pending order is scheduled, a
// queued shipment of an OK order is reported, and the outbox is published. It returns the state
// with these done, and whether that differs from st. Repeating it is harmless: a schedule
// replaces the earlier one, and outcome message IDs are deterministic.
func (o *Orders) settle(ctx context.Context, r *run, order string, st orderstate.State) (orderstate.State, bool, error) {
	dirty := false
	if len(st.Parked) > 0 {
		next, applied, err := o.applyParked(ctx, r, order, st)
		if err != nil {
			return st, false, err
		}
		st, dirty = next, applied
	}
	if deadline := o.parkDeadline(st); !deadline.Equal(st.ParkDeadline) {
		if !deadline.IsZero() {
			if err := o.Polls.Schedule(ctx, PollRequest{Shop: r.shop.ID, OrderID: order, Kind: TimerParked}, deadline); err != nil {
				return st, false, err
			}
		}
		st.ParkDeadline, dirty = deadline, true
	}
	if st.Status == orderstate.StatusPending && !st.PollScheduled {
		at := o.Now().Add(o.Poll.Delay(st.PollAttempt))
		if err := o.Polls.Schedule(ctx, PollRequest{Shop: r.shop.ID, OrderID: order, Seq: st.PollSeq}, at); err != nil {
			return st, false, err
		}
		st.PollScheduled, dirty = true, true
	}
	if st.Status == orderstate.StatusOK && st.Shipment != nil && !st.Shipment.Reported {
		next, err := o.reportShipment(ctx, r.shop, order, st, nil, st.CausedBy)
		if err != nil {
			return st, false, err
		}
		did := "reported the tracking number queued while the credit was not yet OK"
		next.History = append(next.History, o.entry(Meta{Type: "queued shipment"}, change{next: &next, did: did}, r, st))
		st, dirty = next, true
	}
	for _, out := range st.Outbox {
		if err := o.Outcomes.Publish(ctx, out.Subject, out.MsgID, out.Body); err != nil {
			return st, false, err
		}
		dirty = true
	}
	st.Outbox = nil
	return st, dirty, nil
}

var jst = time.FixedZone("JST", 9*60*60)

// emit renders an outcome event into the state's outbox. Its message ID is derived from the
// order, the version of the state that records it and its type, so a retry of the same step
// repeats it and a later decision gets a new one.
func (o *Orders) emit(st *orderstate.State, shop, order, eventType, causedBy string, data any) {
	msgID := fmt.Sprintf("%s:%s:%d:%s", shop, order, st.Version+1, eventType)
	body, err := events.NewOutcome(msgID, eventType, causedBy, o.Now(), data)
	if err != nil {
		panic(fmt.Sprintf("handlers: encoding %s: %v", eventType, err)) // plain structs always encode
	}
	st.Outbox = append(st.Outbox, orderstate.Outcome{Subject: events.Subject(eventType, shop), MsgID: msgID, Body: body})
}

// emitCredit emits the credit.* event that st's status calls for. normalized lists the values
// the worker put into ATODENE's form, for a registration or a change.
func (o *Orders) emitCredit(st *orderstate.State, shop, order, eventType, causedBy string, normalized ...events.Normalized) {
	data := events.Credit{
		ShopID: shop, OrderID: order, TransactionID: st.TransactionID,
		Result: eventType[len("credit."):], Review: st.Review,
		Fee: st.Fee, BilledAmount: st.BilledAmount, Reasons: st.Reasons,
		DecidedAt:  o.Now().In(jst).Format(time.RFC3339),
		Normalized: normalized,
	}
	for _, e := range st.Errors {
		data.Errors = append(data.Errors, atodene.ProviderError(e))
	}
	o.emit(st, shop, order, eventType, causedBy, data)
}

func (o *Orders) shop(id string) (*Shop, error) {
	shop, ok := o.Shops(id)
	if !ok {
		return nil, Permanent(ReasonUnknownShop, fmt.Errorf("shop %q is not configured", id))
	}
	return shop, nil
}

func decisionStatus(d atodene.Decision) orderstate.Status {
	switch d {
	case atodene.DecisionOK:
		return orderstate.StatusOK
	case atodene.DecisionNG:
		return orderstate.StatusNG
	}
	return orderstate.StatusPending
}

func creditType(s orderstate.Status) string {
	switch s {
	case orderstate.StatusOK:
		return events.TypeCreditOK
	case orderstate.StatusNG:
		return events.TypeCreditNG
	case orderstate.StatusCancelled:
		return events.TypeCreditCancelled
	case orderstate.StatusInvalid:
		return events.TypeCreditInvalid
	}
	return events.TypeCreditPending
}

// startPolling makes the next write schedule a fresh series of re-checks.
func (o *Orders) startPolling(st *orderstate.State) {
	st.PollSince, st.PollSeq, st.PollAttempt, st.PollScheduled = o.Now(), st.PollSeq+1, 0, false
}

func providerErrors(errs []atodene.ProviderError) []orderstate.Error {
	out := make([]orderstate.Error, len(errs))
	for i, e := range errs {
		out[i] = orderstate.Error(e)
	}
	return out
}

func statusWord(s orderstate.Status) string {
	if s == "" {
		return "none"
	}
	return string(s)
}
