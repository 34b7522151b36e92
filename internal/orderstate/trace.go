package orderstate

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/atodene-worker/atodene-worker/internal/tracing"
)

// The attributes of a store call's span (OpenTelemetry's database conventions).
var (
	attrDBSystem    = attribute.Key("db.system.name").String("redis")
	attrDBOperation = attribute.Key("db.operation.name")
)

// storeCall is the span of one store call within a traced message's span: "redis <call>" (a script,
// acquire, write, release, or a command), with the Redis command it sends. The shop and the order
// are the message's span's: a child does not repeat them, each attribute costing the worker's CPU. Spans are
// made here, one per call, rather than by instrumenting the Redis client: the calls of many
// handlers are sent together in one pipeline (batch.go), whose commands belong to no one handler's
// trace, and a client's spans would show the scripts' arguments, which hold the order's personal
// data. A call's span never holds its keys or arguments. Outside a recording span it costs nothing.
type storeCall struct{ span trace.Span }

// startCall starts the span of a store call that sends the Redis command command. name is the
// span's whole name ("redis <call>"), a constant, so that no span builds it.
func startCall(ctx context.Context, name, command string) (context.Context, storeCall) {
	if span := trace.SpanFromContext(ctx); !span.IsRecording() {
		return ctx, storeCall{span} // before the attributes are built: they allocate
	}
	ctx, span := tracing.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrDBSystem, attrDBOperation.String(command)))
	return ctx, storeCall{span}
}

// end ends the span, failed if *err is an error.
func (c storeCall) end(err *error) {
	if c.span.IsRecording() {
		tracing.Fail(c.span, *err)
		c.span.End()
	}
}
