package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/consumer"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

type metrics struct {
	calls       *prometheus.CounterVec
	callSeconds *prometheus.HistogramVec
	deadLetters *prometheus.CounterVec
	// publishFailures counts outcome publishes that failed (each is retried).
	publishFailures prometheus.Counter
	// leaseWaits counts handlers that found their order's lease held, by what the event did then.
	leaseWaits *prometheus.CounterVec
	// The writes of order state, index entries and history entries the worker made in Redis.
	stateWrites, indexWrites, historyEntries prometheus.Counter
	// reauthorizations counts re-authorizations by how they ended.
	reauthorizations *prometheus.CounterVec
	// timerLateness observes how late each due timer began to be handled, by its kind.
	timerLateness *prometheus.HistogramVec
}

// newMetrics registers the worker's own metrics with reg, creating the dead-letter series of every
// reason at zero: an alert on any increase then fires on the first dead letter after a restart.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atodene_worker_provider_calls_total",
			Help: "ATODENE calls (attempts) by operation (transaction, getauthori, shippingrequest, modifytransaction, getinvoicedata) and result: ok, rejected, not-sent, outcome-unknown, http-error, malformed, invalid.",
		}, []string{"op", "result"}),
		callSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "atodene_worker_provider_call_seconds",
			Help:    "ATODENE call latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"op"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atodene_worker_dead_letters_total",
			Help: "Dead letters stored, by reason; each counted once, whichever path wrote it.",
		}, []string{"reason"}),
		publishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atodene_worker_outcome_publish_failures_total",
			Help: "Publishes of outcome events that failed (JetStream did not store them, or holds another outcome under the same message ID); the step is retried.",
		}),
		leaseWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atodene_worker_lease_waits_total",
			Help: "Handlers that found their order's lease held by another, by what the event did then: queued (in the order's inbox), waited, went-round (through its kept copy).",
		}, []string{"then"}),
		stateWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atodene_worker_state_writes_total",
			Help: "Order state versions this worker wrote to Redis.",
		}),
		indexWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atodene_worker_index_writes_total",
			Help: "Order-index entries this worker wrote to Redis, with a state write whose index entry changed.",
		}),
		historyEntries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atodene_worker_history_entries_total",
			Help: "Entries this worker appended to order histories in Redis.",
		}),
		reauthorizations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atodene_worker_reauthorizations_total",
			Help: "Re-authorizations by how they ended: ok (the order on the new transaction, the old one cancelled), pending (the new one under review; counted again when decided), ng, invalid, unknown, no-data, review-deadline (the order stays on its old transaction).",
		}, []string{"result"}),
		timerLateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "atodene_worker_timer_lateness_seconds",
			Help:    "How late a due timer began to be handled, from the time it was due to when its handler started, by timer: poll (a re-check), parked, inbox, retry, reauth.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800},
		}, []string{"timer"}),
	}
	reg.MustRegister(m.calls, m.callSeconds, m.deadLetters, m.publishFailures, m.leaseWaits, m.stateWrites, m.indexWrites, m.historyEntries, m.reauthorizations, m.timerLateness)
	for _, reason := range handlers.Reasons() {
		m.deadLetters.WithLabelValues(reason)
	}
	for _, then := range []string{handlers.LeaseQueued, handlers.LeaseWaited, handlers.LeaseWentRound} {
		m.leaseWaits.WithLabelValues(then)
	}
	for _, result := range handlers.ReauthResults() {
		m.reauthorizations.WithLabelValues(result)
	}
	for _, kind := range []string{"poll", handlers.TimerParked, handlers.TimerInbox, handlers.TimerRetry, handlers.TimerReauth} {
		m.timerLateness.WithLabelValues(kind)
	}
	return m
}

// timerDue observes how late a due timer's handling began (req.At is when it was due; a timer
// scheduled by an earlier version, without it, is not observed).
func (m *metrics) timerDue(req handlers.PollRequest, now time.Time) {
	if req.At.IsZero() {
		return
	}
	kind := req.Kind
	if kind == handlers.TimerPoll {
		kind = "poll"
	}
	m.timerLateness.WithLabelValues(kind).Observe(max(now.Sub(req.At), 0).Seconds())
}

// written counts what a write of the order store stored (orderstate.Config.Written).
func (m *metrics) written(w orderstate.Written) {
	m.stateWrites.Add(float64(w.States))
	m.indexWrites.Add(float64(w.Index))
	m.historyEntries.Add(float64(w.History))
}

// observeCall counts one ATODENE attempt under its operation's name without the ".do" of its path
// (transaction.do → transaction).
func (m *metrics) observeCall(op string, d time.Duration, err error) {
	op = strings.TrimSuffix(op, ".do")
	m.calls.WithLabelValues(op, callResult(err)).Inc()
	m.callSeconds.WithLabelValues(op).Observe(d.Seconds())
}

// registerRuntime registers the Go runtime and process collectors and atodene_worker_build_info
// with reg, leaving any that reg holds already.
func registerRuntime(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
	} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}

// buildInfo is atodene_worker_build_info: 1, with the binary's module version, its VCS revision
// ("-modified" appended when built from a changed tree; "unknown" when not recorded) and the Go
// version, so that dashboards can tell which build runs where.
func buildInfo() prometheus.Collector {
	version, revision := "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && revision != "unknown" {
			revision += "-modified"
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "atodene_worker_build_info",
		Help:        "Always 1; the labels say which build of the worker runs: module version, VCS revision, Go version.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}

func callResult(err error) string {
	var (
		re *atodene.RejectedError
		se *atodene.StatusError
		me *atodene.MalformedResponseError
	)
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &re):
		return "rejected"
	case atodene.IsRetrySafe(err):
		return "not-sent"
	case errors.As(err, &se):
		return "http-error"
	case errors.As(err, &me):
		return "malformed"
	case atodene.OutcomeUnknown(err):
		return "outcome-unknown"
	}
	return "invalid"
}

// pendingGauge reports the orders under review across all workers and the age of the oldest,
// read from Redis at scrape time in one round trip (orderstate.Store.UnderReview; within 1 s).
// When Redis cannot be read the gauges have no sample, since any value would be graphed and summed
// as a count, and atodene_worker_orders_under_review_read_errors_total grows instead.
func pendingGauge(read func(context.Context) (orderstate.UnderReview, error), now func() time.Time) prometheus.Collector {
	return &pendingCollector{read: read, now: now, errors: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "atodene_worker_orders_under_review_read_errors_total",
		Help: "Scrapes whose read of the orders under review from Redis failed: atodene_worker_orders_under_review and atodene_worker_orders_under_review_oldest_age_seconds have no sample then.",
	})}
}

type pendingCollector struct {
	read   func(context.Context) (orderstate.UnderReview, error)
	now    func() time.Time
	errors prometheus.Counter
}

var (
	pendingDesc = prometheus.NewDesc("atodene_worker_orders_under_review",
		"Orders under review (審査中 or 保留) waiting for a decision, across all workers; no sample when Redis could not be read.", nil, nil)
	pendingAgeDesc = prometheus.NewDesc("atodene_worker_orders_under_review_oldest_age_seconds",
		"Age of the oldest order under review (審査中 or 保留), across all workers, since the shop took it (its ordered_at); 0 when none is; no sample when Redis could not be read.", nil, nil)
)

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- pendingAgeDesc
	c.errors.Describe(ch)
}

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if r, err := c.read(ctx); err != nil {
		c.errors.Inc()
	} else {
		age := 0.0
		if !r.Oldest.IsZero() {
			age = max(c.now().Sub(r.Oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(r.Count))
		ch <- prometheus.MustNewConstMetric(pendingAgeDesc, prometheus.GaugeValue, age)
	}
	c.errors.Collect(ch) // after the read, so that this scrape shows its own failure
}

// health answers /healthz (the process runs) and /readyz (started, NATS connected, Redis
// answers). A ready worker's /readyz body also lists what works only in part (shops whose calls
// are stopped), one line each: the worker is still of use for every other shop.
type health struct {
	ready   atomic.Bool
	nc      *nats.Conn
	redis   interface{ Ping(context.Context) error }
	infra   *consumer.Infra
	details func() []string
}

func newHealth(nc *nats.Conn, r interface{ Ping(context.Context) error }, infra *consumer.Infra, details func() []string) *health {
	return &health{nc: nc, redis: r, infra: infra, details: details}
}

func (h *health) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if not := h.notReady(ctx); not != "" {
		http.Error(w, not, http.StatusServiceUnavailable)
		return
	}
	body := "ok\n"
	for _, d := range h.details() {
		body += d + "\n"
	}
	_, _ = w.Write([]byte(body))
}

// notReady says why /readyz answers 503, or returns "" when it answers 200.
func (h *health) notReady(ctx context.Context) string {
	failing, server := h.failing(), checkServer(h.nc)
	switch {
	case !h.ready.Load():
		return "not ready: starting or stopping"
	case !h.nc.IsConnected():
		return "not ready: NATS disconnected"
	case server != nil:
		// Reconnected to another server of the list, one without message schedules.
		return "not ready: " + server.Error()
	case h.redis.Ping(ctx) != nil:
		return "not ready: Redis does not answer"
	case failing != "":
		return failing
	}
	return ""
}

// readyGauge is atodene_worker_ready: 1 when /readyz would answer 200, else 0 (Redis asked within
// 1 s), so that an alert needs no probe of its own.
func readyGauge(h *health) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "atodene_worker_ready",
		Help: "1 when the worker is ready (/readyz answers 200: started, NATS connected, Redis answers, writes to Redis and JetStream succeed), else 0.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if h.notReady(ctx) != "" {
			return 0
		}
		return 1
	})
}

// failing describes a failure of Redis or JetStream that keeps messages waiting (a full store
// refusing the worker's writes, for instance), or returns "".
func (h *health) failing() string {
	since, err, failing := h.infra.Failing()
	if !failing {
		return ""
	}
	return fmt.Sprintf("not ready: writes to Redis or JetStream fail since %s, %d messages kept and retried: %v",
		since.UTC().Format(time.RFC3339), h.infra.Waiting(), err)
}

// waitingGauge reports the messages kept waiting for Redis or JetStream.
func waitingGauge(infra *consumer.Infra) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "atodene_worker_messages_waiting_for_infrastructure",
		Help: "Messages kept and retried in place because Redis or JetStream fails (a full store, an outage); such failures use up no delivery.",
	}, func() float64 { return float64(infra.Waiting()) })
}

// refusalDetails lists the shops whose calls to ATODENE are stopped, for /readyz.
func refusalDetails(r *handlers.Refusals) func() []string {
	return func() []string {
		var out []string
		for _, f := range r.Snapshot() {
			out = append(out, fmt.Sprintf("shop %s: calls to ATODENE stopped since %s, next try %s: ATODENE refuses the account (%s); its events are dead-lettered as %s",
				f.Shop, f.Since.UTC().Format(time.RFC3339), f.RetryAt.UTC().Format(time.RFC3339), f.Detail, handlers.ReasonAccountRefused))
		}
		return out
	}
}

// refusalCollector exports, per shop whose calls are stopped, since when (Unix seconds).
type refusalCollector struct{ r *handlers.Refusals }

var refusedDesc = prometheus.NewDesc("atodene_worker_shop_calls_stopped_since_seconds",
	"Shops whose calls to ATODENE are stopped because ATODENE refuses the merchant's account (link password, shop code): the Unix time of the first refusal. Absent while calls go through.",
	[]string{"shop"}, nil)

func (c refusalCollector) Describe(ch chan<- *prometheus.Desc) { ch <- refusedDesc }

func (c refusalCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.r.Snapshot() {
		ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.GaugeValue, float64(f.Since.Unix()), f.Shop)
	}
}

func httpHandler(reg *prometheus.Registry, h *health) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", h.readyz)
	return mux
}
