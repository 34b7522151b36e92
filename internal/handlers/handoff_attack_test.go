package handlers_test

// Attacks on the held re-checks (Handoff, the held set in orderstate): each was a fault found by a
// review of the first version, each with its case from before the change where it differs.

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/redisadmin"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/clock"
	"github.com/redis/go-redis/v9"
)

// jsPolls models the ATODENE_POLLS stream as the worker uses it (worker/nats.go): one schedule
// per timer subject (the order, plus the kind for other timers than the re-check), a new one
// replacing the earlier (MaxMsgsPerSubject 1), fired once at its time.
type jsPolls struct {
	mu        sync.Mutex
	scheds    map[string]timedPoll
	published int
}

func subjectOf(r handlers.PollRequest) string {
	s := r.Shop + "." + r.OrderID
	if r.Kind != handlers.TimerPoll {
		s += "." + r.Kind
	}
	return s
}

func (p *jsPolls) Schedule(_ context.Context, r handlers.PollRequest, at time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.scheds == nil {
		p.scheds = map[string]timedPoll{}
	}
	p.scheds[subjectOf(r)] = timedPoll{r, at}
	p.published++
	return nil
}

// due removes and returns the schedules due at or before now (those the server fires).
func (p *jsPolls) due(now time.Time) []timedPoll {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []timedPoll
	for k, s := range p.scheds {
		if !s.at.After(now) {
			out = append(out, s)
			delete(p.scheds, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// blockingPolls is a JetStream whose first publish is slow: it waits for release (a busy
// server, a worker paused), then goes through to inner.
type blockingPolls struct {
	inner   handlers.Polls
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (p *blockingPolls) Schedule(ctx context.Context, r handlers.PollRequest, at time.Time) error {
	p.once.Do(func() {
		close(p.entered)
		<-p.release
	})
	return p.inner.Schedule(ctx, r, at)
}

type reviewEnv struct {
	rdb    redis.UniversalClient
	prefix string
	store  *orderstate.Store
	js     *jsPolls
	prov   *reviewProvider
	clock  *clock.Fake
	o      *handlers.Orders
	h      *handlers.Handoff
	rec    *handlers.Reconciler
}

// newReviewEnv is newHandoffEnv with a JetStream model that replaces a schedule on its subject and
// fires it once, and the Redis client and prefix at hand. hold is OrdersConfig.PollHoldAhead (0:
// the behaviour before the change, every re-check a schedule at once).
func newReviewEnv(t *testing.T, hold time.Duration) *reviewEnv {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	t.Cleanup(store.Close)
	e := &reviewEnv{rdb: rdb, prefix: prefix, store: store, js: &jsPolls{}, prov: &reviewProvider{screening: underReview}, clock: clock.NewFake(time.Now())}
	e.o, e.h, e.rec = reviewParts(t, e.store, e.js, e.prov, e.clock, hold, func() handlers.TimerState { return handlers.TimerWaiting })
	return e
}

func (e *reviewEnv) register(t *testing.T, order string) orderstate.State {
	t.Helper()
	if err := e.o.OrderCreated(context.Background(), createdEvent("c-"+order, order, 1)); err != nil {
		t.Fatal(err)
	}
	st, err := e.store.Get(context.Background(), "shop-a", order)
	if err != nil || st.Status != orderstate.StatusPending {
		t.Fatalf("after registration: %+v, %v; want pending", st, err)
	}
	return st
}

// fire handles every schedule due now, as the poll consumer would.
func (e *reviewEnv) fire(t *testing.T) int {
	t.Helper()
	n := 0
	for _, s := range e.js.due(e.clock.Now()) {
		if err := e.o.PollDue(context.Background(), s.req); err != nil {
			t.Fatalf("PollDue %+v: %v", s.req, err)
		}
		n++
	}
	return n
}

func (e *reviewEnv) calls(op string) int {
	e.prov.fakeProvider.mu.Lock()
	defer e.prov.fakeProvider.mu.Unlock()
	return e.prov.calls[op]
}

// TestAttackHeldHandedRecheckIsNotReplacedByANewerHold: a held re-check handed to JetStream (it is due
// within -poll-handoff-ahead) stays there when, before it is due, the order's re-check is set
// again (an operator's re-check finds it on hold, an order.updated restarts the review) and the
// new one is held in Redis. Before the change the new schedule replaced it on the order's subject;
// now the old one fires as well: an extra getauthori call, and the back-off series advanced.
// With PollHoldAhead 0 (the old behaviour) the same steps make no extra call.
func TestAttackHeldHandedRecheckIsNotReplacedByANewerHold(t *testing.T) {
	t.Parallel()
	for _, act := range []struct {
		name string
		do   func(ctx context.Context, e *reviewEnv) error
	}{
		{"operator re-check finds it on hold", func(ctx context.Context, e *reviewEnv) error {
			e.prov.mu.Lock()
			e.prov.screening = onHold
			e.prov.mu.Unlock()
			return e.o.RecheckRequested(ctx, recheckEvent("r-1", "o-1", 2))
		}},
		{"order.updated restarts the review", func(ctx context.Context, e *reviewEnv) error {
			return e.o.OrderUpdated(ctx, handlers.Event[events.Order]{Meta: handlers.Meta{ID: "u-1", Source: "test",
				Type: events.TypeOrderUpdated, Shop: "shop-a", Seq: 2, Time: time.Now()}, Data: testOrder("o-1", 3100)})
		}},
	} {
		for _, hold := range []time.Duration{time.Minute, 0} {
			name := act.name + "/held"
			if hold == 0 {
				name = act.name + "/not held (before the change)"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e, ctx := newReviewEnv(t, hold), context.Background()
				st := e.register(t, "o-1")
				e.clock.Advance(st.PollAt.Sub(e.clock.Now()) - 30*time.Second) // due in 30 s
				if _, err := e.h.Once(ctx); err != nil {
					t.Fatal(err)
				}
				if err := act.do(ctx, e); err != nil {
					t.Fatal(err)
				}
				after, _ := e.store.Get(ctx, "shop-a", "o-1")
				if !after.PollAt.After(st.PollAt.Add(time.Minute)) {
					t.Fatalf("after %s: next re-check at %s, want one well after %s", act.name, after.PollAt, st.PollAt)
				}
				calls := e.calls("getauthori")
				// Until the new re-check is due, no re-check runs: the old one, handed already,
				// fires and is dropped.
				e.clock.Advance(st.PollAt.Sub(e.clock.Now()) + time.Second)
				fired := e.fire(t)
				now, _ := e.store.Get(ctx, "shop-a", "o-1")
				if got := e.calls("getauthori"); got != calls || now.PollAttempt != after.PollAttempt || !now.PollAt.Equal(after.PollAt) {
					t.Errorf("at the old re-check's time (%s) %d re-check(s) fired and getauthori was called %d more time(s); want none before %s (the new re-check). State now: attempt %d (was %d), next at %s",
						st.PollAt.Format(time.TimeOnly), fired, got-calls, after.PollAt.Format(time.TimeOnly), now.PollAttempt, after.PollAttempt, now.PollAt.Format(time.TimeOnly))
				}
			})
		}
	}
}

// TestAttackHeldSecondTakerAfterASlowPublish: a Handoff claims a held re-check and its publish is slow
// (JetStream busy: 500 schedules 32 at once each waiting for an ack can take longer than the
// claim's 30 s; or the worker is paused). Once the claim runs out another worker's Handoff (or the
// Reconciler, which removes the entry whatever its claim) hands it; the re-check fires and is
// handled; then the slow publish lands, for the same past time, and fires again: a second
// getauthori for one re-check. The slow Handoff never checks that its claim still holds.
func TestAttackHeldSecondTakerAfterASlowPublish(t *testing.T) {
	t.Parallel()
	for _, other := range []string{"another worker's Handoff", "the Reconciler"} {
		t.Run(other, func(t *testing.T) {
			t.Parallel()
			e, ctx := newReviewEnv(t, time.Minute), context.Background()
			st := e.register(t, "o-1")
			e.clock.Advance(st.PollAt.Sub(e.clock.Now()) - 30*time.Second)
			slow := &blockingPolls{inner: e.js, entered: make(chan struct{}), release: make(chan struct{})}
			a := &handlers.Handoff{Store: e.store, Shops: []string{"shop-a"}, Polls: slow, Ahead: time.Minute, Now: e.clock.Now}
			done := make(chan error, 1)
			go func() { _, err := a.Once(ctx); done <- err }()
			<-slow.entered // a claimed o-1 and is publishing
			e.clock.Advance(91 * time.Second)
			var n int
			var err error
			if other == "the Reconciler" {
				n, err = e.rec.Once(ctx)
			} else {
				n, err = e.h.Once(ctx)
			}
			if err != nil || n != 1 {
				t.Fatalf("%s: %d, %v; want the re-check handed", other, n, err)
			}
			if f := e.fire(t); f != 1 {
				t.Fatalf("%d fired, want 1", f)
			}
			calls := e.calls("getauthori")
			close(slow.release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			e.fire(t)
			if got := e.calls("getauthori"); got != calls {
				t.Errorf("the slow Handoff's publish, after its claim ran out and the re-check was handed and handled, made the re-check run again: %d extra getauthori call(s) (%d schedules published for one re-check)", got-calls, e.js.published)
			}
		})
	}
}

// TestAttackHeldUndecodableStateHoldsBackOthers: one held order whose state cannot be decoded fails
// GetMany for the whole batch: every other re-check claimed with it (up to 500) is not handed,
// and is claimed again 30 s later with the same result, run after run; only the Reconciler, a
// -reconcile-interval overdue, hands them.
func TestAttackHeldUndecodableStateHoldsBackOthers(t *testing.T) {
	t.Parallel()
	e, ctx := newReviewEnv(t, time.Minute), context.Background()
	st := e.register(t, "o-1")
	if err := e.rdb.Set(ctx, e.prefix+"order:{shop-a}:o-bad", `{"version":"not a number"}`, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.ZAdd(ctx, e.prefix+"held:{shop-a}", redis.Z{Score: float64(st.PollAt.UnixMilli() - 1000), Member: "shop-a:o-bad"}).Err(); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(st.PollAt.Sub(e.clock.Now()) - 30*time.Second)
	handed := 0
	var errs []error
	for range 4 { // the next two minutes, a run every 31 s
		n, err := e.h.Once(ctx)
		handed += n
		if err != nil {
			errs = append(errs, err)
		}
		e.clock.Advance(31 * time.Second)
	}
	if handed != 1 {
		t.Errorf("o-1's re-check handed %d times in two minutes, want 1; the runs failed with %v", handed, errs)
	}
}

// TestAttackHeldOldWorkerWriteDropsTheHold: during a rolling upgrade (or after a rollback to the
// previous release and forward again) a worker of the previous release writes a held order's
// state (a tracking number queued, an outbox published): its State has no poll_held, so the field
// is dropped on re-encoding. The Handoff then drops the held entry as "no longer holding" and the
// re-check is published by nobody until the Reconciler, a -reconcile-interval overdue. The old
// release's write is simulated by writing the state as decoded, without PollHeld and PollTrace.
func TestAttackHeldOldWorkerWriteDropsTheHold(t *testing.T) {
	t.Parallel()
	e, ctx := newReviewEnv(t, time.Minute), context.Background()
	st := e.register(t, "o-1")
	if !st.PollHeld {
		t.Fatal("not held")
	}
	old := st
	old.PollHeld, old.PollTrace = false, "" // fields the previous release does not know
	if _, err := e.store.Put(ctx, "shop-a", "o-1", old, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(st.PollAt.Sub(e.clock.Now()) - 30*time.Second)
	if n, err := e.h.Once(ctx); err != nil || n != 1 {
		t.Errorf("Handoff.Once 30 s before the re-check is due: %d, %v; want it handed (the state still relies on it: pending, poll_scheduled, poll_at %s)", n, err, st.PollAt.Format(time.TimeOnly))
	}
	e.clock.Advance(31 * time.Second)
	if f := e.fire(t); f != 1 {
		t.Errorf("at its time %d re-check(s) fired, want 1", f)
	}
}

// TestAttackHeldReconcilerHandsAHeldRecheckEarly: the Reconciler looks at an order because another of
// its timers is overdue (here its inbox: a handler holding its lease stopped with an event queued
// behind it) and, the order's re-check being held, takes it out of the held re-checks and
// publishes it to JetStream at once, though it is due minutes ahead: what the held re-checks are
// there to avoid. (If the queued event then sets a new re-check, e.g. an order.updated, the new one
// is held and the early schedule fires as well: TestAttackHeldHandedRecheckIsNotReplacedByANewerHold.)
func TestAttackHeldReconcilerHandsAHeldRecheckEarly(t *testing.T) {
	t.Parallel()
	e, ctx := newReviewEnv(t, time.Minute), context.Background()
	st := e.register(t, "o-1")
	if _, err := e.store.AcquireLease(ctx, "shop-a", "o-1", orderstate.Take{EventKey: "test/stopped", TTL: time.Minute, Now: e.clock.Now()}); err != nil {
		t.Fatal(err) // the holder that stops
	}
	queued := &orderstate.Parked{Type: events.TypeOrderUpdated, Key: "test/u-2", ID: "u-2", Source: "test", Body: []byte(`{}`)}
	if _, err := e.store.AcquireLease(ctx, "shop-a", "o-1", orderstate.Take{EventKey: "test/u-2", TTL: time.Minute, Now: e.clock.Now(), Queue: queued}); !errors.Is(err, orderstate.ErrQueued) {
		t.Fatalf("AcquireLease with the lease held: %v, want ErrQueued", err)
	}
	e.clock.Advance(2*time.Minute + time.Second) // the inbox's timer a grace overdue; the re-check due in 8 min
	if _, err := e.rec.Once(ctx); err != nil {
		t.Fatal(err)
	}
	e.js.mu.Lock()
	s, ok := e.js.scheds[subjectOf(handlers.PollRequest{Shop: "shop-a", OrderID: "o-1"})]
	e.js.mu.Unlock()
	if ok {
		t.Errorf("the Reconciler published the held re-check due at %s (in %s) to JetStream at %s; want it left held until %s ahead",
			s.at.Format(time.TimeOnly), s.at.Sub(e.clock.Now()), e.clock.Now().Format(time.TimeOnly), e.h.Ahead)
	}
	_ = st
}

// TestAttackHeldReconcilerHandsWithoutLateness: a held re-check no worker handed (none runs the
// Handoff, or all run the previous release, or its state lost poll_held) is handed by the
// Reconciler a -reconcile-interval overdue, for now: the message's "at" (PollRequest.At, what
// atodene_worker_timer_lateness_seconds measures from) is the time it was handed, not the time
// it was due, so a re-check two minutes late is observed ~0 s late and AtodeneWorkerRechecksLate
// cannot see the very failure it is there for.
func TestAttackHeldReconcilerHandsWithoutLateness(t *testing.T) {
	t.Parallel()
	e, ctx := newReviewEnv(t, time.Minute), context.Background()
	st := e.register(t, "o-1")
	e.clock.Advance(st.PollAt.Sub(e.clock.Now()) + 2*time.Minute) // no Handoff ran
	if n, err := e.rec.Once(ctx); err != nil || n != 1 {
		t.Fatalf("Reconciler.Once: %d, %v", n, err)
	}
	fired := e.js.due(e.clock.Now())
	if len(fired) != 1 {
		t.Fatalf("%d fired, want 1", len(fired))
	}
	if !fired[0].req.At.Equal(st.PollAt) {
		t.Errorf("the re-check due at %s, handed by the Reconciler at %s, carries at=%s: its lateness is observed from then, not from when it was due",
			st.PollAt.Format(time.TimeOnly), e.clock.Now().Format(time.TimeOnly), fired[0].req.At.Format(time.TimeOnly))
	}
}

// beforeGetMany runs do once, when armed, just before a pipeline that GETs key goes to Redis (the
// Handoff's GetMany): a write of the order landing between TakeHeld and GetMany.
type beforeGetMany struct {
	key   string
	armed atomic.Bool
	do    func()
}

func (h *beforeGetMany) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *beforeGetMany) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *beforeGetMany) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if a := c.Args(); c.Name() == "get" && len(a) == 2 && a[1] == h.key && h.armed.CompareAndSwap(true, false) {
				h.do()
				break
			}
		}
		return next(ctx, cmds)
	}
}

// TestAttackHeldHandoffPublishesANewerHoldFarAhead: the Handoff claims a re-check due in 30 s; before
// it reads the state, the order's re-check is set again and held (an operator's re-check finds it
// on hold: the next one ~20 min ahead). The Handoff checks only that the state holds *a* re-check,
// not the one it claimed (PollAt, seq), and publishes the new one to JetStream at once, 20 min
// ahead (what the held re-checks are there to avoid), then leaves it held: it is published again
// a minute before it is due. docs/architecture.md says it publishes "for those whose state still
// holds that re-check".
func TestAttackHeldHandoffPublishesANewerHoldFarAhead(t *testing.T) {
	t.Parallel()
	e, ctx := newReviewEnv(t, time.Minute), context.Background()
	hook := &beforeGetMany{key: e.prefix + "order:{shop-a}:o-1"}
	e.rdb.AddHook(hook)
	st := e.register(t, "o-1")
	e.clock.Advance(st.PollAt.Sub(e.clock.Now()) - 30*time.Second)
	hook.do = func() {
		e.prov.mu.Lock()
		e.prov.screening = onHold
		e.prov.mu.Unlock()
		if err := e.o.RecheckRequested(ctx, recheckEvent("r-1", "o-1", 2)); err != nil {
			t.Error(err)
		}
	}
	hook.armed.Store(true)
	if _, err := e.h.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if hook.armed.Load() {
		t.Fatal("the hook did not run")
	}
	e.js.mu.Lock()
	s, ok := e.js.scheds[subjectOf(handlers.PollRequest{Shop: "shop-a", OrderID: "o-1"})]
	e.js.mu.Unlock()
	if ok && s.at.Sub(e.clock.Now()) > e.h.Ahead {
		t.Errorf("the Handoff published a re-check due at %s, %s ahead (the newer hold, not the one it claimed, due %s); want none beyond %s ahead",
			s.at.Format(time.TimeOnly), s.at.Sub(e.clock.Now()).Round(time.Second), st.PollAt.Format(time.TimeOnly), e.h.Ahead)
	}
}

// TestAttackHeldLostStateOfAHeldRecheckReachesNoOperator: Redis loses an order under review (its state
// key alone, or everything: a flush, a restart from an empty or older snapshot). With its re-check
// a JetStream schedule (before the change, or -poll-handoff-ahead 0) the re-check fires, finds no
// state and is dead-lettered no-transaction for an operator (docs/lifecycle.md, operations.md,
// worker TestPollOfALostStateGoesToAnOperator). Held in Redis with only the state key lost, the
// Handoff hands it all the same, to the same end. (Held, with every key lost, the re-check goes with
// them: the price of holding, docs/configuration.md -poll-handoff-ahead.)
func TestAttackHeldLostStateOfAHeldRecheckReachesNoOperator(t *testing.T) {
	t.Parallel()
	for _, loss := range []string{"its state key", "every key"} {
		for _, hold := range []time.Duration{time.Minute, 0} {
			if loss == "every key" && hold > 0 {
				continue // the price of holding, documented: the held re-check goes with the data
			}
			name := loss + "/held"
			if hold == 0 {
				name = loss + "/not held (before the change)"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e, ctx := newReviewEnv(t, hold), context.Background()
				st := e.register(t, "o-1")
				var err error
				if loss == "every key" {
					err = redisadmin.DeleteKeys(ctx, e.rdb, e.prefix)
				} else {
					err = e.rdb.Del(ctx, e.prefix+"order:{shop-a}:o-1").Err()
				}
				if err != nil {
					t.Fatal(err)
				}
				e.clock.Advance(st.PollAt.Sub(e.clock.Now()) - 30*time.Second)
				letters := 0
				for range 10 { // ten minutes from 30 s before the re-check was due, workers running
					if hold > 0 {
						_, _ = e.h.Once(ctx)
					}
					_, _ = e.rec.Once(ctx)
					for _, s := range e.js.due(e.clock.Now()) {
						if reason, ok := handlers.DeadLetterReason(e.o.PollDue(ctx, s.req)); ok && reason == handlers.ReasonNoTransaction {
							letters++
						}
					}
					e.clock.Advance(time.Minute)
				}
				if letters != 1 {
					t.Errorf("%d no-transaction dead letters for the re-check of the lost order, want 1 (an operator must learn of an order under review whose state is gone)", letters)
				}
			})
		}
	}
}
