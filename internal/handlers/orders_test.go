package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"go.uber.org/zap"
)

// fakeProvider answers every call with success and counts the calls. Like the client, it refuses
// a registration or change whose request Order.Check did not make.
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

func (f *fakeProvider) Register(_ context.Context, req atodene.Request) (atodene.Registration, error) {
	if req.Order().ShopOrderID == "" {
		return atodene.Registration{}, atodene.ErrUncheckedRequest
	}
	f.count("register")
	return atodene.Registration{TransactionID: "12345678901", Auto: atodene.DecisionOK}, nil
}
func (f *fakeProvider) GetAuthori(context.Context, string) (atodene.Screening, error) {
	f.count("getauthori")
	return atodene.Screening{Auto: atodene.DecisionOK}, nil
}
func (f *fakeProvider) Modify(_ context.Context, _ string, req atodene.Request) (atodene.Change, error) {
	if req.Order().ShopOrderID == "" {
		return atodene.Change{}, atodene.ErrUncheckedRequest
	}
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

// windowedResults is RESULTS as JetStream keeps it: a message ID published again within the
// stream's duplicate window is dropped; after the window it is stored again. The window is the
// worker's for RESULTS with the default settings: max(2 min, 3 × ack wait 2 min) = 6 min
// (internal/worker/streams.go).
type windowedResults struct {
	mu     sync.Mutex
	now    func() time.Time
	window time.Duration
	last   map[string]time.Time // when the ID was last stored
	stored map[string]int       // copies of each ID stored
}

func newWindowedResults(now func() time.Time) *windowedResults {
	return &windowedResults{now: now, window: 6 * time.Minute, last: map[string]time.Time{}, stored: map[string]int{}}
}

func (w *windowedResults) Publish(_ context.Context, _, msgID string, _ []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if at, ok := w.last[msgID]; ok && w.now().Sub(at) <= w.window {
		return nil // a duplicate within the window: dropped, acknowledged as a duplicate
	}
	w.last[msgID] = w.now()
	w.stored[msgID]++
	return nil
}

// copies returns how many copies RESULTS stored of each message ID.
func (w *windowedResults) copies() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.stored)
}

type noPolls struct{}

func (noPolls) Schedule(context.Context, handlers.PollRequest, time.Time) error { return nil }

// newStore is a store of the test's own: the shared Redis under a key prefix of its own.
func newStore(t *testing.T) *orderstate.Store {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	t.Cleanup(store.Close)
	return store
}

// shopOrders is Orders for one shop, "shop", whose calls go to prov, over store, with outcomes
// published to outs, timers dropped and the machine's clock.
func shopOrders(t *testing.T, store *orderstate.Store, prov handlers.Provider, outs handlers.Outcomes) *handlers.Orders {
	t.Helper()
	shop := &handlers.Shop{ID: "shop", Provider: prov}
	return newOrders(t, handlers.OrdersConfig{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: outs, Polls: noPolls{}, Now: time.Now})
}

// putEnclosedOK writes the state of order o1 of shop: credit OK, the invoice enclosed in the parcel.
func putEnclosedOK(t *testing.T, store *orderstate.Store) {
	t.Helper()
	st := orderstate.State{Status: orderstate.StatusOK, TransactionID: "12345678901", Service: atodene.ServiceEnclosed}
	if _, err := store.Put(context.Background(), "shop", "o1", st, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// TestRetryAfterUnpublishedOutcomeAnswersOnce: the answer to an invoice request is written but its
// publish fails; the redelivered request publishes that answer and asks ATODENE nothing again.
func TestRetryAfterUnpublishedOutcomeAnswersOnce(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	putEnclosedOK(t, store)
	prov, outs := &fakeProvider{}, &flakyOutcomes{failures: 1}
	o := shopOrders(t, store, prov, outs)
	ctx := context.Background()
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

// resultsStream keeps outcomes by message ID as RESULTS does within its duplicate window: the
// same body again is a duplicate, dropped; another is a *handlers.ReusedIDError.
type resultsStream struct {
	byID      map[string]string
	published []string
}

func (r *resultsStream) Publish(_ context.Context, _, msgID string, body []byte) error {
	if old, ok := r.byID[msgID]; ok {
		if old != string(body) {
			return fmt.Errorf("publishing: %w", &handlers.ReusedIDError{Stream: "RESULTS", MsgID: msgID, Seq: 7})
		}
		return nil
	}
	r.byID[msgID] = string(body)
	r.published = append(r.published, msgID)
	return nil
}

// TestReusedOutcomeIDIsReissuedAlone: an outbox left by a write whose version Redis had used
// before (a rollback) holds an outcome whose ID RESULTS holds with other content, then one that
// RESULTS holds as it is. The first is reissued in a new epoch and published; the second is the
// lost write's own outcome, dropped as a duplicate, not published again under a new ID.
func TestReusedOutcomeIDIsReissuedAlone(t *testing.T) {
	t.Parallel()
	store, ctx := newStore(t), context.Background()
	outcome := func(id, typ, number string) orderstate.Outcome {
		body, err := events.NewOutcome(id, typ, "ev-1", time.Now(), events.Shipment{ShopID: "shop", OrderID: "o1", TrackingNumber: number})
		if err != nil {
			t.Fatal(err)
		}
		return orderstate.Outcome{Subject: events.Subject(typ, "shop"), MsgID: id, Body: body}
	}
	const idA, idB = "shop:o1:0a0a0a0a:3:shipment.ok", "shop:o1:0a0a0a0a:3:credit.ok"
	a, b := outcome(idA, events.TypeShipmentOK, "2222"), outcome(idB, events.TypeCreditOK, "")
	results := &resultsStream{byID: map[string]string{idA: string(outcome(idA, events.TypeShipmentOK, "1111").Body), idB: string(b.Body)}}
	st := orderstate.State{Status: orderstate.StatusOK, TransactionID: "12345678901", Service: atodene.ServiceEnclosed,
		Epoch: "0a0a0a0a", Outbox: []orderstate.Outcome{a, b}}
	if _, err := store.Put(ctx, "shop", "o1", st, time.Now()); err != nil {
		t.Fatal(err)
	}
	o := shopOrders(t, store, &fakeProvider{}, results)
	ev := handlers.Event[events.InvoiceRequest]{Meta: handlers.Meta{ID: "inv-1", Shop: "shop"}, Data: events.InvoiceRequest{ShopID: "shop", OrderID: "o1"}}
	if err := o.InvoiceRequested(ctx, ev); err != nil {
		t.Fatal(err)
	}
	got, err := store.Get(ctx, "shop", "o1")
	if err != nil {
		t.Fatal(err)
	}
	reissued := "shop:o1:" + got.Epoch + ":3:shipment.ok"
	if got.Epoch == "0a0a0a0a" || len(results.published) != 2 || results.published[0] != reissued || !strings.HasSuffix(results.published[1], ":invoice.ok") {
		t.Fatalf("epoch %s, published %v; want %s, then the invoice", got.Epoch, results.published, reissued)
	}
	if body := results.byID[reissued]; !strings.Contains(body, `"id":"`+reissued+`"`) || !strings.Contains(body, `"tracking_number":"2222"`) {
		t.Errorf("reissued outcome: %s", body)
	}
	history, err := store.History(ctx, "shop", "o1")
	if err != nil {
		t.Fatal(err)
	}
	if len(history) == 0 || !strings.HasPrefix(history[0].Did, "reissued as "+reissued+": RESULTS holds another outcome under "+idA) {
		t.Errorf("history: %+v", history)
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
	store := newStore(t)
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
	o := shopOrders(t, store, prov, outs)
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
	store := newStore(t)
	putEnclosedOK(t, store)
	prov, outs := &failingProvider{failing: true}, &flakyOutcomes{}
	o := shopOrders(t, store, prov, outs)
	ctx := context.Background()
	ev := handlers.Event[events.InvoiceRequest]{Meta: handlers.Meta{ID: "inv-1", Shop: "shop"}, Data: events.InvoiceRequest{ShopID: "shop", OrderID: "o1"}}
	if err := o.InvoiceRequested(ctx, ev); err == nil {
		t.Fatal("a failed fetch succeeded")
	}
	if done, _ := store.EventDone(ctx, "shop", ev.Key()); done {
		t.Fatal("a failed event was recorded as processed")
	}
	prov.failing = false
	if err := o.InvoiceRequested(ctx, ev); err != nil {
		t.Fatalf("second delivery: %v", err)
	}
	if done, _ := store.EventDone(ctx, "shop", ev.Key()); !done {
		t.Fatal("a processed event was not recorded")
	}
	if err := o.InvoiceRequested(ctx, ev); err != nil {
		t.Fatalf("third delivery: %v", err)
	}
	if len(outs.ids) != 1 || prov.calls["invoice"] != 2 {
		t.Errorf("published %v, %d invoice calls; want one outcome and two calls (the failed and the good one)", outs.ids, prov.calls["invoice"])
	}
}

// newOrders is handlers.NewOrders with the settings' defaults for what cfg leaves zero, a lease of
// a minute, and dead letters and logs dropped.
func newOrders(t testing.TB, cfg handlers.OrdersConfig) *handlers.Orders {
	t.Helper()
	if cfg.Poll == (handlers.PollPolicy{}) {
		cfg.Poll = handlers.PollPolicy{First: time.Minute, Max: 30 * time.Minute, Deadline: 14 * 24 * time.Hour}
	}
	if cfg.DeadLetters == nil {
		cfg.DeadLetters = &recordedLetters{}
	}
	if cfg.ParkLimit == 0 {
		cfg.ParkLimit = 7 * 24 * time.Hour
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	o, err := handlers.NewOrders(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// NewOrders refuses a config with a setting left out, naming each: lower layers have no defaults
// of their own, so a forgotten setting cannot quietly become one.
func TestNewOrdersNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	_, err := handlers.NewOrders(handlers.OrdersConfig{Now: time.Now, MaxAttempts: 10})
	if err == nil {
		t.Fatal("NewOrders accepted an empty config")
	}
	for _, want := range []string{"Store is required", "Shops is required", "Outcomes is required", "Polls is required",
		"DeadLetters is required", "Logger is required", "ParkLimit 0s", "PollPolicy: First 0s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "Now is required") {
		t.Errorf("error %q names Now, which is set", err)
	}
}
