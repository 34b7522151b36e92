package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// SentinelGroup is a Redis master, its replica and three sentinels watching them, all processes of
// the test's own on loopback ports, stopped when the test ends.
type SentinelGroup struct {
	Master, Replica *PrivateRedis
	Sentinels       []string // host:port of each sentinel
	Name            string   // the master's name at the sentinels

	access       Access   // how the servers and the sentinels are reached
	sentinelDirs []string // each sentinel's directory, holding its sentinel.log
}

// StartSentinelGroup starts a SentinelGroup whose sentinels take the master for down after
// 1 s without an answer and agree on it with a quorum of 2.
func StartSentinelGroup(t testing.TB) *SentinelGroup {
	t.Helper()
	return StartSentinelGroupWith(t, Access{})
}

// StartSentinelGroupWith is StartSentinelGroup with the master, the replica and the sentinels
// reached with a: the sentinels speak TLS too when a does, and authenticate to the master and the
// replica as a's user (they themselves have no user).
func StartSentinelGroupWith(t testing.TB, a Access) *SentinelGroup {
	t.Helper()
	g := &SentinelGroup{Name: "atodene", access: a}
	g.Master, g.Replica = startReplicated(t, a)
	host, port, _ := net.SplitHostPort(g.Master.Addr)
	for range 3 {
		g.Sentinels = append(g.Sentinels, g.startSentinel(t, host, port))
	}
	return g
}

// URL is the group's redis-sentinel:// URL (rediss-sentinel:// with TLS), without a's user.
func (g *SentinelGroup) URL() string {
	u := "redis-sentinel://" + g.Sentinels[0] + "/0?master_name=" + g.Name
	if g.access.PKI != nil {
		u = "rediss" + strings.TrimPrefix(u, "redis")
	}
	for _, s := range g.Sentinels[1:] {
		u += "&addr=" + s
	}
	return u
}

// StartReplicated starts a private Redis master and a replica of it, and waits until the replica
// is in sync.
func StartReplicated(t testing.TB) (master, replica *PrivateRedis) {
	t.Helper()
	return startReplicated(t, Access{})
}

func startReplicated(t testing.TB, a Access) (master, replica *PrivateRedis) {
	t.Helper()
	// The master sends a replica its data at once, not after 5 s of waiting for others to share it.
	master = startPrivateRedis(t, a, []string{"--repl-diskless-sync-delay", "0"})
	host, port, _ := net.SplitHostPort(master.Addr)
	replica = startPrivateRedis(t, a, []string{"--replicaof", host, port})
	defer func() {
		if t.Failed() {
			t.Logf("testenv: the replica's log:\n%s\nthe master's log:\n%s", replica.logTail(), master.logTail())
		}
	}()
	waitReplicas(t, master, 1)
	return master, replica
}

// logTail returns the last lines of the server's log.
func (r *PrivateRedis) logTail() string {
	raw, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// WaitReplicasOnline waits until the master at addr has n replicas online.
func WaitReplicasOnline(t testing.TB, addr string, n int) {
	t.Helper()
	waitReplicas(t, &PrivateRedis{Addr: addr}, n)
}

// waitReplicas waits until the master r has n replicas online.
func waitReplicas(t testing.TB, r *PrivateRedis, n int) {
	t.Helper()
	addr := r.Addr
	rdb := redis.NewClient(r.options())
	defer rdb.Close()
	want := fmt.Sprintf("connected_slaves:%d", n)
	if !wait.Until(20*time.Second, func() bool {
		info, err := rdb.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, want) && strings.Contains(info, "state=online")
	}) {
		t.Fatalf("testenv: the master on %s has not %d replica(s) online after 20s", addr, n)
	}
}

// WaitPromoted waits until every sentinel names the replica as the master and none has a
// failover in progress. A sentinel answers the promoted replica's address while it is still
// reconfiguring the others; an old master started again before the failover ended can be taken
// back as the master by a sentinel that has not learned of it yet.
func (g *SentinelGroup) WaitPromoted(t testing.TB) {
	t.Helper()
	var last string
	if !wait.Until(30*time.Second, func() bool {
		for _, s := range g.Sentinels {
			sc := g.sentinelClient(s)
			m, err := sc.Master(context.Background(), g.Name).Result()
			sc.Close()
			if err != nil {
				last = fmt.Sprintf("%s: %v", s, err)
				return false
			}
			if addr := net.JoinHostPort(m["ip"], m["port"]); addr != g.Replica.Addr || m["flags"] != "master" {
				last = fmt.Sprintf("%s names %s, flags %s", s, addr, m["flags"])
				return false
			}
		}
		return true
	}) {
		t.Fatalf("testenv: the sentinels did not finish promoting %s in 30s (%s)\n%s", g.Replica.Addr, last, g.logs())
	}
}

// RestartOldMaster starts the master stopped by a failover again and waits until the sentinels
// have made it a replica of the promoted one, in sync.
func (g *SentinelGroup) RestartOldMaster(t testing.TB) {
	t.Helper()
	g.Master.Start()
	rdb := redis.NewClient(g.Replica.options())
	defer rdb.Close()
	if !wait.Until(40*time.Second, func() bool {
		info, err := rdb.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	}) {
		t.Fatalf("testenv: the old master %s is not an online replica of %s after 40s\n%s", g.Master.Addr, g.Replica.Addr, g.logs())
	}
}

// logs returns the last lines of the logs of the group's servers and sentinels.
func (g *SentinelGroup) logs() string {
	text := fmt.Sprintf("old master %s:\n%s\nreplica %s:\n%s", g.Master.Addr, g.Master.logTail(), g.Replica.Addr, g.Replica.logTail())
	for i, s := range g.Sentinels {
		raw, _ := os.ReadFile(filepath.Join(g.sentinelDirs[i], "sentinel.log"))
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		text += fmt.Sprintf("\nsentinel %s:\n%s", s, strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
	return text
}

// MasterAddr asks the first sentinel that answers which address the master has now.
func (g *SentinelGroup) MasterAddr(ctx context.Context) (string, error) {
	var last error
	for _, s := range g.Sentinels {
		sc := g.sentinelClient(s)
		addr, err := sc.GetMasterAddrByName(ctx, g.Name).Result()
		sc.Close()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("testenv: no sentinel names the master %s: %v", g.Name, last)
}

// sentinelClient returns a client of the sentinel at addr.
func (g *SentinelGroup) sentinelClient(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, TLSConfig: g.access.clientTLS()})
}

func (g *SentinelGroup) startSentinel(t testing.TB, masterHost, masterPort string) string {
	t.Helper()
	dir := t.TempDir()
	g.sentinelDirs = append(g.sentinelDirs, dir)
	port := strconv.Itoa(FreePort(t))
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %s\nbind 127.0.0.1\ndir %s\nlogfile %s\nsentinel monitor %s %s %s 2\n"+
		"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
		port, dir, filepath.Join(dir, "sentinel.log"), g.Name, masterHost, masterPort, g.Name, g.Name, g.Name)
	if a := g.access; a.User != "" {
		text += fmt.Sprintf("sentinel auth-user %s %s\nsentinel auth-pass %s %s\n", g.Name, a.User, g.Name, a.Password)
	}
	if a := g.access; a.PKI != nil {
		args := a.PKI.RedisArgs(port) // --name value pairs: a line each
		for k := 0; k < len(args); k += 2 {
			text += strings.TrimPrefix(args[k], "--") + " " + args[k+1] + "\n"
		}
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: starting a sentinel: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", port)
	sc := g.sentinelClient(addr)
	defer sc.Close()
	if !wait.Until(10*time.Second, func() bool { return sc.Ping(context.Background()).Err() == nil }) {
		t.Fatalf("testenv: the sentinel on %s did not answer in 10s", addr)
	}
	return addr
}
