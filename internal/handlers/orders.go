package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Provider is what the handlers need of ATODENE; *atodene.Client implements it.
type Provider interface {
	Register(ctx context.Context, req atodene.Request) (atodene.Registration, error)
	GetAuthori(ctx context.Context, transactionID string) (atodene.Screening, error)
	Modify(ctx context.Context, transactionID string, req atodene.Request) (atodene.Change, error)
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
	// ReauthorizeAfter is how long after ATODENE approved an order's transaction the worker
	// re-authorizes it if no shipment is reported by then (docs/lifecycle.md#re-authorization);
	// 0 never re-authorizes.
	ReauthorizeAfter time.Duration
}

// Outcomes publishes outcome events and returns once the stream stored them.
type Outcomes interface {
	Publish(ctx context.Context, subject, msgID string, body []byte) error
}

// DeadLetters stores dead letters and returns once the stream stored them; the worker writes
// them with a *dlq.Writer.
type DeadLetters interface {
	Write(ctx context.Context, l DeadLetter) error
}

// Orders handles the events of an order's life (docs/lifecycle.md): the credit check, its changes
// and cancellation, polling under review, shipment reports and invoice data. The handlers of one
// order are serialized across all workers by a lease; different orders run in parallel. Every
// event handled is recorded in the order's history, with what it did. Make one with NewOrders.
type Orders struct {
	OrdersConfig
	// Refusals stops the calls of a shop whose ATODENE account is refused; its Snapshot says which.
	Refusals Refusals
}

// OrdersConfig is what Orders needs. Every field is required but Kept and LeaseHeld: the worker fills them from
// its settings, whose defaults internal/config holds (docs/configuration.md#settings).
type OrdersConfig struct {
	Store    *orderstate.Store
	Shops    func(id string) (*Shop, bool)
	Outcomes Outcomes
	Polls    Polls
	Poll     PollPolicy
	// DeadLetters stores the dead letters of parked events that waited too long.
	DeadLetters DeadLetters
	// ParkLimit is how long an event may wait for its order to get where it applies before it is
	// dead-lettered (docs/lifecycle.md#parked-events; -park-limit).
	ParkLimit time.Duration
	// MaxAttempts is how many times an event kept by the worker (queued in the order's inbox, or
	// parked) is tried before a transient failure dead-letters it as exhausted, as the consumer's
	// delivery limit does for a message (-max-deliveries).
	MaxAttempts int
	// Kept keeps a copy of each event acknowledged while only Redis holds it (see Kept); nil
	// keeps none.
	Kept Kept
	// PollHoldAhead is how far ahead a re-check may be due and still be scheduled in JetStream at
	// once; one due later is held in Redis and handed to JetStream by Handoff that long before it
	// is due (-poll-handoff-ahead). 0 holds none.
	PollHoldAhead time.Duration
	// LeaseTTL is how long an order's lease lasts: longer than any one handling of a message.
	LeaseTTL time.Duration
	// LeaseHeld, if set, is told each time a handler finds its order's lease held by another, with
	// what the event did then: LeaseQueued, LeaseWaited or LeaseWentRound. Default nil: told
	// nothing.
	LeaseHeld func(then string)
	// Reauthorized, if set, is told how each re-authorization ended: ReauthOK, ReauthNG,
	// ReauthPending, ReauthInvalid, ReauthUnknown or ReauthNoData. Default nil: told nothing.
	Reauthorized func(result string)
	Now          func() time.Time
	Logger       *zap.Logger
}

// What an event does when it finds its order's lease held (OrdersConfig.LeaseHeld).
const (
	LeaseQueued    = "queued"     // queued in the order's inbox for the holder to apply
	LeaseWaited    = "waited"     // its handler waited for the lease (a timer's; an event its inbox cannot take, without Kept)
	LeaseWentRound = "went-round" // its inbox could not take it: it goes round through its copy in Kept
)

// leaseHeld tells OrdersConfig.LeaseHeld, if set.
func (o *Orders) leaseHeld(then string) {
	if o.LeaseHeld != nil {
		o.LeaseHeld(then)
	}
}

// NewOrders returns the Orders of cfg, or an error naming every field missing or out of range.
func NewOrders(cfg OrdersConfig) (*Orders, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Orders{OrdersConfig: cfg}, nil
}

func (c OrdersConfig) validate() error {
	var errs []error
	for _, f := range []struct {
		name    string
		missing bool
	}{
		{"Store", c.Store == nil}, {"Shops", c.Shops == nil}, {"Outcomes", c.Outcomes == nil}, {"Polls", c.Polls == nil},
		{"DeadLetters", c.DeadLetters == nil}, {"Now", c.Now == nil}, {"Logger", c.Logger == nil},
	} {
		if f.missing {
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		}
	}
	if c.ParkLimit <= 0 || c.LeaseTTL <= 0 || c.MaxAttempts <= 0 {
		errs = append(errs, fmt.Errorf("ParkLimit %s, LeaseTTL %s and MaxAttempts %d must be positive", c.ParkLimit, c.LeaseTTL, c.MaxAttempts))
	}
	errs = append(errs, c.Poll.validate())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("handlers.OrdersConfig: %w", err)
	}
	return nil
}

// tried is what a transient failure adds to an event's tries: none for a failure of Redis or
// JetStream, which is no fault of the event's (IsInfrastructure).
func tried(err error) int {
	if IsInfrastructure(err) {
		return 0
	}
	return 1
}

// retryDelay is the wait before try number tries+1 of an event the worker keeps: 1 s doubling, at
// most 1 min, as a message's redelivery backoff.
func retryDelay(tries int) time.Duration {
	return min(time.Second<<min(max(tries-1, 0), 6), time.Minute)
}

// lease takes the order's lease for d. An event that finds it held is queued in the order's inbox
// (orderstate.ErrQueued) for the holder to apply, so that a burst of events for one order holds
// one handler, not one per event. An event the inbox has no room for (full) returns
// ErrLeaseHeld when wait is false; otherwise (a timer: an order has a few; or, with no Kept, a
// message too large for the inbox) it waits for the lease (20 ms doubling to 1 s, at most the
// lease's lifetime: a crashed holder's lease expires).
func (o *Orders) lease(ctx context.Context, shop, order string, ev Meta, take orderstate.Take, wait bool) (*orderstate.Lease, error) {
	if ev.ID != "" {
		take.EventKey, take.EventDigest = ev.Key(), ev.digest(order)
	}
	pause, waited := 20*time.Millisecond, false
	deadline := o.Now().Add(o.LeaseTTL)
	for {
		take.Now = o.Now()
		lease, err := o.Store.AcquireLease(ctx, shop, order, take)
		if !errors.Is(err, orderstate.ErrLeaseHeld) || !wait {
			return lease, err
		}
		if !waited {
			o.leaseHeld(LeaseWaited) // once per wait, not per try
			waited = true
		}
		if o.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// decision is how one event changes its order.
type decision struct {
	ev Meta
	// ordered, if set, is the state's record of the last event of its kind applied (credit
	// events: created, updated, cancelled; tracking numbers): one published before it changes
	// nothing, so that the shop's last word stands when events of one order run in parallel.
	ordered *ordering
	// waits, if set, says what the order must get to before the event applies ("" when it
	// applies now). An event that must wait is parked, never retried (docs/lifecycle.md#parked-events).
	waits func(st orderstate.State) string
	// apply decides, calling ATODENE as needed.
	apply func(ctx context.Context, r *run, st orderstate.State) change
	// first, if not nil, is the state of an order seen for the first time, written with the lease.
	first *orderstate.State
	// parkAs is the kind of a parked event, of which an order keeps one (parkTracking, parkCancel).
	parkAs string
	// placed marks a parked event being applied at its place among its order's parked events
	// (applyParked): the events before it are done with, and it is not held behind the others.
	placed bool
	// operator is who asked, for an operator event: recorded in the event's history entry.
	operator string
	// refused, if set (a timer, or an inbox entry applied by a timer's handling), takes over when
	// settling the order, before or after the decision, fails because ATODENE refused the shop's
	// account (the report of a tracking number queued while the credit was under review): given
	// the state as settle left it (its outbox published), it schedules the order's re-check again
	// for when the shop's calls resume (settleRefusedLater) instead of failing the timer.
	refused func(ctx context.Context, r *run, st orderstate.State, cause error) change
	// timer, if set, names the timer in State.RefusedTimers ("poll", "reauth"): the timer's
	// decision, met by no refusal of the account, clears it (clearRefused).
	timer string
}

// change is what a decision came to: the next state (nil: nothing to write), the error to
// return after writing it, and what the event did, for the order's history ("" records nothing).
type change struct {
	next *orderstate.State
	err  error
	did  string
	same bool // the state says what the event says already (see same)
	// repeat marks an order.created that found nothing to do (see repeated).
	repeat bool
}

func keep(did string) change                          { return change{did: did} }
func write(st orderstate.State, did string) change    { return change{next: &st, did: did} }
func fail(err error) change                           { return change{err: err} }
func writeThen(st orderstate.State, err error) change { return change{next: &st, err: err} }

// same is the change of an ordered event that finds the state saying what it says already (the
// same data, the same tracking number, cancelled already): nothing to do, but it is the shop's
// latest word of its kind all the same, and decide records its position, so that an older event
// handled after it is stale (docs/lifecycle.md#events-handled-out-of-order).
func same(did string) change { return change{did: did, same: true} }

// repeated is the change of an order.created that finds nothing to do: the order live, or refused
// with the same data (NG or invalid). A repeat of the creation (an importer's retry, the credit
// check run again) is no word on the order's data, so decide records no credit position for it (an
// order.updated published before it still applies), but records its position and time as the
// order's latest repeated creation (State.RepeatSeq), so that a cancel published before it and
// handled after it does not undo it (beforeRepeat; docs/lifecycle.md#events-handled-out-of-order).
func repeated(did string) change { return change{did: did, repeat: true} }

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
	var queue *orderstate.Parked // the event as an inbox entry, body and all (inInbox); nil for a timer, or a large message without Kept
	if d.ev.ID != "" && d.ev.Subject != "" && (len(d.ev.Body) <= maxParkedBody || o.Kept != nil) {
		q := o.parked(d.ev, "the order's lease", "")
		q.Digest = d.ev.digest(order)    // recorded when the holder applies it
		q.Tries = max(d.ev.Attempt-1, 0) // its deliveries so far count as tries
		queue = &q
	}
	// An event never waits for the lease in a handler slot: a hot order's burst would take them
	// all. One its inbox cannot take goes round instead: its copy in Kept, neither applied nor
	// held in Redis, is published again by the reconciler (after -reconcile-interval), keeping
	// its place among the order's events.
	goRound := o.Kept != nil && d.ev.ID != "" && d.ev.Subject != ""
	take := orderstate.Take{TTL: o.LeaseTTL, First: d.first, MaybeCopy: d.ev.Attempt > 1 || d.ev.Again}
	if queue != nil {
		entry := inInbox(*queue)
		take.Queue = &entry
	}
	copied := false // a copy kept to queue the event, which may then find the lease free
	if queue != nil {
		// Only Redis holds a queued event once its message is acknowledged: its copy comes first.
		take.BeforeQueue = func() error {
			copied = true
			return o.keepCopy(ctx, shop.ID, order, *queue, KeptQueued)
		}
	}
	lease, err := o.lease(ctx, shop.ID, order, d.ev, take, !goRound)
	if errors.Is(err, orderstate.ErrLeaseHeld) && goRound {
		o.leaseHeld(LeaseWentRound)
		o.Logger.Debug("an event for an order whose inbox is full goes round through its copy",
			zap.String("shop", shop.ID), zap.String("order", order), zap.String("event_key", d.ev.Key()))
		return o.keepCopy(ctx, shop.ID, order, o.parked(d.ev, "the order's lease", ""), KeptGoingRound)
	}
	if qe, queued := errors.AsType[*orderstate.QueuedError](err); queued {
		o.leaseHeld(LeaseQueued)
		if qe.Length == 1 {
			// The holder applies it; if the holder dies first, this timer's handler does. Later
			// events find this timer set (and must not push a sooner retry's timer back).
			return o.Polls.Schedule(ctx, PollRequest{Shop: shop.ID, OrderID: order, Kind: TimerInbox}, o.Now().Add(o.LeaseTTL))
		}
		return nil
	}
	if err != nil {
		return err
	}
	held := true
	defer func() {
		if held {
			_ = lease.ReleaseAfter(ctx)
		}
	}()

	r := o.newRun(shop)
	r.fresh = lease.Created
	if queue != nil && d.ev.Attempt < o.MaxAttempts {
		r.keep = queue // on its last delivery, a failure dead-letters its message: no try is added
	}
	r.refusedLater = d.refused
	st, own := lease.State, error(nil)
	var next *orderstate.Parked
	if lease.Drain && queue != nil {
		// The event was put last in the inbox (its copy kept first), behind older events of the
		// order: it is applied in its turn, and its message is done with.
		if next, err = lease.Next(ctx); err != nil {
			return err
		}
	} else {
		if st, next, own, err = o.step(ctx, r, order, lease, d, st, lease.Record, nil); err != nil {
			if copied { // the message is retried in place: its copy is not wanted
				o.droppedUnlessHeld(ctx, shop.ID, order, queue.Key)
			}
			return err
		}
		_, permanent := DeadLetterReason(own)
		kept := RetriedLater(own)
		if copied && !kept {
			// Handled as the message itself (the lease came free as the event was about to queue):
			// its copy is not wanted, whether it was applied, is dead-lettered or is handed back,
			// unless the inbox holds the event's later delivery, queued meanwhile.
			o.droppedUnlessHeld(ctx, shop.ID, order, queue.Key)
		}
		if own != nil && !permanent {
			if kept || next == nil {
				held = false // kept first in the inbox (step's commit let the lease go), or handed back
				return own
			}
			// A timer's failure, or a message's the inbox does not keep (see run.keep): it is retried
			// or dead-lettered as its message; the events queued meanwhile go on at once.
			return errors.Join(own, o.Polls.Schedule(ctx, PollRequest{Shop: shop.ID, OrderID: order, Kind: TimerRetry}, o.Now()))
		}
	}
	budget := o.Now().Add(o.LeaseTTL / 4) // bounds the inbox a handler applies, well within its timeout
	for next != nil {
		switch {
		case next.RetryAt.After(o.Now()):
			// The first event waits for its retry, and the inbox with it (a retry timer handled a
			// moment early comes here too: scheduled again no sooner than EarlyTimerAgain from now).
			return errors.Join(own, o.Polls.Schedule(ctx, PollRequest{Shop: shop.ID, OrderID: order, Kind: TimerRetry}, o.earlyAgain(next.RetryAt)))
		case o.Now().After(budget):
			// Another handler goes on with the rest at once.
			return errors.Join(own, o.Polls.Schedule(ctx, PollRequest{Shop: shop.ID, OrderID: order, Kind: TimerRetry}, o.Now()))
		}
		var released bool
		if st, next, released, err = o.applyInbox(ctx, r, order, lease, st, next); err != nil {
			// Redis or NATS failed: the inbox is kept, and a timer's handler tries again.
			o.Logger.Warn("applying an order's inbox failed; retried", zap.String("shop", shop.ID), zap.String("order", order), zap.Error(err))
			return errors.Join(own, o.Polls.Schedule(ctx, PollRequest{Shop: shop.ID, OrderID: order, Kind: TimerRetry}, o.Now().Add(time.Second)))
		}
		r.fresh = false
		if released {
			held = false
			return own
		}
	}
	held = false // the last commit released the lease
	return own
}

// retryLater ends a try of applied, an entry of the order's inbox that failed transiently: it is
// put back first in the inbox with its try counted, the lease is let go, and a timer applies the
// inbox at the retry's time. (Its last try is made permanent before it fails: see
// exhaustedAfter.) version is the order's state's, as the event's try left it.
func (o *Orders) retryLater(ctx context.Context, r *run, order string, lease *orderstate.Lease, version int64, applied *orderstate.Parked, cause error) error {
	p := inInbox(forRetry(*applied, cause, o.Now()))
	if _, _, err := lease.Commit(ctx, orderstate.Commit{Version: version, Applied: applied, Retry: &p, Ends: true}, o.Now()); err != nil {
		return err
	}
	return o.Polls.Schedule(ctx, PollRequest{Shop: r.shop.ID, OrderID: order, Kind: TimerRetry}, p.RetryAt)
}

// forRetry is the event p, whose try failed transiently with cause at now, with the try counted
// (unless the failure was the infrastructure's) and the time of its retry.
func forRetry(p orderstate.Parked, cause error, now time.Time) orderstate.Parked {
	p.Tries += tried(cause)
	p.LastError = cause.Error()
	p.RetryAt = now.Add(retryDelay(max(p.Tries, 1))).UTC()
	return p
}

// step applies one event under the lease: it settles st, decides, writes the decision with the
// event's history entry, settles again and commits. applied is the inbox entry the event came
// from, nil for the message being handled; rec is what the event's record says of it: processed
// already (a copy: nothing to do), or recorded for an event of other content (its id reused: it is
// dead-lettered as invalid, unapplied, and the record stays the earlier event's). It returns
// the state after the event, the inbox's next entry when the lease is kept for it, and the
// event's own error: a permanent failure (for the message, the consume loop dead-letters it; an
// inbox entry's is dead-lettered here), or a transient one for the caller to retry (an inbox
// entry's is returned before anything is committed). err is a failure of the step itself.
func (o *Orders) step(ctx context.Context, r *run, order string, lease *orderstate.Lease, d decision, st orderstate.State, rec orderstate.Record, applied *orderstate.Parked) (cur orderstate.State, next *orderstate.Parked, result, err error) {
	before := st
	if settled, dirty, err := o.settle(ctx, r, order, st); err != nil {
		if st, err = o.settleRefused(ctx, r, order, d, settled, err); err != nil {
			return before, nil, nil, err
		}
	} else if dirty {
		if st, err = o.Store.Put(ctx, r.shop.ID, order, settled, o.Now()); err != nil {
			return before, nil, nil, err
		}
	}
	// Each drop of copies follows a write whose outcomes are published: what the step does next
	// may fail, and the next step starts from the state written, which no longer names them.
	o.droppedFromState(ctx, r.shop.ID, order, before, st)
	var c change
	switch rec {
	case orderstate.RecordedSame:
		c = keep("duplicate: processed already")
	case orderstate.RecordedOther:
		c = fail(reusedID(d.ev))
	default:
		c = o.decide(ctx, r, order, d, st)
		if d.timer != "" && c.err == nil && !slices.Contains(r.refused, d.timer) {
			c = clearRefused(d.timer, st, c)
		}
	}
	if applied != nil {
		r.decided = applied.Key
		defer func() { r.decided = "" }()
	}
	reason, permanent := DeadLetterReason(c.err)
	var entries []orderstate.Entry
	switch {
	case c.err == nil:
		if c.did != "" {
			entries = append(entries, o.entryOf(d, c, r, st))
		}
	case applied == nil:
		// The caller retries a transient failure; a permanent one is recorded with its dead letter.
	case permanent:
		deadLetter := o.deadLetterParked
		if rec == orderstate.RecordedOther {
			deadLetter = o.deadLetterReused // the record is the earlier event's: it stays
		}
		if err := deadLetter(ctx, r.shop.ID, order, *applied, reason, c.err); err != nil {
			return st, nil, nil, err
		}
		c.did = "dead-lettered: " + reason.String() + ": " + c.err.Error()
		entries = append(entries, o.entryOf(d, c, r, st))
	default:
		return st, nil, c.err, nil // the caller retries it, first in the inbox
	}
	if c.next == nil && applied != nil && len(st.Parked) > 0 {
		// The parked events held behind this inbox entry (firstQueued) are tried now that it is
		// decided, also when it wrote nothing (stale, a duplicate, dead-lettered): the settle
		// below is the last before the inbox drains.
		next := st
		c.next = &next
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
			written, err := o.settleRefused(ctx, r, order, d, settled, err)
			if err != nil {
				return cur, nil, nil, err
			}
			cur, dirty = written, false
		}
		o.droppedFromState(ctx, r.shop.ID, order, st, cur) // settle published cur's outbox
		if dirty {
			last = &settled
		}
	}
	// An event that failed is not recorded as processed: its dead letter can be replayed. The lease
	// is kept while the inbox holds events, also after a transient failure: the caller retries
	// the event ahead of them.
	commit := orderstate.Commit{State: last, Version: cur.Version, Entries: entries, Applied: applied, Done: rec == orderstate.NotRecorded && c.err == nil}
	if applied == nil && r.keep != nil && c.err != nil && !permanent {
		commit.Retry = o.keptForRetry(ctx, r, order, c.err)
	}
	// The event ends unrecorded when it is dead-lettered (an inbox entry's here; the message's by
	// the consumer: a permanent failure, or one on its last delivery that is not Redis's or
	// JetStream's, which the consumer retries in place) or kept for its retry. The message's other
	// failures are handed back or retried in place, their fate undecided.
	dead := permanent || (applied == nil && d.ev.Attempt >= o.MaxAttempts && !IsInfrastructure(c.err))
	commit.Ends = c.err != nil && (dead || commit.Retry != nil)
	written, next, err := lease.Commit(ctx, commit, o.Now())
	if err != nil {
		return cur, nil, nil, err
	}
	if applied == nil && c.err != nil && dead && d.ev.ID != "" {
		// The commit removed the inbox's copies of the event (queued during its try, or published
		// again), which is dead-lettered: their copy in Kept goes with them, or the reconciler
		// would publish it again, a second fate. (An inbox entry's is dropped by its applier.)
		o.droppedUnlessHeld(ctx, r.shop.ID, order, d.ev.Key())
	}
	if last != nil {
		o.droppedFromState(ctx, r.shop.ID, order, cur, written)
		cur = written
	}
	if commit.Retry != nil {
		if err := o.Polls.Schedule(ctx, PollRequest{Shop: r.shop.ID, OrderID: order, Kind: TimerRetry}, commit.Retry.RetryAt); err != nil {
			// The event is in the inbox, its message done with: the reconciler sets the timer of an
			// inbox that has none.
			o.Logger.Warn("scheduling the retry of an event kept in its order's inbox failed; the reconciler schedules it",
				zap.String("shop", r.shop.ID), zap.String("order", order), zap.Error(err))
		}
		return cur, nil, KeptForRetry(c.err), nil
	}
	if applied != nil {
		return cur, next, nil, nil
	}
	return cur, next, c.err, nil
}

// keptForRetry is the message being handled (run.keep), whose try failed transiently with cause,
// as the inbox entry that its commit puts first in the order's inbox for its retry, its copy kept
// first; nil when the copy cannot be kept (the message is handed back). The same commit lets the
// lease go, so that no event of the order comes between its try and its place in the inbox: the
// events handled before its retry wait behind it (a tracking number entered after a cancel whose
// call failed is not reported before the cancel), and its message, done with, holds no handler
// slot while it waits. Its deliveries so far count as tries.
func (o *Orders) keptForRetry(ctx context.Context, r *run, order string, cause error) *orderstate.Parked {
	p := *r.keep
	p.Tries = p.Attempt - 1
	p = forRetry(p, cause, o.Now())
	if err := o.keepCopy(ctx, r.shop.ID, order, p, KeptQueued); err != nil {
		o.Logger.Warn("keeping a copy of an event that failed failed; its message is handed back",
			zap.String("shop", r.shop.ID), zap.String("order", order), zap.Error(err))
		return nil
	}
	p = inInbox(p)
	return &p
}

// inInbox is p as the order's inbox holds it: a message over maxParkedBody is held there without
// its body (BodyKept), which its copy in Kept, written before the entry, holds (withKeptBody reads
// it back), so that an order's inbox holds up to MaxInbox small entries whatever the messages'
// sizes, and a large message waits for its turn, or its retry, in it as any other.
func inInbox(p orderstate.Parked) orderstate.Parked {
	if len(p.Body) > maxParkedBody {
		p.Body, p.BodyKept, p.BodySum = nil, true, orderstate.BodySum(p.Body)
	}
	return p
}

// withKeptBody is the inbox entry p with its body, read back when the inbox holds none (BodyKept):
// from its copy in Kept, or from the message itself (Kept.Body). A body found in neither (ErrNoCopy:
// the copy dropped or replaced under a reused id, and the message past its stream's retention)
// makes an entry that cannot be applied: it is dead-lettered invalid, without its body, its letter
// naming the message it was (stream and sequence).
func (o *Orders) withKeptBody(ctx context.Context, shop, order string, p *orderstate.Parked) (*orderstate.Parked, error) {
	if !p.BodyKept || p.Body != nil {
		return p, nil
	}
	if o.Kept == nil {
		return p, Permanent(ReasonInvalid, fmt.Errorf("the body of event %s of %s/%s is held in the kept copies, and none are configured", p.ID, shop, order))
	}
	body, err := o.Kept.Body(ctx, shop, order, *p)
	if errors.Is(err, ErrNoCopy) {
		return p, Permanent(ReasonInvalid, fmt.Errorf("the body of event %s (message %d of %s, over %d bytes) is neither in its kept copy nor in its stream: publish the message again: %w",
			p.ID, p.Seq, p.Stream, maxParkedBody, err))
	}
	if err != nil {
		return p, err
	}
	q := *p
	q.Body = body
	return &q, nil
}

// applyInbox applies an event that was queued in the order's inbox while another handler held the
// lease, as if it were being handled now. It returns the state after it, the inbox's next entry
// when the lease is kept for it, and whether the lease was let go: the event failed transiently and
// is retried later, first in the inbox (or, out of tries, dead-lettered as exhausted). err is a
// failure of Redis or NATS; the entry is then still first in the inbox.
func (o *Orders) applyInbox(ctx context.Context, r *run, order string, lease *orderstate.Lease, st orderstate.State, p *orderstate.Parked) (orderstate.State, *orderstate.Parked, bool, error) {
	record, err := o.Store.EventRecord(ctx, r.shop.ID, p.Key)
	if err != nil {
		return st, nil, false, err
	}
	// An entry queued by a worker from before digests has none: a record of its identity is taken
	// for its own, as before digests, and its own record is written without one.
	rec := orderstate.Recorded(record, p.Digest)
	var derr error
	if rec != orderstate.RecordedSame { // a duplicate's body is not read: it changes nothing
		p, derr = o.withKeptBody(ctx, r.shop.ID, order, p)
	}
	if _, permanent := DeadLetterReason(derr); derr != nil && !permanent {
		return st, nil, false, derr // NATS failed: the entry stays first, and a timer tries again
	}
	d := decision{}
	if derr == nil {
		d, derr = o.storedDecision(r.shop, *p)
	}
	if derr != nil {
		d = decision{ev: Meta{Type: p.Type, Source: p.Source, ID: p.ID}, apply: func(context.Context, *run, orderstate.State) change { return fail(derr) }}
	}
	if p.Tries >= o.MaxAttempts-1 {
		d.apply = exhaustedAfter(d.apply)
	}
	if d.refused == nil {
		// Applied by a timer's handling: the settle step's refusal for the shop's account is the
		// timer's (its order's re-check scheduled again), not the entry's, whose own work goes on.
		d.refused = r.refusedLater
	}
	cur, next, result, err := o.step(ctx, r, order, lease, d, st, rec, p)
	if err != nil {
		return cur, next, false, err
	}
	if result == nil {
		o.droppedFromInbox(ctx, r.shop.ID, order, p.Key, cur)
		return cur, next, false, nil
	}
	return cur, nil, true, o.retryLater(ctx, r, order, lease, cur.Version, p, result)
}

// reusedID is the failure of an event whose source and id are recorded for an event of other
// content (another order, another type, or other data): the importer reused the id. It is not a
// copy, and it is not applied either: which of the two the shop meant is not the worker's to
// guess, and a dead letter says why (docs/lifecycle.md#idempotency).
func reusedID(ev Meta) error {
	return Permanent(ReasonInvalid, fmt.Errorf("id: reused for a different event: id %q of source %q was processed for an event with other content (another order, type or data); an event's id must be unique per source", ev.ID, ev.Source))
}

// deadLetterReused writes the dead letter of an inbox entry whose id was reused (reusedID) and drops
// its kept copy. Unlike deadLetterParked it leaves the event record: it is the earlier event's,
// whose copies must still be dropped.
func (o *Orders) deadLetterReused(ctx context.Context, shop, order string, p orderstate.Parked, reason Reason, cause error) error {
	err := o.DeadLetters.Write(ctx, DeadLetter{Subject: p.Subject, Stream: p.Stream, Sequence: p.Seq, Body: p.Body,
		Reason: reason.String(), Err: cause, Attempts: attempts(p), ReplayCount: p.ReplayCount, Published: p.Published, PublishedCreated: p.PublishedCreated, FailedAt: o.Now()})
	if err != nil {
		return err
	}
	return o.dropCopy(ctx, shop, order, p.Key)
}

// exhaustedAfter makes the transient failure of an event's last try permanent, as the consumer
// does with a message's last delivery.
func exhaustedAfter(apply func(context.Context, *run, orderstate.State) change) func(context.Context, *run, orderstate.State) change {
	return func(ctx context.Context, r *run, st orderstate.State) change {
		c := apply(ctx, r, st)
		if _, permanent := DeadLetterReason(c.err); c.err != nil && !permanent && !IsInfrastructure(c.err) {
			c.err = Permanent(ReasonExhausted, c.err)
		}
		return c
	}
}

// ordering is a kind of event whose order of publication the state records: the position of the
// last one applied.
type ordering struct {
	name string
	pos  func(st *orderstate.State) (*int64, *uint64)
}

var (
	creditOrder = &ordering{"credit event", func(st *orderstate.State) (*int64, *uint64) {
		return &st.CreditCreated, &st.CreditSeq
	}}
	trackingOrder = &ordering{"tracking number", func(st *orderstate.State) (*int64, *uint64) {
		return &st.TrackingCreated, &st.TrackingSeq
	}}
	// repeatOrder is the position of the order's latest repeated creation (see repeated), apart
	// from creditOrder's.
	repeatOrder = &ordering{"repeated creation", func(st *orderstate.State) (*int64, *uint64) {
		return &st.RepeatCreated, &st.RepeatSeq
	}}
)

// position is where an event was first published: the creation time of its stream (Unix ns, 0
// when unknown) and its sequence there.
type position struct {
	created int64
	seq     uint64
}

func (m Meta) position() position {
	if m.Published != 0 {
		return position{m.PublishedCreated, m.Published}
	}
	return position{m.PublishedCreated, m.Seq}
}

// after reports whether p was published after q. Sequences compare within one stream; a stream
// deleted and created again (a move, a lost store) starts them at 1 again, and its events are
// newer than any of the old stream's, whatever their sequence. When either creation time is not
// known (a state or dead letter written before they were kept), the sequences compare.
func (p position) after(q position) bool {
	if p.created != 0 && q.created != 0 && p.created != q.created {
		return p.created > q.created
	}
	return p.seq > q.seq
}

func (d *ordering) get(st *orderstate.State) position {
	created, seq := d.pos(st)
	return position{*created, *seq}
}

func (d *ordering) set(st *orderstate.State, p position) {
	created, seq := d.pos(st)
	*created, *seq = p.created, p.seq
}

// decide applies d to st: nothing for an event published before the order's last event of its
// kind, parking for one that must wait, else d's own decision.
func (o *Orders) decide(ctx context.Context, r *run, order string, d decision, st orderstate.State) change {
	pos := d.ev.position()
	if d.ordered != nil && pos.seq != 0 && !pos.after(d.ordered.get(&st)) {
		return keep("no change: older in the stream than the order's last " + d.ordered.name)
	}
	if d.waits != nil {
		if waits := d.waits(st); waits != "" {
			return o.park(ctx, r.shop.ID, order, d, st, waits)
		}
	}
	if waits := waitingBefore(d, st); waits != "" {
		return o.park(ctx, r.shop.ID, order, d, st, waits)
	}
	c := d.apply(ctx, r, st)
	if d.ordered == nil || pos.seq == 0 {
		return c
	}
	if c.repeat {
		if pos.after(repeatOrder.get(&st)) {
			next := st
			repeatOrder.set(&next, pos)
			next.RepeatTime = d.ev.Time
			c.next = &next
		}
		return c
	}
	if c.same {
		next := st // with the history entries of the events applied before it in this settle
		c.next = &next
	}
	if c.next != nil && pos.after(d.ordered.get(c.next)) {
		d.ordered.set(c.next, pos)
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

// entryOf is the history entry of the decision d, come to c from st: entry's, with the operator
// who asked for an operator event.
func (o *Orders) entryOf(d decision, c change, r *run, st orderstate.State) orderstate.Entry {
	e := o.entry(d.ev, c, r, st)
	e.Operator = d.operator
	return e
}

// settleRefused handles cause, the failure of settling a timer's order, st as settle left it:
// ATODENE refused the shop's account (reporting a queued tracking number), and the order's
// re-check (d.refused) is scheduled again, with st written and the history noting it once, as any
// timer refused for the account is; not dead-lettered, which would leave the report, and the
// timer's own work, to a replay. Any other failure, or one of an event, is returned as it is.
//
// The history entry is the re-check's (type poll, the refusal and when it comes again): the work
// not done is its report, which it does when it comes. It is not d's: the decision being handled
// (a park deadline, an inbox timer, a re-authorization timer, an event of the inbox a timer
// applies) does its own work all the same, with an entry of its own if it writes one.
func (o *Orders) settleRefused(ctx context.Context, r *run, order string, d decision, st orderstate.State, cause error) (orderstate.State, error) {
	if d.refused == nil || !accountRefused(cause) {
		return st, cause
	}
	c := d.refused(ctx, r, st, cause)
	if c.err != nil || c.next == nil {
		return st, c.err
	}
	if c.did != "" {
		c.next.History = append(c.next.History, o.entry(Meta{Type: "poll"}, c, r, st))
	}
	return o.Store.Put(ctx, r.shop.ID, order, *c.next, o.Now())
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
	if at := o.parkTimer(st); !at.Equal(st.ParkTimer) {
		if !at.IsZero() {
			if err := o.Polls.Schedule(ctx, PollRequest{Shop: r.shop.ID, OrderID: order, Kind: TimerParked}, at); err != nil {
				return st, false, err
			}
		}
		st.ParkTimer, dirty = at, true
	}
	if next, changed, err := o.settleReauth(ctx, r, order, st); err != nil {
		return st, false, err
	} else if changed {
		st, dirty = next, true
	}
	if st.Status == orderstate.StatusPending && !st.PollScheduled {
		at := o.Now().Add(o.Poll.Delay(st.PollAttempt))
		held := o.PollHoldAhead > 0 && at.Sub(o.Now()) > o.PollHoldAhead
		if !held {
			if err := o.Polls.Schedule(ctx, PollRequest{Shop: r.shop.ID, OrderID: order, Seq: st.PollSeq, At: at}, at); err != nil {
				return st, false, err
			}
		}
		st.PollScheduled, st.PollAt, st.PollHeld, st.HoldPoll, dirty = true, at, held, held, true
		st.PollTrace = ""
		if held {
			st.PollTrace = traceParent(ctx)
		}
	}
	// The outbox goes out before a queued shipment is reported, so that a credit decision is not
	// held back by a report that fails (the account refused, ATODENE down), and before the cancel
	// of a re-authorization's old transaction, for the same reason.
	published, err := o.publish(ctx, r, order, &st)
	if err != nil {
		return st, false, err
	}
	dirty = dirty || published
	if published && o.workAfterPublish(r.shop, st) {
		// The outbox is written back empty before a step that can fail: left full in Redis, it
		// would be published again by the order's next handler, perhaps after RESULTS's duplicate
		// window, as a second copy of each outcome.
		if st, err = o.Store.Put(ctx, r.shop.ID, order, st, o.Now()); err != nil {
			return st, false, err
		}
	}
	for _, step := range []func(context.Context, *run, string, orderstate.State) (orderstate.State, bool, error){o.finishReauth, o.scheduleReauth} {
		next, changed, err := step(ctx, r, order, st)
		if err != nil {
			return st, false, err
		}
		if changed {
			st, dirty = next, true
		}
	}
	if st.Status == orderstate.StatusOK && st.Shipment != nil && !st.Shipment.Reported {
		next, err := o.reportShipment(ctx, r.shop, order, st, nil, st.CausedBy)
		if err != nil {
			return st, false, err
		}
		did := "reported the tracking number queued while the credit was not yet OK"
		next.History = append(next.History, o.entry(Meta{Type: "queued shipment"}, change{next: &next, did: did}, r, st))
		st, dirty = next, true
		if _, err := o.publish(ctx, r, order, &st); err != nil {
			return st, false, err
		}
	}
	return st, dirty, nil
}

// workAfterPublish says whether settle has work left after publishing st's outbox that can fail
// or be cut short by a crash: the cancel of a re-authorization's old transaction, a
// re-authorization timer to schedule in JetStream, a queued shipment to report.
func (o *Orders) workAfterPublish(shop *Shop, st orderstate.State) bool {
	if rs := st.Reauth; rs != nil && rs.Phase == orderstate.ReauthCancelling {
		return true
	}
	if at, ok := o.reauthTime(shop, st); ok && at.Sub(o.Now()) <= reauthHeldAhead {
		return true
	}
	return st.Status == orderstate.StatusOK && st.Shipment != nil && !st.Shipment.Reported
}

// publish publishes the outbox of st and empties it, saying whether it held anything. On error
// the outbox in Redis is as it was, to be published again (its message IDs make that harmless).
// An outcome whose message ID RESULTS holds for another outcome is reissued (reissue), once.
func (o *Orders) publish(ctx context.Context, r *run, order string, st *orderstate.State) (bool, error) {
	held, reissued := len(st.Outbox) > 0, ""
	for len(st.Outbox) > 0 {
		out := st.Outbox[0]
		err := o.Outcomes.Publish(ctx, out.Subject, out.MsgID, out.Body)
		if reused, ok := errors.AsType[*ReusedIDError](err); ok && reissued != out.MsgID {
			if err = o.reissue(ctx, r, order, st, reused); err == nil {
				reissued = st.Outbox[0].MsgID
				continue
			}
		}
		if err != nil {
			return false, err
		}
		st.Outbox = st.Outbox[1:]
	}
	st.Outbox = nil
	return held, nil
}

// reissue gives the first outcome of st's outbox a message ID in a new epoch, and writes st with
// it before it is published, so that a crash cannot publish it under two IDs. RESULTS holding
// another outcome under its ID (reused) means that the state was written at that version before:
// by writes Redis lost (a failover to a replica that was behind, a restore from a snapshot), or by
// a step that published its outcome and failed before writing its state, then answered otherwise
// when retried. Published under the old ID, the outcome would be dropped as a duplicate within the
// stream's duplicate window, then stored under an ID that names two outcomes. The outbox's other
// outcomes keep their IDs: RESULTS drops those it holds already, as any retry's. The new epoch keeps
// the order's later outcomes clear of the IDs the earlier writes used. The write waits for the
// replicas the store waits for with an intent: a second failover must not bring the old ID back.
func (o *Orders) reissue(ctx context.Context, r *run, order string, st *orderstate.State, reused *ReusedIDError) error {
	next := *st
	next.Epoch = orderstate.NewEpoch()
	next.Outbox = slices.Clone(st.Outbox)
	out := next.Outbox[0]
	id := reissuedID(out.MsgID, r.shop.ID, order, next.Epoch)
	body, err := events.WithOutcomeID(out.Body, id)
	if err != nil {
		return fmt.Errorf("reissuing outcome %s of %s/%s: %w", out.MsgID, r.shop.ID, order, err)
	}
	next.Outbox[0] = orderstate.Outcome{Subject: out.Subject, MsgID: id, Body: body}
	next.History = append(next.History, orderstate.Entry{At: o.Now().UTC(), Type: "outcome",
		Did:    fmt.Sprintf("reissued as %s: %s holds another outcome under %s (seq %d)", id, reused.Stream, reused.MsgID, reused.Seq),
		Status: next.Status})
	written, err := o.Store.PutIntent(ctx, r.shop.ID, order, next, o.Now())
	if err != nil {
		return err
	}
	o.Logger.Warn("an outcome's message ID was used before (Redis lost writes of the order, or a step published and failed before its write): the outcome is reissued in a new epoch",
		zap.String("shop", r.shop.ID), zap.String("order", order), zap.String("msg_id", reused.MsgID), zap.String("reissued_as", id))
	*st = written
	return nil
}

// reissuedID is msgID (emit's shop:order:epoch:version:type) with its epoch replaced by epoch. An
// ID of another form gets epoch appended.
func reissuedID(msgID, shop, order, epoch string) string {
	if rest, ok := strings.CutPrefix(msgID, shop+":"+order+":"); ok {
		if _, tail, ok := strings.Cut(rest, ":"); ok {
			return shop + ":" + order + ":" + epoch + ":" + tail
		}
	}
	return msgID + ":" + epoch
}

// emit renders an outcome event into the state's outbox. Its message ID is derived from the
// order, the epoch and the version of the state that records it and its type, so a retry of the
// same step repeats it, a later decision gets a new one, and so does a decision recorded in a state
// written anew after the old one was lost (its version starts again, in another epoch).
func (o *Orders) emit(st *orderstate.State, shop, order, eventType, causedBy string, data any) {
	if st.Epoch == "" {
		st.Epoch = orderstate.NewEpoch()
	}
	msgID := fmt.Sprintf("%s:%s:%s:%d:%s", shop, order, st.Epoch, st.Version+1, eventType)
	body, err := events.NewOutcome(msgID, eventType, causedBy, o.Now(), data)
	if err != nil {
		panic(fmt.Sprintf("handlers: encoding %s: %v", eventType, err)) // plain structs always encode
	}
	st.Outbox = append(st.Outbox, orderstate.Outcome{Subject: events.Subject(eventType, shop), MsgID: msgID, Body: body})
}

// emitCredit emits the credit.* event that st's status calls for. normalized lists the values
// the worker put into ATODENE's form, for a registration or a change.
func (o *Orders) emitCredit(st *orderstate.State, shop, order, eventType, causedBy string, normalized ...events.Normalized) {
	data := o.creditData(st, shop, order, eventType)
	data.Normalized = normalized
	o.emit(st, shop, order, eventType, causedBy, data)
}

// creditData is the data of a credit.* event of type eventType that states st's decision.
func (o *Orders) creditData(st *orderstate.State, shop, order, eventType string) events.Credit {
	return events.Credit{
		ShopID: shop, OrderID: order, TransactionID: st.TransactionID,
		Result: eventType[len("credit."):], Review: st.Review,
		Fee: st.Fee, BilledAmount: st.BilledAmount, Reasons: st.Reasons,
		DecidedAt: o.Now().In(jst.Zone).Format(time.RFC3339),
		Errors:    recordedErrors(st.Errors),
	}
}

func (o *Orders) shop(id string) (*Shop, error) {
	shop, ok := o.Shops(id)
	if !ok {
		return nil, Permanent(ReasonUnknownShop, fmt.Errorf("shop %q is not configured", id))
	}
	return shop, nil
}

// onOrder is the prologue every order-event handler shares: the subject's shop (an unknown one is
// dead-lettered), the handler's decision, then withOrder. decide gets the shop because a
// registration needs its fee table; its error (invalid input) is returned as it is.
func (o *Orders) onOrder(ctx context.Context, shopID, order string, decide func(*Shop) (decision, error)) error {
	shop, err := o.shop(shopID)
	if err != nil {
		return err
	}
	d, err := decide(shop)
	if err != nil {
		return err
	}
	return o.withOrder(ctx, shop, order, d)
}

// decided is onOrder's decide for an event whose decision does not depend on the shop.
func decided(d decision) func(*Shop) (decision, error) {
	return func(*Shop) (decision, error) { return d, nil }
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
