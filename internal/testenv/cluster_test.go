package testenv_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// TestClusterFailover: a key on each of the three masters, written through the cluster's client;
// the master of one is killed and its replica promoted; the same client reads that key, as it was
// written and replicated before the kill, and writes it, on the new master; the killed node comes
// back as a replica.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := testenv.StartCluster(t)
	t.Logf("cluster formed in %s", time.Since(start).Round(time.Millisecond))
	masters := c.Masters()
	if len(masters) != 3 {
		t.Fatalf("masters %v, want 3", masters)
	}
	if u := c.URL(); !strings.HasPrefix(u, "redis-cluster://"+masters[0]+"?") || strings.Count(u, "addr=") != 2 {
		t.Errorf("URL %s, want redis-cluster:// naming the 3 masters", u)
	}
	rdb := c.Client(t)
	ctx := t.Context()
	keyOf := map[string]string{} // by master
	for i := 0; len(keyOf) < len(masters) && i < 1000; i++ {
		if k, m := fmt.Sprintf("key-%d", i), c.MasterOf(fmt.Sprintf("key-%d", i)); keyOf[m] == "" {
			keyOf[m] = k
		}
	}
	if len(keyOf) != len(masters) {
		t.Fatalf("keys on %d masters, want one on each of %v", len(keyOf), masters)
	}
	for _, k := range keyOf {
		if err := rdb.Set(ctx, k, "before", 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	victim, killed := keyOf[masters[0]], masters[0]

	// What the replica has not received when its master dies is lost: SET then WAIT 1, on one
	// connection of the client to the key's master.
	node, err := rdb.(*redis.ClusterClient).MasterForKey(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	pipe := node.Pipeline()
	pipe.Set(ctx, victim, "before", 0)
	acked := pipe.Do(ctx, "WAIT", 1, 5000)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("SET then WAIT 1: %v", err)
	}
	if n, _ := acked.Int(); n != 1 {
		t.Fatalf("SET then WAIT 1: %d replicas acknowledged", n)
	}

	start = time.Now()
	promoted := c.KillMaster(t, killed)
	t.Logf("replica %s promoted %s after the kill of %s", promoted, time.Since(start).Round(time.Millisecond), killed)
	if promoted == killed || slices.Contains(masters, promoted) {
		t.Fatalf("KillMaster(%s) = %s, want the replica that took its slots", killed, promoted)
	}
	if m := c.MasterOf(victim); m != promoted {
		t.Errorf("MasterOf(%s) = %s after the failover, want %s", victim, m, promoted)
	}
	var got string
	if !wait.Until(20*time.Second, func() bool {
		got, err = rdb.Get(ctx, victim).Result()
		return err == nil && rdb.Set(ctx, victim, "after", 0).Err() == nil
	}) {
		t.Fatalf("the client did not read and write %s on the new master in 20s: %v", victim, err)
	}
	if got != "before" {
		t.Errorf("after the failover %s holds %q, want the write acknowledged before it", victim, got)
	}
	for _, k := range keyOf {
		if v, err := rdb.Get(ctx, k).Result(); err != nil || v != "before" && k != victim {
			t.Errorf("GET %s after the failover: %q, %v", k, v, err)
		}
	}

	start = time.Now()
	c.Restart(t, killed)
	t.Logf("%s back as a replica %s after its start", killed, time.Since(start).Round(time.Millisecond))
	if m := c.Masters(); len(m) != 3 || slices.Contains(m, killed) {
		t.Errorf("masters %v after the restart of %s, want 3 without it (a replica now)", m, killed)
	}
	if v, err := rdb.Get(ctx, victim).Result(); err != nil || v != "after" {
		t.Errorf("GET %s after the restart: %q, %v; want the write made after the failover", victim, v, err)
	}
}
