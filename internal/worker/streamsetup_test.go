package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// creations is a JetStream client that counts the stream creations and updates under way at once.
type creations struct {
	jetstream.JetStream
	now, most atomic.Int32
}

func (c *creations) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	time.Sleep(2 * time.Millisecond) // a creation long enough for others to overlap it, were they let
	return c.JetStream.CreateOrUpdateStream(ctx, cfg)
}

// TestStreamSetupOneAtATime: two workers on one NATS server and one Redis set their streams up
// at once, each from three goroutines (its start, a consumer's rebind, its reconciliation): no
// two creations overlap, and every stream takes publishes. Two creations of one stream at once
// can leave it unanswering on a single server (streamSetup).
func TestStreamSetupOneAtATime(t *testing.T) {
	t.Parallel()
	_, js := testenv.JetStream(t)
	rdb, prefix := testenv.Redis(t)
	s := config.DefaultSettings()
	s.StreamBytes = 64 << 20
	counted := &creations{JetStream: js}
	workers := []*streamSetup{newStreamSetup(counted, s, rdb, prefix), newStreamSetup(counted, s, rdb, prefix)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, w := range workers {
		for range 3 {
			wg.Go(func() {
				if _, err := w.run(ctx); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	if most := counted.most.Load(); most != 1 {
		t.Errorf("%d stream creations at once, want 1", most)
	}
	if n, _ := rdb.Exists(ctx, prefix+"lock:stream-setup").Result(); n != 0 {
		t.Error("the stream setup lock is still held after every setup returned")
	}
	for _, subject := range []string{"orders.created.shop-a", "credit.ok.shop-a", "dlq.unknown-shop.shop-a"} {
		if _, err := js.Publish(ctx, subject, []byte("{}")); err != nil {
			t.Errorf("publishing to %s: %v", subject, err)
		}
	}
}

// TestStreamSetupWaitsForTheLock: a worker whose Redis holds another's lock waits for it, and
// gives up with ctx.
func TestStreamSetupWaitsForTheLock(t *testing.T) {
	t.Parallel()
	_, js := testenv.JetStream(t)
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, prefix+"lock:stream-setup", "another worker", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	ss := newStreamSetup(js, config.DefaultSettings(), rdb, prefix)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := ss.run(short); err == nil {
		t.Fatal("set up while another worker held the lock")
	}
	if _, err := js.Stream(ctx, "ORDERS"); err == nil {
		t.Error("ORDERS created while another worker held the lock")
	}
	if got, _ := rdb.Get(ctx, prefix+"lock:stream-setup").Result(); got != "another worker" {
		t.Errorf("the other worker's lock is now %q", got)
	}
}
