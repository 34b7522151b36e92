package handlers_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// parkTimers returns the park-deadline timers e scheduled, with when each is for.
func (e *env) parkTimers() []time.Time {
	e.polls.mu.Lock()
	defer e.polls.mu.Unlock()
	var at []time.Time
	for i, r := range e.polls.timer {
		if r.Kind == handlers.TimerParked {
			at = append(at, e.polls.at[i])
		}
	}
	return at
}

// parkedTracking parks a tracking number for o-1, an order the worker has no record of, and
// returns the state holding it.
func (e *env) parkedTracking(t *testing.T) orderstate.State {
	t.Helper()
	ctx := context.Background()
	if err := e.o.TrackingEntered(ctx, trackingEvent("t-early", "o-1", 5, "1234-5678-9012")); err != nil {
		t.Fatal(err)
	}
	st, err := e.store.Get(ctx, "shop-a", "o-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Parked) != 1 || st.ParkTimer.IsZero() {
		t.Fatalf("parked %+v, park timer %v: want the tracking number parked with a timer", st.Parked, st.ParkTimer)
	}
	return st
}

// TestParkTimerFiredEarlyIsScheduledAgain: the parked-event timer of an order is due when its
// oldest event has waited -park-limit. Handled a moment before that (the NATS server's clock a
// couple of seconds ahead of the worker's, or two workers' clocks apart), it finds nothing due
// yet. docs/lifecycle.md#a-park-deadline: "dead-letters ... each parked event that has waited that
// long; the others keep waiting, under a new timer". As the re-authorization timer does, it is
// scheduled again for its time, or the event would wait on with no timer in JetStream until the
// reconciler noticed.
func TestParkTimerFiredEarlyIsScheduledAgain(t *testing.T) {
	t.Parallel()
	e, ctx := newEnv(t, &fakeProvider{}), context.Background()
	st := e.parkedTracking(t)
	before := len(e.parkTimers())

	// JetStream fires the timer at its time by its own clock, 2 s ahead of the worker's.
	e.clock.Advance(st.ParkTimer.Sub(e.clock.Now()) - 2*time.Second)
	if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: handlers.TimerParked}); err != nil {
		t.Fatal(err)
	}
	after, err := e.store.Get(ctx, "shop-a", "o-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Parked) != 1 {
		t.Fatalf("parked %+v: the early timer should not dead-letter an event that has not waited the limit", after.Parked)
	}
	timers := e.parkTimers()
	if got := len(timers); got == before {
		t.Fatalf("the park timer handled 2 s early scheduled no timer again (%d park timers before and after): "+
			"the event parked since %s waits with nothing in JetStream to dead-letter it at %s (only the reconciler's overdue scan, -reconcile-interval later, finds it)",
			got, after.Parked[0].Since.Format(time.RFC3339), after.ParkTimer.Format(time.RFC3339))
	}
	if at := timers[len(timers)-1]; !at.Equal(after.ParkTimer) {
		t.Errorf("the park timer handled 2 s early is scheduled again for %s, want its time %s", at, after.ParkTimer)
	}

	// At its time, the event is dead-lettered.
	e.clock.Advance(2 * time.Second)
	if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: handlers.TimerParked}); err != nil {
		t.Fatal(err)
	}
	if st, err := e.store.Get(ctx, "shop-a", "o-1"); err != nil || len(st.Parked) != 0 {
		t.Fatalf("parked %+v (%v) once the limit is reached: want it dead-lettered", st.Parked, err)
	}
}

// TestEarlyTimerIsScheduledNoSoonerThanASecond: a timer handled early because the NATS server's
// clock is ahead of the worker's, scheduled again for its time alone, would be due at once by the
// server's clock, and fire again and again until the worker's clock caught up. It is scheduled no
// sooner than handlers.EarlyTimerAgain from now: the park timer, and the re-authorization timer
// handled before the approval's age is reached.
func TestEarlyTimerIsScheduledNoSoonerThanASecond(t *testing.T) {
	t.Parallel()
	t.Run("park", func(t *testing.T) {
		t.Parallel()
		e, ctx := newEnv(t, &fakeProvider{}), context.Background()
		st := e.parkedTracking(t)
		e.clock.Advance(st.ParkTimer.Sub(e.clock.Now()) - 200*time.Millisecond)
		if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: handlers.TimerParked}); err != nil {
			t.Fatal(err)
		}
		timers := e.parkTimers()
		if want := e.clock.Now().Add(handlers.EarlyTimerAgain); !timers[len(timers)-1].Equal(want) {
			t.Errorf("the park timer handled 200 ms early is scheduled again for %s, want %s (%v from now)", timers[len(timers)-1], want, handlers.EarlyTimerAgain)
		}
	})
	t.Run("reauth", func(t *testing.T) {
		t.Parallel()
		e := newReauthEnv(t)
		e.create(t, "o-1", "taro@example.jp")
		_, due := e.timer(t)
		e.clock.Advance(due.Sub(e.clock.Now()) - 300*time.Millisecond)
		n := e.polls.count(handlers.TimerReauth)
		if err := e.fire(t); err != nil {
			t.Fatal(err)
		}
		st := e.get(t, "o-1")
		last := e.polls.last(t, handlers.TimerReauth)
		if want := e.clock.Now().Add(handlers.EarlyTimerAgain); e.polls.count(handlers.TimerReauth) != n+1 || !last.at.Equal(want) ||
			!st.Reauth.Scheduled || st.Reauth.Held || !st.Reauth.At.Equal(due) || len(e.transactions(t)) != 1 {
			t.Fatalf("after the timer handled 300 ms early: %d timers (were %d), last at %s, state %+v, %d transactions; want one more at %s, due %s, nothing registered",
				e.polls.count(handlers.TimerReauth), n, last.at, *st.Reauth, len(e.transactions(t)), want, due)
		}
		e.clock.Advance(handlers.EarlyTimerAgain)
		if err := e.o.PollDue(context.Background(), last.req); err != nil {
			t.Fatal(err)
		}
		if _, ok := e.transactions(t)["o-1_R1"]; !ok {
			t.Errorf("at its time the re-authorization registered nothing: %+v", e.transactions(t))
		}
	})
}

// TestPollDelayBoundedForAnyPolicy: whatever the settings allow, PollPolicy.Delay itself never
// wraps: for intervals up to time.Duration's largest and any attempt, the delay is within
// [0, 1.1 × Max], and it grows from First.
func TestPollDelayBoundedForAnyPolicy(t *testing.T) {
	t.Parallel()
	for _, p := range []handlers.PollPolicy{
		{First: time.Minute, Max: 2500000 * time.Hour, Deadline: 336 * time.Hour},
		{First: time.Minute, Max: math.MaxInt64, Deadline: math.MaxInt64},
		{First: math.MaxInt64, Max: math.MaxInt64, Deadline: math.MaxInt64},
		{First: time.Minute, Max: 30 * time.Minute, Deadline: 336 * time.Hour},
	} {
		for _, attempt := range []int{0, 1, 5, 30, 62, 63, 64, 100, 1 << 20} {
			for range 20 {
				d := p.Delay(attempt)
				if d < 0 || float64(d) > 1.1*float64(p.Max)+1 {
					t.Fatalf("%+v: the delay before re-check %d is %v: want 0 to 1.1 × %v", p, attempt, d, p.Max)
				}
			}
		}
		if d := p.Delay(0); p.First < p.Max && (float64(d) < 0.9*float64(p.First)-1 || float64(d) > 1.1*float64(p.First)+1) {
			t.Errorf("%+v: the first delay is %v, want First ± 10%%", p, d)
		}
	}
}
