package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/redisadmin"
)

// PendingPlan is the timing of the pending scenario, derived from its size by planPending.
type PendingPlan struct {
	Orders int `json:"orders"`
	// AssumedRate is the registrations per second the plan assumes; RegisterEstimate the time
	// registering every order takes at that rate.
	AssumedRate      float64 `json:"assumed_registrations_per_s"`
	RegisterEstimate float64 `json:"register_estimate_s"`
	// First is the worker's -poll-first-delay, Max its -poll-max-interval, Review the sandbox's
	// review delay, in seconds.
	First  float64 `json:"poll_first_delay_s"`
	Max    float64 `json:"poll_max_interval_s"`
	Review float64 `json:"review_delay_s"`
	// WaveRate is the re-checks per second a wave of re-checks asks of the worker: every order
	// once, spread over the registration time plus the ±10 % jitter of the delay.
	WaveRate float64 `json:"recheck_wave_per_s"`
	// Finish is when the last order should be approved, from the first publish.
	Finish float64 `json:"expected_finish_s"`
}

func secs(d float64) time.Duration { return time.Duration(d * float64(time.Second)) }

// planPending derives the pending scenario's timings from its size n and the registration rate
// it assumes (orders per second). The worker re-checks an order after First ± 10 % and again
// Max ± 10 % later (the doubling of First is capped at Max); the sandbox approves an order
// Review after registering it. With T the registration time at the assumed rate:
//
//   - First = 1.25 T (at least 3 s): the earliest first re-check, 0.9 First, falls due after the
//     last registration, so re-checks never compete with registrations, and no order is approved
//     before every order is under review: the under-review set reaches n.
//   - Review = 1.6 First: after the latest first re-check (1.1 First) and before the earliest
//     second (0.9 First + 0.9 Max = 2.03 First), so each order is re-checked once under review
//     and approved by the second re-check.
//   - Max = 1.25 First: the second wave of re-checks begins (0.9 First + 0.9 Max = 2.53 T after
//     the first registration) after the first has ended (T + 1.1 First = 2.38 T), so the worker
//     works off one wave at a time, each at about n / (T + 0.2 First) re-checks per second:
//     below the rate it registered them at, a registration being the costlier of the two.
func planPending(n int, rate float64) PendingPlan {
	t := float64(n) / rate
	first := math.Ceil(max(3, 1.25*t))
	maxI := math.Ceil(1.25 * first)
	review := math.Round(1.6 * first)
	return PendingPlan{Orders: n, AssumedRate: rate, RegisterEstimate: t, First: first, Max: maxI, Review: review,
		WaveRate: float64(n) / (t + 0.2*first), Finish: t + 1.1*first + 1.1*maxI}
}

// PendingResult is the pending-at-scale scenario.
type PendingResult struct {
	Orders int         `json:"orders"`
	Plan   PendingPlan `json:"plan"`
	// Throughput is the one-worker throughput the plan started from (orders per second).
	Throughput float64 `json:"throughput_per_s"`
	// OtherCores is the cores busy with processes outside the stack while the scenario ran.
	OtherCores float64 `json:"other_load_cores"`
	// RegisterSeconds is first publish → last credit.pending; RegisterRate the orders per second.
	RegisterSeconds float64 `json:"register_seconds"`
	RegisterRate    float64 `json:"register_per_s"`
	// PeakPending is the most orders under review at once, as the worker's under-review set in
	// Redis (what atodene_worker_orders_under_review reports) held them; PeakPendingBench as the
	// bench counted them (credit.pending seen − final outcome seen); PeakAtSeconds when the set
	// first held PeakPending, from the first publish.
	PeakPending      int64   `json:"peak_pending"`
	PeakPendingBench int64   `json:"peak_pending_bench"`
	PeakAtSeconds    float64 `json:"peak_at_seconds"`
	WorkerRSSIdleMB  float64 `json:"worker_rss_idle_mb"`
	WorkerRSSPeakMB  float64 `json:"worker_rss_peak_mb"` // VmHWM at the end
	NATSRSSIdleMB    float64 `json:"nats_rss_idle_mb"`
	NATSRSSPeakMB    float64 `json:"nats_rss_peak_mb"`
	SandboxRSSPeakMB float64 `json:"sandbox_rss_peak_mb"`
	// BenchRSSPeakMB is this process's VmHWM at the end of the scenario (of the whole run so far).
	BenchRSSPeakMB float64 `json:"bench_rss_peak_mb"`
	// Redis and NATS at the peak (the snapshot with the most orders under review).
	AtPeak PendingSnapshot `json:"at_peak"`
	// DeleteSeconds is how long deleting the scenario's Redis keys (SCAN + UNLINK) took;
	// DeletedKeys the keys deleted, estimated from the sampled orders.
	DeleteSeconds float64 `json:"redis_delete_seconds"`
	DeletedKeys   int64   `json:"redis_deleted_keys_estimate"`
	Polls         int     `json:"polls"`
	// RecheckedUnderReview is the orders re-checked at least once while still under review.
	RecheckedUnderReview int `json:"orders_rechecked_under_review"`
	// BusiestSecond is the most re-checks the worker handled in one second.
	BusiestSecond int `json:"rechecks_busiest_second"`
	// Late is, per re-check, the time the worker handled it minus the time it was scheduled
	// for (the Nats-Schedule @at the worker asked for). Steady counts only the re-checks
	// scheduled after the last registration.
	Late       Dist `json:"late"`
	LateSteady Dist `json:"late_steady"`
	// Held says the worker held the re-checks in Redis until shortly before they were due
	// (their delays beyond -poll-handoff-ahead): Late then measures the deciding re-checks only.
	Held bool `json:"held"`
	// Begun is, for every re-check, when its handling began minus when it was due, from the
	// worker's atodene_worker_timer_lateness_seconds histogram (estimates within its buckets).
	Begun HistDist `json:"begun_late"`
	// Fired is the part of the lateness that is the NATS server's: when it stored the due
	// message minus the @at.
	Fired Dist `json:"fired_late"`
	// Published is, per schedule, when the bench saw it published minus its @at: negative when
	// it was published ahead of its time, as a held re-check's handoff should.
	Published Dist `json:"schedule_published_minus_at"`
	// Timeline is the run in 10 s intervals: CPU by part and the poll consumer's backlog.
	Timeline []TimelineRow `json:"timeline"`
	Settled  int           `json:"settled"`
	Seconds  float64       `json:"seconds"`
}

// PendingSnapshot is what Redis and NATS held for the orders at one moment.
type PendingSnapshot struct {
	Pending int64   `json:"pending"`
	Seconds float64 `json:"seconds"` // from the first publish
	// RedisUsedGrowth is used_memory minus before the run (the whole shared server), bytes.
	RedisUsedGrowth int64 `json:"redis_used_memory_growth_bytes"`
	// RedisSampled is MEMORY USAGE of the keys of sampled orders, averaged, times the orders
	// registered, plus MEMORY USAGE of the shop's shared keys (under-review set, timers, index).
	RedisSampled  int64   `json:"redis_memory_usage_estimate_bytes"`
	RedisShared   int64   `json:"redis_shared_keys_bytes"`
	KeysPerOrder  float64 `json:"redis_keys_per_order"`
	SampledOrders int     `json:"sampled_orders"`
	// Streams are JetStream's ORDERS, RESULTS and ATODENE_POLLS.
	Streams []StreamSize `json:"streams"`
}

// StreamSize is one stream's messages and bytes.
type StreamSize struct {
	Name  string `json:"name"`
	Msgs  uint64 `json:"msgs"`
	Bytes uint64 `json:"bytes"`
}

// schedRec is one poll schedule the worker published: the order (its number), when it asked to
// be re-checked (the @at of Nats-Schedule) and when the bench saw the schedule go by, Unix ns.
type schedRec struct {
	order    uint32
	at, seen int64
}

// dueRec is one due message the NATS server fired: the order and its stored time, Unix ns.
type dueRec struct {
	order uint32
	at    int64
}

// pollLateness appends to dst how late each re-check of one order ran. The worker publishes a
// new schedule while it handles a re-check that finds the order still under review, and the
// final outcome while it handles the one that decides it, so re-check k was handled when
// schedule k+1 was published, or, for the last, when the final outcome was stored. scheds must be
// in the order they were published; a zero final leaves the last re-check out.
func pollLateness(dst []time.Duration, scheds []schedRec, final int64) []time.Duration {
	for i, s := range scheds {
		handled := final
		if i+1 < len(scheds) {
			handled = scheds[i+1].seen
		}
		if handled == 0 {
			continue
		}
		dst = append(dst, time.Duration(handled-s.at))
	}
	return dst
}

// fireLateness appends to dst how late the NATS server fired each schedule of one order: each
// due message's stored time minus the latest @at at or before it.
func fireLateness(dst []time.Duration, scheds []schedRec, dues []dueRec) []time.Duration {
	for _, due := range dues {
		var at int64
		for _, s := range scheds {
			if s.at <= due.at && s.at > at {
				at = s.at
			}
		}
		if at != 0 {
			dst = append(dst, time.Duration(due.at-at))
		}
	}
	return dst
}

// groupByOrder reorders recs so that each order's records are together, in their original order
// within an order (a counting sort), and returns the start of each order's records: order i's
// are out[start[i]:start[i+1]]. Records of an order ≥ n are dropped.
func groupByOrder[T any](recs []T, n int, order func(T) uint32) (out []T, start []int) {
	start = make([]int, n+1)
	for _, r := range recs {
		if o := int(order(r)); o < n {
			start[o+1]++
		}
	}
	for i := range n {
		start[i+1] += start[i]
	}
	out = make([]T, start[n])
	next := make([]int, n)
	copy(next, start[:n])
	for _, r := range recs {
		if o := int(order(r)); o < n {
			out[next[o]] = r
			next[o]++
		}
	}
	return out, start
}

// pendingIndex returns the number of an order of spec (spec.id(i) → i), false for another.
func pendingIndex(spec orderSpec) func(string) (int, bool) {
	return func(order string) (int, bool) {
		digits, ok := strings.CutPrefix(order, spec.prefix)
		if !ok {
			return 0, false
		}
		i, err := strconv.Atoi(digits)
		i -= spec.from
		return i, err == nil && i >= 0 && i < spec.n
	}
}

// pending puts many orders under review at once (the sandbox keeps them in review for longer
// than registering them all takes), lets the worker re-check them on a schedule derived from
// their number (planPending) until the sandbox approves them, and measures memory, what Redis
// and NATS hold per order, and how late the re-checks run.
func (r *runner) pending(ctx context.Context) error {
	n := r.settings.PendingOrders
	// The plan assumes 0.6 of one worker's throughput of auto-approved orders: registering an
	// order under review costs more (its re-check is scheduled, it joins the under-review set),
	// and a million orders' streams and keys slow it down. The throughput is the throughput
	// scenario's, if it ran; else, for 50,000 orders or more, measured now; else the usual 5,000/s.
	throughput, source := r.workerRate, "the throughput scenario"
	if throughput == 0 && n >= pendingCalibrateMin {
		rate, other, err := r.calibratePending(ctx, pendingCalibrateOrders)
		if err != nil {
			return fmt.Errorf("measuring the throughput: %w", err)
		}
		throughput, source = rate, fmt.Sprintf("%s auto-approved orders now, other load %s cores", thousands(pendingCalibrateOrders), num(other))
	}
	if throughput == 0 {
		throughput, source = 5000, "assumed"
	}
	plan := planPending(n, 0.6*throughput)
	r.report.Settings.PendingPlan = &plan
	first, pollMax, review := secs(plan.First), secs(plan.Max), secs(plan.Review)
	res := &PendingResult{Orders: n, Plan: plan, Throughput: throughput}
	fmt.Fprintf(r.out, "4. Pending at scale: %s orders under review at once. One worker's throughput %s orders/s (%s); assuming 0.6 of it,\n"+
		"   %s registrations/s (%s s to register them): worker -poll-first-delay %s -poll-max-interval %s, sandbox review delay %s;\n"+
		"   re-check waves of ≈ %s/s; done after ≈ %s s\n",
		thousands(int64(n)), thousands(int64(throughput)), source, thousands(int64(plan.AssumedRate)), num(plan.RegisterEstimate),
		first, pollMax, review, thousands(int64(plan.WaveRate)), num(plan.Finish))

	s, err := r.newStack(ctx, "pending", sandboxOpts{reviewDelay: review})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.createStreams(ctx); err != nil {
		return err
	}
	spec := orderSpec{shop: benchShop, prefix: "P", n: n, email: emailReview}
	index := pendingIndex(spec)
	col, err := s.collectDense(ctx, n, index)
	if err != nil {
		return err
	}
	defer col.stop()

	var mu sync.Mutex
	scheds := make([]schedRec, 0, 2*n+n/4)
	dues := make([]dueRec, 0, n+n/4)
	sub, err := s.NC.Subscribe("atodene.poll.sched.>", func(m *nats.Msg) {
		seen := time.Now().UnixNano()
		var body struct {
			OrderID string `json:"order_id"`
		}
		at, err := time.Parse(time.RFC3339, strings.TrimPrefix(m.Header.Get("Nats-Schedule"), "@at "))
		if err != nil || json.Unmarshal(m.Data, &body) != nil {
			return
		}
		i, ok := index(body.OrderID)
		if !ok {
			return
		}
		mu.Lock()
		scheds = append(scheds, schedRec{order: uint32(i), at: at.UnixNano(), seen: seen})
		mu.Unlock()
	})
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, -1)

	// A million orders under review is what -poll-handoff-ahead is for: a re-check due further
	// ahead is held in Redis until then.
	const ahead = 10 * time.Second
	res.Held = time.Duration(plan.First*float64(time.Second)) > ahead
	if err := s.startWorkers(ctx, 1, workerOpts{concurrency: r.settings.Concurrency, pollFirst: first, pollMax: pollMax,
		flags: []string{"-poll-handoff-ahead", ahead.String()}}); err != nil {
		return err
	}
	w := s.Workers[0]
	dueCons, err := s.JS.OrderedConsumer(ctx, pollStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"atodene.poll.due.>"}})
	if err != nil {
		return err
	}
	dueCC, err := dueCons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		var body struct {
			OrderID string `json:"order_id"`
		}
		if err != nil || json.Unmarshal(m.Data(), &body) != nil {
			return
		}
		i, ok := index(body.OrderID)
		if !ok {
			return
		}
		mu.Lock()
		dues = append(dues, dueRec{order: uint32(i), at: md.Timestamp.UnixNano()})
		mu.Unlock()
	})
	if err != nil {
		return err
	}
	defer dueCC.Stop()
	res.WorkerRSSIdleMB, res.NATSRSSIdleMB = rssMB(w.Proc().Pid()), rssMB(s.Nodes[0].Proc().Pid())
	redisBefore := r.redisUsedBytes(ctx)
	pendingKey := s.Prefix + "pending:{" + benchShop + "}"

	// Sample the under-review set while the run lasts; at a new peak (at most every 10 s, and
	// when it holds every order) take a snapshot of what Redis and NATS hold.
	start, win := time.Now(), s.window()
	tl := newTimeline(s, start, 10*time.Second)
	// A CPU profile of the worker in the middle of the first wave of re-checks.
	firstWave := secs(plan.RegisterEstimate/2 + 0.9*plan.First)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		var lastSnap time.Time
		heapTaken := false
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
			tl.sample(sampleCtx)
			if w.PprofAddr != "" && firstWave > 0 && time.Since(start) >= firstWave {
				firstWave = 0
				go func() {
					if err := fetchProfile(sampleCtx, "http://"+w.PprofAddr+"/debug/pprof/profile?seconds=30",
						filepath.Join(r.opts.ProfileDir, "pending-first-wave-worker.cpu.pprof"), 30); err != nil {
						fmt.Fprintf(r.out, "profile: %v\n", err)
					}
				}()
			}
			res.PeakPendingBench = max(res.PeakPendingBench, col.nPending.Load()-col.nFinal.Load())
			p, err := r.rdb.SCard(sampleCtx, pendingKey).Result()
			if err != nil || p <= res.PeakPending {
				continue
			}
			res.PeakPending, res.PeakAtSeconds = p, time.Since(start).Seconds()
			if p == int64(n) || time.Since(lastSnap) >= 10*time.Second {
				lastSnap = time.Now()
				res.AtPeak = r.pendingSnapshot(sampleCtx, s, spec, p, col.nPending.Load(), redisBefore)
				res.AtPeak.Seconds = time.Since(start).Seconds()
			}
			if p == int64(n) && w.PprofAddr != "" && !heapTaken {
				heapTaken = true
				if err := fetchProfile(sampleCtx, "http://"+w.PprofAddr+"/debug/pprof/heap",
					filepath.Join(r.opts.ProfileDir, "pending-worker.heap.pprof"), 0); err != nil {
					fmt.Fprintf(r.out, "profile: %v\n", err)
				}
			}
		}
	})

	pub, err := newPublisher(s.NC)
	if err != nil {
		stopSampling()
		wg.Wait()
		return err
	}
	pub.noTimes = true
	// At the assumed rate, which the plan's timings rest on: the first wave of re-checks follows
	// the registrations' pace (each order's first re-check is due ±10 % of one delay after it),
	// so orders published at once and registered as fast as the worker could asked for re-checks
	// at that rate for minutes (docs/benchmarks.md, section 4).
	_, err = pub.publish(ctx, spec, plan.AssumedRate)
	if err == nil {
		err = col.wait(ctx, n, (first+pollMax)*13/10+time.Minute)
	}
	stopSampling()
	wg.Wait()
	if err != nil {
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	res.OtherCores = win.otherCores()
	res.Settled = int(col.nFinal.Load())
	if st, err := procStatus(w.Proc().Pid()); err == nil {
		res.WorkerRSSPeakMB = float64(st["VmHWM"]) / 1024
	}
	if st, err := procStatus(s.Nodes[0].Proc().Pid()); err == nil {
		res.NATSRSSPeakMB = float64(st["VmHWM"]) / 1024
	}
	if st, err := procStatus(s.Sandbox.Pid()); err == nil {
		res.SandboxRSSPeakMB = float64(st["VmHWM"]) / 1024
	}
	// Give the due consumer a moment for the last due messages, then stop it and the schedules.
	time.Sleep(time.Second)
	if text, err := scrape(ctx, s.Workers[0].HTTPAddr); err == nil {
		res.Begun = histogramDist(text, "atodene_worker_timer_lateness_seconds", `timer="poll"`)
	}
	dueCC.Stop()
	_ = sub.Unsubscribe()

	// Registration ended with the last credit.pending; re-checks scheduled after it are steady state.
	col.mu.Lock()
	var regEnd int64
	for _, at := range col.densePending {
		regEnd = max(regEnd, at)
	}
	finals := slices.Clone(col.denseFinal)
	col.mu.Unlock()
	res.RegisterSeconds = time.Duration(regEnd - start.UnixNano()).Seconds()
	res.RegisterRate = Rate(n, time.Duration(regEnd-start.UnixNano()))

	mu.Lock()
	bySched, schedAt := groupByOrder(scheds, n, func(s schedRec) uint32 { return s.order })
	byDue, dueAt := groupByOrder(dues, n, func(d dueRec) uint32 { return d.order })
	scheds, dues = nil, nil
	mu.Unlock()
	all := make([]time.Duration, 0, len(bySched))
	var steady, fired, handed []time.Duration
	perSecond, firedPerSecond := map[int64]int{}, map[int64]int{}
	polls := 0
	for i := range n {
		ev := bySched[schedAt[i]:schedAt[i+1]]
		if len(ev) >= 2 {
			res.RecheckedUnderReview++
		}
		due := byDue[dueAt[i]:dueAt[i+1]]
		fired = fireLateness(fired, ev, due)
		for _, sc := range ev {
			handed = append(handed, time.Duration(sc.seen-sc.at))
		}
		for _, d := range due {
			firedPerSecond[d.at/int64(time.Second)]++
		}
		polls += len(ev)
		if finals[i] == 0 {
			polls-- // its last re-check did not run
		}
		if res.Held && len(ev) > 1 {
			// The worker published each next schedule shortly before it was due, not while it
			// handled the re-check before: only the last re-check, which decided, is measured.
			ev = ev[len(ev)-1:]
		}
		from := len(all)
		all = pollLateness(all, ev, finals[i])
		for k, d := range all[from:] {
			if ev[k].at > regEnd {
				steady = append(steady, d)
			}
			perSecond[(ev[k].at+int64(d))/int64(time.Second)]++
		}
	}
	if res.Held { // the re-checks handled are not all measured: count them as NATS fired them
		perSecond = firedPerSecond
	}
	for _, c := range perSecond {
		res.BusiestSecond = max(res.BusiestSecond, c)
	}
	res.Polls = polls
	res.Late, res.LateSteady, res.Fired, res.Published = Summarize(all), Summarize(steady), Summarize(fired), Summarize(handed)
	res.Timeline = tl.rows
	if st, err := procStatus(os.Getpid()); err == nil {
		res.BenchRSSPeakMB = float64(st["VmHWM"]) / 1024
	}

	// Delete the scenario's keys now, timed (the run deletes whatever is left at its end).
	dstart := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err = redisadmin.DeleteKeys(dctx, r.rdb, s.Prefix)
	cancel()
	res.DeleteSeconds = time.Since(dstart).Seconds()
	res.DeletedKeys = int64(res.AtPeak.KeysPerOrder*float64(n)) + int64(len(sharedKeys(s.Prefix)))
	if err != nil {
		fmt.Fprintf(r.out, "deleting the scenario's keys: %v\n", err)
	}
	r.report.Pending = res
	if err := pendingTable(res).Render(r.out); err != nil {
		return err
	}
	return timelineTable("Pending at scale: timeline", res.Timeline, firedPerSecond, start).Render(r.out)
}

// The pending scenario measures the throughput it plans from with pendingCalibrateOrders when it
// puts pendingCalibrateMin orders or more under review and the throughput scenario did not run.
const (
	pendingCalibrateMin    = 50000
	pendingCalibrateOrders = 10000
)

// calibratePending measures one worker's throughput on this machine now, on a stack of its own:
// n auto-approved orders published before the worker starts, from the first final outcome to the
// last. It returns the rate and the cores busy outside the stack meanwhile.
func (r *runner) calibratePending(ctx context.Context, n int) (rate, other float64, err error) {
	s, col, err := r.preloaded(ctx, "pending-calibrate", sandboxOpts{}, "C", n)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	defer col.stop()
	win := s.window()
	if err := s.startWorkers(ctx, 1, workerOpts{concurrency: r.settings.Concurrency}); err != nil {
		return 0, 0, err
	}
	if err := col.wait(ctx, n, 30*time.Second); err != nil {
		return 0, 0, err
	}
	other = win.otherCores()
	first, last, got := span(col.finalsOf("C"))
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_ = redisadmin.DeleteKeys(dctx, r.rdb, s.Prefix)
	return Rate(got-1, last.Sub(first)), other, nil
}

func pendingTable(res *PendingResult) Table {
	n := res.Orders
	perOrder := func(b int64) string { return fmt.Sprintf("%s B/order", thousands(b/int64(max(n, 1)))) }
	t := Table{Title: fmt.Sprintf("Pending at scale: %s orders under review at once", thousands(res.PeakPending)),
		Columns: []string{"measure", "value"}}
	t.Add("orders published / settled (credit.ok)", fmt.Sprintf("%s / %s", thousands(int64(n)), thousands(int64(res.Settled))))
	t.Add("registration (publish → last credit.pending)", fmt.Sprintf("%s s (%s orders/s)", num(res.RegisterSeconds), thousands(int64(res.RegisterRate))))
	t.Add("under review at once: Redis set / bench's count", fmt.Sprintf("%s / %s (peak at %s s)",
		thousands(res.PeakPending), thousands(res.PeakPendingBench), num(res.PeakAtSeconds)))
	t.Add("worker RSS idle → peak (VmHWM)", fmt.Sprintf("%s → %s MB", num(res.WorkerRSSIdleMB), num(res.WorkerRSSPeakMB)))
	t.Add("NATS server RSS idle → peak (VmHWM)", fmt.Sprintf("%s → %s MB", num(res.NATSRSSIdleMB), num(res.NATSRSSPeakMB)))
	t.Add("sandbox / bench RSS peak (VmHWM)", fmt.Sprintf("%s / %s MB", num(res.SandboxRSSPeakMB), num(res.BenchRSSPeakMB)))
	p := res.AtPeak
	t.Add(fmt.Sprintf("at the peak snapshot (%s under review, %s s)", thousands(p.Pending), num(p.Seconds)), "")
	t.Add("  Redis: MEMORY USAGE, sampled orders × orders + shared keys", fmt.Sprintf("%s MB, %s (%s sampled; shared keys %s MB; %s keys/order)",
		num(float64(p.RedisSampled)/(1<<20)), perOrder(p.RedisSampled), thousands(int64(p.SampledOrders)),
		num(float64(p.RedisShared)/(1<<20)), num(p.KeysPerOrder)))
	t.Add("  Redis: used_memory growth (shared server)", fmt.Sprintf("%s MB, %s", num(float64(p.RedisUsedGrowth)/(1<<20)), perOrder(p.RedisUsedGrowth)))
	var total uint64
	for _, st := range p.Streams {
		total += st.Bytes
		t.Add("  NATS stream "+st.Name, fmt.Sprintf("%s msgs, %s MB, %s", thousands(int64(st.Msgs)), num(float64(st.Bytes)/(1<<20)), perOrder(int64(st.Bytes))))
	}
	t.Add("  NATS streams together", fmt.Sprintf("%s MB, %s", num(float64(total)/(1<<20)), perOrder(int64(total))))
	t.Add("re-checks (orders re-checked while under review)", fmt.Sprintf("%s (%s); busiest second %s", thousands(int64(res.Polls)),
		thousands(int64(res.RecheckedUnderReview)), thousands(int64(res.BusiestSecond))))
	which := "all re-checks"
	if res.Held {
		which = "the deciding re-checks"
	}
	t.Add("late p50 / p90 / p99 / max, "+which, latenessText(res.Late))
	t.Add("late p50 / p90 / p99 / max, "+which+" after registration ended", latenessText(res.LateSteady))
	t.Add("every re-check, due → handling began (worker's histogram)", res.Begun.String())
	t.Add("of which NATS fired late (due stored − @at)", latenessText(res.Fired))
	t.Add("schedule published − @at (negative: ahead of time)", latenessText(res.Published))
	t.Add("deleting the run's Redis keys (SCAN + UNLINK)", fmt.Sprintf("%s s (≈ %s keys)", num(res.DeleteSeconds), thousands(res.DeletedKeys)))
	t.Add("scenario; other load", fmt.Sprintf("%s s; %s cores", num(res.Seconds), num(res.OtherCores)))
	t.Notes = []string{"targets: worker RSS ≤ 300 MB; re-checks ≤ 2 s late at p99",
		"late = when the worker handled a re-check (it publishes the next schedule, or the final outcome) − the @at it scheduled it for;",
		"with re-checks held in Redis (delays beyond -poll-handoff-ahead), a next schedule is published shortly before it is due, so only the deciding re-checks are measured so"}
	return t
}

// HistDist is a distribution estimated from a Prometheus histogram (HistogramQuantile), in ms.
type HistDist struct {
	N   int64   `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	// P99Bucket is the upper bound of the bucket that holds the p99: the p99 is at most that.
	P99Bucket float64 `json:"p99_bucket_ms"`
}

// histogramDist estimates the distribution of a histogram in seconds from a text exposition.
func histogramDist(text, metric string, labels ...string) HistDist {
	var d HistDist
	var n float64
	d.P50, _, _ = HistogramQuantile(text, metric, 0.5, labels...)
	d.P90, _, _ = HistogramQuantile(text, metric, 0.9, labels...)
	d.P99, n, d.P99Bucket = HistogramQuantile(text, metric, 0.99, labels...)
	d.N = int64(n)
	d.P50, d.P90, d.P99, d.P99Bucket = d.P50*1000, d.P90*1000, d.P99*1000, d.P99Bucket*1000
	return d
}

func (d HistDist) String() string {
	if d.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%s / %s / %s ms (p99 ≤ %s ms; n = %s)", num(d.P50), num(d.P90), num(d.P99), num(d.P99Bucket), thousands(d.N))
}

func latenessText(d Dist) string {
	if d.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%s / %s / %s / %s ms (n = %s)", num(d.P50), num(d.P90), num(d.P99), num(d.Max), thousands(int64(d.N)))
}

// sharedKeys are the keys of the bench shop that all its orders share: the under-review set, the
// timers, the held re-checks and the order index.
func sharedKeys(prefix string) []string {
	base := prefix + "index:{" + benchShop + "}:"
	return []string{prefix + "pending:{" + benchShop + "}", prefix + "timers:{" + benchShop + "}", prefix + "held:{" + benchShop + "}",
		base + "changed", base + "ordered", base + "id", base + "summary"}
}

// pendingSampleOrders is how many orders' keys a snapshot measures with MEMORY USAGE.
const pendingSampleOrders = 200

// pendingSnapshot measures what Redis and NATS hold with pending orders under review and
// registered of spec: MEMORY USAGE of the keys of pendingSampleOrders orders among the
// registered, scaled to them, and of the shared keys; used_memory growth; the streams' sizes.
func (r *runner) pendingSnapshot(ctx context.Context, s *benchStack, spec orderSpec, pending, registered, redisBefore int64) PendingSnapshot {
	snap := PendingSnapshot{Pending: pending, RedisUsedGrowth: r.redisUsedBytes(ctx) - redisBefore}
	for _, name := range []string{ordersStream, resultsStream, pollStream} {
		if st, err := s.JS.Stream(ctx, name); err == nil {
			if info, err := st.Info(ctx); err == nil {
				snap.Streams = append(snap.Streams, StreamSize{Name: name, Msgs: info.State.Msgs, Bytes: info.State.Bytes})
			}
		}
	}
	if registered <= 0 {
		return snap
	}
	pipe := r.rdb.Pipeline()
	var cmds []*redisIntCmd
	for range pendingSampleOrders {
		order := spec.id(rand.IntN(int(min(registered, int64(spec.n)))))
		for _, key := range []string{"order", "lease", "history", "inbox", "data"} {
			cmds = append(cmds, &redisIntCmd{pipe.MemoryUsage(ctx, s.Prefix+key+":{"+benchShop+"}:"+order), false})
		}
		id, _ := orderEvent(benchShop, order, spec.email, time.Time{})
		cmds = append(cmds, &redisIntCmd{pipe.MemoryUsage(ctx, s.Prefix+"event:{"+benchShop+"}:"+events.EventKey("atodene-bench", id)), false})
	}
	for _, key := range sharedKeys(s.Prefix) {
		cmds = append(cmds, &redisIntCmd{pipe.MemoryUsage(ctx, key, 1000), true})
	}
	_, _ = pipe.Exec(ctx) // a missing key answers nil: an error of its command only
	var perOrder, keys int64
	for _, c := range cmds {
		v, err := c.cmd.Result()
		if err != nil {
			continue
		}
		if c.shared {
			snap.RedisShared += v
		} else {
			perOrder += v
			keys++
		}
	}
	snap.SampledOrders = pendingSampleOrders
	snap.KeysPerOrder = float64(keys) / pendingSampleOrders
	snap.RedisSampled = perOrder*registered/pendingSampleOrders + snap.RedisShared
	return snap
}

// redisIntCmd is a MEMORY USAGE of a pipeline: of an order's key, or of a shared one.
type redisIntCmd struct {
	cmd    *redis.IntCmd
	shared bool
}

// redisUsedBytes is Redis's used_memory in bytes (of the whole, shared server).
func (r *runner) redisUsedBytes(ctx context.Context) int64 {
	n, _ := strconv.ParseInt(r.redisInfo(ctx, "memory")["used_memory"], 10, 64)
	return n
}
