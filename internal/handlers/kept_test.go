package handlers_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/redisadmin"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// recordedKept records the copies kept: event key -> why, and their bodies; and, as the stream the
// events were consumed from holds them, every body kept by its sequence (until forgotten).
type recordedKept struct {
	mu       sync.Mutex
	copies   map[string]string
	bodies   map[string][]byte
	messages map[uint64][]byte
}

func (k *recordedKept) Keep(_ context.Context, _, _ string, p orderstate.Parked, why string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.copies == nil {
		k.copies, k.bodies, k.messages = map[string]string{}, map[string][]byte{}, map[uint64][]byte{}
	}
	k.copies[p.Key], k.bodies[p.Key], k.messages[p.Seq] = why, p.Body, p.Body
	return nil
}

// forgetMessages empties the stream the events were consumed from (its retention passed).
func (k *recordedKept) forgetMessages() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.messages)
}

func (k *recordedKept) Drop(_ context.Context, _, _, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.copies, key)
	delete(k.bodies, key)
	return nil
}

func (k *recordedKept) Body(_ context.Context, _, _ string, p orderstate.Parked) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if body, ok := k.bodies[p.Key]; ok && orderstate.BodySum(body) == p.BodySum {
		return body, nil
	}
	if body, ok := k.messages[p.Seq]; ok && orderstate.BodySum(body) == p.BodySum {
		return body, nil
	}
	return nil, handlers.ErrNoCopy
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
	if err := <-done; !handlers.RetriedLater(err) {
		t.Fatalf("x returned %v; want it retried from the inbox, its message done with", err)
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

// TestAppliedEventsCopyIsDroppedAtOnce: the copy of an event the state held (parked, or a
// tracking number queued for the credit) goes in the step that applies it, not at the
// reconciler's next pass: until then a flush of Redis would lose the record that it was applied,
// and its copy would be published again and answered twice.
func TestAppliedEventsCopyIsDroppedAtOnce(t *testing.T) {
	t.Parallel()
	e, ctx := newEnv(t, &fakeProvider{}), context.Background()
	kept := &recordedKept{}
	e.o.Kept = kept
	p := trackingEvent("p", "NEW-1", 7, "3333-3333-3333")
	if err := e.o.TrackingEntered(ctx, p); err != nil {
		t.Fatalf("p: %v", err)
	}
	if _, ok := kept.has(p.Key()); !ok {
		t.Fatal("p, parked for an order not registered: no copy")
	}
	if err := e.o.OrderCreated(ctx, createdEvent("c", "NEW-1", 9)); err != nil {
		t.Fatalf("order.created: %v", err)
	}
	if st, _ := e.store.Get(ctx, "shop-a", "NEW-1"); st.Shipment == nil || !st.Shipment.Reported {
		t.Fatalf("p not applied with the order: shipment %+v", st.Shipment)
	}
	if why, ok := kept.has(p.Key()); ok {
		t.Errorf("p applied: its copy (%s) is still kept", why)
	}

	if _, err := e.store.Put(ctx, "shop-a", "REV-1", orderstate.State{Status: orderstate.StatusPending, TransactionID: "12345678902"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	q := trackingEvent("q", "REV-1", 8, "4444-4444-4444")
	if err := e.o.TrackingEntered(ctx, q); err != nil {
		t.Fatalf("q: %v", err)
	}
	if _, ok := kept.has(q.Key()); !ok {
		t.Fatal("q, queued for the credit under review: no copy")
	}
	st, err := e.store.Get(ctx, "shop-a", "REV-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "REV-1", Seq: st.PollSeq}); err != nil {
		t.Fatalf("re-check: %v", err)
	}
	if st, _ := e.store.Get(ctx, "shop-a", "REV-1"); st.Status != orderstate.StatusOK || st.Shipment == nil || !st.Shipment.Reported {
		t.Fatalf("the re-check did not turn REV-1 OK and report q: %s, shipment %+v", st.Status, st.Shipment)
	}
	if why, ok := kept.has(q.Key()); ok {
		t.Errorf("q reported: its copy (%s) is still kept", why)
	}
}

// keepHook is recordedKept that runs onKeep (once) after each copy is kept.
type keepHook struct {
	recordedKept
	onKeep func()
}

func (k *keepHook) Keep(ctx context.Context, shop, order string, p orderstate.Parked, why string) error {
	err := k.recordedKept.Keep(ctx, shop, order, p, why)
	if k.onKeep != nil {
		k.onKeep()
		k.onKeep = nil
	}
	return err
}

// TestCopyForAQueueThatCameFreeIsDropped: an event finds its order's lease held, keeps its copy
// to queue behind the holder, and finds the lease free when it queues: it is handled as the
// message itself, and its copy goes with its step, or a loss of Redis's recent writes would make
// it look lost and answer it twice.
func TestCopyForAQueueThatCameFreeIsDropped(t *testing.T) {
	t.Parallel()
	e, ctx := newEnv(t, &fakeProvider{}), context.Background()
	e.okOrder(t)
	holder := e.deadHolder(t, time.Minute)
	kept := &keepHook{onKeep: func() {
		if err := holder.Release(ctx); err != nil {
			t.Errorf("releasing the holder's lease: %v", err)
		}
	}}
	e.o.Kept = kept
	ev := trackingEvent("t-1", "o-1", 7, "1234-5678-9012")
	if err := e.o.TrackingEntered(ctx, ev); err != nil {
		t.Fatalf("tracking: %v", err)
	}
	if st, _ := e.store.Get(ctx, "shop-a", "o-1"); st.Shipment == nil || !st.Shipment.Reported {
		t.Fatalf("the tracking number was not reported at once: %+v", st.Shipment)
	}
	if why, ok := kept.has(ev.Key()); ok {
		t.Errorf("the event was applied as the message itself: its copy (%s) is still kept", why)
	}
}

// TestQueuedShipmentFromTheInboxKeepsItsCopy: a tracking number queued in the inbox of an order
// under review, applied from the inbox, waits in the state for the credit: its copy stays.
func TestQueuedShipmentFromTheInboxKeepsItsCopy(t *testing.T) {
	t.Parallel()
	e, ctx := newEnv(t, &fakeProvider{}), context.Background()
	kept := &recordedKept{}
	e.o.Kept = kept
	if _, err := e.store.Put(ctx, "shop-a", "REV-2", orderstate.State{Status: orderstate.StatusPending, TransactionID: "12345678903"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	holder := e.holder(t, "REV-2", time.Minute)
	q := trackingEvent("q", "REV-2", 8, "4444-4444-4444")
	if err := e.o.TrackingEntered(ctx, q); err != nil {
		t.Fatalf("q: %v", err)
	}
	if why, _ := kept.has(q.Key()); why != handlers.KeptQueued {
		t.Fatalf("q, queued behind the holder: copy %q", why)
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "REV-2", Kind: handlers.TimerInbox}); err != nil {
		t.Fatalf("inbox timer: %v", err)
	}
	if st, _ := e.store.Get(ctx, "shop-a", "REV-2"); st.Shipment == nil || st.Shipment.Reported || st.Shipment.Event != q.Key() {
		t.Fatalf("q not queued in the state for the credit: %+v", st.Shipment)
	}
	if why, ok := kept.has(q.Key()); !ok || why != handlers.KeptShipment {
		t.Errorf("q waits in the state for the credit: copy %q %v, want %q", why, ok, handlers.KeptShipment)
	}
}

// failingAfter publishes n outcomes, then fails every publish (RESULTS gone mid-step).
type failingAfter struct{ n int }

func (f *failingAfter) Publish(context.Context, string, string, []byte) error {
	if f.n == 0 {
		return errors.New("RESULTS unavailable")
	}
	f.n--
	return nil
}

// TestCopyGoesWithTheSettleThatAppliedIt: a parked event applied by the settle that starts a step
// loses its copy once that settle is written and published, even when the rest of the step fails:
// the next step starts from the state written, which no longer names the event.
func TestCopyGoesWithTheSettleThatAppliedIt(t *testing.T) {
	t.Parallel()
	e, ctx := newEnv(t, &fakeProvider{}), context.Background()
	kept := &recordedKept{}
	e.o.Kept = kept
	p := trackingEvent("p", "PK-1", 7, "3333-3333-3333")
	if err := e.o.TrackingEntered(ctx, p); err != nil {
		t.Fatalf("p: %v", err)
	}
	st, err := e.store.Get(ctx, "shop-a", "PK-1")
	if err != nil || len(st.Parked) != 1 {
		t.Fatalf("p not parked: %+v, %v", st.Parked, err)
	}
	// The order registered OK, as a state whose settle has not run yet.
	st.Status, st.TransactionID = orderstate.StatusOK, "12345678909"
	if _, err := e.store.Put(ctx, "shop-a", "PK-1", st, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.o.Outcomes = &failingAfter{n: 1} // p's shipment.ok goes out; the cancel's credit.cancelled does not
	cancel := handlers.Event[events.Cancel]{Meta: handlers.Meta{ID: "x-1", Source: "test", Type: events.TypeOrderCancelled, Shop: "shop-a", Seq: 9, Time: time.Now()},
		Data: events.Cancel{ShopID: "shop-a", OrderID: "PK-1"}}
	if err := e.o.OrderCancelled(ctx, cancel); err == nil {
		t.Fatal("the cancel's step succeeded with its publish failing")
	}
	if st, _ := e.store.Get(ctx, "shop-a", "PK-1"); len(st.Parked) != 0 || st.Shipment == nil || !st.Shipment.Reported {
		t.Fatalf("p not applied by the settle: parked %d, shipment %+v", len(st.Parked), st.Shipment)
	}
	if why, ok := kept.has(p.Key()); ok {
		t.Errorf("p applied and published, the step failing after: its copy (%s) is still kept", why)
	}
}

// flushingEnv is an env whose store deletes every key of the test's Redis right after the next
// write that appends a history entry, once armed (it runs in the writer's goroutine): Redis lost
// between a step's state write and its commit. flushed reports whether that happened.
func flushingEnv(t *testing.T) (e *env, kept *recordedKept, arm func(), flushed func() bool) {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	var armed, done atomic.Bool
	flush := func(w orderstate.Written) {
		if w.History > 0 && armed.CompareAndSwap(true, false) {
			if err := redisadmin.DeleteKeys(context.Background(), rdb, prefix); err != nil {
				t.Error(err)
			}
			done.Store(true)
		}
	}
	store := orderstate.NewStore(rdb, orderstate.Config{Prefix: prefix, EventTTL: time.Hour, Written: flush})
	t.Cleanup(store.Close)
	kept = &recordedKept{}
	return newEnvOn(t, store, &fakeProvider{}, kept), kept, func() { armed.Store(true) }, done.Load
}

// underReview writes the state of order, under review with its re-check an hour away.
func (e *env) underReview(t *testing.T, order string) {
	t.Helper()
	st := orderstate.State{Status: orderstate.StatusPending, TransactionID: "12345678903", PollScheduled: true, PollAt: time.Now().Add(time.Hour)}
	if _, err := e.store.Put(context.Background(), "shop-a", order, st, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// wantNotRecorded checks that ev, whose state Redis lost, is not recorded as processed.
func wantNotRecorded(t *testing.T, e *env, ev handlers.Meta) {
	t.Helper()
	if done, err := e.store.EventDone(context.Background(), "shop-a", ev.Key()); err != nil || done {
		t.Errorf("the event was recorded as processed in the emptied Redis: %v (%v)", done, err)
	}
}

// TestEventWhoseStateWasLostIsNotRecorded: Redis flushed between the write that queues a tracking
// number for the credit and the step's commit. Recorded as processed in the emptied Redis, the
// event's copy would be dropped as applied and the event lost with the state. The commit records
// nothing: the handling fails, its message is redelivered, and the copy stays (finding 10 of
// docs/reliability.md).
func TestEventWhoseStateWasLostIsNotRecorded(t *testing.T) {
	t.Parallel()
	e, kept, arm, flushed := flushingEnv(t)
	e.underReview(t, "REV-3")
	q := trackingEvent("q", "REV-3", 9, "5555-5555-5555")
	arm()
	err := e.o.TrackingEntered(context.Background(), q)
	if !flushed() {
		t.Fatal("the tracking number was not queued with a history entry: nothing was flushed")
	}
	if err == nil {
		t.Error("the handling succeeded although Redis lost what it wrote")
	}
	wantNotRecorded(t, e, q.Meta)
	if _, ok := kept.has(q.Key()); !ok {
		t.Error("the event's copy was dropped")
	}
}

// TestInboxEventWhoseStateWasLostIsNotRecorded: the same loss when the tracking number is applied
// from the order's inbox (queued behind another handler's lease): the inbox's commit records
// nothing and the timer's handler schedules another try. (The event's copy, which brings it back
// with the inbox gone, stays whatever the commit does: the state written names the event.)
func TestInboxEventWhoseStateWasLostIsNotRecorded(t *testing.T) {
	t.Parallel()
	e, _, arm, flushed := flushingEnv(t)
	ctx := context.Background()
	e.underReview(t, "REV-4")
	holder := e.holder(t, "REV-4", time.Minute)
	q := trackingEvent("q", "REV-4", 9, "6666-6666-6666")
	if err := e.o.TrackingEntered(ctx, q); err != nil {
		t.Fatalf("q, queued behind the holder: %v", err)
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	arm()
	if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "REV-4", Kind: handlers.TimerInbox}); err != nil {
		t.Fatalf("inbox timer: %v", err)
	}
	if !flushed() {
		t.Fatal("the tracking number was not applied from the inbox with a history entry: nothing was flushed")
	}
	wantNotRecorded(t, e, q.Meta)
	if got := e.polls.timer; len(got) == 0 || got[len(got)-1].Kind != handlers.TimerRetry {
		t.Errorf("timers %+v; want a retry of the inbox last", got)
	}
}
