// Package natstrace carries trace context across NATS: the W3C traceparent and tracestate headers
// of a message (Header, Inject, Extract), the same values carried in a message's body
// (ExtractAttributes), and a producer span around each publish that injects it (Send).
package natstrace

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/atodene-worker/atodene-worker/internal/tracing"
)

// Header names of the W3C trace context, as NATS headers carry them.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// propagator carries the W3C trace context alone: baggage, which publishers could fill with
// anything (personal data too), is neither read nor passed on.
var propagator = propagation.TraceContext{}

// Header is a propagation.TextMapCarrier over NATS message headers.
type Header nats.Header

// Get returns the first value of key.
func (h Header) Get(key string) string { return nats.Header(h).Get(key) }

// Set sets key to value, replacing what it held.
func (h Header) Set(key, value string) { nats.Header(h).Set(key, value) }

// Keys lists the header names.
func (h Header) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the trace context of ctx's span into h; nothing when ctx holds no valid span.
func Inject(ctx context.Context, h nats.Header) {
	if h == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagator.Inject(ctx, Header(h))
}

// Extract returns ctx with the remote span context that h carries (traceparent, tracestate), or ctx
// as it is when h carries none or one that is not valid.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil || h.Get(HeaderTraceParent) == "" {
		return ctx
	}
	return propagator.Extract(ctx, Header(h))
}

// ExtractAttributes returns ctx with the remote span context of traceparent and tracestate, a W3C
// trace context carried otherwise than in headers (a CloudEvent's distributed-tracing attributes),
// or ctx as it is when traceparent is empty or not valid. An invalid tracestate is dropped, and
// traceparent kept, as Extract does.
func ExtractAttributes(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, attributes{traceparent, tracestate})
}

// attributes is a read-only propagation.TextMapCarrier of a traceparent and a tracestate.
type attributes struct{ traceparent, tracestate string }

func (a attributes) Get(key string) string {
	switch key {
	case HeaderTraceParent:
		return a.traceparent
	case HeaderTraceState:
		return a.tracestate
	}
	return ""
}

func (attributes) Set(string, string) {}

func (attributes) Keys() []string { return []string{HeaderTraceParent, HeaderTraceState} }

// Send runs publish, the publishing of msg, in a producer span "send <subject>" and with the
// span's trace context injected into msg's headers first, so that the consumer continues the
// trace. tp starts a new trace, or continues one in ctx; with tp nil the span is a child of ctx's
// recording span, and without either Send only runs publish. A publish error marks the span.
func Send(ctx context.Context, tp trace.TracerProvider, msg *nats.Msg, publish func(ctx context.Context) error, attrs ...attribute.KeyValue) error {
	var tracer trace.Tracer
	switch parent := trace.SpanFromContext(ctx); {
	case tp != nil:
		tracer = tp.Tracer(tracing.Name)
	case parent.IsRecording():
		tracer = parent.TracerProvider().Tracer(tracing.Name)
	default:
		return publish(ctx)
	}
	all := append(make([]attribute.KeyValue, 0, 3+len(attrs)), // one slice: the SDK copies each option's
		tracing.MessagingSystem, tracing.OperationType.String("send"), tracing.Destination.String(msg.Subject))
	ctx, span := tracer.Start(ctx, "send "+msg.Subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(append(all, attrs...)...))
	defer span.End()
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	Inject(ctx, msg.Header)
	err := publish(ctx)
	tracing.Fail(span, err)
	return err
}
