package consumer_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/atodene-worker/atodene-worker/internal/consumer"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// TestExhaustedDeliveryLogsTheDeadLetter: the log line of a message's last delivery, whose
// failure dead-letters it instead of handing it back, says it was dead-lettered and why, not
// "retry"; the earlier deliveries say retry. A failure of Redis or JetStream on the last delivery
// is tried again in place, not dead-lettered: its line says retry.
func TestExhaustedDeliveryLogsTheDeadLetter(t *testing.T) {
	t.Parallel()
	c := newConsumer(t, 5*time.Second, 2, 1)
	core, logs := observer.New(zapcore.InfoLevel)
	var calls atomic.Int32
	h := handlers.Chain(func(context.Context, *handlers.Message) error {
		if calls.Add(1) == 2 { // the last delivery's first try: Redis down, then ATODENE failing
			return handlers.Infrastructure(fmt.Errorf("redis: %w", errTransient))
		}
		return errTransient
	}, handlers.Logging(zap.New(core)))
	dl := &deadLetters{}
	run(t, c, h, consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 2, DeadLetter: dl.write,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }})
	wait.For(t, 10*time.Second, "the dead letter", func() bool { return len(dl.all()) == 1 })

	var got []string
	for _, l := range logs.FilterMessage("message handled").All() {
		got = append(got, fmt.Sprintf("attempt %v: %v", l.ContextMap()["attempt"], l.ContextMap()["outcome"]))
	}
	want := []string{"attempt 1: retry", "attempt 2: retry", "attempt 2: dead-letter:exhausted"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("log lines %q, want %q", got, want)
	}
}
