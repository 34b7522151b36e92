package handlers

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/tracing"
)

// Recover turns a panic into an error, so one bad message cannot crash the worker. The message
// is retried and, if it keeps panicking, dead-lettered as exhausted.
func Recover(log *zap.Logger) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) (err error) {
			defer func() {
				if r := recover(); r != nil {
					log.Error("handler panicked", tracing.LogFields(ctx, []zap.Field{zap.String("subject", tracing.Clip(m.Subject)), zap.Uint64("seq", m.Sequence),
						zap.String("panic", tracing.Clip(fmt.Sprint(r))), zap.ByteString("stack", debug.Stack())})...)
					err = fmt.Errorf("handler panicked: %s", tracing.Clip(fmt.Sprint(r)))
				}
			}()
			return next(ctx, m)
		}
	}
}

// Outcome names how a handled message ended, for logs: ok, retry, retry-kept, retry-after, or
// dead-letter:<reason>.
func Outcome(err error) string {
	outcome, reason := outcomeOf(err)
	if reason != "" {
		return outcome + ":" + reason
	}
	return outcome
}

// outcomeOf says how a handled message ended, as the metrics' outcome and reason labels: ok, retry,
// retry-kept (the event waits for its retry in its order's inbox) or retry-after with no reason, or
// dead-letter with the dead-letter reason.
func outcomeOf(err error) (outcome, reason string) {
	if err == nil {
		return "ok", ""
	}
	if reason, ok := DeadLetterReason(err); ok {
		return "dead-letter", reason.String()
	}
	if RetriedLater(err) {
		return "retry-kept", ""
	}
	if _, ok := RetryDelay(err); ok {
		return "retry-after", ""
	}
	return "retry", ""
}

// Logging writes one line per handled message: event id, type, shop, outcome, duration and
// attempt, and, with tracing on, the trace and span ids of the message's span (tracing.LogFields).
// It never logs the body: it holds personal data.
func Logging(log *zap.Logger) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			start := time.Now()
			err := OfTry(ctx, next(ctx, m)) // a timed-out handler's last call is no Redis outage
			// Room for the trace fields and the error: the slice is allocated once whatever is added.
			fields := make([]zap.Field, 0, 12)
			fields = append(fields,
				zap.String("event_id", tracing.Clip(m.Head.Event.ID)), zap.String("subject", tracing.Clip(m.Subject)),
				zap.String("type", m.Head.Kind), zap.String("shop", m.Head.Shop), zap.String("order", m.Head.Order),
				zap.String("outcome", deliveryOutcome(err, m)), zap.Duration("duration", time.Since(start)),
				zap.Int("attempt", m.Attempt), zap.Uint64("seq", m.Sequence))
			fields = tracing.LogFields(ctx, fields)
			if err != nil {
				fields = append(fields, zap.Error(err))
				log.Warn("message handled", fields...)
				return err
			}
			log.Info("message handled", fields...)
			return nil
		}
	}
}

// Metrics holds the handler metrics.
type Metrics struct {
	Messages *prometheus.CounterVec
	Duration *prometheus.HistogramVec
}

// NewMetrics registers the handler metrics with reg. For each of types (the message types the
// worker handles) it creates the dead-letter series of every reason at zero, so that an alert on
// any increase fires on the first dead letter after a restart too: a series born at 1 shows none.
func NewMetrics(reg prometheus.Registerer, types ...string) *Metrics {
	m := &Metrics{
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atodene_worker_messages_total",
			Help: "Messages handled, by type, outcome (ok, retry, retry-kept, retry-after, dead-letter) and dead-letter reason (empty for the other outcomes).",
		}, []string{"type", "outcome", "reason"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "atodene_worker_handler_seconds",
			Help:    "Time to handle one message, by event type.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"type"}),
	}
	reg.MustRegister(m.Messages, m.Duration)
	for _, typ := range types {
		for _, reason := range Reasons() {
			m.Messages.WithLabelValues(typ, "dead-letter", reason)
		}
	}
	return m
}

// Middleware counts messages by type and outcome and observes handler latency.
func (mt *Metrics) Middleware() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			start := time.Now()
			err := next(ctx, m)
			typ := m.Head.Kind
			if typ == "" {
				typ = "undecoded"
			}
			outcome, reason := outcomeOf(err)
			mt.Messages.WithLabelValues(typ, outcome, reason).Inc()
			mt.Duration.WithLabelValues(typ).Observe(time.Since(start).Seconds())
			return err
		}
	}
}
