package invoiceprint

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestMain fails the package's tests if any goroutine outlives them: the NATS clients and servers the tests start are stopped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestInvoiceLayoutIsTheProtocols: the document has every print element of the protocol's table
// (docs/protocol.md#invoice-print-data), and no other.
func TestInvoiceLayoutIsTheProtocols(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "The elements of `invoiceInfo`")
	end := strings.Index(text[start:], "\n\n|")
	if start < 0 || end < 0 {
		t.Fatal("docs/protocol.md has no table of the elements of invoiceInfo")
	}
	table := text[start+end+2:]
	table = table[:strings.Index(table, "\n\n")]
	token := regexp.MustCompile("`([A-Za-z0-9]{3,})`(?:–`([A-Za-z]+)([0-9]+)`)?")
	var want []string
	for _, row := range strings.Split(table, "\n")[2:] {
		for _, m := range token.FindAllStringSubmatch(row, -1) {
			if m[2] == "" {
				want = append(want, m[1])
				continue
			}
			first := strings.TrimLeft(m[1], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
			var from, to int
			fmt.Sscan(first, &from)
			fmt.Sscan(m[3], &to)
			for i := from; i <= to; i++ {
				want = append(want, fmt.Sprintf("%s%d", m[2], i))
			}
		}
	}
	var got []string
	for _, g := range layout {
		for _, f := range g.Fields {
			got = append(got, f.Name)
		}
	}
	for _, f := range detailLayout {
		got = append(got, f.Name)
	}
	got = append(got, "details", "detail")
	slices.Sort(want)
	slices.Sort(got)
	want, got = slices.Compact(want), slices.Compact(got)
	if len(want) < 90 || !slices.Equal(want, got) {
		t.Errorf("the layout's elements differ from the protocol's:\nprotocol: %v\nlayout:   %v", want, got)
	}
}

// printData is print data with every element of the layout, each holding its own name, an
// element the layout does not know, and two detail lines.
func printData(billed string) *events.InvoicePrintData {
	p := &events.InvoicePrintData{Fields: map[string]string{}}
	for _, g := range layout {
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

func invoice(order, billed string) Invoice {
	return Invoice{Shop: "demo", Order: order, TransactionID: "T-" + order, Seq: 5, EventID: "demo:" + order + ":1:9:invoice.ok",
		Published: time.Date(2026, 11, 30, 7, 2, 7, 0, time.UTC), Invoice: printData(billed)}
}

// TestSheetsAndDocument: the fragment holds one sheet per invoice with every element, escaped,
// and no document around it; its stylesheet styles nothing outside the sheets; the document holds
// the same sheets, for A4 pages.
func TestSheetsAndDocument(t *testing.T) {
	t.Parallel()
	invoices := []Invoice{invoice("A-1", "3155円"), invoice("B-1", "2950円")}
	frag, err := Sheets(invoices)
	if err != nil {
		t.Fatal(err)
	}
	sheets := strings.Split(string(frag), `<section class="invoice"`)[1:]
	if len(sheets) != 2 || !strings.Contains(sheets[0], `data-order="A-1"`) || !strings.Contains(sheets[1], "2/2 · shop demo · order B-1") ||
		strings.Contains(string(frag), "<html") || strings.Contains(string(frag), "<style") {
		t.Fatalf("the fragment:\n%s", frag)
	}
	for _, sheet := range sheets {
		for _, g := range layout {
			for _, f := range g.Fields {
				if !strings.Contains(sheet, `data-field="`+f.Name+`"`) {
					t.Errorf("the sheet lacks the element %s", f.Name)
				}
			}
		}
		if !strings.Contains(sheet, "&lt;加藤 &amp; 太郎&gt;") || !strings.Contains(sheet, "an element the protocol does not list") ||
			!strings.Contains(sheet, "2026-11-30 16:02:07 JST, sequence 5") {
			t.Errorf("the sheet:\n%s", sheet)
		}
	}
	for _, rule := range regexp.MustCompile(`(?m)^[^ @}][^{]*\{`).FindAllString(string(Style()), -1) {
		for _, sel := range strings.Split(strings.TrimSuffix(rule, "{"), ",") {
			if sel = strings.TrimSpace(sel); !strings.HasPrefix(sel, ".invoice") {
				t.Errorf("the rule %q styles %q, outside the sheets", rule, sel)
			}
		}
	}
	var doc bytes.Buffer
	if err := WriteDocument(&doc, invoices); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"@page { size: A4;", "break-after: page", "page-break-after: always", `<html lang="ja">`, `<meta charset="utf-8">`,
		"<title>請求書 demo A-1, B-1</title>", string(Style()), string(frag)} {
		if !strings.Contains(doc.String(), want) {
			t.Errorf("the document lacks %q", want)
		}
	}
	if err := WriteDocument(&doc, nil); err == nil {
		t.Error("a document of no invoice")
	}
}

// TestText: every label with its value, the detail lines, the unknown elements, a form feed
// between the invoices.
func TestText(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := WriteText(&b, []Invoice{invoice("A-1", "3155円"), invoice("B-1", "2950円")}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Count(out, "\f") != 1 || !strings.HasPrefix(out, "請求書 1/2  shop demo  order A-1  お問合せ番号 T-A-1\n(invoice.ok demo:A-1:1:9:invoice.ok, 2026-11-30 16:02:07 JST, sequence 5)\n") ||
		!strings.Contains(out, "  請求金額                          3155円\n") || !strings.Contains(out, "    商品名                          緑茶ティーバッグ 50包\n") ||
		!strings.Contains(out, "[その他]\n  newElement                        an element") {
		t.Errorf("text:\n%s", out)
	}
}

// TestDetailElementsTheLayoutDoesNotKnow: an element of a detail line (明細) that the layout does
// not know (a tax-rate column, say) is printed, as a column of its own headed その他 <element> in
// the HTML lines table (empty in the lines without it) and under its line in the text, as the
// elements the layout does not know at the top level are: the document leaves nothing out.
func TestDetailElementsTheLayoutDoesNotKnow(t *testing.T) {
	t.Parallel()
	inv := invoice("A-1", "3155円")
	inv.Invoice.Details[0]["goodsTaxRate"] = "※軽減税率8%対象"
	frag, err := Sheets([]Invoice{inv})
	if err != nil {
		t.Fatal(err)
	}
	html := string(frag)
	table := html[strings.Index(html, `<table class="details">`):]
	table = table[:strings.Index(table, "</table>")]
	rows := regexp.MustCompile(`(?s)<tr>.*?</tr>`).FindAllString(table, -1)
	if len(rows) != 3 {
		t.Fatalf("the lines table has %d rows, want a heading and 2 lines:\n%s", len(rows), table)
	}
	if !strings.Contains(rows[0], "<th>その他 goodsTaxRate</th>") ||
		!strings.Contains(rows[1], `<td><span data-field="goodsTaxRate">※軽減税率8%対象</span></td></tr>`) ||
		!strings.Contains(rows[2], `<td><span data-field="goodsTaxRate"></span></td></tr>`) {
		t.Errorf("the lines table has no column その他 goodsTaxRate holding the first line's value:\n%s", table)
	}
	for i, row := range rows {
		if n := strings.Count(row, "<th>") + strings.Count(row, "<td"); n != 6 {
			t.Errorf("row %d of the lines table has %d cells, want 6:\n%s", i, n, row)
		}
	}
	var text bytes.Buffer
	if err := WriteText(&text, []Invoice{inv}); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	first, second := strings.Index(out, "  明細1\n"), strings.Index(out, "  明細2\n")
	if first < 0 || second < 0 || !strings.Contains(out[first:second], "    その他 goodsTaxRate             ※軽減税率8%対象\n") ||
		strings.Contains(out[second:], "goodsTaxRate") {
		t.Errorf("text: the first line's element goodsTaxRate is not under 明細1 (and only there):\n%s", out)
	}
}

// TestFind: the latest invoice.ok of each order, read back through more than one window, the
// other shops' and orders' left; the bounds of the search.
func TestFind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := testenv.JetStream(t)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RESULTS", Subjects: []string{"credit.>", "shipment.>", "invoice.>"}, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(shop, id string, inv events.Invoice) {
		body, err := events.NewOutcome(id, events.TypeInvoiceOK, "cause-"+id, time.Now(), inv)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, events.Subject(events.TypeInvoiceOK, shop), body); err != nil {
			t.Fatal(err)
		}
	}
	publish("demo", "i-old", events.Invoice{ShopID: "demo", OrderID: "A-1", Invoice: printData("1000円")})
	publish("demo", "i-b", events.Invoice{ShopID: "demo", OrderID: "B-1", Invoice: printData("2950円")})
	for i := range 1200 {
		publish("demo", fmt.Sprintf("f-%d", i), events.Invoice{ShopID: "demo", OrderID: fmt.Sprintf("F-%d", i), Invoice: &events.InvoicePrintData{Fields: map[string]string{"zip": "1"}}})
	}
	publish("demo", "i-new", events.Invoice{ShopID: "demo", OrderID: "A-1", TransactionID: "T-A-1", Invoice: printData("3155円")})
	publish("other", "i-other", events.Invoice{ShopID: "other", OrderID: "A-1", Invoice: printData("9円")})

	found, err := Find(ctx, s, "demo", []string{"A-1", "B-1", "A-1", "MISSING"}, Search{})
	if err != nil || len(found.Invoices) != 2 || found.Limited || found.Read != 1203 {
		t.Fatalf("Find: %+v %v", found, err)
	}
	if a := found.Invoices["A-1"]; a.EventID != "i-new" || a.Invoice.Fields["billedAmount"] != "3155円" || a.TransactionID != "T-A-1" || a.Seq != 1203 {
		t.Errorf("A-1: %+v", a)
	}
	found, err = Find(ctx, s, "demo", []string{"A-1"}, Search{})
	if err != nil || len(found.Invoices) != 1 || found.Read >= 1203 {
		t.Errorf("every order found: %d read, %v; want it to stop early", found.Read, err)
	}
	found, err = Find(ctx, s, "demo", []string{"B-1"}, Search{Scan: 10})
	if err != nil || len(found.Invoices) != 0 || !found.Limited || found.Read != 10 {
		t.Errorf("Scan 10: %+v %v", found, err)
	}
	found, err = Find(ctx, s, "demo", []string{"B-1"}, Search{Since: time.Now().Add(time.Hour)})
	if err != nil || len(found.Invoices) != 0 {
		t.Errorf("Since an hour ahead: %+v %v", found, err)
	}
	if got := Layout(); len(got) != len(layout) || len(DetailLayout()) != len(detailLayout) {
		t.Errorf("Layout: %d groups", len(got))
	}
}

// TestFindSupersededByLaterCredit: print data older than a later credit outcome of its order (a
// change of the amount or of anything else, a cancel, a new registration under another
// transaction) is not the order's: Find leaves it out of Invoices and says, in Superseded, which
// outcome made it stale; a cancelled order's is marked cancelled. A credit.invalid of the
// invoice's transaction (a change ATODENE refused: the transaction stands) leaves it current, as
// does a credit outcome of another shop; an invoice.ok fetched again after the change is current.
func TestFindSupersededByLaterCredit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := testenv.JetStream(t)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RESULTS", Subjects: []string{"credit.>", "shipment.>", "invoice.>"}, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	publish := func(shop, eventType, order, tx string, data any) {
		t.Helper()
		n++
		id := fmt.Sprintf("%s:%s:%d:%s", shop, order, n, eventType)
		switch eventType {
		case events.TypeInvoiceOK:
			data = events.Invoice{ShopID: shop, OrderID: order, TransactionID: tx, Invoice: printData(data.(string))}
		default:
			result := strings.TrimPrefix(eventType, "credit.")
			data = events.Credit{ShopID: shop, OrderID: order, TransactionID: tx, Result: result, Fee: 205, BilledAmount: data.(int64)}
		}
		body, err := events.NewOutcome(id, eventType, "cause", time.Now(), data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, events.Subject(eventType, shop), body); err != nil {
			t.Fatal(err)
		}
	}
	const tx1, tx2 = "11111111111", "22222222222"
	for _, o := range []string{"A-1", "CHANGED", "RENEWED", "CANCELLED", "REVIEW", "REFUSED", "REFETCHED", "OTHER-SHOP"} {
		publish("demo", events.TypeCreditOK, o, tx1, int64(3155))
		publish("demo", events.TypeInvoiceOK, o, tx1, "3155円")
	}
	publish("demo", events.TypeCreditOK, "CHANGED", tx1, int64(2950))
	publish("demo", events.TypeCreditCancelled, "RENEWED", tx1, int64(3155))
	publish("demo", events.TypeCreditOK, "RENEWED", tx2, int64(3155))
	publish("demo", events.TypeCreditCancelled, "CANCELLED", tx1, int64(3155))
	publish("demo", events.TypeCreditPending, "REVIEW", tx1, int64(60205))
	publish("demo", events.TypeCreditInvalid, "REFUSED", tx1, int64(2950))
	publish("demo", events.TypeCreditOK, "REFETCHED", tx1, int64(2950))
	publish("demo", events.TypeInvoiceOK, "REFETCHED", tx1, "2950円")
	publish("other", events.TypeCreditCancelled, "OTHER-SHOP", tx1, int64(3155))

	orders := []string{"A-1", "CHANGED", "RENEWED", "CANCELLED", "REVIEW", "REFUSED", "REFETCHED", "OTHER-SHOP"}
	found, err := Find(ctx, s, "demo", orders, Search{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"A-1", "REFUSED", "OTHER-SHOP"} {
		if inv, ok := found.Invoices[o]; !ok || inv.Invoice.Fields["billedAmount"] != "3155円" {
			t.Errorf("%s: not printed (%+v), though no credit outcome of its own changed it since its invoice.ok", o, found.Superseded[o])
		}
	}
	if inv, ok := found.Invoices["REFETCHED"]; !ok || inv.Invoice.Fields["billedAmount"] != "2950円" {
		t.Errorf("REFETCHED: %+v, want the print data fetched after the change (2950円)", inv)
	}
	want := map[string]struct {
		typ, tx   string
		cancelled bool
	}{
		"CHANGED":   {events.TypeCreditOK, tx1, false},
		"RENEWED":   {events.TypeCreditOK, tx2, false},
		"CANCELLED": {events.TypeCreditCancelled, tx1, true},
		"REVIEW":    {events.TypeCreditPending, tx1, false},
	}
	for o, w := range want {
		if inv, ok := found.Invoices[o]; ok {
			t.Errorf("%s: printed with print data older than its %s (billedAmount %s, transaction %s)", o, w.typ, inv.Invoice.Fields["billedAmount"], inv.TransactionID)
		}
		sup, ok := found.Superseded[o]
		if !ok || sup.Type != w.typ || sup.TransactionID != w.tx || sup.Cancelled() != w.cancelled || sup.Invoice.Order != o || sup.Seq <= sup.Invoice.Seq {
			t.Errorf("%s: superseded %+v (found %v), want by %s of transaction %s, cancelled %v", o, sup, ok, w.typ, w.tx, w.cancelled)
			continue
		}
		reason := sup.Reason()
		if w.cancelled && !strings.Contains(reason, "cancelled") || !w.cancelled && !strings.Contains(reason, "predates the order's last change") ||
			!strings.Contains(reason, sup.EventID) {
			t.Errorf("%s: reason %q", o, reason)
		}
	}
	if len(found.Invoices)+len(found.Superseded) != len(orders) || found.Checked != 14 {
		t.Errorf("found %d invoices and %d superseded of %d orders, %d credit outcomes checked (want the 14 of demo after the oldest invoice.ok found)",
			len(found.Invoices), len(found.Superseded), len(orders), found.Checked)
	}
}

// TestFindCheckIsBounded: the check for a later credit outcome reads at most Search.Check of the
// shop's credit outcomes, the newest, however many were stored since the oldest invoice found (a
// busy shop, print data weeks old); an invoice older than those read is not reported current but
// Unverified, with the reason, while one newer than them is checked and printed, and one whose
// later outcome was read is superseded as before (docs/operations.md#invoice-print-shop-order).
func TestFindCheckIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := testenv.JetStream(t)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RESULTS", Subjects: []string{"credit.>", "shipment.>", "invoice.>"}, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	publish := func(eventType, order string) {
		t.Helper()
		n++
		id := fmt.Sprintf("demo:%s:%d:%s", order, n, eventType)
		var data any = events.Credit{ShopID: "demo", OrderID: order, TransactionID: "11111111111", Result: "ok", Fee: 205, BilledAmount: 3155}
		if eventType == events.TypeInvoiceOK {
			data = events.Invoice{ShopID: "demo", OrderID: order, TransactionID: "11111111111", Invoice: printData("3155円")}
		}
		body, err := events.NewOutcome(id, eventType, "cause", time.Now(), data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishAsync(events.Subject(eventType, "demo"), body); err != nil {
			t.Fatal(err)
		}
	}
	publish(events.TypeInvoiceOK, "OLD-CHANGED")
	publish(events.TypeCreditOK, "OLD-CHANGED") // superseded, but before the outcomes the check reads
	publish(events.TypeInvoiceOK, "OLD")
	const busy, check = 3000, 1000
	for i := range busy {
		publish(events.TypeCreditOK, fmt.Sprintf("F-%d", i))
	}
	publish(events.TypeInvoiceOK, "NEW")
	publish(events.TypeInvoiceOK, "NEW-CHANGED")
	publish(events.TypeCreditPending, "NEW-CHANGED")
	for i := range 10 {
		publish(events.TypeCreditOK, fmt.Sprintf("G-%d", i))
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publishes not acknowledged")
	}

	found, err := Find(ctx, s, "demo", []string{"OLD", "OLD-CHANGED", "NEW", "NEW-CHANGED"}, Search{Check: check})
	if err != nil {
		t.Fatal(err)
	}
	if found.Checked > check || !found.CheckLimited {
		t.Errorf("checked %d credit outcomes (limited %v), want at most Check %d of the %d stored after the oldest invoice", found.Checked, found.CheckLimited, check, busy+12)
	}
	if inv, ok := found.Invoices["NEW"]; !ok || inv.Invoice.Fields["billedAmount"] != "3155円" {
		t.Errorf("NEW: not printed (%+v), though every credit outcome after it was read", found.Superseded["NEW"])
	}
	if sup, ok := found.Superseded["NEW-CHANGED"]; !ok || sup.Unverified || sup.Type != events.TypeCreditPending {
		t.Errorf("NEW-CHANGED: %+v (superseded %v), want superseded by its credit.pending", sup, ok)
	}
	for _, o := range []string{"OLD", "OLD-CHANGED"} {
		if inv, ok := found.Invoices[o]; ok {
			t.Errorf("%s: printed as current (invoice.ok sequence %d), though the credit outcomes after it were not all read", o, inv.Seq)
		}
		sup, ok := found.Superseded[o]
		if !ok || !sup.Unverified || sup.Cancelled() || sup.Checked != found.Checked || sup.CheckedFrom <= sup.Invoice.Seq+1 ||
			!strings.Contains(sup.Reason(), "could not be checked") || !strings.Contains(sup.Reason(), "fetch it again") {
			t.Errorf("%s: %+v (found %v), reason %q; want it unverified, with why", o, sup, ok, sup.Reason())
		}
	}
}

// TestFieldNamesAreEscaped: an element's name comes from the print data too (the elements the
// layout does not know, in its details also): it cannot close the attribute that names it.
func TestFieldNamesAreEscaped(t *testing.T) {
	t.Parallel()
	evil := `x"><meta http-equiv="refresh" content="0">`
	inv := invoice("A-1", "3155円")
	inv.Invoice.Fields[evil] = "value"
	inv.Invoice.Details = append(inv.Invoice.Details, map[string]string{evil: "detail"})
	frag, err := Sheets([]Invoice{inv})
	if err != nil {
		t.Fatal(err)
	}
	var doc bytes.Buffer
	if err := WriteDocument(&doc, []Invoice{inv}); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{string(frag), doc.String()} {
		if strings.Contains(out, "<meta http-equiv") || strings.Contains(out, `data-field="x"`) {
			t.Errorf("the element's name is written unescaped:\n%s", out)
		}
		if !strings.Contains(out, `data-field="x&#34;&gt;&lt;meta http-equiv=&#34;refresh&#34; content=&#34;0&#34;&gt;"`) {
			t.Errorf("the element's name is not in its data-field:\n%s", out)
		}
	}
}

// TestTextShowsControlsEscaped: a value with control characters (from ATODENE's answer) is written
// escaped, on its own line, in the text document; the form feed between invoices stays.
func TestTextShowsControlsEscaped(t *testing.T) {
	t.Parallel()
	a, c := invoice("A-1", "3155円"), invoice("C-1", "2950円")
	a.TransactionID = "T\x1b]0;pwned\x07"
	for k := range a.Invoice.Fields {
		a.Invoice.Fields[k] = "x\r\nFORGED\u202e"
		break
	}
	var b strings.Builder
	if err := WriteText(&b, []Invoice{a, c}); err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(b.String(), "\f\n", "\n")
	for _, r := range text {
		if r != '\n' && (unicode.IsControl(r) || r == '\u202e') {
			t.Fatalf("text holds %U:\n%q", r, text)
		}
	}
	for _, want := range []string{`お問合せ番号 T\x1b]0;pwned\a` + "\n", `x\r\nFORGED\u202e` + "\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("text does not hold %q:\n%s", want, text)
		}
	}
	if !strings.Contains(b.String(), "\f\n") {
		t.Error("the form feed between invoices is gone")
	}
}
