package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// PendingResult is the pending-at-scale scenario.
type PendingResult struct {
	Orders          int     `json:"orders"`
	ReviewDelay     string  `json:"review_delay"`
	PollFirst       string  `json:"poll_first_delay"`
	PollMax         string  `json:"poll_max_interval"`
	RegisterSeconds float64 `json:"register_seconds"` // first publish → last credit.pending
	PeakPending     int64   `json:"peak_pending"`     // most orders under review at once (the pending set)
	WorkerRSSIdleMB float64 `json:"worker_rss_idle_mb"`
	WorkerRSSPeakMB float64 `json:"worker_rss_peak_mb"` // VmHWM at the end
	NATSRSSIdleMB   float64 `json:"nats_rss_idle_mb"`
	NATSRSSPeakMB   float64 `json:"nats_rss_peak_mb"`
	// RedisGrowthMB is used_memory at the peak minus before the run: the whole shared server.
	RedisGrowthMB float64 `json:"redis_used_memory_growth_mb"`
	// RedisKeysMB is MEMORY USAGE of one order's keys times the orders, plus the pending set at
	// its peak: the run's own share, whatever else the server holds.
	RedisKeysMB float64 `json:"redis_keys_mb_estimate"`
	Polls       int     `json:"polls"`
	// Late is, per re-check, the time the worker handled it minus the time it was scheduled
	// for (the Nats-Schedule @at the worker asked for). Steady counts only the re-checks
	// scheduled after the last registration.
	Late       Dist `json:"late"`
	LateSteady Dist `json:"late_steady"`
	// Fired is the part of the lateness that is the NATS server's: when it stored the due
	// message minus the @at.
	Fired   Dist    `json:"fired_late"`
	Settled int     `json:"settled"`
	Seconds float64 `json:"seconds"`
}

// schedEvent is one poll schedule the worker published: when it asked to be re-checked, and
// when the bench saw the schedule go by.
type schedEvent struct {
	at   time.Time // the @at of Nats-Schedule
	seen time.Time
}

// pollLateness returns how late each re-check of one order ran. The worker publishes a new
// schedule while it handles a re-check that finds the order still under review, and the final
// outcome while it handles the one that decides it, so re-check k was handled when schedule
// k+1 was published, or, for the last, when the final outcome was stored. scheds must be in the
// order they were published; a zero final leaves the last re-check out.
func pollLateness(scheds []schedEvent, final time.Time) []time.Duration {
	var out []time.Duration
	for i, s := range scheds {
		handled := final
		if i+1 < len(scheds) {
			handled = scheds[i+1].seen
		}
		if handled.IsZero() {
			continue
		}
		out = append(out, handled.Sub(s.at))
	}
	return out
}

// fireLateness returns how late the NATS server fired each schedule of one order: each due
// message's stored time minus the latest @at at or before it. dues are the due messages' times.
func fireLateness(scheds []schedEvent, dues []time.Time) []time.Duration {
	var out []time.Duration
	for _, due := range dues {
		var at time.Time
		for _, s := range scheds {
			if !s.at.After(due) && s.at.After(at) {
				at = s.at
			}
		}
		if !at.IsZero() {
			out = append(out, due.Sub(at))
		}
	}
	return out
}

// pending puts many orders under review at once (the sandbox keeps them in review for longer
// than registering them all takes), lets the worker re-check them on a short schedule until the
// sandbox approves them, and measures memory and how late the re-checks run.
func (r *runner) pending(ctx context.Context) error {
	st := r.settings
	n := st.PendingOrders
	rate := r.workerRate
	if rate == 0 {
		rate = 1500
	}
	register := time.Duration(float64(n) / rate * float64(time.Second))
	review := max(st.pendingMinReview, register*3/2+2*st.pendingPollMax).Round(time.Second)
	res := &PendingResult{Orders: n, ReviewDelay: review.String(), PollFirst: st.pendingPollFirst.String(), PollMax: st.pendingPollMax.String()}
	fmt.Fprintf(r.out, "4. Pending at scale: %d orders under review (sandbox review delay %s), re-checked after %s, then every ≤ %s\n",
		n, review, st.pendingPollFirst, st.pendingPollMax)

	s, err := r.newStack(ctx, "pending", sandboxOpts{reviewDelay: review})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.createStreams(ctx); err != nil {
		return err
	}
	col, err := s.collect(ctx, false)
	if err != nil {
		return err
	}
	defer col.stop()

	var mu sync.Mutex
	scheds := map[string][]schedEvent{}
	sub, err := s.NC.Subscribe("atodene.poll.sched.>", func(m *nats.Msg) {
		seen := time.Now()
		var body struct {
			OrderID string `json:"order_id"`
		}
		at, err := time.Parse(time.RFC3339, strings.TrimPrefix(m.Header.Get("Nats-Schedule"), "@at "))
		if err != nil || json.Unmarshal(m.Data, &body) != nil {
			return
		}
		mu.Lock()
		scheds[body.OrderID] = append(scheds[body.OrderID], schedEvent{at: at, seen: seen})
		mu.Unlock()
	})
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, -1)

	if err := s.startWorkers(ctx, 1, workerOpts{concurrency: st.Concurrency, pollFirst: st.pendingPollFirst, pollMax: st.pendingPollMax}); err != nil {
		return err
	}
	w := s.Workers[0]
	dues := map[string][]time.Time{}
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
		mu.Lock()
		dues[body.OrderID] = append(dues[body.OrderID], md.Timestamp)
		mu.Unlock()
	})
	if err != nil {
		return err
	}
	defer dueCC.Stop()
	res.WorkerRSSIdleMB, res.NATSRSSIdleMB = rssMB(w.Proc().Pid()), rssMB(s.Nodes[0].Proc().Pid())
	redisBefore := r.redisUsedMB(ctx)

	// Sample the pending set, memory and Redis while the run lasts.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	heapTaken, peakTaken := false, false
	var pendingSetBytes int64
	wg.Go(func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
			p, err := r.rdb.SCard(sampleCtx, s.Prefix+"pending:{"+benchShop+"}").Result()
			if err != nil || p < res.PeakPending {
				continue
			}
			res.PeakPending = p
			res.RedisGrowthMB = max(res.RedisGrowthMB, r.redisUsedMB(sampleCtx)-redisBefore)
			if p == int64(n) && !peakTaken {
				peakTaken = true
				if v, err := r.rdb.MemoryUsage(sampleCtx, s.Prefix+"pending:{"+benchShop+"}", 0).Result(); err == nil {
					pendingSetBytes = v
				}
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

	start := time.Now()
	pub, err := newPublisher(s.NC)
	if err != nil {
		stopSampling()
		wg.Wait()
		return err
	}
	_, err = pub.publish(ctx, orderSpec{shop: benchShop, prefix: "P", n: n, email: emailReview}, 0)
	if err == nil {
		err = col.wait(ctx, n, review+2*st.pendingPollMax+30*time.Second)
	}
	stopSampling()
	wg.Wait()
	if err != nil {
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	res.Settled = int(col.nFinal.Load())
	if st, err := procStatus(w.Proc().Pid()); err == nil {
		res.WorkerRSSPeakMB = float64(st["VmHWM"]) / 1024
	}
	if st, err := procStatus(s.Nodes[0].Proc().Pid()); err == nil {
		res.NATSRSSPeakMB = float64(st["VmHWM"]) / 1024
	}
	res.RedisKeysMB = r.redisKeysMB(ctx, s.Prefix, orderSpec{shop: benchShop, prefix: "P", n: n}.id(0), n) + float64(pendingSetBytes)/(1<<20)

	// Registration ended with the last credit.pending; re-checks scheduled after it are steady state.
	col.mu.Lock()
	var regEnd time.Time
	for _, o := range col.pendings {
		if o.at.After(regEnd) {
			regEnd = o.at
		}
	}
	finals := map[string]time.Time{}
	for order, o := range col.finals {
		finals[order] = o.at
	}
	col.mu.Unlock()
	res.RegisterSeconds = regEnd.Sub(start).Seconds()
	var all, steady, fired []time.Duration
	mu.Lock()
	for order, ev := range scheds {
		fired = append(fired, fireLateness(ev, dues[order])...)
		late := pollLateness(ev, finals[order])
		all = append(all, late...)
		for i, d := range late {
			if ev[i].at.After(regEnd) {
				steady = append(steady, d)
			}
		}
	}
	mu.Unlock()
	res.Polls = len(all)
	res.Late, res.LateSteady, res.Fired = Summarize(all), Summarize(steady), Summarize(fired)
	r.report.Pending = res

	t := Table{Title: fmt.Sprintf("Pending at scale: %s orders under review at once", thousands(res.PeakPending)),
		Columns: []string{"measure", "value"}}
	t.Add("orders published / settled (credit.ok)", fmt.Sprintf("%s / %s", thousands(int64(n)), thousands(int64(res.Settled))))
	t.Add("registration (publish → last credit.pending)", num(res.RegisterSeconds)+" s")
	t.Add("worker RSS idle → peak (VmHWM)", fmt.Sprintf("%s → %s MB", num(res.WorkerRSSIdleMB), num(res.WorkerRSSPeakMB)))
	t.Add("NATS server RSS idle → peak (VmHWM)", fmt.Sprintf("%s → %s MB", num(res.NATSRSSIdleMB), num(res.NATSRSSPeakMB)))
	t.Add("Redis: this run's keys (MEMORY USAGE estimate)", num(res.RedisKeysMB)+" MB")
	t.Add("Redis: used_memory growth (shared server)", num(res.RedisGrowthMB)+" MB")
	t.Add("re-checks", thousands(int64(res.Polls)))
	t.Add("late p50 / p90 / p99 / max, all re-checks", latenessText(res.Late))
	t.Add("late p50 / p90 / p99 / max, after registration ended", latenessText(res.LateSteady))
	t.Add("of which NATS fired late (due stored − @at)", latenessText(res.Fired))
	t.Notes = []string{"targets: worker RSS ≤ 300 MB; re-checks ≤ 2 s late at p99",
		"late = when the worker handled a re-check (it publishes the next schedule, or the final outcome) − the @at it scheduled it for"}
	return t.Render(r.out)
}

func latenessText(d Dist) string {
	if d.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%s / %s / %s / %s ms (n = %s)", num(d.P50), num(d.P90), num(d.P99), num(d.Max), thousands(int64(d.N)))
}

// redisKeysMB estimates the memory of the run's order keys: one order's state and event record
// times n.
func (r *runner) redisKeysMB(ctx context.Context, prefix, order string, n int) float64 {
	var one int64
	for _, key := range []string{prefix + "order:{" + benchShop + "}:" + order,
		prefix + "event:{" + benchShop + "}:" + events.EventKey("atodene-bench", "bench-"+benchShop+"-"+order)} {
		if v, err := r.rdb.MemoryUsage(ctx, key).Result(); err == nil {
			one += v
		}
	}
	return float64(one) * float64(n) / (1 << 20)
}
