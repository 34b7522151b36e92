package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// The tests in this file reset the worker's NATS state under its Redis state: ORDERS deleted and
// created again (its sequences start at 1 again), and the whole NATS store lost (the timers with
// it). The worker binds its consumers again by itself, orders events across the two streams, and
// schedules again the timers the orders' states rely on.

// TestOrdersRecreatedCancelsApply: ORDERS is deleted and created again (a rename, a move to an R3
// stream) after 20 orders were registered. The cancels published to the new stream have sequences
// no higher than their orders' creates had in the old one; they are newer all the same, and each
// cancels its order at ATODENE (before, all were acknowledged as stale and nothing was cancelled).
func TestOrdersRecreatedCancelsApply(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const n = 20
	for i := range n {
		h.publish("order.created", "shop-a", fmt.Sprintf("ev-c%d", i), orderData("shop-a", fmt.Sprintf("RC-%02d", i), "taro@example.jp"))
	}
	wait.For(t, 20*time.Second, "20 decided orders", func() bool { return len(finalOutcomes(h.results())) == n })

	h.recreateOrders()
	for i := range n {
		h.publish("order.cancelled", "shop-a", fmt.Sprintf("ev-x%d", i), orderRef("shop-a", fmt.Sprintf("RC-%02d", i)))
	}
	for i := range n {
		order := fmt.Sprintf("RC-%02d", i)
		h.waitOutcomes(order, "credit.ok,credit.cancelled", 20*time.Second)
		if tx := h.tx(order); tx.State != "cancelled" {
			t.Errorf("%s at the sandbox: %+v", order, tx)
		}
	}
}

// TestNATSStoreLostTimersComeBack: the NATS store is lost while 10 orders are under review, their
// re-checks scheduled in it; Redis still says they are scheduled. The worker makes its streams
// and consumers again, its reconciler finds the re-checks overdue and missing and schedules them
// again, and every order is decided (before, none ever was).
func TestNATSStoreLostTimersComeBack(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{
		sandbox:  sandbox.Config{ReviewDelay: 4 * time.Second, HoldDelay: 4 * time.Second, SlowDelay: 3 * time.Second},
		settings: func(s *config.Settings) { s.ReconcileInterval = time.Second; s.PollFirstDelay = 2 * time.Second },
	})
	const n = 10
	for i := range n {
		h.publish("order.created", "shop-a", fmt.Sprintf("ev-%d", i), orderData("shop-a", fmt.Sprintf("NL-%02d", i), "review-ok@example.jp"))
	}
	for i := range n {
		h.waitOutcomes(fmt.Sprintf("NL-%02d", i), "credit.pending", 10*time.Second)
	}
	h.nats.Wipe()
	wait.For(t, 30*time.Second, "every order decided", func() bool {
		decided := 0
		for _, outs := range finalOutcomes(h.results()) {
			if len(outs) == 1 && outs[0].Env.Type == "credit.ok" {
				decided++
			}
		}
		return decided == n
	})
	for i := range n {
		if tx := h.tx(fmt.Sprintf("NL-%02d", i)); tx.Registrations != 1 {
			t.Errorf("NL-%02d registered %d times", i, tx.Registrations)
		}
	}
}

// A schedule stored for long before now is stuck, not waiting: nats-server does not fire a
// schedule again whose fired message it could not store (a full store), so the reconciler must
// schedule it anew. One stored for later is waiting.
func TestStuckScheduleIsNotWaiting(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, p := context.Background(), polls{js: h.js}
	req := handlers.PollRequest{Shop: "shop-a", OrderID: "STUCK-1", Seq: 1}
	at := time.Now().Add(time.Hour)
	if err := p.Schedule(ctx, req, at); err != nil {
		t.Fatal(err)
	}
	if state, err := p.Waiting(ctx, req, time.Now(), time.Now()); err != nil || state != handlers.TimerWaiting {
		t.Errorf("a schedule due in an hour: %v (%v), want waiting", state, err)
	}
	if state, err := p.Waiting(ctx, req, time.Now(), at.Add(time.Minute)); err != nil || state != handlers.TimerMissing {
		t.Errorf("a schedule due before the stale time: %v (%v), want missing", state, err)
	}
}

// TestDeadLetterAfterOrdersRecreated: an invalid event is dead-lettered from ORDERS sequence 1;
// ORDERS is then deleted and created again (its sequences start at 1 again), and another invalid
// event lands on the new stream's sequence 1. Its letter had the first's message ID (dlq:ORDERS:1)
// within DLQ's duplicate window: dropped as a duplicate, and the message acknowledged, the event
// was in neither DLQ nor RESULTS. Both are in DLQ.
func TestDeadLetterAfterOrdersRecreated(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.publishRaw("orders.created.shop-a", "first", []byte(`not json: the first bad event`))
	wait.For(t, 20*time.Second, "the first dead letter", func() bool { return len(h.deadLetters()) == 1 })

	ctx := context.Background()
	cfg := h.recreateOrders()
	h.publishRaw("orders.created.shop-a", "second", []byte(`not json: the second bad event, another one`))
	// Wait until the worker has consumed (acknowledged) the new stream's message.
	wait.For(t, 30*time.Second, "the new ORDERS message acknowledged", func() bool {
		c, err := h.js.Consumer(ctx, cfg.Name, ordersConsumer)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.AckFloor.Stream >= 1 && info.NumAckPending == 0 && info.NumPending == 0
	})
	letters := h.deadLetters() // a letter is written before its message is acknowledged
	if len(letters) != 2 {
		for _, m := range letters {
			t.Logf("letter: %s %q", m.Headers().Get("Nats-Msg-Id"), m.Data())
		}
		t.Fatalf("DLQ holds %d letters, want 2: the second bad event, acknowledged from the recreated ORDERS, is in neither DLQ nor RESULTS (lost)", len(letters))
	}
}

// recreateOrders deletes the ORDERS stream and creates it again with its configuration, as an
// operator recreating it (its sequences start at 1 again), and returns that configuration.
func (h *harness) recreateOrders() jetstream.StreamConfig {
	h.t.Helper()
	ctx := context.Background()
	st, err := h.js.Stream(ctx, h.deps.Settings.OrdersStream)
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if err := h.js.DeleteStream(ctx, cfg.Name); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.js.CreateStream(ctx, cfg); err != nil {
		h.t.Fatal(err)
	}
	return cfg
}
