package handlers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// validate checks that every duration is positive.
func (p PollPolicy) validate() error {
	if p.First <= 0 || p.Max <= 0 || p.Deadline <= 0 {
		return fmt.Errorf("PollPolicy: First %s, Max %s and Deadline %s must be positive", p.First, p.Max, p.Deadline)
	}
	return nil
}

// Timer kinds of a PollRequest.
const (
	TimerPoll   = ""       // re-check an order under review
	TimerParked = "parked" // dead-letter the parked events of an order that waited too long
	TimerInbox  = "inbox"  // apply the order's inbox, when the handler that held its lease did not
	TimerRetry  = "retry"  // retry the first event of the order's inbox, which failed transiently
	TimerReauth = "reauth" // re-authorize an order whose approval is about to expire
)

// PollRequest is the body of a timer of an order: a scheduled re-check of an order under review,
// or the deadline of its parked events (Kind TimerParked). An order has at most one timer of
// each kind; a newer one replaces the older.
type PollRequest struct {
	Shop    string `json:"shop"`
	OrderID string `json:"order_id"`
	Seq     int    `json:"seq"`
	Kind    string `json:"kind,omitempty"`
	// Replayed is set (not sent) when an operator replayed a poll-deadline dead letter: polling
	// starts again with a fresh deadline.
	Replayed bool `json:"-"`
	// Behind marks a re-check scheduled again by the reconciler for a state that Redis rolled
	// back past a re-check that decided the order: a decision it finds was published then, and is
	// applied to the state without being published again.
	Behind bool `json:"behind,omitempty"`
	// Refused says the timer was scheduled again because ATODENE refused the shop's account when
	// it came due (timerRefused): its next refusal is not noted in the order's history again.
	Refused bool `json:"refused,omitempty"`
	// At is when the timer is due: for a re-check, the state's PollAt it was scheduled for (a late
	// one keeps it). It tells a re-check the state no longer waits for (heldElsewhere) and gives the
	// lateness of its handling (atodene_worker_timer_lateness_seconds); Polls.Schedule sets it to
	// the schedule's time when the caller did not.
	At time.Time `json:"at,omitzero"`
}

// EarlyTimerAgain is the least wait of a timer scheduled again because it was handled before its
// time (the NATS server's clock ahead of the worker's, or two workers' clocks apart): scheduled for
// its time alone, it would fire again at once by the server's clock, in a loop, until the worker's
// clock caught up.
const EarlyTimerAgain = time.Second

// earlyAgain is when a timer due at at, handled early, is scheduled again: at, and no sooner than
// EarlyTimerAgain from now.
func (o *Orders) earlyAgain(at time.Time) time.Time {
	return later(o.Now().Add(EarlyTimerAgain), at)
}

// Polls schedules re-checks durably.
type Polls interface {
	Schedule(ctx context.Context, p PollRequest, at time.Time) error
}

// PollPolicy is the re-check schedule of orders under review
// (docs/architecture.md#polling-orders-under-review).
type PollPolicy struct {
	First    time.Duration // first re-check after registration (-poll-first-delay)
	Max      time.Duration // longest interval (-poll-max-interval)
	Deadline time.Duration // give up and dead-letter after (-poll-deadline)
}

// maxPollDelay bounds a re-check's delay before its jitter, so that the delay with +10% still fits
// in a time.Duration (about 265 years): a -poll-max-interval past it would wrap negative, and the
// re-check would fire at once, again and again.
const maxPollDelay = time.Duration(math.MaxInt64 / 11 * 10)

// Delay returns the wait before re-check number attempt (0 for the first): First doubling up to
// Max, with ±10% jitter so that orders registered together spread out. It is never negative and
// never more than Max + 10%, however large Max or attempt.
func (p PollPolicy) Delay(attempt int) time.Duration {
	limit := max(min(p.Max, maxPollDelay), 0)
	d := max(min(p.First, limit), 0)
	for i := 0; i < attempt && d < limit; i++ {
		if d > limit/2 {
			d = limit
		} else {
			d *= 2
		}
	}
	jitter := d / 10
	return d - jitter + rand.N(2*jitter+1)
}

// PollDue handles a due timer of an order. A re-check asks ATODENE for the screening result,
// publishes a change of state, and schedules the next re-check, or gives up at the deadline. A
// parked-event deadline dead-letters the events that waited too long.
func (o *Orders) PollDue(ctx context.Context, p PollRequest) error {
	shop, err := o.shop(p.Shop)
	if err != nil {
		return err
	}
	// Every timer settles the order before and after its own work, which reports a tracking number
	// queued while the credit was under review: that report refused for the shop's account
	// schedules the order's re-check again for when the shop's calls resume (settleRefusedLater),
	// and the re-check then come (the order OK) reports it. A re-check that decides the order OK
	// is so scheduled again, its decision recorded and published; another timer's own work is
	// done, not left to a replay.
	refused := o.settleRefusedLater(p)
	switch p.Kind {
	case TimerParked:
		return o.withOrder(ctx, shop, p.OrderID, decision{ev: Meta{Type: "park-deadline"}, refused: refused, apply: o.expireParked(p.OrderID)})
	case TimerReauth:
		return o.withOrder(ctx, shop, p.OrderID, decision{ev: Meta{Type: "reauthorization"}, refused: refused, timer: refusedKey(TimerReauth),
			apply: o.refusedLater(p, o.reauthDue(p))})
	case TimerInbox, TimerRetry: // taking the lease applies the inbox
		return o.withOrder(ctx, shop, p.OrderID, decision{ev: Meta{Type: "inbox"}, refused: refused,
			apply: func(context.Context, *run, orderstate.State) change { return keep("") }})
	}
	return o.withOrder(ctx, shop, p.OrderID, decision{ev: Meta{Type: "poll"}, refused: refused, timer: refusedKey(TimerPoll), apply: func(ctx context.Context, r *run, st orderstate.State) change {
		switch {
		case st.Status == orderstate.StatusNone:
			// The order's state is gone (lost with Redis): a re-check has nothing to apply its answer to.
			return fail(Permanent(ReasonNoTransaction, fmt.Errorf("order %s: due for a re-check, but the worker has no record of it (its state was lost?)", p.OrderID)))
		case st.Status != orderstate.StatusPending:
			return keep("") // decided or cancelled since this poll was scheduled
		case heldElsewhere(p, st):
			return keep("") // the state's own re-check is held in Redis: this one is stale
		}
		// A poll of another series than the state's (the order changed since, or Redis lost the
		// state's last writes) re-checks all the same: the order is under review, and the check
		// schedules the state's own next one, so that no state is left waiting for a poll that
		// will never come.
		if p.Replayed && o.Now().Sub(st.PollSince) > o.Poll.Deadline {
			// The poll-deadline letter replayed: polling starts again with a fresh deadline. The
			// replay of another letter (exhausted, say) keeps the series' deadline.
			st.PollSince = o.Now()
		}
		scr, err := r.shop.Provider.GetAuthori(ctx, st.TransactionID)
		switch {
		case errors.Is(err, atodene.ErrAlreadyCancelled):
			return write(behind(p, st, o.cancelled(st, p.Shop, p.OrderID, st.CausedBy, o.Now()), "cancelled: ATODENE holds the transaction as cancelled"))
		case noTransaction(err):
			return transactionLost(st, p.OrderID)
		case accountRefused(err):
			return o.timerRefused(ctx, r, p, st, err)
		case err != nil:
			return fail(err)
		}
		next, did := o.screened(st, p.Shop, p.OrderID, st.CausedBy, scr)
		if next.Status != orderstate.StatusPending {
			return write(behind(p, st, next, did))
		}
		// The deadline is checked after asking, so an order decided at the last moment is not
		// dead-lettered. Past it, no further re-check is scheduled; replaying the dead letter
		// starts polling again.
		if deadline := o.Poll.Deadline; next.Status == orderstate.StatusPending && o.Now().Sub(next.PollSince) > deadline {
			next.PollScheduled, next.PollAt = true, time.Time{} // no re-check is scheduled
			return writeThen(next, Permanent(ReasonPollDeadline, fmt.Errorf("order %s still under review after %s", p.OrderID, deadline)))
		}
		return write(next, did)
	}})
}

// noTransaction says err is ATODENE's answer that it knows no such transaction (er000002).
func noTransaction(err error) bool {
	reason, permanent := DeadLetterReason(err)
	return permanent && reason == ReasonNoTransaction
}

// transactionLost makes an order under review whose transaction ATODENE says it does not know
// (er000002, to a due re-check) unknown: the worker no longer knows what ATODENE holds of the
// order (its records lost, or the shop's account changed for another), and no retry changes the
// answer. Left pending, its re-check would be made again by the reconciler and refused again, for
// ever. As a registration whose outcome is unknown, nothing is published, the re-check is
// dead-lettered outcome-unknown once, and an operator settles the order with
// order.resolve_requested: the transaction ATODENE's screen holds for it, or not_registered.
func transactionLost(st orderstate.State, order string) change {
	tx := st.TransactionID
	st.Status, st.Review, st.Reasons = orderstate.StatusUnknown, "", nil
	st.PollScheduled, st.PollAt, st.PollHeld = false, time.Time{}, false
	return writeThen(st, Permanent(ReasonOutcomeUnknown, fmt.Errorf(
		"order %s: ATODENE has no transaction %s (er000002) for the order under review: the order is unknown; settle it with order.resolve_requested (the transaction ATODENE's screen holds for it, or not_registered)", order, tx)))
}

// heldElsewhere says a due re-check is not the state's own while the state's own is held in Redis:
// the order's re-check was set again since this one was handed to JetStream (an order.updated, an
// operator's re-check), or this one was handed twice. The held one will come, so this one is
// dropped rather than run as an extra check. A poll without its due time (scheduled by an earlier
// version), replayed by an operator, or scheduled by the reconciler for a state Redis rolled back
// runs as before.
func heldElsewhere(p PollRequest, st orderstate.State) bool {
	return st.PollHeld && st.PollScheduled && !st.PollAt.IsZero() && !p.At.IsZero() && !p.At.Equal(st.PollAt) && !p.Replayed && !p.Behind
}

// behind drops the outcomes a re-check of a state Redis rolled back (p.Behind) added to next:
// the re-check whose write was lost published them.
func behind(p PollRequest, st, next orderstate.State, did string) (orderstate.State, string) {
	if !p.Behind || len(next.Outbox) == len(st.Outbox) {
		return next, did
	}
	next.Outbox = next.Outbox[:len(st.Outbox)]
	return next, did + " (not published again: Redis lost the write of the re-check that published it)"
}

// screened applies a screening result to a pending order's state, and says what changed ("" when
// the review goes on as it was). The outcomes it emits name causedBy as their cause: for a due
// re-check, the event that started the credit check; for an operator's re-check, that request.
func (o *Orders) screened(st orderstate.State, shop, order, causedBy string, scr atodene.Screening) (orderstate.State, string) {
	switch d := scr.Decision(); d {
	case atodene.DecisionOK, atodene.DecisionNG:
		st.Status, st.Review, st.Reasons = decisionStatus(d), "", scr.Reasons
		if st.Status == orderstate.StatusOK && st.AuthorizedAt.IsZero() {
			authorized(&st, o.Now())
		}
		o.emitCredit(&st, shop, order, creditType(st.Status), causedBy)
		o.dropQueuedShipment(&st, shop, order, causedBy)
		return st, "decided: " + string(st.Status)
	case atodene.DecisionHold:
		if st.Review != "hold" {
			st.Review = "hold"
			o.emitCredit(&st, shop, order, events.TypeCreditPending, causedBy)
			st.PollAttempt++
			st.PollScheduled = false
			return st, "review on hold (保留)"
		}
	}
	st.PollAttempt++
	st.PollScheduled = false // settle schedules the next re-check
	return st, ""
}

// standing sets st's status, review and reasons to the decision a screening holds: ok or ng (with
// the manual review's reasons), or pending, under review or on hold.
func standing(st *orderstate.State, scr atodene.Screening) {
	switch d := scr.Decision(); d {
	case atodene.DecisionOK, atodene.DecisionNG:
		st.Status, st.Review, st.Reasons = decisionStatus(d), "", scr.Reasons
	case atodene.DecisionHold:
		st.Status, st.Review, st.Reasons = orderstate.StatusPending, "hold", nil
	default:
		st.Status, st.Review, st.Reasons = orderstate.StatusPending, "", nil
	}
}
