package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// The tests in this file walk order.updated (docs/lifecycle.md#what-each-event-does) through a
// real worker, JetStream, Redis and the sandbox.

// An order.updated with the data of a cancelled order, sent after the cancel, registers the order
// again (与信を実行 after 与信キャンセル, docs/lifecycle.md#orderupdated) as order.created does: a new transaction, a
// credit.ok naming it, and the history says registered.
func TestUpdateAfterCancelRegistersAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := orderData("shop-a", "UC-1", "taro@example.jp")
	h.publish("order.created", "shop-a", "ev-c", data)
	first := h.waitOutcomes("UC-1", "credit.ok", 10*time.Second)[0]
	h.publish("order.cancelled", "shop-a", "ev-x", orderRef("shop-a", "UC-1"))
	h.waitOutcomes("UC-1", "credit.ok,credit.cancelled", 10*time.Second)

	h.publishAt("order.updated", "shop-a", "ev-u", "2026-11-26T11:00:00+09:00", data) // the same data, after the cancel
	again := h.waitOutcomes("UC-1", "credit.ok,credit.cancelled,credit.ok", 10*time.Second)[2]
	txs := h.sandboxTransactions("UC-1")
	if len(txs) != 2 || txs[0].State != "cancelled" || txs[1].State != "active" || txs[1].Registrations != 2 || txs[1].BilledAmount != sentFor(2) {
		t.Fatalf("sandbox after the update of the cancelled order: %+v", txs)
	}
	if c := again.Credit; c.TransactionID != txs[1].TransactionID || c.TransactionID == first.Credit.TransactionID || c.BilledAmount != sentFor(2) {
		t.Errorf("credit.ok of the update: %+v, want the new transaction %s", c, txs[1].TransactionID)
	}
	if again.Env.CausationID != "ev-u" {
		t.Errorf("credit.ok caused by %s, want ev-u", again.Env.CausationID)
	}
	if !h.historySays("UC-1", "ev-u", "registered") {
		t.Errorf("history: %+v", h.history("UC-1"))
	}
	checkOutcomes(t, h.outcomesOf("UC-1"))
}

// An order.updated that changes the amount of a live order is sent as a change of its transaction,
// and its history entry says changed, with the outcome it published.
func TestUpdateChangeIsInTheHistory(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := orderData("shop-a", "UA-1", "taro@example.jp")
	h.publish("order.created", "shop-a", "ev-c", data)
	h.waitOutcomes("UA-1", "credit.ok", 10*time.Second)
	h.publish("order.updated", "shop-a", "ev-u", withQuantity(data, 3))
	changed := h.waitOutcomes("UA-1", "credit.ok,credit.ok", 10*time.Second)[1]
	if tx := h.tx("UA-1"); tx.BilledAmount != sentFor(3) || tx.Registrations != 1 || tx.Calls["modifytransaction"] != 1 {
		t.Errorf("sandbox after the change: %+v (calls %s)", tx, calls(tx))
	}
	if changed.Credit.BilledAmount != sentFor(3) {
		t.Errorf("credit.ok of the change: %+v, want billed %d", changed.Credit, sentFor(3))
	}
	var entry *orderstate.Entry
	wait.For(t, 10*time.Second, "the update in the history", func() bool {
		for _, e := range h.history("UA-1") {
			if e.ID == "ev-u" {
				entry = &e
				return true
			}
		}
		return false
	})
	if entry.Type != "order.updated" || entry.Did != "changed" || entry.Status != orderstate.StatusOK ||
		strings.Join(entry.Outcomes, ",") != "credit.ok" || !strings.Contains(strings.Join(entry.Calls, ","), "modify") {
		t.Errorf("history entry of the update: %+v, want order.updated changed, status ok, credit.ok and the modify call", *entry)
	}
}

// Changing an order of a shop that encloses its invoices into a gift (a ship_to that is not the
// buyer) sends the change with the invoice mailed separately, the outcome says so, and a later
// invoice request gets invoice.ng without fetching anything: the enclosed invoice must never go
// into a parcel addressed to someone else (docs/protocol.md#business-rules).
func TestUpdateIntoGiftMailsTheInvoice(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{invoice: config.InvoiceEnclosed})
	data := orderData("shop-a", "UG-1", "taro@example.jp")
	h.publish("order.created", "shop-a", "ev-c", data)
	h.waitOutcomes("UG-1", "credit.ok", 10*time.Second)
	if tx := h.tx("UG-1"); tx.Service != atodene.ServiceEnclosed {
		t.Fatalf("order to the buyer registered with service %s, want %s (enclosed)", tx.Service, atodene.ServiceEnclosed)
	}
	h.publish("order.invoice_requested", "shop-a", "ev-i1", orderRef("shop-a", "UG-1"))
	h.waitOutcomes("UG-1", "credit.ok,invoice.ok", 10*time.Second)

	gift := withQuantity(data, 2) // the same order, now sent to someone else
	gift["ship_to"] = map[string]any{"name": "山田 花子", "name_kana": "ヤマダ ハナコ", "zip": "530-0001",
		"address": "大阪府大阪市北区梅田1-1", "phone": "06-1234-5678"}
	h.publish("order.updated", "shop-a", "ev-u", gift)
	out := h.waitOutcomes("UG-1", "credit.ok,invoice.ok,credit.ok", 10*time.Second)[2]
	tx := h.tx("UG-1")
	if tx.Service != atodene.ServiceSeparate || tx.Calls["modifytransaction"] != 1 || tx.Registrations != 1 {
		t.Errorf("sandbox after the change into a gift: service %s (calls %s, %d registrations), want %s (mailed) by one change",
			tx.Service, calls(tx), tx.Registrations, atodene.ServiceSeparate)
	}
	if !strings.Contains(string(out.Env.Data), `{"field":"invoice_delivery","value":"separate"}`) {
		t.Errorf("credit.ok of the change does not say the invoice is mailed: %s", out.Env.Data)
	}
	fetched := tx.Calls["getinvoicedata"]
	h.publish("order.invoice_requested", "shop-a", "ev-i2", orderRef("shop-a", "UG-1"))
	ng := h.waitOutcomes("UG-1", "credit.ok,invoice.ok,credit.ok,invoice.ng", 10*time.Second)[3]
	if inv := invoiceOf(t, ng); len(inv.Errors) != 1 || inv.Errors[0].Point != "invoice_delivery" || inv.Invoice != nil {
		t.Errorf("invoice.ng of the gift: %+v", inv)
	}
	if tx := h.tx("UG-1"); tx.Calls["getinvoicedata"] != fetched {
		t.Errorf("the gift's invoice was asked of ATODENE (calls %s)", calls(tx))
	}
	if !h.historySays("UG-1", "ev-u", "changed; sent normalized: invoice_delivery") {
		t.Errorf("history: %+v", h.history("UG-1"))
	}
}
