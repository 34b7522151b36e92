package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/redisadmin"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// The tests in this file lose an order's state in Redis (a failover a second behind, a flush) and
// check that the worker never makes up an outcome for a transaction it has no record of
// (docs/lifecycle.md#parked-events, docs/events.md#dead-letters).

// loseState deletes an order's state, as Redis losing its last writes would.
func (h *harness) loseState(order string) {
	h.t.Helper()
	if err := h.deps.Redis.Del(context.Background(), h.deps.KeyPrefix+"order:{shop-a}:"+order).Err(); err != nil {
		h.t.Fatal(err)
	}
}

// A cancel for an order whose state was lost does not publish credit.cancelled without cancelling
// at ATODENE: it waits for the order, and goes to an operator as no-transaction.
func TestCancelOfALostStateGoesToAnOperator(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.ParkLimit, s.ReconcileInterval = 2*time.Second, time.Second }})
	h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "LOST-1", "taro@example.jp"))
	h.waitOutcomes("LOST-1", "credit.ok", 10*time.Second)
	h.loseState("LOST-1")
	h.publish("order.cancelled", "shop-a", "ev-x", orderRef("shop-a", "LOST-1"))
	wait.For(t, 20*time.Second, "a no-transaction dead letter", func() bool { return deadLettersByReason(h)["no-transaction"] == 1 })
	if got := typesOf(h.outcomesOf("LOST-1")); got != "credit.ok" {
		t.Errorf("outcomes %s, want only the credit.ok: a credit.cancelled would contradict ATODENE", got)
	}
	if tx := h.tx("LOST-1"); tx.State != "active" {
		t.Errorf("sandbox: %+v", tx)
	}
	// The parked cancel's copy goes with its dead letter: it must not come back from there.
	if n := h.keptCopies(); n != 0 {
		t.Errorf("ATODENE_KEPT holds %d copies after the dead letter", n)
	}
	time.Sleep(3 * time.Second) // reconciliations
	if n := deadLettersByReason(h)["no-transaction"]; n != 1 {
		t.Errorf("%d no-transaction dead letters, want 1", n)
	}
}

// A re-check of an order whose state was lost is dead-lettered no-transaction, not dropped as if
// the order had been decided.
func TestPollOfALostStateGoesToAnOperator(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "LOST-2", "review-ok@example.jp"))
	h.waitOutcomes("LOST-2", "credit.pending", 10*time.Second)
	h.loseState("LOST-2")
	wait.For(t, 20*time.Second, "a no-transaction dead letter of the poll", func() bool { return deadLettersByReason(h)["no-transaction"] == 1 })
	d := h.deadLetters()[0]
	if !strings.HasPrefix(d.Subject(), "dlq.atodene.poll.due.") || !strings.Contains(d.Headers().Get(dlq.HeaderError), "no record") {
		t.Errorf("dead letter on %s: %s", d.Subject(), d.Headers().Get(dlq.HeaderError))
	}
}

// An outcome of a state written anew after the old one was lost gets a message ID of its own:
// with the version counter starting again, it used to repeat the old outcome's ID, and RESULTS
// dropped the new outcome as a duplicate.
func TestOutcomeIDsDoNotRepeatAfterALostState(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := orderData("shop-a", "LOST-3", "ng@example.jp")
	h.publish("order.created", "shop-a", "ev-c1", data)
	first := h.waitOutcomes("LOST-3", "credit.ng", 10*time.Second)[0]
	h.loseState("LOST-3")
	h.publish("order.created", "shop-a", "ev-c2", data) // an NG transaction is not live: registered again
	outs := h.waitOutcomes("LOST-3", "credit.ng,credit.ng", 10*time.Second)
	if outs[1].MsgID == first.MsgID {
		t.Errorf("the second credit.ng repeats the message ID %s", first.MsgID)
	}
	checkOutcomes(t, outs)
}

// A message ID that RESULTS already holds for another outcome is an error, not a duplicate to
// drop; the same outcome published again (a retry, rendered at another time) is a duplicate.
func TestOutcomeUnderARepeatedIDIsAnError(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pub := outcomes{h.js, prometheus.NewCounter(prometheus.CounterOpts{Name: "failures_total", Help: "unused"})}
	ctx := context.Background()
	render := func(result, at string) []byte {
		return []byte(`{"specversion":"1.0","id":"shop-a:X:e1:2:credit.` + result + `","source":"atodene-worker","type":"credit.` + result +
			`","time":"` + at + `","data":{"order_id":"X","result":"` + result + `","decided_at":"` + at + `"}}`)
	}
	if err := pub.Publish(ctx, "credit.ok.shop-a", "shop-a:X:e1:2", render("ok", "2026-11-26T10:15:00+09:00")); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, "credit.ok.shop-a", "shop-a:X:e1:2", render("ok", "2026-11-26T10:16:00+09:00")); err != nil {
		t.Errorf("the same outcome again, rendered later: %v", err)
	}
	// A retry in another delivery's trace carries another trace context (CloudEvents attributes).
	traced := events.WithTraceContext(render("ok", "2026-11-26T10:17:00+09:00"), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=x")
	if err := pub.Publish(ctx, "credit.ok.shop-a", "shop-a:X:e1:2", traced); err != nil {
		t.Errorf("the same outcome again, in another trace: %v", err)
	}
	if err := pub.Publish(ctx, "credit.ng.shop-a", "shop-a:X:e1:2", render("ng", "2026-11-26T10:16:00+09:00")); err == nil || !strings.Contains(err.Error(), "already holds another outcome") {
		t.Errorf("another outcome under the same ID: %v, want an error", err)
	}
}

// Redis rolled back past a shipment report: the next tracking number's report is written at the
// version the lost one was, and its shipment.ok derives the message ID of the lost write's
// shipment.ok, which RESULTS holds with the first number. Published under it, the new outcome was
// refused until the stream's duplicate window passed, then stored under an ID naming two outcomes
// (the reliability suite's redis-rollback, docs/reliability.md finding 9). It is reissued under a
// new epoch, at once.
func TestOutcomeIDUsedByLostWritesIsReissued(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, rdb, key := context.Background(), h.deps.Redis, h.deps.KeyPrefix+"order:{shop-a}:LOST-8"
	h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "LOST-8", "taro@example.jp"))
	h.waitOutcomes("LOST-8", "credit.ok", 10*time.Second)
	approved, err := rdb.Get(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	h.publish("order.tracking_entered", "shop-a", "ev-t1", tracking("shop-a", "LOST-8", "yamato", "1111-2222-3333"))
	lost := h.waitOutcomes("LOST-8", "credit.ok,shipment.ok", 10*time.Second)[1]
	if err := rdb.Set(ctx, key, approved, 0).Err(); err != nil { // the rollback
		t.Fatal(err)
	}
	h.publish("order.tracking_entered", "shop-a", "ev-t2", tracking("shop-a", "LOST-8", "yamato", "4444-5555-6666"))
	outs := h.waitOutcomes("LOST-8", "credit.ok,shipment.ok,shipment.ok", 10*time.Second)
	checkOutcomes(t, outs)
	if got := shipmentOf(t, outs[2]).TrackingNumber; got != "4444-5555-6666" {
		t.Errorf("the second shipment.ok says %s", got)
	}
	store := orderstate.New(rdb, h.deps.KeyPrefix, time.Hour)
	t.Cleanup(store.Close)
	st, err := store.Get(ctx, "shop-a", "LOST-8")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(outs[2].MsgID, ":"+st.Epoch+":") || strings.Contains(lost.MsgID, ":"+st.Epoch+":") {
		t.Errorf("the order's epoch is %s; the lost write's shipment.ok %s, the reissued one %s", st.Epoch, lost.MsgID, outs[2].MsgID)
	}
	if !h.historySays("LOST-8", "", "reissued as "+outs[2].MsgID) {
		t.Errorf("no history entry of the reissue: %+v", h.history("LOST-8"))
	}
}

// loseRedis deletes every key of the test's prefix, as a flush of Redis would.
func (h *harness) loseRedis() {
	h.t.Helper()
	if err := redisadmin.DeleteKeys(context.Background(), h.deps.Redis, h.deps.KeyPrefix); err != nil {
		h.t.Fatal(err)
	}
}

// keptCopies returns how many copies ATODENE_KEPT holds.
func (h *harness) keptCopies() uint64 {
	h.t.Helper()
	st, err := h.js.Stream(context.Background(), KeptStream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}

// A tracking number parked for an order not imported yet was acknowledged with only Redis holding
// it: Redis flushed lost it, and the order's shipment was never reported. Its copy in ATODENE_KEPT
// brings it back, and it is applied once the order comes.
func TestParkedEventRedisLostComesBack(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.ReconcileInterval = time.Second }})
	h.publish("order.tracking_entered", "shop-a", "ev-t", tracking("shop-a", "LOST-4", "yamato", "1234-5678-9012"))
	wait.For(t, 10*time.Second, "the tracking number parked", func() bool { return h.historySays("LOST-4", "ev-t", "parked") })
	if n := h.keptCopies(); n != 1 {
		t.Fatalf("ATODENE_KEPT holds %d copies, want the parked event's", n)
	}
	h.waitSettled() // the event recorded as processed before the flush: the copy alone brings it back (see LOST-6)
	h.loseRedis()
	wait.For(t, 20*time.Second, "the tracking number parked again from its copy", func() bool { return h.historySays("LOST-4", "ev-t", "parked") })
	h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "LOST-4", "taro@example.jp"))
	h.waitOutcomes("LOST-4", "credit.ok,shipment.ok", 20*time.Second)
	wait.For(t, 20*time.Second, "the copy of the applied event dropped", func() bool { return h.keptCopies() == 0 })
	if tx := h.tx("LOST-4"); tx.Shipment == nil || tx.Shipment.DeliverySlipNo != "1234-5678-9012" {
		t.Errorf("sandbox: no shipment reported: %+v", tx)
	}
}

// An event queued in its order's inbox behind the handler holding the order's lease is
// acknowledged with only Redis holding it: its copy brings it back when Redis loses it.
func TestQueuedEventRedisLostComesBack(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.ReconcileInterval = time.Second }})
	h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "LOST-5", "taro@example.jp"))
	h.waitOutcomes("LOST-5", "credit.ok", 10*time.Second)
	store := orderstate.New(h.deps.Redis, h.deps.KeyPrefix, time.Hour)
	t.Cleanup(store.Close)
	if _, err := store.AcquireLease(context.Background(), "shop-a", "LOST-5", orderstate.Take{TTL: time.Minute, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	h.publish("order.cancelled", "shop-a", "ev-x", orderRef("shop-a", "LOST-5"))
	wait.For(t, 10*time.Second, "the cancel queued and kept", func() bool { return h.keptCopies() == 1 })
	// Redis loses the inbox and the lease (a failover a second behind the queueing), not the state.
	if err := h.deps.Redis.Del(context.Background(), h.deps.KeyPrefix+"inbox:{shop-a}:LOST-5", h.deps.KeyPrefix+"lease:{shop-a}:LOST-5").Err(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "the cancel applied from its copy", func() bool { return h.tx("LOST-5").State == "cancelled" })
	wait.For(t, 20*time.Second, "the copy of the applied event dropped", func() bool { return h.keptCopies() == 0 })
}

// A tracking number kept in the state of an order under review, to be reported when the credit
// is OK, is lost with Redis like a parked event: its copy brings it back, and with the order's
// state gone it goes to an operator (no-transaction), as the order's re-check does. The review
// lasts longer than the test: with the harness's 1.5 s, a slow machine's re-check approved the
// order and reported the tracking number before Redis was emptied, and no letter was due.
func TestQueuedShipmentRedisLostGoesToAnOperator(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.ParkLimit, s.ReconcileInterval = 2*time.Second, time.Second },
		sandbox: sandbox.Config{ReviewDelay: 10 * time.Minute, HoldDelay: 10 * time.Minute, SlowDelay: 3 * time.Second}})
	h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "LOST-6", "review-ok@example.jp"))
	h.waitOutcomes("LOST-6", "credit.pending", 10*time.Second)
	h.publish("order.tracking_entered", "shop-a", "ev-t", tracking("shop-a", "LOST-6", "yamato", "1234-5678-9012"))
	wait.For(t, 10*time.Second, "the tracking number queued", func() bool { return h.historySays("LOST-6", "ev-t", "queued") })
	// The handling's last write, which records the event as processed, follows the write of its
	// history entry. The flush waits for it, so that the copy alone brings the event back (a flush
	// between the two fails the commit and the message is delivered again instead:
	// handlers.TestEventWhoseStateWasLostIsNotRecorded).
	h.waitSettled()
	h.loseRedis()
	wait.For(t, 30*time.Second, "the tracking event dead-lettered no-transaction", func() bool {
		for _, d := range h.deadLetters() {
			if d.Subject() == "dlq.orders.tracking_entered.shop-a" && d.Headers().Get(dlq.HeaderReason) == "no-transaction" {
				return true
			}
		}
		return false
	})
}

// Redis rolled back to a state under review after the re-check that decided the order: no
// schedule is stored any more and the re-check's due message was handled, its write lost. The
// reconciler takes that for a lost timer (not one on its way) and re-checks the order, which
// takes the decision without publishing it a second time.
func TestRolledBackReviewIsCheckedAgain(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.ReconcileInterval = time.Second }})
	ctx, rdb, prefix := context.Background(), h.deps.Redis, h.deps.KeyPrefix
	h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "LOST-7", "review-ok@example.jp"))
	h.waitOutcomes("LOST-7", "credit.pending", 10*time.Second)
	state, err := rdb.Get(ctx, prefix+"order:{shop-a}:LOST-7").Result()
	if err != nil {
		t.Fatal(err)
	}
	due, err := rdb.ZScore(ctx, prefix+"timers:{shop-a}", "shop-a:LOST-7").Result()
	if err != nil {
		t.Fatal(err)
	}
	h.waitOutcomes("LOST-7", "credit.pending,credit.ok", 10*time.Second)
	// The rollback: the state, the set of orders under review and the timer index as they were.
	if err := rdb.Set(ctx, prefix+"order:{shop-a}:LOST-7", state, 0).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.SAdd(ctx, prefix+"pending:{shop-a}", "shop-a:LOST-7")
	rdb.ZAdd(ctx, prefix+"timers:{shop-a}", redis.Z{Score: due, Member: "shop-a:LOST-7"})
	store := orderstate.New(rdb, prefix, time.Hour)
	t.Cleanup(store.Close)
	wait.For(t, 20*time.Second, "the order checked again and OK", func() bool {
		st, err := store.Get(ctx, "shop-a", "LOST-7")
		return err == nil && st.Status == orderstate.StatusOK
	})
	if got := typesOf(h.outcomesOf("LOST-7")); got != "credit.pending,credit.ok" {
		t.Errorf("outcomes %s: the decision was published again", got)
	}
}
