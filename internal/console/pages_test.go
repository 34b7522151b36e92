package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// hostile are texts of the kind malls, importers and ATODENE send: markup, quotes, a right-to-left
// override, and one long unbroken string.
var hostile = []string{
	`<script>alert("x")</script>`,
	`"><img src=x onerror=alert(1)>`,
	"注文\u202Eevil.exe\u202C",
	strings.Repeat("長", 500),
}

// TestHostileTextIsInert: hostile text in a history, an order's reasons, its received data and a
// dead letter is escaped (no element, no attribute of its own), and sits in elements whose style
// isolates its direction and breaks its lines.
func TestHostileTextIsInert(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	joined := strings.Join(hostile, " ")
	st := ngState()
	st.Reasons = hostile
	st.History = []orderstate.Entry{{At: testNow, Type: "order.created", Source: hostile[0], ID: hostile[1], Did: joined,
		Calls: hostile, Outcomes: []string{hostile[2]}, Status: orderstate.StatusNG}}
	h.order(testShop, "H-1", st)
	h.actions.received["demo/H-1"] = []byte(`{"shop_id":"demo","order_id":"H-1","buyer":{"name":` + quoteJSON(hostile[0]) + `,"name_kana":"カ","zip":"1","address":` +
		quoteJSON(hostile[3]) + `,"phone":` + quoteJSON(hostile[2]) + `,"email":"a@b"},"items":[{"name":` + quoteJSON(joined) + `,"unit_price":1,"quantity":1}]}`)
	h.letters.add(Letter{Seq: 1, Reason: "invalid", Shop: testShop, Order: "H-1", Subject: "orders.created.demo", Error: joined, At: testNow,
		Body: []byte(`{"data":{"items":[{"name":` + quoteJSON(joined) + `}]}}`)})
	pages := map[string]string{
		"list":   body(t, h.get("/orders?shop=demo", "alice"), http.StatusOK),
		"order":  body(t, h.get("/orders/demo/H-1", "alice"), http.StatusOK),
		"reveal": body(t, h.post("/orders/demo/H-1/reveal", "alice", nil), http.StatusOK),
		"dlq":    body(t, h.get("/dlq", "alice"), http.StatusOK),
		"letter": body(t, h.get("/dlq/1", "alice"), http.StatusOK),
	}
	for name, page := range pages {
		mustNotContain(t, page, "<script>alert", "<img src=x", `"><img`)
		if !strings.Contains(page, "&lt;script&gt;alert(") && !strings.Contains(page, `\u003cscript\u003e`) {
			t.Errorf("%s: the markup is not shown escaped", name)
		}
		// Every hostile text sits inside an element of class text (or bdi), which the stylesheet
		// isolates and wraps.
		for _, m := range regexp.MustCompile(`<([a-z]+)([^>]*)>[^<]*`+regexp.QuoteMeta(strings.Repeat("長", 20))).FindAllStringSubmatch(page, -1) {
			if m[1] != "bdi" && !strings.Contains(m[2], "text") && m[1] != "pre" {
				t.Errorf("%s: the long text sits in <%s%s>, not an isolated element", name, m[1], m[2])
			}
		}
		// A right-to-left override is shown, not obeyed: "evil.exe" must not read "exe.live".
		mustNotContain(t, page, "\u202E")
		if !strings.Contains(page, "[U+202E]evil.exe") && !strings.Contains(page, `\u202eevil.exe`) {
			t.Errorf("%s: the right-to-left override is not shown", name)
		}
	}
	css, err := fs.ReadFile(staticFS, "static/console.css")
	if err != nil {
		t.Fatal(err)
	}
	rule := regexp.MustCompile(`(?s)\.text, bdi[^{]*\{([^}]*)\}`).FindSubmatch(css)
	if rule == nil || !strings.Contains(string(rule[1]), "overflow-wrap: anywhere") || !strings.Contains(string(rule[1]), "unicode-bidi: isolate") {
		t.Errorf("the stylesheet does not isolate and wrap .text: %q", rule)
	}
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestLanguages: Japanese by default; ?lang=en switches to English, and the choice is kept.
func TestLanguages(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order(testShop, "OK-1", okState())
	page := body(t, h.get("/orders?shop=demo", "alice"), http.StatusOK)
	mustContain(t, page, `<html lang="ja">`, "受注一覧", "与信OK", "与信を実行")
	w := h.get("/orders?shop=demo&lang=en", "alice")
	page = body(t, w, http.StatusOK)
	mustContain(t, page, `<html lang="en">`, "Orders", "Credit OK", "Run credit check", "Cancel credit")
	mustNotContain(t, page, "与信を実行")
	var lang *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == langCookie {
			lang = c
		}
	}
	if lang == nil || lang.Value != "en" {
		t.Fatalf("no language cookie: %v", w.Result().Cookies())
	}
	req := newGet("/orders/demo/OK-1")
	req.AddCookie(lang)
	page = body(t, h.do(req, "alice"), http.StatusOK)
	mustContain(t, page, `<html lang="en">`, "Reveal personal data", "History")
	// The switch links keep the page's filters.
	page = body(t, h.get("/orders?shop=demo&status=ok", "alice"), http.StatusOK)
	mustContain(t, page, `href="/orders?lang=en&amp;shop=demo&amp;status=ok"`)
	// A page shown for a POST switches on the page it came from.
	h.order(testShop, "NG-1", ngState())
	mustContain(t, body(t, h.post("/actions", "alice", url.Values{"action": {"rerun"}, "o": {"demo/NG-1"}}), http.StatusOK), `href="/orders?lang=en"`)
	mustContain(t, body(t, h.post("/orders/demo/NG-1/reveal", "alice", nil), http.StatusOK), `href="/orders/demo/NG-1?lang=en"`)
	// The login page too.
	mustContain(t, body(t, h.get("/login?lang=en", ""), http.StatusOK), "Operator name")
}

// TestMessages: every message has its Japanese and its English, and every key the templates and
// the code use, or build from a status, an action or a carrier, is a message.
func TestMessages(t *testing.T) {
	t.Parallel()
	for key, m := range messages {
		if strings.TrimSpace(m.ja) == "" || strings.TrimSpace(m.en) == "" {
			t.Errorf("message %q lacks a language: %+v", key, m)
		}
		if strings.Count(m.ja, "%") != strings.Count(m.en, "%") {
			t.Errorf("message %q: the languages have different verbs: %q, %q", key, m.ja, m.en)
		}
	}
	used := map[string]bool{}
	patterns := []*regexp.Regexp{
		regexp.MustCompile(`\.[TF] "([a-z][a-z0-9_.-]+)"`),                 // templates
		regexp.MustCompile(`\.[TF]\("([a-z][a-z0-9_.-]*[a-z0-9])"\s*[,)]`), // code
		regexp.MustCompile(`problem\([^"\n]*"([a-z][a-z0-9_.-]+)"`),        // error pages
		regexp.MustCompile(`render\([^"\n]*"[a-z-]+\.html", "([^"]+)"`),    // page titles
		regexp.MustCompile(`messageData\{Text: "([a-z][a-z0-9_.-]+)"`),     // messages
	}
	var files []string
	for _, dir := range []string{".", "templates"} {
		names, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, n := range names {
			if strings.HasSuffix(n, ".html") || (strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go")) {
				files = append(files, n)
			}
		}
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range patterns {
			for _, m := range re.FindAllStringSubmatch(string(raw), -1) {
				used[m[1]] = true
			}
		}
	}
	if len(used) < 100 {
		t.Fatalf("only %d keys found in the templates and code: the patterns no longer read them", len(used))
	}
	// The keys built from values.
	for _, b := range orderstate.Buckets {
		used["badge.credit."+string(b)] = true
	}
	for _, s := range orderstate.ShipmentStatuses[1:] {
		used["badge.shipment."+string(s)] = true
		used["filter.shipment."+string(s)] = true
	}
	used["filter.shipment.none"] = true
	for _, a := range AllActions {
		used["action."+string(a)] = true
	}
	for name := range events.Carriers {
		used["carrier."+name] = true
	}
	for _, m := range []string{"keep", "overwrite", "add"} {
		used["fees.mode."+m] = true
	}
	for _, a := range []letterAction{letterReplay, letterDryRun, letterPurge} {
		used["dlq.action."+string(a)] = true
	}
	for _, f := range []string{"shop", "status", "hold", "shipment", "ordered_from", "ordered_to", "changed_from", "changed_to", "order_id_prefix", "sort", "limit", "cursor"} {
		used["field."+f] = true
	}
	used["badge.invoice.ok"], used["badge.invoice.ng"] = true, true
	var missing, unused []string
	for k := range used {
		if _, ok := messages[k]; !ok {
			missing = append(missing, k)
		}
	}
	for k := range messages {
		if !used[k] {
			unused = append(unused, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(unused)
	if len(missing) > 0 {
		t.Errorf("keys used without a message: %v", missing)
	}
	if len(unused) > 0 {
		t.Errorf("messages no page uses: %v", unused)
	}
}

// TestInteractiveElementsHaveTestIDs: every button, input, select, textarea and link of the
// templates carries an id or a data-testid, for the browser tests.
func TestInteractiveElementsHaveTestIDs(t *testing.T) {
	t.Parallel()
	names, _ := fs.Glob(templateFS, "templates/*.html")
	el := regexp.MustCompile(`<(button|input|select|textarea|a)\b[^>]*>`)
	for _, n := range names {
		raw, _ := fs.ReadFile(templateFS, n)
		for _, m := range el.FindAllString(string(raw), -1) {
			if strings.Contains(m, `type="hidden"`) {
				continue
			}
			if !strings.Contains(m, "data-testid=") && !strings.Contains(m, " id=") && !strings.Contains(m, `href="{{.URL}}"`) &&
				!strings.Contains(m, `href="/dlq/{{`) && !strings.Contains(m, "{{.OrderURL}}") && !strings.Contains(m, "{{$d.OrderURL}}") {
				t.Errorf("%s: %s has neither id nor data-testid", n, m)
			}
		}
	}
}

// TestShopsPage: each shop as loaded, the password masked, the fee table with its mode, and the
// calculator, which applies the worker's own fee logic.
func TestShopsPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	page := body(t, h.get("/shops", "alice"), http.StatusOK)
	mustContain(t, page, "demo00000001", "oth000000001", "加算する", "上書きする", "${DEMO_PASSWORD}", "secrets/other.password",
		`data-testid="shop-password">****`, "未使用", "同梱", "別送")
	mustNotContain(t, page, "s3cret-link-password", "another-secret")
	page = body(t, h.get("/shops?calc=demo&fee=0&billed=2950", "alice"), http.StatusOK)
	mustContain(t, page, `data-testid="calc-result" data-fee="205" data-billed="3155" data-row="1"`, "送信する手数料 205円、請求金額 3,155円")
	page = body(t, h.get("/shops?calc=other&fee=330&billed=10100&lang=en", "alice"), http.StatusOK)
	mustContain(t, page, `data-fee="220" data-billed="9990" data-row="2"`, "Sent to ATODENE: fee 220 yen, billed 9,990 yen")
	page = body(t, h.get("/shops?calc=demo&fee=0&billed=999900", "alice"), http.StatusBadRequest)
	mustContain(t, page, "ATODENEに送れない金額です", "999999")
	body(t, h.get("/shops?calc=demo&fee=x&billed=1", "alice"), http.StatusBadRequest)
}

// TestInvoicesPage: the sheets of the orders with print data, their stylesheet as a file of its
// own, the orders without print data named; the sheets of the list's checked orders too.
func TestInvoicesPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.invoices.known = map[string]bool{"A1": true, "A2": true}
	page := body(t, h.get("/invoices?shop=demo&order=A1&order=A9", "alice"), http.StatusOK)
	mustContain(t, page, `<section class="invoice" data-shop="demo" data-order="A1">`, `href="/invoices/sheets.css?shop=demo"`,
		`href="/static/print.css"`, `id="print-invoices"`, `data-testid="invoices-missing"`, "<bdi>A9</bdi>", "「PDFに保存」")
	page = body(t, h.post("/invoices", "alice", url.Values{"o": {"demo/A1", "demo/A2"}}), http.StatusOK)
	if n := strings.Count(page, `<section class="invoice"`); n != 2 {
		t.Errorf("%d sheets, want 2", n)
	}
	w := h.get("/invoices/sheets.css?shop=demo", "alice")
	if got := body(t, w, http.StatusOK); w.Header().Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(got, "break-after") {
		t.Errorf("sheets.css: %q %q", w.Header().Get("Content-Type"), got)
	}
	css, _ := fs.ReadFile(staticFS, "static/print.css")
	for _, want := range []string{"size: A4", "break-after: page", "@media print"} {
		if !strings.Contains(string(css), want) {
			t.Errorf("print.css lacks %q", want)
		}
	}
	// An order named twice is one sheet, and the count says how many sheets the page shows.
	for path, sheets := range map[string]int{"/invoices?shop=demo&order=A1&order=A1": 1, "/invoices?shop=demo&order=A9&order=A9": 0,
		"/invoices?shop=demo&order=A1&o=demo/A1&o=demo/A2": 2} {
		page := body(t, h.get(path, "alice"), http.StatusOK)
		if n := strings.Count(page, `<section class="invoice"`); n != sheets || !strings.Contains(page, fmt.Sprintf(`data-testid="print-count" data-count="%d"`, n)) {
			t.Errorf("%s: %d sheets, want %d, and a count of as many", path, n, sheets)
		}
	}
	nw := newHarness(t, func(c *Config) { c.Invoices = NotWired{} })
	mustContain(t, body(t, nw.get("/invoices?shop=demo&order=A1", "alice"), http.StatusServiceUnavailable), "not wired")
	body(t, h.get("/invoices?shop=demo", "alice"), http.StatusBadRequest)
}

// TestInvoicesPageSaysWhyNotPrinted: an order whose print data predates its last change is named
// apart from the orders with none, saying so and to fetch it again (the reason, naming the
// outcomes, in its title); a cancelled one is named as cancelled; neither gets a sheet, nor a
// history entry of printing.
func TestInvoicesPageSaysWhyNotPrinted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order(testShop, "C1", ngState())
	h.invoices.known = map[string]bool{"A1": true, "C1": true, "X1": true, "U1": true}
	h.invoices.unprinted = map[string]MissingInvoice{
		"C1": {Stale: true, Reason: "its print data (invoice.ok, sequence 4) predates the order's last change (credit.ok c-1, sequence 7, transaction 1)"},
		"U1": {Stale: true, Unverified: true, Reason: "its print data (invoice.ok, sequence 2) could not be checked"},
		"X1": {Cancelled: true, Reason: "the order was cancelled (credit.cancelled x-1, sequence 8)"},
	}
	page := body(t, h.get("/invoices?shop=demo&order=A1&order=C1&order=X1&order=U1&order=A9", "alice"), http.StatusOK)
	mustContain(t, page, `data-order="A1"`, `data-testid="print-count" data-count="1"`,
		`data-testid="invoices-missing">印刷データのない受注: <bdi>A9</bdi>`,
		`data-testid="invoices-stale">印刷データが受注の最後の変更`, "請求書ダウンロードで取り直してください",
		`<bdi title="its print data (invoice.ok, sequence 4) predates the order&#39;s last change (credit.ok c-1, sequence 7, transaction 1)" data-order="C1">C1</bdi>`,
		`data-testid="invoices-cancelled">印刷データの取得後にキャンセルされたため印刷しない受注: <bdi title="the order was cancelled (credit.cancelled x-1, sequence 8)" data-order="X1">X1</bdi>`,
		`data-testid="invoices-unverified">印刷データが古く、その後の与信結果を確認しきれなかったため印刷しない受注`,
		`<bdi title="its print data (invoice.ok, sequence 2) could not be checked" data-order="U1">U1</bdi>`)
	if strings.Contains(page, `<section class="invoice" data-shop="demo" data-order="U1"`) ||
		strings.Contains(page, `<section class="invoice" data-shop="demo" data-order="C1"`) || strings.Contains(page, `<section class="invoice" data-shop="demo" data-order="X1"`) {
		t.Errorf("a sheet of a stale or cancelled order:\n%s", page)
	}
	if hc, _ := h.store.History(t.Context(), testShop, "C1"); slices.ContainsFunc(hc, func(e orderstate.Entry) bool { return e.Type == InvoiceAuditType }) {
		t.Errorf("C1's history records a printing: %+v", hc)
	}
}

// TestDeadLetters: listed with counts per reason, the body's personal data masked until revealed;
// the reveal is logged without the body and recorded in the history of the order it names.
func TestDeadLetters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order(testShop, "D-1", ngState())
	body1 := `{"specversion":"1.0","id":"e1","source":"mall-importer/rakuten","type":"order.created","data":{"shop_id":"demo","order_id":"D-1",` +
		`"buyer":{"name":"加藤 太郎","phone":"03-1234-5678","address":"東京都渋谷区"},"items":[{"name":"緑茶","unit_price":1200,"quantity":2}],"billed_amount":2950}}`
	h.letters.add(Letter{Seq: 1, Reason: "invalid", Shop: testShop, Order: "D-1", Subject: "orders.created.demo", Error: "buyer.zip: must be a postal code", At: testNow, Body: []byte(body1)})
	h.letters.add(Letter{Seq: 2, Reason: "unknown-shop", Shop: "rakuten-01", Order: "X-1", Subject: "orders.created.rakuten-01", Error: "shop is not configured", At: testNow.Add(time.Minute), Body: []byte("not json \x00")})
	h.letters.add(Letter{Seq: 3, Reason: "invalid", Shop: testShop, Order: "D-2", Subject: "orders.created.demo", Error: "billed_amount", At: testNow.Add(2 * time.Minute), Body: []byte("{}")})
	page := body(t, h.get("/dlq", "alice"), http.StatusOK)
	mustContain(t, page, `data-testid="reason-tab-all" data-count="3"`, `data-testid="reason-tab-invalid" data-count="2"`, `data-testid="reason-tab-unknown-shop" data-count="1"`,
		`<tr data-seq="1"`, "buyer.zip: must be a postal code")
	page = body(t, h.get("/dlq?reason=invalid", "alice"), http.StatusOK)
	if strings.Contains(page, `<tr data-seq="2"`) || !strings.Contains(page, `<tr data-seq="3"`) {
		t.Error("the reason filter does not select")
	}
	body(t, h.get("/dlq?reason=nonsense", "alice"), http.StatusBadRequest)
	body(t, h.get("/dlq?since=yesterday", "alice"), http.StatusBadRequest)

	page = body(t, h.get("/dlq/1", "alice"), http.StatusOK)
	mustContain(t, page, maskMark, "緑茶", `data-revealed="no"`, `id="letter-reveal"`)
	mustNotContain(t, page, "加藤", "03-1234-5678", "渋谷", `id="letter-edit-form"`)
	mustContain(t, body(t, h.get("/dlq/2", "alice"), http.StatusOK), "JSONではない本文、10バイト")

	page = body(t, h.post("/dlq/1/reveal", "alice", nil), http.StatusOK)
	mustContain(t, page, "加藤 太郎", "03-1234-5678", `data-revealed="yes"`, `id="letter-edit-form"`)
	history, _ := h.store.History(t.Context(), testShop, "D-1")
	if last := history[len(history)-1]; last.Type != AuditType || last.Operator != "alice" || !strings.Contains(last.Did, "dead letter 1") {
		t.Errorf("audit entry %+v", last)
	}
	logs := h.logs.FilterMessage("dead letter revealed").All()
	if len(logs) != 1 || logs[0].ContextMap()["operator"] != "alice" || logs[0].ContextMap()["seq"] != uint64(1) {
		t.Errorf("reveal log %+v", logs)
	}
	for _, e := range h.logs.All() {
		for _, pii := range []string{"加藤", "03-1234-5678"} {
			if strings.Contains(e.Message+strings.Join(fieldStrings(e.ContextMap()), " "), pii) {
				t.Errorf("log line %q holds personal data", e.Message)
			}
		}
	}
	// A letter of an order the worker never saw: its history lasts as long as event records.
	if _, err := h.s.cfg.DeadLetters.Get(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	body(t, h.post("/dlq/3/reveal", "alice", nil), http.StatusOK)
	if history, _ := h.store.History(t.Context(), testShop, "D-2"); len(history) != 1 || history[0].Status != orderstate.StatusNone {
		t.Errorf("history of the order without state: %+v", history)
	}
	body(t, h.get("/dlq/99", "alice"), http.StatusServiceUnavailable)
	body(t, h.get("/dlq/x", "alice"), http.StatusNotFound)
}

// TestDeadLetterActions: replay and purge ask for a confirmation with the count; a dry run runs at
// once and changes nothing; edit-then-replay checks the body and asks too.
func TestDeadLetterActions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for seq := uint64(1); seq <= 3; seq++ {
		h.letters.add(Letter{Seq: seq, Reason: "exhausted", Shop: testShop, Order: "E-" + string(rune('0'+seq)), Subject: "orders.created.demo", At: testNow, Body: []byte(`{"data":{}}`)})
	}
	page := body(t, h.post("/dlq/actions", "alice", url.Values{"action": {"dryrun"}, "seq": {"1", "2"}}), http.StatusOK)
	mustContain(t, page, `data-testid="result-row" data-result="published"`, "再投入できます")
	page = body(t, h.post("/dlq/actions", "alice", url.Values{"action": {"replay"}, "seq": {"1", "2"}}), http.StatusOK)
	mustContain(t, page, "「再投入」を2件のデッドレターに実行します。よろしいですか？")
	if calls := h.letters.Calls(); len(calls) != 1 || !strings.HasPrefix(calls[0], "dryrun alice") {
		t.Fatalf("calls before the confirmation: %v", calls)
	}
	page = body(t, h.post("/dlq/actions", "alice", url.Values{"action": {"replay"}, "seq": {"1", "2"}, "confirm": {"yes"}}), http.StatusOK)
	mustContain(t, page, `<tr data-seq="1" data-key="demo/E-1" data-testid="result-row" data-result="published">`, `data-keys="demo/E-1 demo/E-2"`)
	body(t, h.post("/dlq/actions", "alice", url.Values{"action": {"purge"}, "seq": {"3"}, "confirm": {"yes"}}), http.StatusOK)
	if calls := h.letters.Calls(); len(calls) != 3 || !strings.HasPrefix(calls[1], "replay alice") || !strings.HasPrefix(calls[2], "purge alice") {
		t.Errorf("calls %v", calls)
	}
	body(t, h.post("/dlq/actions", "alice", url.Values{"action": {"explode"}, "seq": {"3"}}), http.StatusBadRequest)
	body(t, h.post("/dlq/actions", "alice", url.Values{"action": {"purge"}}), http.StatusBadRequest)

	h.letters.add(Letter{Seq: 7, Reason: "invalid", Shop: testShop, Order: "E-7", Subject: "orders.created.demo", At: testNow, Body: []byte(`{"data":{"x":1}}`)})
	body(t, h.post("/dlq/7/edit", "alice", url.Values{"body": {"{not json"}}), http.StatusBadRequest)
	page = body(t, h.post("/dlq/7/edit", "alice", url.Values{"body": {`{"data":{"x":2}}`}}), http.StatusOK)
	mustContain(t, page, `id="edit-confirm-text"`, `name="confirm" value="yes"`)
	if len(h.letters.edited) != 0 {
		t.Fatal("edited before the confirmation")
	}
	page = body(t, h.post("/dlq/7/edit", "alice", url.Values{"body": {`{"data":{"x":2}}`}, "confirm": {"yes"}}), http.StatusOK)
	mustContain(t, page, `data-testid="edit-outcome" data-published="yes"`)
	if string(h.letters.edited[7]) != `{"data":{"x":2}}` {
		t.Errorf("edited body %q", h.letters.edited[7])
	}
	nw := newHarness(t, func(c *Config) { c.DeadLetters = NotWired{} })
	mustContain(t, body(t, nw.get("/dlq", "alice"), http.StatusServiceUnavailable), "まだ接続されていません")
}

func fieldStrings(m map[string]any) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+fmt.Sprint(v))
	}
	return out
}

// TestDeadLetterEditIsAudited: the edit form shows the letter's body whole, so each of its pages
// is recorded as a reveal is: an entry in the order's history and a log line without the body.
func TestDeadLetterEditIsAudited(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order(testShop, "D-1", ngState())
	orig := `{"data":{"shop_id":"demo","order_id":"D-1","buyer":{"name":"加藤 太郎","phone":"03-1234-5678"}}}`
	h.letters.add(Letter{Seq: 4, Reason: "invalid", Shop: testShop, Order: "D-1", Subject: "orders.created.demo", At: testNow, Body: []byte(orig)})
	before, _ := h.store.History(t.Context(), testShop, "D-1")
	page := body(t, h.post("/dlq/4/edit", "bob", url.Values{"body": {`{"data":{"x":2}}`}}), http.StatusOK)
	mustContain(t, page, "加藤 太郎", `id="edit-confirm-text"`)
	history, _ := h.store.History(t.Context(), testShop, "D-1")
	if len(history) != len(before)+1 {
		t.Fatalf("history: %d entries after the edit form, want %d", len(history), len(before)+1)
	}
	if last := history[len(history)-1]; last.Type != AuditType || last.Operator != "bob" || !strings.Contains(last.Did, "dead letter 4") {
		t.Errorf("audit entry %+v", last)
	}
	logs := h.logs.FilterMessage("dead letter revealed").All()
	if len(logs) != 1 || logs[0].ContextMap()["operator"] != "bob" || logs[0].ContextMap()["seq"] != uint64(4) {
		t.Errorf("reveal log %+v", logs)
	}
	for _, e := range h.logs.All() {
		if s := e.Message + strings.Join(fieldStrings(e.ContextMap()), " "); strings.Contains(s, "加藤") || strings.Contains(s, "03-1234-5678") {
			t.Errorf("log line %q holds personal data", e.Message)
		}
	}
}

// TestDeadLetterMaskAllowList: the masked view shows only the fields known to be harmless,
// whatever the case of the keys, wherever the personal data is, a body inside a JSON text
// included; a body that is not JSON is not shown at all.
func TestDeadLetterMaskAllowList(t *testing.T) {
	t.Parallel()
	pii := []string{"山田", "太郎", "090-1111-2222", "taro@example.jp", "大阪府", "530-0001", "9012345678"}
	for i, b := range []string{
		`{"data":{"Buyer":{"Name":"山田太郎","Phone":"090-1111-2222"},"ORDER_ID":"A-1"}}`,
		`{"data":"{\"buyer\":{\"name\":\"山田太郎\",\"email\":\"taro@example.jp\"},\"order_id\":\"A-1\"}"}`,
		`{"data":{"buyer_name":"山田太郎","tel":"090-1111-2222","mail":"taro@example.jp","order_id":"A-1"}}`,
		`{"data":{"consignee":{"name":"山田太郎","addr":"大阪府","postal":"530-0001"},"order_id":"A-1"}}`,
		`{"data":[{"contact":"山田太郎"},{"order_id":"A-1","phone_number":9012345678}]}`,
		`{"data":{"order_id":"A-1","note":"[\"山田太郎\",\"大阪府\"]"}}`,
		`{"data":{"order_id":"A-1","items":[{"name":"緑茶","unit_price":1200,"quantity":2,"gift_message":"太郎へ"}]}}`,
		`"山田太郎 A-1"`,
	} {
		got, _ := maskBody(langJA, []byte(b))
		for _, p := range pii {
			if strings.Contains(got, p) {
				t.Errorf("body %d: the masked view holds %q:\n%s", i, p, got)
			}
		}
		if i < 7 && (!strings.Contains(got, "A-1") || !strings.Contains(got, maskMark)) {
			t.Errorf("body %d: the masked view lacks the order ID or the mask:\n%s", i, got)
		}
	}
	got, isJSON := maskBody(langJA, []byte(`{"specversion":"1.0","type":"order.created","data":{"shop_id":"demo","billed_amount":2950,"items":[{"name":"緑茶"}],"paid":true}}`))
	mustContain(t, got, `"specversion": "1.0"`, `"order.created"`, `"demo"`, "2950", "緑茶", "true")
	if !isJSON {
		t.Error("a JSON body not read as JSON")
	}
	for _, b := range []string{"name=山田太郎&tel=090-1111-2222", `{"buyer":{"name":"山田太郎"}} trailing 山田`} {
		if got, isJSON := maskBody(langJA, []byte(b)); isJSON || strings.Contains(got, "山田") {
			t.Errorf("body %q: masked view %q (JSON %v)", b, got, isJSON)
		}
	}
}

// TestInvoicesPrintedAreAudited: the sheets show the buyer's name and address, so each printed
// order's history records who printed it, and a log line says which orders (no personal data);
// orders without print data get no entry.
func TestInvoicesPrintedAreAudited(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order(testShop, "A1", ngState())
	h.invoices.known = map[string]bool{"A1": true, "A2": true}
	before, _ := h.store.History(t.Context(), testShop, "A1")
	body(t, h.get("/invoices?shop=demo&order=A1&order=A9", "alice"), http.StatusOK)
	history, _ := h.store.History(t.Context(), testShop, "A1")
	if len(history) != len(before)+1 {
		t.Fatalf("history of A1: %d entries, want %d", len(history), len(before)+1)
	}
	if last := history[len(history)-1]; last.Type != InvoiceAuditType || last.Operator != "alice" || !strings.Contains(last.Did, "printed") ||
		last.Source != SourcePrefix+"alice" {
		t.Errorf("audit entry %+v", last)
	}
	if h9, _ := h.store.History(t.Context(), testShop, "A9"); len(h9) != 0 {
		t.Errorf("an order without print data got history entries: %+v", h9)
	}
	body(t, h.post("/invoices", "bob", url.Values{"o": {"demo/A2"}}), http.StatusOK)
	if h2, _ := h.store.History(t.Context(), testShop, "A2"); len(h2) != 1 || h2[0].Type != InvoiceAuditType || h2[0].Operator != "bob" {
		t.Errorf("history of A2 after a POST: %+v", h2)
	}
	logs := h.logs.FilterMessage("invoices shown for printing").All()
	if len(logs) != 2 || logs[0].ContextMap()["operator"] != "alice" || fmt.Sprint(logs[0].ContextMap()["orders"]) != "[demo/A1]" {
		t.Errorf("print logs %+v", logs)
	}
}

// TestExportOneAtATime: an export holds its orders in memory: an operator runs one at a time (a
// second, while the first runs, is refused with 429); another operator is not held up.
func TestExportOneAtATime(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}, 4), make(chan struct{})
	h := newHarness(t, func(c *Config) {
		c.Export = func(w io.Writer, orders []orderstate.Summary, shiftJIS bool) error {
			entered <- struct{}{}
			<-release
			return CSVExport(w, orders, shiftJIS)
		}
	})
	h.order(testShop, "A1", ngState())
	first := make(chan int, 1)
	go func() {
		req := httptest.NewRequest(http.MethodGet, "/export?shop=demo", nil)
		c, _ := h.cookie("alice")
		req.AddCookie(c)
		w := httptest.NewRecorder()
		h.s.ServeHTTP(w, req)
		first <- w.Code
	}()
	<-entered
	if w := h.get("/export?shop=demo", "alice"); w.Code != http.StatusTooManyRequests {
		t.Errorf("a second export of alice's while the first runs: %d, want 429", w.Code)
	}
	other := make(chan int, 1)
	go func() { other <- h.get("/export?shop=demo", "bob").Code }()
	<-entered
	close(release)
	if code := <-first; code != http.StatusOK {
		t.Errorf("the first export: %d", code)
	}
	if code := <-other; code != http.StatusOK {
		t.Errorf("bob's export: %d", code)
	}
	if w := h.get("/export?shop=demo", "alice"); w.Code != http.StatusOK {
		t.Errorf("an export after the first ended: %d", w.Code)
	}
}

// manyLetters lists n dead letters, every one with a body.
type manyLetters struct {
	NotWired
	n int
}

func (m manyLetters) List(context.Context, LetterFilter) ([]Letter, map[string]int, error) {
	out := make([]Letter, m.n)
	for i := range out {
		out[i] = Letter{Seq: uint64(i + 1), Reason: "invalid", Shop: testShop, Order: fmt.Sprintf("M-%d", i+1), At: testNow, Body: []byte(`{"buyer":"山田"}`)}
	}
	return out, map[string]int{"invalid": m.n}, nil
}

// TestDeadLettersCapped: the list shows the newest MaxLetters letters at most, and says so.
func TestDeadLettersCapped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.DeadLetters = manyLetters{n: MaxLetters + 5} })
	page := body(t, h.get("/dlq", "alice"), http.StatusOK)
	if n := strings.Count(page, `data-testid="letter-row"`); n != MaxLetters {
		t.Errorf("%d rows, want %d", n, MaxLetters)
	}
	mustContain(t, page, `data-testid="letters-capped" data-shown="1000" data-matching="1005"`, "新しい1000件", `<tr data-seq="1005"`)
	mustNotContain(t, page, `<tr data-seq="5"`, "山田")
	h2 := newHarness(t, func(c *Config) { c.DeadLetters = manyLetters{n: 3} })
	mustNotContain(t, body(t, h2.get("/dlq", "alice"), http.StatusOK), `data-testid="letters-capped"`)
}
