package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestPublishAckWaitIsBounded: a JetStream that takes a publish and never acknowledges it (here a
// subscriber on the subject that never replies, and no stream) fails the handlers' publishes after
// jsCallTimeout, as failures of JetStream (tried again in place), not after the handler's context
// ends: a handler's context lasts its handler timeout (minutes), and a lost PubAck held the try,
// its slot and the order's lease that long.
func TestPublishAckWaitIsBounded(t *testing.T) {
	t.Parallel()
	url, js := testenv.JetStream(t)
	silent, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(silent.Close)
	sub, err := silent.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	if err := silent.Flush(); err != nil {
		t.Fatal(err)
	}

	unused := prometheus.NewCounter(prometheus.CounterOpts{Name: "failures_total", Help: "unused"})
	for _, tc := range []struct {
		name    string
		publish func(ctx context.Context) error
	}{
		{"outcome", func(ctx context.Context) error {
			return outcomes{js, unused}.Publish(ctx, "credit.ok.shop-a", "m-1", []byte(`{}`))
		}},
		{"timer", func(ctx context.Context) error {
			return polls{js: js}.Schedule(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "ORDER-1", Kind: handlers.TimerPoll}, time.Now().Add(time.Hour))
		}},
		{"kept copy", func(ctx context.Context) error {
			return kept{js: js}.Keep(ctx, "shop-a", "ORDER-1", orderstate.Parked{Key: "k-1", Subject: "orders.created.shop-a", Body: []byte(`{}`)}, handlers.KeptQueued)
		}},
		{"dead letter", func(ctx context.Context) error {
			return handlers.Infrastructure(dlq.NewWriter(js).Write(ctx, dlq.Letter{Subject: "orders.created.shop-a", Stream: "ORDERS", Sequence: 1,
				Body: []byte(`{}`), Reason: handlers.ReasonExhausted.String(), Err: errors.New("failed"), Attempts: 1, FailedAt: time.Now()}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A handler's context: its deadline is the handler timeout.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			start := time.Now()
			err := tc.publish(ctx)
			took := time.Since(start)
			if !handlers.IsInfrastructure(err) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("publish with no acknowledgement: %v; want a failure of JetStream, its wait timed out", err)
			}
			if took < jsCallTimeout-time.Second || took > jsCallTimeout+3*time.Second {
				t.Errorf("the publish waited %s for its acknowledgement, want about %s", took, jsCallTimeout)
			}
		})
	}
	t.Cleanup(func() {
		if n, _, _ := sub.Pending(); n == 0 {
			t.Error("the silent subscriber got nothing: the publishes did not go out")
		}
	})
}
