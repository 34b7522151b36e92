package worker

import (
	"runtime"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/config"
)

// TestConcurrencyIsOneBudget: -concurrency bounds the messages the worker handles at once, all
// consumers together: it runs that many handling goroutines, not that many per consumer (the
// three consumers ran 1,536 at the default 512).
func TestConcurrencyIsOneBudget(t *testing.T) {
	// Not parallel: it counts the goroutines of the process, which the parallel tests, paused
	// until the others end, do not add to.
	newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.Concurrency = 8 }})
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var handling, loops int
	for _, g := range strings.Split(string(buf), "\n\n") {
		switch {
		case strings.Contains(g, "internal/consumer.Consume("):
			loops++ // a consumer's fetch loop
		case strings.Contains(g, "internal/worker.reconcile("), strings.Contains(g, "net/http."):
			// the reconciler and the HTTP server, which may be calling into handlers
		case strings.Contains(g, "internal/consumer."):
			handling++ // a goroutine of the budget, idle or running a handler
		}
	}
	if loops != 3 || handling != 8 {
		t.Errorf("%d consume loops and %d handling goroutines at -concurrency 8; want 3 and 8", loops, handling)
	}
}
