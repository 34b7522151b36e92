// Package worker assembles the running worker: JetStream streams and consumers, the Redis order
// store, one ATODENE client per shop, the handlers with their middleware, the poll scheduler,
// dead-lettering, and the HTTP endpoints for metrics and health.
package worker

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/consumer"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Deps are what the worker runs on.
type Deps struct {
	Settings config.Settings
	Shops    *config.Shops
	NATS     *nats.Conn
	Redis    redis.UniversalClient
	// KeyPrefix prefixes every Redis key. Default "atodene:".
	KeyPrefix string
	// HTTPClient calls ATODENE. Default: a client with keep-alive connections.
	HTTPClient *http.Client
	Logger     *zap.Logger
	// Registry receives the metrics; /metrics serves it. Default: a new registry.
	Registry *prometheus.Registry
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// HTTPListener, if set, serves /metrics, /healthz and /readyz instead of listening on
	// Settings.HTTPAddr. Run closes it.
	HTTPListener net.Listener
	// Tracing, if set, traces every message handled, continuing the trace its headers carry, with
	// children for the ATODENE calls (and their HTTP requests), the order store's calls and the
	// publishes, which carry the trace on (docs/observability.md#tracing). Default nil: nothing
	// traced, at no cost (otelenv.Setup returns nil when the environment does not ask for it).
	Tracing trace.TracerProvider
}

func (d Deps) withDefaults() Deps {
	if d.KeyPrefix == "" {
		d.KeyPrefix = "atodene:"
	}
	if d.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Keep a connection for every handler that may call at once; the default total of 100
		// closed and re-dialled connections all the time at a concurrency of 256.
		t.MaxIdleConnsPerHost, t.MaxIdleConns = max(64, d.Settings.Concurrency), 0
		d.HTTPClient = &http.Client{Transport: t}
	}
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// Run runs the worker until ctx is cancelled, then shuts down within the grace period: it stops
// fetching, lets in-flight messages finish or hands them back, and returns nil.
func Run(ctx context.Context, d Deps) error {
	d = d.withDefaults()
	s, log := d.Settings, d.Logger
	steps := newStartSteps()
	if err := checkServer(d.NATS); err != nil {
		return err
	}
	js, err := jetstream.New(d.NATS)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	streams := newStreamSetup(js, s, d.Redis, d.KeyPrefix, log)
	cs, err := streams.run(ctx)
	if err != nil {
		return err
	}
	if err := checkStoredFeatures(ctx, js); err != nil {
		return err
	}
	steps.done("streams")
	m := newMetrics(d.Registry)
	if err := registerRuntime(d.Registry); err != nil {
		return err
	}
	shops, err := buildShops(d, m)
	if err != nil {
		return err
	}
	// Every dead letter is written and counted through letters, whatever the path.
	letters := countedLetters{dlq.NewWriter(js), m.deadLetters}
	copies, err := newKept(ctx, js)
	if err != nil {
		return err
	}
	steps.done("metrics_shops_kept")
	repl := replication(ctx, d.Redis, s, log)
	steps.done("redis_replicas")
	// Closed when Run returns, after every goroutine that uses it has ended.
	store := orderstate.NewStore(d.Redis, orderstate.Config{Prefix: d.KeyPrefix, EventTTL: config.EventRecordTTL, Retention: s.Retention, Now: d.Now,
		Replication: repl, Written: m.written})
	defer store.Close()
	if err := store.CheckLayout(ctx, true); err != nil {
		return fmt.Errorf("-redis-url: %w", err)
	}
	steps.done("redis_layout")
	orders, err := handlers.NewOrders(handlers.OrdersConfig{
		Store:    store,
		Shops:    func(id string) (*handlers.Shop, bool) { sh, ok := shops[id]; return sh, ok },
		Outcomes: outcomes{js, m.publishFailures},
		Polls:    polls{js, d.Tracing, s.DLQStream},
		Kept:     copies,
		Poll:     handlers.PollPolicy{First: s.PollFirstDelay, Max: s.PollMaxInterval, Deadline: s.PollDeadline},
		// Dead letters of parked events are written and counted like every other.
		DeadLetters: handlerLetters{letters},
		ParkLimit:   s.ParkLimit,
		MaxAttempts: s.MaxDeliveries,
		// The lease outlives the longest handling of a message, so two handlers of one order never
		// overlap; a crashed holder's lease expires by itself.
		PollHoldAhead: s.PollHandoffAhead,
		LeaseTTL:      handlerTimeout(s) + 30*time.Second,
		LeaseHeld:     func(then string) { m.leaseWaits.WithLabelValues(then).Inc() },
		Reauthorized:  func(result string) { m.reauthorizations.WithLabelValues(result).Inc() },
		Now:           d.Now,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	mux := handlers.NewMux()
	mux.Handle(events.TypeOrderCreated, handlers.Typed(events.DecodeCreated, orders.OrderCreated))
	mux.Handle(events.TypeOrderUpdated, handlers.Typed(events.DecodeOrder, orders.OrderUpdated))
	mux.Handle(events.TypeOrderCancelled, handlers.Typed(events.DecodeCancel, orders.OrderCancelled))
	mux.Handle(events.TypeTrackingEntered, handlers.Typed(events.DecodeTracking, orders.TrackingEntered))
	mux.Handle(events.TypeInvoiceRequested, handlers.Typed(events.DecodeInvoiceRequest, orders.InvoiceRequested))
	mux.Handle(events.TypeRecheckRequested, handlers.Typed(events.DecodeRecheckRequest, orders.RecheckRequested))
	mux.Handle(events.TypeResolveRequested, handlers.Typed(events.DecodeResolveRequest, orders.ResolveRequested))

	// The types the metrics name messages by: the event types, and those of the timers and of
	// what cannot be read (set below and by the middleware).
	hm := handlers.NewMetrics(d.Registry, events.TypeOrderCreated, events.TypeOrderUpdated, events.TypeOrderCancelled,
		events.TypeTrackingEntered, events.TypeInvoiceRequested, events.TypeRecheckRequested, events.TypeResolveRequested,
		"poll", "park-deadline", "inbox", "undecoded")
	// Recover innermost, so that a panicking message still gets its log line and metric.
	common := []handlers.Middleware{handlers.Logging(log), hm.Middleware(), handlers.Recover(log)}
	// Idempotency lives in the handlers: an event is checked and recorded under its order's lease.
	orderHandler := handlers.Serve(mux.Decode, mux.Handler, common...)
	pollHandler := handlers.Serve(decodeTimer, func(ctx context.Context, msg *handlers.Message) error {
		req := msg.Head.Data.(handlers.PollRequest)
		if !msg.Replayed { // a replayed dead letter is late by the operator's choice
			m.timerDue(req, d.Now())
		}
		req.Replayed = msg.Replayed
		return orders.PollDue(ctx, req)
	}, common...)

	infra := &consumer.Infra{}
	cc := consumer.Config{
		Concurrency: s.Concurrency, AckWait: s.AckWait, MaxDeliver: s.MaxDeliveries, Grace: s.ShutdownGrace,
		HandlerTimeout: handlerTimeout(s),
		Logger:         log,
		Infra:          infra,
		Tracing:        d.Tracing,
		DeadLetter: func(ctx context.Context, msg jetstream.Msg, seen *handlers.Message, reason handlers.Reason, cause error) error {
			return letters.Write(ctx, dlq.FromMsg(msg, seen.StreamCreated, reason.String(), cause, d.Now()))
		},
		DeadLettered: func(ctx context.Context, msg *handlers.Message, reason handlers.Reason, cause error) {
			recordDeadLetter(ctx, orders.Store, log, d.Now(), msg, reason, cause)
		},
	}
	shopIDs := slices.Sorted(maps.Keys(shops))
	d.Registry.MustRegister(pendingGauge(func(ctx context.Context) (orderstate.UnderReview, error) { return store.UnderReview(ctx, shopIDs...) }, d.Now),
		refusalCollector{&orders.Refusals}, waitingGauge(infra),
		backlogGauge(js, s.OrdersStream, ordersConsumer, ordersFilter, d.Now), dlqGauge(js, s.DLQStream))
	health := newHealth(d.NATS, orders.Store, infra, refusalDetails(&orders.Refusals))
	d.Registry.MustRegister(readyGauge(health))
	srv := newHTTPServer(s.HTTPAddr, httpHandler(d.Registry, health), httpReadTimeout, log)
	// Listen before anything starts: with the address taken, probes would reach another process
	// while this one consumed.
	ln := d.HTTPListener
	if ln == nil {
		if ln, err = net.Listen("tcp", s.HTTPAddr); err != nil {
			return fmt.Errorf("listening on -http-addr %s: %w", s.HTTPAddr, err)
		}
	}

	// The first component to fail stops the others.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	// -concurrency is one budget for the three consumers; closed after they all returned (wg).
	budget := consumer.NewBudget(s.Concurrency)
	defer budget.Close()
	for _, c := range []struct {
		cons            jetstream.Consumer
		created         int64
		stream, durable string
		guaranteed      int // slots of the budget (guaranteedSlots)
		h               handlers.Handler
	}{
		{cs.orders, cs.ordersCreated, s.OrdersStream, ordersConsumer, guaranteedSlots(s.Concurrency), orderHandler},
		{cs.polls, 0, PollStream, pollConsumer, guaranteedSlots(s.Concurrency), pollHandler},
		{cs.advisories, 0, AdvisoryStream, advisoryConsumer, 1, handlers.Serve(decodeAdvisory, exhaustedHandler(js, letters, d.Now), common...)},
	} {
		cc := cc
		cc.StreamCreated, cc.Rebind = c.created, streams.rebind(c.stream, c.durable)
		cc.Share = budget.Share(c.guaranteed)
		wg.Add(1)
		go func() { defer wg.Done(); errs <- consumer.Consume(ctx, c.cons, c.h, cc) }()
	}
	rec := &handlers.Reconciler{Store: orders.Store, Shops: shopIDs, Polls: orders.Polls, Waiting: polls{js: js, dlqStream: s.DLQStream}.Waiting, Grace: s.ReconcileInterval, Now: d.Now, Logger: log}
	trim := trimIndex(store, shopIDs)
	wg.Add(1)
	go func() { defer wg.Done(); reconcile(ctx, streams, s, rec, copies, trim, log) }()
	if s.PollHandoffAhead > 0 {
		h := &handlers.Handoff{Store: orders.Store, Shops: shopIDs, Polls: orders.Polls, Ahead: s.PollHandoffAhead, Now: d.Now}
		wg.Add(1)
		go func() { defer wg.Done(); handoff(ctx, h, log) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("serving %s: %w", s.HTTPAddr, err)
		}
	}()
	steps.done("handlers_consumers_http")
	log.Info("worker started", zap.Int("shops", len(shops)), zap.String("http", ln.Addr().String()), zap.Int("concurrency", s.Concurrency),
		zap.Float64("startup_total_ms", steps.total()), zap.Object("startup_ms", steps))
	health.ready.Store(true)

	var first error
	select {
	case <-ctx.Done():
	case first = <-errs:
	}
	stop()
	health.ready.Store(false)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if srv.Shutdown(shutdownCtx) != nil {
		_ = srv.Close() // drop the connections still open rather than leave them behind
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if first == nil && err != nil {
			first = err
		}
	}
	log.Info("worker stopped")
	return first
}

// buildShops makes one ATODENE client per configured shop.
func buildShops(d Deps, m *metrics) (map[string]*handlers.Shop, error) {
	out := map[string]*handlers.Shop{}
	for _, sh := range d.Shops.All() {
		client, err := atodene.New(atodene.Config{
			BaseURL: sh.Atodene.BaseURL,
			Credentials: atodene.Credentials{
				ShopCode: sh.Atodene.ShopCode, LinkID: sh.Atodene.LinkID, LinkPassword: sh.Atodene.LinkPassword.Reveal(),
			},
			HTTPClient: d.HTTPClient,
			Timeout:    d.Settings.ProviderTimeout,
			Logger:     d.Logger,
			Observe:    m.observeCall,
		})
		if err != nil {
			return nil, fmt.Errorf("shop %q: %w", sh.ID, err)
		}
		service := atodene.ServiceSeparate
		if sh.Atodene.InvoiceDelivery == config.InvoiceEnclosed {
			service = atodene.ServiceEnclosed
		}
		out[sh.ID] = &handlers.Shop{ID: sh.ID, Provider: client, Fees: sh.Fees, Service: service, OrderIDPrefix: sh.Atodene.OrderIDPrefix,
			ReauthorizeAfter: sh.ReauthorizeAfter}
	}
	return out, nil
}

// countedLetters writes dead letters and counts them by reason, in
// atodene_worker_dead_letters_total. Every path that dead-letters writes through it (the consume
// loops, parked events, max-deliveries advisories), so all count alike: a letter once the stream
// stored it, and once only. A write that fails counts nothing (it is retried), and the same letter
// written again counts nothing more (the handler of a message's last delivery and the advisory of
// it; a retry of a write whose acknowledgement was lost, which leaves that letter uncounted).
// A failed write is an infrastructure failure (handlers.Infrastructure).
type countedLetters struct {
	w     *dlq.Writer
	count *prometheus.CounterVec
}

func (c countedLetters) Write(ctx context.Context, l dlq.Letter) error {
	stored, err := c.w.WriteOnce(ctx, l)
	if err != nil {
		return handlers.Infrastructure(err)
	}
	if stored {
		c.count.WithLabelValues(l.Reason).Inc()
	}
	return nil
}

// handlerLetters writes the dead letters of the handlers (handlers.DeadLetters) through a
// countedLetters: a handlers.DeadLetter has the fields of a dlq.Letter.
type handlerLetters struct{ c countedLetters }

func (h handlerLetters) Write(ctx context.Context, l handlers.DeadLetter) error {
	return h.c.Write(ctx, dlq.Letter(l))
}

// recordDeadLetter adds a dead letter to its order's history, when the message names an order:
// the letter itself is the event's trace, so a failure here is logged, not retried.
//
// A shop that is not configured gets no history; the history of an order the worker has no state
// of (an invalid first event) lasts as long as event records do.
func recordDeadLetter(ctx context.Context, store *orderstate.Store, log *zap.Logger, now time.Time, m *handlers.Message, reason handlers.Reason, cause error) {
	h := m.Head
	if h.Shop == "" || h.Order == "" || reason == handlers.ReasonUnknownShop {
		return
	}
	e := orderstate.Entry{At: now.UTC(), Type: h.Kind, Source: h.Event.Source, ID: h.Event.ID,
		Did: "dead-lettered: " + reason.String() + ": " + cause.Error()}
	if by, ok := h.Data.(interface{ RequestedBy() string }); ok && h.Err == nil {
		e.Operator = by.RequestedBy() // an operator event's, validated (an invalid one's may hold anything)
	}
	ttl := config.EventRecordTTL
	if st, err := store.Get(ctx, h.Shop, h.Order); err == nil && st.Version > 0 {
		e.Status, ttl = st.Status, 0
	}
	if err := store.AppendHistory(ctx, h.Shop, h.Order, e, ttl); err != nil {
		log.Warn("recording a dead letter in its order's history failed", zap.String("shop", h.Shop), zap.String("order", h.Order), zap.Error(err))
	}
}

// httpErrorLog is the HTTP server's log of what it cannot tell a client (an accept error, a TLS
// handshake that failed): through the worker's logger, not the standard log package's plain text.
// The metrics and health server's timeouts: its requests are bodiless GETs, so a request that has
// not arrived within httpReadTimeout is a stalled client, whose connection is closed.
const (
	httpReadTimeout = 10 * time.Second
	httpIdleTimeout = 2 * time.Minute
)

// newHTTPServer makes the metrics and health server. readTimeout bounds a whole request, so that a
// client stalling mid-body cannot hold a connection (and Shutdown) for ever.
func newHTTPServer(addr string, h http.Handler, readTimeout time.Duration, log *zap.Logger) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: min(5*time.Second, readTimeout), ReadTimeout: readTimeout,
		IdleTimeout: httpIdleTimeout, ErrorLog: httpErrorLog(log)}
}

func httpErrorLog(log *zap.Logger) *stdlog.Logger {
	l, err := zap.NewStdLogAt(log.Named("http"), zap.WarnLevel)
	if err != nil { // only for a level zap does not know
		return zap.NewStdLog(log.Named("http"))
	}
	return l
}

// guaranteedSlots is the part of the -concurrency budget guaranteed to the orders consumer and to
// the polls consumer each (the advisories consumer, which calls no provider, is guaranteed 1):
// 1/64 of it, at least 1. The consumers take free slots in turn, so that a busy one shares with
// the others; a guarantee matters when one consumer's handlers hang, and takes no more from the
// other's peak than it must: 8 of 512.
func guaranteedSlots(concurrency int) int { return max(concurrency/64, 1) }

// handlerTimeout bounds one handling of a message: room for a lease wait and a provider call
// with its retries, so that only a hung handler reaches it.
func handlerTimeout(s config.Settings) time.Duration {
	return 2*s.AckWait + 4*s.ProviderTimeout
}

// startSteps times the steps of Run up to ready, for the "worker started" line: what a slow start
// spent its time on.
type startSteps struct {
	began, last time.Time
	names       []string
	took        []time.Duration
}

func newStartSteps() *startSteps {
	now := time.Now()
	return &startSteps{began: now, last: now}
}

// done ends the step called name, begun when the one before ended.
func (st *startSteps) done(name string) {
	now := time.Now()
	st.names, st.took = append(st.names, name), append(st.took, now.Sub(st.last))
	st.last = now
}

// total is the milliseconds since Run began to the last step's end.
func (st *startSteps) total() float64 { return msOf(st.last.Sub(st.began)) }

func (st *startSteps) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for i, name := range st.names {
		enc.AddFloat64(name, msOf(st.took[i]))
	}
	return nil
}

// msOf is d in milliseconds, to the microsecond.
func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
