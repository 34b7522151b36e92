package consumer

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/tracing"
	"github.com/atodene-worker/atodene-worker/internal/tracing/natstrace"
)

// startProcess starts the span of one delivery of msg: a consumer span "process <subject>" that
// continues the trace of the message's traceparent header or, when it has none, of the CloudEvents
// distributed-tracing attributes of its body (events.TraceContext): a producer that uses a
// CloudEvents SDK puts the trace context there. The header wins when both are there; a new trace
// is started when neither carries a valid trace context. The span's name and destination hold the
// subject clipped (tracing.Clip).
func startProcess(ctx context.Context, tp trace.TracerProvider, msg jetstream.Msg, m *handlers.Message) (context.Context, trace.Span) {
	var parent context.Context
	if h := msg.Headers(); h.Get(natstrace.HeaderTraceParent) != "" {
		parent = natstrace.Extract(ctx, h)
	} else {
		traceparent, tracestate := events.TraceContext(m.Body)
		parent = natstrace.ExtractAttributes(ctx, traceparent, tracestate)
	}
	subject := tracing.Clip(m.Subject) // a publisher's subject, of any length NATS takes
	return tp.Tracer(tracing.Name).Start(parent, "process "+subject,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(tracing.MessagingSystem, tracing.OperationType.String("process"),
			tracing.Destination.String(subject), tracing.Attempt.Int(m.Attempt)))
}

// endProcess ends a delivery's span with what decoding learned of the message (its event id,
// type, shop and order: what its log line holds, never its data) and how it was settled: ok,
// retry, retry-after, handed-back (shutdown), or dead-letter with its reason.
// A failure marks the span with the handler's error, as the log line has it.
func endProcess(span trace.Span, m *handlers.Message, outcome, reason string, err error) {
	h := m.Head
	// One SetAttributes call: the SDK grows the span's attributes, and takes its lock, per call.
	attrs := make([]attribute.KeyValue, 0, 6)
	if h.Event.ID != "" {
		attrs = append(attrs, tracing.MessageID.String(tracing.Clip(h.Event.ID)))
	}
	if h.Kind != "" {
		attrs = append(attrs, tracing.EventType.String(h.Kind))
	}
	if h.Shop != "" {
		attrs = append(attrs, tracing.Shop.String(h.Shop))
	}
	if h.Order != "" {
		attrs = append(attrs, tracing.Order.String(h.Order))
	}
	attrs = append(attrs, tracing.Outcome.String(outcome))
	if reason != "" {
		attrs = append(attrs, tracing.DeadLetter.String(reason))
	}
	span.SetAttributes(attrs...)
	if err != nil {
		span.SetStatus(codes.Error, tracing.Clip(outcome+": "+err.Error()))
	}
	span.End()
}
