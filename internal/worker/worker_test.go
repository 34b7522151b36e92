package worker

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

func creditTypes(outs []outcome, order string) []string {
	var types []string
	for _, o := range outs {
		if o.Credit.OrderID == order {
			types = append(types, o.Env.Type+"/"+o.Credit.Review)
		}
	}
	return types
}

func TestOrderCreatedOKWithFeeAndDuplicates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := orderData("shop-a", "A-1", "taro@example.jp")
	h.publish("order.created", "shop-a", "ev-1", data)
	h.publish("order.created", "shop-a", "ev-1", data) // same Nats-Msg-Id: dropped by the server
	h.publish("order.created", "shop-a", "ev-2", data) // a fresh event id for the same order
	wait.For(t, 10*time.Second, "credit.ok", func() bool { return len(h.results()) >= 1 })
	time.Sleep(500 * time.Millisecond) // room for a wrong second outcome to show up

	outs := h.results()
	if len(outs) != 1 {
		t.Fatalf("%d outcomes, want 1: %v", len(outs), creditTypes(outs, "A-1"))
	}
	o := outs[0]
	if o.Subject != "credit.ok.shop-a" || o.Env.Type != "credit.ok" || o.Env.Source != "atodene-worker" || (o.Env.CausationID != "ev-1" && o.Env.CausationID != "ev-2") {
		t.Errorf("outcome envelope: %s %+v", o.Subject, o.Env)
	}
	if o.Credit.Fee != 205 || o.Credit.BilledAmount != 3155 || o.Credit.Result != "ok" || o.Credit.TransactionID == "" {
		t.Errorf("outcome data: %+v", o.Credit)
	}
	if !strings.HasPrefix(o.MsgID, "shop-a:A-1:") {
		t.Errorf("Nats-Msg-Id %q is not derived from the order", o.MsgID)
	}
	txs := h.sandboxTransactions("A-1")
	if len(txs) != 1 || txs[0].Registrations != 1 || txs[0].BilledAmount != 3155 {
		t.Errorf("sandbox transactions: %+v", txs)
	}
}

func TestPollingResolvesReviews(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.publish("order.created", "shop-a", "ev-ok", orderData("shop-a", "R-OK", "review-ok@example.jp"))
	h.publish("order.created", "shop-a", "ev-ng", orderData("shop-a", "R-NG", "review-ng@example.jp"))
	h.publish("order.created", "shop-a", "ev-hold", orderData("shop-a", "R-HOLD", "hold@example.jp"))
	final := func(order, typ string) func() bool {
		return func() bool {
			types := creditTypes(h.results(), order)
			return len(types) > 0 && strings.HasPrefix(types[len(types)-1], typ)
		}
	}
	wait.For(t, 30*time.Second, "R-OK to turn OK", final("R-OK", "credit.ok"))
	wait.For(t, 30*time.Second, "R-NG to turn NG", final("R-NG", "credit.ng"))
	wait.For(t, 30*time.Second, "R-HOLD to turn NG", final("R-HOLD", "credit.ng"))
	outs := h.results()
	want := map[string]string{
		"R-OK":   "credit.pending/,credit.ok/",
		"R-NG":   "credit.pending/,credit.ng/",
		"R-HOLD": "credit.pending/,credit.pending/hold,credit.ng/",
	}
	for order, w := range want {
		if got := strings.Join(creditTypes(outs, order), ","); got != w {
			t.Errorf("%s: outcomes %s, want %s", order, got, w)
		}
	}
	for _, o := range outs {
		if o.Env.Type == "credit.ng" && len(o.Credit.Reasons) == 0 {
			t.Errorf("%s: credit.ng without reasons", o.Credit.OrderID)
		}
	}
}

func TestInvalidInputIsDeadLettered(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	bad := orderData("shop-a", "BAD-1", "taro@example.jp")
	bad["buyer"].(map[string]any)["zip"] = "1500"
	h.publish("order.created", "shop-a", "ev-bad", bad)
	h.publish("order.created", "nowhere", "ev-unknown", orderData("nowhere", "U-1", "taro@example.jp"))
	h.publishRaw("orders.created.shop-a", "", []byte("{not json"))
	h.publishRaw("orders.created.shop-a", "ev-typ", []byte(`{"specversion":"1.0","id":"ev-typ","source":"t","type":"order.updated","data":{}}`))
	h.publish("order.created", "shop-a", "ev-good", orderData("shop-a", "GOOD-1", "taro@example.jp"))

	wait.For(t, 10*time.Second, "the valid order's outcome", func() bool { return len(creditTypes(h.results(), "GOOD-1")) == 1 })
	wait.For(t, 10*time.Second, "4 dead letters", func() bool { return len(h.deadLetters()) >= 4 })
	byReason := map[string][]string{}
	for _, m := range h.deadLetters() {
		hd := m.Headers()
		byReason[hd.Get(dlq.HeaderReason)] = append(byReason[hd.Get(dlq.HeaderReason)], hd.Get(dlq.HeaderError))
		for _, name := range []string{dlq.HeaderOriginalSubject, dlq.HeaderOriginalStream, dlq.HeaderOriginalSequence, dlq.HeaderAttempts, dlq.HeaderFailedAt} {
			if hd.Get(name) == "" {
				t.Errorf("dead letter on %s lacks %s", m.Subject(), name)
			}
		}
		if !strings.HasPrefix(m.Subject(), "dlq.orders.") {
			t.Errorf("dead letter subject %s", m.Subject())
		}
	}
	if errs := byReason["invalid"]; len(errs) != 3 || !strings.Contains(strings.Join(errs, "|"), "buyer.zip") || !strings.Contains(strings.Join(errs, "|"), "does not match subject") {
		t.Errorf("invalid dead letters: %q", errs)
	}
	if errs := byReason["unknown-shop"]; len(errs) != 1 {
		t.Errorf("unknown-shop dead letters: %q", errs)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "H-1", "review-ok@example.jp"))
	wait.For(t, 10*time.Second, "credit.pending", func() bool { return len(h.results()) == 1 })
	base := "http://" + h.deps.Settings.HTTPAddr
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ok",
		"/metrics": `atodene_worker_orders_under_review 1`,
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, want %q in:\n%.2000s", path, resp.StatusCode, want, body)
		}
	}
	resp, _ := http.Get(base + "/metrics")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`atodene_worker_messages_total{outcome="ok",reason="",type="order.created"} 1`,
		`atodene_worker_provider_calls_total{op="transaction",result="ok"} 1`,
		`atodene_worker_handler_seconds_bucket`,
		`atodene_worker_provider_call_seconds_bucket`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// An -http-addr already in use is a start-up error, before anything consumes: the worker used to
// log "worker started" and consume with no /readyz or /metrics of its own until it was stopped.
func TestHTTPAddressInUseIsAnError(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Run(ctx, h.deps) // a second worker on the running one's -http-addr
	if err == nil || !strings.Contains(err.Error(), "listening on -http-addr "+h.deps.Settings.HTTPAddr) {
		t.Fatalf("Run = %v, want the listen error", err)
	}
	if ctx.Err() != nil {
		t.Errorf("Run returned only when its context ended")
	}
}
