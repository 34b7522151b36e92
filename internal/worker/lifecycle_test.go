package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// The tests in this file walk every transition of the order state machine (docs/lifecycle.md)
// through a real worker: events in on ORDERS, outcomes read back from
// RESULTS, and what ATODENE was asked read back from the sandbox's admin API.

// Amounts of orderData with a given quantity of its one item (1200 yen), before and after the
// harness's fee table (+205 yen).
func billedFor(quantity int) int64 { return int64(1200*quantity + 550) }
func sentFor(quantity int) int64   { return billedFor(quantity) + 205 }

// withQuantity returns a copy of an orderData payload whose item quantity (and billed amount) is
// quantity.
func withQuantity(data map[string]any, quantity int) map[string]any {
	out := maps.Clone(data)
	out["items"] = []any{map[string]any{"name": "緑茶ティーバッグ 50包", "unit_price": 1200, "quantity": quantity}}
	out["billed_amount"] = billedFor(quantity)
	return out
}

// withBuyer returns a copy of an orderData payload with some buyer fields replaced.
func withBuyer(data map[string]any, kv ...string) map[string]any {
	out := maps.Clone(data)
	buyer := maps.Clone(data["buyer"].(map[string]any))
	for i := 0; i+1 < len(kv); i += 2 {
		buyer[kv[i]] = kv[i+1]
	}
	out["buyer"] = buyer
	return out
}

func tracking(shop, order, carrier, number string) map[string]any {
	return map[string]any{"shop_id": shop, "order_id": order, "carrier": carrier, "tracking_number": number}
}

func orderRef(shop, order string) map[string]any {
	return map[string]any{"shop_id": shop, "order_id": order}
}

// of returns the outcomes of one order, in stream order.
func of(outs []outcome, order string) []outcome {
	var mine []outcome
	for _, o := range outs {
		if o.Credit.OrderID == order {
			mine = append(mine, o)
		}
	}
	return mine
}

// typesOf lists the outcome types, e.g. "credit.ok,shipment.ok".
func typesOf(outs []outcome) string {
	types := make([]string, len(outs))
	for i, o := range outs {
		types[i] = o.Env.Type
	}
	return strings.Join(types, ",")
}

func shipmentOf(t *testing.T, o outcome) events.Shipment {
	t.Helper()
	var s events.Shipment
	if err := json.Unmarshal(o.Env.Data, &s); err != nil {
		t.Fatalf("%s is not a shipment outcome: %v", o.Env.Type, err)
	}
	return s
}

func invoiceOf(t *testing.T, o outcome) events.Invoice {
	t.Helper()
	var inv events.Invoice
	if err := json.Unmarshal(o.Env.Data, &inv); err != nil {
		t.Fatalf("%s is not an invoice outcome: %v", o.Env.Type, err)
	}
	return inv
}

// outcomesOf waits until every inbound event published so far is settled (acknowledged or
// dead-lettered, none waiting for a redelivery) and returns the order's outcomes. Outcomes are
// published before their event is acknowledged, so none of them is still on its way.
func (h *harness) outcomesOf(order string) []outcome {
	h.t.Helper()
	h.waitSettled()
	return of(h.results(), order)
}

// waitSettled waits until the worker's consumer of ORDERS has nothing pending or unacknowledged.
func (h *harness) waitSettled() {
	h.t.Helper()
	wait.For(h.t, 20*time.Second, "the inbound events to be settled", h.settled)
}

// settled reports whether every message of ORDERS is acknowledged (or dead-lettered) by the
// worker's consumer. The stream's last sequence is read first: the consumer counts a message as
// pending only once the stream has signalled it (asynchronously), so a message published just now
// can be neither pending nor delivered yet; it is settled once under the ack floor.
func (h *harness) settled() bool {
	ctx := context.Background()
	stream, err := h.js.Stream(ctx, h.deps.Settings.OrdersStream)
	if err != nil {
		return false
	}
	sinfo, err := stream.Info(ctx)
	if err != nil {
		return false
	}
	c, err := h.js.Consumer(ctx, h.deps.Settings.OrdersStream, ordersConsumer)
	if err != nil {
		return false
	}
	info, err := c.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= sinfo.State.LastSeq
}

// waitOutcomes waits until the order's outcomes are exactly want (comma-separated types) and
// returns them. It fails at once when they can no longer become want.
func (h *harness) waitOutcomes(order, want string, timeout time.Duration) []outcome {
	h.t.Helper()
	var mine []outcome
	wait.For(h.t, timeout, order+" outcomes "+want, func() bool {
		mine = of(h.results(), order)
		got := typesOf(mine)
		if got != want && !strings.HasPrefix(want, got) {
			h.t.Fatalf("%s: outcomes %s, want %s", order, got, want)
		}
		return got == want
	})
	return mine
}

// tx returns the sandbox's only transaction of an order.
func (h *harness) tx(order string) sandbox.TransactionView {
	h.t.Helper()
	txs := h.sandboxTransactions(order)
	if len(txs) != 1 {
		h.t.Fatalf("sandbox holds %d transactions of %s, want 1: %+v", len(txs), order, txs)
	}
	return txs[0]
}

// checkOutcomes checks that every outcome has its own message ID, derived from its order.
func checkOutcomes(t *testing.T, outs []outcome) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range outs {
		if seen[o.MsgID] {
			t.Errorf("message ID %s published twice", o.MsgID)
		}
		seen[o.MsgID] = true
		if want := o.Credit.ShopID + ":" + o.Credit.OrderID + ":"; !strings.HasPrefix(o.MsgID, want) || !strings.HasSuffix(o.MsgID, ":"+o.Env.Type) {
			t.Errorf("message ID %s of %s is not %s<version>:%s", o.MsgID, o.Env.Type, want, o.Env.Type)
		}
		if o.Env.ID != o.MsgID {
			t.Errorf("event id %s differs from its message ID %s", o.Env.ID, o.MsgID)
		}
	}
}

func calls(v sandbox.TransactionView) string {
	keys := slices.Sorted(maps.Keys(v.Calls))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if v.Calls[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v.Calls[k]))
		}
	}
	return strings.Join(parts, " ")
}

// ok → order.updated (new data) → change → ok; the same data again → nothing.
func TestUpdateOfOKOrderIsAChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := orderData("shop-a", "UP-1", "taro@example.jp")
	h.publish("order.created", "shop-a", "ev-c", data)
	first := h.waitOutcomes("UP-1", "credit.ok", 10*time.Second)[0]

	changed := withQuantity(data, 3)
	h.publish("order.updated", "shop-a", "ev-u1", changed)
	outs := h.waitOutcomes("UP-1", "credit.ok,credit.ok", 10*time.Second)
	second := outs[1]
	if second.MsgID == first.MsgID {
		t.Errorf("the change's credit.ok repeats the message ID %s", first.MsgID)
	}
	if c := second.Credit; c.Fee != 205 || c.BilledAmount != sentFor(3) || c.TransactionID != first.Credit.TransactionID || second.Env.CausationID != "ev-u1" {
		t.Errorf("credit.ok after the change: %+v caused by %s, want fee 205, billed %d, transaction %s, caused by ev-u1", c, second.Env.CausationID, sentFor(3), first.Credit.TransactionID)
	}
	tx := h.tx("UP-1")
	if tx.Calls["modifytransaction"] != 1 || tx.Calls["transaction"] != 1 || tx.Registrations != 1 || tx.BilledAmount != sentFor(3) || tx.Decision != "OK" {
		t.Errorf("sandbox after the change: %+v (calls %s)", tx, calls(tx))
	}

	h.publish("order.updated", "shop-a", "ev-u2", changed) // fresh event id, identical data
	outs = h.outcomesOf("UP-1")
	if got := typesOf(outs); got != "credit.ok,credit.ok" {
		t.Errorf("outcomes after the identical update: %s", got)
	}
	if tx := h.tx("UP-1"); tx.Calls["modifytransaction"] != 1 {
		t.Errorf("the identical update called ATODENE: %s", calls(tx))
	}
	checkOutcomes(t, outs)
}

// ok → order.updated → ng when the change is re-screened above the ceiling; an address-only
// change is not re-screened and stays ok.
func TestUpdateRescreens(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	raise := orderData("shop-a", "UP-NG", "taro@example.jp")
	move := orderData("shop-a", "UP-ADDR", "taro@example.jp")
	h.publish("order.created", "shop-a", "ev-c1", raise)
	h.publish("order.created", "shop-a", "ev-c2", move)
	h.waitOutcomes("UP-NG", "credit.ok", 10*time.Second)
	h.waitOutcomes("UP-ADDR", "credit.ok", 10*time.Second)

	h.publish("order.updated", "shop-a", "ev-u1", withQuantity(raise, 50)) // 60,755 yen sent
	h.publish("order.updated", "shop-a", "ev-u2", withBuyer(move, "zip", "060-0001", "address", "北海道札幌市中央区北1条西2丁目"))
	ng := h.waitOutcomes("UP-NG", "credit.ok,credit.ng", 10*time.Second)[1]
	if c := ng.Credit; c.Result != "ng" || c.BilledAmount != sentFor(50) || sentFor(50) <= 55000 {
		t.Errorf("credit.ng after the raise: %+v", c)
	}
	if tx := h.tx("UP-NG"); tx.Decision != "NG" || tx.Calls["modifytransaction"] != 1 || tx.BilledAmount != sentFor(50) {
		t.Errorf("sandbox after the raise: %+v (calls %s)", tx, calls(tx))
	}
	ok := h.waitOutcomes("UP-ADDR", "credit.ok,credit.ok", 10*time.Second)[1]
	if c := ok.Credit; c.Result != "ok" || c.BilledAmount != sentFor(2) {
		t.Errorf("credit.ok after the address change: %+v", c)
	}
	if tx := h.tx("UP-ADDR"); tx.Decision != "OK" || tx.AutoResult != "OK" || tx.Calls["modifytransaction"] != 1 {
		t.Errorf("sandbox after the address change: %+v (calls %s)", tx, calls(tx))
	}
	checkOutcomes(t, h.outcomesOf("UP-NG"))
	checkOutcomes(t, h.outcomesOf("UP-ADDR"))
}

// A change whose answer is lost after ATODENE screened it is sent again; ATODENE answers the
// identical retry with an empty autoAuthoriresult (nothing changed since), and the worker must ask
// which decision stands rather than keep the one it had: here NG, not the earlier OK. (Found by
// the reliability suite's provider-faults scenario.)
func TestUpdateWhoseAnswerWasLost(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := orderData("shop-a", "UP-LOST", "taro@example.jp")
	h.publish("order.created", "shop-a", "ev-c1", data)
	h.waitOutcomes("UP-LOST", "credit.ok", 10*time.Second)

	h.setFaults(`{"garbage_rate": 1.0}`)                                  // processed, answered with malformed XML
	h.publish("order.updated", "shop-a", "ev-u1", withQuantity(data, 50)) // 60,755 yen: NG
	wait.For(t, 10*time.Second, "the change to reach the sandbox", func() bool { return h.tx("UP-LOST").Decision == "NG" })
	h.setFaults(`{}`)
	ng := h.waitOutcomes("UP-LOST", "credit.ok,credit.ng", 15*time.Second)[1]
	if c := ng.Credit; c.Result != "ng" || c.BilledAmount != sentFor(50) {
		t.Errorf("after the retried change: %+v", c)
	}
	if tx := h.tx("UP-LOST"); tx.Decision != "NG" || tx.Calls["modifytransaction"] < 2 {
		t.Errorf("sandbox: %+v (calls %s)", tx, calls(tx))
	}
	checkOutcomes(t, h.outcomesOf("UP-LOST"))
}

// ng → order.updated (new data) → registered again; identical data → nothing.
func TestUpdateOfNGOrderRegistersAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := orderData("shop-a", "NG-1", "ng-buyer@example.jp")
	h.publish("order.created", "shop-a", "ev-c", data)
	h.waitOutcomes("NG-1", "credit.ng", 10*time.Second)

	h.publish("order.updated", "shop-a", "ev-u0", data) // what was declined, again
	if got := typesOf(h.outcomesOf("NG-1")); got != "credit.ng" {
		t.Errorf("outcomes after an update with the declined data: %s", got)
	}
	if tx := h.tx("NG-1"); tx.Registrations != 1 || tx.RejectedRegistrations != 0 || tx.Calls["modifytransaction"] != 0 {
		t.Errorf("the update with the declined data called ATODENE: %+v (calls %s)", tx, calls(tx))
	}

	fixed := withBuyer(data, "email", "taro@example.jp")
	h.publish("order.updated", "shop-a", "ev-u1", fixed)
	outs := h.waitOutcomes("NG-1", "credit.ng,credit.ok", 10*time.Second)
	txs := h.sandboxTransactions("NG-1")
	if len(txs) != 2 || txs[1].Registrations != 2 || txs[0].Decision != "NG" || txs[1].Decision != "OK" || txs[1].State != "active" {
		t.Fatalf("sandbox after the re-registration: %+v", txs)
	}
	if outs[1].Credit.TransactionID != txs[1].TransactionID || outs[1].Credit.TransactionID == outs[0].Credit.TransactionID {
		t.Errorf("credit.ok names transaction %s, want the new one %s", outs[1].Credit.TransactionID, txs[1].TransactionID)
	}

	h.publish("order.updated", "shop-a", "ev-u2", fixed) // fresh event id, identical data
	outs = h.outcomesOf("NG-1")
	if got := typesOf(outs); got != "credit.ng,credit.ok" {
		t.Errorf("outcomes after the identical update: %s", got)
	}
	if txs := h.sandboxTransactions("NG-1"); len(txs) != 2 || txs[1].Registrations != 2 || txs[1].Calls["modifytransaction"] != 0 {
		t.Errorf("the identical update called ATODENE: %+v", txs)
	}
	checkOutcomes(t, outs)
}

// pending → order.updated → change → pending; polling goes on with the new data and resolves.
func TestUpdateOfPendingOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := orderData("shop-a", "PU-1", "review-ok@example.jp")
	h.publish("order.created", "shop-a", "ev-c", data)
	h.waitOutcomes("PU-1", "credit.pending", 10*time.Second)

	h.publish("order.updated", "shop-a", "ev-u", withQuantity(data, 3))
	outs := h.waitOutcomes("PU-1", "credit.pending,credit.pending,credit.ok", 20*time.Second)
	for _, o := range outs[1:] {
		if o.Credit.BilledAmount != sentFor(3) || o.Env.CausationID != "ev-u" {
			t.Errorf("%s after the change: billed %d caused by %s, want %d caused by ev-u", o.Env.Type, o.Credit.BilledAmount, o.Env.CausationID, sentFor(3))
		}
	}
	tx := h.tx("PU-1")
	if tx.Decision != "OK" || tx.BilledAmount != sentFor(3) || tx.Calls["modifytransaction"] != 1 || tx.Calls["getauthori"] < 1 {
		t.Errorf("sandbox: %+v (calls %s)", tx, calls(tx))
	}
	time.Sleep(2500 * time.Millisecond) // an outdated poll would find the order decided
	outs = h.outcomesOf("PU-1")
	if got := typesOf(outs); got != "credit.pending,credit.pending,credit.ok" {
		t.Errorf("outcomes in the end: %s", got)
	}
	checkOutcomes(t, outs)
}

// ok → order.cancelled → cancelled; again → nothing; an order the worker has no record of → the
// cancel waits for it (parked), with no outcome and no call (a credit.cancelled would be made up:
// ATODENE may hold its transaction), and a later cancel waits in its place; order.created after the cancel whose time is before the cancel's (an importer's late
// retry) → nothing; order.created after the cancel, even with the same data (与信を実行 after
// 与信キャンセル, docs/lifecycle.md#ordercreated) → registered again.
func TestCancel(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := orderData("shop-a", "CX-1", "taro@example.jp")
	h.publish("order.created", "shop-a", "ev-c", data)
	ok := h.waitOutcomes("CX-1", "credit.ok", 10*time.Second)[0]

	h.publish("order.cancelled", "shop-a", "ev-x1", orderRef("shop-a", "CX-1"))
	h.publish("order.cancelled", "shop-a", "ev-n1", orderRef("shop-a", "CX-NEVER"))
	cancelled := h.waitOutcomes("CX-1", "credit.ok,credit.cancelled", 10*time.Second)[1]
	if c := cancelled.Credit; c.Result != "cancelled" || c.TransactionID != ok.Credit.TransactionID {
		t.Errorf("credit.cancelled: %+v", c)
	}
	if tx := h.tx("CX-1"); tx.State != "cancelled" || tx.Calls["modifytransaction"] != 1 {
		t.Errorf("sandbox after the cancel: %+v (calls %s)", tx, calls(tx))
	}
	wait.For(t, 10*time.Second, "the cancel of an order never seen to wait", func() bool {
		return h.historySays("CX-NEVER", "ev-n1", "parked: waiting for the order's credit check (the worker has no record of the order)")
	})
	if txs := h.sandboxTransactions("CX-NEVER"); len(txs) != 0 {
		t.Errorf("the sandbox heard of an order never seen: %+v", txs)
	}

	h.publish("order.cancelled", "shop-a", "ev-x2", orderRef("shop-a", "CX-1"))
	h.publish("order.cancelled", "shop-a", "ev-n2", orderRef("shop-a", "CX-NEVER"))
	h.publishAt("order.created", "shop-a", "ev-c2", "2026-11-26T10:14:59+09:00", data) // a retry from before the cancel
	if got := typesOf(h.outcomesOf("CX-1")); got != "credit.ok,credit.cancelled" {
		t.Errorf("outcomes of CX-1 after a second cancel and a late retry: %s", got)
	}
	if got := typesOf(h.outcomesOf("CX-NEVER")); got != "" {
		t.Errorf("outcomes of CX-NEVER: %s, want none", got)
	}
	wait.For(t, 10*time.Second, "the later cancel of an order never seen to wait in place of the first", func() bool {
		return h.historySays("CX-NEVER", "ev-n2", "parked: waiting for") &&
			h.historySays("CX-NEVER", "ev-n1", "superseded while waiting: a later cancel (event ev-n2) replaces it")
	})
	if tx := h.tx("CX-1"); tx.Calls["modifytransaction"] != 1 || tx.Registrations != 1 {
		t.Errorf("the second cancel or the late retry called ATODENE: %+v (calls %s)", tx, calls(tx))
	}
	if !wait.Until(10*time.Second, func() bool {
		return h.historySays("CX-1", "ev-c2", "no change: the event's time is before the order's cancel")
	}) {
		t.Errorf("the late retry left no trace in the history: %+v", h.history("CX-1"))
	}

	h.publishAt("order.created", "shop-a", "ev-c3", "2026-11-26T11:00:00+09:00", data) // 与信を実行, the same data
	again := h.waitOutcomes("CX-1", "credit.ok,credit.cancelled,credit.ok", 10*time.Second)[2]
	txs := h.sandboxTransactions("CX-1")
	if len(txs) != 2 || txs[0].State != "cancelled" || txs[1].State != "active" || txs[1].Registrations != 2 || txs[1].BilledAmount != sentFor(2) {
		t.Fatalf("sandbox after the new registration: %+v", txs)
	}
	if again.Credit.TransactionID != txs[1].TransactionID || again.Credit.BilledAmount != sentFor(2) {
		t.Errorf("credit.ok of the new registration: %+v, want transaction %s", again.Credit, txs[1].TransactionID)
	}

	h.publish("order.cancelled", "shop-a", "ev-x3", orderRef("shop-a", "CX-1"))
	h.waitOutcomes("CX-1", "credit.ok,credit.cancelled,credit.ok,credit.cancelled", 10*time.Second)
	h.publishAt("order.updated", "shop-a", "ev-u4", "2026-11-26T12:00:00+09:00", withQuantity(data, 3)) // new data, after the cancel
	h.waitOutcomes("CX-1", "credit.ok,credit.cancelled,credit.ok,credit.cancelled,credit.ok", 10*time.Second)
	if txs := h.sandboxTransactions("CX-1"); len(txs) != 3 || txs[2].State != "active" || txs[2].BilledAmount != sentFor(3) {
		t.Errorf("sandbox after the update of the cancelled order: %+v", txs)
	}
	checkOutcomes(t, h.outcomesOf("CX-1"))
}

// pending → order.cancelled while a poll is scheduled → cancelled, and the poll never turns it
// ok.
func TestCancelWhilePolling(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// Cancelled at different points of the first poll's wait (the review takes 1.5 s).
	orders := []string{"CP-1", "CP-2", "CP-3"}
	delays := []time.Duration{0, 700 * time.Millisecond, 1200 * time.Millisecond}
	for _, order := range orders {
		h.publish("order.created", "shop-a", "ev-c-"+order, orderData("shop-a", order, "review-ok@example.jp"))
	}
	for _, order := range orders {
		h.waitOutcomes(order, "credit.pending", 10*time.Second)
	}
	start := time.Now()
	for i, order := range orders {
		time.Sleep(time.Until(start.Add(delays[i])))
		h.publish("order.cancelled", "shop-a", "ev-x-"+order, orderRef("shop-a", order))
	}
	before := map[string]int{} // getauthori calls when the cancel was done
	for _, order := range orders {
		h.waitOutcomes(order, "credit.pending,credit.cancelled", 10*time.Second)
		before[order] = h.tx(order).Calls["getauthori"]
	}
	time.Sleep(1500*time.Millisecond + 2*2*time.Second) // the review delay and two poll intervals
	for _, order := range orders {
		outs := h.outcomesOf(order)
		if got := typesOf(outs); got != "credit.pending,credit.cancelled" {
			t.Errorf("%s: outcomes %s, want credit.pending,credit.cancelled", order, got)
		}
		tx := h.tx(order)
		if tx.State != "cancelled" || tx.Calls["modifytransaction"] != 1 {
			t.Errorf("%s: sandbox %+v (calls %s)", order, tx, calls(tx))
		}
		if tx.Calls["getauthori"] != before[order] {
			t.Errorf("%s polled after its cancel: getauthori %d, then %d", order, before[order], tx.Calls["getauthori"])
		}
		checkOutcomes(t, outs)
	}
}

// ok → order.tracking_entered → reported (new); the same values → nothing; another number →
// change.
func TestTrackingOfOKOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "SH-1", "taro@example.jp"))
	credit := h.waitOutcomes("SH-1", "credit.ok", 10*time.Second)[0]

	h.publish("order.tracking_entered", "shop-a", "ev-t1", tracking("shop-a", "SH-1", "yamato", "1234-5678-9012"))
	outs := h.waitOutcomes("SH-1", "credit.ok,shipment.ok", 10*time.Second)
	if s := shipmentOf(t, outs[1]); s.Report != "new" || s.CarrierCode != "12" || s.TrackingNumber != "1234-5678-9012" || s.TransactionID != credit.Credit.TransactionID || len(s.Errors) != 0 {
		t.Errorf("shipment.ok: %+v", s)
	}
	tx := h.tx("SH-1")
	if sh := tx.Shipment; sh == nil || sh.DeliveryType != "1" || sh.DeliveryCompanyCode != "12" || sh.DeliverySlipNo != "1234-5678-9012" || tx.Calls["shippingrequest"] != 1 {
		t.Fatalf("sandbox after the report: %+v %+v (calls %s)", tx, tx.Shipment, calls(tx))
	}

	h.publish("order.tracking_entered", "shop-a", "ev-t2", tracking("shop-a", "SH-1", "yamato", "1234-5678-9012"))
	h.publish("order.tracking_entered", "shop-a", "ev-t3", tracking("shop-a", "SH-1", "12", "1234-5678-9012")) // the code itself
	if got := typesOf(h.outcomesOf("SH-1")); got != "credit.ok,shipment.ok" {
		t.Errorf("outcomes after the same values: %s", got)
	}
	if tx := h.tx("SH-1"); tx.Calls["shippingrequest"] != 1 {
		t.Errorf("the same values were reported again: calls %s", calls(tx))
	}

	h.publish("order.tracking_entered", "shop-a", "ev-t4", tracking("shop-a", "SH-1", "yamato", "9999-0000-1111"))
	outs = h.waitOutcomes("SH-1", "credit.ok,shipment.ok,shipment.ok", 10*time.Second)
	if s := shipmentOf(t, outs[2]); s.Report != "change" || s.TrackingNumber != "9999-0000-1111" || s.CarrierCode != "12" {
		t.Errorf("shipment.ok of the change: %+v", s)
	}
	tx = h.tx("SH-1")
	if sh := tx.Shipment; sh == nil || sh.DeliveryType != "2" || sh.DeliverySlipNo != "9999-0000-1111" || tx.Calls["shippingrequest"] != 2 {
		t.Errorf("sandbox after the change: %+v %+v (calls %s)", tx, tx.Shipment, calls(tx))
	}
	checkOutcomes(t, h.outcomesOf("SH-1"))
}

// pending → order.tracking_entered → queued; reported once, when the credit turns ok.
func TestTrackingOfPendingOrderIsQueued(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "SQ-1", "review-ok@example.jp"))
	h.waitOutcomes("SQ-1", "credit.pending", 10*time.Second)
	h.publish("order.tracking_entered", "shop-a", "ev-t1", tracking("shop-a", "SQ-1", "sagawa", "5555-6666-7777"))
	h.publish("order.tracking_entered", "shop-a", "ev-t2", tracking("shop-a", "SQ-1", "sagawa", "5555-6666-7777"))
	h.waitSettled()
	tx := h.tx("SQ-1") // read before the outcomes: if they still say pending, nothing was reported
	if got := typesOf(of(h.results(), "SQ-1")); got == "credit.pending" && (tx.Calls["shippingrequest"] != 0 || tx.Shipment != nil) {
		t.Errorf("reported while under review: %+v (calls %s)", tx, calls(tx))
	}

	outs := h.waitOutcomes("SQ-1", "credit.pending,credit.ok,shipment.ok", 20*time.Second)
	if s := shipmentOf(t, outs[2]); s.Report != "new" || s.CarrierCode != "11" || s.TrackingNumber != "5555-6666-7777" || s.TransactionID != outs[1].Credit.TransactionID {
		t.Errorf("shipment.ok of the queued report: %+v", s)
	}
	time.Sleep(2 * time.Second) // room for a second report
	tx = h.tx("SQ-1")
	if sh := tx.Shipment; sh == nil || sh.DeliveryType != "1" || sh.DeliveryCompanyCode != "11" || tx.Calls["shippingrequest"] != 1 {
		t.Errorf("sandbox: %+v %+v (calls %s)", tx, tx.Shipment, calls(tx))
	}
	outs = h.outcomesOf("SQ-1")
	if got := typesOf(outs); got != "credit.pending,credit.ok,shipment.ok" {
		t.Errorf("outcomes in the end: %s", got)
	}
	checkOutcomes(t, outs)
}

// pending → tracking queued → the credit ends ng or cancelled → shipment.ng naming the credit,
// and nothing reported.
func TestQueuedShipmentEndsWithTheCredit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.publish("order.created", "shop-a", "ev-c1", orderData("shop-a", "SD-NG", "review-ng@example.jp"))
	h.publish("order.created", "shop-a", "ev-c2", orderData("shop-a", "SD-CX", "review-ok@example.jp"))
	for _, order := range []string{"SD-NG", "SD-CX"} {
		h.waitOutcomes(order, "credit.pending", 10*time.Second)
		h.publish("order.tracking_entered", "shop-a", "ev-t-"+order, tracking("shop-a", order, "yamato", "1234-5678-9012"))
	}
	h.waitSettled()
	h.publish("order.cancelled", "shop-a", "ev-x", orderRef("shop-a", "SD-CX"))
	for order, credit := range map[string]string{"SD-NG": "credit.ng", "SD-CX": "credit.cancelled"} {
		outs := h.waitOutcomes(order, "credit.pending,"+credit+",shipment.ng", 20*time.Second)
		if s := shipmentOf(t, outs[2]); len(s.Errors) != 1 || s.Errors[0].Point != "credit" || s.TrackingNumber != "1234-5678-9012" {
			t.Errorf("%s: shipment.ng %+v, want one error at credit", order, s)
		}
		if tx := h.tx(order); tx.Calls["shippingrequest"] != 0 || tx.Shipment != nil {
			t.Errorf("%s: reported to ATODENE: %+v (calls %s)", order, tx, calls(tx))
		}
		checkOutcomes(t, outs)
	}
	time.Sleep(1500 * time.Millisecond) // the cancelled order's review would have ended by now
	for _, order := range []string{"SD-NG", "SD-CX"} {
		if got := typesOf(h.outcomesOf(order)); strings.Count(got, ",") != 2 {
			t.Errorf("%s: outcomes in the end %s", order, got)
		}
	}
}

// A registration after a reported shipment (ok → shipped → cancelled → created with new data)
// reports the order's tracking number to the new transaction as new, and later tracking goes to
// the new transaction.
func TestShipmentAfterRegisteringAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := orderData("shop-a", "SR-1", "taro@example.jp")
	h.publish("order.created", "shop-a", "ev-c1", data)
	h.waitOutcomes("SR-1", "credit.ok", 10*time.Second)
	h.publish("order.tracking_entered", "shop-a", "ev-t1", tracking("shop-a", "SR-1", "yamato", "1234-5678-9012"))
	h.waitOutcomes("SR-1", "credit.ok,shipment.ok", 10*time.Second)
	h.publish("order.cancelled", "shop-a", "ev-x", orderRef("shop-a", "SR-1"))
	h.waitOutcomes("SR-1", "credit.ok,shipment.ok,credit.cancelled", 10*time.Second)

	h.publish("order.created", "shop-a", "ev-c2", withQuantity(data, 3))
	outs := h.waitOutcomes("SR-1", "credit.ok,shipment.ok,credit.cancelled,credit.ok,shipment.ok", 10*time.Second)
	txs := h.sandboxTransactions("SR-1")
	if len(txs) != 2 || txs[1].State != "active" || txs[1].TransactionID != outs[3].Credit.TransactionID {
		t.Fatalf("sandbox after the new registration: %+v", txs)
	}
	if s := shipmentOf(t, outs[4]); s.Report != "new" || s.TransactionID != txs[1].TransactionID || s.TrackingNumber != "1234-5678-9012" {
		t.Errorf("shipment.ok after the new registration: %+v, want a new report on %s", s, txs[1].TransactionID)
	}
	if sh := txs[1].Shipment; sh == nil || sh.DeliveryType != "1" || sh.DeliveryCompanyCode != "12" || sh.DeliverySlipNo != "1234-5678-9012" {
		t.Errorf("the new transaction's shipment: %+v", sh)
	}

	h.publish("order.tracking_entered", "shop-a", "ev-t2", tracking("shop-a", "SR-1", "yamato", "1234-5678-9012"))
	if got := typesOf(h.outcomesOf("SR-1")); got != typesOf(outs) {
		t.Errorf("outcomes after the same values: %s", got)
	}
	h.publish("order.tracking_entered", "shop-a", "ev-t3", tracking("shop-a", "SR-1", "yamato", "1111-2222-3333"))
	outs = h.waitOutcomes("SR-1", "credit.ok,shipment.ok,credit.cancelled,credit.ok,shipment.ok,shipment.ok", 10*time.Second)
	if s := shipmentOf(t, outs[5]); s.Report != "change" || s.TrackingNumber != "1111-2222-3333" || s.TransactionID != txs[1].TransactionID {
		t.Errorf("shipment.ok of the change: %+v", s)
	}
	if got := typesOf(h.outcomesOf("SR-1")); got != typesOf(outs) {
		t.Errorf("outcomes in the end: %s", got)
	}
	tx := h.sandboxTransactions("SR-1")[1]
	if sh := tx.Shipment; sh == nil || sh.DeliveryType != "2" || sh.DeliverySlipNo != "1111-2222-3333" || tx.Calls["shippingrequest"] != 2 {
		t.Errorf("the new transaction after the change: %+v %+v (calls %s)", tx, tx.Shipment, calls(tx))
	}
	checkOutcomes(t, outs)
}

// ng | cancelled → order.tracking_entered → shipment.ng naming the credit, nothing reported.
func TestTrackingOfNGOrCancelledOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.publish("order.created", "shop-a", "ev-c1", orderData("shop-a", "SN-NG", "ng@example.jp"))
	h.publish("order.created", "shop-a", "ev-c2", orderData("shop-a", "SN-CX", "taro@example.jp"))
	h.waitOutcomes("SN-CX", "credit.ok", 10*time.Second)
	h.publish("order.cancelled", "shop-a", "ev-x", orderRef("shop-a", "SN-CX"))
	h.waitOutcomes("SN-CX", "credit.ok,credit.cancelled", 10*time.Second)
	h.waitOutcomes("SN-NG", "credit.ng", 10*time.Second)

	for order, credit := range map[string]string{"SN-NG": "credit.ng", "SN-CX": "credit.ok,credit.cancelled"} {
		h.publish("order.tracking_entered", "shop-a", "ev-t-"+order, tracking("shop-a", order, "yamato", "1234-5678-9012"))
		outs := h.waitOutcomes(order, credit+",shipment.ng", 10*time.Second)
		s := shipmentOf(t, outs[len(outs)-1])
		if len(s.Errors) == 0 || s.Errors[0].Point != "credit" || s.TrackingNumber != "1234-5678-9012" {
			t.Errorf("%s: shipment.ng %+v, want errors[0].point credit", order, s)
		}
		if tx := h.tx(order); tx.Calls["shippingrequest"] != 0 || tx.Shipment != nil {
			t.Errorf("%s: reported to ATODENE: %+v (calls %s)", order, tx, calls(tx))
		}
		checkOutcomes(t, outs)
	}
}

// none → order.tracking_entered → parked (acknowledged at once) until the order is registered;
// never registered → dead letter no-transaction after the park limit, its body byte for byte.
func TestTrackingBeforeOrder(t *testing.T) {
	t.Parallel()
	t.Run("order comes", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.publish("order.tracking_entered", "shop-a", "ev-t", tracking("shop-a", "TB-1", "yamato", "1234-5678-9012"))
		// ev-c waits for ev-t to be parked: handled the other way round, the tracking number finds
		// the order ok and is reported at once, never parked (a second was not always enough).
		wait.For(t, 10*time.Second, "the tracking number parked", func() bool {
			return h.historySays("TB-1", "ev-t", "parked: waiting for the order's credit check")
		})
		h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "TB-1", "taro@example.jp"))
		outs := h.waitOutcomes("TB-1", "credit.ok,shipment.ok", 20*time.Second)
		if s := shipmentOf(t, outs[1]); s.Report != "new" || s.TrackingNumber != "1234-5678-9012" || outs[1].Env.CausationID != "ev-t" {
			t.Errorf("shipment.ok: %+v caused by %s", s, outs[1].Env.CausationID)
		}
		// The entry of the parked event applied is written with the step's last write, after its
		// outcomes are published.
		if !wait.Until(10*time.Second, func() bool {
			return h.historySays("TB-1", "ev-t", "parked: waiting for the order's credit check") &&
				h.historySays("TB-1", "ev-t", "applied after waiting since")
		}) {
			t.Errorf("history: %+v", h.history("TB-1"))
		}
		if tx := h.tx("TB-1"); tx.Calls["shippingrequest"] != 1 || tx.Shipment == nil {
			t.Errorf("sandbox: %+v (calls %s)", tx, calls(tx))
		}
		if n := len(h.deadLetters()); n != 0 {
			t.Errorf("%d dead letters", n)
		}
	})
	t.Run("order never comes", func(t *testing.T) {
		t.Parallel()
		h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.ParkLimit = 2 * time.Second }})
		h.publish("order.tracking_entered", "shop-a", "ev-t", tracking("shop-a", "TB-NEVER", "yamato", "1234-5678-9012"))
		h.waitSettled() // acknowledged at once: parked, not handed back
		wait.For(t, 20*time.Second, "a no-transaction dead letter", func() bool { return deadLettersByReason(h)["no-transaction"] == 1 })
		d := h.deadLetters()
		if len(d) != 1 || d[0].Subject() != "dlq.orders.tracking_entered.shop-a" || !strings.Contains(d[0].Headers().Get(dlq.HeaderError), "waited 2s for the order's credit check") {
			t.Errorf("dead letters: %d, first on %s: %s", len(d), d[0].Subject(), d[0].Headers().Get(dlq.HeaderError))
		}
		orig := h.ordersMsg(1)
		if !bytes.Equal(d[0].Data(), orig.Data) {
			t.Errorf("the dead letter's body differs from the event as published:\n%s\n%s", d[0].Data(), orig.Data)
		}
		if outs := h.results(); len(outs) != 0 {
			t.Errorf("outcomes: %s", typesOf(outs))
		}
		if txs := h.sandboxTransactions("TB-NEVER"); len(txs) != 0 {
			t.Errorf("sandbox: %+v", txs)
		}
		// The order comes after all, and the operator replays the letter: the shipment is reported.
		h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "TB-NEVER", "taro@example.jp"))
		h.waitOutcomes("TB-NEVER", "credit.ok", 10*time.Second)
		h.publishRaw(d[0].Headers().Get(dlq.HeaderOriginalSubject), "replay-1", d[0].Data())
		outs := h.waitOutcomes("TB-NEVER", "credit.ok,shipment.ok", 10*time.Second)
		if outs[1].Env.CausationID != "ev-t" {
			t.Errorf("shipment.ok caused by %s, want the replayed ev-t", outs[1].Env.CausationID)
		}
	})
}

// order.invoice_requested → invoice.ok with the print data for an ok, enclosed order; invoice.ng
// otherwise.
func TestInvoice(t *testing.T) {
	t.Parallel()
	checkInvoice := func(t *testing.T, h *harness, order string) {
		t.Helper()
		outs := h.waitOutcomes(order, "credit.ok,invoice.ok", 10*time.Second)
		inv := invoiceOf(t, outs[1])
		if inv.Invoice == nil || len(inv.Errors) != 0 || inv.TransactionID != outs[0].Credit.TransactionID {
			t.Fatalf("invoice.ok: %+v", inv)
		}
		f := inv.Invoice.Fields
		for name, want := range map[string]string{
			"shopOrderId": order, "transactionId": inv.TransactionID, "name": "加藤 太郎",
			"billedAmount": fmt.Sprintf("%d円", sentFor(2)), "zip": "150-0001", "billedAmountTitle": "ご請求金額",
		} {
			if f[name] != want {
				t.Errorf("invoice field %s = %q, want %q", name, f[name], want)
			}
		}
		// The item, then the shipping fee and the fee the worker added as lines of their own.
		if d := inv.Invoice.Details; len(d) != 3 || d[0]["goods"] != "緑茶ティーバッグ 50包" || d[0]["goodsAmount"] != "2" || d[2]["goodsPrice"] != "205" {
			t.Errorf("invoice details: %+v", inv.Invoice.Details)
		}
		if tx := h.tx(order); tx.Calls["getinvoicedata"] != 1 {
			t.Errorf("getinvoicedata calls: %s", calls(tx))
		}
	}
	checkNG := func(t *testing.T, h *harness, order, credit, point string) {
		t.Helper()
		outs := h.waitOutcomes(order, credit+",invoice.ng", 20*time.Second)
		inv := invoiceOf(t, outs[len(outs)-1])
		if inv.Invoice != nil || len(inv.Errors) != 1 || inv.Errors[0].Point != point {
			t.Errorf("%s: invoice.ng %+v, want one error at %s", order, inv, point)
		}
		if tx := h.tx(order); tx.Calls["getinvoicedata"] != 0 {
			t.Errorf("%s: getinvoicedata calls: %s", order, calls(tx))
		}
	}

	t.Run("enclosed shop", func(t *testing.T) {
		t.Parallel()
		h := newHarnessWith(t, harnessOpts{invoice: config.InvoiceEnclosed})
		separate := orderData("shop-a", "IN-SEP", "taro@example.jp")
		separate["invoice_delivery"] = "separate"
		h.publish("order.created", "shop-a", "ev-c1", orderData("shop-a", "IN-ENC", "taro@example.jp"))
		h.publish("order.created", "shop-a", "ev-c2", separate)
		h.publish("order.created", "shop-a", "ev-c3", orderData("shop-a", "IN-PEND", "review-ok@example.jp"))
		h.waitOutcomes("IN-ENC", "credit.ok", 10*time.Second)
		h.waitOutcomes("IN-SEP", "credit.ok", 10*time.Second)
		h.waitOutcomes("IN-PEND", "credit.pending", 10*time.Second)
		if tx := h.tx("IN-ENC"); tx.Service != "3" { // 同梱
			t.Errorf("an order of an enclosed shop was registered with service %q", tx.Service)
		}
		for _, order := range []string{"IN-ENC", "IN-SEP", "IN-PEND"} {
			h.publish("order.invoice_requested", "shop-a", "ev-i-"+order, orderRef("shop-a", order))
		}
		checkInvoice(t, h, "IN-ENC")
		checkNG(t, h, "IN-SEP", "credit.ok", "invoice_delivery")
		checkNG(t, h, "IN-PEND", "credit.pending", "credit")
	})
	t.Run("enclosed order", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		enclosed := orderData("shop-a", "IO-ENC", "taro@example.jp")
		enclosed["invoice_delivery"] = "enclosed"
		h.publish("order.created", "shop-a", "ev-c1", enclosed)
		h.publish("order.created", "shop-a", "ev-c2", orderData("shop-a", "IO-SEP", "taro@example.jp"))
		h.waitOutcomes("IO-ENC", "credit.ok", 10*time.Second)
		h.waitOutcomes("IO-SEP", "credit.ok", 10*time.Second)
		h.publish("order.invoice_requested", "shop-a", "ev-i1", orderRef("shop-a", "IO-ENC"))
		h.publish("order.invoice_requested", "shop-a", "ev-i2", orderRef("shop-a", "IO-SEP"))
		checkInvoice(t, h, "IO-ENC")
		checkNG(t, h, "IO-SEP", "credit.ok", "invoice_delivery")
	})
}

// An order.updated and an order.cancelled of the same ok order, published back to back, may be
// handled in either order; the shop's last word (the cancel) always stands: an update handled
// after the later cancel is stale and changes nothing. The outcomes always agree with ATODENE.
func TestUpdateRacingCancel(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const n = 12
	order := func(i int) string { return fmt.Sprintf("RC-%02d", i) }
	for i := range n {
		h.publish("order.created", "shop-a", "ev-c-"+order(i), orderData("shop-a", order(i), "taro@example.jp"))
	}
	for i := range n {
		h.waitOutcomes(order(i), "credit.ok", 10*time.Second)
	}
	for i := range n {
		h.publish("order.updated", "shop-a", "ev-u-"+order(i), withQuantity(orderData("shop-a", order(i), "taro@example.jp"), 3))
		h.publish("order.cancelled", "shop-a", "ev-x-"+order(i), orderRef("shop-a", order(i)))
	}
	for i := range n {
		wait.For(t, 20*time.Second, order(i)+" to be cancelled", func() bool {
			mine := of(h.results(), order(i))
			return len(mine) >= 2 && mine[len(mine)-1].Env.Type == "credit.cancelled"
		})
	}
	h.waitSettled()
	outs := h.results()
	endings := map[string]int{}
	for i := range n {
		mine := of(outs, order(i))
		checkOutcomes(t, mine)
		txs := h.sandboxTransactions(order(i))
		live := 0
		for _, tx := range txs {
			if tx.State == "active" && tx.Decision != "NG" {
				live++
			}
		}
		last := mine[len(mine)-1]
		endings[typesOf(mine)]++
		switch got := typesOf(mine); got {
		case "credit.ok,credit.ok,credit.cancelled": // changed, then cancelled
			if len(txs) != 1 || txs[0].State != "cancelled" || txs[0].BilledAmount != sentFor(3) || txs[0].TransactionID != last.Credit.TransactionID {
				t.Errorf("%s: %s, but the sandbox holds %+v", order(i), got, txs)
			}
		case "credit.ok,credit.cancelled": // cancelled first; the older update came later and was stale
			if len(txs) != 1 || txs[0].State != "cancelled" || txs[0].Calls["modifytransaction"] != 1 {
				t.Errorf("%s: %s, but the sandbox holds %+v", order(i), got, txs)
			}
		default:
			t.Errorf("%s: outcomes %s", order(i), got)
		}
		if live > 1 {
			t.Errorf("%s: %d live transactions at ATODENE: %+v", order(i), live, txs)
		}
	}
	t.Logf("endings: %v", endings)
	h.waitSettled()
	if got := len(h.results()); got != len(outs) {
		t.Errorf("%d outcomes after the last one expected, want %d", got, len(outs))
	}
}

// An order.created and an order.cancelled published back to back may be handled in either
// order; the cancel, published last, always stands: ATODENE ends with no live transaction.
func TestCancelRacingCreate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const n = 12
	order := func(i int) string { return fmt.Sprintf("CC-%02d", i) }
	for i := range n {
		h.publish("order.created", "shop-a", "ev-c-"+order(i), orderData("shop-a", order(i), "taro@example.jp"))
		h.publish("order.cancelled", "shop-a", "ev-x-"+order(i), orderRef("shop-a", order(i)))
	}
	for i := range n {
		wait.For(t, 20*time.Second, order(i)+" to be cancelled", func() bool {
			mine := of(h.results(), order(i))
			return len(mine) >= 1 && mine[len(mine)-1].Env.Type == "credit.cancelled"
		})
	}
	h.waitSettled()
	for i := range n {
		mine := of(h.results(), order(i))
		if last := mine[len(mine)-1]; last.Env.Type != "credit.cancelled" {
			t.Errorf("%s: ends with %s", order(i), typesOf(mine))
		}
		for _, tx := range h.sandboxTransactions(order(i)) {
			if tx.State == "active" && tx.Decision != "NG" {
				t.Errorf("%s: a live transaction after the cancel: %+v", order(i), tx)
			}
		}
	}
}
