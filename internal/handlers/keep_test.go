package handlers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv/clock"
)

// The tests in this file are about events the worker keeps: queued in an order's inbox while
// another handler holds its lease, parked until the order gets somewhere, retried after a
// transient failure; and about the order in which an order's events apply.

// env is Orders for one shop, shop-a, over a store of the test's own (the shared Redis under a key
// prefix of its own), with the outcomes, timers and dead letters it produces recorded.
type env struct {
	o       *handlers.Orders
	store   *orderstate.Store
	outs    *flakyOutcomes
	polls   *recordedPolls
	letters *recordedLetters
	clock   *clock.Fake
}

// newEnv makes an env whose shop calls prov; its clock starts now and moves only when told.
func newEnv(t *testing.T, prov handlers.Provider) *env {
	t.Helper()
	return newEnvOn(t, newStore(t), prov, nil)
}

// newEnvOn is newEnv on store, with kept for the copies of events (nil: none kept).
func newEnvOn(t *testing.T, store *orderstate.Store, prov handlers.Provider, kept handlers.Kept) *env {
	t.Helper()
	e := &env{store: store, outs: &flakyOutcomes{}, polls: &recordedPolls{}, letters: &recordedLetters{},
		clock: clock.NewFake(time.Now())}
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}}
	e.o = newOrders(t, handlers.OrdersConfig{Store: e.store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: e.outs, Polls: e.polls, DeadLetters: e.letters, Now: e.clock.Now, Kept: kept})
	return e
}

// okOrder writes the state of an OK order o-1 of shop-a.
func (e *env) okOrder(t *testing.T) {
	t.Helper()
	if _, err := e.store.Put(context.Background(), "shop-a", "o-1", orderstate.State{Status: orderstate.StatusOK, TransactionID: "12345678901"}, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// deadHolder takes the lease of o-1 for ttl, as a handler that then dies.
func (e *env) deadHolder(t *testing.T, ttl time.Duration) *orderstate.Lease {
	t.Helper()
	return e.holder(t, "o-1", ttl)
}

// holder takes the lease of order of shop-a for ttl, as another handler would.
func (e *env) holder(t *testing.T, order string, ttl time.Duration) *orderstate.Lease {
	t.Helper()
	l, err := e.store.AcquireLease(context.Background(), "shop-a", order, orderstate.Take{TTL: ttl, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// recordedPolls records the timers scheduled.
type recordedPolls struct {
	mu    sync.Mutex
	timer []handlers.PollRequest
	at    []time.Time // when each of timer is scheduled for
}

func (p *recordedPolls) Schedule(_ context.Context, r handlers.PollRequest, at time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer = append(p.timer, r)
	p.at = append(p.at, at)
	return nil
}

// TestInboxOfACrashedHolderIsApplied: an event queued behind a handler that then dies (its lease
// expires with the event still in the order's inbox) is applied by the inbox timer scheduled when
// it was queued, once.
func TestInboxOfACrashedHolderIsApplied(t *testing.T) {
	t.Parallel()
	prov := &fakeProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	const ttl = 300 * time.Millisecond
	e.o.LeaseTTL = ttl
	e.okOrder(t)
	e.deadHolder(t, ttl)
	o, polls, store := e.o, e.polls, e.store
	ev := trackingEvent("t-1", "o-1", 7, "1234-5678-9012")
	if err := o.TrackingEntered(ctx, ev); err != nil {
		t.Fatalf("queued event: %v", err)
	}
	if prov.calls["shipment"] != 0 || len(polls.timer) != 1 || polls.timer[0].Kind != handlers.TimerInbox {
		t.Fatalf("after queueing: %d shipment calls, timers %+v; want none and one inbox timer", prov.calls["shipment"], polls.timer)
	}
	time.Sleep(ttl + 100*time.Millisecond) // the holder's lease expires
	if err := o.PollDue(ctx, polls.timer[0]); err != nil {
		t.Fatalf("inbox timer: %v", err)
	}
	if err := o.PollDue(ctx, polls.timer[0]); err != nil {
		t.Fatalf("inbox timer again: %v", err)
	}
	if prov.calls["shipment"] != 1 {
		t.Errorf("%d shipment reports, want 1", prov.calls["shipment"])
	}
	if done, _ := store.EventDone(ctx, "shop-a", ev.Key()); !done {
		t.Error("the queued event is not recorded as processed")
	}
	entries, _ := store.History(ctx, "shop-a", "o-1")
	if len(entries) != 1 || entries[0].ID != "t-1" || !strings.HasPrefix(entries[0].Did, "shipment reported") {
		t.Errorf("history %+v", entries)
	}
}

// TestCopyInTheInboxIsAppliedOnce: a delivery of an event is queued in the order's inbox, and a
// second delivery of the same event takes the lease after the holder let it go: it is not queued
// a second time (the inbox holds it), and it applies the inbox, its event once.
func TestCopyInTheInboxIsAppliedOnce(t *testing.T) {
	t.Parallel()
	prov := &fakeProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	e.okOrder(t)
	holder := e.deadHolder(t, time.Minute)
	o, store := e.o, e.store
	ev := trackingEvent("t-1", "o-1", 7, "1234-5678-9012")
	if err := o.TrackingEntered(ctx, ev); err != nil { // queued behind the holder
		t.Fatal(err)
	}
	if err := holder.Release(ctx); err != nil { // the holder ends without applying the inbox
		t.Fatal(err)
	}
	ev.Attempt = 2
	if err := o.TrackingEntered(ctx, ev); err != nil { // the redelivery applies the inbox
		t.Fatal(err)
	}
	if prov.calls["shipment"] != 1 {
		t.Errorf("%d shipment reports, want 1", prov.calls["shipment"])
	}
	entries, _ := store.History(ctx, "shop-a", "o-1")
	if n, _ := store.InboxLen(ctx, "shop-a", "o-1"); n != 0 || len(entries) != 1 || !strings.HasPrefix(entries[0].Did, "shipment reported") {
		t.Errorf("inbox %d, history %+v; want empty, the event reported once", n, entries)
	}
}

func testOrder(id string, billed int64) events.Order {
	items := []events.Item{{Name: "緑茶", UnitPrice: billed, Quantity: 1}}
	return events.Order{ShopID: "shop-a", OrderID: id, OrderedAt: "2026-11-26T10:14:03+09:00",
		Buyer: &events.Person{Name: "加藤 太郎", NameKana: "カトウ タロウ", Zip: "150-0001", Address: "東京都渋谷区神宮前1-1-1",
			Phone: "03-1234-5678", Email: "taro@example.jp"},
		Items: items, BilledAmount: &billed}
}

// TestUpdateToZeroBeforeItsOrder: an order.updated that brings an order to 0 is a cancel, also
// when it is handled before its order.created (the two ran in parallel): it waits for the order
// (the worker has no record of it, which is no evidence that ATODENE has none), the order.created
// registers it, and the cancel is applied then: the order ends cancelled at ATODENE too.
func TestUpdateToZeroBeforeItsOrder(t *testing.T) {
	t.Parallel()
	prov := &fakeProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	o, store := e.o, e.store
	at := time.Date(2026, 11, 26, 10, 15, 0, 0, time.UTC)
	body := envelope(events.TypeOrderUpdated, "u-1", `{"shop_id":"shop-a","order_id":"Z-1","ordered_at":"2026-11-26T10:14:03+09:00",
		"buyer":{"name":"加藤 太郎","name_kana":"カトウ タロウ","zip":"150-0001","address":"東京都渋谷区神宮前1-1-1","phone":"03-1234-5678","email":"taro@example.jp"},
		"items":[{"name":"緑茶","unit_price":0,"quantity":1}],"billed_amount":0}`)
	upd := handlers.Event[events.Order]{Meta: handlers.Meta{ID: "u-1", Source: "test", Type: events.TypeOrderUpdated, Shop: "shop-a", Seq: 2, Time: at.Add(time.Minute),
		Subject: "orders.updated.shop-a", Stream: "ORDERS", Attempt: 1, Body: body}, Data: testOrder("Z-1", 0)}
	if err := o.OrderUpdated(ctx, upd); err != nil {
		t.Fatalf("update to 0: %v", err)
	}
	created := handlers.Event[events.Order]{Meta: handlers.Meta{ID: "c-1", Source: "test", Type: events.TypeOrderCreated, Shop: "shop-a", Seq: 1, Time: at},
		Data: testOrder("Z-1", 2950)}
	if err := o.OrderCreated(ctx, created); err != nil {
		t.Fatalf("created: %v", err)
	}
	st, _ := store.Get(ctx, "shop-a", "Z-1")
	if st.Status != orderstate.StatusCancelled || prov.calls["register"] != 1 || prov.calls["cancel"] != 1 {
		t.Errorf("status %q after %d registrations and %d cancels, want cancelled, 1 and 1", st.Status, prov.calls["register"], prov.calls["cancel"])
	}
}

// registerFails fails registrations (a transport failure: the outcome is unknown) while failing
// is set, and otherwise answers as fakeProvider.
type registerFails struct {
	fakeProvider
	failing bool
}

func (p *registerFails) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	if p.failing {
		p.count("register-failed")
		return atodene.Registration{}, &atodene.StatusError{Op: "transaction.do", StatusCode: 503}
	}
	return p.fakeProvider.Register(ctx, req)
}

// TestReplayIsAsOldAsItsEvent: an order.created whose retries ran out is replayed from the
// dead-letter stream after the shop cancelled the order (the cancel parked behind the unfinished
// registration). The replay registers the order, and the cancel, published after the event the
// replay repeats, is applied after it: the order ends cancelled (it ended ok when the replay's new
// stream sequence made the cancel look older).
func TestReplayIsAsOldAsItsEvent(t *testing.T) {
	t.Parallel()
	prov := &registerFails{failing: true}
	e, ctx := newEnv(t, prov), context.Background()
	o, store := e.o, e.store
	at := time.Date(2026, 11, 26, 10, 15, 0, 0, time.UTC)
	created := handlers.Event[events.Order]{Meta: handlers.Meta{ID: "c-1", Source: "test", Type: events.TypeOrderCreated, Shop: "shop-a", Seq: 10, Time: at},
		Data: testOrder("RP-1", 2950)}
	if err := o.OrderCreated(ctx, created); err == nil {
		t.Fatal("the failing registration succeeded")
	}
	body := envelope(events.TypeOrderCancelled, "x-1", `{"shop_id":"shop-a","order_id":"RP-1"}`)
	cancel := handlers.Event[events.Cancel]{Meta: handlers.Meta{ID: "x-1", Source: "test", Type: events.TypeOrderCancelled, Shop: "shop-a",
		Seq: 11, Time: at.Add(time.Hour), Subject: "orders.cancelled.shop-a", Stream: "ORDERS", Attempt: 1, Body: body},
		Data: events.Cancel{ShopID: "shop-a", OrderID: "RP-1"}}
	if err := o.OrderCancelled(ctx, cancel); err != nil {
		t.Fatalf("cancel during the registration: %v", err)
	}
	prov.failing = false
	replay := created
	replay.Seq, replay.Published, replay.ReplayCount = 25, 10, "1"
	if err := o.OrderCreated(ctx, replay); err != nil {
		t.Fatalf("replay: %v", err)
	}
	st, _ := store.Get(ctx, "shop-a", "RP-1")
	if st.Status != orderstate.StatusCancelled || prov.calls["register"] != 1 || prov.calls["cancel"] != 1 {
		t.Errorf("status %q, %d registrations, %d cancels; want cancelled, 1 and 1", st.Status, prov.calls["register"], prov.calls["cancel"])
	}
}

// TestOlderTrackingNumberDoesNotReplaceANewer: two tracking numbers of one order, a number and its
// correction, handled in parallel: the correction (published second) is applied first, and the
// first number, handled after it, changes nothing.
func TestOlderTrackingNumberDoesNotReplaceANewer(t *testing.T) {
	t.Parallel()
	prov := &fakeProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	e.okOrder(t)
	o, store := e.o, e.store
	track := func(id string, seq uint64, number string) {
		t.Helper()
		if err := o.TrackingEntered(ctx, trackingEvent(id, "o-1", seq, number)); err != nil {
			t.Fatal(err)
		}
	}
	track("t-2", 6, "2222-2222-2222") // the correction
	track("t-1", 5, "1111-1111-1111") // the first number, late
	st, _ := store.Get(ctx, "shop-a", "o-1")
	if st.Shipment == nil || st.Shipment.TrackingNumber != "2222-2222-2222" || prov.calls["shipment"] != 1 {
		t.Errorf("shipment %+v after %d reports; want the correction, reported once", st.Shipment, prov.calls["shipment"])
	}
}

// shipmentFails fails shipment reports with HTTP 503 while failing is set.
type shipmentFails struct {
	fakeProvider
	failing bool
}

func (p *shipmentFails) ReportShipment(ctx context.Context, s atodene.Shipment) error {
	if p.failing {
		p.count("shipment-failed")
		return &atodene.StatusError{Op: "shippingrequest.do", StatusCode: 503}
	}
	return p.fakeProvider.ReportShipment(ctx, s)
}

// recordedLetters records the dead letters written.
type recordedLetters struct {
	mu      sync.Mutex
	letters []handlers.DeadLetter
}

func (r *recordedLetters) Write(_ context.Context, l handlers.DeadLetter) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.letters = append(r.letters, l)
	return nil
}

func trackingEvent(id, order string, seq uint64, number string) handlers.Event[events.Tracking] {
	body := envelope(events.TypeTrackingEntered, id, `{"shop_id":"shop-a","order_id":"`+order+`","carrier":"yamato","tracking_number":"`+number+`"}`)
	return handlers.Event[events.Tracking]{Meta: handlers.Meta{ID: id, Source: "test", Type: events.TypeTrackingEntered, Shop: "shop-a",
		Subject: "orders.tracking_entered.shop-a", Stream: "ORDERS", Seq: seq, Attempt: 1, Body: body},
		Data: events.Tracking{ShopID: "shop-a", OrderID: order, Carrier: "yamato", TrackingNumber: number}}
}

// TestInboxRetriesInOrderAndRunsOut: an event of the order's inbox that fails transiently stays
// first in the inbox, is retried at its retry time by the inbox timer (a later event of the order
// neither overtakes it nor is charged with its failure), and is dead-lettered as exhausted with its
// body when its tries run out; then the inbox goes on.
func TestInboxRetriesInOrderAndRunsOut(t *testing.T) {
	t.Parallel()
	prov := &shipmentFails{failing: true}
	e, ctx := newEnv(t, prov), context.Background()
	const ttl = 300 * time.Millisecond
	e.o.LeaseTTL, e.o.MaxAttempts = ttl, 3
	e.okOrder(t)
	e.deadHolder(t, ttl)
	o, store, letters, clk := e.o, e.store, e.letters, e.clock
	if err := o.TrackingEntered(ctx, trackingEvent("x", "o-1", 5, "1111-1111-1111")); err != nil {
		t.Fatalf("queued: %v", err)
	}
	time.Sleep(ttl + 100*time.Millisecond) // the holder's lease expires
	timer := handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: handlers.TimerInbox}
	if err := o.PollDue(ctx, timer); err != nil { // try 1 fails
		t.Fatalf("inbox timer: %v", err)
	}
	// A later event of the order: it goes behind the failing one, and is not charged with it.
	if err := o.TrackingEntered(ctx, trackingEvent("y", "o-1", 6, "2222-2222-2222")); err != nil {
		t.Fatalf("a later event returned %v, the failure of another", err)
	}
	if prov.calls["shipment-failed"] != 1 {
		t.Fatalf("%d tries before the retry time, want 1", prov.calls["shipment-failed"])
	}
	for range 2 { // tries 2 and 3: the last is out of tries
		clk.Advance(time.Minute)
		if err := o.PollDue(ctx, timer); err != nil {
			t.Fatalf("inbox timer: %v", err)
		}
	}
	if len(letters.letters) != 1 || letters.letters[0].Reason != handlers.ReasonExhausted.String() || !strings.Contains(string(letters.letters[0].Body), `"id":"x"`) {
		t.Fatalf("dead letters %+v, want x exhausted", letters.letters)
	}
	prov.failing = false
	clk.Advance(time.Minute)
	if err := o.PollDue(ctx, timer); err != nil {
		t.Fatalf("inbox timer: %v", err)
	}
	st, _ := store.Get(ctx, "shop-a", "o-1")
	// x was tried 3 times; y, next in the inbox, once right after x's dead letter (ATODENE still
	// failing), then reported.
	if prov.calls["shipment-failed"] != 4 || prov.calls["shipment"] != 1 || st.Shipment == nil || st.Shipment.TrackingNumber != "2222-2222-2222" {
		t.Errorf("%d failed tries, %d reports, shipment %+v; want 4, then y reported", prov.calls["shipment-failed"], prov.calls["shipment"], st.Shipment)
	}
}

// TestParkedFailureDoesNotHoldTheOrder: a tracking number parked before its order fails to be
// reported when the order is registered (ATODENE answers 503): the registration's credit.ok is
// published all the same, and the tracking number stays parked and is reported on its retry.
func TestParkedFailureDoesNotHoldTheOrder(t *testing.T) {
	t.Parallel()
	prov := &shipmentFails{failing: true}
	e, ctx := newEnv(t, prov), context.Background()
	o, store, outs, clk := e.o, e.store, e.outs, e.clock
	if err := o.TrackingEntered(ctx, trackingEvent("t", "P-1", 1, "1111-1111-1111")); err != nil {
		t.Fatalf("parked: %v", err)
	}
	created := handlers.Event[events.Order]{Meta: handlers.Meta{ID: "c", Source: "test", Type: events.TypeOrderCreated, Shop: "shop-a", Seq: 2},
		Data: testOrder("P-1", 2950)}
	if err := o.OrderCreated(ctx, created); err != nil {
		t.Fatalf("the registration failed with its parked tracking number: %v", err)
	}
	if len(outs.ids) != 1 || !strings.HasSuffix(outs.ids[0], ":credit.ok") {
		t.Fatalf("published %v, want the credit.ok", outs.ids)
	}
	st, _ := store.Get(ctx, "shop-a", "P-1")
	if len(st.Parked) != 1 || st.Parked[0].Tries != 1 {
		t.Fatalf("parked %+v, want the tracking number after one try", st.Parked)
	}
	prov.failing = false
	clk.Advance(time.Minute)
	if err := o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "P-1", Kind: handlers.TimerInbox}); err != nil {
		t.Fatal(err)
	}
	if st, _ = store.Get(ctx, "shop-a", "P-1"); len(st.Parked) != 0 || st.Shipment == nil || !st.Shipment.Reported {
		t.Errorf("after the retry: parked %+v, shipment %+v", st.Parked, st.Shipment)
	}
}

// TestOrderAcrossARecreatedStream: ORDERS was deleted and created again after the order's tracking
// number arrived at sequence 500. A correction published to the new stream, at sequence 3, is
// newer and replaces it; a replay of an older letter of the old stream (sequence 499) is older
// and changes nothing.
func TestOrderAcrossARecreatedStream(t *testing.T) {
	t.Parallel()
	prov := &fakeProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	e.okOrder(t)
	old, recreated := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixNano(), time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC).UnixNano()
	track := func(id string, seq uint64, created int64, number string, replayOf uint64) {
		t.Helper()
		ev := trackingEvent(id, "o-1", seq, number)
		ev.Published, ev.PublishedCreated = seq, created
		if replayOf != 0 {
			ev.Published, ev.ReplayCount = replayOf, "1"
		}
		if err := e.o.TrackingEntered(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	track("t-1", 500, old, "1111-1111-1111", 0)
	track("t-2", 3, recreated, "2222-2222-2222", 0)
	track("t-0", 4, old, "0000-0000-0000", 499) // replayed into the new stream, first published in the old one
	st, _ := e.store.Get(ctx, "shop-a", "o-1")
	if st.Shipment == nil || st.Shipment.TrackingNumber != "2222-2222-2222" || prov.calls["shipment"] != 2 {
		t.Errorf("shipment %+v after %d reports; want the correction of the new stream, 2 reports", st.Shipment, prov.calls["shipment"])
	}
	if st.TrackingSeq != 3 || st.TrackingCreated != recreated {
		t.Errorf("tracking position %d of %d; want 3 of the new stream", st.TrackingSeq, st.TrackingCreated)
	}
}

// TestInvoiceOfALaggingState: the state says the order is under review, but ATODENE decided it
// OK since (the decision came after the last re-check, or Redis lost the write that recorded it).
// An invoice request asks ATODENE first: credit.ok, then the invoice, rather than an invoice.ng
// that contradicts ATODENE. A request during a registration waits for it, parked.
func TestInvoiceOfALaggingState(t *testing.T) {
	t.Parallel()
	prov := &fakeProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	if _, err := e.store.Put(ctx, "shop-a", "o-1", orderstate.State{Status: orderstate.StatusPending, TransactionID: "12345678901",
		Service: atodene.ServiceEnclosed, PollScheduled: true, PollAt: time.Now().Add(time.Minute)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	invoice := func(id, order string) error {
		return e.o.InvoiceRequested(ctx, handlers.Event[events.InvoiceRequest]{Meta: handlers.Meta{ID: id, Source: "test", Type: events.TypeInvoiceRequested, Shop: "shop-a",
			Subject: "orders.invoice_requested.shop-a", Stream: "ORDERS", Seq: 9, Attempt: 1, Body: envelope(events.TypeInvoiceRequested, id, `{"shop_id":"shop-a","order_id":"`+order+`"}`)},
			Data: events.InvoiceRequest{ShopID: "shop-a", OrderID: order}})
	}
	if err := invoice("i-1", "o-1"); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, id := range e.outs.ids {
		types = append(types, id[strings.LastIndex(id, ":")+1:])
	}
	if strings.Join(types, ",") != "credit.ok,invoice.ok" || prov.calls["getauthori"] != 1 || prov.calls["invoice"] != 1 {
		t.Errorf("outcomes %v after calls %v; want credit.ok then invoice.ok", types, prov.calls)
	}

	if _, err := e.store.Put(ctx, "shop-a", "o-2", orderstate.State{Status: orderstate.StatusRegistering}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := invoice("i-2", "o-2"); err != nil {
		t.Fatal(err)
	}
	st, _ := e.store.Get(ctx, "shop-a", "o-2")
	if len(st.Parked) != 1 || st.Parked[0].Kind != "invoice" || len(e.outs.ids) != 2 {
		t.Errorf("parked %+v, outcomes %v; want the request parked, no outcome", st.Parked, e.outs.ids)
	}
}

// TestLeaseHeldIsTold: OrdersConfig.LeaseHeld is told, once per handling, each time a handler
// finds its order's lease held, with what the event did: an event is queued in the order's inbox;
// a timer waits for the lease (once however many tries); an event its order's full inbox has no
// room for goes round through its kept copy.
func TestLeaseHeldIsTold(t *testing.T) {
	t.Parallel()
	prov := &fakeProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	const ttl = 300 * time.Millisecond
	e.o.LeaseTTL = ttl
	var mu sync.Mutex
	var told []string
	e.o.LeaseHeld = func(then string) {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, then)
	}
	expect := func(step string, want ...string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(told, want) {
			t.Errorf("%s: told %q, want %q", step, told, want)
		}
		told = nil
	}
	e.okOrder(t)

	e.deadHolder(t, ttl)
	if err := e.o.TrackingEntered(ctx, trackingEvent("t-1", "o-1", 7, "1234-5678-9012")); err != nil {
		t.Fatal(err)
	}
	expect("an event while another holds the lease", handlers.LeaseQueued)
	if len(e.polls.timer) != 1 {
		t.Fatalf("timers %+v, want the inbox's", e.polls.timer)
	}
	if err := e.o.PollDue(ctx, e.polls.timer[0]); err != nil { // waits until the holder's lease expires
		t.Fatal(err)
	}
	expect("the inbox timer while the lease is held", handlers.LeaseWaited)
	if prov.calls["shipment"] != 1 {
		t.Errorf("%d shipment reports, want 1", prov.calls["shipment"])
	}

	e.o.Kept = &recordedKept{}
	e.holder(t, "o-1", time.Minute) // held while the inbox fills
	large := trackingEvent("t-2", "o-1", 8, "2234-5678-9012")
	large.Body = append(large.Body, strings.Repeat(" ", 64<<10)...) // held by its kept copy, not the inbox
	if err := e.o.TrackingEntered(ctx, large); err != nil {
		t.Fatal(err)
	}
	expect("an event too large to be held in the inbox", handlers.LeaseQueued)
	for i := 1; i < orderstate.MaxInbox; i++ {
		if err := e.o.TrackingEntered(ctx, trackingEvent(fmt.Sprintf("f-%d", i), "o-1", uint64(10+i), "2234-5678-9012")); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	told = nil
	mu.Unlock()
	if err := e.o.TrackingEntered(ctx, trackingEvent("t-4", "o-1", 5000, "4234-5678-9012")); err != nil {
		t.Fatal(err)
	}
	expect("an event its order's full inbox has no room for", handlers.LeaseWentRound)

	if err := e.o.TrackingEntered(ctx, trackingEvent("t-3", "o-2", 9, "3234-5678-9012")); err != nil {
		t.Fatal(err)
	}
	expect("an order whose lease is free")
}
