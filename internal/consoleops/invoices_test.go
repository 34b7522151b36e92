package consoleops

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

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
	if !slices.Equal(missing, []string{"MISSING", "C-1"}) {
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
	if err != nil || sheets != "" || !slices.Equal(missing, []string{"NONE-1", "NONE-2"}) {
		t.Errorf("Sheets of orders without invoices: %q %v %v", sheets, missing, err)
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
