package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// TracingResult compares the throughput of one worker with tracing off (the default) and on
// (OTLP/HTTP through the SDK's batch span processor to a receiver in the bench that discards
// what it gets), in the same run, alternating: off, on, three times.
type TracingResult struct {
	Runs []ThroughputResult `json:"runs"`
	// OnVsOff is the orders/s of the runs with tracing on over those with it off (summed).
	OnVsOff float64 `json:"on_vs_off"`
	// PairRatios is each pair's on over off, in run order: the spread of OnVsOff on a noisy
	// machine.
	PairRatios []float64 `json:"pair_ratios"`
	// ExportRequests and ExportBytes are what the receiver got: proof that spans were exported.
	ExportRequests int64 `json:"export_requests"`
	ExportBytes    int64 `json:"export_bytes"`
}

// tracingPairs is how many times the tracing scenario drains with tracing off then on.
const tracingPairs = 3

// tracing runs the throughput drain with one worker, tracing off and on, tracingPairs times each.
func (r *runner) tracing(ctx context.Context) error {
	n := r.settings.ThroughputOrders
	fmt.Fprintf(r.out, "8. Tracing: %d orders (auto OK) drained by one worker with tracing off and on (OTLP/HTTP, batch span processor, to a receiver that discards), alternating\n", n)
	recv, err := startDiscardReceiver()
	if err != nil {
		return err
	}
	defer recv.close()
	on := []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://" + recv.addr + "/v1/traces", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"}
	res := &TracingResult{}
	var rateOn, rateOff float64
	for i := range 2 * tracingPairs {
		traced := i%2 == 1
		name, wo := "tracing off", workerOpts{}
		if traced {
			name, wo.env = "tracing on", on
		}
		run, err := r.drain(ctx, drainSpec{name: name, dir: fmt.Sprintf("tracing-%d", i+1), workers: 1, worker: wo,
			orders: orderSpec{shop: benchShop, prefix: fmt.Sprintf("TR%d", i+1), n: n, email: emailOK}})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if traced {
			rateOn += run.OrdersPerSec
			res.PairRatios = append(res.PairRatios, Ratio(run.OrdersPerSec, res.Runs[i-1].OrdersPerSec))
		} else {
			rateOff += run.OrdersPerSec
		}
		res.Runs = append(res.Runs, run)
	}
	res.OnVsOff = Ratio(rateOn, rateOff)
	res.ExportRequests, res.ExportBytes = recv.requests.Load(), recv.bytes.Load()
	r.report.Tracing = res

	t := Table{Title: "Tracing (publish → final outcome, one worker)",
		Columns: []string{"run", "orders", "seconds", "orders/s", "CPU ms/order: consumer", "bench (receiver)", "total", "other load"}}
	for _, run := range res.Runs {
		c := run.CPUPerOrderMS
		t.Add(run.Name, thousands(int64(run.Orders)), num(run.Seconds), num(run.OrdersPerSec), num(c["worker"]), num(c["bench"]), num(c["total"]), num(run.OtherCores))
	}
	t.Notes = []string{
		fmt.Sprintf("tracing on / off: %s of the orders/s (target ≥ 0.95); each pair: %s", ratio(res.OnVsOff), pairRatios(res.PairRatios)),
		fmt.Sprintf("exported: %d OTLP requests, %s bytes, discarded by the bench", res.ExportRequests, thousands(res.ExportBytes)),
		"off is the default: no provider, no exporter, no batcher; on: a consumer span per message with children for the store's calls, the ATODENE operation (its HTTP request's attributes on it), and the outcome's publish",
	}
	return t.Render(r.out)
}

func pairRatios(rs []float64) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = ratio(r)
	}
	return strings.Join(out, ", ")
}

// discardReceiver is an OTLP/HTTP trace receiver that answers every export with success and keeps
// nothing but counts.
type discardReceiver struct {
	addr     string
	srv      *http.Server
	requests atomic.Int64
	bytes    atomic.Int64
	done     chan struct{}
}

func startDiscardReceiver() (*discardReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d := &discardReceiver{addr: ln.Addr().String(), done: make(chan struct{})}
	d.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n, _ := io.Copy(io.Discard, req.Body)
		d.requests.Add(1)
		d.bytes.Add(n)
		// An empty ExportTraceServiceResponse: zero bytes of protobuf.
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})}
	go func() {
		defer close(d.done)
		if err := d.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Println("bench: the OTLP receiver stopped:", err)
		}
	}()
	return d, nil
}

func (d *discardReceiver) close() {
	_ = d.srv.Close()
	<-d.done
}
