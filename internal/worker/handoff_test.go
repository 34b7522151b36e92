package worker

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/config"
)

// TestHeldRecheckThroughJetStream: with -poll-handoff-ahead 1s and re-checks 3 s apart, an order
// under review has no message schedule in JetStream at first, only its entry among the shop's
// held re-checks in Redis; the worker hands it to JetStream before it is due, the re-check runs
// and the order is approved, and its lateness is observed.
func TestHeldRecheckThroughJetStream(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) {
		s.PollFirstDelay, s.PollMaxInterval, s.PollHandoffAhead = 3*time.Second, 3*time.Second, time.Second
	}})
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "HR-1", "review-ok@example.jp"))
	h.waitOutcomes("HR-1", "credit.pending", 10*time.Second)

	ctx := context.Background()
	stream, err := h.js.Stream(ctx, PollStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.GetLastMsgForSubject(ctx, pollSubjectBase+"sched."+orderToken("shop-a", "HR-1")); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("a schedule for the held re-check is in %s already (err %v); want none until shortly before it is due", PollStream, err)
	}
	due, err := h.deps.Redis.ZScore(ctx, h.deps.KeyPrefix+"held:{shop-a}", "shop-a:HR-1").Result()
	if err != nil {
		t.Fatalf("the re-check is not among the held re-checks: %v", err)
	}
	if wait := time.Until(time.UnixMilli(int64(due))); wait < time.Second || wait > 4*time.Second {
		t.Errorf("held re-check due in %s, want about 3 s", wait)
	}

	// Handed late, by the reconciliation (-reconcile-interval 1m), it would not run within 20 s.
	h.waitOutcomes("HR-1", "credit.pending,credit.ok", 20*time.Second)
	_, body := h.get("/metrics")
	m := regexp.MustCompile(`(?m)^atodene_worker_timer_lateness_seconds_count\{timer="poll"\} (\d+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("/metrics lacks atodene_worker_timer_lateness_seconds_count{timer=\"poll\"}")
	}
	if n, _ := strconv.Atoi(m[1]); n < 1 {
		t.Errorf("%d re-checks' lateness observed, want at least 1", n)
	}
}
