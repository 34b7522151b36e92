package testenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/redisadmin"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// clusterWait bounds each wait of a Cluster for the cluster to form, fail over or take a node
// back: a few seconds on an idle machine, more on a loaded one.
const clusterWait = 30 * time.Second

// Cluster is a Redis Cluster of the test's own: three masters and a replica of each, private
// redis-server processes (Redis 7.0 or later) on loopback ports with append-only persistence,
// a node timeout of 1 s, and every slot covered. Its processes are stopped when the test ends.
//
// Its methods are for the goroutine of the test that started it. Those without a testing.TB fail
// that test when no node answers; KillMaster and Restart fail the test they are given when the
// cluster does not recover in 30 s.
type Cluster struct {
	nodes  []*PrivateRedis          // in start order
	admin  map[string]*redis.Client // by address: a client of each node, for the waits
	t      testing.TB
	access Access // how the nodes are reached
}

// StartCluster starts six redis-server processes in cluster mode, each with a temporary directory
// of its own, makes them a cluster of three masters with a replica each (redis-cli --cluster
// create), and waits until every node reports the cluster ok and every master has its replica
// online. It fails the test if redis-server or redis-cli is missing or the cluster has not formed
// in 30 s.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	return StartClusterWith(t, Access{})
}

// StartClusterWith is StartCluster with its nodes reached with a: TLS on the clients' connections,
// the replication and the cluster bus when a has a PKI; a's user in place of the default one.
func StartClusterWith(t testing.TB, a Access) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("testenv: redis-cli is not installed (it comes with redis-server; on Debian in redis-tools), and a Redis Cluster is made with it: %v", err)
	}
	c := &Cluster{admin: map[string]*redis.Client{}, t: t, access: a}
	addrs := make([]string, 6)
	for i := range addrs {
		r := newPrivateRedis(t, a)
		_, port, _ := net.SplitHostPort(r.Addr)
		bus := FreePort(t)
		for strconv.Itoa(bus) == port {
			bus = FreePort(t)
		}
		r.args = append(redisadmin.NodeArgs(bus, filepath.Join(r.dir, "nodes-"+port+".conf")), r.args...)
		r.Start()
		t.Cleanup(r.Stop)
		c.nodes, addrs[i] = append(c.nodes, r), r.Addr
	}
	t.Cleanup(func() { // before the nodes stop
		for _, rdb := range c.admin {
			rdb.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	if err := redisadmin.Create(ctx, addrs, a.cliArgs()...); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	c.await(t, "form", func(ctx context.Context) string {
		_, why := c.healthy(ctx, true)
		return why
	})
	return c
}

// URL is a redis-cluster:// URL of the cluster (redisconn.Open) naming its masters of now; with
// TLS a rediss-cluster:// one, and with a user its name and password.
func (c *Cluster) URL() string {
	u := redisadmin.URL(c.Masters())
	if c.access.User != "" {
		u = strings.Replace(u, "://", "://"+url.UserPassword(c.access.User, c.access.Password).String()+"@", 1)
	}
	if c.access.PKI != nil {
		u = "rediss" + strings.TrimPrefix(u, "redis")
	}
	return u
}

// Client returns a cluster client (a *redis.ClusterClient) that knows every node's address, closed
// when t ends. Like the worker's (redisconn.Open), it reads from the masters only and asks for the
// slots' masters again a second after it last did, when it next runs a command: go-redis's
// default, a minute, would leave it sending the slots of a dead master to that master for a
// minute after its replica is promoted.
func (c *Cluster) Client(t testing.TB) redis.UniversalClient {
	t.Helper()
	addrs := make([]string, len(c.nodes))
	for i, r := range c.nodes {
		addrs[i] = r.Addr
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ClusterStateReloadInterval: time.Second,
		Username: c.access.User, Password: c.access.Password, TLSConfig: c.access.clientTLS()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Masters returns the address of each master of now, in the order of their first slot, as the
// first running node that answers sees them.
func (c *Cluster) Masters() []string {
	c.t.Helper()
	return c.slots().Masters()
}

// MasterOf returns the address of the master of key's slot (CLUSTER KEYSLOT), as the first
// running node that answers sees it.
func (c *Cluster) MasterOf(key string) (addr string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, r := range c.running() {
		slot, err := redisadmin.KeySlot(ctx, c.client(r.Addr), key)
		if err != nil {
			continue
		}
		slots, err := redisadmin.ReadSlots(ctx, c.client(r.Addr))
		if err == nil && slots.MasterOf(slot) != "" {
			return slots.MasterOf(slot)
		}
	}
	c.t.Fatalf("testenv: no node of the cluster says which master has the slot of %q", key)
	return ""
}

// KillMaster kills the master at addr (SIGKILL, like a crash: writes its replica had not received
// are lost) and waits until its replica has its slots, as every running node sees them, and the
// running nodes report the cluster ok. It returns the new master's address.
func (c *Cluster) KillMaster(t testing.TB, addr string) (promoted string) {
	t.Helper()
	r := c.node(t, addr)
	before := c.slots()
	owned := before.Of(addr)
	if len(owned) == 0 {
		t.Fatalf("testenv: %s is not a master of the cluster (masters: %v)", addr, before.Masters())
	}
	r.Stop()
	c.await(t, "promote a replica of "+addr, func(ctx context.Context) string {
		slots, why := c.healthy(ctx, false)
		if why != "" {
			return why
		}
		for _, r := range owned {
			m := slots.MasterOf(r.Start)
			if m == addr || m == "" {
				return fmt.Sprintf("slot %d is still with %s", r.Start, addr)
			}
			promoted = m
		}
		return ""
	})
	return promoted
}

// Restart starts the node at addr again, killed by KillMaster, and waits until it has rejoined
// as a replica (the master that took its slots tells it) and every master has its replica online
// again.
func (c *Cluster) Restart(t testing.TB, addr string) {
	t.Helper()
	r := c.node(t, addr)
	if r.cmd != nil {
		t.Fatalf("testenv: the node %s is running: Restart starts a node KillMaster killed", addr)
	}
	r.t = t
	r.Start()
	c.await(t, "take "+addr+" back as a replica", func(ctx context.Context) string {
		slots, why := c.healthy(ctx, true)
		if why != "" {
			return why
		}
		if slices.Contains(slots.Masters(), addr) {
			return addr + " is a master again"
		}
		return ""
	})
}

// await polls cond, which says why the cluster is not as wanted ("" when it is), for 30 s, and
// fails t with cond's last reason if it never is.
func (c *Cluster) await(t testing.TB, what string, cond func(ctx context.Context) string) {
	t.Helper()
	why := "not asked"
	if !wait.Until(clusterWait, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		why = cond(ctx)
		return why == ""
	}) {
		t.Fatalf("testenv: the Redis Cluster did not %s in %s: %s", what, clusterWait, why)
	}
}

// healthy returns the slots as every running node sees them, or why not (redisadmin.Health).
func (c *Cluster) healthy(ctx context.Context, replicas bool) (redisadmin.Slots, string) {
	nodes := map[string]*redis.Client{}
	for _, r := range c.running() {
		nodes[r.Addr] = c.client(r.Addr)
	}
	return redisadmin.Health(ctx, nodes, replicas)
}

// slots returns the slots as the first running node that answers sees them, and fails the test
// that started the cluster if none does.
func (c *Cluster) slots() redisadmin.Slots {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var last error
	for _, r := range c.running() {
		slots, err := redisadmin.ReadSlots(ctx, c.client(r.Addr))
		if err == nil {
			return slots
		}
		last = err
	}
	c.t.Fatalf("testenv: no node of the cluster answers CLUSTER SLOTS: %v", last)
	return nil
}

// running returns the nodes whose process runs (not killed).
func (c *Cluster) running() []*PrivateRedis {
	var rs []*PrivateRedis
	for _, r := range c.nodes {
		if r.cmd != nil {
			rs = append(rs, r)
		}
	}
	return rs
}

// node returns the node at addr, and fails t if the cluster has none.
func (c *Cluster) node(t testing.TB, addr string) *PrivateRedis {
	t.Helper()
	for _, r := range c.nodes {
		if r.Addr == addr {
			return r
		}
	}
	t.Fatalf("testenv: the cluster has no node at %s", addr)
	return nil
}

// client returns the cluster's client of the node at addr: one connection attempt per command,
// with short timeouts, so that a poll of a killed node fails at once.
func (c *Cluster) client(addr string) *redis.Client {
	rdb := c.admin[addr]
	if rdb == nil {
		rdb = redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second,
			ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, PoolSize: 2,
			Username: c.access.User, Password: c.access.Password, TLSConfig: c.access.clientTLS()})
		c.admin[addr] = rdb
	}
	return rdb
}
