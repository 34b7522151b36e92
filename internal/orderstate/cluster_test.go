package orderstate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/redisconn"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// TestClusterShopsDoNotWaitForAnotherMaster: on a Redis Cluster whose master of shop-a's slot
// failed over (its new master has no replica, so shop-a's intents each wait out the replication
// timeout and fail), the intents of shop-b, on another master, go through as if shop-a were idle:
// neither the replication waits nor the pipelines of one master hold up another's shops.
func TestClusterShopsDoNotWaitForAnotherMaster(t *testing.T) {
	t.Parallel()
	c := testenv.StartCluster(t)
	rdb, err := redisconn.Open("-redis-url", c.URL(), transport.RedisFiles{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	const timeout = 2 * time.Second // shop-b's intents have half of it: ample on a loaded machine
	s := NewStore(rdb, Config{Prefix: "iso:", Replication: Replication{Replicas: 1, Timeout: timeout}})
	t.Cleanup(s.Close)
	if c.MasterOf("{shop-a}") == c.MasterOf("{shop-b}") {
		t.Fatal("shop-a and shop-b hash to one master: pick shops whose slots are on two")
	}
	c.KillMaster(t, c.MasterOf("{shop-a}"))

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 4 * maxReplicatedWrites { // more than every slot of the replica waits
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				_, _ = s.PutIntent(ctx, "shop-a", fmt.Sprintf("A-%d-%d", i, n), State{}, time.Now())
			}
		})
	}
	defer func() { stop(); wg.Wait() }()
	time.Sleep(timeout / 2) // shop-a's intents hold every slot they can
	for n := range 10 {
		// Less than the replication timeout: an intent that waited for a slot of shop-a's fails.
		ictx, cancel := context.WithTimeout(context.Background(), timeout/2)
		_, err := s.PutIntent(ictx, "shop-b", fmt.Sprintf("B-%d", n), State{}, time.Now())
		cancel()
		if err != nil {
			t.Fatalf("intent %d of shop-b: %v", n, err)
		}
	}
	if _, err := s.PutIntent(context.Background(), "shop-a", "A-last", State{}, time.Now()); !errors.Is(err, ErrNotReplicated) {
		t.Errorf("an intent of shop-a with no replica: %v, want ErrNotReplicated (the test's premise)", err)
	}
	// Each shop's scripts go out in pipelines of its own (batchers): one waits for its slowest node.
	for _, shop := range []string{"shop-a", "shop-b"} {
		if _, err := s.AcquireLease(context.Background(), shop, "L-1", Take{TTL: time.Minute}); err != nil && shop == "shop-b" {
			t.Fatal(err)
		}
	}
	if n := len(s.batch.byShop); n != 2 || s.batch.one != nil {
		t.Errorf("%d batchers on a Cluster for two shops, want one each", n)
	}
}
