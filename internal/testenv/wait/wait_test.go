package wait_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

func TestUntil(t *testing.T) {
	t.Parallel()
	t.Run("met at once", func(t *testing.T) {
		t.Parallel()
		calls := 0
		if !wait.Until(time.Second, func() bool { calls++; return true }) {
			t.Fatal("Until = false, want true")
		}
		if calls != 1 {
			t.Errorf("cond asked %d times, want 1", calls)
		}
	})
	t.Run("met later", func(t *testing.T) {
		t.Parallel()
		var set atomic.Bool
		time.AfterFunc(30*time.Millisecond, func() { set.Store(true) })
		if !wait.Until(5*time.Second, set.Load) {
			t.Fatal("Until = false, want true")
		}
	})
	t.Run("never met", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		calls := 0
		if wait.Until(50*time.Millisecond, func() bool { calls++; return false }) {
			t.Fatal("Until = true, want false")
		}
		if took := time.Since(start); took < 50*time.Millisecond {
			t.Errorf("gave up after %s, before the 50ms passed", took)
		}
		if calls < 3 {
			t.Errorf("cond asked %d times in 50ms, want it polled", calls)
		}
	})
}

// fatalRecorder is a testing.TB whose Fatalf records the message instead of stopping the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) { r.msg = fmt.Sprintf(format, args...) }

func TestForSaysWhatItWaitedFor(t *testing.T) {
	t.Parallel()
	r := &fatalRecorder{TB: t}
	wait.For(r, 20*time.Millisecond, "the moon", func() bool { return false })
	if want := "timed out after 20ms waiting for the moon"; r.msg != want {
		t.Errorf("message %q, want %q", r.msg, want)
	}
	r.msg = ""
	wait.For(r, 20*time.Millisecond, "the sun", func() bool { return true })
	if r.msg != "" {
		t.Errorf("failed with %q though the condition held", r.msg)
	}
}
