package tracing_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/tracing"
)

// TestLogFieldsNameTheSpan: with a valid span context in ctx, LogFields adds its trace and span
// ids in W3C hex; without one it adds nothing and allocates nothing. Not parallel: it counts
// allocations.
func TestLogFieldsNameTheSpan(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	fields := []zap.Field{zap.String("subject", "orders.created.shop-a")}
	got := tracing.LogFields(trace.ContextWithSpanContext(context.Background(), sc), fields)
	want := map[string]string{"subject": "orders.created.shop-a",
		"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}
	if len(got) != len(want) {
		t.Fatalf("fields %v, want %v", got, want)
	}
	for _, f := range got {
		if want[f.Key] != f.String {
			t.Errorf("%s = %q, want %q", f.Key, f.String, want[f.Key])
		}
	}

	off := context.Background()
	invalid := trace.ContextWithSpanContext(off, trace.SpanContext{}) // no trace: as tracing off leaves it
	for _, ctx := range []context.Context{off, invalid} {
		if got := tracing.LogFields(ctx, fields); len(got) != 1 || &got[0] != &fields[0] {
			t.Errorf("without a span: fields %v, want the same slice", got)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { fields = tracing.LogFields(off, fields) }); allocs != 0 {
		t.Errorf("LogFields without a span allocates %.0f times", allocs)
	}
}
