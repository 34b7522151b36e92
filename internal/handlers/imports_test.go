package handlers_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestHandlersKnowNothingOfNATS: handlers are the domain; the NATS adapter is package consumer.
// Neither handlers nor anything it imports, directly or not, may import nats.go or dlq (a
// message's NATS metadata and headers are read by the consumer, which fills a Message; a dead
// letter of the handlers is a DeadLetter the worker writes with dlq).
func TestHandlersKnowNothingOfNATS(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 || deps[len(deps)-1] != "github.com/atodene-worker/atodene-worker/internal/handlers" {
		t.Fatalf("go list -deps listed %d packages, not ending with handlers: %q", len(deps), deps)
	}
	for _, p := range deps {
		switch {
		case p == "github.com/nats-io/nats.go", strings.HasPrefix(p, "github.com/nats-io/nats.go/"),
			p == "github.com/atodene-worker/atodene-worker/internal/dlq",
			strings.HasPrefix(p, "github.com/atodene-worker/atodene-worker/internal/dlq/"),
			p == "github.com/atodene-worker/atodene-worker/internal/consumer":
			t.Errorf("handlers depends on %s: the NATS adapter belongs in package consumer", p)
		}
	}
}
