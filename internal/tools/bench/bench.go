// Package bench measures the worker on one machine, on loopback: throughput against a
// bare-bones baseline, latency at fixed rates, a slow provider, many orders under review at
// once, dead-letter replay, the order index with many orders, and the cost of scaling out (three
// workers on a NATS cluster and a Redis Cluster against one worker), and the worker's start to
// ready with many orders in Redis. Every server runs as its own process: a NATS server
// built from the nats-server module, the ATODENE sandbox, the worker (cmd/worker) and the
// baseline, started by package stack; Redis is the machine's, under a key prefix of the run's
// own.
//
// cmd/bench is the command; this package holds the scenarios, the baseline program and the
// pure helpers (percentiles, tables, charts).
package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/redisadmin"
	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
	"github.com/atodene-worker/atodene-worker/internal/tools/stack"
)

// Options configure a run of the benchmark.
type Options struct {
	// Quick runs small sizes so that the whole run takes under two minutes.
	Quick bool
	// JSON is a file to write the results to; empty writes none.
	JSON string
	// Only lists the scenarios to run (Scenarios); empty runs all, but with Quick all but those
	// of NotQuick.
	Only []string
	// ProfileDir, if set, runs the workers with a pprof endpoint and stores CPU profiles of the
	// worker and the NATS server and allocation profiles of the worker (throughput, slow provider)
	// and a heap profile of the worker (pending) there.
	ProfileDir string
	// RedisURL is the Redis to use. Default redis://127.0.0.1:6379. It may be shared: the run
	// writes only under its own key prefix and deletes those keys at the end.
	RedisURL string
	// WorkerLogLevel is the workers' -log-level. Default info, as in production: one line per message.
	WorkerLogLevel string
	// Rates, if set, replaces the latency scenario's offered rates (orders per second).
	Rates []float64
	// WorkerEnv is added to the workers' environment, e.g. GOGC=400 to compare runtime settings.
	WorkerEnv []string
	// PendingOrders, if set, replaces the pending scenario's number of orders under review at
	// once (default 5,000 quick, 1,000,000 full).
	PendingOrders int
	// Keep keeps the temporary directory (logs, JetStream stores) instead of deleting it.
	Keep bool
	// Out receives the report. Default os.Stdout.
	Out io.Writer
}

// Scenarios are the scenario names, in the order they run.
var Scenarios = []string{"throughput", "latency", "slow", "pending", "replay", "index", "scaleout", "tracing", "startup"}

// NotQuick are the scenarios that Quick leaves out unless Only names them, so that a quick run
// stays under two minutes: scaleout starts nine more servers (a NATS and a Redis cluster), and
// tracing drains four backlogs.
var NotQuick = []string{"scaleout", "tracing"}

// Settings are the sizes of a run.
type Settings struct {
	Mode             string    `json:"mode"`
	Concurrency      int       `json:"worker_concurrency"`
	ThroughputOrders int       `json:"throughput_orders"`
	LatencyRates     []float64 `json:"latency_rates"`
	LatencySeconds   float64   `json:"latency_seconds_per_rate"`
	SlowLatencyMS    int       `json:"slow_provider_latency_ms"`
	SlowOrders       int       `json:"slow_orders"`
	SlowConcurrency  []int     `json:"slow_concurrency"`
	PendingOrders    int       `json:"pending_orders"`
	// PendingPlan is the pending scenario's timings, derived from PendingOrders (planPending).
	PendingPlan       *PendingPlan `json:"pending_plan,omitempty"`
	ReplayLetters     int          `json:"replay_letters"`
	IndexOrders       int          `json:"index_orders"`
	IndexCalls        int          `json:"index_calls_per_query"`
	ScaleOutOrders    int          `json:"scaleout_orders"`
	StartupOrders     int          `json:"startup_orders"`
	WorkerLogLevel    string       `json:"worker_log_level"`
	WorkerEnv         []string     `json:"worker_env,omitempty"`
	latencyWarmOrders int
}

func settingsFor(o Options) Settings {
	if o.Quick {
		return Settings{Mode: "quick", Concurrency: config.DefaultConcurrency, ThroughputOrders: 8000,
			LatencyRates: []float64{500, 1000, 2000}, LatencySeconds: 3,
			SlowLatencyMS: 200, SlowOrders: 3000, SlowConcurrency: []int{256, config.DefaultConcurrency, 1024},
			PendingOrders: 5000,
			ReplayLetters: 2000, IndexOrders: 100000, IndexCalls: 50, ScaleOutOrders: 8000, StartupOrders: 20000, WorkerLogLevel: o.WorkerLogLevel, latencyWarmOrders: 300}
	}
	return Settings{Mode: "full", Concurrency: config.DefaultConcurrency, ThroughputOrders: 40000,
		LatencyRates: []float64{250, 500, 1000, 1500, 2000, 3000, 4000, 6000}, LatencySeconds: 15,
		SlowLatencyMS: 200, SlowOrders: 20000, SlowConcurrency: []int{256, config.DefaultConcurrency, 1024},
		PendingOrders: 1000000,
		ReplayLetters: 20000, IndexOrders: 1000000, IndexCalls: 300, ScaleOutOrders: 40000, StartupOrders: 1000000, WorkerLogLevel: o.WorkerLogLevel, latencyWarmOrders: 1000}
}

// Report is everything a run measured; -json writes it.
type Report struct {
	Started    time.Time          `json:"started"`
	Seconds    float64            `json:"seconds"`
	Machine    Machine            `json:"machine"`
	Versions   Versions           `json:"versions"`
	Settings   Settings           `json:"settings"`
	Throughput []ThroughputResult `json:"throughput,omitempty"`
	Latency    []LatencyResult    `json:"latency,omitempty"`
	Slow       []SlowResult       `json:"slow_provider,omitempty"`
	Pending    *PendingResult     `json:"pending,omitempty"`
	Replay     *ReplayResult      `json:"replay,omitempty"`
	Index      *IndexResult       `json:"index,omitempty"`
	Tracing    *TracingResult     `json:"tracing,omitempty"`
	ScaleOut   *ScaleOutResult    `json:"scaleout,omitempty"`
	Startup    *StartupResult     `json:"startup,omitempty"`
	Errors     []string           `json:"errors,omitempty"`
}

// Machine describes the hardware the run was on.
type Machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	MemoryMB   int64  `json:"memory_mb"`
	Kernel     string `json:"kernel"`
	LoadAvg    string `json:"load_average_at_start"`
	LoadAvgEnd string `json:"load_average_at_end"`
	RedisShare string `json:"redis"`
}

// Versions are the versions of what was measured.
type Versions struct {
	Go         string `json:"go"`
	NATSServer string `json:"nats_server"`
	NATSClient string `json:"nats_go"`
	Redis      string `json:"redis"`
	// Commit is the checked-out commit; Modified lists files that differ from it (other than
	// the tooling's own: cmd/bench, internal/tools), since the programs are built from the
	// working tree.
	Commit   string   `json:"commit"`
	Modified []string `json:"modified_files,omitempty"`
}

// runner is one run of the benchmark.
type runner struct {
	opts     Options
	settings Settings
	out      io.Writer
	// host holds the programs, the temporary directory, the run's Redis key prefix
	// (bench:<id>:) and every child process; each scenario starts a stack on it.
	host     stack.Host
	self     string // this program, which runs the baseline and the profiled worker
	rdb      *redis.Client
	redisPID int
	report   Report
	// workerRate is the one-worker throughput, once measured: it sizes later scenarios.
	workerRate float64
}

// Run runs the benchmark and prints its report to opts.Out.
func Run(ctx context.Context, opts Options) (err error) {
	if opts.RedisURL == "" {
		opts.RedisURL = "redis://127.0.0.1:6379"
	}
	if opts.WorkerLogLevel == "" {
		opts.WorkerLogLevel = "info"
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	for _, s := range opts.Only {
		if !slices.Contains(Scenarios, s) {
			return fmt.Errorf("unknown scenario %q: want one of %s", s, strings.Join(Scenarios, ", "))
		}
	}
	r := &runner{opts: opts, settings: settingsFor(opts), out: opts.Out}
	r.host.RedisURL, r.host.Client = opts.RedisURL, "atodene-bench"
	r.report.Started = time.Now()
	r.settings.WorkerEnv = opts.WorkerEnv
	if len(opts.Rates) > 0 {
		r.settings.LatencyRates = opts.Rates
	}
	if opts.PendingOrders > 0 {
		r.settings.PendingOrders = opts.PendingOrders
	}
	r.report.Settings = r.settings

	var id [3]byte
	_, _ = rand.Read(id[:])
	r.host.Prefix = "bench:" + hex.EncodeToString(id[:]) + ":"
	if r.host.Dir, err = os.MkdirTemp("", "atodene-bench-"); err != nil {
		return err
	}
	defer func() {
		r.host.Procs.StopAll()
		if r.rdb != nil {
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			_ = redisadmin.DeleteKeys(dctx, r.rdb, r.host.Prefix)
			cancel()
			r.rdb.Close()
		}
		if opts.Keep || err != nil {
			fmt.Fprintf(r.out, "logs and stores kept in %s\n", r.host.Dir)
		} else {
			_ = os.RemoveAll(r.host.Dir)
		}
	}()
	if opts.ProfileDir != "" {
		if err := os.MkdirAll(opts.ProfileDir, 0o755); err != nil {
			return err
		}
	}
	if err := r.prepare(ctx); err != nil {
		return err
	}
	r.printHeader()

	for _, sc := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"throughput", r.throughput}, {"latency", r.latency}, {"slow", r.slowProvider},
		{"pending", r.pending}, {"replay", r.replay}, {"index", r.index}, {"scaleout", r.scaleOut}, {"tracing", r.tracing},
		{"startup", r.startup},
	} {
		if len(opts.Only) > 0 && !slices.Contains(opts.Only, sc.name) {
			continue
		}
		if len(opts.Only) == 0 && opts.Quick && slices.Contains(NotQuick, sc.name) {
			fmt.Fprintf(r.out, "(%s is not part of -quick: run it with -quick -only %s)\n\n", sc.name, sc.name)
			continue
		}
		if err := sc.run(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			msg := fmt.Sprintf("%s: %v", sc.name, err)
			r.report.Errors = append(r.report.Errors, msg)
			fmt.Fprintf(r.out, "FAILED %s\n\n", msg)
		}
	}
	r.report.Seconds = time.Since(r.report.Started).Seconds()
	r.report.Machine.LoadAvgEnd = machine().LoadAvg
	fmt.Fprintf(r.out, "total %.0f s; load average at the end %s\n", r.report.Seconds, r.report.Machine.LoadAvgEnd)
	if opts.JSON != "" {
		raw, _ := json.MarshalIndent(r.report, "", "  ")
		if err := os.WriteFile(opts.JSON, append(raw, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(r.out, "results written to %s\n", opts.JSON)
	}
	if len(r.report.Errors) > 0 {
		return fmt.Errorf("%d scenarios failed", len(r.report.Errors))
	}
	return nil
}

// prepare builds the programs and connects to Redis.
func (r *runner) prepare(ctx context.Context) error {
	root, err := childproc.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	if r.host.Bins, err = stack.Build(ctx, filepath.Join(r.host.Dir, "bin")); err != nil {
		return err
	}
	if r.self, err = os.Executable(); err != nil {
		return err
	}
	ropts, err := redis.ParseURL(r.opts.RedisURL)
	if err != nil {
		return fmt.Errorf("redis URL: %w", err)
	}
	r.rdb = redis.NewClient(ropts)
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("connecting to Redis at %s: %w", ropts.Addr, err)
	}
	info := r.redisInfo(ctx, "server")
	r.redisPID, _ = strconv.Atoi(info["process_id"])
	r.report.Versions = Versions{Go: runtime.Version(), NATSClient: nats.Version, Redis: info["redis_version"]}
	if out, err := exec.CommandContext(ctx, r.host.Bins.NATS, "--version").Output(); err == nil {
		r.report.Versions.NATSServer = strings.TrimPrefix(strings.TrimSpace(string(out)), "nats-server: ")
	}
	r.report.Versions.Commit, r.report.Versions.Modified = gitState(ctx, root)
	r.report.Machine = machine()
	r.report.Machine.RedisShare = ropts.Addr + " (shared with other users of the machine; keys under " + r.host.Prefix + ")"
	return nil
}

func (r *runner) printHeader() {
	m, v, s := r.report.Machine, r.report.Versions, r.settings
	fmt.Fprintf(r.out, "atodene-worker benchmark, %s mode, %s\n\n", s.Mode, r.report.Started.Format(time.RFC3339))
	t := Table{Columns: []string{"", ""}}
	t.Add("CPU", fmt.Sprintf("%s, %d cores", m.CPU, m.Cores))
	t.Add("memory", fmt.Sprintf("%d MB", m.MemoryMB))
	t.Add("kernel", m.Kernel)
	t.Add("load average at start", m.LoadAvg)
	t.Add("Go", v.Go)
	t.Add("NATS server / nats.go", v.NATSServer+" / "+v.NATSClient)
	t.Add("Redis", v.Redis+" at "+m.RedisShare)
	commit := v.Commit
	if len(v.Modified) > 0 {
		commit += fmt.Sprintf(" + %d modified files in the working tree (%s)", len(v.Modified), strings.Join(v.Modified, ", "))
	}
	t.Add("built from", commit)
	t.Add("worker", fmt.Sprintf("cmd/worker, -concurrency %d, -log-level %s (to a file)", s.Concurrency, s.WorkerLogLevel))
	if len(r.opts.WorkerEnv) > 0 {
		t.Add("worker environment", strings.Join(r.opts.WorkerEnv, " "))
	}
	t.Add("sizes", fmt.Sprintf("throughput %s orders; latency %v/s × %.0f s; slow provider %s orders at %d ms; pending %s orders; replay %s letters; index %s orders; scale-out %s orders; start to ready %s orders",
		thousands(int64(s.ThroughputOrders)), s.LatencyRates, s.LatencySeconds, thousands(int64(s.SlowOrders)), s.SlowLatencyMS,
		thousands(int64(s.PendingOrders)), thousands(int64(s.ReplayLetters)), thousands(int64(s.IndexOrders)), thousands(int64(s.ScaleOutOrders)), thousands(int64(s.StartupOrders))))
	t.Add("everything", "on this machine, over loopback; each scenario has its own NATS server and sandbox")
	_ = t.Render(r.out)
}

// gitState returns the commit checked out in dir and the files of the working tree that differ
// from it, leaving out the bench's own.
func gitState(ctx context.Context, dir string) (string, []string) {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown", nil
	}
	commit := strings.TrimSpace(string(out))
	st, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=all").Output()
	if err != nil {
		return commit, nil
	}
	var modified []string
	for line := range strings.Lines(string(st)) {
		if len(line) < 4 {
			continue
		}
		path := strings.TrimSpace(line[3:])
		if _, to, ok := strings.Cut(path, " -> "); ok { // a rename: the file is at its new path
			path = to
		}
		// The tooling (internal/tools) is built into none of the programs measured.
		if strings.HasPrefix(path, "cmd/bench/") || strings.HasPrefix(path, "internal/tools/") || path == "docs/benchmarks.md" || path == "Makefile" {
			continue
		}
		if strings.HasSuffix(path, ".go") || path == "go.mod" || path == "go.sum" {
			modified = append(modified, path)
		}
	}
	return commit, modified
}

// machine reads the hardware from /proc.
func machine() Machine {
	m := Machine{Cores: runtime.NumCPU()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemoryMB = kb / 1024
			}
		}
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(raw))
	}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(raw))
		m.LoadAvg = strings.Join(f[:min(3, len(f))], " ")
	}
	return m
}

// redisInfo returns the fields of one INFO section.
func (r *runner) redisInfo(ctx context.Context, section string) map[string]string {
	out := map[string]string{}
	raw, err := r.rdb.Info(ctx, section).Result()
	if err != nil {
		return out
	}
	for line := range strings.Lines(raw) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}

// redisUsedMB is Redis's used_memory in MiB (of the whole, shared server).
func (r *runner) redisUsedMB(ctx context.Context) float64 {
	n, _ := strconv.ParseFloat(r.redisInfo(ctx, "memory")["used_memory"], 64)
	return n / (1 << 20)
}

// cpuSample is the CPU time used so far by each part of a stack.
type cpuSample map[string]time.Duration

// cpu samples the CPU time of the stack's processes by part: worker (the workers or the
// baseline), nats (every node), redis (the shared server, whose time includes other users', or
// the stack's own redis-server or Redis Cluster nodes), sandbox, and bench (this process).
func (s *benchStack) cpu() cpuSample { return byPart(s.cpuByProcess()) }

// byPart adds up a sample by process (cpuByProcess) by part: the name before its "/".
func byPart(procs cpuSample) cpuSample {
	out := cpuSample{}
	for name, d := range procs {
		part, _, _ := strings.Cut(name, "/")
		out[part] += d
	}
	return out
}

// cpuByProcess samples the CPU time of each of the stack's processes, named <part>/<process>:
// worker/worker-1, worker/baseline, nats/n1, redis/<host:port> (redis/shared for the machine's),
// sandbox/sandbox, bench/bench.
func (s *benchStack) cpuByProcess() cpuSample {
	out := cpuSample{}
	add := func(name string, pid int) {
		if d, err := cpuTime(pid); err == nil {
			out[name] += d
		}
	}
	for _, w := range s.Workers {
		add("worker/"+w.Name, w.Proc().Pid())
	}
	for _, n := range s.Nodes {
		add("nats/"+n.Name, n.Proc().Pid())
	}
	add("sandbox/sandbox", s.Sandbox.Pid())
	switch {
	case s.Cluster != nil:
		for _, rs := range s.Cluster.Nodes {
			if p := rs.Proc(); p != nil {
				add("redis/"+rs.Addr, p.Pid())
			}
		}
	case s.RedisServer != nil:
		add("redis/"+s.RedisServer.Addr, s.RedisServer.Proc().Pid())
	case s.r.redisPID > 0:
		add("redis/shared", s.r.redisPID)
	}
	add("bench/bench", os.Getpid())
	return out
}

// window measures, between its start and end, the CPU the machine spent outside the stack:
// other users' processes on this shared machine, in cores.
type window struct {
	s     *benchStack
	start time.Time
	busy  time.Duration
	ours  cpuSample
}

func (s *benchStack) window() window {
	busy, _ := machineBusy()
	return window{s: s, start: time.Now(), busy: busy, ours: s.cpu()}
}

// otherCores is the average number of cores busy with processes other than the stack's (Redis
// counts as the stack's) since the window began.
func (w window) otherCores() float64 {
	busy, err := machineBusy()
	if err != nil {
		return 0
	}
	ours := time.Duration(0)
	for k, v := range w.s.cpu() {
		ours += v - w.ours[k]
	}
	return max(0, (busy-w.busy-ours).Seconds()/time.Since(w.start).Seconds())
}

// perOrder is the CPU milliseconds per order of each part between two samples.
func perOrder(before, after cpuSample, orders int) map[string]float64 {
	out := map[string]float64{}
	total := 0.0
	for k, v := range after {
		ms := float64(v-before[k]) / float64(time.Millisecond) / float64(max(orders, 1))
		out[k] = ms
		total += ms
	}
	out["total"] = total
	return out
}
