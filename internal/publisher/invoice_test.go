package publisher

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/invoiceprint"
)

// printData is print data with every element of the layout, each holding its own name, and two
// detail lines.
func printData(billed string) *events.InvoicePrintData {
	p := &events.InvoicePrintData{Fields: map[string]string{}}
	for _, g := range invoiceprint.Layout() {
		for _, f := range g.Fields {
			p.Fields[f.Name] = "v-" + f.Name
		}
	}
	p.Fields["name"] = "<加藤 & 太郎>"
	p.Fields["billedAmount"] = billed
	p.Fields["newElement"] = "an element the protocol does not list"
	p.Details = []map[string]string{
		{"goods": "緑茶ティーバッグ 50包", "goodsAmount": "2", "goodsPrice": "1,200", "goodsSubtotal": "2,400", "goodsExpand": ""},
		{"goods": "送料", "goodsAmount": "1", "goodsPrice": "550", "goodsSubtotal": "550", "goodsExpand": ""},
	}
	return p
}

func invoiceOK(order, billed string) events.Invoice {
	return events.Invoice{ShopID: "demo", OrderID: order, TransactionID: "T-" + order, Invoice: printData(billed)}
}

// TestInvoicePrint: the latest invoice.ok of each order, found reading back through more than one
// window of the stream, as an HTML document of A4 pages with every element; an order without one
// is reported, with what to do, and fails the run after the others are printed.
func TestInvoicePrint(t *testing.T) {
	t.Parallel()
	url, js, _ := resultsStream(t)
	outcomeOf(t, js, events.TypeInvoiceOK, "demo", "i-old", invoiceOK("A-1", "1000円"))
	outcomeOf(t, js, events.TypeInvoiceOK, "demo", "i-b", invoiceOK("B-1", "2950円"))
	for i := range 1500 { // other orders' outcomes, and other shops': more than one window back
		if i%2 == 0 {
			outcomeOf(t, js, events.TypeInvoiceOK, "demo", fmt.Sprintf("f-%d", i), events.Invoice{ShopID: "demo", OrderID: fmt.Sprintf("F-%d", i),
				Invoice: &events.InvoicePrintData{Fields: map[string]string{"zip": "1"}}})
		} else {
			outcomeOf(t, js, events.TypeCreditOK, "other", fmt.Sprintf("c-%d", i), credit("other", "A-1", "ok"))
		}
	}
	outcomeOf(t, js, events.TypeInvoiceOK, "demo", "i-new", invoiceOK("A-1", "3155円"))
	outcomeOf(t, js, events.TypeInvoiceOK, "other", "i-other", events.Invoice{ShopID: "other", OrderID: "A-1", Invoice: printData("9円")})

	path := filepath.Join(t.TempDir(), "invoices.html")
	r := runPublisher(t, url, "", false, "invoice", "print", "-o", path, "demo", "A-1", "MISSING", "B-1")
	if r.err == nil || errors.As(r.err, new(UsageError)) || r.err.Error() != "1 of 3 orders have no invoice print data: MISSING" {
		t.Errorf("err = %v, want a failure for MISSING", r.err)
	}
	if !strings.Contains(r.stderr, "wrote 2 invoices to "+path) ||
		!strings.Contains(r.stderr, "order MISSING: no invoice.ok among the 753 invoice.ok outcomes of shop demo in RESULTS; fetch the print data with: publisher publish -type order.invoice_requested -shop demo -order MISSING (for an order whose credit is ok") || !strings.Contains(r.stderr, "publisher order show demo MISSING says which") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the document: %v, mode %v; want 0600", err, info)
	}
	raw, _ := os.ReadFile(path)
	doc := string(raw)
	pages := strings.Split(doc, `<section class="invoice"`)[1:]
	if len(pages) != 2 || !strings.Contains(pages[0], `data-order="A-1"`) || !strings.Contains(pages[1], `data-order="B-1"`) {
		t.Fatalf("want the invoices of A-1 and B-1, in that order:\n%s", doc)
	}
	for _, want := range []string{"@page { size: A4;", "break-after: page", "page-break-after: always", `<html lang="ja">`, `<meta charset="utf-8">`} {
		if !strings.Contains(doc, want) {
			t.Errorf("the document lacks %q", want)
		}
	}
	if !strings.Contains(pages[0], ">3155円<") || strings.Contains(pages[0], "1000円") {
		t.Errorf("A-1's invoice is not its latest print data")
	}
	for _, page := range pages {
		for _, g := range invoiceprint.Layout() {
			for _, f := range g.Fields {
				if !strings.Contains(page, `data-field="`+f.Name+`"`) {
					t.Errorf("the page lacks the element %s", f.Name)
				}
			}
		}
		for _, f := range invoiceprint.DetailLayout() {
			if strings.Count(page, `data-field="`+f.Name+`"`) != 2 {
				t.Errorf("the page lacks the element %s of each detail line", f.Name)
			}
		}
		if !strings.Contains(page, "&lt;加藤 &amp; 太郎&gt;") || strings.Contains(page, "<加藤") {
			t.Errorf("the buyer's name is not escaped")
		}
		if !strings.Contains(page, "an element the protocol does not list") {
			t.Errorf("an element the layout does not know is left out")
		}
	}

	// Plain text: every label, a form feed between the invoices.
	r = runPublisher(t, url, "", false, "invoice", "print", "-text", "demo", "A-1", "B-1")
	if r.err != nil {
		t.Fatalf("-text: %v\n%s", r.err, r.stderr)
	}
	if strings.Count(r.stdout, "\f") != 1 || !strings.HasPrefix(r.stdout, "請求書 1/2  shop demo  order A-1  お問合せ番号 T-A-1\n") {
		t.Errorf("-text:\n%s", r.stdout)
	}
	for _, g := range invoiceprint.Layout() {
		for _, f := range g.Fields {
			if !regexpLine(r.stdout, f.Label, "v-"+f.Name) && f.Name != "name" && f.Name != "billedAmount" {
				t.Errorf("-text lacks %s (%s)", f.Label, f.Name)
			}
		}
	}
	if !regexpLine(r.stdout, "請求金額", "3155円") || !regexpLine(r.stdout, "商品名", "緑茶ティーバッグ 50包") || !regexpLine(r.stdout, "newElement", "an element") {
		t.Errorf("-text:\n%s", r.stdout)
	}

	// JSON lines, the print data as it was published.
	r = runPublisher(t, url, "", false, "invoice", "print", "-json", "demo", "B-1")
	var got invoiceprint.Invoice
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &got) != nil || got.Order != "B-1" || got.Seq != 2 || got.EventID != "i-b" ||
		got.Invoice.Fields["billedAmount"] != "2950円" || len(got.Invoice.Details) != 2 {
		t.Errorf("-json: %v\n%s", r.err, r.stdout)
	}

	// A bounded search says where it stopped.
	r = runPublisher(t, url, "", false, "invoice", "print", "-scan", "10", "demo", "B-1")
	if r.err == nil || !strings.Contains(r.stderr, "no invoice.ok among the last 10 invoice.ok outcomes of shop demo") || !strings.Contains(r.stderr, "-scan 10") || r.stdout != "" {
		t.Errorf("-scan 10: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	// -since a time after every invoice was published (the next whole second: RFC 3339 in
	// seconds) finds none, however fast the test ran.
	since := time.Now().Add(time.Second).UTC().Format(time.RFC3339)
	r = runPublisher(t, url, "", false, "invoice", "print", "-since", since, "demo", "B-1")
	if r.err == nil {
		t.Errorf("-since %s found an invoice older than that", since)
	}
}

// TestInvoicePrintSupersededPrintData: an order whose latest invoice.ok predates a later credit
// outcome of the order is not printed with it: after a change (3,155 yen to 2,950), it is
// reported with why (its print data predates the order's last change) and the request that
// fetches it again; after a cancel, it is reported cancelled, with no request to send; the run
// fails after the others are printed. An order also missing is reported as before.
func TestInvoicePrintSupersededPrintData(t *testing.T) {
	t.Parallel()
	url, js, _ := resultsStream(t)
	for _, o := range []string{"A-1", "C-1", "X-1"} {
		outcomeOf(t, js, events.TypeCreditOK, "demo", "ok-"+o, credit("demo", o, "ok"))
		outcomeOf(t, js, events.TypeInvoiceOK, "demo", "inv-"+o, invoiceOK(o, "3155円"))
	}
	changed := credit("demo", "C-1", "ok")
	changed.BilledAmount = 2950
	outcomeOf(t, js, events.TypeCreditOK, "demo", "changed-C-1", changed)
	outcomeOf(t, js, events.TypeCreditCancelled, "demo", "cancelled-X-1", credit("demo", "X-1", "cancelled"))

	r := runPublisher(t, url, "", false, "invoice", "print", "-text", "demo", "A-1", "C-1", "X-1", "MISSING")
	if r.err == nil || r.err.Error() != "1 of 4 orders have no invoice print data: MISSING; 2 no current one: C-1, X-1" {
		t.Errorf("err = %v, want a failure naming MISSING, C-1 and X-1", r.err)
	}
	if strings.Count(r.stdout, "請求書 ") != 1 || !strings.HasPrefix(r.stdout, "請求書 1/1  shop demo  order A-1") || strings.Contains(r.stdout, "order C-1") || strings.Contains(r.stdout, "order X-1") {
		t.Errorf("printed, want A-1's invoice alone:\n%s", r.stdout)
	}
	for _, want := range []string{
		"order C-1: not printed: its print data (invoice.ok, sequence 4) predates the order's last change (credit.ok changed-C-1, sequence 7, transaction 12345678901)",
		"fetch it again with: publisher publish -type order.invoice_requested -shop demo -order C-1",
		"order X-1: not printed: the order was cancelled (credit.cancelled cancelled-X-1, sequence 8) after its print data was fetched (invoice.ok, sequence 6): the invoice of a cancelled order is not printed\n",
		"order MISSING: no invoice.ok among",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "-order X-1") {
		t.Errorf("stderr tells to fetch the invoice of the cancelled X-1 again:\n%s", r.stderr)
	}

	// Superseded orders alone: the run fails all the same.
	r = runPublisher(t, url, "", false, "invoice", "print", "-json", "demo", "C-1")
	if r.err == nil || r.err.Error() != "1 of 1 orders have no current invoice print data: C-1" || r.stdout != "" {
		t.Errorf("C-1 alone: %v\n%s", r.err, r.stdout)
	}
}

// TestInvoicePrintUsage: mistakes in the command line.
func TestInvoicePrintUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"demo"}, {"de.mo", "A-1"}, {"-text", "-json", "demo", "A-1"}, {"-scan", "0", "demo", "A-1"}, {"-since", "x", "demo", "A-1"}} {
		r := runPublisher(t, "nats://127.0.0.1:1", "", false, append([]string{"invoice", "print"}, args...)...)
		if !errors.As(r.err, new(UsageError)) {
			t.Errorf("invoice print %v: %v, want a usage error", args, r.err)
		}
	}
}
