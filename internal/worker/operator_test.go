package worker

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// The tests in this file walk the operator events (docs/lifecycle.md#operator-events) through a
// real worker, JetStream and the sandbox.

func recheckData(order, operator string) map[string]any {
	return map[string]any{"shop_id": "shop-a", "order_id": order, "operator": operator}
}

func resolveData(order, operator, tx string) map[string]any {
	d := map[string]any{"shop_id": "shop-a", "order_id": order, "operator": operator}
	if tx == "" {
		d["not_registered"] = true
	} else {
		d["transaction_id"] = tx
	}
	return d
}

// lastEntry returns the last history entry of an event of the order.
func (h *harness) lastEntry(order, eventID string) orderstate.Entry {
	h.t.Helper()
	var found orderstate.Entry
	for _, e := range h.history(order) {
		if e.ID == eventID {
			found = e
		}
	}
	if found.ID == "" {
		h.t.Fatalf("%s: no history entry of event %s: %+v", order, eventID, h.history(order))
	}
	return found
}

// waitEntry waits until the order's history holds an entry of the event. Settled is not enough:
// an event that found the order's lease held (the handler of the event before it still writing
// its last write, after publishing the outcome the test waited for) is queued in the order's
// inbox and acknowledged before the holder applies it.
func (h *harness) waitEntry(order, eventID string) {
	h.t.Helper()
	wait.For(h.t, 10*time.Second, "an entry of "+eventID+" in the history of "+order, func() bool { return h.historySays(order, eventID, "") })
}

// decide makes the sandbox decide a review now.
func (h *harness) decide(tx, result string) {
	h.t.Helper()
	resp, err := h.sandbox.Client().Post(h.sbURL+"/sandbox/transactions/"+tx+"/decision", "application/json",
		strings.NewReader(`{"result": "`+result+`"}`))
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		h.t.Fatalf("deciding %s %s: HTTP %d", tx, result, resp.StatusCode)
	}
}

// replay publishes a dead letter again to its original subject, as publisher dlq replay does.
func (h *harness) replay(d jetstream.Msg) {
	h.t.Helper()
	msg := nats.NewMsg(d.Headers().Get(dlq.HeaderOriginalSubject))
	msg.Data = d.Data()
	msg.Header.Set(dlq.HeaderReplayCount, "1")
	for _, k := range []string{dlq.HeaderPublishedSequence, dlq.HeaderPublishedStreamCreated} {
		msg.Header.Set(k, d.Headers().Get(k))
	}
	if _, err := h.js.PublishMsg(context.Background(), msg); err != nil {
		h.t.Fatal(err)
	}
}

// TestRecheck: an operator's re-check (与信結果確認) of an order under review, decided at ATODENE
// long before its first re-check is due, publishes the decision at once; a re-check of the order
// once it is OK publishes nothing and records that the credit is OK already; a copy of a re-check
// does nothing.
func TestRecheck(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{
		sandbox:  sandbox.Config{ReviewDelay: time.Hour, HoldDelay: time.Hour, SlowDelay: time.Second},
		settings: func(s *config.Settings) { s.PollFirstDelay, s.PollMaxInterval = time.Hour, time.Hour },
	})
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "RC-1", "review-ok@example.jp"))
	pending := h.waitOutcomes("RC-1", "credit.pending", 10*time.Second)
	tx := pending[0].Credit.TransactionID

	// Still under review: nothing to publish, and the re-check schedule stands.
	h.publish(events.TypeRecheckRequested, "shop-a", "rc-1", recheckData("RC-1", "ops-tanaka"))
	h.waitSettled()
	h.waitEntry("RC-1", "rc-1")
	if e := h.lastEntry("RC-1", "rc-1"); e.Did != "no change: still under review (審査中)" || e.Operator != "ops-tanaka" || e.Status != orderstate.StatusPending {
		t.Errorf("history of the first re-check: %+v", e)
	}

	h.decide(tx, "OK")
	h.publish(events.TypeRecheckRequested, "shop-a", "rc-2", recheckData("RC-1", "ops-tanaka"))
	outs := h.waitOutcomes("RC-1", "credit.pending,credit.ok", 10*time.Second)
	if ok := outs[1]; ok.Env.CausationID != "rc-2" || ok.Credit.TransactionID != tx {
		t.Errorf("credit.ok: causationid %q, transaction %q; want rc-2, %s", ok.Env.CausationID, ok.Credit.TransactionID, tx)
	}
	e := h.lastEntry("RC-1", "rc-2")
	if e.Did != "decided: ok" || e.Operator != "ops-tanaka" || e.Source != "test" || strings.Join(e.Calls, ",") != "getauthori.do: OK" ||
		strings.Join(e.Outcomes, ",") != "credit.ok" || e.Status != orderstate.StatusOK {
		t.Errorf("history of the re-check: %+v", e)
	}

	// OK already: nothing is asked or published, and the history says why.
	h.publish(events.TypeRecheckRequested, "shop-a", "rc-3", recheckData("RC-1", "ops-sato"))
	h.waitSettled()
	h.waitEntry("RC-1", "rc-3")
	if e := h.lastEntry("RC-1", "rc-3"); e.Did != "no change: the credit is ok already" || e.Operator != "ops-sato" || len(e.Calls) != 0 {
		t.Errorf("history of the re-check of an OK order: %+v", e)
	}
	// A copy of a re-check (same source and id, past the stream's duplicate window).
	raw := fmt.Sprintf(`{"specversion":"1.0","id":"rc-2","source":"test","type":%q,"data":{"shop_id":"shop-a","order_id":"RC-1","operator":"ops-tanaka"}}`,
		events.TypeRecheckRequested)
	h.publishRaw(events.Subject(events.TypeRecheckRequested, "shop-a"), "", []byte(raw))
	h.waitSettled()
	if !h.historySays("RC-1", "rc-2", "duplicate: processed already") {
		t.Errorf("history of the copy: %+v", h.history("RC-1"))
	}
	if got := typesOf(h.outcomesOf("RC-1")); got != "credit.pending,credit.ok" {
		t.Errorf("outcomes %s, want credit.pending,credit.ok", got)
	}
	if calls := h.tx("RC-1").Calls["getauthori"]; calls != 2 {
		t.Errorf("%d getauthori.do calls, want the two re-checks' (no poll was due)", calls)
	}
	if n := len(h.deadLetters()); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}

// takenElsewhere registers shopOrderId order at the sandbox through another client (another
// system on the merchant's account), so that the worker's registration of it is answered
// "already registered" and the order becomes unknown; it returns that client and the transaction.
func (h *harness) takenElsewhere(order string) (*atodene.Client, string) {
	h.t.Helper()
	other, err := atodene.New(atodene.Config{BaseURL: h.sbURL + "/api/", Credentials: atodene.Credentials{
		ShopCode: sandbox.DemoShop.ShopCode, LinkID: sandbox.DemoShop.LinkID, LinkPassword: sandbox.DemoShop.LinkPassword}})
	if err != nil {
		h.t.Fatal(err)
	}
	req, err := atodene.Order{ShopOrderID: order, OrderedAt: time.Now(),
		Buyer: atodene.Person{Name: "他 システム", NameKana: "ホカ システム", Zip: "150-0001", Address: "東京都", Phone: "03-1234-5678", Email: "other@example.jp"},
		Items: []atodene.Item{{Name: "品", UnitPrice: 1000, Quantity: 1}}, BilledAmount: 1000, Service: atodene.ServiceSeparate}.Check()
	if err != nil {
		h.t.Fatal(err)
	}
	reg, err := other.Register(context.Background(), req)
	if err != nil {
		h.t.Fatal(err)
	}
	return other, reg.TransactionID
}

// state returns the worker's state of an order of shop-a.
func (h *harness) state(order string) orderstate.State {
	h.t.Helper()
	store := orderstate.New(h.deps.Redis, h.deps.KeyPrefix, time.Hour)
	defer store.Close()
	st, err := store.Get(context.Background(), "shop-a", order)
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// TestResolve: orders made unknown by a transaction registered elsewhere are settled by an
// operator: with the transaction, which ATODENE confirms and the worker adopts (credit.ok); with a
// transaction ATODENE does not know, which is not adopted (a dead letter no-transaction, the order
// still unknown); and with not_registered (the other transaction cancelled meanwhile), after which
// the order.created that went unknown, replayed, registers the order. A resolution of an order that
// is not unknown changes nothing.
func TestResolve(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, txA := h.takenElsewhere("RS-A")
	_, _ = h.takenElsewhere("RS-B")
	otherC, txC := h.takenElsewhere("RS-C")
	for _, order := range []string{"RS-A", "RS-B", "RS-C"} {
		h.publish("order.created", "shop-a", "c-"+order, orderData("shop-a", order, "taro@example.jp"))
	}
	wait.For(t, 10*time.Second, "three outcome-unknown dead letters", func() bool { return deadLettersByReason(h)["outcome-unknown"] == 3 })

	// Adopted: the transaction ATODENE holds, and its decision.
	h.publish(events.TypeResolveRequested, "shop-a", "rs-a", resolveData("RS-A", "ops-sato", txA))
	outs := h.waitOutcomes("RS-A", "credit.ok", 10*time.Second)
	if c := outs[0].Credit; c.TransactionID != txA || outs[0].Env.CausationID != "rs-a" || c.BilledAmount != sentFor(2) {
		t.Errorf("credit.ok of the adopted transaction: %+v, causationid %q", c, outs[0].Env.CausationID)
	}
	if e := h.lastEntry("RS-A", "rs-a"); e.Did != "resolved: transaction "+txA+" adopted" || e.Operator != "ops-sato" ||
		strings.Join(e.Calls, ",") != "getauthori.do: OK" || e.Status != orderstate.StatusOK {
		t.Errorf("history of the resolution: %+v", e)
	}
	if st := h.state("RS-A"); st.Status != orderstate.StatusOK || st.TransactionID != txA {
		t.Errorf("state %s %s, want ok %s", st.Status, st.TransactionID, txA)
	}
	// The order is no longer unknown: another resolution changes nothing.
	h.publish(events.TypeResolveRequested, "shop-a", "rs-a2", resolveData("RS-A", "ops-sato", ""))
	h.waitSettled()
	h.waitEntry("RS-A", "rs-a2")
	if e := h.lastEntry("RS-A", "rs-a2"); e.Did != "no change: the order is ok, not unknown; there is nothing to resolve" {
		t.Errorf("history of a resolution of an OK order: %+v", e)
	}
	if got := typesOf(h.outcomesOf("RS-A")); got != "credit.ok" {
		t.Errorf("outcomes of RS-A %s, want credit.ok", got)
	}

	// Not adopted: ATODENE knows no such transaction.
	h.publish(events.TypeResolveRequested, "shop-a", "rs-b", resolveData("RS-B", "ops-sato", "99999999999"))
	wait.For(t, 10*time.Second, "a no-transaction dead letter", func() bool { return deadLettersByReason(h)["no-transaction"] == 1 })
	for _, d := range h.deadLetters() {
		if d.Headers().Get(dlq.HeaderReason) == "no-transaction" {
			if msg := d.Headers().Get(dlq.HeaderError); !strings.Contains(msg, "99999999999") || !strings.Contains(msg, "not adopted") {
				t.Errorf("Dlq-Error %q does not say the transaction was not adopted", msg)
			}
			if d.Subject() != "dlq."+events.Subject(events.TypeResolveRequested, "shop-a") {
				t.Errorf("dead letter on %s", d.Subject())
			}
		}
	}
	if st := h.state("RS-B"); st.Status != orderstate.StatusUnknown || st.TransactionID != "" {
		t.Errorf("state %s %q, want unknown without a transaction", st.Status, st.TransactionID)
	}
	wait.For(t, 5*time.Second, "the dead letter in the history", func() bool { return h.historySays("RS-B", "rs-b", "dead-lettered: no-transaction") })
	if e := h.lastEntry("RS-B", "rs-b"); e.Operator != "ops-sato" || e.Status != orderstate.StatusUnknown {
		t.Errorf("history of the refused resolution: %+v", e)
	}
	if got := typesOf(h.outcomesOf("RS-B")); got != "" {
		t.Errorf("outcomes of RS-B %s, want none", got)
	}

	// Not registered: the other system's transaction is cancelled; the order returns to none, and
	// the order.created that went unknown, replayed, registers it.
	if err := otherC.Cancel(context.Background(), txC); err != nil {
		t.Fatal(err)
	}
	h.publish(events.TypeResolveRequested, "shop-a", "rs-c", resolveData("RS-C", "ops-sato", ""))
	h.waitSettled()
	if e := h.lastEntry("RS-C", "rs-c"); !strings.HasPrefix(e.Did, "resolved: not registered") || e.Operator != "ops-sato" || e.Status != orderstate.StatusNone {
		t.Errorf("history of the resolution: %+v", e)
	}
	var letterC jetstream.Msg
	for _, d := range h.deadLetters() {
		if d.Headers().Get(dlq.HeaderReason) == "outcome-unknown" && strings.Contains(string(d.Data()), `"c-RS-C"`) {
			letterC = d
		}
	}
	if letterC == nil {
		t.Fatal("no outcome-unknown dead letter of RS-C's order.created")
	}
	h.replay(letterC)
	outs = h.waitOutcomes("RS-C", "credit.ok", 10*time.Second)
	if outs[0].Credit.TransactionID == txC {
		t.Errorf("credit.ok names the cancelled transaction %s", txC)
	}
	var live int
	for _, v := range h.sandboxTransactions("RS-C") {
		if v.State != "cancelled" {
			live++
		}
	}
	if live != 1 {
		t.Errorf("sandbox: %+v, want one live transaction of RS-C (the worker's) beside the cancelled one", h.sandboxTransactions("RS-C"))
	}
	if n := deadLettersByReason(h); n["outcome-unknown"] != 3 || n["no-transaction"] != 1 || len(h.deadLetters()) != 4 {
		t.Errorf("dead letters %v, want the three outcome-unknown and one no-transaction", n)
	}
}

// TestDueRecheckOfALostTransaction: ATODENE loses the transaction of an order under review (the
// sandbox reset): its due re-check is answered er000002. The order becomes unknown, the re-check is
// dead-lettered outcome-unknown once (the reconciler does not make it again, through several of its
// intervals and past the poll deadline), and its history says so. The operator's resolution,
// not_registered, returns the order to none, and the shop's next order.created registers it again.
func TestDueRecheckOfALostTransaction(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{
		sandbox:  sandbox.Config{ReviewDelay: time.Hour, HoldDelay: time.Hour, SlowDelay: time.Second},
		settings: func(s *config.Settings) { s.ReconcileInterval = time.Second; s.PollDeadline = 5 * time.Second },
	})
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "NX-1", "review-ok@example.jp"))
	h.waitOutcomes("NX-1", "credit.pending", 10*time.Second)
	resp, err := h.sandbox.Client().Post(h.sbURL+"/sandbox/reset", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	pollLetters := func() (n int, reasons []string) {
		for _, d := range h.deadLetters() {
			if strings.HasPrefix(d.Subject(), "dlq.atodene.poll.due.") {
				n++
				reasons = append(reasons, d.Headers().Get(dlq.HeaderReason)+": "+d.Headers().Get(dlq.HeaderError))
			}
		}
		return n, reasons
	}
	wait.For(t, 15*time.Second, "the re-check dead-lettered", func() bool { n, _ := pollLetters(); return n >= 1 })
	time.Sleep(7 * time.Second) // seven reconcile intervals, past the poll deadline
	if n, reasons := pollLetters(); n != 1 || !strings.HasPrefix(reasons[0], "outcome-unknown: ") {
		t.Fatalf("%d dead letters of NX-1's re-check (%q), want one, outcome-unknown", n, reasons)
	}
	st := h.state("NX-1")
	if _, relies := st.TimerDue(); st.Status != orderstate.StatusUnknown || relies {
		t.Fatalf("state %s, relies on a timer %v; want unknown, none", st.Status, relies)
	}
	if !strings.Contains(didsOf(h.history("NX-1")), "dead-lettered: outcome-unknown") {
		t.Errorf("history %s, want the dead letter", didsOf(h.history("NX-1")))
	}
	if got := typesOf(of(h.results(), "NX-1")); got != "credit.pending" {
		t.Errorf("outcomes %s, want credit.pending only", got)
	}

	h.publish(events.TypeResolveRequested, "shop-a", "rs-1", resolveData("NX-1", "ops", ""))
	wait.For(t, 10*time.Second, "NX-1 resolved", func() bool { return h.state("NX-1").Status == orderstate.StatusNone })
	h.publish("order.created", "shop-a", "ev-2", orderData("shop-a", "NX-1", "review-ok@example.jp"))
	h.waitOutcomes("NX-1", "credit.pending,credit.pending", 10*time.Second)
	if st := h.state("NX-1"); st.Status != orderstate.StatusPending {
		t.Errorf("after the resolution and a new order.created: %s, want pending", st.Status)
	}
}

func didsOf(entries []orderstate.Entry) string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Type+": "+e.Did)
	}
	return strings.Join(out, " | ")
}
