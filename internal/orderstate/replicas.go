package orderstate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replication is how a registration intent is made to survive the loss of the master: Redis
// replicates asynchronously, so a failover to a replica may lose the last writes it acknowledged.
// A registration sent to ATODENE after its intent was lost would be sent again by the retry as a
// first attempt, and the order, already registered, would go to an operator as outcome-unknown
// (docs/architecture.md#failover-of-redis). So, with Replicas set, the write of an intent waits (WAIT) until that many replicas
// hold it, and fails with ErrNotReplicated otherwise: ATODENE is not called on an intent only the
// master holds.
type Replication struct {
	// Replicas is how many replicas must acknowledge an intent; 0 waits for none.
	Replicas int
	// Timeout bounds the wait; past it the write is ErrNotReplicated. Default 1 s.
	Timeout time.Duration
}

// DefaultReplicationTimeout is Replication.Timeout when it is not set.
const DefaultReplicationTimeout = time.Second

// ErrNotReplicated is the error of an intent that fewer replicas than Replication.Replicas
// acknowledged in time. It matches ErrUnavailable: the event is retried later, and nothing was
// sent to ATODENE.
var ErrNotReplicated = errors.New("orderstate: the write was not acknowledged by enough replicas")

// WaitsForReplicas says whether the store's intents wait for replicas (Replication.Replicas > 0).
func (s *Store) WaitsForReplicas() bool { return s.replication.Replicas > 0 }

// maxReplicatedWrites bounds the writes waiting for replicas at once: each holds a connection of
// the client's pool for its wait (up to Replication.Timeout while no replica answers), and the
// pool (10 per CPU) must keep connections for the other calls.
const maxReplicatedWrites = 8

// runReplicated runs script, then WAIT, in one pipeline: WAIT counts the replicas that hold the
// writes of its own connection, so it must follow the write on the same one. It bypasses the
// batcher, whose pipeline it would hold for the wait.
func (s *Store) runReplicated(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	node, err := s.nodeOf(ctx, keys[0])
	if err != nil {
		return failed(ctx, err)
	}
	slots := s.replicatedSlots(node)
	select {
	case slots <- struct{}{}:
		defer func() { <-slots }()
	case <-ctx.Done():
		return failed(ctx, fmt.Errorf("waiting to write an intent: %w", ctx.Err()))
	}
	var cmd *redis.Cmd
	var acks *redis.Cmd
	for range 2 { // a second time after loading a script Redis lost (a restart)
		pipe := node.Pipeline()
		cmd = script.EvalSha(ctx, pipe, keys, args...)
		acks = pipe.Do(ctx, "WAIT", s.replication.Replicas, s.replication.Timeout.Milliseconds())
		_, _ = pipe.Exec(ctx) // each command carries its own error
		if !redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			break
		}
		if err := script.Load(ctx, node).Err(); err != nil {
			cmd.SetErr(err)
			break
		}
	}
	if err := cmd.Err(); err != nil {
		cmd.SetErr(unavailable(err))
		return cmd
	}
	n, err := acks.Int()
	if err != nil || n < s.replication.Replicas {
		cause := ErrNotReplicated
		if err != nil {
			cause = fmt.Errorf("%w: %w", ErrNotReplicated, err)
		}
		cmd.SetErr(&unavailableError{fmt.Errorf("%w (%d of %d within %s)", cause, n, s.replication.Replicas, s.replication.Timeout)})
	}
	return cmd
}

// replicatedSlots returns the slots of runReplicated's writes to node: on a Cluster, node's own, so
// that the intents of a master without a replica (just failed over), each waiting out the
// timeout, hold up only the shops of that master.
func (s *Store) replicatedSlots(node redis.UniversalClient) chan struct{} {
	c, ok := node.(*redis.Client)
	if !ok || node == s.rdb {
		return s.replicated
	}
	n := s.replicatedByNode
	n.mu.Lock()
	defer n.mu.Unlock()
	addr := c.Options().Addr
	slots, ok := n.byAddr[addr]
	if !ok {
		slots = make(chan struct{}, maxReplicatedWrites)
		n.byAddr[addr] = slots
	}
	return slots
}

// nodeSlots are the slots of runReplicated per master of a Cluster, by address.
type nodeSlots struct {
	mu     sync.Mutex
	byAddr map[string]chan struct{}
}

// nodeOf returns the client of the server that writes key: on Redis Cluster the master of its
// slot, so that a WAIT after the write runs on the write's own connection (the cluster client
// sends a command without keys to any node); otherwise the store's client.
func (s *Store) nodeOf(ctx context.Context, key string) (redis.UniversalClient, error) {
	c, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return s.rdb, nil
	}
	node, err := c.MasterForKey(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("orderstate: finding the master of %s: %w", key, unavailable(err))
	}
	return node, nil
}

// ConnectedReplicas returns how many replicas the master rdb writes to reports online (INFO
// replication), for a default of Replication.Replicas; on Redis Cluster, the fewest of any master.
func ConnectedReplicas(ctx context.Context, rdb redis.UniversalClient) (int, error) {
	if c, ok := rdb.(*redis.ClusterClient); ok {
		masters, err := clusterMasters(ctx, c)
		if err != nil {
			return 0, err
		}
		least := -1
		for _, m := range masters {
			n, err := ConnectedReplicas(ctx, m)
			if err != nil {
				return 0, err
			}
			if least < 0 || n < least {
				least = n
			}
		}
		return max(least, 0), nil
	}
	info, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return 0, fmt.Errorf("orderstate: reading INFO replication: %w", unavailable(err))
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, nil
}
