package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// TestKeptCancelWhoseRetryReplyIsLostIsDeadLetteredOnce: a real worker (max deliveries 3),
// an OK order, ATODENE answering 500 to everything from then on. The shop's cancel fails and the
// commit keeping it first in the inbox runs, but its reply is lost (a connection cut): the
// consumer runs the handler again in place (a Redis failure) and that run queues the cancel again
// behind its own retry entry. Each copy then ran out of tries on its own: two exhausted dead
// letters of one message (and twice the ATODENE calls); with ATODENE back between them, the
// second copy would cancel the order after its first copy's letter. Now one dead letter.
func TestKeptCancelWhoseRetryReplyIsLostIsDeadLetteredOnce(t *testing.T) {
	t.Parallel()
	rdb, _ := testenv.Redis(t)
	hook := testenv.LoseReply(rdb, `"id":"ev-x"`, `"retry_at"`) // only the cancel's retry commit
	h := newHarnessWith(t, harnessOpts{redis: rdb, settings: func(s *config.Settings) { s.MaxDeliveries = 3 }})
	h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "RL-1", "taro@example.jp"))
	h.waitOutcomes("RL-1", "credit.ok", 20*time.Second)
	h.setFaults(`{"error_rate": 1.0}`)
	h.publish("order.cancelled", "shop-a", "ev-x", orderRef("shop-a", "RL-1"))
	letters := func() int {
		n := 0
		for _, m := range h.deadLetters() {
			if strings.Contains(string(m.Data()), `"ev-x"`) && m.Headers().Get(dlq.HeaderReason) == "exhausted" {
				n++
			}
		}
		return n
	}
	store := orderstate.New(h.deps.Redis, h.deps.KeyPrefix, time.Hour)
	t.Cleanup(store.Close)
	maxInbox := int64(0)
	for range 12 {
		n, _ := store.InboxLen(context.Background(), "shop-a", "RL-1")
		maxInbox = max(maxInbox, n)
		time.Sleep(250 * time.Millisecond)
	}
	wait.For(t, 30*time.Second, "the cancel dead-lettered exhausted", func() bool { return letters() >= 1 })

	if !hook.Fired() {
		t.Fatal("the retry commit's reply was never dropped")
	}
	time.Sleep(8 * time.Second) // a second copy's tries: 1 s, 2 s, ...
	deadLettered, calls := 0, 0
	for _, e := range h.history("RL-1") {
		if e.ID == "ev-x" && strings.HasPrefix(e.Did, "dead-lettered: exhausted") {
			deadLettered++
		}
		if e.ID == "ev-x" {
			calls += len(e.Calls)
		}
	}
	if n := letters(); n != 1 || deadLettered != 1 || maxInbox > 1 {
		t.Errorf("%d exhausted letters in DLQ, %d history entries dead-lettered exhausted, inbox up to %d entries, %d ATODENE calls in its entries; want the one cancel in the inbox once and dead-lettered once",
			n, deadLettered, maxInbox, calls)
	}
}

// TestLargeCancelKeptForRetryIsNotOvertaken: a real worker, an OK order, ATODENE failing. The
// shop's cancel is over 64 KiB (a note of 70 KiB): the inbox took no message that large, so its
// failure handed it back to JetStream, and the tracking number published after it was handled
// (and, ATODENE back, reported: shipment.ok, billing started) before the cancel's redelivery. It
// waits first in the inbox now, the inbox holding it without its body, which its copy in
// ATODENE_KEPT holds: the tracking number waits behind it and is refused (shipment.ng), the order
// cancelled first.
func TestLargeCancelKeptForRetryIsNotOvertaken(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{})
	h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "LG-1", "taro@example.jp"))
	h.waitOutcomes("LG-1", "credit.ok", 20*time.Second)
	h.setFaults(`{"error_rate": 1.0}`)
	cancel := orderRef("shop-a", "LG-1")
	cancel["note"] = strings.Repeat("x", 70<<10)
	h.publish("order.cancelled", "shop-a", "ev-x", cancel)
	store := orderstate.New(h.deps.Redis, h.deps.KeyPrefix, time.Hour)
	t.Cleanup(store.Close)
	wait.For(t, 20*time.Second, "the cancel kept in the inbox", func() bool {
		n, _ := store.InboxLen(context.Background(), "shop-a", "LG-1")
		return n == 1
	})
	h.publish("order.tracking_entered", "shop-a", "ev-t", tracking("shop-a", "LG-1", "yamato", "1234-5678-9012"))
	h.waitSettled() // the tracking number acknowledged: queued behind the cancel
	h.setFaults(`{}`)
	wait.For(t, 30*time.Second, "the cancel applied", func() bool {
		for _, o := range of(h.results(), "LG-1") {
			if o.Env.Type == "credit.cancelled" {
				return true
			}
		}
		return false
	})
	h.waitOutcomes("LG-1", "credit.ok,credit.cancelled,shipment.ng", 20*time.Second) // the number refused: the order is cancelled
	if n := len(h.deadLetters()); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}

// TestLargeCancelWhoseCopyIsGoneAppliesFromItsMessage: as above, but the cancel's copy in
// ATODENE_KEPT is purged while it waits (an operator purging the stream): its body is read back
// from its message in ORDERS, and the cancel applies at its retry.
func TestLargeCancelWhoseCopyIsGoneAppliesFromItsMessage(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{})
	h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "LG-2", "taro@example.jp"))
	h.waitOutcomes("LG-2", "credit.ok", 20*time.Second)
	h.setFaults(`{"error_rate": 1.0}`)
	cancel := orderRef("shop-a", "LG-2")
	cancel["note"] = strings.Repeat("x", 70<<10)
	h.publish("order.cancelled", "shop-a", "ev-x", cancel)
	store := orderstate.New(h.deps.Redis, h.deps.KeyPrefix, time.Hour)
	t.Cleanup(store.Close)
	wait.For(t, 20*time.Second, "the cancel kept in the inbox", func() bool {
		n, _ := store.InboxLen(context.Background(), "shop-a", "LG-2")
		return n == 1
	})
	ctx := context.Background()
	stream, err := h.js.Stream(ctx, KeptStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	h.setFaults(`{}`)
	h.waitOutcomes("LG-2", "credit.ok,credit.cancelled", 30*time.Second)
	if n := len(h.deadLetters()); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}
