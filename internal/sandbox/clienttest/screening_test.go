package clienttest

import (
	"regexp"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
)

// TestDecisionRules walks every decision rule of docs/atodene.md#decisions through Register and GetAuthori:
// the decision right after registering, after the review delay, and after the hold delay too.
func TestDecisionRules(t *testing.T) {
	t.Parallel()
	const (
		ok     = atodene.DecisionOK
		ng     = atodene.DecisionNG
		review = atodene.DecisionReview
		hold   = atodene.DecisionHold
	)
	tests := []struct {
		name   string
		email  string
		billed int64
		auto   atodene.Decision
		// The screening's Decision() at registration, after the review delay, and after the hold delay.
		atStart, afterReview, afterHold atodene.Decision
		// Whether GetAuthori gives reasons once the decision is final.
		reasons bool
	}{
		{"ng", "ng-taro@example.jp", 3000, ng, ng, ng, ng, true},
		{"review-ok", "review-ok-taro@example.jp", 3000, review, review, ok, ok, false},
		{"review-ng", "review-ng-taro@example.jp", 3000, review, review, ng, ng, true},
		{"hold", "hold-taro@example.jp", 3000, review, review, hold, ng, true},
		{"default", "taro@example.jp", 3000, ok, ok, ok, ok, false},
		{"default at the ceiling", "taro@example.jp", 55000, ok, ok, ok, ok, false},
		{"default above the ceiling", "taro@example.jp", 55001, ng, ng, ng, ng, true},
		{"prefix is case-insensitive", "Review-OK-Hanako@example.jp", 3000, review, review, ok, ok, false},
		{"first match wins", "ng-review-ok@example.jp", 3000, ng, ng, ng, ng, true},
		{"prefix only of the local part", "taro@ng.example.jp", 3000, ok, ok, ok, ok, false},
	}
	txID := regexp.MustCompile(`^[0-9]{11}$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			reg := e.register(newOrder("D-1", tt.email, tt.billed))
			if reg.Auto != tt.auto || !txID.MatchString(reg.TransactionID) {
				t.Fatalf("Register = %+v, want auto %s and an 11-digit transaction ID", reg, tt.auto)
			}

			s := e.screening(reg.TransactionID)
			if s.TransactionID != reg.TransactionID || s.Auto != tt.auto || s.Decision() != tt.atStart {
				t.Fatalf("at start: %+v (decision %s), want auto %s, decision %s", s, s.Decision(), tt.auto, tt.atStart)
			}
			if s.Auto == review && (s.Manual != atodene.DecisionNone || len(s.Reasons) != 0) {
				t.Errorf("a review not yet done has a manual result: %+v", s)
			}

			e.clock.Advance(reviewDelay - time.Second)
			if s := e.screening(reg.TransactionID); s.Decision() != tt.atStart {
				t.Errorf("a second before the review delay: decision %s, want %s", s.Decision(), tt.atStart)
			}
			e.clock.Advance(time.Second)
			s = e.screening(reg.TransactionID)
			if s.Decision() != tt.afterReview {
				t.Errorf("after the review delay: %+v (decision %s), want %s", s, s.Decision(), tt.afterReview)
			}
			if tt.afterReview == hold && (s.Manual != hold || len(s.Reasons) == 0) {
				t.Errorf("a hold has manual %q and reasons %q, want 保留 with a reason", s.Manual, s.Reasons)
			}

			e.clock.Advance(holdDelay)
			s = e.screening(reg.TransactionID)
			if s.Decision() != tt.afterHold {
				t.Errorf("after the hold delay: %+v (decision %s), want %s", s, s.Decision(), tt.afterHold)
			}
			if got := len(s.Reasons) > 0; got != tt.reasons {
				t.Errorf("final reasons %q, want reasons: %v", s.Reasons, tt.reasons)
			}

			v := e.onlyTransaction("D-1")
			if v.TransactionID != reg.TransactionID || v.Decision != string(tt.afterHold) ||
				v.AutoResult != string(tt.auto) || v.BilledAmount != tt.billed || v.State != "active" {
				t.Errorf("admin view %+v, want transaction %s, auto %s, decision %s", v, reg.TransactionID, tt.auto, tt.afterHold)
			}
			if v.Calls["transaction"] != 1 || v.Calls["getauthori"] != 4 {
				t.Errorf("admin counts calls %v, want 1 transaction and 4 getauthori", v.Calls)
			}
		})
	}
}

// TestSlowBuyer checks that a slow… buyer is screened like the default but that every answer about
// the transaction takes at least the slow delay.
func TestSlowBuyer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	start := time.Now()
	reg := e.register(newOrder("S-1", "slow-taro@example.jp", 3000))
	if d := time.Since(start); d < slowDelay {
		t.Errorf("Register took %v, want at least the slow delay %v", d, slowDelay)
	}
	if reg.Auto != atodene.DecisionOK {
		t.Errorf("Register = %+v, want auto OK", reg)
	}
	start = time.Now()
	s := e.screening(reg.TransactionID)
	if d := time.Since(start); d < slowDelay {
		t.Errorf("GetAuthori took %v, want at least the slow delay %v", d, slowDelay)
	}
	if s.Decision() != atodene.DecisionOK {
		t.Errorf("GetAuthori = %+v, want OK", s)
	}

	// Above the ceiling a slow buyer is declined, like the default.
	if reg := e.register(newOrder("S-2", "slow-taro@example.jp", 60000)); reg.Auto != atodene.DecisionNG {
		t.Errorf("slow buyer above the ceiling: %+v, want auto NG", reg)
	}
}
