// Package tracing holds what the project's spans share: the instrumentation name, the attributes,
// and Start, which makes a child span only where a traced message's span records.
//
// Tracing is off unless the environment asks for it (package otelenv). Off, the components are
// given a nil trace.TracerProvider: they start no span, extract and inject nothing, and so cost
// nothing. Child spans (Start, natstrace.Send) are made by the provider of the span already in the
// context, so only the components that start traces (the worker's consume loop, publisher, the
// console) are given a provider; everything below them follows the context.
//
// No span holds personal data: attributes carry what the worker's log lines carry (event ids,
// types, shops, order ids, outcomes), never an order's contents (docs/observability.md#tracing).
package tracing

import (
	"context"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// Name is the instrumentation scope of every span the project makes.
const Name = "github.com/atodene-worker/atodene-worker"

// Attributes shared by the project's spans. Messaging ones follow the OpenTelemetry semantic
// conventions; atodene.* are the project's own. None holds personal data (docs/observability.md).
var (
	MessagingSystem = attribute.Key("messaging.system").String("nats")
	OperationType   = attribute.Key("messaging.operation.type")
	Destination     = attribute.Key("messaging.destination.name")
	MessageID       = attribute.Key("messaging.message.id")
	EventType       = attribute.Key("atodene.event_type")
	Shop            = attribute.Key("atodene.shop")
	Order           = attribute.Key("atodene.order_id")
	Outcome         = attribute.Key("atodene.outcome")
	Attempt         = attribute.Key("atodene.attempt")
	DeadLetter      = attribute.Key("atodene.dead_letter.reason")
)

// Start starts a child of ctx's span, made by that span's provider, when ctx's span records;
// otherwise it returns ctx and a span that records nothing, at no cost. It is how the layers below
// a message's span (the ATODENE client, the order store) trace without a provider of their own.
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(Name).Start(ctx, name, opts...)
}

// Log field names of a span's identity (docs/observability.md#trace-ids-in-log-lines).
const (
	LogTraceID = "trace_id"
	LogSpanID  = "span_id"
)

// LogFields returns fields with trace_id and span_id appended, ctx's span's trace and span ids in
// W3C hex (as a traceparent writes them), when ctx holds a valid span context: with tracing on, so
// that a log line leads to its trace. Otherwise (tracing off) it returns fields as they are, with
// no allocation.
func LogFields(ctx context.Context, fields []zap.Field) []zap.Field {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return fields
	}
	return append(fields, zap.String(LogTraceID, sc.TraceID().String()), zap.String(LogSpanID, sc.SpanID().String()))
}

// Fail marks span as failed by err (its message, bounded), or does nothing for a nil err. Error
// messages are those the logs carry: they name fields and failures, never personal data.
func Fail(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, Clip(err.Error()))
	}
}

// Clip bounds a value put on a span or a log line from a message (a subject, an event id), which may
// be invalid and of any length: to 256 bytes and an ellipsis, cut at a rune boundary.
func Clip(s string) string {
	const limit = 256
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
