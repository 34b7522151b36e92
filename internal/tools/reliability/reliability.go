// Package reliability is the reliability suite (docs/reliability.md): it runs the real worker,
// sandbox and nats-server binaries and Redis on loopback ports, drives a workload of orders
// through their whole life while it injects a fault (worker kills, a NATS restart, the loss of a
// cluster's stream leader, a Redis outage, a Redis master failed over by Sentinel or lost from a
// Redis Cluster, provider faults, duplicates, bad input; a full JetStream store, a stream
// recreated, the NATS store or Redis's recent writes or all of them lost, a merchant's password
// changed, a hot order, a shutdown with Redis frozen, huge identifiers, an importer's late retry,
// re-authorizations under worker kills), and checks the promises of docs/architecture.md#promises
// on what the scenario left behind, and that no outcome contradicts ATODENE's own state.
package reliability

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
	"github.com/atodene-worker/atodene-worker/internal/tools/stack"
)

// Options configures Run.
type Options struct {
	// Quick runs every scenario at a reduced size, for CI.
	Quick bool
	// Scenarios names the scenarios to run; empty runs all of them.
	Scenarios []string
	// Orders is the number of orders per scenario; 0 takes the scenario's size (full or quick).
	Orders int
	// Seed makes the workload and the fault schedule; 0 takes one from the clock.
	Seed uint64
	// RedisURL is the Redis the worker uses (except in the scenarios that start a private
	// redis-server). Keys live under a prefix of the run's own and are deleted afterwards.
	// Default redis://127.0.0.1:6379.
	RedisURL string
	// Dir holds the binaries, the servers' data and every log. Default: a new temporary
	// directory, removed at the end unless Keep is set or a scenario failed.
	Dir  string
	Keep bool
	// Parallel is how many scenarios run at once. Default 1.
	Parallel int
	// Progress gets a line now and then while a scenario runs. Default: nothing.
	Progress io.Writer
}

// Result is one scenario's row of the table.
type Result struct {
	Scenario string
	Orders   int
	// Faults says what was injected.
	Faults   string
	Verdict  Verdict
	Duration time.Duration
	// Err is set when the scenario could not run to the end; its verdict is then incomplete.
	Err error
	// Dir holds the scenario's logs and data.
	Dir string
}

// Pass reports whether the scenario ran and every invariant held.
func (r Result) Pass() bool { return r.Err == nil && r.Verdict.Pass() }

// ScenarioNames lists the scenarios in the order they run.
func ScenarioNames() []string {
	var out []string
	for _, s := range scenarios() {
		out = append(out, s.name)
	}
	return out
}

type runner struct {
	opts Options
	// host holds the programs, the run's directory, its Redis key prefix (reliability:<id>:) and
	// every child process; each scenario starts a stack on it.
	host stack.Host
}

// Run builds the binaries, runs the chosen scenarios and returns one result per scenario. An
// error means the suite itself could not run (a build failed, a name is unknown); a broken
// invariant is a failed Result, not an error. Cancelling ctx stops the scenarios running, kills
// every process the suite started and returns what is done.
func Run(ctx context.Context, opts Options) ([]Result, error) {
	if opts.RedisURL == "" {
		opts.RedisURL = "redis://127.0.0.1:6379"
	}
	if opts.Parallel < 1 {
		opts.Parallel = 1
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano())
	}
	var chosen []scenario
	for _, s := range scenarios() {
		if len(opts.Scenarios) == 0 || slices.Contains(opts.Scenarios, s.name) {
			chosen = append(chosen, s)
		}
	}
	for _, name := range opts.Scenarios {
		if !slices.Contains(ScenarioNames(), name) {
			return nil, fmt.Errorf("unknown scenario %q (scenarios: %s)", name, strings.Join(ScenarioNames(), ", "))
		}
	}
	r := &runner{opts: opts}
	r.host.Prefix, r.host.RedisURL, r.host.Client = "reliability:"+randomHex(4)+":", opts.RedisURL, "atodene-reliability"
	removeDir := false
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "atodene-reliability-")
		if err != nil {
			return nil, err
		}
		r.host.Dir, removeDir = dir, !opts.Keep
	} else {
		r.host.Dir = opts.Dir
		if err := os.MkdirAll(r.host.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	defer r.host.Procs.StopAll()
	if err := r.checkRedis(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(opts.Progress, "building the worker, the sandbox and nats-server into %s\n", filepath.Join(r.host.Dir, "bin"))
	var err error
	if r.host.Bins, err = stack.Build(ctx, filepath.Join(r.host.Dir, "bin")); err != nil {
		return nil, err
	}
	// Scenarios start in the table's order, Parallel at a time.
	results := make([]Result, len(chosen))
	next := make(chan int, len(chosen))
	for i := range chosen {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(opts.Parallel, len(chosen)) {
		wg.Go(func() {
			for i := range next {
				if err := ctx.Err(); err != nil {
					results[i] = Result{Scenario: chosen[i].name, Err: err}
					continue
				}
				results[i] = r.runScenario(ctx, chosen[i])
			}
		})
	}
	wg.Wait()
	failed := false
	for _, res := range results {
		failed = failed || !res.Pass()
	}
	if removeDir && !failed {
		_ = os.RemoveAll(r.host.Dir)
	}
	return results, nil
}

func (r *runner) checkRedis(ctx context.Context) error {
	ropts, err := redis.ParseURL(r.opts.RedisURL)
	if err != nil {
		return fmt.Errorf("redis URL: %w", err)
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("the Redis at %s does not answer: %w", ropts.Addr, err)
	}
	return nil
}

// orders is the scenario's size.
func (r *runner) orders(sc scenario) int {
	switch {
	case r.opts.Orders > 0:
		return r.opts.Orders
	case r.opts.Quick:
		return sc.quick
	}
	return sc.full
}

// limits are how long a scenario's workload may run, and how long the worker then has to go quiet.
// At quick size they are about one and a half times what the slowest healthy scenarios take
// (worker-kill and redis-frozen-shutdown run their workload in about 70 s, as they wait out the
// leases a stopped worker held, and every worker goes quiet within seconds of its workload), so
// that a scenario that leaves work undone fails within about 3 minutes instead of holding up CI.
func (r *runner) limits() (workload, quiet time.Duration) {
	if r.opts.Quick {
		return 100 * time.Second, 90 * time.Second
	}
	return 15 * time.Minute, 5 * time.Minute
}

// run is one scenario while it runs.
type run struct {
	r     *runner
	sc    scenario
	s     *stack.Stack // set by setup
	d     *driver
	total int
	seed  uint64
	// secrets are the merchants' link passwords (rel-a's, rel-b's), which no log may contain;
	// password-rotated changes the first (under mu).
	secrets []string
	// baseURLA, when set, is the ATODENE base URL of shop rel-a instead of the sandbox's.
	baseURLA string
	// shops is the worker's shops file.
	shops string
	// note is what inject says it did, for describe (written before inject returns).
	note string
	// findings and notes are what the scenario measured (see Observed).
	mu       sync.Mutex
	findings []Finding
	notes    []string
	// before holds RESULTS and DLQ as they were before a scenario wiped the NATS store.
	before *streamsRead
	// rotation changes a merchant's password at the sandbox (password-rotated).
	rotation *rotation
	// lateOrders are the orders of late-retry.
	lateOrders []*lateOrder
	// reauth watches the sandbox's transactions in reauthorization.
	reauth *reauthWatch
}

// streamsRead is RESULTS and DLQ read in full.
type streamsRead struct {
	outs []Outcome
	dead []DeadLetter
}

// find records a violation the scenario found by its own measure.
func (x *run) find(kind, format string, args ...any) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.findings = append(x.findings, Finding{Kind: kind, Text: fmt.Sprintf(format, args...)})
}

// notef records an observation of the scenario that breaks nothing.
func (x *run) notef(format string, args ...any) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.notes = append(x.notes, fmt.Sprintf(format, args...))
}

// waitStarted waits until a share of the scenario's orders has started.
func (x *run) waitStarted(ctx context.Context, share float64) error {
	for float64(x.d.started.Load()) < share*float64(x.total) {
		if err := childproc.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) runScenario(ctx context.Context, sc scenario) (res Result) {
	start := time.Now()
	res = Result{Scenario: sc.name, Orders: r.orders(sc)}
	defer func() { res.Duration = time.Since(start) }()
	progress := func(format string, args ...any) {
		fmt.Fprintf(r.opts.Progress, "[%s %5.1fs] %s\n", sc.name, time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	res.Dir = r.host.StackDir(sc.name)
	x := &run{r: r, sc: sc, total: res.Orders, seed: r.opts.Seed ^ hashString(sc.name)}
	defer func() {
		if x.s != nil {
			x.s.Close()
		}
	}()
	if res.Err = x.setup(ctx); res.Err != nil {
		return res
	}
	progress("servers and worker ready; %d orders", res.Orders)

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	crashes := x.monitor(runCtx)
	if err := x.d.watch(runCtx); err != nil {
		res.Err = err
		return res
	}
	injected := make(chan error, 1)
	go func() {
		var err error
		if sc.inject != nil {
			err = sc.inject(runCtx, x)
		}
		injected <- err
	}()
	workLimit, _ := r.limits()
	wctx, cancelWork := context.WithTimeout(runCtx, workLimit)
	defer cancelWork()
	workErr := x.workload(wctx, progress)
	if err := <-injected; err != nil && res.Err == nil {
		res.Err = fmt.Errorf("injecting faults: %w", err)
	}
	if workErr != nil && res.Err == nil && !errors.Is(workErr, context.DeadlineExceeded) {
		res.Err = fmt.Errorf("workload: %w", workErr)
	}
	progress("workload done (%d orders, %d messages); waiting for the worker to go quiet", x.d.finished.Load(), x.d.published.Load())
	if err := x.quiesce(ctx); err != nil {
		progress("%v", err)
		if ctx.Err() == nil {
			x.find("not quiet", "%v", err)
		}
	}
	if sc.after != nil {
		if err := sc.after(ctx, x); err != nil && res.Err == nil {
			res.Err = err
		}
	}
	obs, err := x.observe(ctx)
	if err != nil && res.Err == nil {
		res.Err = fmt.Errorf("reading what the scenario left: %w", err)
	}
	obs.Crashes = int(crashes())
	res.Verdict = Check(obs)
	res.Faults = sc.describe(x)
	progress("done: %s", passText(res.Pass()))
	return res
}

func passText(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// setup starts the scenario's servers and its worker, and makes its driver.
func (x *run) setup(ctx context.Context) error {
	sc := x.sc
	if err := x.startStack(ctx); err != nil {
		return err
	}
	if sc.prepare != nil {
		if err := sc.prepare(ctx, x); err != nil {
			return err
		}
	}
	var err error
	if x.shops, err = x.writeShops(); err != nil {
		return err
	}
	if _, err := x.s.StartWorkers(ctx, 1, x.workerOptions()); err != nil {
		return err
	}
	tag := strings.ToUpper(randomHex(3))[:5]
	x.d = newDriver(x.s, newGenerator(x.seed, tag, newPIIIndex()), tag)
	x.d.dup = sc.dup
	for _, pw := range x.secrets {
		x.d.gen.pii.addLiteral(pw, "password")
	}
	if sc.before != nil {
		return sc.before(ctx, x)
	}
	return nil
}

// monitor restarts a worker that exits without being told to, and counts such crashes.
func (x *run) monitor(ctx context.Context) func() int64 {
	var mu sync.Mutex
	var crashes int64
	go func() {
		for ctx.Err() == nil {
			for _, w := range x.s.Workers {
				if w.Crashed() {
					mu.Lock()
					crashes++
					mu.Unlock()
					_ = x.restartWorker(ctx, w)
				}
			}
			_ = childproc.Sleep(ctx, 200*time.Millisecond)
		}
	}()
	return func() int64 { mu.Lock(); defer mu.Unlock(); return crashes }
}

// workload starts the scenario's orders at a steady rate and waits until every order's script
// has ended (or ctx ends).
func (x *run) workload(ctx context.Context, progress func(string, ...any)) error {
	plans := x.d.gen.plans(x.total)
	if x.sc.plans != nil {
		plans = x.sc.plans(x.d.gen, x.total)
	}
	rate := 25.0
	if !x.r.opts.Quick {
		rate = 60
	}
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	errs := make(chan error, len(plans)+1)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				progress("%d/%d orders started, %d finished, %d messages published", x.d.started.Load(), x.total, x.d.finished.Load(), x.d.published.Load())
			}
		}
	}()
	defer close(done)
	for i, p := range plans {
		if x.sc.corpus && i == len(plans)/3 {
			wg.Go(func() {
				if err := x.d.sendCorpus(ctx); err != nil {
					errs <- err
				}
			})
		}
		wg.Go(func() {
			if err := x.d.runOrder(ctx, p, i); err != nil && ctx.Err() == nil {
				errs <- err
			}
		})
		if err := childproc.Sleep(ctx, interval); err != nil {
			break
		}
	}
	wg.Wait()
	x.d.late.Wait()
	close(errs)
	if err := ctx.Err(); err != nil {
		return err
	}
	return <-errs
}

// quiesce waits until the worker has nothing left to do: no message pending or unacknowledged
// on its consumers, no order under review, and RESULTS and DLQ unchanged for 3 seconds.
func (x *run) quiesce(ctx context.Context) error {
	_, limit := x.r.limits()
	deadline := time.Now().Add(limit)
	rdb, err := x.s.RedisClient()
	if err != nil {
		return err
	}
	var last string
	stableSince := time.Now()
	for time.Now().Before(deadline) {
		state, busy := x.busy(ctx, rdb)
		if state != last {
			last, stableSince = state, time.Now()
		}
		if !busy && time.Since(stableSince) >= 3*time.Second {
			return nil
		}
		if err := childproc.Sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the worker did not go quiet within %s (%s)", limit, last)
}

// busy describes the worker's backlog; busy is false when it has none.
func (x *run) busy(ctx context.Context, rdb redis.UniversalClient) (string, bool) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var parts []string
	busy := false
	for _, c := range workerConsumers {
		cons, err := x.s.JS.Consumer(cctx, c.stream, c.name)
		if err != nil {
			return fmt.Sprintf("%s: %v", c.name, err), true
		}
		info, err := cons.Info(cctx)
		if err != nil {
			return fmt.Sprintf("%s: %v", c.name, err), true
		}
		parts = append(parts, fmt.Sprintf("%s pending %d unacked %d", c.name, info.NumPending, info.NumAckPending))
		busy = busy || info.NumPending > 0 || info.NumAckPending > 0
	}
	store := orderstate.New(rdb, x.s.Prefix, 0)
	n, err := store.PendingCount(cctx, shopA, shopB)
	store.Close()
	if err != nil {
		return "redis: " + err.Error(), true
	}
	parts = append(parts, fmt.Sprintf("under review %d", n))
	busy = busy || n > 0
	waiting, err := x.eventsWaiting(cctx, rdb)
	if err != nil {
		return "redis: " + err.Error(), true
	}
	parts = append(parts, fmt.Sprintf("orders with events waiting %d", waiting))
	busy = busy || waiting > 0
	kept, err := x.keptUnprocessed(cctx, rdb)
	if err != nil {
		return "ATODENE_KEPT: " + err.Error(), true
	}
	parts = append(parts, fmt.Sprintf("kept copies of events not processed %d", kept))
	busy = busy || kept > 0
	for _, stream := range []string{"RESULTS", "DLQ"} {
		st, err := x.s.JS.Stream(cctx, stream)
		if err != nil {
			return stream + ": " + err.Error(), true
		}
		info, err := st.Info(cctx)
		if err != nil {
			return stream + ": " + err.Error(), true
		}
		parts = append(parts, fmt.Sprintf("%s %d", stream, info.State.Msgs))
	}
	return strings.Join(parts, ", "), busy
}

// eventsWaiting counts the orders with parked events or an inbox not applied yet: they wait for
// their order, a deadline or a lease. Such orders are in their shop's timer index.
func (x *run) eventsWaiting(ctx context.Context, rdb redis.UniversalClient) (int, error) {
	store, n := orderstate.New(rdb, x.s.Prefix, 0), 0
	defer store.Close()
	var timers []orderstate.Timer
	for _, shop := range []string{shopA, shopB} {
		ts, err := store.OverdueTimers(ctx, shop, time.Now().AddDate(100, 0, 0), math.MaxInt32)
		if err != nil {
			return 0, err
		}
		timers = append(timers, ts...)
	}
	for _, t := range timers {
		shop, order := t.Shop, t.Order
		st, err := store.Get(ctx, shop, order)
		if err != nil {
			return 0, err
		}
		inbox, err := store.InboxLen(ctx, shop, order)
		if err != nil {
			return 0, err
		}
		if len(st.Parked) > 0 || inbox > 0 {
			n++
		}
	}
	return n, nil
}

// keptUnprocessed counts the copies in ATODENE_KEPT of events that Redis does not record as
// processed: queued in an inbox, or lost with Redis, which the reconciler publishes again. (Copies
// of events recorded wait for a reconciliation to drop them, which changes nothing.)
func (x *run) keptUnprocessed(ctx context.Context, rdb redis.UniversalClient) (int, error) {
	st, err := x.s.JS.Stream(ctx, "ATODENE_KEPT")
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("atodene.kept.>"))
	if err != nil {
		return 0, err
	}
	store := orderstate.New(rdb, x.s.Prefix, 0)
	defer store.Close()
	lost := 0
	for subject := range info.State.Subjects {
		// atodene.kept.<shop>.<order, base64url>.<event key>
		tokens := strings.Split(subject, ".")
		if len(tokens) != 5 {
			return 0, fmt.Errorf("ATODENE_KEPT holds a subject of an unknown form: %s", subject)
		}
		done, err := store.EventDone(ctx, tokens[2], tokens[4])
		if err != nil {
			return 0, err
		}
		if !done {
			lost++
		}
	}
	return lost, nil
}

// observe reads what the scenario left behind: the streams, the sandbox's transactions, the
// logs, and the worker's health.
func (x *run) observe(ctx context.Context) (Observed, error) {
	obs := Observed{Events: x.d.ledger(), Allowed: x.sc.allowed}
	obs.Healthy, obs.HealthDetail = x.s.Ready()
	var errs []error
	outs, dead, err := x.d.collect(ctx)
	errs = append(errs, err)
	obs.Outcomes, obs.DeadLetters = x.withBefore(outs, dead)
	obs.Handled, obs.HistoryFull, err = x.readHistories(ctx, obs.Events)
	errs = append(errs, err)
	x.mu.Lock()
	obs.Findings, obs.Notes = slices.Clone(x.findings), slices.Clone(x.notes)
	x.mu.Unlock()
	errs = append(errs, x.s.SandboxJSON(ctx, "/sandbox/transactions", &obs.Transactions))
	logs := []string{filepath.Join(x.s.Dir, "sandbox.log")}
	for _, w := range x.s.Workers {
		logs = append(logs, w.Log)
	}
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		hits, err := x.d.gen.pii.scan(filepath.Base(path), f)
		f.Close()
		obs.LogHits = append(obs.LogHits, hits...)
		errs = append(errs, err)
	}
	return obs, errors.Join(errs...)
}

// withBefore puts what RESULTS and DLQ held before a wipe ahead of what they hold now, numbering
// the new messages after the old ones, so that stream order stays the order of publication.
func (x *run) withBefore(outs []Outcome, dead []DeadLetter) ([]Outcome, []DeadLetter) {
	if x.before == nil {
		return outs, dead
	}
	var last uint64
	for _, o := range x.before.outs {
		last = max(last, o.Seq)
	}
	for i := range outs {
		outs[i].Seq += last
	}
	return append(slices.Clone(x.before.outs), outs...), append(slices.Clone(x.before.dead), dead...)
}

// NewSeed returns a seed for Options.Seed from the clock.
func NewSeed() uint64 { return uint64(time.Now().UnixNano()) >> 1 }
