package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ThroughputResult is one run of the throughput scenario.
type ThroughputResult struct {
	Name          string  `json:"name"`
	Processes     int     `json:"processes"`
	Orders        int     `json:"orders"`
	Seconds       float64 `json:"seconds"`
	OrdersPerSec  float64 `json:"orders_per_second"`
	VsBaseline    float64 `json:"ratio_to_baseline,omitempty"`
	DuplicateOuts int     `json:"duplicate_final_outcomes"`
	// CPUPerOrderMS is CPU milliseconds per order by part: worker (or baseline), nats, sandbox,
	// redis (shared: includes other users), bench (publisher of the orders and outcome reader).
	CPUPerOrderMS map[string]float64 `json:"cpu_ms_per_order"`
	// CPUPerOrderByProcessMS is the same by process: worker/worker-1, nats/n1, redis/<host:port>
	// (redis/shared for the shared server), sandbox/sandbox, bench/bench.
	CPUPerOrderByProcessMS map[string]float64 `json:"cpu_ms_per_order_by_process"`
	// OtherCores is the CPU other users of the machine took meanwhile, in cores.
	OtherCores float64 `json:"other_cores"`
}

// throughput measures orders per second from a backlog to final outcomes: the baseline, one
// worker process and two. The orders are published before the consumers start, so that the
// publisher's CPU does not compete; the rate is over the span from the first final outcome to
// the last, as stored by RESULTS.
func (r *runner) throughput(ctx context.Context) error {
	n := r.settings.ThroughputOrders
	fmt.Fprintf(r.out, "1. Throughput: %d orders (auto OK), sandbox at 0 ms, published before the consumers start\n", n)
	var results []ThroughputResult
	for _, run := range []struct {
		name     string
		workers  int
		baseline bool
	}{{"baseline", 1, true}, {"worker ×1", 1, false}, {"worker ×2", 2, false}} {
		res, err := r.throughputRun(ctx, run.name, run.workers, run.baseline, n)
		if err != nil {
			return fmt.Errorf("%s: %w", run.name, err)
		}
		results = append(results, res)
	}
	base := results[0].OrdersPerSec
	for i := range results[1:] {
		results[i+1].VsBaseline = Ratio(results[i+1].OrdersPerSec, base)
	}
	for _, res := range results {
		if !strings.HasPrefix(res.Name, "baseline") && res.Processes == 1 {
			r.workerRate = res.OrdersPerSec
		}
	}
	r.report.Throughput = results

	t := Table{Title: "Throughput (publish → final outcome)",
		Columns: []string{"run", "processes", "orders", "seconds", "orders/s", "vs baseline", "CPU ms/order: consumer", "nats", "redis", "sandbox", "bench", "total", "other load"}}
	for _, res := range results {
		c := res.CPUPerOrderMS
		t.Add(res.Name, res.Processes, thousands(int64(res.Orders)), num(res.Seconds), num(res.OrdersPerSec), ratio(res.VsBaseline),
			num(c["worker"]), num(c["nats"]), num(c["redis"]), num(c["sandbox"]), num(c["bench"]), num(c["total"]), num(res.OtherCores))
	}
	t.Notes = []string{
		"targets: ≥ 5,000 orders/s with one worker, and ≥ 0.80 of the baseline",
		fmt.Sprintf("CPU ms/order × orders/s = cores busy; this machine has %d", r.report.Machine.Cores),
		"other load: cores busy with processes outside the benchmark meanwhile (other users of this machine)",
	}
	for _, res := range results {
		if res.DuplicateOuts > 0 {
			t.Notes = append(t.Notes, fmt.Sprintf("%s: %d final outcomes published twice", res.Name, res.DuplicateOuts))
		}
	}
	return t.Render(r.out)
}

func (r *runner) throughputRun(ctx context.Context, name string, workers int, baseline bool, n int) (ThroughputResult, error) {
	return r.drain(ctx, drainSpec{name: name, dir: "throughput-" + strings.NewReplacer(" ", "", "×", "x").Replace(name),
		workers: workers, baseline: baseline, orders: orderSpec{shop: benchShop, prefix: "T", n: n, email: emailOK}})
}

// drainSpec is one drain of a backlog: the stack's servers, the consumers that drain it and the
// orders published before they start.
type drainSpec struct {
	name, dir string // the run's name and its stack's directory
	srv       servers
	workers   int
	baseline  bool // the baseline program instead of workers
	worker    workerOpts
	orders    orderSpec
	// setupFirst starts one worker before the orders are published and stops it again, so that
	// the streams and consumers exist when the measured workers start: on a loaded machine,
	// three workers creating R3 streams at once can time out (the JetStream API's 5 s).
	setupFirst bool
	// started, if set, runs once the stack has started and the orders are published, before the
	// consumers start: a check of the servers.
	started func(context.Context, *benchStack) error
	// after, if set, runs once every order has its outcome, before the stack closes: it may read
	// the workers' logs.
	after func(context.Context, *benchStack)
}

// drain publishes the orders of d, starts its consumers and measures the rate from the first
// final outcome stored in RESULTS to the last, and the CPU of each process meanwhile.
func (r *runner) drain(ctx context.Context, d drainSpec) (ThroughputResult, error) {
	n := d.orders.n
	res := ThroughputResult{Name: d.name, Processes: d.workers, Orders: n}
	wo := d.worker
	wo.concurrency = r.settings.Concurrency
	var prepare func(context.Context, *benchStack) error
	if d.setupFirst {
		prepare = func(ctx context.Context, s *benchStack) error {
			if err := s.startWorkers(ctx, 1, wo); err != nil {
				return fmt.Errorf("setting up the streams and consumers: %w", err)
			}
			return s.StopWorkers()
		}
	}
	s, col, err := r.preloadedOn(ctx, d.dir, sandboxOpts{}, d.srv, d.orders, prepare)
	if err != nil {
		return res, err
	}
	defer s.Close()
	defer col.stop()
	if d.started != nil {
		if err := d.started(ctx, s); err != nil {
			return res, err
		}
	}
	before, win := s.cpuByProcess(), s.window()
	if d.baseline {
		err = s.startBaseline(ctx, r.settings.Concurrency)
	} else {
		err = s.startWorkers(ctx, d.workers, wo)
	}
	if err != nil {
		return res, err
	}
	profDone := r.profileDuring(ctx, s, d.dir, r.profileSeconds(n))
	if err := col.wait(ctx, n, 30*time.Second); err != nil {
		return res, err
	}
	after := s.cpuByProcess()
	res.OtherCores = win.otherCores()
	<-profDone
	first, last, got := span(col.finalsOf(d.orders.prefix))
	res.Seconds = last.Sub(first).Seconds()
	res.OrdersPerSec = Rate(got-1, last.Sub(first))
	res.CPUPerOrderByProcessMS = perOrder(before, after, n)
	delete(res.CPUPerOrderByProcessMS, "total")
	res.CPUPerOrderMS = perOrder(byPart(before), byPart(after), n)
	if d.after != nil {
		d.after(ctx, s)
	}
	col.mu.Lock()
	res.DuplicateOuts = col.extra
	col.mu.Unlock()
	return res, nil
}

// profileSeconds is how long to profile a drain of n orders: most of it, judged by the rate of
// the baseline-free estimate of 2,000 orders/s, at least 2 s.
func (r *runner) profileSeconds(n int) int {
	rate := r.workerRate
	if rate == 0 {
		rate = 2000
	}
	return max(2, int(float64(n)/rate*0.7))
}

// profileDuring takes CPU profiles of the stack's first worker and of the NATS server, and the
// worker's allocations, for the next seconds, when profiling; the channel closes when they are
// stored.
func (r *runner) profileDuring(ctx context.Context, s *benchStack, name string, seconds int) <-chan struct{} {
	done := make(chan struct{})
	if r.opts.ProfileDir == "" {
		close(done)
		return done
	}
	var targets []struct{ url, file string }
	if len(s.Workers) > 0 && s.Workers[0].PprofAddr != "" {
		targets = append(targets, struct{ url, file string }{
			fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.Workers[0].PprofAddr, seconds),
			filepath.Join(r.opts.ProfileDir, name+"-worker.cpu.pprof")})
		// The allocations over the same seconds (a delta profile): what the collector's share of
		// the CPU comes from.
		targets = append(targets, struct{ url, file string }{
			fmt.Sprintf("http://%s/debug/pprof/allocs?seconds=%d", s.Workers[0].PprofAddr, seconds),
			filepath.Join(r.opts.ProfileDir, name+"-worker.allocs.pprof")})
	}
	if s.Nodes[0].PprofAddr != "" {
		targets = append(targets, struct{ url, file string }{
			fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.Nodes[0].PprofAddr, seconds),
			filepath.Join(r.opts.ProfileDir, name+"-nats.cpu.pprof")})
	}
	errs := make(chan string, len(targets))
	go func() {
		defer close(done)
		finished := make(chan struct{}, len(targets))
		for _, t := range targets {
			go func() {
				if err := fetchProfile(ctx, t.url, t.file, seconds); err != nil {
					errs <- err.Error()
				}
				finished <- struct{}{}
			}()
		}
		for range targets {
			<-finished
		}
		close(errs)
		var msgs []string
		for e := range errs {
			msgs = append(msgs, e)
		}
		sort.Strings(msgs)
		for _, m := range msgs {
			fmt.Fprintf(r.out, "profile: %s\n", m)
		}
	}()
	return done
}
