package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/tools/stack"
)

// Names the worker uses, which the bench reads (docs/architecture.md#streams-subjects-and-consumers).
const (
	ordersStream   = "ORDERS"
	resultsStream  = "RESULTS"
	dlqStream      = "DLQ"
	pollStream     = "ATODENE_POLLS"
	ordersConsumer = "atodene-worker"
	pollConsumer   = "atodene-worker-polls"
	// benchShop is the shop every benchmark order belongs to; ghostShop is missing from the
	// shops file until the replay scenario adds it.
	benchShop = "bench"
	ghostShop = "ghost"
	// passwordEnv carries the sandbox's demo password to the workers: the shops file refers to it.
	passwordEnv = "BENCH_ATODENE_PASSWORD"
)

// benchStack is one scenario's servers (a fresh NATS server with its own store, a fresh sandbox,
// and the workers or the baseline under test, all with a Redis key prefix of the scenario's own)
// and the run that started them, whose settings the workers take.
type benchStack struct {
	*stack.Stack
	r *runner
}

// sandboxOpts configures the sandbox of a stack.
type sandboxOpts struct {
	reviewDelay time.Duration // default 2 s
	latency     time.Duration // added to every call
}

// servers says which NATS and Redis a stack runs on. The zero value is what every scenario but
// scaleout measures: one NATS node and the machine's shared Redis.
type servers struct {
	// natsNodes is 1 (default) or 3: a JetStream cluster, whose streams the bench and the workers
	// (with -stream-replicas 3 in workerOpts.flags) create with three replicas.
	natsNodes int
	// privateRedis is a redis-server of the stack's own (stack.Options.PrivateRedis), whose CPU is
	// the stack's alone; redisCluster a Redis Cluster of three masters with a replica each
	// (stack.Options.RedisCluster).
	privateRedis, redisCluster bool
}

// newStack starts NATS and the sandbox for the scenario name; with -profile, NATS serves pprof.
func (r *runner) newStack(ctx context.Context, name string, sb sandboxOpts) (*benchStack, error) {
	return r.newStackOn(ctx, name, sb, servers{})
}

// newStackOn is newStack on the given servers.
func (r *runner) newStackOn(ctx context.Context, name string, sb sandboxOpts, srv servers) (*benchStack, error) {
	s, err := r.host.Start(ctx, name, stack.Options{Pprof: r.opts.ProfileDir != "", Nodes: srv.natsNodes,
		PrivateRedis: srv.privateRedis, RedisCluster: srv.redisCluster,
		Sandbox: stack.SandboxOptions{ReviewDelay: sb.reviewDelay, Faults: sandbox.Faults{LatencyMS: int(sb.latency / time.Millisecond)}}})
	if err != nil {
		return nil, err
	}
	return &benchStack{Stack: s, r: r}, nil
}

// createStreams creates ORDERS and RESULTS as the worker does (docs/architecture.md), so that
// orders can be published before any worker runs; the worker's own start-up then finds them
// as it would have made them. On a cluster of three NATS nodes they have three replicas, as the
// workers' -stream-replicas 3 makes them.
func (s *benchStack) createStreams(ctx context.Context) error {
	replicas := min(len(s.Nodes), 3)
	for _, sc := range []jetstream.StreamConfig{
		{Name: ordersStream, Subjects: []string{"orders.>"}, Retention: jetstream.LimitsPolicy,
			MaxAge: 7 * 24 * time.Hour, Duplicates: 2 * time.Minute, Storage: jetstream.FileStorage},
		{Name: resultsStream, Subjects: []string{"credit.>", "shipment.>", "invoice.>"}, Retention: jetstream.LimitsPolicy,
			MaxAge: 30 * 24 * time.Hour, Duplicates: 2 * time.Minute, Storage: jetstream.FileStorage},
	} {
		sc.Replicas = replicas
		if _, err := s.JS.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("creating stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// workerOpts are the settings of the workers of a scenario.
type workerOpts struct {
	concurrency int
	pollFirst   time.Duration // default 2 s
	pollMax     time.Duration // default 2 s
	ghostShop   bool          // the shops file also has the ghost shop
	// shops, if set, are the shops of the shops file instead of benchShop (and ghostShop), all on
	// the sandbox's demo merchant.
	shops []string
	flags []string // further worker flags, e.g. -stream-replicas 3
	env   []string // further environment variables, e.g. OTEL_TRACES_EXPORTER=otlp
}

// writeShops writes the shops file: the sandbox's demo merchant, its password by reference to an
// environment variable, and the common default fee table. With the ghost shop, the two share the
// demo account, so each sends its order numbers behind a prefix of its own. With ids, the file
// holds those shops instead, on the demo account, each with a prefix of its own (S1-, S2-, ...).
func (s *benchStack) writeShops(ghost bool, ids ...string) (string, error) {
	shop := func(id, prefix string) stack.Shop {
		return stack.Shop{ID: id, ShopCode: sandbox.DemoShop.ShopCode, LinkID: sandbox.DemoShop.LinkID,
			PasswordEnv: passwordEnv, OrderIDPrefix: prefix, FeeMode: "add", Fee: 205}
	}
	if len(ids) > 0 {
		shops := make([]stack.Shop, len(ids))
		for i, id := range ids {
			shops[i] = shop(id, fmt.Sprintf("S%d-", i+1))
		}
		return s.WriteShops(shops...)
	}
	if ghost {
		return s.WriteShops(shop(benchShop, "B-"), shop(ghostShop, "G-"))
	}
	return s.WriteShops(shop(benchShop, ""))
}

// startWorkers starts n worker processes and waits until each is ready. With -profile they run
// as bench profiled-worker, which serves pprof.
func (s *benchStack) startWorkers(ctx context.Context, n int, o workerOpts) error {
	wo, err := s.workerOptions(o)
	if err != nil {
		return err
	}
	_, err = s.StartWorkers(ctx, n, wo)
	return err
}

// workerOptions writes the shops file of o and returns the stack's worker options.
func (s *benchStack) workerOptions(o workerOpts) (stack.WorkerOptions, error) {
	shops, err := s.writeShops(o.ghostShop, o.shops...)
	if err != nil {
		return stack.WorkerOptions{}, err
	}
	wo := stack.WorkerOptions{Shops: shops, LogLevel: s.r.opts.WorkerLogLevel, PollFirst: o.pollFirst, PollMax: o.pollMax,
		Concurrency: o.concurrency, Flags: o.flags, Env: append(append([]string{passwordEnv + "=" + sandbox.DemoShop.LinkPassword}, s.r.opts.WorkerEnv...), o.env...)}
	if s.r.opts.ProfileDir != "" {
		wo.Launcher, wo.Pprof = []string{s.r.self, "profiled-worker"}, true
	}
	return wo, nil
}

// startBaseline starts the bare-bones baseline program (bench baseline-worker) and waits until
// it consumes.
func (s *benchStack) startBaseline(ctx context.Context, concurrency int) error {
	_, err := s.StartStandIn(ctx, "baseline", s.r.self, "baseline-worker", "-nats-url", s.NATSURL(),
		"-redis-url", s.r.opts.RedisURL, "-redis-prefix", s.Prefix, "-sandbox-url", s.SandboxURL,
		"-concurrency", strconv.Itoa(concurrency))
	return err
}

// consumerInfo returns the state of a consumer of a stream.
func (s *benchStack) consumerInfo(ctx context.Context, stream, name string) (*jetstream.ConsumerInfo, error) {
	c, err := s.JS.Consumer(ctx, stream, name)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// countLines counts the lines of a log file that start with prefix.
func countLines(path, prefix string) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n := 0
	for line := range strings.Lines(string(raw)) {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}

// preloaded starts a stack and publishes n ordinary orders (IDs prefixed by prefix) before any
// worker runs, so that a run measures how fast a backlog drains. The caller stops the collector
// and closes the stack.
func (r *runner) preloaded(ctx context.Context, dir string, sb sandboxOpts, prefix string, n int) (*benchStack, *collector, error) {
	return r.preloadedOn(ctx, dir, sb, servers{}, orderSpec{shop: benchShop, prefix: prefix, n: n, email: emailOK}, nil)
}

// preloadedOn is preloaded on the given servers, with the orders of spec; prepare, if set, runs
// once ORDERS and RESULTS exist, before the orders are published.
func (r *runner) preloadedOn(ctx context.Context, dir string, sb sandboxOpts, srv servers, spec orderSpec,
	prepare func(context.Context, *benchStack) error) (*benchStack, *collector, error) {
	s, err := r.newStackOn(ctx, dir, sb, srv)
	if err != nil {
		return nil, nil, err
	}
	col, err := func() (*collector, error) {
		if err := s.createStreams(ctx); err != nil {
			return nil, err
		}
		if prepare != nil {
			if err := prepare(ctx, s); err != nil {
				return nil, err
			}
		}
		col, err := s.collect(ctx, false)
		if err != nil {
			return nil, err
		}
		pub, err := newPublisher(s.NC)
		if err == nil {
			_, err = pub.publish(ctx, spec, 0)
		}
		if err != nil {
			col.stop()
			return nil, err
		}
		return col, nil
	}()
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, col, nil
}
