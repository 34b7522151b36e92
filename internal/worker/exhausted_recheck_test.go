package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// TestExhaustedRecheckIsMadeAgainAndPublished: an order under review whose re-check meets ATODENE
// failing on every delivery: the re-check is dead-lettered exhausted, and the consumer's ack floor
// passes its due message as it passes a handled one. The reconciler took that for a re-check
// handled whose state write Redis lost, and made the re-check again as one behind: ATODENE, well
// again, answered OK, and credit.ok was dropped as "published already" while nothing had published
// it. A due message dead-lettered wrote nothing: the re-check made again publishes its decision.
func TestExhaustedRecheckIsMadeAgainAndPublished(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) {
		s.MaxDeliveries = 2
		s.PollFirstDelay, s.PollMaxInterval = 3*time.Second, 3*time.Second
		s.ReconcileInterval = time.Second
	}})
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "XR-1", "review-ok@example.jp"))
	h.waitOutcomes("XR-1", "credit.pending", 10*time.Second)
	h.setFaults(`{"error_rate": 1.0}`)
	wait.For(t, 30*time.Second, "the re-check dead-lettered exhausted", func() bool { return deadLettersByReason(h)["exhausted"] == 1 })
	h.setFaults(`{}`)
	if !wait.Until(20*time.Second, func() bool { return typesOf(h.outcomesOf("XR-1")) == "credit.pending,credit.ok" }) {
		t.Fatalf("outcomes of XR-1: %q, want credit.pending,credit.ok (history %+v)", typesOf(h.outcomesOf("XR-1")), h.history("XR-1"))
	}
	for _, e := range h.history("XR-1") {
		if strings.Contains(e.Did, "not published again") {
			t.Errorf("history: %q: the re-check made again was taken for one whose write Redis lost", e.Did)
		}
	}
}
