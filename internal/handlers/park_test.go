package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Parked events and the events handled while they wait (docs/lifecycle.md#parked-events): no
// tracking number or cancel is applied while an event of its order published before it waits,
// parked, and the order's park timer keeps the -park-limit deadline.

// cancelAlwaysFails is sentProvider whose cancels always fail transiently.
type cancelAlwaysFails struct{ sentProvider }

func (p *cancelAlwaysFails) Cancel(context.Context, string) error {
	p.count("cancel")
	return errors.New("modifytransaction.do: timeout")
}

// outcomes counts the outcomes of type typ published for order of shop-a.
func (e *env) outcomes(order, typ string) int {
	n := 0
	for _, id := range e.outs.ids {
		if strings.HasPrefix(id, "shop-a:"+order+":") && strings.HasSuffix(id, ":"+typ) {
			n++
		}
	}
	return n
}

// parkedTimer fires the order's parked-event timer at its time, twice (a redelivery).
func (e *env) parkedTimer(t *testing.T, order string) {
	t.Helper()
	ctx := context.Background()
	st, err := e.store.Get(ctx, "shop-a", order)
	if err != nil || st.ParkTimer.IsZero() {
		t.Fatalf("park timer of %s: %v, %v", order, st.ParkTimer, err)
	}
	e.clock.Advance(st.ParkTimer.Sub(e.clock.Now()))
	timer := handlers.PollRequest{Shop: "shop-a", OrderID: order, Kind: handlers.TimerParked}
	for range 2 {
		if err := e.o.PollDue(ctx, timer); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTrackingNumberWaitsBehindACancelWaitingForItsRetry: a cancel (seq 2) waits, parked, for an
// order the worker has no record of; the creation (seq 1) registers the order and the cancel's call
// fails transiently: it waits for its retry. A tracking number entered after the cancel (seq 3),
// handled now, used to be reported at once (shipment.ok, which starts billing) before the cancel
// was done. It waits, parked, behind the cancel, untried; the park timer, at the cancel's retry,
// cancels the order and the tracking number then finds it cancelled: shipment.ng, nothing reported,
// one outcome each, also when the timer is delivered again.
func TestTrackingNumberWaitsBehindACancelWaitingForItsRetry(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsOnce{}
	e, ctx := newEnv(t, prov), context.Background()
	const order = "PK-1"
	handled(t,
		e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 2)),
		e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", order, 1, orderedAt, 2950)))
	st, _ := e.store.Get(ctx, "shop-a", order)
	if st.Status != orderstate.StatusOK || len(st.Parked) != 1 || st.Parked[0].RetryAt.IsZero() {
		t.Fatalf("setup: status %q, parked %+v; want ok, the cancel waiting for its retry", st.Status, st.Parked)
	}
	retry := st.Parked[0].RetryAt
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 3, "1111-2222-3333")))
	st, _ = e.store.Get(ctx, "shop-a", order)
	if len(prov.slips) != 0 || e.outcomes(order, events.TypeShipmentOK)+e.outcomes(order, events.TypeShipmentNG) != 0 {
		t.Fatalf("the tracking number entered after the cancel was applied while the cancel waited for its retry: slips %v, outcomes %v", prov.slips, e.outs.ids)
	}
	if len(st.Parked) != 2 || !st.ParkTimer.Equal(retry) {
		t.Fatalf("parked %+v, park timer %v; want the cancel and the tracking number behind it, the timer at the cancel's retry %v", st.Parked, st.ParkTimer, retry)
	}
	for _, p := range st.Parked {
		if p.ID == "t-1" && (p.Tries != 0 || !p.RetryAt.IsZero()) {
			t.Errorf("the tracking number was tried (tries %d, retry at %v) while the cancel before it waited", p.Tries, p.RetryAt)
		}
	}
	e.parkedTimer(t, order)
	st, _ = e.store.Get(ctx, "shop-a", order)
	if st.Status != orderstate.StatusCancelled || len(st.Parked) != 0 || !st.ParkTimer.IsZero() {
		t.Fatalf("after the cancel's retry: status %q, %d parked, park timer %v; want cancelled, none, none", st.Status, len(st.Parked), st.ParkTimer)
	}
	if len(prov.slips) != 0 || prov.calls["cancel"] != 1 || e.outcomes(order, events.TypeCreditCancelled) != 1 ||
		e.outcomes(order, events.TypeShipmentNG) != 1 || e.outcomes(order, events.TypeShipmentOK) != 0 || len(e.letters.letters) != 0 {
		t.Errorf("slips %v, cancels %d, outcomes %v, letters %d; want nothing reported, the cancel done once, credit.cancelled and shipment.ng once each, no letter",
			prov.slips, prov.calls["cancel"], e.outs.ids, len(e.letters.letters))
	}
}

// TestCancelWaitsBehindATrackingNumberWaitingForItsRetry: the mirror case. A tracking number (seq
// 2) waits, parked, for the order's registration; the creation (seq 1) registers it and the
// tracking number's report fails transiently: it waits for its retry. The shop's cancel (seq 3),
// handled now, used to cancel the order at once, and the tracking number, entered before it, was
// then refused (shipment.ng). It waits, parked, behind the tracking number, with no call; at the
// retry the tracking number is reported (shipment.ok), then the credit cancelled, once each.
func TestCancelWaitsBehindATrackingNumberWaitingForItsRetry(t *testing.T) {
	t.Parallel()
	prov := &shipmentFails{failing: true}
	e, ctx := newEnv(t, prov), context.Background()
	const order = "PK-2"
	handled(t,
		e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 2, "1111-2222-3333")),
		e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", order, 1, orderedAt, 2950)))
	st, _ := e.store.Get(ctx, "shop-a", order)
	if st.Status != orderstate.StatusOK || len(st.Parked) != 1 || st.Parked[0].RetryAt.IsZero() {
		t.Fatalf("setup: status %q, parked %+v; want ok, the tracking number waiting for its retry", st.Status, st.Parked)
	}
	prov.failing = false
	handled(t, e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 3)))
	st, _ = e.store.Get(ctx, "shop-a", order)
	if st.Status != orderstate.StatusOK || len(st.Parked) != 2 || prov.calls["cancel"] != 0 || e.outcomes(order, events.TypeCreditCancelled) != 0 {
		t.Fatalf("the cancel entered after the tracking number was applied while the tracking number waited for its retry: status %q, %d parked, cancels %d, outcomes %v",
			st.Status, len(st.Parked), prov.calls["cancel"], e.outs.ids)
	}
	e.parkedTimer(t, order)
	st, _ = e.store.Get(ctx, "shop-a", order)
	if st.Status != orderstate.StatusCancelled || len(st.Parked) != 0 {
		t.Fatalf("after the retry: status %q, %d parked; want cancelled, none", st.Status, len(st.Parked))
	}
	if prov.calls["shipment"] != 1 || prov.calls["cancel"] != 1 || e.outcomes(order, events.TypeShipmentOK) != 1 ||
		e.outcomes(order, events.TypeShipmentNG) != 0 || e.outcomes(order, events.TypeCreditCancelled) != 1 {
		t.Errorf("reports %d, cancels %d, outcomes %v; want the tracking number entered before the cancel reported (shipment.ok), then the credit cancelled, once each",
			prov.calls["shipment"], prov.calls["cancel"], e.outs.ids)
	}
}

// TestEventsBeforeTheParkedOneAreNotHeld: a tracking number published before the cancel that waits
// for its retry (seq 5) is not held behind it: it is reported at once, as in stream order. A
// replayed dead letter is placed by the sequence it was first published at: one first published
// before the cancel is reported at once, one first published after it waits.
func TestEventsBeforeTheParkedOneAreNotHeld(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		seq, published uint64
		held           bool
	}{
		{name: "earlier in the stream", seq: 3},
		{name: "replay of one published earlier", seq: 9, published: 3},
		{name: "replay of one published later", seq: 9, published: 6, held: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prov := &cancelFailsOnce{}
			e, ctx := newEnv(t, prov), context.Background()
			const order = "PK-4"
			tracking := trackingEvent("t-1", order, tc.seq, "1111-2222-3333")
			tracking.Published = tc.published
			handled(t,
				e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 5)),
				e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", order, 1, orderedAt, 2950)),
				e.o.TrackingEntered(ctx, tracking))
			st, _ := e.store.Get(ctx, "shop-a", order)
			if tc.held {
				if len(st.Parked) != 2 || len(prov.slips) != 0 {
					t.Fatalf("%d parked, slips %v; want the tracking number held behind the cancel, not reported", len(st.Parked), prov.slips)
				}
			} else if len(st.Parked) != 1 || len(prov.slips) != 1 || e.outcomes(order, events.TypeShipmentOK) != 1 {
				t.Fatalf("%d parked, slips %v, outcomes %v; want the tracking number published before the cancel reported at once", len(st.Parked), prov.slips, e.outs.ids)
			}
			e.parkedTimer(t, order)
			st, _ = e.store.Get(ctx, "shop-a", order)
			if st.Status != orderstate.StatusCancelled || len(st.Parked) != 0 || e.outcomes(order, events.TypeCreditCancelled) != 1 ||
				e.outcomes(order, events.TypeShipmentOK)+e.outcomes(order, events.TypeShipmentNG) != 1 {
				t.Errorf("status %q, %d parked, outcomes %v; want cancelled, none parked, one outcome each", st.Status, len(st.Parked), e.outs.ids)
			}
		})
	}
}

// TestPastRetryDoesNotHideTheParkDeadline: the first parked event (a tracking number) was tried and
// failed transiently (a retry time), then its order went back to waiting (a registration under way
// again: 与信を実行 after a cancel, its call failing). The park timer fires at the retry and finds
// the event waiting again. The park timer used to stay at the retry's past time, equal to the one
// set, so no timer was scheduled and the event waited for ever; it is now scheduled for the
// event's -park-limit deadline (not for the past time, which would fire at once, again and again),
// where the event is dead-lettered no-transaction.
func TestPastRetryDoesNotHideTheParkDeadline(t *testing.T) {
	t.Parallel()
	e, ctx := newEnv(t, &sentProvider{}), context.Background()
	const order = "PK-5"
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 3, "1111-2222-3333")))
	st, err := e.store.Get(ctx, "shop-a", order)
	if err != nil || len(st.Parked) != 1 {
		t.Fatalf("setup: %v, %+v", err, st)
	}
	since := st.Parked[0].Since
	st.Status = orderstate.StatusRegistering
	st.Parked[0].Tries, st.Parked[0].LastError = 1, "shippingrequest: timeout"
	st.Parked[0].RetryAt = e.clock.Now().Add(time.Second).UTC()
	st.ParkTimer = st.Parked[0].RetryAt
	if _, err := e.store.Put(ctx, "shop-a", order, st, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.polls.mu.Lock()
	before := len(e.polls.timer)
	e.polls.mu.Unlock()
	e.clock.Advance(2 * time.Second)
	timer := handlers.PollRequest{Shop: "shop-a", OrderID: order, Kind: handlers.TimerParked}
	if err := e.o.PollDue(ctx, timer); err != nil {
		t.Fatal(err)
	}
	deadline := since.Add(e.o.ParkLimit)
	st, _ = e.store.Get(ctx, "shop-a", order)
	if !st.ParkTimer.Equal(deadline) {
		t.Errorf("park timer %v after the retry's timer found the event waiting again; want its -park-limit deadline %v", st.ParkTimer, deadline)
	}
	e.polls.mu.Lock()
	scheduled := false
	for i := before; i < len(e.polls.timer); i++ {
		if e.polls.timer[i].Kind != handlers.TimerParked {
			continue
		}
		if e.polls.at[i].Before(e.clock.Now()) {
			t.Errorf("park timer scheduled for %v, a time passed (now %v): it would fire at once, again and again", e.polls.at[i], e.clock.Now())
		}
		scheduled = scheduled || e.polls.at[i].Equal(deadline)
	}
	e.polls.mu.Unlock()
	if !scheduled {
		t.Fatalf("no park timer scheduled for the -park-limit deadline %v: the event would wait for ever", deadline)
	}
	e.clock.Advance(deadline.Sub(e.clock.Now()))
	if err := e.o.PollDue(ctx, timer); err != nil {
		t.Fatal(err)
	}
	st, _ = e.store.Get(ctx, "shop-a", order)
	if len(st.Parked) != 0 || len(e.letters.letters) != 1 || e.letters.letters[0].Reason != handlers.ReasonNoTransaction.String() {
		t.Errorf("at the deadline: %d parked, letters %+v; want the tracking number dead-lettered no-transaction", len(st.Parked), e.letters.letters)
	}
}

// TestExhaustedParkedEventReleasesTheRestOnce: a cancel (seq 2) and a tracking number (seq 3) wait,
// parked, for the order's registration; the cancel's call fails at every try. The tracking number
// waits untried; once the cancel is dead-lettered exhausted, it is applied exactly once (timers
// delivered twice), and no park timer is left.
func TestExhaustedParkedEventReleasesTheRestOnce(t *testing.T) {
	t.Parallel()
	prov := &cancelAlwaysFails{}
	e, ctx := newEnv(t, prov), context.Background()
	e.o.MaxAttempts = 3
	const order = "PK-6"
	handled(t,
		e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 2)),
		e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 3, "1111-2222-3333")),
		e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", order, 1, orderedAt, 2950)))
	for i := 0; i < 10; i++ {
		st, _ := e.store.Get(ctx, "shop-a", order)
		if len(st.Parked) == 0 {
			break
		}
		if len(prov.slips) != 0 {
			t.Fatalf("round %d: tracking number reported while the cancel before it still waits", i)
		}
		e.parkedTimer(t, order)
	}
	st, _ := e.store.Get(ctx, "shop-a", order)
	if len(st.Parked) != 0 || !st.ParkTimer.IsZero() {
		t.Fatalf("%d still parked, park timer %v; want none", len(st.Parked), st.ParkTimer)
	}
	if len(e.letters.letters) != 1 || e.letters.letters[0].Reason != handlers.ReasonExhausted.String() {
		t.Errorf("dead letters %+v; want the cancel's, exhausted, once", e.letters.letters)
	}
	if len(prov.slips) != 1 || prov.calls["cancel"] != 3 || e.outcomes(order, events.TypeShipmentOK) != 1 {
		t.Errorf("slips %v, cancels %d, outcomes %v; want the tracking number reported once, 3 cancel tries", prov.slips, prov.calls["cancel"], e.outs.ids)
	}
}

// TestExpiredParkedEventReleasesTheRest: a cancel (seq 2) parks for an order the worker has no
// record of; a tracking number (seq 3) parks a day before the cancel's -park-limit. At the cancel's
// deadline the cancel is dead-lettered no-transaction; the tracking number keeps waiting, with a
// timer for its own deadline; the order then registers and the tracking number is reported once.
func TestExpiredParkedEventReleasesTheRest(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	const order = "PK-7"
	limit := e.o.ParkLimit
	handled(t, e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 2)))
	e.clock.Advance(limit - 24*time.Hour)
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 3, "1111-2222-3333")))
	e.parkedTimer(t, order)
	st, _ := e.store.Get(ctx, "shop-a", order)
	if len(st.Parked) != 1 || st.Parked[0].ID != "t-1" || !st.ParkTimer.Equal(st.Parked[0].Since.Add(limit)) {
		t.Fatalf("after the cancel's deadline: parked %+v, timer %v; want t-1 left with its own deadline", st.Parked, st.ParkTimer)
	}
	handled(t, e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", order, 1, orderedAt, 2950)))
	st, _ = e.store.Get(ctx, "shop-a", order)
	if len(prov.slips) != 1 || len(st.Parked) != 0 || st.Status != orderstate.StatusOK || len(e.letters.letters) != 1 ||
		e.letters.letters[0].Reason != handlers.ReasonNoTransaction.String() || e.outcomes(order, events.TypeShipmentOK) != 1 {
		t.Errorf("slips %v, parked %d, status %q, letters %+v, outcomes %v; want reported once, none parked, ok, the cancel's no-transaction letter",
			prov.slips, len(st.Parked), st.Status, e.letters.letters, e.outs.ids)
	}
}

// unknownOrder writes order of shop-a in the unknown state (a registration whose outcome was lost).
func unknownOrder(t *testing.T, e *env, order string) {
	t.Helper()
	if _, err := e.store.Put(context.Background(), "shop-a", order, orderstate.State{Status: orderstate.StatusUnknown, CausedBy: "c-1", CreditSeq: 1}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
}

// letterOf returns the reason of the dead letter of stream sequence seq ("" when none).
func (e *env) letterOf(seq uint64) string {
	for _, l := range e.letters.letters {
		if l.Sequence == seq {
			return l.Reason
		}
	}
	return ""
}

// TestHeldCancelOutlivesTheEventItWaitedFor: on an order whose registration's outcome is unknown, a
// tracking number (seq 2) waits, parked, for the operator's resolution; the shop's cancel (seq 3),
// handled a minute later, is held behind it. A cancel alone on such an order is dead-lettered
// outcome-unknown at once ("cancel it at ATODENE by hand"). The park timer comes an hour after the
// tracking number's -park-limit (the worker was down): the tracking number is dead-lettered
// no-transaction, and the cancel, which waited for it only, is then tried as at once:
// outcome-unknown, not dead-lettered in the same sweep as having waited for a transaction.
func TestHeldCancelOutlivesTheEventItWaitedFor(t *testing.T) {
	t.Parallel()
	e, ctx := newEnv(t, &sentProvider{}), context.Background()
	const order = "PK-U1"
	unknownOrder(t, e, order)
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 2, "1111-2222-3333")))
	e.clock.Advance(time.Minute)
	handled(t, e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 3)))
	st, _ := e.store.Get(ctx, "shop-a", order)
	if len(st.Parked) != 2 {
		t.Fatalf("setup: parked %+v; want the tracking number and the cancel behind it", st.Parked)
	}
	e.clock.Advance(st.ParkTimer.Sub(e.clock.Now()) + time.Hour)
	if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: order, Kind: handlers.TimerParked}); err != nil {
		t.Fatal(err)
	}
	st, _ = e.store.Get(ctx, "shop-a", order)
	if e.letterOf(2) != handlers.ReasonNoTransaction.String() || e.letterOf(3) != handlers.ReasonOutcomeUnknown.String() ||
		len(st.Parked) != 0 || e.outcomes(order, events.TypeCreditCancelled) != 0 {
		t.Errorf("letters %+v, parked %+v, outcomes %v; want the tracking number no-transaction, the cancel outcome-unknown, none parked",
			e.letters.letters, st.Parked, e.outs.ids)
	}
}

// TestHeldEventDeadlineWaitsForTheFirst: a cancel (seq 5) is held behind a tracking number (seq 2)
// waiting for the operator's resolution; two days later a correction (seq 4, published before the
// cancel) replaces the tracking number, first still, with its own, later, deadline. The
// cancel's own deadline, earlier, is no deadline: it waits for the correction, and is tried when the
// correction goes (here at the correction's deadline: outcome-unknown), not dead-lettered
// no-transaction at its own while the event it waits for still waits.
func TestHeldEventDeadlineWaitsForTheFirst(t *testing.T) {
	t.Parallel()
	e, ctx := newEnv(t, &sentProvider{}), context.Background()
	const order = "PK-U2"
	unknownOrder(t, e, order)
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 2, "1111-2222-3333")))
	e.clock.Advance(time.Minute)
	handled(t, e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 5)))
	e.clock.Advance(48 * time.Hour)
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-2", order, 4, "4444-5555-6666")))
	st, _ := e.store.Get(ctx, "shop-a", order)
	cancelDeadline := e.clock.Now().Add(-48 * time.Hour).Add(e.o.ParkLimit) // the cancel was held 48 h ago
	if len(st.Parked) != 2 || st.ParkTimer.Before(cancelDeadline.Add(time.Hour)) {
		t.Errorf("park timer %v, parked %+v; want the correction's deadline, not the held cancel's (%v)", st.ParkTimer, st.Parked, cancelDeadline)
	}
	e.clock.Advance(cancelDeadline.Sub(e.clock.Now()) + time.Minute)
	if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: order, Kind: handlers.TimerParked}); err != nil {
		t.Fatal(err)
	}
	if st, _ = e.store.Get(ctx, "shop-a", order); len(st.Parked) != 2 || len(e.letters.letters) != 0 {
		t.Fatalf("at the held cancel's own deadline: parked %+v, letters %+v; want both still waiting", st.Parked, e.letters.letters)
	}
	e.parkedTimer(t, order)
	if st, _ = e.store.Get(ctx, "shop-a", order); e.letterOf(4) != handlers.ReasonNoTransaction.String() ||
		e.letterOf(5) != handlers.ReasonOutcomeUnknown.String() || len(st.Parked) != 0 {
		t.Errorf("at the correction's deadline: letters %+v, parked %+v; want the correction no-transaction, the cancel outcome-unknown", e.letters.letters, st.Parked)
	}
}

// TestCorrectionIsNotMovedBeforeACancel: a tracking number (seq 2) waits, parked, for the
// operator's resolution of an order whose outcome is unknown; the shop's cancel (seq 3) is held
// behind it; a correction (seq 4), published after the cancel, replaces the tracking number. It
// used to take the replaced number's place, before the cancel, so that the correction would be
// reported before the cancel (and each correction put the cancel's deadline off by -park-limit).
// It waits at its own place, after the cancel; the cancel, first now and held by nothing, is tried
// as if it came now (on an order whose outcome is unknown: outcome-unknown, cancel by hand).
func TestCorrectionIsNotMovedBeforeACancel(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	const order = "PK-U3"
	unknownOrder(t, e, order)
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 2, "1111-2222-3333")))
	handled(t, e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 3)))
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-2", order, 4, "4444-5555-6666")))
	st, _ := e.store.Get(ctx, "shop-a", order)
	if len(st.Parked) != 1 || st.Parked[0].ID != "t-2" || st.Parked[0].PlaceSeq != 0 ||
		e.letterOf(3) != handlers.ReasonOutcomeUnknown.String() || len(prov.slips) != 0 {
		t.Errorf("parked %+v, letters %+v, slips %v; want the correction alone parked at its own place, the cancel outcome-unknown, nothing reported",
			st.Parked, e.letters.letters, prov.slips)
	}
}

// cancelFailsTimes is sentProvider whose first n cancels fail transiently.
type cancelFailsTimes struct {
	sentProvider
	n int
}

func (p *cancelFailsTimes) Cancel(ctx context.Context, tx string) error {
	p.count("cancel")
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n > 0 {
		p.n--
		return errors.New("modifytransaction.do: timeout")
	}
	return nil
}

// TestReleasedEventRetriesPastItsDeadline: a cancel waits, parked, until 90 seconds before its
// -park-limit, behind a tracking number that waits for its order (held, or waiting for the order
// itself); then what it waited for comes and its call fails transiently, eight times (1 s doubling
// to a minute: 183 s of retries). Its deadline used to count on: at it, the cancel, retrying, was
// dead-lettered no-transaction ("waited 168h0m0s for its retry"), the order left live. The
// deadline is for waiting for the order: a retry is bounded by -max-deliveries (here ten), so the
// ninth try cancels the credit, once, and nothing is dead-lettered; a cancel that always fails is
// dead-lettered exhausted at its tenth try.
func TestReleasedEventRetriesPastItsDeadline(t *testing.T) {
	t.Parallel()
	releases := map[string]struct {
		setup   func(t *testing.T, e *env, order string) // before the tracking number (seq 2) and the cancel (seq 3) park
		release func(t *testing.T, e *env, order string)
	}{
		"held behind a tracking number waiting for the operator's resolution": {
			setup: unknownOrder,
			release: func(t *testing.T, e *env, order string) {
				handled(t, e.o.ResolveRequested(context.Background(), handlers.Event[events.ResolveRequest]{
					Meta: handlers.Meta{ID: "rs-1", Source: "console", Type: events.TypeResolveRequested, Shop: "shop-a", Seq: 100, Attempt: 1},
					Data: events.ResolveRequest{ShopID: "shop-a", OrderID: order, Operator: "ops-sato", TransactionID: "12345678901"}}))
			},
		},
		"waiting for the order itself": {
			setup: func(*testing.T, *env, string) {},
			release: func(t *testing.T, e *env, order string) {
				handled(t, e.o.OrderCreated(context.Background(), orderEvent(events.TypeOrderCreated, "c-1", order, 1, orderedAt, 2950)))
			},
		},
	}
	for name, rel := range releases {
		for _, tc := range []struct {
			fails, cancels int
			status         orderstate.Status
			letter         string
		}{
			{fails: 8, cancels: 9, status: orderstate.StatusCancelled},
			{fails: 100, cancels: 10, status: orderstate.StatusOK, letter: handlers.ReasonExhausted.String()},
		} {
			t.Run(fmt.Sprintf("%s, %d failures", name, tc.fails), func(t *testing.T) {
				t.Parallel()
				prov := &cancelFailsTimes{n: tc.fails}
				e, ctx := newEnv(t, prov), context.Background()
				const order = "PK-R1"
				rel.setup(t, e, order)
				handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 2, "1111-2222-3333")))
				e.clock.Advance(time.Minute)
				handled(t, e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 3)))
				st, _ := e.store.Get(ctx, "shop-a", order)
				if len(st.Parked) != 2 {
					t.Fatalf("setup: parked %+v; want the tracking number and the cancel", st.Parked)
				}
				deadline := e.clock.Now().Add(e.o.ParkLimit) // the cancel's
				e.clock.Advance(deadline.Sub(e.clock.Now()) - 90*time.Second)
				rel.release(t, e, order)
				for range 15 {
					if st, _ = e.store.Get(ctx, "shop-a", order); st.ParkTimer.IsZero() {
						break
					}
					e.parkedTimer(t, order)
				}
				st, _ = e.store.Get(ctx, "shop-a", order)
				cancelled, letters := 0, 0
				if tc.status == orderstate.StatusCancelled {
					cancelled = 1
				}
				if tc.letter != "" {
					letters = 1
				}
				if letters == 1 && e.letters.letters[0].Attempts != tc.cancels {
					t.Errorf("Dlq-Attempts %d; want %d, the cancel's tries", e.letters.letters[0].Attempts, tc.cancels)
				}
				if st.Status != tc.status || len(st.Parked) != 0 || e.letterOf(3) != tc.letter || len(e.letters.letters) != letters ||
					e.outcomes(order, events.TypeCreditCancelled) != cancelled || prov.calls["cancel"] != tc.cancels || len(prov.slips) != 1 {
					t.Errorf("status %q, %d parked, cancel's letter %q (%d letters), outcomes %v, cancels %d, slips %v; want %q, none parked, letter %q, %d cancels, the tracking number reported",
						st.Status, len(st.Parked), e.letterOf(3), len(e.letters.letters), e.outs.ids, prov.calls["cancel"], prov.slips, tc.status, tc.letter, tc.cancels)
				}
			})
		}
	}
}

// hookedKept is recordedKept that runs hook, once, when the copy of the event key is kept for the
// order's inbox: between a failed try and the write that puts the event in the inbox.
type hookedKept struct {
	recordedKept
	key  string
	once sync.Once
	hook func()
}

func (k *hookedKept) Keep(ctx context.Context, shop, order string, p orderstate.Parked, why string) error {
	if err := k.recordedKept.Keep(ctx, shop, order, p, why); err != nil {
		return err
	}
	if p.Key == k.key && why == handlers.KeptQueued {
		k.once.Do(k.hook)
	}
	return nil
}

// TestFailedEventIsNotOvertakenByALaterOne: the shop cancels a registered order (seq 2) and its call
// fails transiently, with no event of the order queued behind it; the tracking number entered after
// the cancel (seq 3) is handled before the cancel's retry: after the cancel's try, or during it,
// while the cancel's copy is being kept. The cancel used to be handed back to JetStream (holding a
// handler slot for its backoff), and then, kept in the inbox by a write after the one that let the
// order's lease go, and the tracking number, handled meanwhile, was reported (shipment.ok: billing
// starts) before the cancel. The cancel waits for its retry first in the order's inbox, its copy
// kept and its message done with, and the tracking number waits behind it: at the retry the credit
// is cancelled, then the tracking number finds it cancelled (shipment.ng, nothing reported), one
// outcome each, also when the timer is delivered again.
func TestFailedEventIsNotOvertakenByALaterOne(t *testing.T) {
	t.Parallel()
	for _, during := range []bool{false, true} {
		t.Run(fmt.Sprintf("during the cancel's try %v", during), func(t *testing.T) {
			t.Parallel()
			prov := &cancelFailsOnce{}
			const order = "PK-N1"
			var e *env
			ctx := context.Background()
			tracking := trackingEvent("t-1", order, 3, "1111-2222-3333")
			kept := &hookedKept{key: parkableCancel("x-1", order, 2).Key(), hook: func() {}}
			if during {
				kept.hook = func() { handled(t, e.o.TrackingEntered(ctx, tracking)) }
			}
			e = newEnvOn(t, newStore(t), prov, kept)
			handled(t, e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", order, 1, orderedAt, 2950)))
			if err := e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 2)); !handlers.RetriedLater(err) {
				t.Fatalf("the cancel whose call failed: %v; want it kept for its retry, its message done with", err)
			}
			if !during {
				handled(t, e.o.TrackingEntered(ctx, tracking))
			}
			if len(prov.slips) != 0 || e.outcomes(order, events.TypeShipmentOK) != 0 {
				t.Fatalf("the tracking number entered after the cancel was reported while the cancel waited for its retry: slips %v, outcomes %v", prov.slips, e.outs.ids)
			}
			if why, ok := kept.has(parkableCancel("x-1", order, 2).Key()); !ok || why != handlers.KeptQueued {
				t.Errorf("the cancel's copy: %q %v; want kept, queued", why, ok)
			}
			retry := false
			for _, x := range e.polls.timer {
				retry = retry || x.Kind == handlers.TimerRetry
			}
			if !retry {
				t.Fatalf("timers %+v; want the inbox's retry", e.polls.timer)
			}
			e.clock.Advance(time.Minute)
			for range 2 {
				if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: order, Kind: handlers.TimerRetry}); err != nil {
					t.Fatal(err)
				}
			}
			st, _ := e.store.Get(ctx, "shop-a", order)
			if st.Status != orderstate.StatusCancelled || len(prov.slips) != 0 || prov.calls["cancel"] != 1 ||
				e.outcomes(order, events.TypeCreditCancelled) != 1 || e.outcomes(order, events.TypeShipmentNG) != 1 || e.outcomes(order, events.TypeShipmentOK) != 0 || len(e.letters.letters) != 0 {
				t.Errorf("status %q, slips %v, cancels %d, outcomes %v, %d letters; want cancelled, nothing reported, the cancel done once, credit.cancelled and shipment.ng once each, no letter",
					st.Status, prov.slips, prov.calls["cancel"], e.outs.ids, len(e.letters.letters))
			}
		})
	}
}
