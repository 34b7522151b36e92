package handlers_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
)

// receivedOrder is an order event of shop-a as a message of the ORDERS stream: its body is the
// envelope (source test, the given id and time) around testOrder(order, billed).
func receivedOrder(t *testing.T, typ, id, order string, seq uint64, at string, billed int64) *handlers.Message {
	t.Helper()
	data, err := json.Marshal(testOrder(order, billed))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"specversion":"1.0","id":"` + id + `","source":"test","type":"` + typ + `","time":"` + at +
		`","datacontenttype":"application/json","data":` + string(data) + `}`
	return &handlers.Message{Subject: events.Subject(typ, "shop-a"), Body: []byte(body), Stream: "ORDERS", Sequence: seq, Attempt: 1}
}

// serveOrders is what the worker runs for order.created and order.updated of e: each message
// decoded once, then handled.
func (e *env) serveOrders() handlers.Handler {
	mux := handlers.NewMux()
	mux.Handle(events.TypeOrderCreated, handlers.Typed(events.DecodeCreated, e.o.OrderCreated))
	mux.Handle(events.TypeOrderUpdated, handlers.Typed(events.DecodeOrder, e.o.OrderUpdated))
	return handlers.Serve(mux.Decode, mux.Handler)
}

const receivedAt = "2026-11-26T10:15:00+09:00"

// reusedID checks that err dead-letters an event as invalid because its id was reused.
func reusedID(t *testing.T, err error) {
	t.Helper()
	if reason, dead := handlers.DeadLetterReason(err); !dead || reason != handlers.ReasonInvalid ||
		!strings.HasPrefix(err.Error(), "id: reused for a different event: ") {
		t.Fatalf("err %v; want a dead letter invalid: id: reused for a different event", err)
	}
}

// noDuplicateEntry fails the test if order's history says that an event was a copy.
func (e *env) noDuplicateEntry(t *testing.T, order string) {
	t.Helper()
	h, err := e.store.History(context.Background(), "shop-a", order)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range h {
		if strings.HasPrefix(x.Did, "duplicate") {
			t.Errorf("history of %s says %q of an event never processed", order, x.Did)
		}
	}
}

// TestReusedIDForAnotherOrderIsDeadLettered: an importer reuses the id (same source) of an
// order.created for the order.created of another order. The second is not a copy: it is
// dead-lettered as invalid, naming id, with no ATODENE call and no state written for its order,
// whose history does not say "duplicate: processed already" (the consume loop adds the dead letter
// to it). A copy of the first, sent again with another envelope time, is still a duplicate.
func TestReusedIDForAnotherOrderIsDeadLettered(t *testing.T) {
	t.Parallel()
	prov := &fakeProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	h := e.serveOrders()
	if err := h(ctx, receivedOrder(t, events.TypeOrderCreated, "reused-1", "ZR-1", 1, receivedAt, 2950)); err != nil {
		t.Fatal(err)
	}
	reusedID(t, h(ctx, receivedOrder(t, events.TypeOrderCreated, "reused-1", "ZR-2", 2, receivedAt, 4100)))
	if st, _ := e.store.Get(ctx, "shop-a", "ZR-2"); st.Version != 0 || prov.calls["register"] != 1 {
		t.Errorf("ZR-2 at version %d (status %q), %d registrations; want no state, the first order's registration only", st.Version, st.Status, prov.calls["register"])
	}
	e.noDuplicateEntry(t, "ZR-2")

	if err := h(ctx, receivedOrder(t, events.TypeOrderCreated, "reused-1", "ZR-1", 3, "2026-11-26T10:20:00+09:00", 2950)); err != nil {
		t.Fatalf("a copy of the first event with another time: %v", err)
	}
	if got := e.history(t, "ZR-1"); got[len(got)-1].Did != "duplicate: processed already" || prov.calls["register"] != 1 {
		t.Errorf("a copy of the first event: history %q, %d registrations; want a duplicate, one registration", got[len(got)-1].Did, prov.calls["register"])
	}
}

// TestReusedIDWithChangedDataIsDeadLettered: an importer sends order.updated to 3950 yen, then an
// order.updated of the same order to 4950 under the same source and id. The second is not a copy
// of the first: it is dead-lettered as invalid, nothing is sent, and the order's history does not
// take it for a duplicate. The type counts as well: an order.updated under the id of the order's
// order.created, with its very data, is not a copy of it either.
func TestReusedIDWithChangedDataIsDeadLettered(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	h := e.serveOrders()
	const order = "ZR-3"
	handled(t,
		h(ctx, receivedOrder(t, events.TypeOrderCreated, "c-1", order, 1, receivedAt, 2950)),
		h(ctx, receivedOrder(t, events.TypeOrderUpdated, "upd", order, 2, receivedAt, 3950)))
	reusedID(t, h(ctx, receivedOrder(t, events.TypeOrderUpdated, "upd", order, 3, receivedAt, 4950)))
	reusedID(t, h(ctx, receivedOrder(t, events.TypeOrderUpdated, "c-1", order, 4, receivedAt, 2950)))
	if st, _ := e.store.Get(ctx, "shop-a", order); st.BilledAmount != 3950 || len(prov.billed) != 2 {
		t.Errorf("billed %d after sending %v; want 3950, the registration and the first change only", st.BilledAmount, prov.billed)
	}
	e.noDuplicateEntry(t, order)
}

// TestResentEventIsADuplicate: the same event sent again, byte for byte or with only its envelope
// time changed, is a copy: nothing is called, and the history says so.
func TestResentEventIsADuplicate(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	h := e.serveOrders()
	const order = "ZR-4"
	handled(t,
		h(ctx, receivedOrder(t, events.TypeOrderCreated, "c-1", order, 1, receivedAt, 2950)),
		h(ctx, receivedOrder(t, events.TypeOrderUpdated, "u-1", order, 2, receivedAt, 3950)),
		h(ctx, receivedOrder(t, events.TypeOrderUpdated, "u-1", order, 3, receivedAt, 3950)),
		h(ctx, receivedOrder(t, events.TypeOrderUpdated, "u-1", order, 4, "2026-11-26T11:00:00+09:00", 3950)))
	if len(prov.billed) != 2 {
		t.Errorf("sent %v; want the registration and one change", prov.billed)
	}
	if got := e.history(t, order); len(got) != 4 || got[2].Did != "duplicate: processed already" || got[3].Did != "duplicate: processed already" {
		t.Errorf("history %+v; want the two copies recorded as duplicates", got)
	}
}

// TestReusedIDQueuedInTheInboxIsDeadLettered: an event under a reused id, queued in its order's
// inbox while another handler held the lease, is dead-lettered by the holder that applies it, with
// an entry in the order's history, and the record of the earlier event stays: a copy of that one
// is still a duplicate.
func TestReusedIDQueuedInTheInboxIsDeadLettered(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	h := e.serveOrders()
	const order = "ZR-5"
	handled(t,
		h(ctx, receivedOrder(t, events.TypeOrderCreated, "c-1", order, 1, receivedAt, 2950)),
		h(ctx, receivedOrder(t, events.TypeOrderUpdated, "upd", order, 2, receivedAt, 3950)))
	const ttl = 300 * time.Millisecond
	e.holder(t, order, ttl)
	if err := h(ctx, receivedOrder(t, events.TypeOrderUpdated, "upd", order, 3, receivedAt, 4950)); err != nil {
		t.Fatalf("queued event: %v", err)
	}
	time.Sleep(ttl + 100*time.Millisecond) // the holder's lease expires
	if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: order, Kind: handlers.TimerInbox}); err != nil {
		t.Fatalf("inbox timer: %v", err)
	}
	if len(e.letters.letters) != 1 || e.letters.letters[0].Reason != handlers.ReasonInvalid.String() ||
		!strings.HasPrefix(e.letters.letters[0].Err.Error(), "id: reused for a different event: ") {
		t.Fatalf("dead letters %+v; want the queued event's, invalid: id: reused", e.letters.letters)
	}
	got := e.history(t, order)
	if last := got[len(got)-1].Did; !strings.HasPrefix(last, "dead-lettered: invalid: id: reused for a different event: ") {
		t.Errorf("last history entry %q; want the dead letter", last)
	}
	if st, _ := e.store.Get(ctx, "shop-a", order); st.BilledAmount != 3950 || len(prov.billed) != 2 {
		t.Errorf("billed %d after sending %v; want 3950", st.BilledAmount, prov.billed)
	}
	if err := h(ctx, receivedOrder(t, events.TypeOrderUpdated, "upd", order, 4, receivedAt, 3950)); err != nil {
		t.Fatalf("a copy of the earlier event: %v", err)
	}
	if got := e.history(t, order); got[len(got)-1].Did != "duplicate: processed already" {
		t.Errorf("a copy of the earlier event: %q; want a duplicate (its record kept)", got[len(got)-1].Did)
	}
}
