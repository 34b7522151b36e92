package atodene

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestOperationSpan: within a recording span, an operation is one client span with the HTTP
// attributes of its last attempt, and each failed attempt that was retried is a "retry" event
// with its status; no span is made per HTTP request.
func TestOperationSpan(t *testing.T) {
	srv, _ := scriptedServer(t, respondStatus(502), respondStatus(500), respondFile("getauthori_hold.response.xml"))
	c, err := New(Config{BaseURL: srv.URL + "/api/", Credentials: Credentials{ShopCode: "abc123456789", LinkPassword: "secret-pw1"},
		RetryInterval: time.Millisecond, MaxRetries: 3})
	if err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	ctx, parent := tp.Tracer("test").Start(context.Background(), "process")
	if _, err := c.GetAuthori(ctx, "12345678902"); err != nil {
		t.Fatal(err)
	}
	parent.End()

	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the operation's and its parent's", len(spans))
	}
	s := spans[0]
	if s.Name != "atodene getauthori.do" || s.SpanKind != trace.SpanKindClient || s.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("span %q of kind %v, parent %v: want the client span atodene getauthori.do, a child of process", s.Name, s.SpanKind, s.Parent.SpanID())
	}
	got := map[string]string{}
	for _, a := range s.Attributes {
		got[string(a.Key)] = a.Value.String()
	}
	for k, v := range map[string]string{"atodene.operation": "getauthori.do", "atodene.result": "OK", "atodene.attempts": "3",
		"http.request.method": "POST", "http.response.status_code": "200", "url.full": srv.URL + "/api/getauthori.do", "server.address": "127.0.0.1"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	var retries []string
	for _, e := range s.Events {
		if e.Name != "retry" {
			t.Errorf("event %q, want only retry events", e.Name)
		}
		retries = append(retries, attr(e.Attributes, "atodene.attempt")+":"+attr(e.Attributes, "http.response.status_code"))
		if !strings.Contains(attr(e.Attributes, "exception.message"), "HTTP") {
			t.Errorf("retry event's message %q, want the attempt's error", attr(e.Attributes, "exception.message"))
		}
	}
	if strings.Join(retries, " ") != "1:502 2:500" {
		t.Errorf("retry events (attempt:status) %v, want 1:502 2:500", retries)
	}
}

func attr(list []attribute.KeyValue, key string) string {
	for _, a := range list {
		if string(a.Key) == key {
			return a.Value.String()
		}
	}
	return ""
}
