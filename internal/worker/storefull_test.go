package worker

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// fillStore fills the JetStream store with a stream of the test's own until the server refuses a
// message, and returns a function that frees the space again.
func (h *harness) fillStore() (free func()) {
	h.t.Helper()
	ctx := context.Background()
	if _, err := h.js.CreateStream(ctx, jetstream.StreamConfig{Name: "FILLER", Subjects: []string{"filler.>"}}); err != nil {
		h.t.Fatal(err)
	}
	chunk := make([]byte, 512<<10)
	for {
		if _, err := h.js.Publish(ctx, "filler.x", chunk); err != nil {
			break
		}
	}
	return func() {
		if err := h.js.DeleteStream(ctx, "FILLER"); err != nil {
			h.t.Fatal(err)
		}
	}
}

// TestStoreFullLosesNothing: the JetStream store fills up (another stream on the server takes the
// room) while the worker has orders to answer. ATODENE registers them, but their outcomes cannot
// be written: the worker keeps the messages, tried again in place, without using up their
// deliveries (-max-deliveries 2 here), and says so in /readyz. Once space returns, every order
// gets exactly one outcome and was registered once. (Before, all 100 ran out of deliveries and got
// no outcome and no dead letter.)
func TestStoreFullLosesNothing(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{natsStore: 256 << 20, settings: func(s *config.Settings) {
		s.MaxDeliveries, s.StreamBytes = 2, 64<<20
	}})
	h.shutdown()
	const n = 100
	for i := range n {
		h.publish("order.created", "shop-a", fmt.Sprintf("ev-%d", i), orderData("shop-a", fmt.Sprintf("SF-%03d", i), "taro@example.jp"))
	}
	free := h.fillStore()
	h.startUntil("/healthz") // its first writes fail: it may turn unready before a probe saw it ready
	wait.For(t, 20*time.Second, "registrations at the sandbox with the store full", func() bool { return len(h.sandboxTransactions("SF-000")) == 1 })
	time.Sleep(3 * time.Second) // several in-place retries, more than -max-deliveries
	if code, body := h.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "writes to Redis or JetStream fail") {
		t.Errorf("/readyz with the store full: %d %q", code, body)
	}
	free()
	wait.For(t, 60*time.Second, fmt.Sprintf("%d decided orders", n), func() bool { return len(finalOutcomes(h.results())) == n })
	for order, outs := range finalOutcomes(h.results()) {
		if len(outs) != 1 {
			t.Errorf("%s: %d outcomes", order, len(outs))
		}
		if txs := h.sandboxTransactions(strings.TrimPrefix(order, "shop-a/")); len(txs) != 1 || txs[0].Registrations != 1 {
			t.Errorf("%s registered %+v", order, txs)
		}
	}
	if d := h.deadLetters(); len(d) != 0 {
		t.Errorf("%d dead letters, want none", len(d))
	}
	if code, _ := h.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after space returned: %d", code)
	}
}
