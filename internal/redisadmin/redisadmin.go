// Package redisadmin makes a Redis Cluster of redis-server processes that are already running
// and reads what its nodes report of it: which master serves which slots, and whether every
// node agrees that the cluster is whole. It also deletes the keys under a prefix, on one server
// or on every master of a cluster (DeleteKeys). The tests' clusters (internal/testenv) and the
// tools' (internal/tools/stack) start and stop their processes each in their own way and share
// this; it imports nothing of testing.
package redisadmin

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// NodeTimeout is the cluster-node-timeout of the nodes NodeArgs configures: a master that does
// not answer for that long is taken for failed, and its replica promoted about a second later.
const NodeTimeout = time.Second

// NodeArgs returns the redis-server arguments that make a node of a cluster: cluster mode, its
// cluster bus on busPort (given, as the default, the port plus 10000, may be taken or past
// 65535), its cluster configuration file (which the node writes) at configFile, and
// NodeTimeout. A master sends a replica its data at once, not after 5 s of waiting for other
// replicas to share the transfer with.
func NodeArgs(busPort int, configFile string) []string {
	return []string{"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(busPort),
		"--cluster-config-file", configFile, "--cluster-node-timeout", strconv.FormatInt(NodeTimeout.Milliseconds(), 10),
		"--repl-diskless-sync-delay", "0"}
}

// Create makes the nodes at addrs (host:port, each started with NodeArgs and empty) a cluster
// of len(addrs)/2 masters with a replica each, every slot covered (redis-cli --cluster create
// --cluster-replicas 1); cliArgs are redis-cli's connection arguments (--tls, --user...), if any.
// It does not wait for the cluster to be whole: Health says when it is.
// An error is a missing redis-cli or its failure, with its output; cancelling ctx kills it.
func Create(ctx context.Context, addrs []string, cliArgs ...string) error {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return fmt.Errorf("redis-cli is not installed (it comes with redis-server; on Debian in redis-tools), and a Redis Cluster is made with it: %w", err)
	}
	args := slices.Concat(cliArgs, []string{"--cluster", "create"}, addrs, []string{"--cluster-replicas", "1", "--cluster-yes"})
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	return nil
}

// URL is the redis-cluster:// URL (internal/redisconn) naming the nodes at addrs, at least one.
func URL(addrs []string) string {
	u := "redis-cluster://" + addrs[0]
	if len(addrs) > 1 {
		u += "?addr=" + strings.Join(addrs[1:], "&addr=")
	}
	return u
}

// Slots are the ranges of slots of a cluster with their master, ordered by first slot.
type Slots []SlotRange

// SlotRange is the slots Start to End (inclusive) and their master's host:port.
type SlotRange struct {
	Start, End int
	Master     string
}

// MasterOf returns the master of slot, or "" if no range holds it.
func (s Slots) MasterOf(slot int) string {
	for _, r := range s {
		if r.Start <= slot && slot <= r.End {
			return r.Master
		}
	}
	return ""
}

// Masters returns the masters of s, each once, in the order of their first slot.
func (s Slots) Masters() []string {
	var m []string
	for _, r := range s {
		if !slices.Contains(m, r.Master) {
			m = append(m, r.Master)
		}
	}
	return m
}

// Of returns the ranges of master.
func (s Slots) Of(master string) Slots {
	var out Slots
	for _, r := range s {
		if r.Master == master {
			out = append(out, r)
		}
	}
	return out
}

// ReadSlots returns the slots as the node sees them (CLUSTER SHARDS). An error is Redis's, or a
// node that knows no slots or a range without a master.
func ReadSlots(ctx context.Context, node *redis.Client) (Slots, error) {
	shards, err := node.ClusterShards(ctx).Result()
	if err != nil {
		return nil, err
	}
	var slots Slots
	for _, sh := range shards {
		if len(sh.Slots) == 0 {
			continue // a shard of replicas only, or a node without slots
		}
		i := slices.IndexFunc(sh.Nodes, func(n redis.Node) bool { return n.Role == "master" && n.Health == "online" })
		for _, r := range sh.Slots {
			if i < 0 {
				return nil, fmt.Errorf("slots %d-%d have no master online", r.Start, r.End)
			}
			slots = append(slots, SlotRange{int(r.Start), int(r.End), nodeAddr(sh.Nodes[i])})
		}
	}
	slices.SortFunc(slots, func(a, b SlotRange) int { return a.Start - b.Start })
	if len(slots) == 0 {
		return nil, fmt.Errorf("%s has no slots assigned", node.Options().Addr)
	}
	return slots, nil
}

// nodeAddr is the host:port a node serves on: its TLS port when it has no plain one.
func nodeAddr(n redis.Node) string {
	port := n.Port
	if port == 0 {
		port = n.TLSPort
	}
	return net.JoinHostPort(n.IP, strconv.FormatInt(port, 10))
}

// KeySlot returns the slot of key (CLUSTER KEYSLOT), as the node computes it.
func KeySlot(ctx context.Context, node *redis.Client, key string) (int, error) {
	slot, err := node.ClusterKeySlot(ctx, key).Result()
	return int(slot), err
}

// Health returns the slots as every node of nodes (the running ones, by host:port) sees them, or
// why the cluster is not whole: a node does not answer, does not report cluster_state:ok, or
// sees other masters than another node; with replicas, also a master that is not among nodes
// or has no replica online. Its clients should fail at once when their node is down (no retries,
// short timeouts), so that a poll does not hang on a killed node.
func Health(ctx context.Context, nodes map[string]*redis.Client, replicas bool) (Slots, string) {
	var agreed Slots
	for _, addr := range slices.Sorted(maps.Keys(nodes)) {
		info, err := nodes[addr].ClusterInfo(ctx).Result()
		if err != nil {
			return nil, fmt.Sprintf("CLUSTER INFO on %s: %v", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return nil, addr + " does not report cluster_state:ok"
		}
		slots, err := ReadSlots(ctx, nodes[addr])
		switch {
		case err != nil:
			return nil, fmt.Sprintf("CLUSTER SLOTS on %s: %v", addr, err)
		case agreed == nil:
			agreed = slots
		case !slices.Equal(slots, agreed):
			return nil, fmt.Sprintf("%s sees the masters %v, another node %v", addr, slots.Masters(), agreed.Masters())
		}
	}
	if agreed == nil {
		return nil, "no node is running"
	}
	if !replicas {
		return agreed, ""
	}
	for _, m := range agreed.Masters() {
		node := nodes[m]
		if node == nil {
			return nil, "the master " + m + " is not running"
		}
		info, err := node.Info(ctx, "replication").Result()
		if err != nil {
			return nil, fmt.Sprintf("INFO replication on %s: %v", m, err)
		}
		if !strings.Contains(info, "state=online") {
			return nil, "the master " + m + " has no replica online"
		}
	}
	return agreed, ""
}
