package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// answerProxy forwards ATODENE requests to the harness's sandbox, letting edit rewrite the answer
// of one operation (its path's last element, e.g. getinvoicedata.do).
type answerProxy struct {
	target atomic.Pointer[string]
	op     string
	edit   func([]byte) []byte
	edited atomic.Int32
}

func (p *answerProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, *p.target.Load()+r.URL.Path, bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if strings.HasSuffix(r.URL.Path, "/"+p.op) {
		out = p.edit(out)
		p.edited.Add(1)
	}
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

// TestMalformedAnswerQuotesNoBuyerData: ATODENE's invoice print data (getinvoicedata.do) holds
// the buyer's name. An answer with an unescaped '&' in it (a company name "加藤&山田商事" written raw
// by the provider, or a proxy) fails to parse, and encoding/xml's syntax error quotes the text after
// the '&' ("invalid character entity &雅之介 (no semicolon)"). The client put that message into
// MalformedResponseError.Reason, which reached the "message handled" log line, the process and
// ATODENE spans' status and retry events, and the dead letter's Dlq-Error, while no log line and
// no span may hold personal data (observability.md). The client's errors quote no text of an
// answer now (atodene's TestErrorsQuoteNoAnswerText).
func TestMalformedAnswerQuotesNoBuyerData(t *testing.T) {
	t.Parallel()
	const marker = "雅之介" // the buyer's given name
	proxy := &answerProxy{op: "getinvoicedata.do", edit: func(b []byte) []byte {
		return bytes.Replace(b, []byte(marker), []byte("&"+marker), 1)
	}}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	core, logs := observer.New(zapcore.DebugLevel)
	h, exp, _ := newTracedHarness(t, harnessOpts{logger: zap.New(core), invoice: config.InvoiceEnclosed,
		settings:  func(s *config.Settings) { s.MaxDeliveries = 2 },
		shopsEdit: func(list []config.Shop) { list[0].Atodene.BaseURL = srv.URL + "/api/" }})
	target := h.sbURL
	proxy.target.Store(&target)

	data := orderData("shop-a", "MAL-INV", "taro@example.jp")
	data["buyer"].(map[string]any)["name"] = "加藤 " + marker
	h.publish("order.created", "shop-a", "ev-mal-c", data)
	h.waitOutcomes("MAL-INV", "credit.ok", 15*time.Second)
	h.publish("order.invoice_requested", "shop-a", "ev-mal-i", orderRef("shop-a", "MAL-INV"))
	wait.For(t, 90*time.Second, "the invoice request to end (an outcome or a dead letter)", func() bool {
		return len(h.deadLetters()) > 0 || len(h.outcomesOf("MAL-INV")) > 1
	})
	h.shutdown()
	if proxy.edited.Load() == 0 {
		t.Fatal("getinvoicedata.do was never called: the test proves nothing")
	}

	for _, e := range logs.All() {
		line, _ := json.Marshal(map[string]any{"msg": e.Message, "fields": e.ContextMap()})
		if strings.Contains(string(line), marker) {
			t.Errorf("log line holds the buyer's name %q: %s", marker, line)
		}
	}
	for _, l := range h.rawMessages("DLQ") {
		for k, vs := range l.Header {
			for _, v := range vs {
				if strings.Contains(v, marker) {
					t.Errorf("dead letter header %s holds the buyer's name %q: %s", k, marker, v)
				}
			}
		}
	}
	checkNoPersonalData(t, exp.GetSpans(), marker)
}

// TestHugeTracestateIsBounded: an importer's message carries a valid traceparent and a tracestate
// of 32 members of ~250 bytes (~8 kB; W3C asks for at most 32 members, 512 characters being what a
// vendor must propagate). The worker copied it whole into every message it published for the order:
// the outcome's NATS header and its CloudEvents tracestate attribute, which events.md tells a
// consumer to drop when longer than 512 characters, and the poll schedules. Now the tracestate is
// trimmed as W3C says to at most 512 characters where the worker reads it (natstrace.Extract).
func TestHugeTracestateIsBounded(t *testing.T) {
	t.Parallel()
	h, _, _ := newTracedHarness(t, harnessOpts{})
	var members []string
	for i := range 32 {
		members = append(members, fmt.Sprintf("k%02d=%s", i, strings.Repeat("v", 250)))
	}
	tracestate := strings.Join(members, ",")

	raw, _ := json.Marshal(orderData("shop-a", "TS-HUGE", "review-ok@example.jp"))
	body, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: "ev-ts-huge", Source: "test", Type: "order.created",
		Time: "2026-11-26T10:15:00+09:00", DataContentType: "application/json", Data: raw})
	msg := nats.NewMsg(events.Subject("order.created", "shop-a"))
	msg.Data = body
	msg.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	msg.Header.Set("tracestate", tracestate)
	if _, err := h.js.PublishMsg(context.Background(), msg, jetstream.WithMsgID(events.MsgID("test", "ev-ts-huge"))); err != nil {
		t.Fatal(err)
	}
	h.waitOutcomes("TS-HUGE", "credit.pending", 15*time.Second)
	h.shutdown()

	results := h.rawMessages("RESULTS")
	if len(results) == 0 {
		t.Fatal("no outcome")
	}
	for _, o := range results {
		if n := len(o.Header.Get("tracestate")); n > 512 {
			t.Errorf("outcome %s: tracestate header of %d bytes (an importer's %d-byte header copied on)", o.Subject, n, len(tracestate))
		}
		if s, _ := o.Body["tracestate"].(string); len(s) > 512 {
			t.Errorf("outcome %s: CloudEvents tracestate attribute of %d bytes, which events.md tells consumers to drop (> 512)", o.Subject, len(s))
		}
	}
}

// TestLongSubjectIsClippedOnSpans: an importer publishes to orders.created.<3,000 characters> (NATS
// takes subjects of any length its control line allows). The "message handled" log line clipped the
// subject to 256 bytes, but the process span's name and messaging.destination.name, and the dead
// letter's send span, carried it whole; they hold it clipped by tracing.Clip now, as do the consume
// loop's and the panic's log lines.
func TestLongSubjectIsClippedOnSpans(t *testing.T) {
	t.Parallel()
	h, exp, _ := newTracedHarness(t, harnessOpts{})
	subject := "orders.created." + strings.Repeat("x", 3000)
	raw, _ := json.Marshal(orderData("shop-a", "LONG-SUBJ", "taro@example.jp"))
	body, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: "ev-long-subj", Source: "test", Type: "order.created",
		Time: "2026-11-26T10:15:00+09:00", DataContentType: "application/json", Data: raw})
	h.publishRaw(subject, "long-subj", body)
	wait.For(t, 15*time.Second, "the dead letter", func() bool { return len(h.deadLetters()) == 1 })
	h.shutdown()
	spans := exp.GetSpans()
	if len(spans) == 0 {
		t.Fatal("no span")
	}
	for _, s := range spans {
		if len(s.Name) > 300 {
			t.Errorf("span name of %d bytes: %.60s…", len(s.Name), s.Name)
		}
		for k, v := range attrs(s) {
			if len(v) > 300 {
				t.Errorf("span %.40s…: attribute %s of %d bytes", s.Name, k, len(v))
			}
		}
	}
}
