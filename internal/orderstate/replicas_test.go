package orderstate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestIntentWaitsForTheReplica: with Replication.Replicas 1, the write of a registration intent
// returns once the replica holds it; with the replica frozen it fails, after the timeout, with
// ErrNotReplicated (an ErrUnavailable); other writes, also of a state registering (an event
// parked on it), do not wait.
func TestIntentWaitsForTheReplica(t *testing.T) {
	t.Parallel()
	master, replica := testenv.StartReplicated(t)
	rdb := redis.NewClient(&redis.Options{Addr: master.Addr})
	t.Cleanup(func() { rdb.Close() })
	onReplica := redis.NewClient(&redis.Options{Addr: replica.Addr})
	t.Cleanup(func() { onReplica.Close() })
	s := NewStore(rdb, Config{Prefix: "t:", Replication: Replication{Replicas: 1, Timeout: time.Second}})
	t.Cleanup(s.Close)
	ctx, now := context.Background(), time.Now()

	if _, err := s.PutIntent(ctx, "shop", "A-1", State{Status: StatusRegistering, DataHash: "v1:a"}, now); err != nil {
		t.Fatalf("intent with the replica in sync: %v", err)
	}
	raw, err := onReplica.Get(ctx, s.stateKey("shop", "A-1")).Result()
	if err != nil || !strings.Contains(raw, `"registering"`) {
		t.Fatalf("the replica does not hold the intent when its write returns: %q, %v", raw, err)
	}

	replica.Pause()
	defer replica.Resume()
	start := time.Now()
	_, err = s.PutIntent(ctx, "shop", "A-2", State{Status: StatusRegistering, DataHash: "v1:b"}, now)
	if !errors.Is(err, ErrNotReplicated) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("intent with the replica frozen: %v, want ErrNotReplicated and ErrUnavailable", err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("ErrNotReplicated after %s, before the timeout", took)
	}
	for i, st := range []State{{Status: StatusOK, TransactionID: "12345678901"}, {Status: StatusRegistering, DataHash: "v1:c"}} {
		if _, err := s.Put(ctx, "shop", fmt.Sprintf("B-%d", i), st, now); err != nil {
			t.Errorf("a write of a %s state that is no intent, with the replica frozen: %v", st.Status, err)
		}
	}
}

// TestConnectedReplicas counts a master's replicas, and none of a server alone.
func TestConnectedReplicas(t *testing.T) {
	t.Parallel()
	master, _ := testenv.StartReplicated(t)
	alone := testenv.StartPrivateRedis(t)
	for addr, want := range map[string]int{master.Addr: 1, alone.Addr: 0} {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		n, err := ConnectedReplicas(context.Background(), rdb)
		rdb.Close()
		if err != nil || n != want {
			t.Errorf("%s: %d replicas, %v; want %d", addr, n, err, want)
		}
	}
}
