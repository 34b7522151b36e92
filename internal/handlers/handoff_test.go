package handlers_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv/clock"
)

// reviewProvider registers every order under review (審査中) and answers re-checks with screening.
type reviewProvider struct {
	fakeProvider
	mu        sync.Mutex
	screening atodene.Screening
}

func (p *reviewProvider) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	if _, err := p.fakeProvider.Register(ctx, req); err != nil {
		return atodene.Registration{}, err
	}
	return atodene.Registration{TransactionID: "12345678901", Auto: atodene.DecisionReview}, nil
}

func (p *reviewProvider) GetAuthori(context.Context, string) (atodene.Screening, error) {
	p.count("getauthori")
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.screening, nil
}

// handoffEnv is Orders holding re-checks due more than a minute ahead, with the first re-check ten
// minutes after registration, a Handoff handing them a minute ahead, and a Reconciler.
type handoffEnv struct {
	o     *handlers.Orders
	store *orderstate.Store
	polls *timedPolls
	prov  *reviewProvider
	clock *clock.Fake
	h     *handlers.Handoff
	rec   *handlers.Reconciler
	// waited counts the Reconciler's looks into JetStream; missing is what they find.
	waited int
}

func newHandoffEnv(t *testing.T) *handoffEnv {
	t.Helper()
	e := &handoffEnv{store: newStore(t), polls: &timedPolls{}, prov: &reviewProvider{screening: underReview}, clock: clock.NewFake(time.Now())}
	e.o, e.h, e.rec = reviewParts(t, e.store, e.polls, e.prov, e.clock, time.Minute, func() handlers.TimerState {
		e.waited++
		return handlers.TimerMissing
	})
	return e
}

// reviewParts builds, over store, for shop-a whose calls go to prov: Orders holding the re-checks
// due more than hold ahead (the first ten minutes after registration), a Handoff handing them a
// minute ahead, and a Reconciler with a minute's grace to which waiting says where each timer is.
func reviewParts(t *testing.T, store *orderstate.Store, polls handlers.Polls, prov *reviewProvider, clk *clock.Fake, hold time.Duration,
	waiting func() handlers.TimerState) (*handlers.Orders, *handlers.Handoff, *handlers.Reconciler) {
	t.Helper()
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}}
	o := newOrders(t, handlers.OrdersConfig{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: &flakyOutcomes{}, Polls: polls, Now: clk.Now, PollHoldAhead: hold,
		Poll: handlers.PollPolicy{First: 10 * time.Minute, Max: 30 * time.Minute, Deadline: 24 * time.Hour}})
	h := &handlers.Handoff{Store: store, Shops: []string{"shop-a"}, Polls: polls, Ahead: time.Minute, Now: clk.Now}
	rec := &handlers.Reconciler{Store: store, Shops: []string{"shop-a"}, Polls: polls, Grace: time.Minute, Now: clk.Now, Logger: zap.NewNop(),
		Waiting: func(context.Context, handlers.PollRequest, time.Time, time.Time) (handlers.TimerState, error) {
			return waiting(), nil
		}}
	return o, h, rec
}

// register registers order o-1 under review and returns its state.
func (e *handoffEnv) register(t *testing.T) orderstate.State {
	t.Helper()
	ctx := context.Background()
	if err := e.o.OrderCreated(ctx, createdEvent("c-1", "o-1", 1)); err != nil {
		t.Fatal(err)
	}
	st, err := e.store.Get(ctx, "shop-a", "o-1")
	if err != nil || st.Status != orderstate.StatusPending || !st.PollHeld {
		t.Fatalf("after registration: %+v, %v; want pending with its re-check held", st, err)
	}
	return st
}

// handOnce runs the Handoff once and checks how many re-checks it scheduled.
func (e *handoffEnv) handOnce(t *testing.T, want int) {
	t.Helper()
	if n, err := e.h.Once(context.Background()); err != nil || n != want {
		t.Fatalf("Handoff.Once at %s: %d, %v; want %d", e.clock.Now().Format(time.TimeOnly), n, err, want)
	}
}

// TestHeldRecheckIsHandedOnceBeforeItIsDue: a re-check due ten minutes ahead is not put in
// JetStream when the order goes under review; the Handoff hands it, for the time it is due, once
// it is due within a minute, and once only; the re-check then runs and the next one is held again.
func TestHeldRecheckIsHandedOnceBeforeItIsDue(t *testing.T) {
	t.Parallel()
	e, ctx := newHandoffEnv(t), context.Background()
	st := e.register(t)
	if n := e.polls.count(handlers.TimerPoll); n != 0 {
		t.Fatalf("%d re-checks scheduled in JetStream at registration, want 0 (held)", n)
	}
	if wait := st.PollAt.Sub(e.clock.Now()); wait < 9*time.Minute || wait > 11*time.Minute {
		t.Fatalf("re-check due in %s, want about 10 min", wait)
	}
	e.handOnce(t, 0)
	e.clock.Advance(st.PollAt.Sub(e.clock.Now()) - time.Minute - time.Second)
	e.handOnce(t, 0) // due in a minute and a second: not yet
	e.clock.Advance(2 * time.Second)
	e.handOnce(t, 1)
	got := e.polls.last(t, handlers.TimerPoll)
	if !got.at.Equal(st.PollAt) || got.req.Seq != st.PollSeq || got.req.OrderID != "o-1" || got.req.Shop != "shop-a" {
		t.Fatalf("handed %+v at %s; want seq %d at %s", got.req, got.at, st.PollSeq, st.PollAt)
	}
	e.handOnce(t, 0) // handed once
	// A later write of the state (a tracking number queued until the credit is OK) does not hold it again.
	if err := e.o.TrackingEntered(ctx, trackingEvent("t-1", "o-1", 2, "1234-5678-9012")); err != nil {
		t.Fatal(err)
	}
	e.handOnce(t, 0)

	e.clock.Advance(time.Minute)
	if err := e.o.PollDue(ctx, got.req); err != nil {
		t.Fatal(err)
	}
	next, _ := e.store.Get(ctx, "shop-a", "o-1")
	if !next.PollHeld || !next.PollAt.After(st.PollAt) || e.polls.count(handlers.TimerPoll) != 1 {
		t.Fatalf("after the re-check: held %v at %s (%d scheduled); want the next held, later", next.PollHeld, next.PollAt, e.polls.count(handlers.TimerPoll))
	}
	e.clock.Advance(next.PollAt.Sub(e.clock.Now()))
	e.handOnce(t, 1)
}

// TestHeldRecheckOfADecidedOrderIsDropped: an order decided (by an operator's re-check) or
// cancelled while its next re-check is held: the Handoff takes it out and schedules nothing.
func TestHeldRecheckOfADecidedOrderIsDropped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		act  func(ctx context.Context, e *handoffEnv) error
	}{
		{"approved by an operator's re-check", func(ctx context.Context, e *handoffEnv) error {
			e.prov.screening = manualOK
			return e.o.RecheckRequested(ctx, recheckEvent("r-1", "o-1", 2))
		}},
		{"cancelled", func(ctx context.Context, e *handoffEnv) error {
			return e.o.OrderCancelled(ctx, cancelEvent("x-1", "o-1", 2))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, ctx := newHandoffEnv(t), context.Background()
			st := e.register(t)
			if err := tc.act(ctx, e); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(st.PollAt.Sub(e.clock.Now()))
			e.handOnce(t, 0)
			if n := e.polls.count(handlers.TimerPoll); n != 0 {
				t.Errorf("%d re-checks scheduled, want 0", n)
			}
			if held, _ := e.store.TakeHeld(ctx, "shop-a", e.clock.Now().Add(time.Hour), e.clock.Now().Add(2*time.Hour), 10); len(held) != 0 {
				t.Errorf("held re-checks left: %+v", held)
			}
		})
	}
}

// TestReconcilerHandsAHeldRecheck: an overdue held re-check that no worker handed (none runs the
// Handoff, or one claimed it and stopped) is handed to JetStream by the Reconciler without looking
// for it there, and leaves the held re-checks; one handed that JetStream then lost is looked for,
// found missing, and scheduled again.
func TestReconcilerHandsAHeldRecheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		looks int
		do    func(ctx context.Context, e *handoffEnv, st orderstate.State)
	}{
		{"not handed", 0, func(context.Context, *handoffEnv, orderstate.State) {}},
		{"claimed by a worker that stopped", 0, func(ctx context.Context, e *handoffEnv, st orderstate.State) {
			if held, err := e.store.TakeHeld(ctx, "shop-a", st.PollAt, st.PollAt.Add(time.Hour), 10); err != nil || len(held) != 1 || held[0].Order != "o-1" || held[0].Due.UnixMilli() != st.PollAt.UnixMilli() {
				t.Fatalf("TakeHeld: %+v, %v; want o-1 due %s", held, err, st.PollAt)
			}
		}},
		{"handed, then lost by JetStream", 1, func(ctx context.Context, e *handoffEnv, st orderstate.State) {
			e.clock.Advance(st.PollAt.Sub(e.clock.Now()))
			e.handOnce(t, 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, ctx := newHandoffEnv(t), context.Background()
			st := e.register(t)
			tc.do(ctx, e, st)
			before := e.polls.count(handlers.TimerPoll)
			e.clock.Advance(st.PollAt.Sub(e.clock.Now()) + 2*time.Minute)
			if n, err := e.rec.Once(ctx); err != nil || n != 1 {
				t.Fatalf("Reconciler.Once: %d, %v; want 1 scheduled", n, err)
			}
			if got := e.polls.last(t, handlers.TimerPoll); e.polls.count(handlers.TimerPoll) != before+1 || got.req.Seq != st.PollSeq || got.req.OrderID != "o-1" {
				t.Errorf("scheduled %+v (%d in all)", got.req, e.polls.count(handlers.TimerPoll))
			}
			if e.waited != tc.looks {
				t.Errorf("looked into JetStream %d times, want %d", e.waited, tc.looks)
			}
			e.clock.Advance(time.Hour)
			e.handOnce(t, 0) // the Reconciler took it: the Handoff does not hand it again
		})
	}
}

// TestHandedKeepsANewerHold: a re-check claimed and handed is removed from the held re-checks,
// but not the newer one a write of the order held meanwhile.
func TestHandedKeepsANewerHold(t *testing.T) {
	t.Parallel()
	e, ctx := newHandoffEnv(t), context.Background()
	st := e.register(t)
	claim := st.PollAt.Add(time.Minute)
	held, err := e.store.TakeHeld(ctx, "shop-a", st.PollAt, claim, 10)
	if err != nil || len(held) != 1 {
		t.Fatalf("TakeHeld: %+v, %v", held, err)
	}
	// Meanwhile the re-check runs (handed by another way) and the next one is held.
	if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Seq: st.PollSeq}); err != nil {
		t.Fatal(err)
	}
	next, _ := e.store.Get(ctx, "shop-a", "o-1")
	if err := e.store.Handed(ctx, "shop-a", []string{"o-1"}, claim); err != nil {
		t.Fatal(err)
	}
	again, err := e.store.TakeHeld(ctx, "shop-a", e.clock.Now().Add(24*time.Hour), claim, 10)
	if err != nil || len(again) != 1 || again[0].Due.UnixMilli() != next.PollAt.UnixMilli() {
		t.Errorf("held after Handed: %+v, %v; want o-1 due %s (the newer hold)", again, err, next.PollAt)
	}
}

// failingPolls fails every schedule.
type failingPolls struct{}

func (failingPolls) Schedule(context.Context, handlers.PollRequest, time.Time) error {
	return errors.New("jetstream: no responders")
}

// TestHandoffRetriesAfterTheClaim: JetStream refuses the schedules: the Handoff's run fails naming
// the shop, and the re-checks it claimed are taken again once the claim runs out, as are those of
// a worker that claimed them and stopped.
func TestHandoffRetriesAfterTheClaim(t *testing.T) {
	t.Parallel()
	for _, jetStreamFails := range []bool{true, false} {
		e, ctx := newHandoffEnv(t), context.Background()
		st := e.register(t)
		e.clock.Advance(st.PollAt.Sub(e.clock.Now()))
		if jetStreamFails {
			e.h.Polls = failingPolls{}
			if n, err := e.h.Once(ctx); n != 0 || err == nil || !strings.Contains(err.Error(), "shop shop-a") {
				t.Fatalf("Once with JetStream failing: %d, %v; want 0 and an error naming shop-a", n, err)
			}
			e.h.Polls = e.polls
		} else if _, err := e.store.TakeHeld(ctx, "shop-a", e.clock.Now().Add(time.Minute), e.clock.Now().Add(time.Minute+30*time.Second), 10); err != nil {
			t.Fatal(err)
		}
		e.handOnce(t, 0) // claimed
		e.clock.Advance(29 * time.Second)
		e.handOnce(t, 0)
		e.clock.Advance(2 * time.Second)
		e.handOnce(t, 1)
	}
}

func recheckEvent(id, order string, seq uint64) handlers.Event[events.RecheckRequest] {
	return handlers.Event[events.RecheckRequest]{Meta: handlers.Meta{ID: id, Source: "test", Type: events.TypeRecheckRequested, Shop: "shop-a", Seq: seq, Time: time.Now()},
		Data: events.RecheckRequest{ShopID: "shop-a", OrderID: order, Operator: "op"}}
}

func cancelEvent(id, order string, seq uint64) handlers.Event[events.Cancel] {
	return handlers.Event[events.Cancel]{Meta: handlers.Meta{ID: id, Source: "test", Type: events.TypeOrderCancelled, Shop: "shop-a", Seq: seq, Time: time.Now()},
		Data: events.Cancel{ShopID: "shop-a", OrderID: order, Reason: "buyer"}}
}

// TestReconcilerDoesNotTakeAHeldRecheckForDecided: Redis rolled back past a held re-check that was
// handed, fired and handled: the due message was handled after the state's last write and no
// schedule is stored. For a re-check scheduled in JetStream that means the lost re-check decided
// (it would have stored the next one) and the one made again must not publish it; for a held one
// the next was held in Redis and lost with it, so the re-check made again publishes what it finds.
func TestReconcilerDoesNotTakeAHeldRecheckForDecided(t *testing.T) {
	t.Parallel()
	e, ctx := newHandoffEnv(t), context.Background()
	st := e.register(t)
	e.clock.Advance(st.PollAt.Sub(e.clock.Now()))
	e.handOnce(t, 1)
	e.rec.Waiting = func(context.Context, handlers.PollRequest, time.Time, time.Time) (handlers.TimerState, error) {
		return handlers.TimerHandled, nil
	}
	e.clock.Advance(2 * time.Minute)
	if n, err := e.rec.Once(ctx); err != nil || n != 1 {
		t.Fatalf("Reconciler.Once: %d, %v; want 1", n, err)
	}
	if got := e.polls.last(t, handlers.TimerPoll); got.req.Behind {
		t.Errorf("the held re-check made again is marked Behind: its decision would not be published")
	}
}

// TestHandoffAndReconcilerStopWhenCancelled: a run whose context is cancelled (the worker
// stopping) looks at no shop and says why; the held re-check stays for the next run.
func TestHandoffAndReconcilerStopWhenCancelled(t *testing.T) {
	t.Parallel()
	e := newHandoffEnv(t)
	st := e.register(t)
	e.clock.Advance(st.PollAt.Sub(e.clock.Now()) + 2*time.Minute) // due, and overdue past the grace
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := e.h.Once(ctx); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Handoff.Once cancelled: %d, %v; want 0, context.Canceled", n, err)
	}
	if n, err := e.rec.Once(ctx); n != 0 || !errors.Is(err, context.Canceled) || e.waited != 0 {
		t.Fatalf("Reconciler.Once cancelled: %d, %v, %d looks into JetStream; want 0, context.Canceled, 0", n, err, e.waited)
	}
	e.handOnce(t, 1)
}
