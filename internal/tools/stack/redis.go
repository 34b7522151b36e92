package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/redisconn"
	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// RedisClient returns the tool's client of the workers' Redis (RedisURL), made on first use and
// closed by Close. It reconnects by itself after a restart of RedisServer. An error is a bad URL.
func (s *Stack) RedisClient() (redis.UniversalClient, error) {
	s.rdbMu.Lock()
	defer s.rdbMu.Unlock()
	if s.rdb == nil {
		rdb, err := redisconn.Open("RedisURL", s.RedisURL, transport.RedisFiles{})
		if err != nil {
			return nil, err
		}
		s.rdb = rdb
	}
	return s.rdb, nil
}

// RedisServer is a redis-server of a stack's own (Options.PrivateRedis), with append-only
// persistence so that a restart keeps the data, as a production Redis does.
type RedisServer struct {
	Addr string // host:port
	Dir  string // its data directory

	args []string // more redis-server arguments (--replicaof of a replica)
	host *Host
	proc *childproc.Proc
}

// startRedisServer starts the stack's private Redis on a free port and points RedisURL at it.
func (s *Stack) startRedisServer(ctx context.Context) error {
	port, err := childproc.FreePort()
	if err != nil {
		return err
	}
	rs := &RedisServer{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: filepath.Join(s.Dir, "redis"), host: s.host}
	if err := os.MkdirAll(rs.Dir, 0o755); err != nil {
		return err
	}
	s.RedisServer, s.RedisURL = rs, "redis://"+rs.Addr
	return rs.Start(ctx)
}

// Proc is the server's current process.
func (rs *RedisServer) Proc() *childproc.Proc { return rs.proc }

// Start starts the (stopped or killed) server with its append-only file, and waits up to 15 s
// until it answers PING. An error carries the end of its log.
func (rs *RedisServer) Start(ctx context.Context) error { return rs.startWith(ctx, "yes") }

// startWith starts the server with appendonly yes (it loads its append-only file) or no (it loads
// its snapshot, dump.rdb).
func (rs *RedisServer) startWith(ctx context.Context, appendonly string) error {
	_, port, _ := strings.Cut(rs.Addr, ":")
	args := append([]string{"--bind", "127.0.0.1", "--port", port, "--dir", rs.Dir, "--appendonly", appendonly, "--save", ""}, rs.args...)
	p, err := rs.host.Procs.Start("redis-server", "redis-server", filepath.Join(rs.Dir, "..", filepath.Base(rs.Dir)+".log"), nil, args...)
	if err != nil {
		return err
	}
	rs.proc = p
	rdb := rs.client()
	defer rdb.Close()
	deadline := time.Now().Add(15 * time.Second)
	for rdb.Ping(ctx).Err() != nil {
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer%s", rs.Addr, childproc.LogTail(p.Log(), 5))
		}
		if err := childproc.Sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func (rs *RedisServer) client() *redis.Client { return redis.NewClient(&redis.Options{Addr: rs.Addr}) }

// Snapshot writes the data set as it is now (SAVE) and keeps a copy of the file, whose path it
// returns: what a replica or a backup behind the primary holds.
func (rs *RedisServer) Snapshot(ctx context.Context) (string, error) {
	rdb := rs.client()
	defer rdb.Close()
	if err := rdb.Save(ctx).Err(); err != nil {
		return "", fmt.Errorf("redis SAVE: %w", err)
	}
	raw, err := os.ReadFile(filepath.Join(rs.Dir, "dump.rdb"))
	if err != nil {
		return "", err
	}
	snap := filepath.Join(rs.Dir, "..", "redis-snapshot.rdb")
	return snap, os.WriteFile(snap, raw, 0o600)
}

// Restore starts the (stopped) server again from a Snapshot alone: the append-only file, which
// holds every later write, is removed first. The server loads the snapshot, then turns
// append-only persistence on again.
func (rs *RedisServer) Restore(ctx context.Context, snap string) error {
	raw, err := os.ReadFile(snap)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(rs.Dir); err != nil {
		return err
	}
	if err := os.MkdirAll(rs.Dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rs.Dir, "dump.rdb"), raw, 0o600); err != nil {
		return err
	}
	if err := rs.startWith(ctx, "no"); err != nil {
		return err
	}
	rdb := rs.client()
	defer rdb.Close()
	return rdb.ConfigSet(ctx, "appendonly", "yes").Err()
}

// Flush deletes every key (FLUSHALL): the whole state lost. It refuses port 6379, the machine's
// shared Redis.
func (rs *RedisServer) Flush(ctx context.Context) error {
	if strings.HasSuffix(rs.Addr, ":6379") {
		return fmt.Errorf("refusing to flush %s: the machine's shared Redis", rs.Addr)
	}
	rdb := rs.client()
	defer rdb.Close()
	return rdb.FlushAll(ctx).Err()
}

// UsedMemory is the server's used_memory (INFO memory), in bytes.
func (rs *RedisServer) UsedMemory(ctx context.Context) (int64, error) {
	rdb := rs.client()
	defer rdb.Close()
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("redis INFO memory has no used_memory")
}

// Kill stops the server as an outage does (SIGKILL). The append-only file keeps every write the
// server acknowledged: the data is in the OS's page cache, which a killed process leaves.
func (rs *RedisServer) Kill() { rs.proc.Kill() }

// Stop stops the server (SIGTERM; SIGKILL after 10 s).
func (rs *RedisServer) Stop() {
	if rs.proc != nil {
		_ = rs.proc.Stop(10 * time.Second)
	}
}
