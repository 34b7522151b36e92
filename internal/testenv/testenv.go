// Package testenv starts the real servers the tests run against: the machine's Redis (isolated
// per test by a key prefix), private redis-server processes that a test may kill, and in-process
// NATS JetStream servers from the nats-server module.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/redisadmin"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// SharedRedisAddr is the machine's Redis, shared with other users: never flush it. The
// ATODENE_TEST_REDIS environment variable names another address.
const SharedRedisAddr = "127.0.0.1:6379"

func sharedRedisAddr() string {
	if a := os.Getenv("ATODENE_TEST_REDIS"); a != "" {
		return a
	}
	return SharedRedisAddr
}

// RedisURL is the URL of the shared test Redis: ATODENE_TEST_REDIS_URL when set (e.g. a
// redis-cluster:// URL, to run the tests on a Redis Cluster: make test-cluster), else
// redis:// and the address of RedisAddr.
func RedisURL() string {
	if u := os.Getenv("ATODENE_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://" + sharedRedisAddr()
}

// OnCluster says whether the shared test Redis is a Redis Cluster (ATODENE_TEST_REDIS_URL).
func OnCluster() bool { return strings.HasPrefix(RedisURL(), "redis-cluster://") }

// Redis returns a client of the shared test Redis (RedisURL) and a key prefix unique to the
// test; the test's keys are deleted when it ends. Where no Redis answers there, it fails the test
// with a message saying how to start one.
func Redis(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	var rdb redis.UniversalClient
	if rest, ok := strings.CutPrefix(RedisURL(), "redis-cluster://"); ok {
		opts, err := redis.ParseClusterURL("redis://" + rest)
		if err != nil {
			t.Fatalf("testenv: ATODENE_TEST_REDIS_URL: %v", err)
		}
		opts.ClusterStateReloadInterval = time.Second
		rdb = redis.NewClusterClient(opts)
	} else {
		rdb = redis.NewClient(&redis.Options{Addr: sharedRedisAddr()})
	}
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("testenv: Redis at %s is not reachable: %v (start one: redis-server --daemonize yes --port 6379 --save '', or set ATODENE_TEST_REDIS or ATODENE_TEST_REDIS_URL)", RedisURL(), err)
	}
	prefix := "test:" + randomID() + ":"
	t.Cleanup(func() {
		_ = redisadmin.DeleteKeys(context.Background(), rdb, prefix)
		rdb.Close()
	})
	return rdb, prefix
}

// RedisAddr is the address of the shared test Redis.
func RedisAddr() string { return sharedRedisAddr() }

// PrivateRedis is a redis-server process of the test's own, which the test may stop and start.
type PrivateRedis struct {
	Addr string
	// User and Password authenticate the test's own clients (Start's PING), for a server whose
	// arguments make an ACL user and turn the default user off.
	User, Password string
	// TLS, when set, is the TLS configuration of the test's own clients, for a server whose
	// arguments make it speak TLS only (PKI.RedisArgs).
	TLS  *tls.Config
	dir  string
	args []string // more redis-server arguments
	cmd  *exec.Cmd
	t    testing.TB
}

// StartPrivateRedis starts a redis-server on a free port, with append-only persistence in a
// temporary directory so that a restart keeps the data. It is stopped when the test ends.
func StartPrivateRedis(t testing.TB) *PrivateRedis {
	t.Helper()
	return StartPrivateRedisWith(t)
}

// StartPrivateRedisWith is StartPrivateRedis with more redis-server arguments (e.g. "--replicaof",
// host, port).
func StartPrivateRedisWith(t testing.TB, args ...string) *PrivateRedis {
	t.Helper()
	return startPrivateRedis(t, Access{}, args)
}

// Access is how clients reach a test's private Redis servers: an ACL user with a password in
// place of the default user (turned off) when User is set, and TLS only, with the PKI's
// certificates on both sides (PKI.RedisArgs), when PKI is set. The zero Access is plain TCP as
// the default user.
type Access struct {
	User, Password string
	PKI            *PKI
}

// serverArgs returns the redis-server arguments of a server on port reached with a.
func (a Access) serverArgs(port string) []string {
	var args []string
	if a.User != "" {
		args = []string{"--user", "default", "off", "--user", a.User, "on", ">" + a.Password, "~*", "&*", "+@all",
			"--masteruser", a.User, "--masterauth", a.Password}
	}
	if a.PKI != nil {
		args = append(args, a.PKI.RedisArgs(port)...)
	}
	return args
}

// cliArgs returns redis-cli's arguments to connect with a.
func (a Access) cliArgs() []string {
	var args []string
	if a.User != "" {
		args = append(args, "--user", a.User, "--pass", a.Password, "--no-auth-warning")
	}
	if a.PKI != nil {
		args = append(args, "--tls", "--cacert", a.PKI.CAFile, "--cert", a.PKI.ClientCertFile, "--key", a.PKI.ClientKeyFile)
	}
	return args
}

// clientTLS returns the TLS configuration of a's clients, or nil.
func (a Access) clientTLS() *tls.Config {
	if a.PKI == nil {
		return nil
	}
	return a.PKI.ClientTLS()
}

func startPrivateRedis(t testing.TB, a Access, args []string) *PrivateRedis {
	t.Helper()
	r := newPrivateRedis(t, a)
	r.args = append(args, r.args...)
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// newPrivateRedis returns a PrivateRedis reached with a on a free port with a temporary directory
// of its own, not started: the caller adds its arguments, starts it and stops it at cleanup.
func newPrivateRedis(t testing.TB, a Access) *PrivateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("testenv: redis-server is not installed: %v", err)
	}
	port := FreePort(t)
	return &PrivateRedis{Addr: fmt.Sprintf("127.0.0.1:%d", port), User: a.User, Password: a.Password, TLS: a.clientTLS(),
		args: a.serverArgs(strconv.Itoa(port)), dir: t.TempDir(), t: t}
}

// Start (re)starts the server on its address and waits until it answers.
func (r *PrivateRedis) Start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	args := append([]string{"--bind", "127.0.0.1", "--port", port, "--dir", r.dir,
		"--appendonly", "yes", "--save", "", "--logfile", filepath.Join(r.dir, "redis.log")}, r.args...)
	r.cmd = exec.Command("redis-server", args...)
	// A group of its own: Stop kills the children it forks too (an AOF rewrite, a replica's
	// transfer), which would otherwise go on writing in the test's directory after it is removed.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("testenv: starting redis-server: %v", err)
	}
	rdb := redis.NewClient(r.options())
	defer rdb.Close()
	if !wait.Until(10*time.Second, func() bool { return rdb.Ping(context.Background()).Err() == nil }) {
		r.t.Fatalf("testenv: redis-server on %s did not answer in 10s", r.Addr)
	}
}

// options returns the options of a client of the server: its address, user and TLS.
func (r *PrivateRedis) options() *redis.Options {
	return &redis.Options{Addr: r.Addr, Username: r.User, Password: r.Password, TLSConfig: r.TLS}
}

// Pause freezes the server where it is (SIGSTOP), as a hung host: connections stay open and
// nothing answers. Resume lets it go on.
func (r *PrivateRedis) Pause() { r.signal(syscall.SIGSTOP) }

// Resume undoes Pause (SIGCONT).
func (r *PrivateRedis) Resume() { r.signal(syscall.SIGCONT) }

func (r *PrivateRedis) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("testenv: signalling redis-server on %s: %v", r.Addr, err)
	}
}

// Stop kills the server and the children it forked (SIGKILL, like an outage) and waits for it to
// exit.
func (r *PrivateRedis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	_ = r.cmd.Wait()
	r.cmd = nil
}

// NATS is an in-process NATS server with JetStream.
type NATS struct {
	Server *natsserver.Server
	URL    string
	opts   *natsserver.Options
	t      testing.TB
}

// StartNATS starts an in-process NATS server with JetStream on a free port, storing under a
// temporary directory. It is shut down when the test ends.
func StartNATS(t testing.TB) *NATS { t.Helper(); return StartNATSStore(t, 0) }

// JetStream starts a NATS server of the test's own (StartNATS) and returns its URL and a JetStream
// client connected to it, closed when the test ends.
func JetStream(t testing.TB) (string, jetstream.JetStream) {
	t.Helper()
	srv := StartNATS(t)
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, js
}

// StartNATSStore is StartNATS with a JetStream file store of maxStore bytes (0: the server's
// default, three quarters of the free disk).
func StartNATSStore(t testing.TB, maxStore int64) *NATS {
	t.Helper()
	return startNATS(t, maxStore, "")
}

// StartNATSToken is StartNATS with a server that requires the token: clients connect to
// nats://<token>@host:port.
func StartNATSToken(t testing.TB, token string) *NATS {
	t.Helper()
	return startNATS(t, 0, token)
}

func startNATS(t testing.TB, maxStore int64, token string) *NATS {
	t.Helper()
	return StartNATSWith(t, func(o *natsserver.Options) { o.Authorization, o.JetStreamMaxStore = token, maxStore })
}

// StartNATSWith is StartNATS with the server's options changed by configure before it starts:
// TLS (see StartNATSTLS), users, authorization. Its URL is tls:// when the options set a TLS
// configuration.
func StartNATSWith(t testing.TB, configure func(*natsserver.Options)) *NATS {
	t.Helper()
	opts := &natsserver.Options{
		Host:      "127.0.0.1",
		Port:      FreePort(t),
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoSigs:    true,
		NoLog:     true,
	}
	configure(opts)
	n := &NATS{opts: opts, t: t}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// Start (re)starts the server with the same port and storage.
func (n *NATS) Start() {
	n.t.Helper()
	s, err := natsserver.NewServer(n.opts)
	if err != nil {
		n.t.Fatalf("testenv: NATS server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		n.t.Fatalf("testenv: NATS server not ready in 10s")
	}
	n.Server, n.URL = s, s.ClientURL()
}

// Wipe stops the server, deletes its store (every stream and consumer, as a lost disk does) and
// starts it again, empty, on the same port.
func (n *NATS) Wipe() {
	n.t.Helper()
	n.Stop()
	if err := os.RemoveAll(n.opts.StoreDir); err != nil {
		n.t.Fatalf("testenv: deleting the NATS store: %v", err)
	}
	n.Start()
}

// Stop shuts the server down and waits for it.
func (n *NATS) Stop() {
	if n.Server != nil {
		n.Server.Shutdown()
		n.Server.WaitForShutdown()
		n.Server = nil
	}
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + strconv.Itoa(os.Getpid())
}
