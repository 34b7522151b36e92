package worker

import (
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// TestRerunOutlivesTheCancelBeforeIt: the shop registers an order, cancels it (与信キャンセル) and
// runs the credit check again (与信を実行: order.created with the order's data, written after the
// cancel). The cancel is handled last: ATODENE fails it until it is dead-lettered exhausted, the
// re-run is handled meanwhile (it finds the order live and does nothing), and the cancel's dead
// letter is replayed after it. The replay is as old as the cancel it repeats (its
// Dlq-Published-Sequence is before the re-run's), so it is stale: the shop's last word, the
// re-run, stands, and the order ends live with its one transaction, approved, as in stream order
// (where the cancel cancels it and the re-run registers it again). The handling order is forced, so
// the test does not depend on scheduling; two handlers or replicas taking the re-run before the
// cancel meet the same rule (TestCancelOlderThanARerunIsStale in internal/handlers).
func TestRerunOutlivesTheCancelBeforeIt(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.MaxDeliveries = 2 }})
	const order = "RR-1"
	h.publishAt("order.created", "shop-a", "c-1", "2026-11-26T10:15:00+09:00", orderData("shop-a", order, "taro@example.jp"))
	h.waitOutcomes(order, "credit.ok", 10*time.Second)

	h.setFaults(`{"error_rate": 1.0}`) // HTTP 500, nothing done: the cancel is retried, then dead-lettered
	h.publishAt("order.cancelled", "shop-a", "x-1", "2026-11-26T10:15:02+09:00", orderRef("shop-a", order))
	wait.For(t, 20*time.Second, "the cancel dead-lettered exhausted", func() bool { return deadLettersByReason(h)["exhausted"] == 1 })
	h.setFaults(`{}`)

	h.publishAt("order.created", "shop-a", "c-2", "2026-11-26T10:15:03+09:00", orderData("shop-a", order, "taro@example.jp"))
	wait.For(t, 10*time.Second, "the re-run handled", func() bool { return h.historySays(order, "c-2", "no change: the credit is ok already") })
	h.replay(h.deadLetters()[0])
	const stale = "no change: older in the stream than the order's creation run again after it"
	if !wait.Until(10*time.Second, func() bool { return h.historySays(order, "x-1", stale) }) {
		t.Errorf("the replayed cancel is not stale; history: %+v", h.history(order))
	}
	h.waitSettled()
	if got := typesOf(h.outcomesOf(order)); got != "credit.ok" {
		t.Errorf("outcomes %s; want credit.ok alone", got)
	}
	if txs := h.sandboxTransactions(order); len(txs) != 1 || txs[0].State != "active" || txs[0].Decision != "OK" {
		t.Errorf("transactions at ATODENE %+v; want one, active and approved, never cancelled", txs)
	}
	if dl := deadLettersByReason(h); len(dl) != 1 || dl["exhausted"] != 1 {
		t.Errorf("dead letters %v; want the cancel's alone", dl)
	}
}
