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
	res := ThroughputResult{Name: name, Processes: workers, Orders: n}
	dirName := "throughput-" + strings.NewReplacer(" ", "", "×", "x").Replace(name)
	s, col, err := r.preloaded(ctx, dirName, sandboxOpts{}, "T", n)
	if err != nil {
		return res, err
	}
	defer s.Close()
	defer col.stop()
	before, win := s.cpu(), s.window()
	if baseline {
		err = s.startBaseline(ctx, r.settings.Concurrency)
	} else {
		err = s.startWorkers(ctx, workers, workerOpts{concurrency: r.settings.Concurrency})
	}
	if err != nil {
		return res, err
	}
	profDone := r.profileDuring(ctx, s, dirName, r.profileSeconds(n))
	if err := col.wait(ctx, n, 30*time.Second); err != nil {
		return res, err
	}
	after := s.cpu()
	res.OtherCores = win.otherCores()
	<-profDone
	first, last, got := span(col.finalsOf("T"))
	res.Seconds = last.Sub(first).Seconds()
	res.OrdersPerSec = Rate(got-1, last.Sub(first))
	res.CPUPerOrderMS = perOrder(before, after, n)
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
