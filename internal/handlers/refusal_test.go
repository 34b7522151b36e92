package handlers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv/clock"
)

// refusingProvider answers every call with the sandbox's refusal of a wrong link password while
// refused is set, and otherwise as fakeProvider.
type refusingProvider struct {
	fakeProvider
	refused bool
}

func (p *refusingProvider) refusal(op string) error {
	p.count(op + "-refused")
	return &atodene.RejectedError{Op: op, Errors: []atodene.ProviderError{{Point: "linkPassword", Code: "er000003", Message: "認証エラー"}}}
}

func (p *refusingProvider) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	if p.refused {
		return atodene.Registration{}, p.refusal("register")
	}
	return p.fakeProvider.Register(ctx, req)
}

func (p *refusingProvider) GetAuthori(ctx context.Context, tx string) (atodene.Screening, error) {
	if p.refused {
		return atodene.Screening{}, p.refusal("getauthori")
	}
	return p.fakeProvider.GetAuthori(ctx, tx)
}

func (p *refusingProvider) ReportShipment(ctx context.Context, s atodene.Shipment) error {
	if p.refused {
		return p.refusal("shipment")
	}
	return p.fakeProvider.ReportShipment(ctx, s)
}

func (p *refusingProvider) Cancel(ctx context.Context, tx string) error {
	if p.refused {
		return p.refusal("cancel")
	}
	return p.fakeProvider.Cancel(ctx, tx)
}

func createdEvent(id, order string, seq uint64) handlers.Event[events.Order] {
	return handlers.Event[events.Order]{Meta: handlers.Meta{ID: id, Source: "test", Type: events.TypeOrderCreated, Shop: "shop-a", Seq: seq, Time: time.Now()},
		Data: testOrder(order, 2950)}
}

func wantReason(t *testing.T, err error, want handlers.Reason) {
	t.Helper()
	if got, ok := handlers.DeadLetterReason(err); !ok || got != want {
		t.Fatalf("error %v: dead-letter reason %q (permanent %v); want %q", err, got, ok, want)
	}
}

// TestAccountRefusalIsNoOrderOutcome: with a rotated link password, ATODENE refuses the merchant,
// not the order. The order gets no credit.invalid and no state of its own (it stays an intent to
// register), the shop's calls stop (a tracking number gets no shipment.ng, and no call is made),
// and the same order replayed after the fix registers.
func TestAccountRefusalIsNoOrderOutcome(t *testing.T) {
	t.Parallel()
	prov := &refusingProvider{refused: true}
	e, ctx := newEnv(t, prov), context.Background()
	e.okOrder(t)

	wantReason(t, e.o.OrderCreated(ctx, createdEvent("c-1", "RF-1", 10)), handlers.ReasonAccountRefused)
	st, _ := e.store.Get(ctx, "shop-a", "RF-1")
	if st.Status != orderstate.StatusRegistering || len(e.outs.ids) != 0 {
		t.Fatalf("after the refusal: status %q, outcomes %v; want registering and none", st.Status, e.outs.ids)
	}
	stopped := e.o.Refusals.Snapshot()
	if len(stopped) != 1 || stopped[0].Shop != "shop-a" || stopped[0].Detail != "linkPassword er000003" ||
		!stopped[0].RetryAt.Equal(e.clock.Now().Add(30*time.Second)) {
		t.Fatalf("stopped shops %+v; want shop-a, linkPassword er000003, retried in 30 s", stopped)
	}

	// While stopped, nothing calls ATODENE: another order, and a tracking number of an OK order.
	wantReason(t, e.o.OrderCreated(ctx, createdEvent("c-2", "RF-2", 11)), handlers.ReasonAccountRefused)
	wantReason(t, e.o.TrackingEntered(ctx, trackingEvent("t-1", "o-1", 12, "1111-2222-3333")), handlers.ReasonAccountRefused)
	if prov.calls["register-refused"] != 1 || prov.calls["shipment-refused"] != 0 || len(e.outs.ids) != 0 {
		t.Fatalf("calls %v, outcomes %v; want one refused registration, no shipment report, no outcome", prov.calls, e.outs.ids)
	}

	// Past the stop, one call tries again; refused once more, the stop doubles.
	e.clock.Advance(31 * time.Second)
	wantReason(t, e.o.OrderCreated(ctx, createdEvent("c-2", "RF-2", 11)), handlers.ReasonAccountRefused)
	if got := e.o.Refusals.Snapshot()[0].RetryAt; !got.Equal(e.clock.Now().Add(time.Minute)) || prov.calls["register-refused"] != 2 {
		t.Fatalf("second stop until %v after %d refused calls; want 1 min from now, 2 calls", got, prov.calls["register-refused"])
	}

	// The password is fixed; the dead letters are replayed once the stop ends.
	prov.refused = false
	e.clock.Advance(61 * time.Second)
	replay := createdEvent("c-1", "RF-1", 30)
	replay.Published, replay.ReplayCount = 10, "1"
	if err := e.o.OrderCreated(ctx, replay); err != nil {
		t.Fatalf("replay after the fix: %v", err)
	}
	tracking := trackingEvent("t-1", "o-1", 31, "1111-2222-3333")
	tracking.Published, tracking.ReplayCount = 12, "1"
	if err := e.o.TrackingEntered(ctx, tracking); err != nil {
		t.Fatalf("replayed tracking number: %v", err)
	}
	st, _ = e.store.Get(ctx, "shop-a", "RF-1")
	if st.Status != orderstate.StatusOK || prov.calls["register"] != 1 || prov.calls["shipment"] != 1 || len(e.o.Refusals.Snapshot()) != 0 {
		t.Errorf("after the replay: status %q, calls %v, stopped %v; want ok, registered and reported once, nothing stopped",
			st.Status, prov.calls, e.o.Refusals.Snapshot())
	}
	for _, id := range e.outs.ids {
		if strings.HasSuffix(id, events.TypeCreditInvalid) || strings.HasSuffix(id, events.TypeShipmentNG) {
			t.Errorf("outcome %s: an account refusal is no outcome of an order", id)
		}
	}
	if len(e.outs.ids) != 2 {
		t.Errorf("outcomes %v; want credit.ok of RF-1 and shipment.ok of o-1", e.outs.ids)
	}
}

// unknownTransaction answers a cancel with ATODENE's "no such transaction" (er000002).
type unknownTransaction struct{ fakeProvider }

func (p *unknownTransaction) Cancel(context.Context, string) error {
	p.count("cancel")
	return &atodene.RejectedError{Op: "modifytransaction.do", Errors: []atodene.ProviderError{{Point: "transactionId", Code: atodene.CodeUnknownTransaction}}}
}

// TestUnknownTransactionIsNotRetried: a cancel that ATODENE refuses because it knows no such
// transaction cannot succeed by retrying: it is dead-lettered at once as no-transaction, the order
// stays as it was, and no credit.cancelled is published.
func TestUnknownTransactionIsNotRetried(t *testing.T) {
	t.Parallel()
	prov := &unknownTransaction{}
	e, ctx := newEnv(t, prov), context.Background()
	e.okOrder(t)
	cancel := handlers.Event[events.Cancel]{Meta: handlers.Meta{ID: "x-1", Source: "test", Type: events.TypeOrderCancelled, Shop: "shop-a", Seq: 5, Time: time.Now()},
		Data: events.Cancel{ShopID: "shop-a", OrderID: "o-1"}}
	wantReason(t, e.o.OrderCancelled(ctx, cancel), handlers.ReasonNoTransaction)
	st, _ := e.store.Get(ctx, "shop-a", "o-1")
	if st.Status != orderstate.StatusOK || prov.calls["cancel"] != 1 || len(e.outs.ids) != 0 || len(e.o.Refusals.Snapshot()) != 0 {
		t.Errorf("status %q, %d cancels, outcomes %v, stopped %v; want ok, 1, none, none", st.Status, prov.calls["cancel"], e.outs.ids, e.o.Refusals.Snapshot())
	}
}

// notDone counts the entries of the order's history that say a timer's work was not done.
func notDone(t *testing.T, store *orderstate.Store, order string) int {
	t.Helper()
	h, err := store.History(context.Background(), "shop-a", order)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, x := range h {
		if strings.HasPrefix(x.Did, "not done: ") {
			n++
		}
	}
	return n
}

// TestRecheckRefusedForTheAccountWaitsForTheStop: the due re-check of an order under review meets
// ATODENE refusing the shop's account. A timer has nothing to replay, and a dead letter of it would
// be made again by the reconciler at each of its passes: it is scheduled again, as the state's
// own re-check, for when the shop's calls resume, and the history says so once. The one call let
// through then is refused again: scheduled again for the doubled stop, no second history entry.
// Once the password is fixed, the re-check at the stop's end is answered, and the poll deadline
// still counts from the review's start.
func TestRecheckRefusedForTheAccountWaitsForTheStop(t *testing.T) {
	t.Parallel()
	prov := &refusingProvider{refused: true}
	e, ctx := newEnv(t, prov), context.Background()
	since := e.clock.Now().Add(-time.Hour).UTC()
	if _, err := e.store.Put(ctx, "shop-a", "P-1", orderstate.State{Status: orderstate.StatusPending, TransactionID: "12345678901",
		PollSeq: 3, PollScheduled: true, PollAt: e.clock.Now(), PollSince: since, CausedBy: "c-1"}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	due := handlers.PollRequest{Shop: "shop-a", OrderID: "P-1", Seq: 3, At: e.clock.Now()}
	check := func(step string, calls int, stop time.Duration) handlers.PollRequest {
		t.Helper()
		st, _ := e.store.Get(ctx, "shop-a", "P-1")
		want := e.clock.Now().Add(stop)
		e.polls.mu.Lock()
		last := e.polls.timer[len(e.polls.timer)-1]
		e.polls.mu.Unlock()
		if st.Status != orderstate.StatusPending || !st.PollScheduled || !afterTheStop(st.PollAt, want, stop) || !st.PollSince.Equal(since) {
			t.Fatalf("%s: state %s, re-check scheduled %v at %s, since %s; want pending, scheduled at %s (+ up to a tenth of %s), since %s",
				step, st.Status, st.PollScheduled, st.PollAt, st.PollSince, want, stop, since)
		}
		if last.Seq != 3 || !last.Refused || !last.At.Equal(st.PollAt) || last.Kind != handlers.TimerPoll {
			t.Fatalf("%s: last timer %+v, want the re-check of series 3 at %s, marked refused", step, last, want)
		}
		if prov.calls["getauthori-refused"] != calls || notDone(t, e.store, "P-1") != 1 {
			t.Fatalf("%s: calls %v, %d history entries of the refusal; want %d refused, 1 entry", step, prov.calls, notDone(t, e.store, "P-1"), calls)
		}
		return last
	}
	if err := e.o.PollDue(ctx, due); err != nil {
		t.Fatalf("the refused re-check: %v, want it scheduled again, not dead-lettered", err)
	}
	next := check("refused", 1, 30*time.Second)
	e.clock.Advance(30 * time.Second)
	if err := e.o.PollDue(ctx, next); err != nil {
		t.Fatal(err)
	}
	next = check("refused again", 2, time.Minute)

	prov.refused = false
	e.clock.Advance(time.Minute)
	if err := e.o.PollDue(ctx, next); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.store.Get(ctx, "shop-a", "P-1"); st.Status != orderstate.StatusOK || len(e.outs.ids) != 1 {
		t.Errorf("after the fix: %s, outcomes %v; want ok, credit.ok", st.Status, e.outs.ids)
	}
}

// TestReplayedRecheckRestartsTheDeadlineOnlyPastIt: a re-check letter replayed (an exhausted one,
// or one an earlier worker dead-lettered account-refused) within the poll deadline keeps the
// deadline of the review; the poll-deadline letter, replayed past it, starts a fresh one.
func TestReplayedRecheckRestartsTheDeadlineOnlyPastIt(t *testing.T) {
	t.Parallel()
	e := newOperatorEnv(t)
	e.prov.screenings = map[string]atodene.Screening{"11111111111": underReview}
	for _, tc := range []struct {
		order  string
		since  time.Duration
		resets bool
	}{{"W-1", time.Hour, false}, {"W-2", 15 * 24 * time.Hour, true}} {
		since := time.Now().Add(-tc.since).UTC()
		e.put(t, tc.order, orderstate.State{Status: orderstate.StatusPending, TransactionID: "11111111111", PollSince: since, CausedBy: "c-1"})
		if err := e.o.PollDue(context.Background(), handlers.PollRequest{Shop: "shop-a", OrderID: tc.order, Replayed: true}); err != nil {
			t.Fatalf("%s: the replayed re-check: %v", tc.order, err)
		}
		got := e.get(t, tc.order).PollSince
		if reset := !got.Equal(since); reset != tc.resets {
			t.Errorf("%s, under review since %s ago: the replay moved the deadline's start from %s to %s; want moved %v", tc.order, tc.since, since, got, tc.resets)
		}
	}
}

// barrierRefusing refuses the merchant's account on registrations, each call waiting until `want`
// calls are in flight (or half a second), so that concurrent handlers overlap at ATODENE.
type barrierRefusing struct {
	fakeProvider
	want    atomic.Int32
	inCall  atomic.Int32
	refused atomic.Int32
}

func (p *barrierRefusing) Register(context.Context, atodene.Request) (atodene.Registration, error) {
	p.inCall.Add(1)
	defer p.inCall.Add(-1)
	deadline := time.Now().Add(500 * time.Millisecond)
	for p.inCall.Load() < p.want.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.refused.Add(1)
	return atodene.Registration{}, &atodene.RejectedError{Op: "transaction.do", Errors: []atodene.ProviderError{{Point: "linkPassword", Code: "er000003", Message: "認証エラー"}}}
}

// TestRefusalStopLetsOneCallThroughWhenItEnds: eight orders of a shop whose password was rotated
// are handled at once, twice. The first time all eight calls are in flight before ATODENE's first
// refusal: the stop is 30 s, not doubled by each of the others. Once the 30 s are over, the eight
// handled together let one call through, which is refused: the stop doubles, once, to 1 min; the
// seven others are dead-lettered account-refused without a call.
func TestRefusalStopLetsOneCallThroughWhenItEnds(t *testing.T) {
	t.Parallel()
	const n = 8
	prov := &barrierRefusing{}
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}}
	o := newOrders(t, handlers.OrdersConfig{Store: newStore(t), Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: &flakyOutcomes{}, Polls: noPolls{}, Now: clk.Now})
	prov.want.Store(n)
	burst := func(round int) (calls int32, stop time.Duration) {
		t.Helper()
		before := prov.refused.Load()
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				err := o.OrderCreated(context.Background(), createdEvent(fmt.Sprintf("c-%d-%d", round, i), fmt.Sprintf("RS-%d", i), uint64(10*round+i+1)))
				if reason, _ := handlers.DeadLetterReason(err); reason != handlers.ReasonAccountRefused {
					t.Errorf("round %d, order %d: %v, want account-refused", round, i, err)
				}
			})
		}
		wg.Wait()
		return prov.refused.Load() - before, o.Refusals.Snapshot()[0].RetryAt.Sub(clk.Now())
	}
	if calls, stop := burst(1); calls != n || stop != 30*time.Second {
		t.Fatalf("first burst: %d calls, stop %s; want %d calls (none stopped yet) and a 30 s stop", calls, stop, n)
	}
	clk.Advance(31 * time.Second)
	if calls, stop := burst(2); calls != 1 || stop != time.Minute {
		t.Fatalf("once the stop is over: %d calls, stop %s; want 1 call, the stop doubled once to 1 min", calls, stop)
	}
}

// TestRefusalProbeWithNoAnswerLetsTheNextCallThrough: the call let through after a refused
// account's stop gets no answer (HTTP 503): nothing is learnt of the account and no refusal was
// seen, so the next event of the shop, a second later, calls ATODENE (and, answered, ends the
// stop) rather than being dead-lettered account-refused unsent for the stop's length again.
func TestRefusalProbeWithNoAnswerLetsTheNextCallThrough(t *testing.T) {
	t.Parallel()
	prov := &scriptedRegistrations{script: []string{"refused", "transient"}}
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}}
	o := newOrders(t, handlers.OrdersConfig{Store: newStore(t), Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: &flakyOutcomes{}, Polls: noPolls{}, Now: clk.Now})
	ctx := context.Background()
	wantReason(t, o.OrderCreated(ctx, createdEvent("c-1", "Z-1", 1)), handlers.ReasonAccountRefused)
	clk.Advance(31 * time.Second)
	err := o.OrderCreated(ctx, createdEvent("c-2", "Z-2", 2))
	if _, perm := handlers.DeadLetterReason(err); err == nil || perm {
		t.Fatalf("the call let through: %v, want a transient failure", err)
	}
	clk.Advance(time.Second)
	if err := o.OrderCreated(ctx, createdEvent("c-3", "Z-3", 3)); err != nil || prov.sent != 3 || len(o.Refusals.Snapshot()) != 0 {
		t.Fatalf("the next event: %v after %d registrations sent, stopped shops %+v; want it registered (3 sent), the stop ended",
			err, prov.sent, o.Refusals.Snapshot())
	}
}

// heldRegistration holds the first registration until release is closed, then answers it OK;
// the second is refused for the account.
type heldRegistration struct {
	fakeProvider
	n       atomic.Int32
	sending chan struct{}
	release chan struct{}
}

func (p *heldRegistration) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	if p.n.Add(1) == 1 {
		close(p.sending)
		<-p.release
		return p.fakeProvider.Register(ctx, req)
	}
	return atodene.Registration{}, &atodene.RejectedError{Op: "transaction", Errors: []atodene.ProviderError{{Point: "linkPassword", Code: "er000003"}}}
}

// TestAnswerToACallSentBeforeTheStopDoesNotEndIt: two calls of a shop in flight together; the
// second is refused for the account and stops the shop's calls, then the first, sent before that,
// is answered OK. That answer says nothing of the account since: the stop stands.
func TestAnswerToACallSentBeforeTheStopDoesNotEndIt(t *testing.T) {
	t.Parallel()
	prov := &heldRegistration{sending: make(chan struct{}), release: make(chan struct{})}
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}}
	o := newOrders(t, handlers.OrdersConfig{Store: newStore(t), Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: &flakyOutcomes{}, Polls: noPolls{}, Now: clk.Now})
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- o.OrderCreated(ctx, createdEvent("c-1", "Z-1", 1)) }()
	<-prov.sending
	wantReason(t, o.OrderCreated(ctx, createdEvent("c-2", "Z-2", 2)), handlers.ReasonAccountRefused)
	close(prov.release)
	if err := <-first; err != nil {
		t.Fatalf("the first call: %v", err)
	}
	if stopped := o.Refusals.Snapshot(); len(stopped) != 1 || !stopped[0].RetryAt.Equal(clk.Now().Add(30*time.Second)) {
		t.Fatalf("stopped shops %+v; want shop-a stopped for 30 s still", stopped)
	}
}

// shipmentRefusing refuses the shop's account on shipment reports while refused is set.
type shipmentRefusing struct {
	fakeProvider
	refused atomic.Bool
}

func (p *shipmentRefusing) ReportShipment(ctx context.Context, s atodene.Shipment) error {
	if p.refused.Load() {
		return &atodene.RejectedError{Op: "shippingrequest", Errors: []atodene.ProviderError{{Point: "linkPassword", Code: "er000003"}}}
	}
	return p.fakeProvider.ReportShipment(ctx, s)
}

// TestRecheckQueuedShipmentRefusedIsScheduledAgain: a due re-check decides the order OK, and the
// report of the tracking number queued meanwhile is refused for the shop's account. The re-check
// is not dead-lettered (it used to be, the one timer that was, left to a replay): as every timer
// refused for the account, it is scheduled again for when the shop's calls resume, with its
// decision recorded and published once, the tracking number still queued, and the refusal noted
// once in the order's history. Refused again, it is scheduled again; once the account is accepted,
// it reports the tracking number, once (docs/lifecycle.md#refusals-of-the-merchants-account).
func TestRecheckQueuedShipmentRefusedIsScheduledAgain(t *testing.T) {
	t.Parallel()
	prov := &shipmentRefusing{}
	prov.refused.Store(true)
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}}
	store := newStore(t)
	outs, polls := &flakyOutcomes{}, &timedPolls{}
	o := newOrders(t, handlers.OrdersConfig{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: outs, Polls: polls, Now: clk.Now})
	ctx := context.Background()
	st := orderstate.State{Status: orderstate.StatusPending, TransactionID: "12345678901", Fee: 205, BilledAmount: 3155,
		PollScheduled: true, PollAt: clk.Now(), PollSince: clk.Now(), PollSeq: 1,
		Shipment: &orderstate.Shipment{CarrierCode: "12", TrackingNumber: "1234-5678-9012"}}
	if _, err := store.Put(ctx, "shop-a", "o-1", st, clk.Now()); err != nil {
		t.Fatal(err)
	}
	published := func(typ string) int {
		n := 0
		for _, id := range outs.ids {
			if strings.HasSuffix(id, ":"+typ) {
				n++
			}
		}
		return n
	}
	// check says the re-check was scheduled again, marked refused, for the end of a stop of stop
	// from now, with the decision published once and the tracking number still queued.
	check := func(step string, stop time.Duration) handlers.PollRequest {
		t.Helper()
		got, _ := store.Get(ctx, "shop-a", "o-1")
		if got.Status != orderstate.StatusOK || got.Shipment == nil || got.Shipment.Reported {
			t.Fatalf("%s: %s, shipment %+v; want ok, the tracking number queued", step, got.Status, got.Shipment)
		}
		last := polls.last(t, handlers.TimerPoll)
		if !last.req.Refused || last.req.Seq != got.PollSeq || !afterTheStop(last.at, clk.Now().Add(stop), stop) || !last.req.At.Equal(last.at) {
			t.Fatalf("%s: last re-check %+v at %s; want the state's series %d, marked refused, at the stop's end %s (+ up to a tenth of %s)",
				step, last.req, last.at, got.PollSeq, clk.Now().Add(stop), stop)
		}
		if published(events.TypeCreditOK) != 1 || published(events.TypeShipmentOK)+published(events.TypeShipmentNG) != 0 || notDone(t, store, "o-1") != 1 {
			t.Fatalf("%s: outcomes %v, %d history entries of the refusal; want credit.ok once, no shipment outcome, 1 entry", step, outs.ids, notDone(t, store, "o-1"))
		}
		return last.req
	}
	if err := o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Seq: 1, At: clk.Now()}); err != nil {
		t.Fatalf("the re-check whose queued tracking number's report was refused: %v; want it scheduled again, not dead-lettered", err)
	}
	next := check("refused", 30*time.Second)
	clk.Advance(next.At.Sub(clk.Now()))
	if err := o.PollDue(ctx, next); err != nil {
		t.Fatalf("the re-check scheduled again, refused again: %v", err)
	}
	next = check("refused again", time.Minute)

	prov.refused.Store(false)
	clk.Advance(next.At.Sub(clk.Now()))
	for range 2 { // the re-check, and a second delivery of it
		if err := o.PollDue(ctx, next); err != nil {
			t.Fatalf("the re-check after the fix: %v", err)
		}
	}
	got, _ := store.Get(ctx, "shop-a", "o-1")
	if got.Shipment == nil || !got.Shipment.Reported || prov.calls["shipment"] != 1 {
		t.Fatalf("after the fix: shipment %+v, %d reports; want it reported once", got.Shipment, prov.calls["shipment"])
	}
	if published(events.TypeCreditOK) != 1 || published(events.TypeShipmentOK) != 1 {
		t.Errorf("outcomes %v; want credit.ok and shipment.ok, once each", outs.ids)
	}
}

// afterTheStop says a timer refused for the account is scheduled for the stop's end, at, or
// within a tenth of the stop after it: the timers of a shop refused together are spread.
func afterTheStop(got, at time.Time, stop time.Duration) bool {
	return !got.Before(at) && !got.After(at.Add(stop/10))
}

// TestRefusedTimersAreSpreadAfterTheStop: the timers of one shop refused for its account are
// scheduled over a tenth of the stop after its end, not all at that instant, so that the calls
// waiting for the account do not all go to ATODENE at once when it is accepted again.
func TestRefusedTimersAreSpreadAfterTheStop(t *testing.T) {
	t.Parallel()
	prov := &refusingProvider{refused: true}
	e, ctx := newEnv(t, prov), context.Background()
	end := e.clock.Now().Add(30 * time.Second)
	seen := map[time.Time]bool{}
	for i := range 20 {
		order := fmt.Sprintf("P-%d", i)
		if _, err := e.store.Put(ctx, "shop-a", order, orderstate.State{Status: orderstate.StatusPending, TransactionID: "12345678901",
			PollSeq: 1, PollScheduled: true, PollAt: e.clock.Now(), PollSince: e.clock.Now(), CausedBy: "c-1"}, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
		if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: order, Seq: 1, At: e.clock.Now()}); err != nil {
			t.Fatal(err)
		}
		st, _ := e.store.Get(ctx, "shop-a", order)
		if !afterTheStop(st.PollAt, end, 30*time.Second) {
			t.Fatalf("%s scheduled at %s, want within 3 s after the stop's end %s", order, st.PollAt, end)
		}
		seen[st.PollAt] = true
	}
	if len(seen) < 10 {
		t.Errorf("20 refused timers at %d distinct times, want them spread", len(seen))
	}
}

// refusedQueuedEnv is an order o-1 under review whose tracking number was queued meanwhile, its
// re-check due, with the shop's shipment reports refused for the account (prov.refused).
type refusedQueuedEnv struct {
	prov  *shipmentRefusing
	clk   *clock.Fake
	store *orderstate.Store
	outs  *flakyOutcomes
	polls *timedPolls
	lets  *recordedLetters
	o     *handlers.Orders
}

func newRefusedQueuedEnv(t *testing.T, reauthAfter time.Duration) *refusedQueuedEnv {
	t.Helper()
	e := &refusedQueuedEnv{prov: &shipmentRefusing{}, clk: clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)),
		store: newStore(t), outs: &flakyOutcomes{}, polls: &timedPolls{}, lets: &recordedLetters{}}
	e.prov.refused.Store(true)
	shop := &handlers.Shop{ID: "shop-a", Provider: e.prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}, ReauthorizeAfter: reauthAfter}
	e.o = newOrders(t, handlers.OrdersConfig{Store: e.store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: e.outs, Polls: e.polls, DeadLetters: e.lets, Now: e.clk.Now})
	st := orderstate.State{Status: orderstate.StatusPending, TransactionID: "12345678901", Fee: 205, BilledAmount: 3155,
		PollScheduled: true, PollAt: e.clk.Now(), PollSince: e.clk.Now(), PollSeq: 1,
		Shipment: &orderstate.Shipment{CarrierCode: "12", TrackingNumber: "1234-5678-9012"}}
	if _, err := e.store.Put(context.Background(), "shop-a", "o-1", st, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	return e
}

// published counts the outcomes of type typ published.
func (e *refusedQueuedEnv) published(typ string) int {
	n := 0
	for _, id := range e.outs.ids {
		if strings.HasSuffix(id, ":"+typ) {
			n++
		}
	}
	return n
}

// due is the order's re-check, due now.
func (e *refusedQueuedEnv) due() handlers.PollRequest {
	return handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Seq: 1, At: e.clk.Now()}
}

// TestRefusedRecheckDeliveredAgainNotesTheRefusalOnce: the due re-check decides the order OK and
// the report of its queued tracking number is refused for the account; the same re-check message
// is delivered again twice (its ack lost). Each delivery used to add a "not done" entry to the
// order's history (the message carries no Refused mark): the refusal is noted once, and credit.ok
// published once.
func TestRefusedRecheckDeliveredAgainNotesTheRefusalOnce(t *testing.T) {
	t.Parallel()
	e := newRefusedQueuedEnv(t, 0)
	ctx := context.Background()
	due := e.due()
	for i := range 3 {
		if err := e.o.PollDue(ctx, due); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	if n := notDone(t, e.store, "o-1"); n != 1 || e.published(events.TypeCreditOK) != 1 {
		t.Errorf("after 3 deliveries of the refused re-check: %d 'not done' history entries, outcomes %v; want 1 entry, credit.ok once", n, e.outs.ids)
	}
	if last := e.polls.last(t, handlers.TimerPoll); !last.req.Refused {
		t.Errorf("last re-check %+v; want it scheduled again, marked refused", last.req)
	}
}

// TestRefusedPendingRecheckDeliveredAgainNotesTheRefusalOnce: the due re-check of an order under
// review is refused for the shop's account, and the same message is delivered again twice (its ack
// lost): the refusal used to be noted at each delivery (the message carries no Refused mark). It
// is noted once; the re-check that comes once ATODENE accepts the account clears the state's mark,
// so that a refusal another day is noted again.
func TestRefusedPendingRecheckDeliveredAgainNotesTheRefusalOnce(t *testing.T) {
	t.Parallel()
	prov := &refusingProvider{refused: true}
	e, ctx := newEnv(t, prov), context.Background()
	if _, err := e.store.Put(ctx, "shop-a", "P-1", orderstate.State{Status: orderstate.StatusPending, TransactionID: "12345678901",
		PollSeq: 3, PollScheduled: true, PollAt: e.clock.Now(), PollSince: e.clock.Now(), CausedBy: "c-1"}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	due := handlers.PollRequest{Shop: "shop-a", OrderID: "P-1", Seq: 3, At: e.clock.Now()}
	for i := range 3 {
		if err := e.o.PollDue(ctx, due); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	st, _ := e.store.Get(ctx, "shop-a", "P-1")
	if n := notDone(t, e.store, "P-1"); n != 1 || len(st.RefusedTimers) != 1 {
		t.Fatalf("after 3 deliveries of the refused re-check: %d 'not done' history entries, refused timers %v; want 1 entry, the re-check marked", n, st.RefusedTimers)
	}
	e.polls.mu.Lock()
	next := e.polls.timer[len(e.polls.timer)-1]
	e.polls.mu.Unlock()
	prov.refused = false
	e.clock.Advance(next.At.Sub(e.clock.Now()))
	if err := e.o.PollDue(ctx, next); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.store.Get(ctx, "shop-a", "P-1"); st.Status != orderstate.StatusOK || len(e.outs.ids) != 1 || len(st.RefusedTimers) != 0 {
		t.Errorf("after the fix: %s, outcomes %v, refused timers %v; want ok, credit.ok, none marked", st.Status, e.outs.ids, st.RefusedTimers)
	}
}

// TestRefusedRecheckThenCancelReportsOnceThenCancels: the refused re-check is scheduled again; the
// account is accepted again and the shop's cancel (entered after the tracking number) comes before
// the re-check. The queued number is reported, then the credit cancelled; the re-check, delivered
// twice, then does nothing: one report, credit.ok, shipment.ok and credit.cancelled once each.
func TestRefusedRecheckThenCancelReportsOnceThenCancels(t *testing.T) {
	t.Parallel()
	e := newRefusedQueuedEnv(t, 0)
	ctx := context.Background()
	if err := e.o.PollDue(ctx, e.due()); err != nil {
		t.Fatal(err)
	}
	next := e.polls.last(t, handlers.TimerPoll).req
	e.prov.refused.Store(false)
	e.clk.Advance(next.At.Sub(e.clk.Now()))
	if err := e.o.OrderCancelled(ctx, cancelEvent("x-1", "o-1", 9)); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	for range 2 {
		if err := e.o.PollDue(ctx, next); err != nil {
			t.Fatalf("rescheduled re-check: %v", err)
		}
	}
	st, _ := e.store.Get(ctx, "shop-a", "o-1")
	if st.Status != orderstate.StatusCancelled || e.prov.calls["shipment"] != 1 || e.published(events.TypeCreditOK) != 1 ||
		e.published(events.TypeShipmentOK) != 1 || e.published(events.TypeCreditCancelled) != 1 {
		t.Errorf("status %q, %d reports, outcomes %v; want cancelled, 1 report, credit.ok/shipment.ok/credit.cancelled once each",
			st.Status, e.prov.calls["shipment"], e.outs.ids)
	}
}

// TestRefusedRecheckScheduleFailsThenDeliveredAgain: the re-check decides OK, its report is
// refused, and scheduling it again fails (JetStream down): the re-check fails and is delivered
// again, which schedules it again without a second credit.ok; then it reports the number once.
func TestRefusedRecheckScheduleFailsThenDeliveredAgain(t *testing.T) {
	t.Parallel()
	e := newRefusedQueuedEnv(t, 0)
	ctx := context.Background()
	due := e.due()
	e.polls.fail(true)
	if err := e.o.PollDue(ctx, due); err == nil {
		t.Fatalf("scheduling failed, yet the re-check succeeded")
	}
	e.polls.fail(false)
	if err := e.o.PollDue(ctx, due); err != nil {
		t.Fatalf("delivered again: %v", err)
	}
	next := e.polls.last(t, handlers.TimerPoll).req
	e.prov.refused.Store(false)
	e.clk.Advance(next.At.Sub(e.clk.Now()))
	if err := e.o.PollDue(ctx, next); err != nil {
		t.Fatal(err)
	}
	st, _ := e.store.Get(ctx, "shop-a", "o-1")
	if st.Shipment == nil || !st.Shipment.Reported || e.prov.calls["shipment"] != 1 || e.published(events.TypeCreditOK) != 1 || e.published(events.TypeShipmentOK) != 1 {
		t.Errorf("shipment %+v, %d reports, outcomes %v; want reported once, credit.ok and shipment.ok once", st.Shipment, e.prov.calls["shipment"], e.outs.ids)
	}
}

// TestOtherTimersMeetingTheRefusedQueuedReportAreScheduledAgain: after the refused re-check (the
// order OK, its tracking number still queued, the account still refused), another timer of the
// order comes (the re-authorization timer, the inbox timer and its retry, the park deadline). Its
// first settle retries the queued report, which is refused: the timer used to fail account-refused,
// dead-lettered, what it was to apply left to a replay. It does its own work, once: the inbox timer
// applies the invoice request queued behind the lease, the retry timer the one due for its retry,
// the park timer the invoice request parked (past -park-limit ago) whose retry is due; the order's re-check is
// scheduled again for when the shop's calls resume, once per handling (the refusal still noted
// once, nothing published twice). The same timer delivered again (its ack lost) does none of that
// work a second time, and the re-check, once the account is accepted, reports the number once.
func TestOtherTimersMeetingTheRefusedQueuedReportAreScheduledAgain(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{handlers.TimerReauth, handlers.TimerInbox, handlers.TimerRetry, handlers.TimerParked} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newRefusedQueuedEnv(t, 30*time.Minute)
			ctx := context.Background()
			if err := e.o.PollDue(ctx, e.due()); err != nil {
				t.Fatal(err)
			}
			req := handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: kind}
			if kind == handlers.TimerReauth {
				req.Seq = 1 // its first settle under the lease comes before its own work, whatever the series
			}
			e.clk.Advance(2 * time.Hour)
			// The timer's own work: an event of the inbox to apply, or a parked event to dead-letter.
			invoice := invoiceEvent("i-1", 20)
			switch kind {
			case handlers.TimerInbox:
				e.queue(t, invoice.Meta, func() error { return e.o.InvoiceRequested(ctx, invoice) })
			case handlers.TimerRetry:
				e.queueRetry(t, invoice.Meta)
			case handlers.TimerParked:
				e.parkRetryDue(t, "i-1")
			}
			// work checks that the timer's own work is done, once: nothing else dead-lettered.
			work := func(step string) {
				t.Helper()
				e.lets.mu.Lock()
				letters := slices.Clone(e.lets.letters)
				e.lets.mu.Unlock()
				st, _ := e.store.Get(ctx, "shop-a", "o-1")
				switch kind {
				case handlers.TimerInbox, handlers.TimerRetry:
					applied := entriesOf(t, e.store, "i-1")
					done, _ := e.store.EventDone(ctx, "shop-a", invoice.Key())
					inbox, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
					if len(applied) != 1 || !strings.HasPrefix(applied[0].Did, "not fetched: ") || !done || inbox != 0 || e.published(events.TypeInvoiceNG) != 1 {
						t.Fatalf("%s: entries of the invoice request %+v, recorded %v, inbox %d, outcomes %v; want it applied once (invoice.ng once), recorded, the inbox empty",
							step, applied, done, inbox, e.outs.ids)
					}
				case handlers.TimerParked:
					applied := entriesOf(t, e.store, "i-1")
					if len(applied) != 1 || !strings.HasPrefix(applied[0].Did, "applied after waiting since ") || !strings.Contains(applied[0].Did, ": not fetched: ") ||
						len(st.Parked) != 0 || e.published(events.TypeInvoiceNG) != 1 {
						t.Fatalf("%s: entries of the parked invoice request %+v, parked %+v, outcomes %v; want it applied once (invoice.ng once), nothing parked",
							step, applied, st.Parked, e.outs.ids)
					}
				}
				if len(letters) != 0 {
					t.Fatalf("%s: dead letters %+v; want none", step, letters)
				}
			}
			rechecks := e.polls.count(handlers.TimerPoll)
			if err := e.o.PollDue(ctx, req); err != nil {
				reason, _ := handlers.DeadLetterReason(err)
				t.Fatalf("%s timer of the OK order whose queued report is refused: %v (dead letter %s); want it done, not dead-lettered", kind, err, reason)
			}
			work("the timer")
			last := e.polls.last(t, handlers.TimerPoll)
			if e.polls.count(handlers.TimerPoll) != rechecks+1 || !last.req.Refused || !last.at.After(e.clk.Now()) {
				t.Fatalf("last re-check %+v at %s (%d scheduled, %d before); want one more, marked refused, for when the shop's calls resume",
					last.req, last.at, e.polls.count(handlers.TimerPoll), rechecks)
			}
			st, _ := e.store.Get(ctx, "shop-a", "o-1")
			if n := notDone(t, e.store, "o-1"); n != 1 || e.published(events.TypeCreditOK) != 1 || st.Shipment == nil || st.Shipment.Reported {
				t.Fatalf("%d 'not done' entries, outcomes %v, shipment %+v; want the refusal noted once, credit.ok once, the number queued", n, e.outs.ids, st.Shipment)
			}
			if kind != handlers.TimerReauth {
				if err := e.o.PollDue(ctx, req); err != nil { // delivered again, its ack lost
					t.Fatalf("%s timer delivered again: %v", kind, err)
				}
				work("the timer delivered again")
				if n := notDone(t, e.store, "o-1"); n != 1 || e.published(events.TypeCreditOK) != 1 {
					t.Fatalf("delivered again: %d 'not done' entries, outcomes %v; want the refusal noted once, credit.ok once", n, e.outs.ids)
				}
				last = e.polls.last(t, handlers.TimerPoll)
			}
			e.prov.refused.Store(false)
			e.clk.Advance(last.at.Sub(e.clk.Now()))
			for range 2 { // the re-check, and a second delivery of it
				if err := e.o.PollDue(ctx, last.req); err != nil {
					t.Fatalf("the re-check once the account is accepted: %v", err)
				}
			}
			work("after the re-check")
			st, _ = e.store.Get(ctx, "shop-a", "o-1")
			if st.Shipment == nil || !st.Shipment.Reported || e.prov.calls["shipment"] != 1 || e.published(events.TypeShipmentOK) != 1 ||
				e.published(events.TypeCreditOK) != 1 || len(st.RefusedTimers) != 0 {
				t.Errorf("shipment %+v, %d reports, outcomes %v, refused timers %v; want reported once, credit.ok and shipment.ok once, none refused",
					st.Shipment, e.prov.calls["shipment"], e.outs.ids, st.RefusedTimers)
			}
		})
	}
}

// invoiceEvent is an order.invoice_requested of o-1 as consumed from ORDERS, at seq.
func invoiceEvent(id string, seq uint64) handlers.Event[events.InvoiceRequest] {
	return handlers.Event[events.InvoiceRequest]{Meta: handlers.Meta{ID: id, Source: "test", Type: events.TypeInvoiceRequested, Shop: "shop-a",
		Subject: events.Subject(events.TypeInvoiceRequested, "shop-a"), Stream: "ORDERS", Seq: seq, Attempt: 1,
		Body: envelope(events.TypeInvoiceRequested, id, `{"shop_id":"shop-a","order_id":"o-1"}`)},
		Data: events.InvoiceRequest{ShopID: "shop-a", OrderID: "o-1"}}
}

// queue has handle (the handling of the event ev of o-1) queue ev in the order's inbox behind
// another handler, which then lets the lease go without applying it: the inbox timer applies it.
func (e *refusedQueuedEnv) queue(t *testing.T, ev handlers.Meta, handle func() error) {
	t.Helper()
	ctx := context.Background()
	holder, err := e.store.AcquireLease(ctx, "shop-a", "o-1", orderstate.Take{TTL: time.Minute, Now: e.clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := handle(); err != nil {
		t.Fatalf("%s queued behind the lease: %v", ev.Type, err)
	}
	if n, _ := e.store.InboxLen(ctx, "shop-a", "o-1"); n != 1 {
		t.Fatalf("%s behind the lease: inbox of %d; want it queued", ev.Type, n)
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// queueRetry puts ev first in o-1's inbox as an event that failed once, transiently, and is due
// for its retry now, as a handler does when it lets the lease go for the retry (its retry timer
// applies it).
func (e *refusedQueuedEnv) queueRetry(t *testing.T, ev handlers.Meta) {
	t.Helper()
	ctx := context.Background()
	holder, err := e.store.AcquireLease(ctx, "shop-a", "o-1", orderstate.Take{TTL: time.Minute, Now: e.clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	p := orderstate.Parked{Type: ev.Type, Key: ev.Key(), ID: ev.ID, Source: ev.Source, Subject: ev.Subject, Stream: ev.Stream, Seq: ev.Seq,
		Attempt: ev.Attempt, Body: ev.Body, Since: e.clk.Now().Add(-time.Second).UTC(), Waits: "the order's lease",
		Tries: 1, LastError: "ATODENE unavailable", RetryAt: e.clk.Now().UTC()}
	if _, _, err := holder.Commit(ctx, orderstate.Commit{Version: holder.State.Version, Retry: &p}, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.store.InboxLen(ctx, "shop-a", "o-1"); n != 1 {
		t.Fatalf("inbox of %d; want the retry", n)
	}
}

// parkRetryDue parks an invoice request id in o-1's state, parked past -park-limit ago and
// waiting for the retry of a failed try, due now: the park timer's settle tries it.
func (e *refusedQueuedEnv) parkRetryDue(t *testing.T, id string) {
	t.Helper()
	ctx := context.Background()
	st, err := e.store.Get(ctx, "shop-a", "o-1")
	if err != nil {
		t.Fatal(err)
	}
	ev := invoiceEvent(id, 19)
	st.Parked = []orderstate.Parked{{Type: ev.Type, Key: ev.Key(), ID: id, Source: ev.Source, Subject: ev.Subject, Stream: ev.Stream, Seq: ev.Seq, Attempt: 1,
		Body: ev.Body, Since: e.clk.Now().Add(-e.o.ParkLimit - time.Minute).UTC(), Waits: "its retry after a failed try", Kind: "invoice",
		Tries: 1, LastError: "ATODENE unavailable", RetryAt: e.clk.Now().UTC()}}
	st.ParkTimer = st.Parked[0].RetryAt
	if _, err := e.store.Put(ctx, "shop-a", "o-1", st, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
}

// entriesOf returns the entries of o-1's history of the event id.
func entriesOf(t *testing.T, store *orderstate.Store, id string) []orderstate.Entry {
	t.Helper()
	h, err := store.History(context.Background(), "shop-a", "o-1")
	if err != nil {
		t.Fatal(err)
	}
	var out []orderstate.Entry
	for _, x := range h {
		if x.ID == id {
			out = append(out, x)
		}
	}
	return out
}

// TestRefusedReportIsNotedAsTheRecheck: the report of an OK order's queued tracking number is
// refused for the shop's account in the settle step of a timer other than the re-check, or of an
// event of the inbox a timer applies, the refusal not noted before. The history used to note it
// under the decision being handled ("inbox", "park-deadline", or the event itself, as
// "order.recheck_requested … not done: …" just after its "decided: ok"), as if that was not done,
// where it is done. It is noted once, as the re-check's (type poll, scheduled again to report it),
// and each timer or event has its own entry for what it did
// (docs/lifecycle.md#refusals-of-the-merchants-account).
func TestRefusedReportIsNotedAsTheRecheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		kind string
		// prepare readies o-1 (OK, its number queued, unless it says otherwise) and the timer's
		// work, and returns the event whose entry is its own and that entry's Did.
		prepare func(t *testing.T, e *refusedQueuedEnv) (id, did string)
	}{
		{"inbox timer applying a cancel", handlers.TimerInbox, func(t *testing.T, e *refusedQueuedEnv) (string, string) {
			e.decided(t)
			cancel := cancelEvent("x-1", "o-1", 20)
			cancel.Subject, cancel.Stream, cancel.Attempt = events.Subject(events.TypeOrderCancelled, "shop-a"), "ORDERS", 1
			cancel.Body = envelope(events.TypeOrderCancelled, "x-1", `{"shop_id":"shop-a","order_id":"o-1","reason":"buyer"}`)
			e.queue(t, cancel.Meta, func() error { return e.o.OrderCancelled(context.Background(), cancel) })
			// Its call comes while the shop's calls are stopped: dead-lettered, as any event's.
			return "x-1", "dead-lettered: account-refused: "
		}},
		{"park deadline", handlers.TimerParked, func(t *testing.T, e *refusedQueuedEnv) (string, string) {
			e.decided(t)
			e.parkRetryDue(t, "i-1")
			return "i-1", "applied after waiting since "
		}},
		{"operator's re-check applied by the inbox timer", handlers.TimerInbox, func(t *testing.T, e *refusedQueuedEnv) (string, string) {
			// Under review still: the operator's re-check decides the order OK, and the settle
			// step after it reports the queued number.
			rc := handlers.Event[events.RecheckRequest]{Meta: handlers.Meta{ID: "rc-1", Source: "test", Type: events.TypeRecheckRequested, Shop: "shop-a",
				Subject: events.Subject(events.TypeRecheckRequested, "shop-a"), Stream: "ORDERS", Seq: 21, Attempt: 1,
				Body: envelope(events.TypeRecheckRequested, "rc-1", `{"shop_id":"shop-a","order_id":"o-1","operator":"ops-tanaka"}`)},
				Data: events.RecheckRequest{ShopID: "shop-a", OrderID: "o-1", Operator: "ops-tanaka"}}
			e.queue(t, rc.Meta, func() error { return e.o.RecheckRequested(context.Background(), rc) })
			return "rc-1", "decided: ok"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newRefusedQueuedEnv(t, 0)
			ctx := context.Background()
			id, did := tc.prepare(t, e)
			if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: tc.kind}); err != nil {
				t.Fatalf("the %s timer: %v", tc.kind, err)
			}
			h, err := e.store.History(ctx, "shop-a", "o-1")
			if err != nil {
				t.Fatal(err)
			}
			var refusals, own []orderstate.Entry
			for _, x := range h {
				switch {
				case strings.HasPrefix(x.Did, "not done: "):
					refusals = append(refusals, x)
				case x.ID == id:
					own = append(own, x)
				}
			}
			if len(refusals) != 1 || refusals[0].Type != "poll" || refusals[0].ID != "" || refusals[0].Operator != "" {
				t.Errorf("entries of the refusal %+v; want one, of type poll (the re-check scheduled again), no event's", refusals)
			}
			if len(own) != 1 || !strings.HasPrefix(own[0].Did, did) {
				t.Errorf("entries of event %s %+v; want one, %q…, what it did", id, own, did)
			}
			last := e.polls.last(t, handlers.TimerPoll)
			st, _ := e.store.Get(ctx, "shop-a", "o-1")
			if e.polls.count(handlers.TimerPoll) != 1 || !last.req.Refused || !slices.Contains(st.RefusedTimers, "poll") {
				t.Errorf("%d re-checks scheduled, the last %+v, refused timers %v; want one, marked refused, noted", e.polls.count(handlers.TimerPoll), last.req, st.RefusedTimers)
			}
		})
	}
}

// decided makes o-1 OK, its tracking number still queued, the refusal not noted: the report
// failed (ATODENE down) when the credit turned OK, and the account is refused since.
func (e *refusedQueuedEnv) decided(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	st, err := e.store.Get(ctx, "shop-a", "o-1")
	if err != nil {
		t.Fatal(err)
	}
	st.Status, st.PollScheduled, st.PollAt = orderstate.StatusOK, false, time.Time{}
	if _, err := e.store.Put(ctx, "shop-a", "o-1", st, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
}

// TestReauthTimerMeetingTheRefusedQueuedReportDoesItsWorkOnce: the order's re-check decided it OK
// and its queued tracking number's report was refused for the account; the re-authorization timer
// of a new transaction under review then comes, its settle meets the refused report, and its own
// re-check is stopped too (the shop's calls are). It used to be dead-lettered account-refused; now
// it is scheduled again for when the shop's calls resume, delivered again it notes nothing more,
// and once the account is accepted its work is done once: the queued number reported first (the
// order shipped), the new transaction dropped, cancelled once, nothing published twice.
func TestReauthTimerMeetingTheRefusedQueuedReportDoesItsWorkOnce(t *testing.T) {
	t.Parallel()
	e := newRefusedQueuedEnv(t, 30*time.Minute)
	ctx := context.Background()
	if err := e.o.PollDue(ctx, e.due()); err != nil {
		t.Fatal(err)
	}
	st, _ := e.store.Get(ctx, "shop-a", "o-1")
	if st.Status != orderstate.StatusOK {
		t.Fatalf("after the refused re-check: %s; want ok", st.Status)
	}
	// A re-authorization's new transaction under review, its timer due in an hour.
	st.Reauth = &orderstate.Reauth{N: 1, Seq: 1, Phase: orderstate.ReauthPending, New: "22222222222", Since: e.clk.Now(),
		Scheduled: true, At: e.clk.Now().Add(time.Hour), ShopOrderID: "o-1_R1", DataHash: st.DataHash}
	if _, err := e.store.Put(ctx, "shop-a", "o-1", st, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	req := handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: handlers.TimerReauth, Seq: st.Reauth.Seq}
	e.clk.Advance(time.Hour)
	for i := range 2 { // the timer, and a second delivery of it
		if err := e.o.PollDue(ctx, req); err != nil {
			reason, _ := handlers.DeadLetterReason(err)
			t.Fatalf("delivery %d of the re-authorization timer: %v (dead letter %s); want it scheduled again, not dead-lettered", i+1, err, reason)
		}
	}
	again := e.polls.last(t, handlers.TimerReauth)
	// One entry for the re-check's refusal, one for the re-authorization's.
	if n := notDone(t, e.store, "o-1"); n != 2 || !again.req.Refused || !again.at.After(e.clk.Now()) || len(e.lets.letters) != 0 {
		t.Fatalf("%d 'not done' entries, last re-authorization timer %+v at %s, dead letters %d; want 2 entries, it scheduled again marked refused, none",
			n, again.req, again.at, len(e.lets.letters))
	}
	e.prov.refused.Store(false)
	e.clk.Advance(again.at.Sub(e.clk.Now()))
	for range 2 {
		if err := e.o.PollDue(ctx, again.req); err != nil {
			t.Fatalf("the re-authorization timer once the account is accepted: %v", err)
		}
	}
	recheck := e.polls.last(t, handlers.TimerPoll)
	e.clk.Advance(max(recheck.at.Sub(e.clk.Now()), 0))
	if err := e.o.PollDue(ctx, recheck.req); err != nil {
		t.Fatalf("the order's re-check scheduled again: %v", err)
	}
	st, _ = e.store.Get(ctx, "shop-a", "o-1")
	// The queued number, reported first, ships the order on its transaction: the new one is
	// dropped (cancelled), never re-checked.
	if st.TransactionID != "12345678901" || st.Reauth == nil || st.Reauth.Phase != "" || e.published(events.TypeCreditOK) != 1 ||
		e.prov.calls["cancel"] != 1 || e.prov.calls["getauthori"] != 1 {
		t.Errorf("transaction %s, re-authorization %+v, outcomes %v, calls %v; want on 12345678901, the new one dropped, credit.ok once, 1 cancel, 1 re-check",
			st.TransactionID, st.Reauth, e.outs.ids, e.prov.calls)
	}
	if st.Shipment == nil || !st.Shipment.Reported || e.prov.calls["shipment"] != 1 || e.published(events.TypeShipmentOK) != 1 || len(st.RefusedTimers) != 0 {
		t.Errorf("shipment %+v, outcomes %v, refused timers %v; want reported once, shipment.ok once, none marked", st.Shipment, e.outs.ids, st.RefusedTimers)
	}
}
