package bench

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/childproc"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// Names the worker uses, which the bench reads (docs/architecture.md#streams-subjects-and-consumers).
const (
	ordersStream   = "ORDERS"
	resultsStream  = "RESULTS"
	dlqStream      = "DLQ"
	pollStream     = "ATODENE_POLLS"
	ordersConsumer = "atodene-worker"
	// benchShop is the shop every benchmark order belongs to; ghostShop is missing from the
	// shops file until the replay scenario adds it.
	benchShop = "bench"
	ghostShop = "ghost"
	// passwordEnv carries the sandbox's demo password to the workers: the shops file refers to it.
	passwordEnv = "BENCH_ATODENE_PASSWORD"
)

// stack is one scenario's servers: a fresh NATS server with its own store, a fresh sandbox, and
// the workers (or the baseline) under test, all with a Redis key prefix of the scenario's own.
type stack struct {
	r         *runner
	name      string
	dir       string
	prefix    string
	nats      *proc
	natsURL   string
	natsPprof string // host:port of the NATS server's pprof endpoint, when profiling
	nc        *nats.Conn
	js        jetstream.JetStream
	sandbox   *proc
	sbURL     string // http://host:port
	workers   []*worker
}

// worker is one worker (or baseline) process and its metrics address.
type worker struct {
	*proc
	httpAddr  string // host:port of /metrics and /readyz
	pprofAddr string // host:port of /debug/pprof of a profiled worker, else empty
}

// sandboxOpts configures the sandbox of a stack.
type sandboxOpts struct {
	reviewDelay time.Duration
	latency     time.Duration
}

// newStack starts NATS and the sandbox for the scenario name.
func (r *runner) newStack(ctx context.Context, name string, sb sandboxOpts) (*stack, error) {
	s := &stack{r: r, name: name, dir: filepath.Join(r.dir, name), prefix: r.prefix + name + ":"}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.startNATS(ctx); err != nil {
		s.close()
		return nil, err
	}
	if err := s.startSandbox(ctx, sb); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *stack) startNATS(ctx context.Context) error {
	port, err := childproc.FreePort()
	if err != nil {
		return err
	}
	args := []string{"-js", "-sd", filepath.Join(s.dir, "jetstream"), "-a", "127.0.0.1", "-p", strconv.Itoa(port)}
	if s.r.opts.ProfileDir != "" {
		pp, err := childproc.FreePort()
		if err != nil {
			return err
		}
		s.natsPprof = fmt.Sprintf("127.0.0.1:%d", pp)
		args = append(args, "--profile", strconv.Itoa(pp))
	}
	if s.nats, err = s.r.procs.Start("nats-server", s.r.bins.nats, filepath.Join(s.dir, "nats.log"), nil, args...); err != nil {
		return err
	}
	s.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		nc, err := nats.Connect(s.natsURL, nats.Name("atodene-bench"))
		if err == nil {
			s.nc = nc
			break
		}
		if time.Now().After(deadline) || s.nats.Exited() {
			return fmt.Errorf("NATS server did not accept connections: %v (log: %s)", err, s.nats.Log())
		}
		if err := childproc.Sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	s.js, err = jetstream.New(s.nc)
	return err
}

func (s *stack) startSandbox(ctx context.Context, o sandboxOpts) error {
	port, err := childproc.FreePort()
	if err != nil {
		return err
	}
	review := o.reviewDelay
	if review <= 0 {
		review = 2 * time.Second
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s.sandbox, err = s.r.procs.Start("atodene-sandbox", s.r.bins.sandbox, filepath.Join(s.dir, "sandbox.log"), nil,
		"-addr", addr, "-review-delay", review.String(), "-hold-delay", review.String(), "-seed", "1")
	if err != nil {
		return err
	}
	s.sbURL = "http://" + addr
	if err := childproc.WaitHTTP(ctx, s.sbURL+"/sandbox/stats", 15*time.Second, s.sandbox); err != nil {
		return err
	}
	return s.setFaults(ctx, sandbox.Faults{LatencyMS: int(o.latency / time.Millisecond)})
}

// setFaults sets the sandbox's fault injection.
func (s *stack) setFaults(ctx context.Context, f sandbox.Faults) error {
	return sandbox.PutFaults(ctx, s.sbURL, f)
}

// createStreams creates ORDERS and RESULTS as the worker does (docs/architecture.md), so that
// orders can be published before any worker runs; the worker's own start-up then finds them
// as it would have made them.
func (s *stack) createStreams(ctx context.Context) error {
	for _, sc := range []jetstream.StreamConfig{
		{Name: ordersStream, Subjects: []string{"orders.>"}, Retention: jetstream.LimitsPolicy,
			MaxAge: 7 * 24 * time.Hour, Duplicates: 2 * time.Minute, Storage: jetstream.FileStorage},
		{Name: resultsStream, Subjects: []string{"credit.>", "shipment.>", "invoice.>"}, Retention: jetstream.LimitsPolicy,
			MaxAge: 30 * 24 * time.Hour, Duplicates: 2 * time.Minute, Storage: jetstream.FileStorage},
	} {
		if _, err := s.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("creating stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// workerOpts are the settings of the workers of a scenario.
type workerOpts struct {
	concurrency int
	pollFirst   time.Duration
	pollMax     time.Duration
	ghostShop   bool // the shops file also has the ghost shop
	extra       []string
}

// writeShops writes the shops file: the sandbox's demo merchant, its password by reference to an
// environment variable, and the common default fee table. With the ghost shop, the two share the
// demo account, so each sends its order numbers behind a prefix of its own.
func (s *stack) writeShops(ghost bool) (string, error) {
	var b strings.Builder
	b.WriteString("shops:\n")
	shops := map[string]string{benchShop: ""}
	if ghost {
		shops = map[string]string{benchShop: "B-", ghostShop: "G-"}
	}
	for _, id := range slices.Sorted(maps.Keys(shops)) {
		fmt.Fprintf(&b, `  - id: %s
    atodene:
      base_url: %s/api/
      shop_code: %s
      link_id: %s
      link_password: ${%s}
      order_id_prefix: "%s"
    fees:
      mode: add
      table:
        - {min: 1, max: 999999, fee: 205}
`, id, s.sbURL, sandbox.DemoShop.ShopCode, sandbox.DemoShop.LinkID, passwordEnv, shops[id])
	}
	path := filepath.Join(s.dir, fmt.Sprintf("shops-%d.yaml", len(shops)))
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

// startWorkers starts n worker processes and waits until each is ready.
func (s *stack) startWorkers(ctx context.Context, n int, o workerOpts) error {
	shops, err := s.writeShops(o.ghostShop)
	if err != nil {
		return err
	}
	for range n {
		port, err := childproc.FreePort()
		if err != nil {
			return err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		args := []string{"-config", shops, "-nats-url", s.natsURL, "-redis-url", s.r.opts.RedisURL,
			"-redis-prefix", s.prefix, "-http-addr", addr, "-log-level", s.r.opts.WorkerLogLevel,
			"-poll-first-delay", durOr(o.pollFirst, 2*time.Second).String(),
			"-poll-max-interval", durOr(o.pollMax, 2*time.Second).String()}
		if o.concurrency > 0 {
			args = append(args, "-concurrency", strconv.Itoa(o.concurrency))
		}
		args = append(args, o.extra...)
		bin := s.r.bins.worker
		name := fmt.Sprintf("worker-%d", len(s.workers)+1)
		pprofAddr := ""
		if s.r.opts.ProfileDir != "" {
			pp, err := childproc.FreePort()
			if err != nil {
				return err
			}
			pprofAddr = fmt.Sprintf("127.0.0.1:%d", pp)
			bin, args = s.r.bins.self, append([]string{"profiled-worker", "-pprof-addr", pprofAddr}, args...)
		}
		env := append([]string{passwordEnv + "=" + sandbox.DemoShop.LinkPassword}, s.r.opts.WorkerEnv...)
		p, err := s.r.procs.Start(name, bin, filepath.Join(s.dir, name+".log"), env, args...)
		if err != nil {
			return err
		}
		s.workers = append(s.workers, &worker{proc: p, httpAddr: addr, pprofAddr: pprofAddr})
	}
	for _, w := range s.workers {
		if err := childproc.WaitHTTP(ctx, "http://"+w.httpAddr+"/readyz", 30*time.Second, w.proc); err != nil {
			return err
		}
	}
	return nil
}

// startBaseline starts the bare-bones baseline program (bench baseline-worker) and waits until
// it consumes.
func (s *stack) startBaseline(ctx context.Context, concurrency int) error {
	port, err := childproc.FreePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := s.r.procs.Start("baseline", s.r.bins.self, filepath.Join(s.dir, "baseline.log"), nil,
		"baseline-worker", "-nats-url", s.natsURL, "-redis-url", s.r.opts.RedisURL, "-redis-prefix", s.prefix,
		"-sandbox-url", s.sbURL, "-concurrency", strconv.Itoa(concurrency), "-http-addr", addr)
	if err != nil {
		return err
	}
	s.workers = append(s.workers, &worker{proc: p, httpAddr: addr})
	return childproc.WaitHTTP(ctx, "http://"+addr+"/readyz", 30*time.Second, p)
}

// stopWorkers stops the workers (SIGTERM, as in production) and forgets them.
func (s *stack) stopWorkers() error {
	var first error
	for _, w := range s.workers {
		if err := w.Stop(40 * time.Second); err != nil && first == nil {
			first = err
		}
	}
	s.workers = nil
	return first
}

// close stops everything of the stack and deletes its Redis keys.
func (s *stack) close() {
	_ = s.stopWorkers()
	if s.nc != nil {
		s.nc.Close()
	}
	if s.sandbox != nil {
		_ = s.sandbox.Stop(10 * time.Second)
	}
	if s.nats != nil {
		_ = s.nats.Stop(10 * time.Second)
	}
	s.r.deleteKeys(s.prefix)
}

// consumerInfo returns the worker's ORDERS consumer's state.
func (s *stack) consumerInfo(ctx context.Context, stream, name string) (*jetstream.ConsumerInfo, error) {
	c, err := s.js.Consumer(ctx, stream, name)
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

func durOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// preloaded starts a stack and publishes n ordinary orders (IDs prefixed by prefix) before any
// worker runs, so that a run measures how fast a backlog drains. The caller stops the collector
// and closes the stack.
func (r *runner) preloaded(ctx context.Context, dir string, sb sandboxOpts, prefix string, n int) (*stack, *collector, error) {
	s, err := r.newStack(ctx, dir, sb)
	if err != nil {
		return nil, nil, err
	}
	col, err := func() (*collector, error) {
		if err := s.createStreams(ctx); err != nil {
			return nil, err
		}
		col, err := s.collect(ctx, false)
		if err != nil {
			return nil, err
		}
		pub, err := newPublisher(s.nc)
		if err == nil {
			_, err = pub.publish(ctx, orderSpec{shop: benchShop, prefix: prefix, n: n, email: emailOK}, 0)
		}
		if err != nil {
			col.stop()
			return nil, err
		}
		return col, nil
	}()
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return s, col, nil
}
