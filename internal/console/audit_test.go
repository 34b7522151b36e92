package console

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// TestRepeatedLooksKeepTheHistory: an operator who reloads an order's print page a hundred times
// (or leaves a tab that reloads it) adds one console.invoice_printed entry, so that neither the
// record of her reveal of the buyer's data nor the worker's entries leave the bounded history; a
// look by another operator, or the same look an hour later, is an entry of its own.
func TestRepeatedLooksKeepTheHistory(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order(testShop, "A1", okState())
	if err := h.store.AppendHistory(t.Context(), testShop, "A1", orderstate.Entry{At: testNow, Type: "order.created",
		Source: "mall-importer/rakuten", ID: "ev-1", Did: "registered", Status: orderstate.StatusOK}, 0); err != nil {
		t.Fatal(err)
	}
	h.actions.received[testShop+"/A1"] = json.RawMessage(`{"shop_id":"demo","order_id":"A1","buyer":{"name":"加藤 太郎","name_kana":"カトウ タロウ","zip":"150-0001","address":"東京都渋谷区神宮前1-1-1","phone":"03-1234-5678","email":"taro@example.jp"},"items":[{"name":"茶","unit_price":1000,"quantity":1}],"billed_amount":1000}`)
	h.invoices.known = map[string]bool{"A1": true}
	body(t, h.post("/orders/demo/A1/reveal", "alice", nil), http.StatusOK)
	for range orderstate.HistoryLimit {
		body(t, h.get("/invoices?shop=demo&order=A1", "alice"), http.StatusOK)
	}
	body(t, h.get("/invoices?shop=demo&order=A1", "bob"), http.StatusOK)
	h.clock.Advance(auditRepeatWindow + time.Second)
	body(t, h.get("/invoices?shop=demo&order=A1", "bob"), http.StatusOK)

	hist, err := h.store.History(t.Context(), testShop, "A1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range hist {
		got = append(got, e.Type+" "+e.Operator)
	}
	want := []string{"order.created ", AuditType + " alice", InvoiceAuditType + " alice", InvoiceAuditType + " bob", InvoiceAuditType + " bob"}
	if len(got) != len(want) {
		t.Fatalf("history after 100 reloads by alice and two looks by bob an hour apart:\n%q\nwant %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d is %q, want %q", i, got[i], want[i])
		}
	}
}
