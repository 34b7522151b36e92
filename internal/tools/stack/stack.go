// Package stack starts the servers that the benchmark (internal/tools/bench) and the
// reliability suite (internal/tools/reliability) run the worker against, each as a child
// process on loopback with a directory of its own: NATS (one node or a three-node JetStream
// cluster), the ATODENE sandbox, Redis (the machine's, under a key prefix of the stack's own, or
// a private redis-server), and the workers. It stops them all again. What each tool does with a
// stack (the benchmark's measures, the suite's faults and checks) stays in the tool.
//
// A run builds the programs once (Build), keeps them in a Host with the group that owns every
// child process, and starts one Stack per scenario (Host.Start):
//
//	bins, err := stack.Build(ctx, filepath.Join(dir, "bin"))
//	host := &stack.Host{Bins: bins, Dir: dir, Prefix: "bench:1a2b3c:", RedisURL: redisURL, Client: "atodene-bench"}
//	defer host.Procs.StopAll()
//	s, err := host.Start(ctx, "throughput", stack.Options{})
//	defer s.Close()
//	shops, err := s.WriteShops(stack.Shop{ID: "bench", ...})
//	_, err = s.StartWorkers(ctx, 2, stack.WorkerOptions{Shops: shops, Env: passwords})
package stack

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/redisadmin"
	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// Binaries are the paths of the programs a run starts, built once from the working tree.
type Binaries struct {
	Worker, Sandbox, NATS, Publisher string
}

// Build compiles the worker, the sandbox, nats-server (from the module's nats-server/v2
// dependency) and the operators' publisher into dir. It must run inside the module (go run
// ./cmd/...). An error names the build that failed; cancelling ctx stops the build.
func Build(ctx context.Context, dir string) (Binaries, error) {
	module, err := childproc.ModuleRoot(ctx)
	if err != nil {
		return Binaries{}, err
	}
	var b Binaries
	for _, t := range []struct {
		out       *string
		name, pkg string
	}{
		{&b.NATS, "nats-server", "github.com/nats-io/nats-server/v2"},
		{&b.Worker, "worker", "./cmd/worker"},
		{&b.Sandbox, "atodene-sandbox", "./cmd/atodene-sandbox"},
		{&b.Publisher, "publisher", "./cmd/publisher"},
	} {
		if *t.out, err = childproc.Build(ctx, module, dir, t.name, t.pkg); err != nil {
			return b, err
		}
	}
	return b, nil
}

// Host is what the stacks of one run share. Use it by pointer: it owns the process group.
type Host struct {
	// Bins are the programs (Build).
	Bins Binaries
	// Dir holds one directory per stack, Dir/<name>: its logs, stores and configuration files.
	Dir string
	// Prefix is the run's Redis key prefix; a stack's keys go under Prefix + name + ":".
	Prefix string
	// RedisURL is the machine's Redis, which other users may share, e.g. redis://127.0.0.1:6379.
	RedisURL string
	// Client names the tool's NATS connections (nats.Name), e.g. atodene-bench.
	Client string
	// Procs owns every child process of the run, so that all of them are stopped however the run
	// ends: the caller calls Procs.StopAll when the run is over.
	Procs childproc.Group
}

// StackDir is the directory of the stack called name: logs are there whether or not it started.
func (h *Host) StackDir(name string) string { return filepath.Join(h.Dir, name) }

// Options configure a stack. The zero value is one NATS node, the shared Redis and a sandbox
// that accepts the demo shop.
type Options struct {
	// Nodes is the number of NATS nodes: 1 (default), or 3 for a cluster with JetStream on every
	// node.
	Nodes int
	// MaxPayload is the nodes' max_payload, in bytes. Default: the server's, 1 MiB.
	MaxPayload int
	// MaxFileStore limits each node's JetStream file store (max_file_store, a size such as
	// "256MiB"). Default: no limit.
	MaxFileStore string
	// Pprof serves each node's pprof endpoint on a free port (Node.PprofAddr).
	Pprof bool
	// PrivateRedis starts a redis-server of the stack's own (Stack.RedisServer), which a scenario
	// may stop, roll back or flush, instead of using the Host's Redis.
	PrivateRedis bool
	// RedisSentinel, with PrivateRedis, gives the private Redis a replica and three sentinels
	// (Stack.Sentinels), and the workers a redis-sentinel:// URL of the group.
	RedisSentinel bool
	// RedisCluster starts a Redis Cluster of the stack's own (Stack.Cluster), three masters with
	// a replica each, and gives the workers a redis-cluster:// URL of it, instead of the Host's
	// Redis. It excludes PrivateRedis.
	RedisCluster bool
	// Sandbox configures the sandbox.
	Sandbox SandboxOptions
	// StopGrace is how long Close and StopWorkers give a worker after SIGTERM before they kill it.
	// Default 40 s: longer than the worker's default -shutdown-grace (30 s).
	StopGrace time.Duration
}

func (o Options) withDefaults() Options {
	o.Nodes = max(o.Nodes, 1)
	if o.StopGrace <= 0 {
		o.StopGrace = 40 * time.Second
	}
	return o
}

// Stack is one scenario's servers. Start and StartWorkers set its fields; the caller reads them
// and does not change them.
type Stack struct {
	Name   string
	Dir    string // Host.StackDir(Name)
	Prefix string // the Redis key prefix of the stack's workers: Host.Prefix + Name + ":"
	Nodes  []*Node
	// NC is the tool's own connection to every node; it reconnects after a node restarts.
	NC *nats.Conn
	JS jetstream.JetStream
	// Sandbox is the sandbox's process, SandboxURL its base URL (http://host:port).
	Sandbox    *childproc.Proc
	SandboxURL string
	// RedisURL is the workers' Redis: the Host's, or RedisServer's.
	RedisURL string
	// RedisServer is the private redis-server with Options.PrivateRedis, else nil.
	RedisServer *RedisServer
	// Sentinels are its replica and sentinels with Options.RedisSentinel, else nil.
	Sentinels *Sentinels
	// Cluster is the private Redis Cluster with Options.RedisCluster, else nil.
	Cluster *Cluster
	// Workers are the workers started so far, in order (StopWorkers forgets them).
	Workers []*Worker

	host    *Host
	opts    Options
	onClose []func()
	rdbMu   sync.Mutex
	rdb     redis.UniversalClient // RedisClient's
}

// Start makes the stack's directory and starts, in this order, NATS (waiting until JetStream
// answers), the private Redis (with Options.PrivateRedis, RedisSentinel or RedisCluster) and the
// sandbox; workers come later,
// with StartWorkers. On error it stops what it started and returns the error; cancelling ctx
// ends the waits with ctx's error. The caller closes a stack that started.
func (h *Host) Start(ctx context.Context, name string, o Options) (*Stack, error) {
	o = o.withDefaults()
	if o.RedisCluster && (o.PrivateRedis || o.RedisSentinel) {
		return nil, errors.New("stack: Options.RedisCluster excludes PrivateRedis and RedisSentinel")
	}
	s := &Stack{Name: name, Dir: h.StackDir(name), Prefix: h.Prefix + name + ":", RedisURL: h.RedisURL, host: h, opts: o}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, err
	}
	err := s.startNATS(ctx)
	for try := 1; err != nil && ctx.Err() == nil && try < 3; try++ {
		// A port can be taken between FreePorts and a node's bind by a stack starting beside this
		// one (the node exits, and a cluster never elects its meta leader): again, on new ports.
		dirs := make([]string, 0, len(s.Nodes))
		for _, n := range s.Nodes {
			dirs = append(dirs, n.Dir)
		}
		s.stopNATS()
		for _, d := range dirs {
			_ = os.RemoveAll(d) // a fresh store: nothing of the cluster that did not form
		}
		err = s.startNATS(ctx)
	}
	if err == nil && o.PrivateRedis {
		err = s.startRedisServer(ctx)
	}
	if err == nil && o.RedisSentinel {
		err = s.startSentinels(ctx)
	}
	if err == nil && o.RedisCluster {
		err = s.startCluster(ctx)
	}
	if err == nil {
		err = s.startSandbox(ctx)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// stopNATS closes the tool's client and stops the NATS nodes, forgetting them.
func (s *Stack) stopNATS() {
	if s.NC != nil {
		s.NC.Close()
		s.NC = nil
	}
	for _, n := range s.Nodes {
		if n.proc != nil {
			_ = n.proc.Stop(10 * time.Second)
		}
	}
	s.Nodes = nil
}

// OnClose registers f to run when the stack closes, once its workers have stopped and before
// its servers stop: for what a scenario started beside the servers (a proxy, say).
func (s *Stack) OnClose(f func()) { s.onClose = append(s.onClose, f) }

// Close stops the workers (SIGTERM, then SIGKILL after Options.StopGrace), runs the OnClose
// functions, stops the sandbox, NATS and the private Redis or Redis Cluster, and deletes the
// stack's keys from the shared Redis. Errors are dropped: Close is the last word on a scenario, whatever happened.
func (s *Stack) Close() {
	for _, w := range s.Workers {
		_, _ = w.Stop(s.opts.StopGrace)
	}
	for _, f := range s.onClose {
		f()
	}
	if s.Sandbox != nil {
		_ = s.Sandbox.Stop(10 * time.Second)
	}
	s.stopNATS()
	if s.Sentinels != nil {
		s.Sentinels.Replica.Stop()
	}
	switch {
	case s.Cluster != nil:
		s.Cluster.stop()
	case s.RedisServer != nil:
		s.RedisServer.Stop()
	default:
		rdb, err := s.RedisClient()
		if err != nil {
			break
		}
		// A stack's keys go with it; the shared Redis itself is never flushed.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_ = redisadmin.DeleteKeys(ctx, rdb, s.Prefix)
		cancel()
	}
	if s.rdb != nil {
		_ = s.rdb.Close()
	}
}
