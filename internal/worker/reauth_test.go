package worker

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// TestReauthorizationThroughJetStream: the re-authorization timer is a JetStream message schedule.
// With reauthorize_after 4 s and a sandbox whose approvals last 8 s, an OK order not shipped is
// registered again under R-1_R1 when the schedule fires (credit.ok reauthorized, the old
// transaction cancelled), and the tracking number that follows is reported on the new
// transaction, which the sandbox still honours.
func TestReauthorizationThroughJetStream(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{
		shopsEdit: func(list []config.Shop) { list[0].ReauthorizeAfter = 4 * time.Second },
		sandbox:   sandbox.Config{AuthorizationLifetime: 8 * time.Second},
	})
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "R-1", "taro@example.jp"))
	outs := h.waitOutcomes("R-1", "credit.ok,credit.ok", 30*time.Second)
	first, again := outs[0].Credit, outs[1].Credit
	if first.Reauthorized || !again.Reauthorized || again.TransactionID == first.TransactionID {
		t.Fatalf("credit outcomes %+v then %+v; want the second reauthorized, on a new transaction", first, again)
	}
	wait.For(t, 10*time.Second, "the old transaction cancelled", func() bool {
		return h.tx("R-1").State == "cancelled"
	})
	if tx := h.tx("R-1_R1"); tx.TransactionID != again.TransactionID || tx.Registrations != 1 {
		t.Fatalf("sandbox R-1_R1: %+v, want transaction %s registered once", tx, again.TransactionID)
	}

	h.publish("order.tracking_entered", "shop-a", "ev-t", tracking("shop-a", "R-1", "yamato", "1234-5678-9012"))
	wait.For(t, 20*time.Second, "shipment.ok", func() bool { return strings.Contains(typesOf(of(h.results(), "R-1")), "shipment.") })
	outs = of(h.results(), "R-1")
	if last := outs[len(outs)-1]; last.Env.Type != "shipment.ok" {
		t.Fatalf("outcomes %s, want the tracking number reported", typesOf(outs))
	}
	live := ""
	for _, o := range outs {
		if o.Env.Type == "credit.ok" {
			live = o.Credit.TransactionID
		}
	}
	for _, tx := range append(h.sandboxTransactions("R-1"), h.sandboxTransactions("R-1_R1")...) {
		if tx.TransactionID == live && tx.Shipment == nil {
			t.Errorf("the live transaction %s holds no shipment report", live)
		}
		if tx.TransactionID != live && tx.State != "cancelled" {
			t.Errorf("transaction %s (%s) is %s, want cancelled", tx.TransactionID, tx.ShopOrderID, tx.State)
		}
	}
}

// faultyProxy stands between the worker and the sandbox: it forwards every request, but answers
// HTTP 503 to the cancel (modifytransaction.do, updateTypeFlag 1) of one transaction while set.
type faultyProxy struct {
	mu       sync.Mutex
	failTx   string
	failed   int
	target   *url.URL
	upstream *http.Client
}

func (p *faultyProxy) failCancelOf(tx string) { p.mu.Lock(); p.failTx = tx; p.mu.Unlock() }

func (p *faultyProxy) failures() int { p.mu.Lock(); defer p.mu.Unlock(); return p.failed }

func (p *faultyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	fail := p.failTx != "" && strings.HasSuffix(r.URL.Path, "/modifytransaction.do") &&
		bytes.Contains(body, []byte("<updateTypeFlag>1</updateTypeFlag>")) && bytes.Contains(body, []byte("<transactionId>"+p.failTx+"</transactionId>"))
	if fail {
		p.failed++
	}
	p.mu.Unlock()
	if fail {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	u := *p.target
	u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := p.upstream.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// TestReauthorizationOldCancelOutageThroughJetStream: through a real worker, JetStream and the
// sandbox. The re-authorization registers the new transaction and publishes credit.ok
// reauthorized; ATODENE then answers 503 to the cancel of the old transaction for a while. The
// timer is not dead-lettered: it tries again on the re-check schedule, with the credit.ok out of
// the outbox. Once ATODENE is well, the timer alone cancels the old transaction; a tracking number
// after RESULTS's duplicate window (shrunk here to 1 s) publishes shipment.ok and no second copy
// of the credit.ok.
func TestReauthorizationOldCancelOutageThroughJetStream(t *testing.T) {
	t.Parallel()
	proxy := &faultyProxy{upstream: &http.Client{Timeout: 10 * time.Second}}
	h := newHarnessWith(t, harnessOpts{
		shopsEdit: func(list []config.Shop) {
			list[0].ReauthorizeAfter = 3 * time.Second
			proxy.target, _ = url.Parse(list[0].Atodene.BaseURL)
			srv := httptest.NewServer(proxy)
			t.Cleanup(srv.Close)
			list[0].Atodene.BaseURL = srv.URL + "/api/"
		},
		settings: func(s *config.Settings) { s.ReconcileInterval = time.Second },
	})
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "ZR-1", "taro@example.jp"))
	old := h.waitOutcomes("ZR-1", "credit.ok", 10*time.Second)[0].Credit.TransactionID
	proxy.failCancelOf(old)
	outs := h.waitOutcomes("ZR-1", "credit.ok,credit.ok", 20*time.Second)
	if !outs[1].Credit.Reauthorized {
		t.Fatalf("second credit.ok %+v, want the re-authorization's", outs[1].Credit)
	}
	reauthID := outs[1].MsgID
	wait.For(t, 20*time.Second, "the old transaction's cancel tried 3 times", func() bool { return proxy.failures() >= 3 })
	for _, d := range h.deadLetters() {
		t.Errorf("dead letter %s: %s: %s; want none", d.Subject(), d.Headers().Get(dlq.HeaderReason), d.Headers().Get(dlq.HeaderError))
	}
	if st := h.state("ZR-1"); st.Reauth == nil || st.Reauth.Phase != orderstate.ReauthCancelling || len(st.Outbox) != 0 || !relies(st.TimerDue()) {
		t.Fatalf("while the cancel fails: reauth %+v, outbox %d, relies on a timer %v; want cancelling, empty, true", st.Reauth, len(st.Outbox), relies(st.TimerDue()))
	}
	shrinkDuplicates(t, h, "RESULTS")
	proxy.failCancelOf("")
	wait.For(t, 20*time.Second, "the old transaction cancelled by the timer", func() bool { return h.tx("ZR-1").State == "cancelled" })

	h.publish("order.tracking_entered", "shop-a", "ev-t", tracking("shop-a", "ZR-1", "yamato", "1234-5678-9012"))
	wait.For(t, 20*time.Second, "shipment.ok", func() bool { return strings.Contains(typesOf(of(h.results(), "ZR-1")), "shipment.ok") })
	n := 0
	for _, o := range of(h.results(), "ZR-1") {
		if o.MsgID == reauthID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("RESULTS holds %d copies of %s (credit.ok reauthorized), want 1; outcomes %s", n, reauthID, typesOf(of(h.results(), "ZR-1")))
	}
}

func relies(_ time.Time, ok bool) bool { return ok }

// shrinkDuplicates sets the duplicate window of stream to 1 s and waits past it, so that a message
// ID published again is stored again, as it would be after the configured window.
func shrinkDuplicates(t *testing.T, h *harness, stream string) {
	t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Twice: the server's purge timer, reset by an update, may run before the new window is set.
	cfg := info.Config
	for _, d := range []time.Duration{time.Second, 1500 * time.Millisecond} {
		cfg.Duplicates = d
		if _, err := h.js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
}
