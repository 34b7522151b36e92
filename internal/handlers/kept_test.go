package handlers_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// recordedKept records the copies kept: event key -> why.
type recordedKept struct {
	mu     sync.Mutex
	copies map[string]string
}

func (k *recordedKept) Keep(_ context.Context, _, _ string, p orderstate.Parked, why string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.copies == nil {
		k.copies = map[string]string{}
	}
	k.copies[p.Key] = why
	return nil
}

func (k *recordedKept) Drop(_ context.Context, _, _, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.copies, key)
	return nil
}

func (k *recordedKept) has(key string) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	why, ok := k.copies[key]
	return why, ok
}

// gatedShipment fails each shipment report (ATODENE answering 503) once the gate opens.
type gatedShipment struct {
	fakeProvider
	started, gate chan struct{}
}

func (p *gatedShipment) ReportShipment(ctx context.Context, s atodene.Shipment) error {
	p.started <- struct{}{}
	<-p.gate
	return &atodene.StatusError{Op: "shippingrequest.do", StatusCode: 503}
}

// TestEveryEventOnlyRedisHoldsHasACopy: each way an event's message is acknowledged while only
// Redis holds the event keeps a copy first: queued behind the lease's holder; the holder's own
// event retried from the inbox ahead of those queued behind it (its message acknowledged); parked.
func TestEveryEventOnlyRedisHoldsHasACopy(t *testing.T) {
	t.Parallel()
	prov := &gatedShipment{started: make(chan struct{}), gate: make(chan struct{})}
	e, ctx := newEnv(t, prov), context.Background()
	kept := &recordedKept{}
	e.o.Kept = kept
	e.okOrder(t)
	x, y := trackingEvent("x", "o-1", 5, "1111-1111-1111"), trackingEvent("y", "o-1", 6, "2222-2222-2222")
	done := make(chan error)
	go func() { done <- e.o.TrackingEntered(ctx, x) }()
	<-prov.started // x holds the lease, calling ATODENE
	if err := e.o.TrackingEntered(ctx, y); err != nil {
		t.Fatalf("y: %v", err)
	}
	if why, ok := kept.has(y.Key()); !ok || why != handlers.KeptQueued {
		t.Errorf("y, queued behind x: copy %q %v", why, ok)
	}
	close(prov.gate)
	if err := <-done; err != nil {
		t.Fatalf("x returned %v: it is retried from the inbox, its message done with", err)
	}
	if why, ok := kept.has(x.Key()); !ok || why != handlers.KeptQueued {
		t.Errorf("x, retried from the inbox ahead of y: copy %q %v", why, ok)
	}
	p := trackingEvent("p", "NEW-1", 7, "3333-3333-3333")
	if err := e.o.TrackingEntered(ctx, p); err != nil {
		t.Fatalf("p: %v", err)
	}
	if why, ok := kept.has(p.Key()); !ok || why != handlers.KeptParked {
		t.Errorf("p, parked for an order not registered: copy %q %v", why, ok)
	}
	if _, err := e.store.Put(ctx, "shop-a", "REV-1", orderstate.State{Status: orderstate.StatusPending, TransactionID: "12345678902"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	q := trackingEvent("q", "REV-1", 8, "4444-4444-4444")
	if err := e.o.TrackingEntered(ctx, q); err != nil {
		t.Fatalf("q: %v", err)
	}
	if why, ok := kept.has(q.Key()); !ok || why != handlers.KeptShipment {
		t.Errorf("q, a tracking number kept for an order under review: copy %q %v", why, ok)
	}
}
