package worker

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/atodene-worker/atodene-worker/internal/config"
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
