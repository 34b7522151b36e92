package handlers_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
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
	ev := handlers.Event[events.InvoiceRequest]{ID: "inv-1", Shop: "shop", Data: events.InvoiceRequest{ShopID: "shop", OrderID: "o1"}}
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
