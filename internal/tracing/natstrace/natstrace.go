// Package natstrace carries trace context across NATS: the W3C traceparent and tracestate headers
// of a message (Header, Inject, Extract), the same values carried in a message's body
// (ExtractAttributes), and a producer span around each publish that injects it (Send).
package natstrace

import (
	"context"
	"slices"
	"strings"

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

// MaxTraceStateLen bounds the tracestate the programs pass on, in a header or in an event's
// tracestate attribute: 512 characters, what W3C trace context asks every vendor to propagate, and
// the length past which a consumer drops the attribute (docs/events.md#envelope). A longer one is
// trimmed as W3C says (TrimTraceState).
const MaxTraceStateLen = 512

// TrimTraceState returns tracestate, a W3C tracestate header, within MaxTraceStateLen: as it is
// when it fits, else with its members longer than 128 characters removed first, from the end, as
// long as it does not fit, then others from the end, until it fits (W3C trace context, "tracestate limits"). It may return "".
func TrimTraceState(tracestate string) string {
	if len(tracestate) <= MaxTraceStateLen {
		return tracestate
	}
	var members []string
	size := -1 // the length of the members joined by commas
	for m := range strings.SplitSeq(tracestate, ",") {
		if m = strings.TrimSpace(m); m != "" {
			members = append(members, m)
			size += len(m) + 1
		}
	}
	for i := len(members) - 1; i >= 0 && size > MaxTraceStateLen; i-- {
		if len(members[i]) > 128 {
			size -= len(members[i]) + 1
			members = slices.Delete(members, i, i+1)
		}
	}
	for len(members) > 0 && size > MaxTraceStateLen {
		size -= len(members[len(members)-1]) + 1
		members = members[:len(members)-1]
	}
	return strings.Join(members, ",")
}

// Inject writes the trace context of ctx's span into h, its tracestate within MaxTraceStateLen;
// nothing when ctx holds no valid span.
func Inject(ctx context.Context, h nats.Header) {
	if h == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagator.Inject(ctx, Header(h))
	if ts := h.Get(HeaderTraceState); len(ts) > MaxTraceStateLen {
		if ts = TrimTraceState(ts); ts == "" {
			h.Del(HeaderTraceState)
		} else {
			h.Set(HeaderTraceState, ts)
		}
	}
}

// Extract returns ctx with the remote span context that h carries (traceparent, tracestate), or ctx
// as it is when h carries none or one that is not valid. A tracestate longer than MaxTraceStateLen
// is trimmed (TrimTraceState): the spans, and what the programs publish within them, carry it
// bounded whatever a publisher sent.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil || h.Get(HeaderTraceParent) == "" {
		return ctx
	}
	if ts := h.Get(HeaderTraceState); len(ts) > MaxTraceStateLen {
		return propagator.Extract(ctx, attributes{h.Get(HeaderTraceParent), TrimTraceState(ts)})
	}
	return propagator.Extract(ctx, Header(h))
}

// ExtractAttributes returns ctx with the remote span context of traceparent and tracestate, a W3C
// trace context carried otherwise than in headers (a CloudEvent's distributed-tracing attributes),
// or ctx as it is when traceparent is empty or not valid. An invalid tracestate is dropped, and
// traceparent kept, as Extract does; a long one is trimmed, as Extract does.
func ExtractAttributes(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, attributes{traceparent, TrimTraceState(tracestate)})
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
// trace. The span's name and destination hold the subject clipped (tracing.Clip). tp starts a new trace, or continues one in ctx; with tp nil the span is a child of ctx's
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
	// A dead letter's subject holds the original's, which may be of any length.
	subject := tracing.Clip(msg.Subject)
	all := append(make([]attribute.KeyValue, 0, 3+len(attrs)), // one slice: the SDK copies each option's
		tracing.MessagingSystem, tracing.OperationType.String("send"), tracing.Destination.String(subject))
	ctx, span := tracer.Start(ctx, "send "+subject, trace.WithSpanKind(trace.SpanKindProducer),
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
