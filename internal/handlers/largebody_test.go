package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// Messages over 64 KiB wait in their order's inbox without their body, read back from their kept
// copy or their message (docs/architecture.md#order-state-in-redis): whatever else comes under the
// same identity, each applies with its own body, once.

// TestLargeCancelWhoseCopyIsReplacedByAReusedIDAppliesItsOwnBody: a cancel x-1 over 64 KiB fails transiently and is kept first in the inbox for its retry,
// its entry without its body (BodyKept), its body only in its Kept copy (one per event key).
// Another event of the order arrives under the same source and id (an importer reusing the id:
// a small tracking number, other content): it is queued behind the cancel (no copy: other digest),
// and its Kept copy is written under the same key, REPLACING the cancel's copy.
// It was: at the retry, withKeptBody reads "the cancel's" body from Kept and gets the
// tracking number's: the cancel's entry is applied as (or dead-lettered as) the tracking number;
// the cancel is never applied nor dead-lettered with its own body: lost.
// Now (as TestReusedIdentityIsQueuedBehindAKeptEvent for a small cancel): the
// cancel applied (status cancelled, credit.cancelled), the reused-id event dead-lettered invalid.
func TestLargeCancelWhoseCopyIsReplacedByAReusedIDAppliesItsOwnBody(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsTimes{n: 1}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, newStore(t), prov, kept), context.Background()
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
	x.Body = append(x.Body, strings.Repeat(" ", 70<<10)...)
	if err := e.o.OrderCancelled(ctx, x); !handlers.RetriedLater(err) {
		t.Fatalf("cancel: %v; want kept for its retry", err)
	}
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("x-1", "o-1", 6, "1111-2222-3333")))
	if n, _ := e.store.InboxLen(ctx, "shop-a", "o-1"); n != 2 {
		t.Fatalf("inbox of %d; want the cancel and the event under its reused id", n)
	}
	for range 3 {
		e.retryTimer(t, "o-1", time.Minute)
	}
	st, _ := e.store.Get(ctx, "shop-a", "o-1")
	var cancelLetterBody int
	for _, l := range e.letters.letters {
		if l.Sequence == 5 {
			cancelLetterBody = len(l.Body)
		}
	}
	if st.Status != orderstate.StatusCancelled || e.outcomes("o-1", events.TypeCreditCancelled) != 1 || e.letterOf(6) != handlers.ReasonInvalid.String() {
		t.Errorf("status %q, cancel calls %d, shipment calls %d, credit.cancelled %d, letters %v (seq5 %q body %d bytes, seq6 %q); want cancelled by the retry, the reused-id event dead-lettered invalid",
			st.Status, prov.calls["cancel"], prov.calls["shipment"], e.outcomes("o-1", events.TypeCreditCancelled), reasons(e.letters), e.letterOf(5), cancelLetterBody, e.letterOf(6))
	}
}

// TestLargeReusedIDBehindAKeptCancelIsDeadLetteredWithItsBody: as above, but the large event is the reused-id one. A small cancel x-1 is kept for its
// retry; a tracking number over 64 KiB under the same source and id is queued behind it (BodyKept,
// its Kept copy replacing the cancel's). The cancel's retry succeeds: its applier drops the Kept
// copy of key x-1 — which is the tracking number's, the only place its body lives.
// It was: the tracking number's entry finds no copy and is dead-lettered, its letter WITHOUT
// a body (withKeptBody's ErrNoCopy, or deadLetterReused with the bodiless entry).
// Now: the reused-id event dead-lettered invalid with its body (as a small one is),
// so the operator can replay it.
func TestLargeReusedIDBehindAKeptCancelIsDeadLetteredWithItsBody(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsTimes{n: 1}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, newStore(t), prov, kept), context.Background()
	e.okOrder(t)
	if err := e.o.OrderCancelled(ctx, parkableCancel("x-1", "o-1", 5)); !handlers.RetriedLater(err) {
		t.Fatalf("cancel: %v; want kept for its retry", err)
	}
	y := trackingEvent("x-1", "o-1", 6, "1111-2222-3333")
	y.Body = append(y.Body, strings.Repeat(" ", 70<<10)...)
	handled(t, e.o.TrackingEntered(ctx, y))
	for range 3 {
		e.retryTimer(t, "o-1", time.Minute)
	}
	st, _ := e.store.Get(ctx, "shop-a", "o-1")
	var body []byte
	for _, l := range e.letters.letters {
		if l.Sequence == 6 {
			body = l.Body
		}
	}
	if st.Status != orderstate.StatusCancelled || e.letterOf(6) == "" || !bytes.Equal(body, y.Body) {
		t.Errorf("status %q, letters %v; the reused-id event's letter has %d bytes of body (want %d: its own body)",
			st.Status, reasons(e.letters), len(body), len(y.Body))
	}
	for _, l := range e.letters.letters {
		t.Logf("letter seq %d reason %s body %d bytes err %v", l.Sequence, l.Reason, len(l.Body), l.Err)
	}
}

// TestLargeReusedIDKeepsItsBodyWhenTheEventBeforeItFails: a small cancel x-1 is at ATODENE (its first try); meanwhile a tracking number over 64 KiB
// under the same source and id (reused id, other content) comes, finds the lease held and is
// queued (BodyKept), its Kept copy written on key x-1. The cancel's try fails PERMANENTLY: the
// consumer dead-letters its message, and step's new drop (orders.go: "The commit removed the inbox's
// copies of the event ... their copy in Kept goes with them") drops the Kept copy of key x-1 — the
// tracking number's, which is no copy of the cancel (other digest) and stays queued.
// It was: the tracking number, applied from the inbox at once, finds no Kept copy and is
// dead-lettered invalid without its body; it is never reported.
// Now: the cancel was not recorded (dead-lettered), so the tracking number is an
// event of its own: reported (shipment call) — or at least dead-lettered with its body.
func TestLargeReusedIDKeepsItsBodyWhenTheEventBeforeItFails(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsOnceWith{}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, newStore(t), prov, kept), context.Background()
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
	y := trackingEvent("x-1", "o-1", 6, "1111-2222-3333")
	y.Body = append(y.Body, strings.Repeat(" ", 70<<10)...)
	prov.during = func() {
		if err := e.o.TrackingEntered(ctx, y); err != nil {
			t.Errorf("the tracking number, during the try: %v; want queued", err)
		}
	}
	err := e.o.OrderCancelled(ctx, x)
	if _, dead := handlers.DeadLetterOf(err, &handlers.Message{Attempt: 1}); !dead {
		t.Fatalf("cancel: %v; want dead-lettered by the consumer", err)
	}
	for range 3 {
		e.retryTimer(t, "o-1", time.Minute)
	}
	var body []byte
	for _, l := range e.letters.letters {
		t.Logf("letter seq %d reason %s body %d bytes err %v", l.Sequence, l.Reason, len(l.Body), l.Err)
		if l.Sequence == 6 {
			body = l.Body
		}
	}
	n, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
	if prov.calls["shipment"] == 0 && !bytes.Equal(body, y.Body) {
		t.Errorf("shipment calls %d, inbox %d, letters %v, the tracking number's letter %d bytes of body (want %d); want it reported, or dead-lettered with its body",
			prov.calls["shipment"], n, reasons(e.letters), len(body), len(y.Body))
	}
}

func largeCancel(id string, seq uint64) handlers.Event[events.Cancel] {
	x := parkableCancel(id, "o-1", seq)
	x.Body = append(x.Body, strings.Repeat(" ", 70<<10)...)
	return x
}

// TestLargeExhaustedLetterCarriesFullBodyAndEntryStaysSmall: a large cancel failing through all its tries (MaxAttempts 3). Each retry rewrites its
// entry (retryLater → inInbox): the entry stays small. Its exhausted letter carries its full body
// (read back from Kept), and its Kept copy is dropped.
func TestLargeExhaustedLetterCarriesFullBodyAndEntryStaysSmall(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	t.Cleanup(store.Close)
	prov := &cancelFailsTimes{n: 100}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, store, prov, kept), context.Background()
	e.o.MaxAttempts = 3
	e.okOrder(t)
	x := largeCancel("x-1", 5)
	if err := e.o.OrderCancelled(ctx, x); !handlers.RetriedLater(err) {
		t.Fatalf("cancel: %v; want kept for its retry", err)
	}
	for i := range 8 {
		entries, _ := rdb.LRange(ctx, prefix+"inbox:{shop-a}:o-1", 0, -1).Result()
		for _, en := range entries {
			if len(en) > 4<<10 {
				t.Errorf("after %d retries an inbox entry of %d bytes", i, len(en))
			}
		}
		e.retryTimer(t, "o-1", time.Minute)
	}
	var body []byte
	for _, l := range e.letters.letters {
		if l.Sequence == 5 {
			body = l.Body
		}
	}
	_, has := kept.has(x.Key())
	if e.letterOf(5) != handlers.ReasonExhausted.String() || !bytes.Equal(body, x.Body) || prov.calls["cancel"] != 3 || has {
		t.Errorf("letters %v, body %d bytes (want %d), cancel calls %d, kept copy left %v", reasons(e.letters), len(body), len(x.Body), prov.calls["cancel"], has)
	}
}

// TestLargeKeptCancelRedeliveredAppliesOnce: a large cancel kept for its retry; its ack is lost and it is delivered again (Attempt 2)
// while it waits: the redelivery is a copy (inbox_holds), its Keep replaces the copy with the same
// body. The retry applies it once; no letter; the copy dropped.
func TestLargeKeptCancelRedeliveredAppliesOnce(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsTimes{n: 1}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, newStore(t), prov, kept), context.Background()
	e.okOrder(t)
	x := largeCancel("x-1", 5)
	if err := e.o.OrderCancelled(ctx, x); !handlers.RetriedLater(err) {
		t.Fatalf("cancel: %v", err)
	}
	x.Attempt = 2
	if err := e.o.OrderCancelled(ctx, x); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	for range 3 {
		e.retryTimer(t, "o-1", time.Minute)
	}
	_, has := kept.has(x.Key())
	n, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
	if prov.calls["cancel"] != 2 || e.outcomes("o-1", events.TypeCreditCancelled) != 1 || len(e.letters.letters) != 0 || has || n != 0 {
		t.Errorf("cancel calls %d, credit.cancelled %d, letters %v, kept %v, inbox %d", prov.calls["cancel"], e.outcomes("o-1", events.TypeCreditCancelled), reasons(e.letters), has, n)
	}
}

// TestLargeQueuedBehindHolderIsApplied: a large cancel queued behind another handler (lease held; take.Queue BodyKept), the holder
// dies; the inbox timer drains it: applied with its body once, copy dropped.
func TestLargeQueuedBehindHolderIsApplied(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsTimes{}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, newStore(t), prov, kept), context.Background()
	const ttl = 300 * time.Millisecond
	e.o.LeaseTTL = ttl
	e.okOrder(t)
	e.deadHolder(t, ttl)
	x := largeCancel("x-1", 5)
	if err := e.o.OrderCancelled(ctx, x); err != nil {
		t.Fatalf("queued: %v", err)
	}
	if why, ok := kept.has(x.Key()); !ok || why != handlers.KeptQueued {
		t.Fatalf("kept %q %v", why, ok)
	}
	time.Sleep(ttl + 100*time.Millisecond)
	for range 2 {
		if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: handlers.TimerInbox}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := e.store.Get(ctx, "shop-a", "o-1")
	_, has := kept.has(x.Key())
	if st.Status != orderstate.StatusCancelled || prov.calls["cancel"] != 1 || has || len(e.letters.letters) != 0 {
		t.Errorf("status %q, calls %d, kept %v, letters %v", st.Status, prov.calls["cancel"], has, reasons(e.letters))
	}
}

// TestLargeUpdateToZeroFromInboxDeadLetteredWithBody: a large order.updated to 0 (a cancel) for an order with no state yet, queued behind a
// holder; drained from the inbox it would park, but it is too large to park: dead-lettered
// no-transaction WITH its full body (read back from Kept), copy dropped.
func TestLargeUpdateToZeroFromInboxDeadLetteredWithBody(t *testing.T) {
	t.Parallel()
	prov := &fakeProvider{}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, newStore(t), prov, kept), context.Background()
	const ttl = 300 * time.Millisecond
	e.o.LeaseTTL = ttl
	e.holder(t, "Z-1", ttl)
	at := time.Date(2026, 11, 26, 10, 15, 0, 0, time.UTC)
	body := envelope(events.TypeOrderUpdated, "u-1", `{"shop_id":"shop-a","order_id":"Z-1","ordered_at":"2026-11-26T10:14:03+09:00",
		"buyer":{"name":"加藤 太郎","name_kana":"カトウ タロウ","zip":"150-0001","address":"東京都渋谷区神宮前1-1-1","phone":"03-1234-5678","email":"taro@example.jp"},
		"items":[{"name":"緑茶","unit_price":0,"quantity":1}],"billed_amount":0}`)
	body = append(body, strings.Repeat(" ", 70<<10)...)
	upd := handlers.Event[events.Order]{Meta: handlers.Meta{ID: "u-1", Source: "test", Type: events.TypeOrderUpdated, Shop: "shop-a", Seq: 2, Time: at.Add(time.Minute),
		Subject: "orders.updated.shop-a", Stream: "ORDERS", Attempt: 1, Body: body}, Data: testOrder("Z-1", 0)}
	if err := e.o.OrderUpdated(ctx, upd); err != nil {
		t.Fatalf("update to 0: %v", err)
	}
	time.Sleep(ttl + 100*time.Millisecond)
	if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "Z-1", Kind: handlers.TimerInbox}); err != nil {
		t.Fatal(err)
	}
	var lb []byte
	for _, l := range e.letters.letters {
		t.Logf("letter seq %d %s %d bytes: %v", l.Sequence, l.Reason, len(l.Body), l.Err)
		if l.Sequence == 2 {
			lb = l.Body
		}
	}
	_, has := kept.has(upd.Key())
	st, _ := e.store.Get(ctx, "shop-a", "Z-1")
	parked := len(st.Parked)
	if !bytes.Equal(lb, body) && parked == 0 {
		t.Errorf("letters %v (body %d bytes, want %d), parked %d, kept %v; want the update parked or dead-lettered with its body", reasons(e.letters), len(lb), len(body), parked, has)
	}
	if parked == 0 && has {
		t.Errorf("the update is neither held nor applied, and its kept copy stays (the reconciler would publish it again)")
	}
}

// TestLargeInboxLostIsRestoredFromKept: a large cancel waits in the inbox for its retry and Redis loses the inbox. The copy's
// fate is KeptLost: the reconciler publishes its body again, handled as new: applied once.
func TestLargeInboxLostIsRestoredFromKept(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	t.Cleanup(store.Close)
	prov := &cancelFailsTimes{n: 1}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, store, prov, kept), context.Background()
	e.okOrder(t)
	x := largeCancel("x-1", 5)
	if err := e.o.OrderCancelled(ctx, x); !handlers.RetriedLater(err) {
		t.Fatalf("cancel: %v", err)
	}
	fate, _ := (&handlers.Reconciler{Store: e.store}).KeptFates()(ctx, "shop-a", "o-1", x.Key())
	if fate != handlers.KeptHeld {
		t.Errorf("fate while queued %v; want held", fate)
	}
	if err := rdb.Del(ctx, prefix+"inbox:{shop-a}:o-1").Err(); err != nil {
		t.Fatal(err)
	}
	fate, _ = (&handlers.Reconciler{Store: e.store}).KeptFates()(ctx, "shop-a", "o-1", x.Key())
	kept.mu.Lock()
	body, err := kept.bodies[x.Key()], error(nil) // the copy the reconciler publishes
	kept.mu.Unlock()
	if fate != handlers.KeptLost || !bytes.Equal(body, x.Body) {
		t.Fatalf("fate %v, body %d bytes, %v", fate, len(body), err)
	}
	r := x
	r.Body = body
	handled(t, e.o.OrderCancelled(ctx, r))
	st, _ := e.store.Get(ctx, "shop-a", "o-1")
	if st.Status != orderstate.StatusCancelled || prov.calls["cancel"] != 2 {
		t.Errorf("status %q, calls %d", st.Status, prov.calls["cancel"])
	}
}

// failingKeep fails every Keep (KEPT full / NATS down).
type failingKeep struct{ recordedKept }

func (k *failingKeep) Keep(context.Context, string, string, orderstate.Parked, string) error {
	return handlers.Infrastructure(errors.New("KEPT: maximum bytes exceeded"))
}

// TestLargeKeepFailingHandsBack: Kept.Keep fails when a large cancel's try fails (keptForRetry): the message is handed
// back, not put in the inbox without a body.
func TestLargeKeepFailingHandsBack(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsTimes{n: 1}
	kept := &failingKeep{}
	e, ctx := newEnvOn(t, newStore(t), prov, kept), context.Background()
	e.okOrder(t)
	x := largeCancel("x-1", 5)
	err := e.o.OrderCancelled(ctx, x)
	n, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
	if err == nil || handlers.RetriedLater(err) || n != 0 {
		t.Errorf("cancel: %v, inbox %d; want handed back, nothing queued", err, n)
	}
	// Queued behind a holder with Keep failing: not acknowledged, not queued.
	e.holder(t, "o-1", time.Minute)
	err = e.o.OrderCancelled(ctx, largeCancel("x-2", 6))
	n, _ = e.store.InboxLen(ctx, "shop-a", "o-1")
	if err == nil || n != 0 {
		t.Errorf("queued with Keep failing: %v, inbox %d; want an error, nothing queued", err, n)
	}
}

// TestLargeConflictedRetryWithBodyKeptCopyQueued: TestConflictedRetryWithACopyQueuedLosesNothing with a large cancel: a copy of it (BodyKept)
// is queued during its try, Redis loses the state, the retry's commit conflicts and drops the Kept
// copy while the BodyKept copy stays in the inbox. The message is handled again in place (Again):
// its copy is kept again before it is only in Redis, and the entry is applied with its body (here: dead-lettered no-transaction with its
// full body, the order's state being gone).
func TestLargeConflictedRetryWithBodyKeptCopyQueued(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	t.Cleanup(store.Close)
	prov := &cancelCopiedMidTry{cancelFailsTimes: cancelFailsTimes{n: 1}}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, store, prov, kept), context.Background()
	e.okOrder(t)
	x := largeCancel("x-1", 5)
	prov.during = func() {
		c := x
		c.Attempt = 2
		if err := e.o.OrderCancelled(ctx, c); err != nil {
			t.Errorf("the copy: %v", err)
		}
		if err := rdb.Del(ctx, prefix+"order:{shop-a}:o-1").Err(); err != nil {
			t.Errorf("losing the state: %v", err)
		}
	}
	err := e.o.OrderCancelled(ctx, x)
	if !errors.Is(err, orderstate.ErrConflict) {
		t.Fatalf("cancel: %v; want the conflict of its commit", err)
	}
	_, kept0 := kept.has(x.Key())
	n0, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
	t.Logf("after the conflict: inbox %d, kept copy %v", n0, kept0)
	x.Again = true
	err = e.o.OrderCancelled(ctx, x)
	for range 3 {
		e.retryTimer(t, "o-1", time.Minute)
	}
	held, _ := e.store.HeldEvents(ctx, "shop-a", "o-1")
	_, has := kept.has(x.Key())
	done, _ := e.store.EventDone(ctx, "shop-a", x.Key())
	for _, l := range e.letters.letters {
		t.Logf("letter seq %d %s body %d bytes: %v", l.Sequence, l.Reason, len(l.Body), l.Err)
	}
	if held.Keys[x.Key()] && !has {
		t.Errorf("run again (%v): Redis holds the event with no kept copy", err)
	}
	// The state is gone, so the cancel finds no order and cannot park (over 64 KiB): a
	// no-transaction letter with its full body is its one fate (old behaviour for large events).
	fullLetter := len(e.letters.letters) == 1 && bytes.Equal(e.letters.letters[0].Body, x.Body)
	if len(e.letters.letters) > 1 || (!done && !fullLetter && !held.Keys[x.Key()] && !has) || (fullLetter && has) {
		t.Errorf("run again (%v): done %v held %v kept %v letters %v calls %d", err, done, held.Keys[x.Key()], has, reasons(e.letters), prov.calls["cancel"])
	}
}
