package handlers_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// The write that ends an event without recording it removes its copies from the inbox
// (docs/architecture.md#order-state-in-redis): their copies in Kept go with them, and no other
// event is taken for a copy.

// cancelFailsOnceWith runs during once, inside the first cancel call, and fails that call with err
// (a permanent failure by default: ATODENE rejecting the request); later calls succeed.
type cancelFailsOnceWith struct {
	sentProvider
	during func()
	err    error
	once   sync.Once
}

func (p *cancelFailsOnceWith) Cancel(ctx context.Context, tx string) error {
	p.count("cancel")
	first := false
	p.once.Do(func() { p.during(); first = true })
	switch {
	case !first:
		return nil
	case p.err != nil:
		return p.err
	}
	return handlers.Permanent(handlers.ReasonInvalid, errors.New("modifytransaction.do: rejected"))
}

// TestCopyDroppedWithItsDeadLetteredEventLeavesNoKeptCopy: a cancel's message is delivered again
// (its AckWait passed) while its first try is at ATODENE: the copy, kept in Kept, is queued in the
// inbox and its message acknowledged. The try fails permanently: the consumer dead-letters the
// message, and its commit removes the inbox copy. The copy's Kept copy was left: the event neither
// recorded nor in Redis, the reconciler took it for lost and published it again, and it was
// handled a second time (ATODENE accepting it now: credit.cancelled for an event also
// dead-lettered). The Kept copy goes with the inbox copy: one fate.
func TestCopyDroppedWithItsDeadLetteredEventLeavesNoKeptCopy(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsOnceWith{}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, newStore(t), prov, kept), context.Background()
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
	prov.during = func() {
		c := x
		c.Attempt = 2
		if err := e.o.OrderCancelled(ctx, c); err != nil {
			t.Errorf("the copy, during the try: %v; want queued", err)
		}
	}
	err := e.o.OrderCancelled(ctx, x)
	if reason, dead := handlers.DeadLetterOf(err, &handlers.Message{Attempt: 1}); !dead {
		t.Fatalf("cancel: %v; want dead-lettered by the consumer", err)
	} else {
		t.Logf("the consumer dead-letters the message: %s", reason)
	}
	inbox, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
	why, has := kept.has(x.Key())
	fate, ferr := (&handlers.Reconciler{Store: e.store}).KeptFates()(ctx, "shop-a", "o-1", x.Key())
	if ferr != nil {
		t.Fatal(ferr)
	}
	if has && fate == handlers.KeptLost {
		// What the reconciler does with a lost copy: publish it again; it is handled as new.
		republished := x
		handled(t, e.o.OrderCancelled(ctx, republished))
	}
	cancelled := e.outcomes("o-1", events.TypeCreditCancelled)
	if has || cancelled != 0 {
		t.Errorf("inbox length %d; kept copy %q (%v), reconciler fate %v (2 = KeptLost: published again); cancel calls %d, credit.cancelled %d after the event's dead letter; want no kept copy, one fate",
			inbox, why, has, fate, prov.calls["cancel"], cancelled)
	}
}

// TestCopyDroppedOnLastDeliveryLeavesNoKeptCopy: a cancel on its last delivery (3 of 3) is at
// ATODENE when the importer publishes it again (same id and content, past the duplicate window: a
// first delivery), queued with its Kept copy. The try fails transiently and the consumer
// dead-letters it exhausted; its commit removes the inbox copy. As above, the Kept copy was left
// and published again by the reconciler (3 more calls, or credit.cancelled after the letter). It
// goes with the inbox copy: one fate.
func TestCopyDroppedOnLastDeliveryLeavesNoKeptCopy(t *testing.T) {
	t.Parallel()
	prov := &cancelCopiedMidTry{cancelFailsTimes: cancelFailsTimes{n: 1}}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, newStore(t), prov, kept), context.Background()
	e.o.MaxAttempts = 3
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
	x.Attempt = 3
	prov.during = func() {
		again := parkableCancel("x-1", "o-1", 9) // republished: a first delivery
		if err := e.o.OrderCancelled(ctx, again); err != nil {
			t.Errorf("the republished copy, during the try: %v; want queued", err)
		}
	}
	err := e.o.OrderCancelled(ctx, x)
	if reason, dead := handlers.DeadLetterOf(err, &handlers.Message{Attempt: 3, LastAttempt: true}); !dead || reason != handlers.ReasonExhausted {
		t.Fatalf("cancel: %v; want dead-lettered exhausted by the consumer", err)
	}
	inbox, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
	why, has := kept.has(x.Key())
	fate, ferr := (&handlers.Reconciler{Store: e.store}).KeptFates()(ctx, "shop-a", "o-1", x.Key())
	if ferr != nil {
		t.Fatal(ferr)
	}
	if has && fate == handlers.KeptLost {
		handled(t, e.o.OrderCancelled(ctx, parkableCancel("x-1", "o-1", 9)))
	}
	cancelled := e.outcomes("o-1", events.TypeCreditCancelled)
	if has || cancelled != 0 || prov.calls["cancel"] > 1 {
		t.Errorf("inbox length %d; kept copy %q (%v), reconciler fate %v (2 = KeptLost); cancel calls %d, credit.cancelled %d after the exhausted letter; want no kept copy, 1 call, one fate",
			inbox, why, has, fate, prov.calls["cancel"], cancelled)
	}
}

// TestReusedIDBehindAnExhaustedEventIsNotDropped: a cancel x-1 kept for its retry, ATODENE
// failing through its tries; a tracking number under the same source and id (other content, other
// digest) is queued behind it. The write that dead-letters the cancel exhausted drops the cancel's
// copies: the tracking number is no copy and must still get a fate of its own (applied or
// dead-lettered), not be dropped.
func TestReusedIDBehindAnExhaustedEventIsNotDropped(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsTimes{n: 100}
	e, ctx := newEnv(t, prov), context.Background()
	e.o.MaxAttempts = 3
	e.okOrder(t)
	if err := e.o.OrderCancelled(ctx, parkableCancel("x-1", "o-1", 5)); !handlers.RetriedLater(err) {
		t.Fatalf("cancel: %v; want kept for its retry", err)
	}
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("x-1", "o-1", 6, "1111-2222-3333")))
	for range 8 {
		e.retryTimer(t, "o-1", time.Minute)
	}
	inbox, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
	if e.letterOf(5) != handlers.ReasonExhausted.String() || (e.letterOf(6) == "" && prov.calls["shipment"] == 0) || inbox != 0 {
		t.Errorf("letters %v, shipment calls %d, inbox %d; want the cancel exhausted and the reused-id event given a fate of its own",
			reasons(e.letters), prov.calls["shipment"], inbox)
	}
}

// TestConflictedRetryWithACopyQueuedLosesNothing: during a cancel's try a copy of it is
// queued (its Kept copy written) and Redis loses the order's state. The commit that would keep the
// cancel conflicts and drops the event's Kept copy, though the inbox still holds the queued copy.
// The message is handled again in place: the run takes the lease in drain mode and keeps a copy
// again before the event is only in Redis. End: the event is not held by Redis without a Kept
// copy, and it is not lost.
func TestConflictedRetryWithACopyQueuedLosesNothing(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	t.Cleanup(store.Close)
	prov := &cancelCopiedMidTry{cancelFailsTimes: cancelFailsTimes{n: 1}}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, store, prov, kept), context.Background()
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
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
	inbox0, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
	_, kept0 := kept.has(x.Key())
	t.Logf("after the conflict: inbox %d, kept copy %v (the message is still unacknowledged)", inbox0, kept0)
	x.Again = true
	err = e.o.OrderCancelled(ctx, x)
	held, _ := e.store.HeldEvents(ctx, "shop-a", "o-1")
	_, has := kept.has(x.Key())
	done, _ := e.store.EventDone(ctx, "shop-a", x.Key())
	if held.Keys[x.Key()] && !has {
		t.Errorf("run again (%v): Redis holds the event (inbox or parked) with no kept copy", err)
	}
	if !held.Keys[x.Key()] && !done && !has && !handlers.RetriedLater(err) && err == nil {
		t.Errorf("run again (%v): the event is neither held, recorded, kept nor handed back: lost", err)
	}
}

// keepFailsAfter fails each Keep after the first n (JetStream refusing: ATODENE_KEPT full).
type keepFailsAfter struct {
	recordedKept
	n, kept int
}

func (k *keepFailsAfter) Keep(ctx context.Context, shop, order string, p orderstate.Parked, why string) error {
	k.mu.Lock()
	k.kept++
	over := k.kept > k.n
	k.mu.Unlock()
	if over {
		return handlers.Infrastructure(errors.New("nats: maximum bytes exceeded"))
	}
	return k.recordedKept.Keep(ctx, shop, order, p, why)
}

// TestHandedBackEventKeepsItsQueuedCopy: a cancel's message is delivered again while its first
// try is at ATODENE, and the copy is queued (its message, the same one, acknowledged). The try
// fails transiently and the cancel cannot be kept for its retry (ATODENE_KEPT refuses): its
// delivery is handed back, which JetStream ignores for a message acknowledged since. The commit
// removed the queued copy with it: the cancel was nowhere, neither applied nor dead-lettered. A
// commit that hands its event back leaves its copies: the queued one is applied.
func TestHandedBackEventKeepsItsQueuedCopy(t *testing.T) {
	t.Parallel()
	prov := &cancelCopiedMidTry{cancelFailsTimes: cancelFailsTimes{n: 1}}
	kept := &keepFailsAfter{n: 1}
	e, ctx := newEnvOn(t, newStore(t), prov, kept), context.Background()
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
	prov.during = func() {
		c := x
		c.Attempt = 2
		if err := e.o.OrderCancelled(ctx, c); err != nil {
			t.Errorf("the copy, during the try: %v; want queued", err)
		}
	}
	err := e.o.OrderCancelled(ctx, x)
	if err == nil || handlers.RetriedLater(err) {
		t.Fatalf("cancel: %v; want handed back (its copy could not be kept)", err)
	}
	inbox, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
	e.retryTimer(t, "o-1", time.Minute)
	st, _ := e.store.Get(ctx, "shop-a", "o-1")
	if inbox != 1 || st.Status != orderstate.StatusCancelled {
		t.Errorf("inbox length %d after the hand-back, status %q after the inbox timer; want the queued copy kept and applied", inbox, st.Status)
	}
}

// TestInfrastructureFailureOnLastDeliveryKeepsItsQueuedCopy: a cancel on its last delivery (3 of
// 3) is at ATODENE when the importer publishes it again, queued behind it with its copy in Kept;
// the try fails as Redis failing would. The consumer runs
// such a failure again in place rather than dead-letter it, so its fate is undecided: the queued
// copy and its kept copy stay.
func TestInfrastructureFailureOnLastDeliveryKeepsItsQueuedCopy(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsOnceWith{err: handlers.Infrastructure(errors.New("redis: connection refused"))}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, newStore(t), prov, kept), context.Background()
	e.o.MaxAttempts = 3
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
	x.Attempt = 3
	prov.during = func() {
		if err := e.o.OrderCancelled(ctx, parkableCancel("x-1", "o-1", 9)); err != nil {
			t.Errorf("the republished copy, during the try: %v; want queued", err)
		}
	}
	err := e.o.OrderCancelled(ctx, x)
	if !handlers.IsInfrastructure(err) {
		t.Fatalf("cancel: %v; want a failure of the infrastructure (run again in place)", err)
	}
	inbox, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
	_, has := kept.has(x.Key())
	if inbox != 1 || !has {
		t.Errorf("inbox length %d, kept copy %v; want the queued copy and its kept copy left", inbox, has)
	}
}
