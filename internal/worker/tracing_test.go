package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/inbound"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// newTracedHarness is a harness whose worker traces into an in-memory exporter, and that exporter.
func newTracedHarness(t *testing.T, o harnessOpts) (*harness, *tracetest.InMemoryExporter, trace.TracerProvider) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	o.tracing = tp
	return newHarnessWith(t, o), exp, tp
}

// publishTraced publishes an inbound event as publisher does (inbound.Event.Send), in a new trace
// of tp, and returns that trace's id.
func (h *harness) publishTraced(tp trace.TracerProvider, eventType, shop, id string, data any) trace.TraceID {
	h.t.Helper()
	raw, _ := json.Marshal(data)
	body, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: id, Source: "test", Type: eventType,
		Time: "2026-11-26T10:15:00+09:00", DataContentType: "application/json", Data: raw})
	ev := inbound.Event{Subject: events.Subject(eventType, shop), ID: id, MsgID: events.MsgID("test", id), Body: body}
	var traceID trace.TraceID
	err := ev.Send(context.Background(), tp, func(ctx context.Context, msg *nats.Msg) error {
		traceID = trace.SpanContextFromContext(ctx).TraceID()
		_, err := h.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.MsgID))
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if !traceID.IsValid() {
		h.t.Fatal("the publish span has no trace id")
	}
	return traceID
}

// rawMsg is a message of a stream as stored: its headers and its body as a JSON object.
type rawMsg struct {
	Subject string
	Header  nats.Header
	Body    map[string]any
}

func (h *harness) rawMessages(stream string) []rawMsg {
	h.t.Helper()
	return readAll(h.t, h.js, stream, func(m jetstream.Msg) rawMsg {
		r := rawMsg{Subject: m.Subject(), Header: m.Headers()}
		_ = json.Unmarshal(m.Data(), &r.Body)
		return r
	})
}

// traceOf returns the trace id of a W3C traceparent (version-traceid-spanid-flags).
func traceOf(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 {
		return ""
	}
	return parts[1]
}

// TestTraceFollowsAnOrder publishes an order as publisher does, in a new trace, to a worker whose
// ATODENE answers 審査中 first and OK later, and restarts the worker between the two: the order's
// spans, from the publish through both handlings, the poll hours (here seconds) later, the ATODENE
// calls and their HTTP requests, the store's calls, to both outcomes' publishes, form one trace; the
// outcomes carry it in their headers and CloudEvents attributes; and no span holds the buyer's
// personal data.
// It runs with the re-check scheduled in JetStream at once, and held in Redis and handed to
// JetStream shortly before it is due (-poll-handoff-ahead below the poll delays).
func TestTraceFollowsAnOrder(t *testing.T) {
	t.Parallel()
	t.Run("scheduled at once", func(t *testing.T) { t.Parallel(); testTraceFollowsAnOrder(t, nil) })
	t.Run("held in Redis", func(t *testing.T) {
		t.Parallel()
		testTraceFollowsAnOrder(t, func(s *config.Settings) {
			s.PollFirstDelay, s.PollMaxInterval, s.PollHandoffAhead = 3*time.Second, 3*time.Second, time.Second
		})
	})
}

func testTraceFollowsAnOrder(t *testing.T, settings func(*config.Settings)) {
	h, exp, tp := newTracedHarness(t, harnessOpts{settings: settings, sandbox: sandbox.Config{ReviewDelay: 4 * time.Second, HoldDelay: 8 * time.Second, SlowDelay: 3 * time.Second}})
	data := orderData("shop-a", "TR-1", "review-ok@example.jp")
	data["buyer"].(map[string]any)["phone"] = "03-9876-5432"
	traceID := h.publishTraced(tp, "order.created", "shop-a", "ev-tr-1", data)
	h.waitOutcomes("TR-1", "credit.pending", 10*time.Second)
	h.shutdown()
	h.start()
	h.waitOutcomes("TR-1", "credit.pending,credit.ok", 20*time.Second)
	h.shutdown() // every span of the worker ended

	spans := exp.GetSpans()
	mine := map[string][]tracetest.SpanStub{} // by name, the spans of the order's trace
	for _, s := range spans {
		if s.SpanContext.TraceID() == traceID {
			mine[s.Name] = append(mine[s.Name], s)
		}
	}
	for _, want := range []string{"send orders.created.shop-a", "process orders.created.shop-a", "atodene transaction.do",
		"atodene getauthori.do", "redis acquire", "redis write",
		"send credit.pending.shop-a", "send credit.ok.shop-a"} {
		if len(mine[want]) == 0 {
			t.Errorf("no span %q in the order's trace; its spans: %v", want, slices.Sorted(maps.Keys(mine)))
		}
	}
	var polls, schedules int
	for name, list := range mine {
		switch {
		case strings.HasPrefix(name, "process "+pollSubjectBase+"due."):
			polls += len(list)
		case strings.HasPrefix(name, "send "+pollSubjectBase+"sched."):
			schedules += len(list)
		}
	}
	if polls == 0 || schedules == 0 {
		t.Errorf("%d poll schedules and %d polls in the order's trace, want both: the re-check does not join it", schedules, polls)
	}
	for _, s := range mine["process orders.created.shop-a"] {
		got := attrs(s)
		for k, v := range map[string]string{"messaging.system": "nats", "messaging.destination.name": "orders.created.shop-a",
			"messaging.message.id": "ev-tr-1", "messaging.operation.type": "process", "atodene.event_type": "order.created",
			"atodene.shop": "shop-a", "atodene.order_id": "TR-1", "atodene.outcome": "ok", "atodene.attempt": "1"} {
			if got[k] != v {
				t.Errorf("process span: %s = %q, want %q", k, got[k], v)
			}
		}
		if s.SpanKind != trace.SpanKindConsumer {
			t.Errorf("process span of kind %v", s.SpanKind)
		}
	}
	for _, s := range mine["atodene getauthori.do"] {
		if attrs(s)["atodene.result"] != "OK" {
			t.Errorf("getauthori.do span: result %q, want OK", attrs(s)["atodene.result"])
		}
	}
	for _, s := range mine["atodene transaction.do"] {
		got := attrs(s)
		for k, v := range map[string]string{"atodene.result": "OK", "atodene.attempts": "1", "http.request.method": "POST",
			"http.response.status_code": "200", "server.address": "127.0.0.1"} {
			if got[k] != v {
				t.Errorf("transaction.do span: %s = %q, want %q", k, got[k], v)
			}
		}
		if u := got["url.full"]; !strings.HasSuffix(u, "/api/transaction.do") {
			t.Errorf("transaction.do span: url.full %q, want the operation's URL", u)
		}
		if s.SpanKind != trace.SpanKindClient {
			t.Errorf("transaction.do span of kind %v, want client", s.SpanKind)
		}
	}

	outs := h.rawMessages("RESULTS")
	if len(outs) != 2 {
		t.Fatalf("%d outcomes, want 2", len(outs))
	}
	for _, o := range outs {
		header, attr := o.Header.Get("traceparent"), fmt.Sprint(o.Body["traceparent"])
		if traceOf(header) != traceID.String() || header != attr {
			t.Errorf("%s: traceparent header %q and attribute %q, want both of trace %s", o.Subject, header, attr, traceID)
		}
		raw, _ := json.Marshal(o.Body)
		if _, err := events.DecodeEnvelope(o.Subject, raw); err != nil {
			t.Errorf("%s with its trace context is not a valid outcome: %v", o.Subject, err)
		}
	}

	checkNoPersonalData(t, spans, "加藤", "カトウ", "review-ok@example.jp", "03-9876-5432", "150-0001", "神宮前", "緑茶", sandbox.DemoShop.LinkPassword)
	t.Logf("the order's trace:\n%s", renderTrace(spans, traceID))
}

// TestTraceFollowsADeadLetter: an invalid order's process span says why it was dead-lettered, and
// the dead letter carries the trace on.
func TestTraceFollowsADeadLetter(t *testing.T) {
	t.Parallel()
	h, exp, tp := newTracedHarness(t, harnessOpts{})
	bad := orderData("shop-a", "TR-BAD", "taro@example.jp")
	bad["buyer"].(map[string]any)["zip"] = "150-0001x"
	traceID := h.publishTraced(tp, "order.created", "shop-a", "ev-tr-bad", bad)
	wait.For(t, 10*time.Second, "the dead letter", func() bool { return len(h.deadLetters()) == 1 })
	h.shutdown()

	letter := h.rawMessages("DLQ")[0]
	if got := traceOf(letter.Header.Get("traceparent")); got != traceID.String() {
		t.Errorf("dead letter's trace %q, want %s", got, traceID)
	}
	var process, send bool
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() != traceID {
			continue
		}
		switch s.Name {
		case "process orders.created.shop-a":
			process = true
			if a := attrs(s); a["atodene.outcome"] != "dead-letter" || a["atodene.dead_letter.reason"] != "invalid" {
				t.Errorf("process span of an invalid order: %v", a)
			}
		case "send dlq.orders.created.shop-a":
			send = true
		}
	}
	if !process || !send {
		t.Errorf("process span %v, dead letter's send span %v: want both in the order's trace", process, send)
	}
	checkNoPersonalData(t, exp.GetSpans(), "加藤", "150-0001", "taro@example.jp")
}

// TestTracingOffAddsNothing: without a provider (the default), outcomes carry no trace context,
// and no log line a trace id, even for an event whose publisher traced it.
func TestTracingOffAddsNothing(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	h := newHarnessWith(t, harnessOpts{logger: zap.New(core)})
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h.publishTraced(tp, "order.created", "shop-a", "ev-off", orderData("shop-a", "OFF-1", "taro@example.jp"))
	h.waitOutcomes("OFF-1", "credit.ok", 10*time.Second)
	for _, o := range h.rawMessages("RESULTS") {
		if o.Header.Get("traceparent") != "" || o.Body["traceparent"] != nil {
			t.Errorf("%s carries trace context with tracing off: %v", o.Subject, o.Header)
		}
	}
	if logs.FilterMessage("message handled").Len() == 0 {
		t.Fatal("no line \"message handled\": the test proves nothing")
	}
	for _, e := range logs.All() {
		if f := e.ContextMap(); f["trace_id"] != nil || f["span_id"] != nil {
			t.Errorf("%q names a trace with tracing off: %v", e.Message, f)
		}
	}
}

// processSpan returns the process span of the event id, failing the test when there is not one.
func processSpan(t *testing.T, exp *tracetest.InMemoryExporter, id string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if strings.HasPrefix(s.Name, "process ") && attrs(s)["messaging.message.id"] == id {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d process spans of %s, want 1", len(found), id)
	}
	return found[0]
}

// TestLogLineNamesTheTrace: with tracing on, the "message handled" line of an event names the trace
// the publisher started and the span of its handling, in W3C hex, so that an operator goes from the
// line to the trace.
func TestLogLineNamesTheTrace(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	h, exp, tp := newTracedHarness(t, harnessOpts{logger: zap.New(core)})
	traceID := h.publishTraced(tp, "order.created", "shop-a", "ev-log-1", orderData("shop-a", "LOG-1", "taro@example.jp"))
	h.waitOutcomes("LOG-1", "credit.ok", 10*time.Second)
	h.shutdown()

	span := processSpan(t, exp, "ev-log-1")
	var lines int
	for _, e := range logs.FilterMessage("message handled").All() {
		if f := e.ContextMap(); f["event_id"] == "ev-log-1" {
			lines++
			if f["trace_id"] != traceID.String() || f["span_id"] != span.SpanContext.SpanID().String() {
				t.Errorf("trace_id %v, span_id %v; want the trace %s and the process span %s", f["trace_id"], f["span_id"],
					traceID, span.SpanContext.SpanID())
			}
		}
	}
	if lines != 1 {
		t.Errorf("%d lines \"message handled\" of ev-log-1, want 1", lines)
	}
}

// publishWithTrace publishes an order.created event whose body carries the CloudEvents
// distributed-tracing attribute traceparent (and tracestate) when attr is not empty, and whose
// message carries the traceparent header when header is not empty.
func (h *harness) publishWithTrace(id, order, attr, state, header string) {
	h.t.Helper()
	raw, _ := json.Marshal(orderData("shop-a", order, "taro@example.jp"))
	body, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: id, Source: "test", Type: "order.created",
		Time: "2026-11-26T10:15:00+09:00", DataContentType: "application/json", Data: raw})
	body = events.WithTraceContext(body, attr, state) // as a CloudEvents SDK writes them
	msg := nats.NewMsg(events.Subject("order.created", "shop-a"))
	msg.Data = body
	if header != "" {
		msg.Header.Set("traceparent", header)
	}
	if _, err := h.js.PublishMsg(context.Background(), msg, jetstream.WithMsgID(events.MsgID("test", id))); err != nil {
		h.t.Fatal(err)
	}
}

// TestTraceFollowsTheEventsAttributes: an event that carries its trace context in the CloudEvents
// distributed-tracing attributes of its body, and no traceparent header, is handled in that trace;
// the header wins over an attribute of another trace; and an attribute that is no trace context
// starts a new trace, the event handled as any other.
func TestTraceFollowsTheEventsAttributes(t *testing.T) {
	t.Parallel()
	h, exp, _ := newTracedHarness(t, harnessOpts{})
	const (
		attrTrace   = "4bf92f3577b34da6a3ce929d0e0e4736"
		attrSpan    = "00f067aa0ba902b7"
		headerTrace = "0af7651916cd43dd8448eb211c80319c"
		headerSpan  = "b7ad6b7169203331"
		otherTrace  = "11111111111111111111111111111111"
	)
	h.publishWithTrace("ev-attr", "ATTR-1", "00-"+attrTrace+"-"+attrSpan+"-01", "vendor=x", "")
	h.publishWithTrace("ev-both", "ATTR-2", "00-"+otherTrace+"-"+attrSpan+"-01", "", "00-"+headerTrace+"-"+headerSpan+"-01")
	h.publishWithTrace("ev-bad", "ATTR-3", "00-"+attrTrace+"-not-a-span-id-01", "", "")
	for _, order := range []string{"ATTR-1", "ATTR-2", "ATTR-3"} {
		h.waitOutcomes(order, "credit.ok", 10*time.Second)
	}
	h.shutdown()

	for _, tc := range []struct{ id, trace, parent string }{
		{"ev-attr", attrTrace, attrSpan},
		{"ev-both", headerTrace, headerSpan},
	} {
		s := processSpan(t, exp, tc.id)
		if got := s.SpanContext.TraceID().String(); got != tc.trace || s.Parent.SpanID().String() != tc.parent || !s.Parent.IsRemote() {
			t.Errorf("%s: process span in trace %s, child of %s, want trace %s, child of the remote %s", tc.id, got, s.Parent.SpanID(), tc.trace, tc.parent)
		}
		if tc.id == "ev-attr" && s.SpanContext.TraceState().Get("vendor") != "x" {
			t.Errorf("%s: tracestate %q, want the attribute's vendor=x", tc.id, s.SpanContext.TraceState())
		}
	}
	if s := processSpan(t, exp, "ev-bad"); s.Parent.IsValid() || s.SpanContext.TraceID().String() == attrTrace {
		t.Errorf("ev-bad: process span in trace %s, child of %v, want a new root", s.SpanContext.TraceID(), s.Parent.SpanID())
	} else if a := attrs(s); a["atodene.outcome"] != "ok" {
		t.Errorf("ev-bad: process span %v, want outcome ok", a)
	}
	if n := len(h.deadLetters()); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// checkNoPersonalData fails for each span whose name, attributes, status or events hold one of
// secret.
func checkNoPersonalData(t *testing.T, spans tracetest.SpanStubs, secret ...string) {
	t.Helper()
	if len(spans) < 5 {
		t.Fatalf("only %d spans: the check proves nothing", len(spans))
	}
	for _, s := range spans {
		var texts []string
		texts = append(texts, s.Name, s.Status.Description)
		for k, v := range attrs(s) {
			texts = append(texts, k+"="+v)
		}
		for _, e := range s.Events {
			texts = append(texts, e.Name)
			for _, a := range e.Attributes {
				texts = append(texts, a.Value.String())
			}
		}
		for _, text := range texts {
			for _, p := range secret {
				if strings.Contains(text, p) {
					t.Errorf("span %q holds %q: %s", s.Name, p, text)
				}
			}
		}
	}
}

func attrs(s tracetest.SpanStub) map[string]string {
	m := map[string]string{}
	for _, a := range s.Attributes {
		m[string(a.Key)] = a.Value.String()
	}
	return m
}

// renderTrace draws the spans of a trace as a tree, children in start order, with their kind and
// the attributes docs/observability.md shows.
func renderTrace(spans tracetest.SpanStubs, id trace.TraceID) string {
	children := map[trace.SpanID][]tracetest.SpanStub{}
	known := map[trace.SpanID]bool{}
	for _, s := range spans {
		if s.SpanContext.TraceID() == id {
			known[s.SpanContext.SpanID()] = true
		}
	}
	for _, s := range spans {
		if s.SpanContext.TraceID() != id {
			continue
		}
		parent := s.Parent.SpanID()
		if !known[parent] {
			parent = trace.SpanID{}
		}
		children[parent] = append(children[parent], s)
	}
	var b strings.Builder
	var draw func(parent trace.SpanID, depth int)
	draw = func(parent trace.SpanID, depth int) {
		list := children[parent]
		slices.SortFunc(list, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
		for _, s := range list {
			var shown []string
			for _, a := range s.Attributes {
				switch k := string(a.Key); {
				case strings.HasPrefix(k, "atodene."), k == "messaging.message.id", k == "http.response.status_code", k == "db.operation.name":
					shown = append(shown, k+"="+a.Value.String())
				}
			}
			fmt.Fprintf(&b, "%s%s [%s] %s\n", strings.Repeat("  ", depth), s.Name, s.SpanKind, strings.Join(shown, " "))
			draw(s.SpanContext.SpanID(), depth+1)
		}
	}
	draw(trace.SpanID{}, 0)
	return b.String()
}
