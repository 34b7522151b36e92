package worker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// TestShutdownWithRedisFrozen: the worker is told to stop while its Redis hangs (SIGSTOP, as a
// host that froze: connections open, no answer). It stops within the shutdown grace plus a few
// seconds, as an orchestrator expects before it kills; it took 89 s with a grace of 10 s when the
// store waited for every queued pipeline to time out. Restarted with Redis back, it loses and
// doubles nothing.
func TestShutdownWithRedisFrozen(t *testing.T) {
	t.Parallel()
	r := testenv.StartPrivateRedis(t)
	rdb, err := NewRedis("redis://"+r.Addr, transport.RedisFiles{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Resume(); rdb.Close() }) // before the server is stopped
	const grace = 2 * time.Second
	h := newHarnessWith(t, harnessOpts{redis: rdb, settings: func(s *config.Settings) { s.ShutdownGrace = grace; s.MaxDeliveries = 100 }})
	const n = 300
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range n {
			h.publish("order.created", "shop-a", fmt.Sprintf("ev-%d", i), orderData("shop-a", fmt.Sprintf("FZ-%03d", i), "taro@example.jp"))
		}
	}()
	wait.For(t, 20*time.Second, "the first outcomes", func() bool { return len(h.results()) >= 20 })
	r.Pause()
	time.Sleep(500 * time.Millisecond) // handlers are waiting for Redis now
	if done := len(h.results()); done == n {
		t.Fatalf("all %d orders were decided before Redis froze: the test tests nothing", n)
	}
	start := time.Now()
	h.stop()
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("worker returned %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the worker did not stop in 90 s")
	}
	h.stop = nil
	t.Logf("stopped in %s with Redis frozen", time.Since(start).Round(100*time.Millisecond))
	if took := time.Since(start); took > grace+5*time.Second {
		t.Errorf("the worker took %s to stop with a grace of %s; want at most the grace plus 5 s", took.Round(100*time.Millisecond), grace)
	}

	r.Resume()
	<-published
	h.start()
	restarted := time.Now()
	wait.For(t, 120*time.Second, fmt.Sprintf("%d decided orders", n), func() bool { return len(finalOutcomes(h.results())) == n })
	t.Logf("all decided %s after the restart", time.Since(restarted).Round(100*time.Millisecond))
	for order, outs := range finalOutcomes(h.results()) {
		if len(outs) != 1 {
			t.Errorf("%s: %d outcomes", order, len(outs))
		}
		if txs := h.sandboxTransactions(strings.TrimPrefix(order, "shop-a/")); len(txs) != 1 || txs[0].Registrations != 1 {
			t.Errorf("%s registered %+v", order, txs)
		}
	}
}
