package stack

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// sentinelMaster is the name the sentinels know the private master by.
const sentinelMaster = "atodene"

// Sentinels is the group of Options.RedisSentinel: RedisServer is its master at start, Replica
// its replica, and three sentinels watch them, taking the master for down after 1 s without an
// answer (quorum 2).
type Sentinels struct {
	Replica *RedisServer
	Addrs   []string // host:port of each sentinel
}

// startSentinels starts a replica of the private Redis and three sentinels, waits until the
// replica is in sync and the sentinels answer, and points RedisURL at the group.
func (s *Stack) startSentinels(ctx context.Context) error {
	port, err := childproc.FreePort()
	if err != nil {
		return err
	}
	host, masterPort, _ := net.SplitHostPort(s.RedisServer.Addr)
	replica := &RedisServer{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: filepath.Join(s.Dir, "redis-replica"), host: s.host,
		args: []string{"--replicaof", host, masterPort}}
	if err := os.MkdirAll(replica.Dir, 0o755); err != nil {
		return err
	}
	if err := replica.Start(ctx); err != nil {
		return err
	}
	s.Sentinels = &Sentinels{Replica: replica}
	if err := waitReplicas(ctx, s.RedisServer, 1); err != nil {
		return err
	}
	for i := range 3 {
		addr, err := s.startSentinel(ctx, i, host, masterPort)
		if err != nil {
			return err
		}
		s.Sentinels.Addrs = append(s.Sentinels.Addrs, addr)
	}
	s.RedisURL = "redis-sentinel://" + s.Sentinels.Addrs[0] + "/0?master_name=" + sentinelMaster +
		"&addr=" + strings.Join(s.Sentinels.Addrs[1:], "&addr=")
	return nil
}

func (s *Stack) startSentinel(ctx context.Context, i int, masterHost, masterPort string) (string, error) {
	port, err := childproc.FreePort()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(s.Dir, fmt.Sprintf("sentinel-%d", i+1))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "sentinel.conf") // the sentinel rewrites it with what it learns
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 2\n", port, dir, sentinelMaster, masterHost, masterPort) +
		fmt.Sprintf("sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\n", sentinelMaster, sentinelMaster)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return "", err
	}
	p, err := s.host.Procs.Start("redis-sentinel", "redis-server", dir+".log", nil, conf, "--sentinel")
	if err != nil {
		return "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
	defer sc.Close()
	deadline := time.Now().Add(15 * time.Second)
	for sc.Ping(ctx).Err() != nil {
		if p.Exited() || time.Now().After(deadline) {
			return "", fmt.Errorf("redis sentinel on %s did not answer%s", addr, childproc.LogTail(p.Log(), 5))
		}
		if err := childproc.Sleep(ctx, 20*time.Millisecond); err != nil {
			return "", err
		}
	}
	return addr, nil
}

// Master asks the sentinels which address the master has now.
func (g *Sentinels) Master(ctx context.Context) (string, error) {
	var last error
	for _, a := range g.Addrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a})
		addr, err := sc.GetMasterAddrByName(ctx, sentinelMaster).Result()
		sc.Close()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel names master %s: %v", sentinelMaster, last)
}

// waitReplicas waits up to 30 s until rs has n replicas online.
func waitReplicas(ctx context.Context, rs *RedisServer, n int) error {
	rdb := rs.client()
	defer rdb.Close()
	want := fmt.Sprintf("connected_slaves:%d", n)
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := rdb.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, want) && strings.Contains(info, "state=online") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s has not %d replica(s) online after 30s: %v", rs.Addr, n, err)
		}
		if err := childproc.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// WaitReplicas waits up to 30 s until the server at addr, one of the group's, has n replicas online.
func (g *Sentinels) WaitReplicas(ctx context.Context, addr string, n int) error {
	return waitReplicas(ctx, &RedisServer{Addr: addr}, n)
}
