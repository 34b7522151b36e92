package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/redisadmin"
	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// clusterWait bounds each wait of a Cluster for the cluster to form, fail over or take a node
// back: a few seconds on an idle machine, more on a loaded one.
const clusterWait = 30 * time.Second

// Cluster is the Redis Cluster of Options.RedisCluster: three masters and a replica of each,
// redis-server processes of the stack's own (RedisServer, with append-only persistence) in
// cluster mode with a node timeout of 1 s (redisadmin.NodeArgs), every slot covered. A master
// killed (KillMaster) is failed over by its replica; started again (Restart), it rejoins as the
// replica of the node that took its slots.
//
// Its methods are safe for concurrent use, but a KillMaster and a Restart of the same node must
// not overlap.
type Cluster struct {
	Nodes []*RedisServer // in start order; the first three are the masters at start

	mu    sync.Mutex
	admin map[string]*redis.Client // by address: the tool's client of each node, for the waits
}

// startCluster starts six redis-server processes in cluster mode, makes them a cluster of three
// masters with a replica each (redis-cli --cluster create), waits until every node reports the
// cluster ok and every master has its replica online, and points RedisURL at the masters.
func (s *Stack) startCluster(ctx context.Context) error {
	ports, err := childproc.FreePorts(12) // a port and a cluster bus port per node
	if err != nil {
		return err
	}
	c := &Cluster{admin: map[string]*redis.Client{}}
	s.Cluster = c // Close stops what started, should a step fail
	addrs := make([]string, 6)
	for i := range addrs {
		rs := &RedisServer{Addr: fmt.Sprintf("127.0.0.1:%d", ports[2*i]), Dir: filepath.Join(s.Dir, fmt.Sprintf("redis-node-%d", i+1)), host: s.host}
		rs.args = redisadmin.NodeArgs(ports[2*i+1], filepath.Join(rs.Dir, "nodes.conf"))
		if err := os.MkdirAll(rs.Dir, 0o755); err != nil {
			return err
		}
		if err := rs.Start(ctx); err != nil {
			return err
		}
		c.Nodes, addrs[i] = append(c.Nodes, rs), rs.Addr
	}
	cctx, cancel := context.WithTimeout(ctx, clusterWait)
	defer cancel()
	if err := redisadmin.Create(cctx, addrs); err != nil {
		return err
	}
	slots, err := c.await(ctx, "form", func(ctx context.Context) (redisadmin.Slots, string) { return c.health(ctx, true) })
	if err != nil {
		return err
	}
	s.RedisURL = redisadmin.URL(slots.Masters())
	return nil
}

// Slots returns the slots and their masters as the first running node that answers sees them.
func (c *Cluster) Slots(ctx context.Context) (redisadmin.Slots, error) {
	last := errors.New("no node is running")
	for _, rs := range c.running() {
		slots, err := redisadmin.ReadSlots(ctx, c.client(rs.Addr))
		if err == nil {
			return slots, nil
		}
		last = err
	}
	return nil, fmt.Errorf("no node of the Redis Cluster answers CLUSTER SLOTS: %w", last)
}

// MasterOf returns the address of the master of key's slot and the slot (CLUSTER KEYSLOT), as the
// first running node that answers sees them.
func (c *Cluster) MasterOf(ctx context.Context, key string) (addr string, slot int, err error) {
	last := errors.New("no node is running")
	for _, rs := range c.running() {
		if slot, err = redisadmin.KeySlot(ctx, c.client(rs.Addr), key); err != nil {
			last = err
			continue
		}
		slots, err := redisadmin.ReadSlots(ctx, c.client(rs.Addr))
		if err == nil && slots.MasterOf(slot) != "" {
			return slots.MasterOf(slot), slot, nil
		}
		last = err
	}
	return "", 0, fmt.Errorf("no node of the Redis Cluster says which master has the slot of %q: %v", key, last)
}

// Node returns the node at addr, or nil.
func (c *Cluster) Node(addr string) *RedisServer {
	for _, rs := range c.Nodes {
		if rs.Addr == addr {
			return rs
		}
	}
	return nil
}

// KillMaster kills the master at addr (SIGKILL, a crash: the writes its replica had not received
// are lost) and waits up to 30 s until its replica has its slots, as every running node sees
// them, and the running nodes report the cluster ok. It returns the new master's address. An
// error is a node that is not a master, or a cluster that did not fail over in time; cancelling
// ctx ends the wait with ctx's error.
func (c *Cluster) KillMaster(ctx context.Context, addr string) (promoted string, err error) {
	before, err := c.Slots(ctx)
	if err != nil {
		return "", err
	}
	owned := before.Of(addr)
	if len(owned) == 0 || c.Node(addr) == nil {
		return "", fmt.Errorf("%s is not a master of the Redis Cluster (masters: %v)", addr, before.Masters())
	}
	c.Node(addr).Kill()
	_, err = c.await(ctx, "promote a replica of "+addr, func(ctx context.Context) (redisadmin.Slots, string) {
		slots, why := c.health(ctx, false)
		if why != "" {
			return nil, why
		}
		for _, r := range owned {
			m := slots.MasterOf(r.Start)
			if m == addr || m == "" {
				return nil, fmt.Sprintf("slot %d is still with %s", r.Start, addr)
			}
			promoted = m
		}
		return slots, ""
	})
	return promoted, err
}

// Restart starts the node at addr again, killed by KillMaster, with its data and cluster
// configuration, and waits up to 30 s until it has rejoined as a replica (the master that took
// its slots tells it) and every master has its replica online again. An error is the start's, or
// a cluster that did not take the node back in time; cancelling ctx ends the wait with ctx's
// error.
func (c *Cluster) Restart(ctx context.Context, addr string) error {
	rs := c.Node(addr)
	if rs == nil {
		return fmt.Errorf("the Redis Cluster has no node at %s", addr)
	}
	if err := rs.Start(ctx); err != nil {
		return err
	}
	_, err := c.await(ctx, "take "+addr+" back as a replica", func(ctx context.Context) (redisadmin.Slots, string) {
		slots, why := c.health(ctx, true)
		if why == "" && slices.Contains(slots.Masters(), addr) {
			return nil, addr + " is a master again"
		}
		return slots, why
	})
	return err
}

// await polls cond, which returns the slots or why the cluster is not as wanted, every 100 ms
// for up to 30 s, and returns the slots once it is; the error says what it waited for and cond's
// last reason.
func (c *Cluster) await(ctx context.Context, what string, cond func(ctx context.Context) (redisadmin.Slots, string)) (redisadmin.Slots, error) {
	deadline := time.Now().Add(clusterWait)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		slots, why := cond(pctx)
		cancel()
		if why == "" {
			return slots, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the Redis Cluster did not %s in %s: %s", what, clusterWait, why)
		}
		if err := childproc.Sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// health is redisadmin.Health of the running nodes.
func (c *Cluster) health(ctx context.Context, replicas bool) (redisadmin.Slots, string) {
	nodes := map[string]*redis.Client{}
	for _, rs := range c.running() {
		nodes[rs.Addr] = c.client(rs.Addr)
	}
	return redisadmin.Health(ctx, nodes, replicas)
}

// running returns the nodes whose process runs.
func (c *Cluster) running() []*RedisServer {
	var out []*RedisServer
	for _, rs := range c.Nodes {
		if p := rs.Proc(); p != nil && !p.Exited() {
			out = append(out, rs)
		}
	}
	return out
}

// client returns the tool's client of the node at addr: one connection attempt per command, with
// short timeouts, so that a poll of a killed node fails at once.
func (c *Cluster) client(addr string) *redis.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	rdb := c.admin[addr]
	if rdb == nil {
		rdb = redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second,
			ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, PoolSize: 2})
		c.admin[addr] = rdb
	}
	return rdb
}

// stop closes the tool's clients and stops every node (SIGTERM; SIGKILL after 10 s), all at once.
func (c *Cluster) stop() {
	c.mu.Lock()
	for _, rdb := range c.admin {
		_ = rdb.Close()
	}
	c.admin = map[string]*redis.Client{}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, rs := range c.Nodes {
		wg.Go(rs.Stop)
	}
	wg.Wait()
}
