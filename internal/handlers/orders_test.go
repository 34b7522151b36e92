package handlers_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// fakeProvider answers every call with success and counts the calls.
type fakeProvider struct {
	mu    sync.Mutex
	calls map[string]int
}

func (f *fakeProvider) count(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
}

func (f *fakeProvider) Register(context.Context, atodene.Order) (atodene.Registration, error) {
	f.count("register")
	return atodene.Registration{TransactionID: "12345678901", Auto: atodene.DecisionOK}, nil
}
func (f *fakeProvider) GetAuthori(context.Context, string) (atodene.Screening, error) {
	f.count("getauthori")
	return atodene.Screening{Auto: atodene.DecisionOK}, nil
}
func (f *fakeProvider) Modify(context.Context, string, atodene.Order) (atodene.Change, error) {
	f.count("modify")
	return atodene.Change{}, nil
}
func (f *fakeProvider) Cancel(context.Context, string) error { f.count("cancel"); return nil }
func (f *fakeProvider) ReportShipment(context.Context, atodene.Shipment) error {
	f.count("shipment")
	return nil
}
func (f *fakeProvider) InvoiceData(context.Context, string) (atodene.Invoice, error) {
	f.count("invoice")
	return atodene.Invoice{Fields: map[string]string{"billedAmount": "3155円"}}, nil
}

// flakyOutcomes fails the first `failures` publishes, as a RESULTS stream that is briefly down.
type flakyOutcomes struct {
	failures int
	ids      []string
}

func (f *flakyOutcomes) Publish(_ context.Context, _, msgID string, _ []byte) error {
	if f.failures > 0 {
		f.failures--
		return errors.New("RESULTS unavailable")
	}
	f.ids = append(f.ids, msgID)
	return nil
}

type noPolls struct{}

func (noPolls) Schedule(context.Context, handlers.PollRequest, time.Time) error { return nil }

// TestRetryAfterUnpublishedOutcomeAnswersOnce: the answer to an invoice request is written but its
// publish fails; the redelivered request publishes that answer and asks ATODENE nothing again.
func TestRetryAfterUnpublishedOutcomeAnswersOnce(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	ctx := context.Background()
	if _, err := store.Put(ctx, "shop", "o1", orderstate.State{Status: orderstate.StatusOK, TransactionID: "12345678901", Service: atodene.ServiceEnclosed}, time.Now()); err != nil {
		t.Fatal(err)
	}
	prov, outs := &fakeProvider{}, &flakyOutcomes{failures: 1}
	shop := &handlers.Shop{ID: "shop", Provider: prov}
	o := &handlers.Orders{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: outs, Polls: noPolls{}, LeaseTTL: time.Minute, Now: time.Now}
	ev := handlers.Event[events.InvoiceRequest]{Meta: handlers.Meta{ID: "inv-1", Shop: "shop"}, Data: events.InvoiceRequest{ShopID: "shop", OrderID: "o1"}}
	if err := o.InvoiceRequested(ctx, ev); err == nil {
		t.Fatal("the first attempt succeeded although publishing failed")
	}
	if err := o.InvoiceRequested(ctx, ev); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if len(outs.ids) != 1 || prov.calls["invoice"] != 1 {
		t.Errorf("published %v, %d invoice calls; want one of each", outs.ids, prov.calls["invoice"])
	}
}

// TestCopyWaitingForTheLeaseChangesNothing: a copy of an event (a second delivery, or a re-sent
// copy with another Nats-Msg-Id) passes the idempotency check while the first delivery still runs,
// waits for the order's lease, and gets it only after a later event of the order was applied. It
// must not apply the event again: here it would report the first tracking number to ATODENE again
// after its correction, and publish shipment.ok twice. (Found by the reliability suite's
// duplicates scenario.)
func TestCopyWaitingForTheLeaseChangesNothing(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	ctx := context.Background()
	for _, order := range []string{"ok-1", "ng-1"} {
		status := orderstate.StatusOK
		if order == "ng-1" {
			status = orderstate.StatusNG
		}
		if _, err := store.Put(ctx, "shop", order, orderstate.State{Status: status, TransactionID: "12345678901"}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	prov, outs := &fakeProvider{}, &flakyOutcomes{}
	shop := &handlers.Shop{ID: "shop", Provider: prov}
	o := &handlers.Orders{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: outs, Polls: noPolls{}, LeaseTTL: time.Minute, Now: time.Now}
	track := func(id, order, number string) error {
		return o.TrackingEntered(ctx, handlers.Event[events.Tracking]{Meta: handlers.Meta{ID: id, Shop: "shop"},
			Data: events.Tracking{ShopID: "shop", OrderID: order, Carrier: "yamato", TrackingNumber: number}})
	}
	// The first number, its correction, then the copy of the first.
	for _, step := range []struct{ id, number string }{{"t-1", "111111111111"}, {"t-2", "222222222222"}, {"t-1", "111111111111"}} {
		if err := track(step.id, "ok-1", step.number); err != nil {
			t.Fatalf("%s: %v", step.id, err)
		}
	}
	if prov.calls["shipment"] != 2 || len(outs.ids) != 2 {
		t.Errorf("%d shipment reports, outcomes %v; want 2 of each (new, then change)", prov.calls["shipment"], outs.ids)
	}
	if st, _ := store.Get(ctx, "shop", "ok-1"); st.Shipment == nil || st.Shipment.TrackingNumber != "222222222222" {
		t.Errorf("shipment held: %+v, want the corrected number", st.Shipment)
	}
	// An order whose credit is NG answers shipment.ng, once per event, not once per copy.
	outs.ids = nil
	for range 2 {
		if err := track("t-3", "ng-1", "333333333333"); err != nil {
			t.Fatal(err)
		}
	}
	if len(outs.ids) != 1 {
		t.Errorf("outcomes %v for one event sent twice, want one shipment.ng", outs.ids)
	}
}

// failingProvider fails invoice fetches while failing is set.
type failingProvider struct {
	fakeProvider
	failing bool
}

func (f *failingProvider) InvoiceData(ctx context.Context, tx string) (atodene.Invoice, error) {
	if f.failing {
		f.count("invoice")
		return atodene.Invoice{}, errors.New("ATODENE unavailable")
	}
	return f.fakeProvider.InvoiceData(ctx, tx)
}

// TestEventRecordedOnlyAfterSuccess: an event is recorded as processed only once its handler
// succeeded, never before (so a failed delivery runs again), and a recorded event, delivered
// again, changes nothing and calls nothing.
func TestEventRecordedOnlyAfterSuccess(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	ctx := context.Background()
	if _, err := store.Put(ctx, "shop", "o1", orderstate.State{Status: orderstate.StatusOK, TransactionID: "12345678901", Service: atodene.ServiceEnclosed}, time.Now()); err != nil {
		t.Fatal(err)
	}
	prov, outs := &failingProvider{failing: true}, &flakyOutcomes{}
	shop := &handlers.Shop{ID: "shop", Provider: prov}
	o := &handlers.Orders{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: outs, Polls: noPolls{}, LeaseTTL: time.Minute, Now: time.Now}
	ev := handlers.Event[events.InvoiceRequest]{Meta: handlers.Meta{ID: "inv-1", Shop: "shop"}, Data: events.InvoiceRequest{ShopID: "shop", OrderID: "o1"}}
	if err := o.InvoiceRequested(ctx, ev); err == nil {
		t.Fatal("a failed fetch succeeded")
	}
	if done, _ := store.EventDone(ctx, ev.Key()); done {
		t.Fatal("a failed event was recorded as processed")
	}
	prov.failing = false
	if err := o.InvoiceRequested(ctx, ev); err != nil {
		t.Fatalf("second delivery: %v", err)
	}
	if done, _ := store.EventDone(ctx, ev.Key()); !done {
		t.Fatal("a processed event was not recorded")
	}
	if err := o.InvoiceRequested(ctx, ev); err != nil {
		t.Fatalf("third delivery: %v", err)
	}
	if len(outs.ids) != 1 || prov.calls["invoice"] != 2 {
		t.Errorf("published %v, %d invoice calls; want one outcome and two calls (the failed and the good one)", outs.ids, prov.calls["invoice"])
	}
}

// recordedPolls records the timers scheduled.
type recordedPolls struct {
	mu    sync.Mutex
	timer []handlers.PollRequest
}

func (p *recordedPolls) Schedule(_ context.Context, r handlers.PollRequest, _ time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer = append(p.timer, r)
	return nil
}

// TestInboxOfACrashedHolderIsApplied: an event queued behind a handler that then dies (its lease
// expires with the event still in the order's inbox) is applied by the inbox timer scheduled when
// it was queued, once.
func TestInboxOfACrashedHolderIsApplied(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	ctx := context.Background()
	if _, err := store.Put(ctx, "shop-a", "o-1", orderstate.State{Status: orderstate.StatusOK, TransactionID: "12345678901"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	const ttl = 300 * time.Millisecond
	if _, err := store.AcquireLease(ctx, "shop-a", "o-1", orderstate.Take{TTL: ttl, Now: time.Now()}); err != nil {
		t.Fatal(err) // the holder that dies
	}
	prov, polls := &fakeProvider{}, &recordedPolls{}
	shop := &handlers.Shop{ID: "shop-a", Provider: prov}
	o := &handlers.Orders{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: &flakyOutcomes{}, Polls: polls, LeaseTTL: ttl, Now: time.Now}
	body := envelope(events.TypeTrackingEntered, "t-1", `{"shop_id":"shop-a","order_id":"o-1","carrier":"yamato","tracking_number":"1234-5678-9012"}`)
	ev := handlers.Event[events.Tracking]{Meta: handlers.Meta{ID: "t-1", Source: "test", Type: events.TypeTrackingEntered, Shop: "shop-a",
		Subject: "orders.tracking_entered.shop-a", Stream: "ORDERS", Seq: 7, Attempt: 1, Body: body},
		Data: events.Tracking{ShopID: "shop-a", OrderID: "o-1", Carrier: "yamato", TrackingNumber: "1234-5678-9012"}}
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
	if done, _ := store.EventDone(ctx, ev.Key()); !done {
		t.Error("the queued event is not recorded as processed")
	}
	entries, _ := store.History(ctx, "shop-a", "o-1")
	if len(entries) != 1 || entries[0].ID != "t-1" || !strings.HasPrefix(entries[0].Did, "shipment reported") {
		t.Errorf("history %+v", entries)
	}
}

// TestCopyInTheInboxIsAppliedOnce: a delivery of an event is queued in the order's inbox, and a
// second delivery of the same event takes the lease after the holder let it go: it applies the
// inbox first, finds its own event done there, and changes nothing more.
func TestCopyInTheInboxIsAppliedOnce(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	ctx := context.Background()
	if _, err := store.Put(ctx, "shop-a", "o-1", orderstate.State{Status: orderstate.StatusOK, TransactionID: "12345678901"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	holder, err := store.AcquireLease(ctx, "shop-a", "o-1", orderstate.Take{TTL: time.Minute, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	prov := &fakeProvider{}
	shop := &handlers.Shop{ID: "shop-a", Provider: prov}
	o := &handlers.Orders{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: &flakyOutcomes{}, Polls: &recordedPolls{}, LeaseTTL: time.Minute, Now: time.Now}
	body := envelope(events.TypeTrackingEntered, "t-1", `{"shop_id":"shop-a","order_id":"o-1","carrier":"yamato","tracking_number":"1234-5678-9012"}`)
	ev := handlers.Event[events.Tracking]{Meta: handlers.Meta{ID: "t-1", Source: "test", Type: events.TypeTrackingEntered, Shop: "shop-a",
		Subject: "orders.tracking_entered.shop-a", Stream: "ORDERS", Seq: 7, Attempt: 1, Body: body},
		Data: events.Tracking{ShopID: "shop-a", OrderID: "o-1", Carrier: "yamato", TrackingNumber: "1234-5678-9012"}}
	if err := o.TrackingEntered(ctx, ev); err != nil { // queued behind the holder
		t.Fatal(err)
	}
	if err := holder.Release(ctx); err != nil { // the holder ends without applying the inbox
		t.Fatal(err)
	}
	ev.Attempt = 2
	if err := o.TrackingEntered(ctx, ev); err != nil { // the redelivery applies the inbox, then itself
		t.Fatal(err)
	}
	if prov.calls["shipment"] != 1 {
		t.Errorf("%d shipment reports, want 1", prov.calls["shipment"])
	}
	entries, _ := store.History(ctx, "shop-a", "o-1")
	if len(entries) != 2 || !strings.HasPrefix(entries[0].Did, "shipment reported") || entries[1].Did != "duplicate: processed already" {
		t.Errorf("history %+v", entries)
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
// when it is handled before its order.created (the two ran in parallel): the order ends
// cancelled, and the older order.created registers nothing.
func TestUpdateToZeroBeforeItsOrder(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	ctx := context.Background()
	prov := &fakeProvider{}
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}}
	o := &handlers.Orders{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: &flakyOutcomes{}, Polls: &recordedPolls{}, LeaseTTL: time.Minute, Now: time.Now}
	at := time.Date(2026, 11, 26, 10, 15, 0, 0, time.UTC)
	upd := handlers.Event[events.Order]{Meta: handlers.Meta{ID: "u-1", Source: "test", Type: events.TypeOrderUpdated, Shop: "shop-a", Seq: 2, Time: at.Add(time.Minute)},
		Data: testOrder("Z-1", 0)}
	if err := o.OrderUpdated(ctx, upd); err != nil {
		t.Fatalf("update to 0: %v", err)
	}
	created := handlers.Event[events.Order]{Meta: handlers.Meta{ID: "c-1", Source: "test", Type: events.TypeOrderCreated, Shop: "shop-a", Seq: 1, Time: at},
		Data: testOrder("Z-1", 2950)}
	if err := o.OrderCreated(ctx, created); err != nil {
		t.Fatalf("created: %v", err)
	}
	st, _ := store.Get(ctx, "shop-a", "Z-1")
	if st.Status != orderstate.StatusCancelled || prov.calls["register"] != 0 {
		t.Errorf("status %q after %d registrations, want cancelled and none", st.Status, prov.calls["register"])
	}
}

// registerFails fails registrations (a transport failure: the outcome is unknown) while failing
// is set, and otherwise answers as fakeProvider.
type registerFails struct {
	fakeProvider
	failing bool
}

func (p *registerFails) Register(ctx context.Context, o atodene.Order) (atodene.Registration, error) {
	if p.failing {
		p.count("register-failed")
		return atodene.Registration{}, &atodene.StatusError{Op: "transaction.do", StatusCode: 503}
	}
	return p.fakeProvider.Register(ctx, o)
}

// TestReplayIsAsOldAsItsEvent: an order.created whose retries ran out is replayed from the
// dead-letter stream after the shop cancelled the order (the cancel parked behind the unfinished
// registration). The replay registers the order, and the cancel, published after the event the
// replay repeats, is applied after it: the order ends cancelled (it ended ok when the replay's new
// stream sequence made the cancel look older).
func TestReplayIsAsOldAsItsEvent(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	ctx := context.Background()
	prov := &registerFails{failing: true}
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}}
	o := &handlers.Orders{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: &flakyOutcomes{}, Polls: &recordedPolls{}, DeadLetters: discardLetters{}, LeaseTTL: time.Minute, Now: time.Now}
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

type discardLetters struct{}

func (discardLetters) Write(context.Context, dlq.Letter) error { return nil }

// TestOlderTrackingNumberDoesNotReplaceANewer: two tracking numbers of one order, a number and its
// correction, handled in parallel: the correction (published second) is applied first, and the
// first number, handled after it, changes nothing.
func TestOlderTrackingNumberDoesNotReplaceANewer(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	ctx := context.Background()
	if _, err := store.Put(ctx, "shop-a", "o-1", orderstate.State{Status: orderstate.StatusOK, TransactionID: "12345678901"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	prov := &fakeProvider{}
	shop := &handlers.Shop{ID: "shop-a", Provider: prov}
	o := &handlers.Orders{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: &flakyOutcomes{}, Polls: &recordedPolls{}, LeaseTTL: time.Minute, Now: time.Now}
	track := func(id string, seq uint64, number string) {
		t.Helper()
		ev := handlers.Event[events.Tracking]{Meta: handlers.Meta{ID: id, Source: "test", Type: events.TypeTrackingEntered, Shop: "shop-a", Seq: seq},
			Data: events.Tracking{ShopID: "shop-a", OrderID: "o-1", Carrier: "yamato", TrackingNumber: number}}
		if err := o.TrackingEntered(ctx, ev); err != nil {
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

// clock is a settable time for tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
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
	letters []dlq.Letter
}

func (r *recordedLetters) Write(_ context.Context, l dlq.Letter) error {
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
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	ctx := context.Background()
	if _, err := store.Put(ctx, "shop-a", "o-1", orderstate.State{Status: orderstate.StatusOK, TransactionID: "12345678901"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Now()}
	const ttl = 300 * time.Millisecond
	if _, err := store.AcquireLease(ctx, "shop-a", "o-1", orderstate.Take{TTL: ttl, Now: clk.Now()}); err != nil {
		t.Fatal(err) // a holder that dies
	}
	prov, polls, letters := &shipmentFails{failing: true}, &recordedPolls{}, &recordedLetters{}
	shop := &handlers.Shop{ID: "shop-a", Provider: prov}
	o := &handlers.Orders{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: &flakyOutcomes{}, Polls: polls, DeadLetters: letters, MaxAttempts: 3, LeaseTTL: ttl, Now: clk.Now}
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
		clk.add(time.Minute)
		if err := o.PollDue(ctx, timer); err != nil {
			t.Fatalf("inbox timer: %v", err)
		}
	}
	if len(letters.letters) != 1 || letters.letters[0].Reason != handlers.ReasonExhausted || !strings.Contains(string(letters.letters[0].Body), `"id":"x"`) {
		t.Fatalf("dead letters %+v, want x exhausted", letters.letters)
	}
	prov.failing = false
	clk.add(time.Minute)
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
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	ctx := context.Background()
	clk := &clock{now: time.Now()}
	prov, outs, polls := &shipmentFails{failing: true}, &flakyOutcomes{}, &recordedPolls{}
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}}
	o := &handlers.Orders{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: outs, Polls: polls, DeadLetters: &recordedLetters{}, LeaseTTL: time.Minute, Now: clk.Now}
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
	clk.add(time.Minute)
	if err := o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "P-1", Kind: handlers.TimerInbox}); err != nil {
		t.Fatal(err)
	}
	if st, _ = store.Get(ctx, "shop-a", "P-1"); len(st.Parked) != 0 || st.Shipment == nil || !st.Shipment.Reported {
		t.Errorf("after the retry: parked %+v, shipment %+v", st.Parked, st.Shipment)
	}
}
