package handlers_test

import (
	"context"
	"errors"
	"io"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
)

// TestLoggingNamesTheTrace: handled within a span (tracing on), the "message handled" line and a
// panic's line carry the span's trace_id and span_id; without one, neither has the fields.
func TestLoggingNamesTheTrace(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	for _, traced := range []bool{true, false} {
		for _, panics := range []bool{false, true} {
			core, logs := observer.New(zapcore.DebugLevel)
			log := zap.New(core)
			h := serveTyped(events.TypeOrderCreated, events.DecodeOrder, func(_ context.Context, ev handlers.Event[events.Order]) error {
				if panics {
					return errors.New(ev.Data.Items[len(ev.Data.Items)].Name) // index out of range
				}
				return nil
			}, handlers.Logging(log), handlers.Recover(log))
			ctx, end := t.Context(), func() {}
			var wantTrace, wantSpan string
			if traced {
				c, s := tp.Tracer("test").Start(ctx, "process orders.created.shop-a")
				ctx, end = c, func() { s.End() }
				wantTrace, wantSpan = s.SpanContext().TraceID().String(), s.SpanContext().SpanID().String()
			}
			_ = h(ctx, &handlers.Message{Subject: "orders.created.shop-a", Body: orderBody("e-tr"), Attempt: 1})
			end()
			lines := logs.FilterMessage("message handled").All()
			if panics {
				lines = append(lines, logs.FilterMessage("handler panicked").All()...)
			}
			if want := 1 + map[bool]int{true: 1}[panics]; len(lines) != want {
				t.Fatalf("traced %v, panics %v: %d lines, want %d: %v", traced, panics, len(lines), want, logs.All())
			}
			for _, line := range lines {
				f := line.ContextMap()
				if traced && (f["trace_id"] != wantTrace || f["span_id"] != wantSpan) {
					t.Errorf("%q: trace_id %v, span_id %v, want %s and %s", line.Message, f["trace_id"], f["span_id"], wantTrace, wantSpan)
				}
				if _, has := f["trace_id"]; !traced && (has || f["span_id"] != nil) {
					t.Errorf("%q without tracing: %v", line.Message, f)
				}
			}
		}
	}
}

// TestLoggingOffCostsNothingMore: without a span in the context, the Logging middleware allocates
// what it did before it logged trace ids: 2 (3 under the race detector). Not parallel: it counts allocations.
func TestLoggingOffCostsNothingMore(t *testing.T) {
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	h := handlers.Logging(log)(func(context.Context, *handlers.Message) error { return nil })
	m := &handlers.Message{Subject: "orders.created.shop-a", Sequence: 7, Attempt: 1}
	ctx := context.Background()
	if allocs, want := testing.AllocsPerRun(200, func() { _ = h(ctx, m) }), float64(2+raceAllocs); allocs > want {
		t.Errorf("Logging without tracing allocates %.0f times, want at most %.0f", allocs, want)
	}
}
