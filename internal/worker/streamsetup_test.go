package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// overlaps counts the stream creations under way at once across JetStream clients.
type overlaps struct{ now, most atomic.Int32 }

// creations is a JetStream client whose stream creations and updates take delay longer, counted
// in o.
type creations struct {
	jetstream.JetStream
	o     *overlaps
	delay time.Duration
}

func (c *creations) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	n := c.o.now.Add(1)
	defer c.o.now.Add(-1)
	for m := c.o.most.Load(); n > m && !c.o.most.CompareAndSwap(m, n); m = c.o.most.Load() {
	}
	time.Sleep(c.delay + 2*time.Millisecond) // a creation long enough for others to overlap it, were they let
	return c.JetStream.CreateOrUpdateStream(ctx, cfg)
}

// streamsEnv returns a NATS server's JetStream of the test's own, the shared Redis with the
// test's key prefix, and the default settings with streams small enough for the test server.
func streamsEnv(t *testing.T) (jetstream.JetStream, redis.UniversalClient, string, config.Settings) {
	t.Helper()
	_, js := testenv.JetStream(t)
	rdb, prefix := testenv.Redis(t)
	s := config.DefaultSettings()
	s.StreamBytes = 64 << 20
	return js, rdb, prefix, s
}

// TestStreamSetupOneAtATime: two workers on one NATS server and one Redis set their streams up
// at once, each from three goroutines (its start, a consumer's rebind, its reconciliation): no
// two creations overlap, and every stream takes publishes. Two creations of one stream at once
// can leave it unanswering on a single server (streamSetup).
func TestStreamSetupOneAtATime(t *testing.T) {
	t.Parallel()
	js, rdb, prefix, s := streamsEnv(t)
	o := &overlaps{}
	counted := &creations{JetStream: js, o: o}
	workers := []*streamSetup{newStreamSetup(counted, s, rdb, prefix, zap.NewNop()), newStreamSetup(counted, s, rdb, prefix, zap.NewNop())}
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
	if most := o.most.Load(); most != 1 {
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
	js, rdb, prefix, _ := streamsEnv(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, prefix+"lock:stream-setup", "another worker", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	ss := newStreamSetup(js, config.DefaultSettings(), rdb, prefix, zap.NewNop())
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

// TestStreamSetupLockOutlivesASlowSetup: a setup slower than the lock's TTL (six creations of
// 200 ms against 300 ms) keeps it: a second worker waits (the lock is renewed while held).
func TestStreamSetupLockOutlivesASlowSetup(t *testing.T) {
	t.Parallel()
	js, rdb, prefix, s := streamsEnv(t)
	o := &overlaps{}
	slow := newStreamSetup(&creations{JetStream: js, o: o, delay: 200 * time.Millisecond}, s, rdb, prefix, zap.NewNop())
	fast := newStreamSetup(&creations{JetStream: js, o: o}, s, rdb, prefix, zap.NewNop())
	slow.ttl, fast.ttl = 300*time.Millisecond, 300*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := slow.run(ctx); err != nil {
			t.Error(err)
		}
	})
	time.Sleep(100 * time.Millisecond)
	wg.Go(func() {
		if _, err := fast.run(ctx); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	if most := o.most.Load(); most != 1 {
		t.Errorf("%d stream creations at once with a setup longer than the lock's TTL, want 1", most)
	}
}

// TestWorkerStartsWhileRedisRefusesWrites: a worker restarted while its Redis answers but refuses
// writes (OOM here; READONLY in a failover alike) starts, and waits with /readyz 503 until writes
// come back (docs/operations-worker.md): the stream setup lock, a write, is then done without.
func TestWorkerStartsWhileRedisRefusesWrites(t *testing.T) {
	t.Parallel()
	r := testenv.StartPrivateRedis(t)
	rdb, err := NewRedis("redis://"+r.Addr, transport.RedisFiles{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	h := newHarnessWith(t, harnessOpts{redis: rdb})
	h.shutdown() // the layout is recorded now, as on any Redis a worker ran on
	ctx := context.Background()
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "probe", "x", 0).Err(); err == nil {
		t.Fatal("Redis still takes writes: the test tests nothing")
	}
	h.startUntil("/healthz")
}

// TestRebindsReturnOnShutdownWhileLockHeld: three rebinds of one worker, one waiting for the
// Redis lock another worker holds and the others for the mutex, all return soon after ctx ends.
func TestRebindsReturnOnShutdownWhileLockHeld(t *testing.T) {
	t.Parallel()
	js, rdb, prefix, s := streamsEnv(t)
	ss := newStreamSetup(js, s, rdb, prefix, zap.NewNop())
	if _, err := ss.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), s.OrdersStream); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(context.Background(), prefix+"lock:stream-setup", "another worker", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if _, _, err := ss.rebind(s.OrdersStream, ordersConsumer)(ctx); err == nil {
				t.Error("rebound while another worker held the lock")
			}
		})
	}
	time.Sleep(streamRecreateDelay + time.Second)
	start := time.Now()
	cancel()
	wg.Wait()
	if took := time.Since(start); took > time.Second {
		t.Errorf("the rebinds took %s to return after ctx ended", took)
	}
}
