package clock_test

import (
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/testenv/clock"
)

func TestFakeMovesOnlyWhenAdvanced(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	if got := clk.Now(); !got.Equal(start) {
		t.Fatalf("Now() = %v, want the start %v", got, start)
	}
	clk.Advance(90 * time.Second)
	if got, want := clk.Now(), start.Add(90*time.Second); !got.Equal(want) {
		t.Errorf("after Advance(90s): Now() = %v, want %v", got, want)
	}
}
