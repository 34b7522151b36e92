package handlers

import (
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestSuccessPathClassifiesWithoutAllocating: every handling classifies its call's answer and its
// own result (refusal, dead letter, retry, infrastructure) though nearly all are nil errors; an
// errors.As target variable would escape to the heap on each of them, errors.AsType does not.
func TestSuccessPathClassifiesWithoutAllocating(t *testing.T) {
	now := time.Now()
	refusals := &Refusals{}
	if n := testing.AllocsPerRun(100, func() { refusals.record("shop-a", ticket{}, nil, now) }); n != 0 {
		t.Errorf("Refusals.record of an answer: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { DeadLetterReason(nil); RetryDelay(nil); IsInfrastructure(nil) }); n != 0 {
		t.Errorf("DeadLetterReason, RetryDelay and IsInfrastructure of nil: %v allocations, want 0", n)
	}
	rec := recorder{r: &run{calls: make([]string, 0, 1)}, shop: "shop-a", refusals: refusals, now: time.Now, log: zap.NewNop()}
	if n := testing.AllocsPerRun(100, func() {
		rec.r.calls = rec.r.calls[:0]
		_ = rec.after(ticket{}, "transaction.do", "OK", nil)
	}); n > 1 {
		t.Errorf("recorder.after of an answer: %v allocations, want 1 (the history line)", n)
	}
}
