package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
	"github.com/atodene-worker/atodene-worker/internal/tools/stack"
)

// StartupResult is the start-to-ready scenario: the worker started again and again on a Redis
// that holds many orders.
type StartupResult struct {
	Orders int `json:"orders"`
	// UnderReview and OnHold are the loaded orders pending (審査中, 保留), each with a re-check
	// scheduled (in the timer index); Timers the timer index's entries.
	UnderReview int `json:"under_review"`
	OnHold      int `json:"on_hold"`
	Timers      int `json:"timers"`
	// LoadSeconds is the wall time of the load: orderstate.Store.LoadStates writing the states,
	// index entries and sets, pipelined, startupBatch orders per batch, startupWriters batches at
	// once while the next are generated.
	LoadSeconds   float64 `json:"load_seconds"`
	LoadPerSec    float64 `json:"load_per_second"`
	RedisGrowthMB float64 `json:"redis_used_memory_growth_mb"`
	// LayoutScanMS is orderstate.Store.CheckLayout with the layout not recorded: the scan of the
	// keys a worker makes when <prefix>layout is missing. The starts find it recorded.
	LayoutScanMS float64 `json:"layout_scan_ms"`
	// Starts are the worker's starts, in order: the first creates the streams, the others find them.
	Starts []StartupRun `json:"starts"`
	// Ready is exec → first /readyz 200 (polled every startupPoll); Outcome exec → the credit.ok
	// of an order published once it was ready, stored in RESULTS.
	Ready   Dist `json:"ready"`
	Outcome Dist `json:"first_outcome"`
	// Seconds is the scenario's wall time, its stack's start to the last worker's stop (the
	// deletion of its keys after is not counted).
	Seconds float64 `json:"seconds"`
}

// StartupRun is one start of the worker.
type StartupRun struct {
	Streams   string  `json:"streams"` // "created" (fresh NATS) or "existing"
	ReadyMS   float64 `json:"ready_ms"`
	OutcomeMS float64 `json:"first_outcome_ms"`
	// LoggedMS is exec → the worker's "worker started" log line (millisecond timestamps); RunMS
	// the time worker.Run took up to it, and Steps its steps (the line's startup_ms), so that
	// LoggedMS − RunMS is the process's start before Run: runtime, flags, shops file, connections.
	LoggedMS float64            `json:"logged_ms,omitempty"`
	RunMS    float64            `json:"run_ms,omitempty"`
	Steps    map[string]float64 `json:"steps_ms,omitempty"`
}

const (
	startupStarts = 5
	startupPoll   = 5 * time.Millisecond
	startupBatch  = 5000
	// startupWriters is how many batches are written at once.
	startupWriters = 3
	startupTarget  = time.Second
)

// startup loads many orders into Redis as the worker writes them (states, index, the sets of
// orders under review and of timers), then starts the worker startupStarts times against them,
// timing exec → ready and exec → the outcome of a first order.
func (r *runner) startup(ctx context.Context) error {
	n, began := r.settings.StartupOrders, time.Now()
	fmt.Fprintf(r.out, "9. Start to ready: %s orders in Redis (states, index, under review, timers), the worker started %d times\n",
		thousands(int64(n)), startupStarts)
	s, err := r.newStack(ctx, "startup", sandboxOpts{})
	if err != nil {
		return err
	}
	defer s.Close() // deletes the stack's keys
	store := orderstate.NewStore(r.rdb, orderstate.Config{Prefix: s.Prefix})
	defer store.Close()
	res := &StartupResult{Orders: n}
	before := r.redisUsedMB(ctx)
	load, err := loadStates(ctx, store, n, res)
	if err != nil {
		return fmt.Errorf("loading states: %w", err)
	}
	res.LoadSeconds, res.LoadPerSec = load.Seconds(), Rate(n, load)
	res.RedisGrowthMB = r.redisUsedMB(ctx) - before
	start := time.Now()
	if err := store.CheckLayout(ctx, false); err != nil {
		return err
	}
	res.LayoutScanMS = ms(time.Since(start))
	// A worker that wrote these orders recorded the layout.
	if err := r.rdb.Set(ctx, s.Prefix+"layout", orderstate.LayoutVersion, 0).Err(); err != nil {
		return err
	}

	wo, err := s.workerOptions(workerOpts{concurrency: r.settings.Concurrency})
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Second}
	var w *stack.Worker
	var col *collector
	defer func() {
		if col != nil {
			col.stop()
		}
	}()
	pub, err := newPublisher(s.NC)
	if err != nil {
		return err
	}
	var ready, outcome []time.Duration
	for i := range startupStarts {
		run := StartupRun{Streams: "existing"}
		if i == 0 {
			run.Streams = "created"
		}
		logFrom := int64(0)
		if w != nil {
			if st, err := os.Stat(w.Log); err == nil {
				logFrom = st.Size()
			}
		}
		exec := time.Now()
		if w, err = s.LaunchWorker(w, wo); err != nil {
			return err
		}
		took, err := pollReady(ctx, client, "http://"+w.HTTPAddr+"/readyz", w, exec)
		if err != nil {
			return fmt.Errorf("start %d: %w", i+1, err)
		}
		if col == nil { // RESULTS exists once the first worker is ready
			if col, err = s.collect(ctx, false); err != nil {
				return err
			}
		}
		spec := orderSpec{shop: benchShop, prefix: fmt.Sprintf("U%d-", i+1), n: 1, email: emailOK}
		if _, err := pub.publish(ctx, spec, 0); err != nil {
			return err
		}
		if err := col.wait(ctx, i+1, 30*time.Second); err != nil {
			return fmt.Errorf("start %d: the first order: %w", i+1, err)
		}
		o, ok := col.finalsOf(spec.prefix)[spec.id(0)]
		if !ok {
			return fmt.Errorf("start %d: no outcome of order %s", i+1, spec.id(0))
		}
		run.ReadyMS, run.OutcomeMS = ms(took), ms(o.at.Sub(exec))
		readStartLine(w.Log, logFrom, exec, &run)
		ready, outcome = append(ready, took), append(outcome, o.at.Sub(exec))
		res.Starts = append(res.Starts, run)
		if _, err := w.Stop(40 * time.Second); err != nil {
			return fmt.Errorf("start %d: stopping the worker: %w", i+1, err)
		}
	}
	res.Ready, res.Outcome = Summarize(ready), Summarize(outcome)
	res.Seconds = time.Since(began).Seconds()
	r.report.Startup = res

	t := Table{Title: "Start to ready: " + thousands(int64(n)) + " orders in Redis",
		Columns: []string{"start", "streams", "exec → ready ms", "exec → first outcome ms", "exec → logged ms", "worker.Run ms", "slowest step of Run"}}
	for i, run := range res.Starts {
		slow, slowMS := "-", 0.0
		for k, v := range run.Steps {
			if v > slowMS {
				slow, slowMS = k, v
			}
		}
		if slow != "-" {
			slow = fmt.Sprintf("%s %s ms", slow, num(slowMS))
		}
		t.Add(strconv.Itoa(i+1), run.Streams, num(run.ReadyMS), num(run.OutcomeMS), num(run.LoggedMS), num(run.RunMS), slow)
	}
	t.Add("p50", "", num(res.Ready.P50), num(res.Outcome.P50), "", "", "")
	t.Add("max", "", num(res.Ready.Max), num(res.Outcome.Max), "", "", "")
	t.Notes = []string{
		fmt.Sprintf("Redis: %s order states (%s under review, %s on hold, %s timers), their index and sets, loaded with orderstate.Store.LoadStates (pipelined, %s per batch, 3 at once) in %s s (%s orders/s); used_memory grew %s MB",
			thousands(int64(n)), thousands(int64(res.UnderReview)), thousands(int64(res.OnHold)), thousands(int64(res.Timers)),
			thousands(startupBatch), num(res.LoadSeconds), num(res.LoadPerSec), num(res.RedisGrowthMB)),
		"ready: exec of cmd/worker → first /readyz 200, polled every 5 ms; first outcome: an order published once ready, its credit.ok stored in RESULTS",
		"logged: the \"worker started\" line (ms timestamps); worker.Run: from its start to that line (its steps in the JSON); the rest is the process before Run",
		fmt.Sprintf("the layout check's scan, made only when <prefix>layout is missing (the starts find it recorded): %s ms", num(res.LayoutScanMS)),
		fmt.Sprintf("target: ready ≤ %s ms with 1,000,000 orders; the scenario took %s s", num(ms(startupTarget)), num(res.Seconds)),
	}
	return t.Render(r.out)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pollReady polls url every startupPoll until it answers 200 and returns the time since exec.
func pollReady(ctx context.Context, client *http.Client, url string, w *stack.Worker, exec time.Time) (time.Duration, error) {
	deadline := exec.Add(60 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(exec), nil
			}
		}
		if p := w.Proc(); p != nil && p.Exited() {
			return 0, fmt.Errorf("%s exited before it was ready%s", w.Name, childproc.LogTail(w.Log, 5))
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s not ready after 60 s%s", w.Name, childproc.LogTail(w.Log, 5))
		}
		if err := childproc.Sleep(ctx, startupPoll); err != nil {
			return 0, err
		}
	}
}

// readStartLine reads the worker's "worker started" line written after offset from in its log:
// when it was written, since exec, and the time and steps of worker.Run it carries.
func readStartLine(log string, offset int64, exec time.Time, run *StartupRun) {
	f, err := os.Open(log)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		return
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"worker started"`) {
			continue
		}
		var line struct {
			Time    string             `json:"time"`
			Took    float64            `json:"startup_total_ms"`
			Startup map[string]float64 `json:"startup_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			return
		}
		if t, err := time.Parse("2006-01-02T15:04:05.000Z0700", line.Time); err == nil {
			run.LoggedMS = ms(t.Sub(exec))
		}
		run.RunMS, run.Steps = line.Took, line.Startup
		return
	}
}

// loadStates writes n orders of benchShop as the worker leaves them: mostly OK and shipped, ~3%
// under review and 1% on hold (each with its re-check due within the poll interval ahead, in the
// timer index), the rest NG, cancelled, invalid, unknown, ordered over the last indexDays days.
func loadStates(ctx context.Context, store *orderstate.Store, n int, res *StartupResult) (time.Duration, error) {
	rng := rand.New(rand.NewPCG(9, 0))
	now := time.Now()
	first := now.Add(-indexDays * 24 * time.Hour)
	// Batches are written by startupWriters at once, while the next are generated.
	batches := make(chan []orderstate.Loaded, startupWriters)
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for range startupWriters {
		wg.Go(func() {
			for b := range batches {
				if err := store.LoadStates(wctx, b); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	start := time.Now()
	batch := make([]orderstate.Loaded, 0, startupBatch)
	for i := range n {
		ordered := first.Add(time.Duration(rng.Int64N(int64(indexDays * 24 * time.Hour))))
		changed := ordered.Add(time.Duration(rng.Int64N(int64(72 * time.Hour))))
		st := orderstate.State{TransactionID: strconv.Itoa(10000000000 + i), Fee: 205, BilledAmount: int64(1000 + rng.IntN(50000)),
			Service: "2", DataHash: "v1:" + strings.Repeat("0", 64), OrderedAt: ordered, CausedBy: "bench-" + strconv.Itoa(i),
			CreditSeq: uint64(i + 1)}
		switch p := rng.IntN(1000); {
		case p < 40: // under review or on hold: recent, polled
			ordered = now.Add(-time.Duration(rng.Int64N(int64(72 * time.Hour))))
			changed = ordered.Add(time.Duration(rng.Int64N(int64(now.Sub(ordered)))))
			st.OrderedAt, st.Status = ordered, orderstate.StatusPending
			st.PollSince, st.PollSeq, st.PollAttempt, st.PollScheduled = changed, 1+rng.IntN(20), rng.IntN(20), true
			st.PollAt = now.Add(time.Minute + time.Duration(rng.Int64N(int64(30*time.Minute))))
			if p < 30 {
				res.UnderReview++
			} else {
				st.Review = "hold"
				res.OnHold++
			}
			res.Timers++
		case p < 100:
			st.Status, st.Reasons = orderstate.StatusNG, []string{"与信審査の結果、与信NGとなりました"}
		case p < 150:
			st.Status, st.CancelledAt = orderstate.StatusCancelled, changed
		case p < 160:
			st.Status, st.TransactionID = orderstate.StatusInvalid, ""
			st.Errors = []orderstate.Error{{Code: "E0101", Message: "invalid zip"}}
		case p < 161:
			st.Status = orderstate.StatusUnknown
		default:
			st.Status, st.AuthorizedAt = orderstate.StatusOK, changed
			if rng.IntN(10) < 8 {
				st.Shipment = &orderstate.Shipment{CarrierCode: "11", TrackingNumber: strconv.Itoa(300000000000 + i), Reported: true, Filed: true, Report: "new"}
			}
		}
		if changed.After(now) {
			changed = now
		}
		st.UpdatedAt = changed
		order := ordered.UTC().Format("20060102") + "-" + fmt.Sprintf("%07d", i)
		batch = append(batch, orderstate.Loaded{Shop: benchShop, Order: order, State: st, At: changed})
		if len(batch) == cap(batch) || i == n-1 {
			select {
			case batches <- batch:
			case <-wctx.Done():
			}
			batch = make([]orderstate.Loaded, 0, startupBatch)
		}
	}
	close(batches)
	wg.Wait()
	return time.Since(start), context.Cause(wctx)
}
