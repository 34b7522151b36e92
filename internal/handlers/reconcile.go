package handlers

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Reconciler re-creates the timers that orders' states rely on but that JetStream no longer holds:
// a re-check of an order under review, the deadline of parked events, the timer of an inbox, a
// re-authorization. A
// JetStream store lost, or the timer stream deleted and created again, takes them all, while
// Redis still says they are set; without them those orders would never move again. It looks
// only at the orders whose earliest timer is overdue by more than Grace (the store's timer index),
// asks JetStream whether each timer is still there (scheduled, or fired and not handled yet), and
// schedules the missing ones. Several workers may run it: one claims each order.
type Reconciler struct {
	Store *orderstate.Store
	// Shops are the IDs of the shops whose timers it looks at (the timer index is kept per shop).
	Shops []string
	Polls Polls
	// Waiting says where a timer is in JetStream: TimerWaiting (scheduled for after stale, or
	// fired after since, the state's last write, and not handled yet), TimerMissing, or
	// TimerHandled (handled after since: Redis lost the write its handling made).
	Waiting func(ctx context.Context, req PollRequest, since, stale time.Time) (TimerState, error)
	// Grace is how long past its time a timer may still be on its way (handlers busy, a worker
	// restarting) before it is looked for (-reconcile-interval).
	Grace  time.Duration
	Now    func() time.Time
	Logger *zap.Logger
}

// TimerState is where a timer an order's state relies on is in JetStream.
type TimerState int

const (
	TimerWaiting TimerState = iota // scheduled, or fired and not handled yet
	TimerMissing                   // gone: the stream lost it, or the server will not fire it
	TimerHandled                   // fired and handled after the state's last write: the state is behind
)

// reconcileBatch bounds the orders read from the index at once.
const reconcileBatch = 256

// Once looks at every order whose timer is overdue and returns how many timers it scheduled
// again. A shop whose pass fails does not stop the others': the error joins (errors.Join) the
// failures of every shop, each naming its shop, and is Redis's or JetStream's; the next run
// tries again. Cancelling ctx stops it before the next shop, with ctx's error among the others.
func (r *Reconciler) Once(ctx context.Context) (int, error) {
	now := r.Now()
	return eachShop(ctx, r.Shops, "reconciling the timers of shop %s", func(ctx context.Context, shop string) (int, error) {
		return r.once(ctx, shop, now)
	})
}

// once is Once for the orders of one shop.
func (r *Reconciler) once(ctx context.Context, shop string, now time.Time) (int, error) {
	scheduled := 0
	for {
		overdue, err := r.Store.OverdueTimers(ctx, shop, now.Add(-r.Grace), reconcileBatch)
		if err != nil {
			return scheduled, err
		}
		for _, t := range overdue {
			n, err := r.reconcile(ctx, t, now)
			scheduled += n
			if err != nil {
				return scheduled, err
			}
		}
		if len(overdue) < reconcileBatch {
			return scheduled, nil
		}
	}
}

// reconcile schedules again the timers of one overdue order that JetStream lost. The order is
// claimed first: its index entry moves to now, to be looked at again after the grace if its
// timers still do not run; an order that relies on no timer any more leaves the index.
func (r *Reconciler) reconcile(ctx context.Context, t orderstate.Timer, now time.Time) (int, error) {
	st, err := r.Store.Get(ctx, t.Shop, t.Order)
	if err != nil {
		return 0, err
	}
	inbox, err := r.Store.InboxLen(ctx, t.Shop, t.Order)
	if err != nil {
		return 0, err
	}
	type timer struct {
		req  PollRequest
		at   time.Time
		also string // another kind that does the same work
		held bool   // never put in JetStream: due, handed to it now (no need to look for it)
		// mayBeHeld: a re-check held in Redis, that the Handoff may not have handed yet (not
		// running, or stopped after taking it).
		mayBeHeld bool
	}
	var needed []timer
	base := PollRequest{Shop: t.Shop, OrderID: t.Order}
	// A held re-check not due yet is the Handoff's to hand (the order is here for another timer).
	recheck, hasRecheck := st.RecheckDue()
	heldAhead := hasRecheck && st.PollHeld && recheck.After(now)
	if hasRecheck && !heldAhead {
		req := base
		req.Seq, req.At = st.PollSeq, recheck
		needed = append(needed, timer{req: req, at: later(now, recheck), mayBeHeld: st.PollHeld})
	}
	if due, ok := st.ReauthDue(); ok {
		req := base
		req.Kind, req.Seq, req.At = TimerReauth, st.Reauth.Seq, due
		needed = append(needed, timer{req: req, at: later(now, due), held: st.Reauth.Held})
	}
	if !st.ParkTimer.IsZero() {
		req := base
		req.Kind, req.At = TimerParked, st.ParkTimer
		needed = append(needed, timer{req: req, at: later(now, st.ParkTimer)})
	}
	if inbox > 0 {
		req := base
		req.Kind = TimerInbox
		needed = append(needed, timer{req: req, at: now, also: TimerRetry})
	}
	next := now
	switch {
	case len(needed) == 0 && heldAhead:
		next = recheck // the held re-check keeps the order in the index, for when it is due
	case len(needed) == 0:
		next = time.Time{}
	}
	if claimed, err := r.Store.ClaimTimer(ctx, t, next); err != nil || !claimed {
		return 0, err
	}
	scheduled := 0
	for _, tm := range needed {
		if tm.mayBeHeld {
			if tm.held, err = r.Store.TakeHeldOrder(ctx, t.Shop, t.Order); err != nil {
				return scheduled, err
			}
		}
		if tm.held {
			if err := r.Polls.Schedule(ctx, tm.req, tm.at); err != nil {
				return scheduled, err
			}
			scheduled++
			r.Logger.Info("a held timer is due: handed to JetStream", zap.String("shop", t.Shop), zap.String("order", t.Order),
				zap.String("timer", timerKind(tm.req.Kind)), zap.Time("was_due", t.Due))
			continue
		}
		state, err := r.Waiting(ctx, tm.req, st.UpdatedAt, now.Add(-r.Grace))
		if err == nil && state != TimerWaiting && tm.also != "" {
			other := tm.req
			other.Kind = tm.also
			state, err = r.Waiting(ctx, other, st.UpdatedAt, now.Add(-r.Grace))
		}
		if err != nil {
			return scheduled, fmt.Errorf("looking for the %s timer of %s/%s: %w", timerKind(tm.req.Kind), t.Shop, t.Order, err)
		}
		if state == TimerWaiting {
			continue
		}
		// A re-check handled after the state's last write decided the order or scheduled the next
		// one; with no next one stored, it decided it and published the decision: the re-check
		// made again must not publish it twice. Not so for a held re-check: the next one it held
		// went with the write Redis lost, so nothing says it decided; the re-check made again
		// publishes what it finds, under the outcome's deterministic message ID (a duplicate
		// within RESULTS's duplicate window if it was published).
		tm.req.Behind = state == TimerHandled && !st.PollHeld
		if err := r.Polls.Schedule(ctx, tm.req, tm.at); err != nil {
			return scheduled, err
		}
		scheduled++
		r.Logger.Warn("a timer the order's state relies on was missing from JetStream; scheduled again",
			zap.String("shop", t.Shop), zap.String("order", t.Order), zap.String("timer", timerKind(tm.req.Kind)),
			zap.Time("was_due", t.Due), zap.Time("at", tm.at))
	}
	return scheduled, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func timerKind(kind string) string {
	if kind == TimerPoll {
		return "re-check"
	}
	return kind
}
