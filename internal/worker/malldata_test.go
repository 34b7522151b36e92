package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// The tests in this file are the cases of real mall data and of the sequences operators produce
// (docs/events.md#normalisation, docs/events.md#event-identity, docs/lifecycle.md), through a real worker, JetStream, Redis and the
// sandbox.

// Rakuten's and Yahoo!'s order numbers are registered as they are.
func TestMallOrderNumbers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for i, order := range []string{"274555-20170615-0823997264", "kitchen-goods-store-10000003"} {
		h.publish("order.created", "shop-a", fmt.Sprintf("ev-%d", i), orderData("shop-a", order, "taro@example.jp"))
		h.waitOutcomes(order, "credit.ok", 10*time.Second)
		if tx := h.tx(order); tx.ShopOrderID != order || tx.Registrations != 1 {
			t.Errorf("sandbox: %+v", tx)
		}
	}
}

// Two shops that share one ATODENE account send their order numbers behind their prefixes: the
// same number in both is two transactions, each registered on its first attempt.
func TestSharedAccountPrefixes(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{shops: []string{"rakuten-01", "yahoo-01"}, sandbox: sandbox.Config{Shops: []sandbox.Shop{sandbox.DemoShop}},
		shopsEdit: func(list []config.Shop) {
			for i := range list {
				list[i].Atodene.ShopCode = sandbox.DemoShop.ShopCode
				list[i].Atodene.OrderIDPrefix = map[string]string{"rakuten-01": "R-", "yahoo-01": "Y-"}[list[i].ID]
			}
		}})
	for _, shop := range []string{"rakuten-01", "yahoo-01"} {
		h.publish("order.created", shop, "ev-"+shop, orderData(shop, "100001", "taro@example.jp"))
	}
	outs := h.waitOutcomes("100001", "credit.ok,credit.ok", 10*time.Second)
	for _, prefixed := range []string{"R-100001", "Y-100001"} {
		if tx := h.tx(prefixed); tx.Registrations != 1 || tx.Decision != "OK" {
			t.Errorf("sandbox %s: %+v", prefixed, tx)
		}
	}
	if n := len(h.deadLetters()); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	checkOutcomes(t, outs)
}

// The shopOrderId is held by a transaction the worker has no record of (another system of the
// shop registered it; or Redis lost the worker's own record, which looks the same): ATODENE's
// "already registered" on the first attempt goes to an operator as outcome-unknown, with no
// outcome: a credit.invalid would call the order wrong while ATODENE may hold it as registered.
func TestShopOrderIDTakenElsewhere(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	other, err := atodene.New(atodene.Config{BaseURL: h.sbURL + "/api/", Credentials: atodene.Credentials{
		ShopCode: sandbox.DemoShop.ShopCode, LinkID: sandbox.DemoShop.LinkID, LinkPassword: sandbox.DemoShop.LinkPassword}})
	if err != nil {
		t.Fatal(err)
	}
	taken, err := atodene.Order{ShopOrderID: "TAKEN-1", OrderedAt: time.Now(),
		Buyer: atodene.Person{Name: "他 システム", NameKana: "ホカ システム", Zip: "150-0001", Address: "東京都", Phone: "03-1234-5678", Email: "other@example.jp"},
		Items: []atodene.Item{{Name: "品", UnitPrice: 1000, Quantity: 1}},
		Fee:   0, BilledAmount: 1000, Service: atodene.ServiceSeparate}.Check()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Register(context.Background(), taken); err != nil {
		t.Fatal(err)
	}
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "TAKEN-1", "taro@example.jp"))
	wait.For(t, 10*time.Second, "an outcome-unknown dead letter", func() bool { return deadLettersByReason(h)["outcome-unknown"] == 1 })
	if msg := h.deadLetters()[0].Headers().Get(dlq.HeaderError); !strings.Contains(msg, "no record of") {
		t.Errorf("Dlq-Error %q does not say the worker has no record of the transaction", msg)
	}
	if got := typesOf(h.outcomesOf("TAKEN-1")); got != "" {
		t.Errorf("outcomes %s, want none", got)
	}
}

// CloudEvents makes source and id unique together: two importers that both number their events
// 0001, for two shops, are two events, and both orders are registered.
func TestSameEventIDFromTwoSources(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{shops: []string{"rakuten-01", "yahoo-01"}})
	h.publishFrom("mall-importer/rakuten", "order.created", "rakuten-01", "0001", "2026-11-26T10:15:00+09:00", orderData("rakuten-01", "R-1", "taro@example.jp"))
	h.publishFrom("mall-importer/yahoo", "order.created", "yahoo-01", "0001", "2026-11-26T10:15:00+09:00", orderData("yahoo-01", "Y-1", "taro@example.jp"))
	h.waitOutcomes("R-1", "credit.ok", 10*time.Second)
	h.waitOutcomes("Y-1", "credit.ok", 10*time.Second)
	// The same pair again, after the stream's duplicate window would have let it through: the
	// worker's own record drops it, and the history says so.
	body := func(source, shop, order string) []byte {
		raw, _ := json.Marshal(orderData(shop, order, "taro@example.jp"))
		b, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: "0001", Source: source, Type: "order.created", Data: raw})
		return b
	}
	h.publishRaw("orders.created.yahoo-01", "", body("mall-importer/yahoo", "yahoo-01", "Y-1"))
	h.waitSettled()
	if got := typesOf(h.outcomesOf("Y-1")); got != "credit.ok" {
		t.Errorf("outcomes of Y-1 after the copy: %s", got)
	}
	// Settled is not enough: a copy queued in the order's inbox (the first handler still writing
	// its last write after publishing its outcome) is acknowledged before it is applied.
	if !wait.Until(10*time.Second, func() bool { return historyHas(h.historyOf("yahoo-01", "Y-1"), "0001", "duplicate") }) {
		t.Errorf("history of Y-1: %+v", h.historyOf("yahoo-01", "Y-1"))
	}
}

func historyHas(entries []orderstate.Entry, id, did string) bool {
	for _, e := range entries {
		if e.ID == id && strings.HasPrefix(e.Did, did) {
			return true
		}
	}
	return false
}

// Real-shaped buyer data reaches ATODENE normalised, and the outcome lists what was sent in
// another form than received.
func TestNormalizedOrderIsSent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := withBuyer(orderData("shop-a", "N-1", "taro@example.jp"),
		"zip", "〒１５０－０００１", "phone", "+81-90-1234-5678", "name_kana", "ｶﾄｳ ﾀﾛｳ", "address", "東京都渋谷区　神宮前１－１－１　髙﨑ビル")
	h.publish("order.created", "shop-a", "ev-1", data)
	out := h.waitOutcomes("N-1", "credit.ok", 10*time.Second)[0]
	var credit struct {
		Normalized []events.Normalized `json:"normalized"`
	}
	if err := json.Unmarshal(out.Env.Data, &credit); err != nil {
		t.Fatal(err)
	}
	want := []events.Normalized{{Field: "buyer.name_kana", Value: "カトウ タロウ"}, {Field: "buyer.zip", Value: "150-0001"}, {Field: "buyer.phone", Value: "090-1234-5678"}}
	if fmt.Sprint(credit.Normalized) != fmt.Sprint(want) {
		t.Errorf("normalized %+v, want %+v (the address is sent as written)", credit.Normalized, want)
	}
	if !h.historySays("N-1", "ev-1", "registered; sent normalized: buyer.name_kana, buyer.zip, buyer.phone") {
		t.Errorf("history: %+v", h.history("N-1"))
	}
	for _, e := range h.history("N-1") {
		// The phone's digits, not "090" alone: the entry's time in nanoseconds may hold that.
		if s := fmt.Sprint(e); strings.Contains(s, "1234-5678") || strings.Contains(s, "12345678") || strings.Contains(s, "カトウ") {
			t.Errorf("history holds personal data: %+v", e)
		}
	}
}

// billed_amount 0: a new order is invalid (nothing to bill), never registered; an update that
// brings a live order to 0 cancels its transaction.
func TestBilledAmountZero(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	free := func(order string) map[string]any {
		d := orderData("shop-a", order, "taro@example.jp")
		d["items"] = []any{map[string]any{"name": "試供品", "unit_price": 0, "quantity": 1}}
		d["shipping_fee"], d["billed_amount"] = 0, 0
		return d
	}
	h.publish("order.created", "shop-a", "ev-z", free("Z-NEW"))
	wait.For(t, 10*time.Second, "an invalid dead letter", func() bool { return deadLettersByReason(h)["invalid"] == 1 })
	if d := h.deadLetters()[0]; !strings.Contains(d.Headers().Get(dlq.HeaderError), "billed_amount: is 0") {
		t.Errorf("Dlq-Error %q, want it to name billed_amount", d.Headers().Get(dlq.HeaderError))
	}
	if txs := h.sandboxTransactions("Z-NEW"); len(txs) != 0 {
		t.Errorf("registered an order with nothing to bill: %+v", txs)
	}

	data := orderData("shop-a", "Z-LIVE", "taro@example.jp")
	h.publish("order.created", "shop-a", "ev-c", data)
	h.waitOutcomes("Z-LIVE", "credit.ok", 10*time.Second)
	h.publish("order.updated", "shop-a", "ev-u", free("Z-LIVE"))
	h.waitOutcomes("Z-LIVE", "credit.ok,credit.cancelled", 10*time.Second)
	if tx := h.tx("Z-LIVE"); tx.State != "cancelled" {
		t.Errorf("sandbox after the update to 0: %+v", tx)
	}
	if !h.historySays("Z-LIVE", "ev-u", "cancelled: billed_amount 0") {
		t.Errorf("history: %+v", h.history("Z-LIVE"))
	}
}

// An enclosed invoice never goes into a parcel addressed to someone else
// (docs/protocol.md#business-rules): a gift is
// registered with the invoice mailed separately, the outcome says so, and its print data is not
// fetched.
func TestGiftInvoiceIsMailed(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{invoice: config.InvoiceEnclosed})
	gift := orderData("shop-a", "G-1", "taro@example.jp")
	gift["ship_to"] = map[string]any{"name": "山田 花子", "name_kana": "ヤマダ ハナコ", "zip": "530-0001",
		"address": "大阪府大阪市北区梅田1-1", "phone": "06-1234-5678"}
	self := orderData("shop-a", "G-SELF", "taro@example.jp") // ship_to is the buyer, written another way
	self["ship_to"] = map[string]any{"name": "加藤　太郎", "name_kana": "カトウ タロウ", "zip": "1500001",
		"address": "東京都渋谷区神宮前１－１－１", "phone": "03-1234-5678"}
	h.publish("order.created", "shop-a", "ev-g", gift)
	h.publish("order.created", "shop-a", "ev-s", self)
	out := h.waitOutcomes("G-1", "credit.ok", 10*time.Second)[0]
	h.waitOutcomes("G-SELF", "credit.ok", 10*time.Second)
	if tx := h.tx("G-1"); tx.Service != atodene.ServiceSeparate {
		t.Errorf("gift registered with service %s, want %s (mailed)", tx.Service, atodene.ServiceSeparate)
	}
	if tx := h.tx("G-SELF"); tx.Service != atodene.ServiceEnclosed {
		t.Errorf("parcel to the buyer registered with service %s, want %s (enclosed)", tx.Service, atodene.ServiceEnclosed)
	}
	if !strings.Contains(string(out.Env.Data), `{"field":"invoice_delivery","value":"separate"}`) {
		t.Errorf("credit.ok of the gift does not say the invoice is mailed: %s", out.Env.Data)
	}
	h.publish("order.invoice_requested", "shop-a", "ev-i", orderRef("shop-a", "G-1"))
	ng := h.waitOutcomes("G-1", "credit.ok,invoice.ng", 10*time.Second)[1]
	if inv := invoiceOf(t, ng); len(inv.Errors) != 1 || inv.Errors[0].Point != "invoice_delivery" {
		t.Errorf("invoice.ng of the gift: %+v", inv)
	}
}

// A cancel that arrives while the order's registration is under way (ATODENE answering 500, the
// creation kept first in the order's inbox for its retry, its message done with) waits behind it
// in the inbox and is applied once the registration is done: one credit.cancelled, the transaction
// cancelled, registered once.
func TestCancelDuringRegistrationWaitsBehindIt(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.MaxDeliveries = 10 }})
	h.setFaults(`{"error_rate": 1.0}`) // HTTP 500, nothing processed: the registration is retried
	h.publish("order.created", "shop-a", "ev-c", orderData("shop-a", "CR-1", "taro@example.jp"))
	store := orderstate.New(h.deps.Redis, h.deps.KeyPrefix, time.Hour)
	t.Cleanup(store.Close)
	kept := func(id string) bool {
		st, err := store.Get(context.Background(), "shop-a", "CR-1")
		if err != nil || st.Status != orderstate.StatusRegistering {
			return false
		}
		held, err := store.HeldEvents(context.Background(), "shop-a", "CR-1")
		return err == nil && held.Keys[events.EventKey("test", id)]
	}
	wait.For(t, 10*time.Second, "the order to be registering, its creation kept for its retry", func() bool { return kept("ev-c") })
	h.publish("order.cancelled", "shop-a", "ev-x", orderRef("shop-a", "CR-1"))
	wait.For(t, 10*time.Second, "the cancel to wait behind the creation", func() bool { return kept("ev-x") })
	if outs := h.results(); len(outs) != 0 || h.historySays("CR-1", "ev-x", "parked") {
		t.Fatalf("outcomes %+v before the registration, history %+v; want none, the cancel waiting in the inbox, not parked", outs, h.history("CR-1"))
	}
	h.setFaults(`{}`)
	outs := h.waitOutcomes("CR-1", "credit.ok,credit.cancelled", 20*time.Second)
	if outs[0].Env.CausationID != "ev-c" || outs[1].Env.CausationID != "ev-x" {
		t.Errorf("credit.ok caused by %s, credit.cancelled by %s; want ev-c, ev-x", outs[0].Env.CausationID, outs[1].Env.CausationID)
	}
	if tx := h.tx("CR-1"); tx.State != "cancelled" || tx.Registrations != 1 {
		t.Errorf("sandbox: %+v", tx)
	}
	checkOutcomes(t, outs)
}

// Waiting never holds the consumer: 2,048 tracking numbers for orders the worker has never seen
// (the consumer's MaxAckPending at the default concurrency) are parked and acknowledged, so an
// order published after them is decided within seconds, not after the minutes of NAK delays
// they used to hold the consumer for. Then the orders arrive, and every parked shipment is
// reported once.
func TestTrackingBeforeOrdersNeverStallsTheConsumer(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.MaxDeliveries = 10 }})
	const n = 2048 // 4 × the default -concurrency 512
	if h.deps.Settings.Concurrency*4 != n {
		t.Fatalf("concurrency %d: the test wants MaxAckPending = %d", h.deps.Settings.Concurrency, n)
	}
	order := func(i int) string { return fmt.Sprintf("TS-%04d", i) }
	for i := range n {
		h.publish("order.tracking_entered", "shop-a", "ev-t-"+order(i), tracking("shop-a", order(i), "yamato", fmt.Sprintf("1234-5678-%04d", i)))
	}
	start := time.Now()
	h.publish("order.created", "shop-a", "ev-new", orderData("shop-a", "TS-NEW", "taro@example.jp"))
	h.waitOutcomes("TS-NEW", "credit.ok", 60*time.Second)
	t.Logf("the new order's outcome came %s after it was published, behind %d parked events", time.Since(start).Round(time.Millisecond), n)
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the new order waited %s behind the tracking numbers", d)
	}

	for i := range n {
		h.publish("order.created", "shop-a", "ev-c-"+order(i), orderData("shop-a", order(i), "taro@example.jp"))
	}
	wait.For(t, 180*time.Second, "every parked shipment reported", func() bool {
		return countTypes(h.results())[events.TypeShipmentOK] == n
	})
	h.waitSettled()
	counts := countTypes(h.results())
	if counts[events.TypeShipmentOK] != n || counts[events.TypeCreditOK] != n+1 || len(counts) != 2 {
		t.Errorf("outcomes %v, want %d shipment.ok and %d credit.ok", counts, n, n+1)
	}
	if st := h.sandboxStats(); st.Operations["shippingrequest"].Calls != n || st.Operations["transaction"].Calls != n+1 {
		t.Errorf("sandbox calls: shippingrequest %d, transaction %d; want %d and %d",
			st.Operations["shippingrequest"].Calls, st.Operations["transaction"].Calls, n, n+1)
	}
	if d := len(h.deadLetters()); d != 0 {
		t.Errorf("%d dead letters", d)
	}
}

func countTypes(outs []outcome) map[string]int {
	m := map[string]int{}
	for _, o := range outs {
		m[o.Env.Type]++
	}
	return m
}

func (h *harness) sandboxStats() sandbox.Stats {
	h.t.Helper()
	resp, err := http.Get(h.sbURL + "/sandbox/stats")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st sandbox.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

// Every event leaves a trace: an event that changes nothing is recorded in its order's history
// with why (docs/architecture.md#promises), and so is an invalid one whose order is known.
func TestEveryEventLeavesATrace(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := orderData("shop-a", "TR-1", "taro@example.jp")
	h.publish("order.created", "shop-a", "ev-1", data)
	h.waitOutcomes("TR-1", "credit.ok", 10*time.Second)
	h.publish("order.created", "shop-a", "ev-2", data) // re-sent for an OK order
	// ev-3 waits for ev-2: handled first, the later ev-3 would make ev-2 "older in the stream
	// than the order's last credit event" (docs/lifecycle.md#events-handled-out-of-order), also a trace but another.
	wait.For(t, 10*time.Second, "ev-2 in the history", func() bool { return h.historySays("TR-1", "ev-2", "no change") })
	h.publish("order.updated", "shop-a", "ev-3", data) // the same data
	h.publish("order.tracking_entered", "shop-a", "ev-4", tracking("shop-a", "TR-1", "yamato", "1234-5678-9012"))
	h.waitOutcomes("TR-1", "credit.ok,shipment.ok", 10*time.Second)
	h.publish("order.tracking_entered", "shop-a", "ev-5", tracking("shop-a", "TR-1", "12", "１２３４－５６７８－９０１２")) // the same, full-width
	bad := maps.Clone(data)
	bad["billed_amount"] = 1 // does not add up
	h.publish("order.updated", "shop-a", "ev-6", bad)
	h.waitSettled()
	want := map[string]string{
		"ev-1": "registered", "ev-2": "no change: the credit is ok already", "ev-3": "no change: same data",
		"ev-4": "shipment reported (new)", "ev-5": "no change: same carrier, tracking number and invoice date",
		"ev-6": "dead-lettered: invalid: invalid event: billed_amount",
	}
	// Settled is not enough: an event queued in the order's inbox is acknowledged before the
	// lease's holder applies it.
	traced := func() bool {
		for id, did := range want {
			if !h.historySays("TR-1", id, did) {
				return false
			}
		}
		return true
	}
	wait.Until(10*time.Second, traced) // the checks below say what is missing
	for id, did := range want {
		if !h.historySays("TR-1", id, did) {
			t.Errorf("history has no %q for %s: %+v", did, id, h.history("TR-1"))
		}
	}
	if got := typesOf(h.outcomesOf("TR-1")); got != "credit.ok,shipment.ok" {
		t.Errorf("outcomes %s", got)
	}
}

// A burst of events for one order never holds the consumer: while a slow registration holds the
// order's lease, 600 more events for it (more than the 512 handlers) are queued in its inbox and
// acknowledged, so another order published after them is decided before the slow one; then the
// holder applies the queued events, each once.
func TestBurstForOneOrderNeverHoldsTheConsumer(t *testing.T) {
	t.Parallel()
	// The slow registration lasts long enough for 601 publishes and their handling on a loaded
	// machine (10 s was not, once).
	h := newHarnessWith(t, harnessOpts{sandbox: sandbox.Config{ReviewDelay: time.Second, HoldDelay: time.Second, SlowDelay: 25 * time.Second},
		settings: func(s *config.Settings) { s.ProviderTimeout, s.AckWait = 40*time.Second, 60*time.Second }})
	const n = 600
	data := orderData("shop-a", "BU-1", "slow@example.jp")
	store := orderstate.New(h.deps.Redis, h.deps.KeyPrefix, time.Hour)
	t.Cleanup(store.Close)
	h.publish("order.created", "shop-a", "ev-0", data)
	wait.For(t, 5*time.Second, "the slow registration to start", func() bool {
		st, err := store.Get(context.Background(), "shop-a", "BU-1")
		return err == nil && st.Status == orderstate.StatusRegistering
	})
	for i := 1; i <= n; i++ {
		h.publish("order.created", "shop-a", fmt.Sprintf("ev-%d", i), data) // re-sent by an importer
	}
	h.publish("order.created", "shop-a", "ev-other", orderData("shop-a", "BU-OTHER", "taro@example.jp"))
	h.waitOutcomes("BU-OTHER", "credit.ok", 30*time.Second)
	if got := typesOf(of(h.results(), "BU-1")); got != "" {
		t.Errorf("the other order was decided only after the slow one (%s): the burst held the consumer", got)
	}
	h.waitOutcomes("BU-1", "credit.ok", 60*time.Second)
	wait.For(t, 60*time.Second, "every queued event applied", func() bool {
		for i := 1; i <= n; i++ {
			if done, err := store.EventDone(context.Background(), "shop-a", events.EventKey("test", fmt.Sprintf("ev-%d", i))); err != nil || !done {
				return false
			}
		}
		return true
	})
	h.waitSettled()
	if tx := h.tx("BU-1"); tx.Registrations != 1 || tx.Calls["transaction"] != 1 {
		t.Errorf("sandbox: %+v (calls %s)", tx, calls(tx))
	}
	if got := typesOf(h.outcomesOf("BU-1")); got != "credit.ok" {
		t.Errorf("outcomes of BU-1: %s", got)
	}
	entries := h.history("BU-1")
	for _, e := range entries[1:] {
		if e.Did != "no change: the credit is ok already" {
			t.Errorf("history entry %+v", e)
		}
	}
	if d := len(h.deadLetters()); d != 0 {
		t.Errorf("%d dead letters", d)
	} // The queued events' copies (ATODENE_KEPT) go as each is applied, not a reconciliation later.
	if n := h.keptCopies(); n != 0 {
		t.Errorf("ATODENE_KEPT holds %d copies of events applied", n)
	}
}

// An event that finds its order's inbox full does not wait for the lease in a handler slot (a
// burst beyond the inbox would take them all again): it goes round through its copy in
// ATODENE_KEPT and is applied, once, after a reconciliation.
func TestEventsBeyondAFullInboxGoRound(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.ReconcileInterval = time.Second }})
	const n = orderstate.MaxInbox + 76
	data := orderData("shop-a", "BU-2", "taro@example.jp")
	h.publish("order.created", "shop-a", "ev-0", data)
	h.waitOutcomes("BU-2", "credit.ok", 10*time.Second)
	store := orderstate.New(h.deps.Redis, h.deps.KeyPrefix, time.Hour)
	t.Cleanup(store.Close)
	// The lease outlives the publishing of the 1,100 events and their handling, with room for a
	// loaded machine (15 s ran out once with the load average at 23).
	const leaseTTL = 40 * time.Second
	leased := time.Now()
	if _, err := store.AcquireLease(context.Background(), "shop-a", "BU-2", orderstate.Take{TTL: leaseTTL, Now: leased}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		h.publish("order.created", "shop-a", fmt.Sprintf("ev-%d", i), data) // re-sent by an importer
	}
	h.publish("order.created", "shop-a", "ev-other", orderData("shop-a", "BU-OTHER2", "taro@example.jp"))
	h.waitOutcomes("BU-OTHER2", "credit.ok", 10*time.Second)
	wait.For(t, time.Until(leased.Add(leaseTTL)), "every message acknowledged while the lease is held", h.settled)
	if c := h.keptCopies(); c <= orderstate.MaxInbox {
		t.Errorf("ATODENE_KEPT holds %d copies, want the inbox's and those going round", c)
	}
	inbox, err := store.InboxLen(context.Background(), "shop-a", "BU-2")
	if err != nil || inbox != orderstate.MaxInbox {
		t.Errorf("inbox holds %d (%v), want it full", inbox, err)
	}
	time.Sleep(time.Until(leased.Add(leaseTTL))) // the test's lease expires
	h.publish("order.created", "shop-a", "ev-last", data)
	wait.For(t, 60*time.Second, "every event applied", func() bool {
		for i := 1; i <= n; i++ {
			if done, err := store.EventDone(context.Background(), "shop-a", events.EventKey("test", fmt.Sprintf("ev-%d", i))); err != nil || !done {
				return false
			}
		}
		return true
	})
	wait.For(t, 20*time.Second, "every copy dropped", func() bool { return h.keptCopies() == 0 })
	if tx := h.tx("BU-2"); tx.Registrations != 1 || tx.Calls["transaction"] != 1 {
		t.Errorf("sandbox: %+v (calls %s)", tx, calls(tx))
	}
	if got := typesOf(h.outcomesOf("BU-2")); got != "credit.ok" {
		t.Errorf("outcomes of BU-2: %s", got)
	}
	if d := len(h.deadLetters()); d != 0 {
		t.Errorf("%d dead letters", d)
	}
}
