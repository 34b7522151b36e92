package natstrace_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/atodene-worker/atodene-worker/internal/tracing/natstrace"
)

// TestSendCarriesTheTrace: Send with a provider starts a trace and injects it; the consumer's
// Extract continues it; a child Send within a recording span continues it again; a publish error
// marks the span.
func TestSendCarriesTheTrace(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	ctx := context.Background()

	msg := nats.NewMsg("orders.created.shop-a")
	var root trace.SpanContext
	if err := natstrace.Send(ctx, tp, msg, func(ctx context.Context) error {
		root = trace.SpanContextFromContext(ctx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("traceparent") == "" {
		t.Fatal("no traceparent header")
	}
	in := natstrace.Extract(ctx, msg.Header)
	if got := trace.SpanContextFromContext(in); got.TraceID() != root.TraceID() || got.SpanID() != root.SpanID() || !got.IsRemote() {
		t.Fatalf("extracted %v, want the remote span %v", got, root)
	}
	in, span := tp.Tracer("test").Start(in, "process")
	out := nats.NewMsg("credit.ok.shop-a")
	err := natstrace.Send(in, nil, out, func(context.Context) error { return errors.New("no responders") })
	span.End()
	if err == nil || out.Header.Get("traceparent") == "" {
		t.Fatalf("child send: error %v, header %v", err, out.Header)
	}
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	for _, s := range spans {
		if s.SpanContext.TraceID() != root.TraceID() {
			t.Errorf("span %q in trace %s, want %s", s.Name, s.SpanContext.TraceID(), root.TraceID())
		}
		if s.Name == "send credit.ok.shop-a" && (s.Status.Code != codes.Error || s.SpanKind != trace.SpanKindProducer) {
			t.Errorf("failed send: %+v", s.Status)
		}
	}
}

// TestOffCostsNothing: without a provider or a recording span, Send only publishes, and nothing is
// injected or extracted. Not parallel: it counts allocations.
func TestOffCostsNothing(t *testing.T) {
	ctx := context.Background()
	msg := nats.NewMsg("credit.ok.shop-a")
	called := false
	if err := natstrace.Send(ctx, nil, msg, func(got context.Context) error { called = got == ctx; return nil }); err != nil || !called {
		t.Fatalf("publish called with the same context: %v (%v)", called, err)
	}
	if len(msg.Header) != 0 {
		t.Errorf("headers %v, want none", msg.Header)
	}
	if natstrace.Extract(ctx, nats.Header{}) != ctx || natstrace.Extract(ctx, nil) != ctx {
		t.Error("Extract of no trace context made a new context")
	}
	allocs := testing.AllocsPerRun(100, func() {
		_ = natstrace.Send(ctx, nil, msg, func(context.Context) error { return nil })
	})
	if allocs > 1 {
		t.Errorf("Send off allocates %.0f times", allocs)
	}
}

// TestExtractAttributes: a traceparent carried as a CloudEvents attribute is extracted as a
// header's is, with its tracestate; an invalid one leaves no span context, and none at all leaves
// ctx as it is.
func TestExtractAttributes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc := trace.SpanContextFromContext(natstrace.ExtractAttributes(ctx, parent, "vendor=x"))
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" ||
		!sc.IsRemote() || !sc.IsSampled() || sc.TraceState().Get("vendor") != "x" {
		t.Errorf("extracted %+v, want the remote span of %s with its tracestate", sc, parent)
	}
	if sc := trace.SpanContextFromContext(natstrace.ExtractAttributes(ctx, parent, "not a tracestate")); !sc.IsValid() || sc.TraceState().Len() != 0 {
		t.Errorf("with an invalid tracestate: %+v, want the span without a tracestate", sc)
	}
	for _, bad := range []string{"00-zz-00f067aa0ba902b7-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "garbage"} {
		if sc := trace.SpanContextFromContext(natstrace.ExtractAttributes(ctx, bad, "")); sc.IsValid() {
			t.Errorf("%q extracted as %+v", bad, sc)
		}
	}
	if natstrace.ExtractAttributes(ctx, "", "vendor=x") != ctx {
		t.Error("no traceparent made a new context")
	}
}

// TestTrimTraceState: a tracestate over 512 characters loses its members over 128 characters first,
// from the end, as long as it is too long, then others from the end (W3C trace context, "tracestate limits"); a header's is
// trimmed by Extract, so that what is published within the span carries it bounded.
func TestTrimTraceState(t *testing.T) {
	t.Parallel()
	member := func(k string, n int) string { return k + "=" + strings.Repeat("v", n-len(k)-1) }
	var small, huge []string
	for i := range 32 {
		small = append(small, member(fmt.Sprintf("s%02d", i), 30))
		huge = append(huge, member(fmt.Sprintf("h%02d", i), 250))
	}
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"a=1,b=2", "a=1,b=2"},
		{strings.Join(huge, ","), strings.Join(huge[:2], ",")}, // 2 × 251 - 1 = 501
		{member("a", 100) + "," + member("big", 200) + "," + member("b", 100) + "," + member("huge", 300), member("a", 100) + "," + member("big", 200) + "," + member("b", 100)},
		{member("a", 100) + "," + member("big", 200) + "," + member("huge", 300) + "," + member("b", 100), member("a", 100) + "," + member("big", 200) + "," + member("b", 100)},
		{member("big", 200) + "," + member("a", 100) + "," + member("huge", 300) + "," + member("b", 400), member("big", 200) + "," + member("a", 100)},
		{strings.Join(small, ","), strings.Join(small[:16], ",")}, // 16 × 31 - 1 = 495
		{member("a", 100) + "," + member("big", 129) + "," + member("c", 300), member("a", 100) + "," + member("big", 129)},
	} {
		got := natstrace.TrimTraceState(tt.in)
		if got != tt.want || len(got) > natstrace.MaxTraceStateLen {
			t.Errorf("TrimTraceState(%.40q… %d) = %.60q… (%d), want %.60q… (%d)", tt.in, len(tt.in), got, len(got), tt.want, len(tt.want))
		}
	}

	h := nats.Header{}
	h.Set(natstrace.HeaderTraceParent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.Set(natstrace.HeaderTraceState, strings.Join(small, ","))
	ctx := natstrace.Extract(context.Background(), h)
	if got := trace.SpanContextFromContext(ctx).TraceState().String(); got != strings.Join(small[:16], ",") {
		t.Errorf("Extract: tracestate %q (%d), want the first 16 members", got, len(got))
	}
	out := nats.Header{}
	natstrace.Inject(ctx, out)
	if n := len(out.Get(natstrace.HeaderTraceState)); n == 0 || n > natstrace.MaxTraceStateLen {
		t.Errorf("Inject: tracestate of %d characters", n)
	}
}
