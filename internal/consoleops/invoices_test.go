package consoleops

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/console"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/invoiceprint"
)

// TestSheets: with no orders, the stylesheet alone; with orders, the sheets of those that have an
// invoice.ok in RESULTS, in the order given, without style attributes nor scripts, and the others
// missing.
func TestSheets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	publish := func(shop, id, order, billed string) {
		t.Helper()
		body, err := events.NewOutcome(id, events.TypeInvoiceOK, "cause-"+id, time.Now(), events.Invoice{ShopID: shop, OrderID: order, TransactionID: "T-" + order,
			Invoice: &events.InvoicePrintData{Fields: map[string]string{"name": "<加藤 & 太郎>", "billedAmount": billed, "zip": "150-0001"}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.Publish(ctx, events.Subject(events.TypeInvoiceOK, shop), body); err != nil {
			t.Fatal(err)
		}
	}
	publish("demo", "i-1", "A-1", "1000円")
	publish("demo", "i-2", "B-1", "2950円")
	publish("demo", "i-3", "A-1", "3155円") // A-1's latest
	publish("other", "i-4", "C-1", "9円")

	sheets, css, missing, err := e.ops.Sheets(ctx, "demo", nil)
	if err != nil || sheets != "" || css != invoiceprint.Style() || css == "" || missing != nil {
		t.Fatalf("Sheets with no orders: %q, %d bytes of CSS, %v, %v", sheets, len(css), missing, err)
	}

	sheets, css, missing, err = e.ops.Sheets(ctx, "demo", []string{"B-1", "MISSING", "A-1", "C-1", "B-1"})
	if err != nil || css != invoiceprint.Style() {
		t.Fatalf("Sheets: %v", err)
	}
	if !slices.Equal(orderIDs(missing), []string{"MISSING", "C-1"}) || missing[0] != (console.MissingInvoice{Order: "MISSING"}) {
		t.Errorf("missing: %v", missing)
	}
	parts := strings.Split(string(sheets), `<section class="invoice"`)[1:]
	if len(parts) != 2 || !strings.Contains(parts[0], `data-order="B-1"`) || !strings.Contains(parts[1], `data-order="A-1"`) ||
		!strings.Contains(parts[1], "3155円") || strings.Contains(string(sheets), "1000円") || !strings.Contains(string(sheets), "&lt;加藤 &amp; 太郎&gt;") {
		t.Errorf("sheets:\n%s", sheets)
	}
	if s := strings.ToLower(string(sheets)); strings.Contains(s, "style=") || strings.Contains(s, "<style") || strings.Contains(s, "<script") {
		t.Errorf("the sheets carry a style or a script:\n%s", sheets)
	}

	sheets, _, missing, err = e.ops.Sheets(ctx, "demo", []string{"NONE-1", "NONE-2"})
	if err != nil || sheets != "" || !slices.Equal(orderIDs(missing), []string{"NONE-1", "NONE-2"}) {
		t.Errorf("Sheets of orders without invoices: %q %v %v", sheets, missing, err)
	}
}

// orderIDs lists the orders of missing.
func orderIDs(missing []console.MissingInvoice) []string {
	var out []string
	for _, m := range missing {
		out = append(out, m.Order)
	}
	return out
}

// TestSheetsLeaveOutSupersededPrintData: an order whose latest invoice.ok predates a later credit
// outcome of the order (a change of its amount, a cancel) gets no sheet: it is missing, stale
// (to fetch again) or cancelled (never printed), with the reason that names the outcomes.
func TestSheetsLeaveOutSupersededPrintData(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	publish := func(eventType, id string, data any) {
		t.Helper()
		body, err := events.NewOutcome(id, eventType, "cause-"+id, time.Now(), data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.Publish(ctx, events.Subject(eventType, "demo"), body); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []string{"A-1", "C-1", "X-1"} {
		publish(events.TypeCreditOK, "ok-"+o, events.Credit{ShopID: "demo", OrderID: o, TransactionID: "T-" + o, Result: "ok", Fee: 205, BilledAmount: 3155})
		publish(events.TypeInvoiceOK, "inv-"+o, events.Invoice{ShopID: "demo", OrderID: o, TransactionID: "T-" + o,
			Invoice: &events.InvoicePrintData{Fields: map[string]string{"billedAmount": "3155円"}}})
	}
	publish(events.TypeCreditOK, "changed-C-1", events.Credit{ShopID: "demo", OrderID: "C-1", TransactionID: "T-C-1", Result: "ok", Fee: 205, BilledAmount: 2950})
	publish(events.TypeCreditCancelled, "cancelled-X-1", events.Credit{ShopID: "demo", OrderID: "X-1", TransactionID: "T-X-1", Result: "cancelled", Fee: 205, BilledAmount: 3155})

	sheets, _, missing, err := e.ops.Sheets(ctx, "demo", []string{"C-1", "A-1", "X-1"})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(sheets), `<section class="invoice"`); n != 1 || !strings.Contains(string(sheets), `data-order="A-1"`) {
		t.Errorf("%d sheets, want A-1's alone:\n%s", n, sheets)
	}
	if len(missing) != 2 || missing[0].Order != "C-1" || !missing[0].Stale || missing[0].Cancelled ||
		!strings.Contains(missing[0].Reason, "predates the order's last change (credit.ok changed-C-1") ||
		missing[1].Order != "X-1" || missing[1].Stale || !missing[1].Cancelled || !strings.Contains(missing[1].Reason, "cancelled (credit.cancelled cancelled-X-1") {
		t.Errorf("missing: %+v, want C-1 stale and X-1 cancelled, with their reasons", missing)
	}
}

// TestSheetsWithoutResults: a missing outcome stream is an error that names it.
func TestSheetsWithoutResults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.js.DeleteStream(t.Context(), "RESULTS"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := e.ops.Sheets(t.Context(), "demo", []string{"A-1"}); err == nil || !strings.Contains(err.Error(), "opening stream RESULTS") {
		t.Errorf("Sheets without RESULTS: %v", err)
	}
}
