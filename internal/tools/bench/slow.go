package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// SlowResult is one run of the slow-provider scenario.
type SlowResult struct {
	Consumer     string  `json:"consumer"`
	Concurrency  int     `json:"concurrency"`
	Orders       int     `json:"orders"`
	OrdersPerSec float64 `json:"orders_per_second"`
	// Ceiling is concurrency / provider latency: Little's law's bound with every slot busy.
	Ceiling    float64 `json:"ceiling_per_second"`
	VsBaseline float64 `json:"ratio_to_baseline,omitempty"`
	// InFlightMean and InFlightMax are the consumer's unacknowledged messages (NumAckPending),
	// sampled every 250 ms while the backlog drained.
	InFlightMean float64 `json:"in_flight_mean"`
	InFlightMax  int     `json:"in_flight_max"`
	// Redelivered is deliveries beyond the first of each message: the consumer's delivered
	// sequence (one per delivery) minus the orders. Naks is how many of those the consumer asked
	// for (handler retries, from the worker's metrics or the baseline's log); AckTimeouts is the
	// rest: deliveries that ran out of AckWait.
	Redelivered int `json:"redelivered"`
	Naks        int `json:"naks"`
	AckTimeouts int `json:"ack_timeout_redeliveries"`
	// HandlerMeanMS and ProviderMeanMS are the worker's mean handler time and mean ATODENE call
	// time, from its metrics: the difference is what an order spends in the worker, Redis and
	// NATS around the provider call.
	HandlerMeanMS  float64 `json:"handler_mean_ms,omitempty"`
	ProviderMeanMS float64 `json:"provider_call_mean_ms,omitempty"`
}

// slowProvider drains a backlog with the sandbox answering every call after 200 ms: at the
// worker's default concurrency, at a higher one, and the baseline at the default.
func (r *runner) slowProvider(ctx context.Context) error {
	st := r.settings
	lat := time.Duration(st.SlowLatencyMS) * time.Millisecond
	fmt.Fprintf(r.out, "3. Slow provider: sandbox at %d ms per call, %d orders published before the consumer starts\n", st.SlowLatencyMS, st.SlowOrders)
	var out []SlowResult
	base, err := r.slowRun(ctx, "baseline", st.Concurrency, lat)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	out = append(out, base)
	for _, c := range st.SlowConcurrency {
		res, err := r.slowRun(ctx, "worker", c, lat)
		if err != nil {
			return fmt.Errorf("worker at concurrency %d: %w", c, err)
		}
		if c == base.Concurrency {
			res.VsBaseline = Ratio(res.OrdersPerSec, base.OrdersPerSec)
		}
		out = append(out, res)
	}
	r.report.Slow = out
	t := Table{Title: fmt.Sprintf("Slow provider (%d ms per call)", st.SlowLatencyMS),
		Columns: []string{"consumer", "concurrency", "orders", "orders/s", "ceiling/s", "vs baseline", "in flight mean", "in flight max",
			"redelivered", "of which Nak", "ack timeouts", "handler ms", "provider call ms"}}
	for _, s := range out {
		handler, call := "-", "-"
		if s.HandlerMeanMS > 0 {
			handler, call = num(s.HandlerMeanMS), num(s.ProviderMeanMS)
		}
		t.Add(s.Consumer, s.Concurrency, thousands(int64(s.Orders)), num(s.OrdersPerSec), num(s.Ceiling), ratio(s.VsBaseline),
			num(s.InFlightMean), thousands(int64(s.InFlightMax)), s.Redelivered, s.Naks, s.AckTimeouts, handler, call)
	}
	t.Notes = []string{"target: ≥ 2,000 orders/s with zero redeliveries caused by ack timeouts",
		"ceiling = concurrency / latency (Little's law): -concurrency bounds the calls in flight, so it bounds the rate",
		"in flight = the consumer's NumAckPending (delivered, not yet acknowledged), sampled every 250 ms",
		"handler ms − provider call ms = time per order in the worker, Redis and NATS around the ATODENE call (worker metrics, means)"}
	return t.Render(r.out)
}

func (r *runner) slowRun(ctx context.Context, consumer string, concurrency int, lat time.Duration) (SlowResult, error) {
	n := r.settings.SlowOrders
	res := SlowResult{Consumer: consumer, Concurrency: concurrency, Orders: n, Ceiling: float64(concurrency) / lat.Seconds()}
	s, col, err := r.preloaded(ctx, "slow-"+consumer+"-"+strconv.Itoa(concurrency), sandboxOpts{latency: lat}, "S", n)
	if err != nil {
		return res, err
	}
	defer s.Close()
	defer col.stop()
	durable := ordersConsumer
	if consumer == "baseline" {
		err = s.startBaseline(ctx, concurrency)
		durable = baselineConsumer
	} else {
		err = s.startWorkers(ctx, 1, workerOpts{concurrency: concurrency})
	}
	if err != nil {
		return res, err
	}
	profDone := r.profileDuring(ctx, s, fmt.Sprintf("slow-%s-%d", consumer, concurrency), max(2, int(float64(n)/res.Ceiling*0.6)))

	// Sample the consumer's in-flight count while the backlog drains.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var samples []int
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
				if ci, err := s.consumerInfo(sampleCtx, ordersStream, durable); err == nil && ci.NumPending > 0 {
					samples = append(samples, ci.NumAckPending)
				}
			}
		}
	})
	err = col.wait(ctx, n, 60*time.Second)
	stopSampling()
	wg.Wait()
	<-profDone
	if err != nil {
		return res, err
	}
	first, last, got := span(col.finalsOf("S"))
	res.OrdersPerSec = Rate(got-1, last.Sub(first))
	sum := 0
	for _, v := range samples {
		sum += v
		res.InFlightMax = max(res.InFlightMax, v)
	}
	res.InFlightMean = Ratio(float64(sum), float64(len(samples)))
	ci, err := s.consumerInfo(ctx, ordersStream, durable)
	if err != nil {
		return res, err
	}
	res.Redelivered = max(0, int(ci.Delivered.Consumer)-n)
	if consumer == "worker" {
		res.Naks = int(s.retries(ctx))
	} else {
		res.Naks = countLines(s.Workers[0].Log, "baseline: ")
	}
	res.AckTimeouts = max(0, res.Redelivered-res.Naks)
	if consumer == "worker" {
		hs, hc := s.sumMetric(ctx, "atodene_worker_handler_seconds_sum"), s.sumMetric(ctx, "atodene_worker_handler_seconds_count")
		ps, pc := s.sumMetric(ctx, "atodene_worker_provider_call_seconds_sum"), s.sumMetric(ctx, "atodene_worker_provider_call_seconds_count")
		res.HandlerMeanMS, res.ProviderMeanMS = Ratio(hs, hc)*1000, Ratio(ps, pc)*1000
	}
	return res, nil
}
