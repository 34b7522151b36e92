//go:build !noembedded

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/console"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv/browser"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
	"github.com/atodene-worker/atodene-worker/internal/transport"
	"github.com/atodene-worker/atodene-worker/internal/worker"
)

// The orders the browser test publishes, by what it does with them. The sandbox decides by the
// buyer's e-mail (docs/atodene.md#decisions). The orders acted on have slow… buyers, whose every
// answer the sandbox holds 5 s: an action's result page follows the outcomes published from the
// moment its live stream connects, so the outcome of an action on any other order may come
// before and never show.
var (
	browserCancelled = []string{"BR-CAN-1", "BR-CAN-2", "BR-CAN-3"}
	browserTracked   = []string{"BR-TRK-1", "BR-TRK-2"}
	browserInvoiced  = []string{"BR-INV-1", "BR-INV-2"}
)

const (
	browserNG      = "BR-NG-1"
	browserReview  = "BR-REV-1"
	browserOK      = "BR-OK-1"
	browserHostile = "BR-HOSTILE-1"
	browserLetter  = "BR-DLQ-1"
	// badZip holds a Latin O: the order is dead-lettered as invalid, and corrected by an edit.
	badZip = "15O-0001"
)

// hostileItem is an item name as a mall might send it: markup, a right-to-left override and a
// 500-character word.
var hostileItem = "<script>alert(1)</script>\u202Eexe.live" + strings.Repeat("W", 500)

// browserOrders are the orders the browser test publishes.
func browserOrders() []browserOrder {
	var out []browserOrder
	for _, id := range browserCancelled {
		out = append(out, browserOrder{ID: id, Email: "slow-cancel@example.jp"})
	}
	for _, id := range browserTracked {
		out = append(out, browserOrder{ID: id, Email: "slow-track@example.jp"})
	}
	for _, id := range browserInvoiced {
		out = append(out, browserOrder{ID: id, Email: "slow-invoice@example.jp", Enclosed: true})
	}
	return append(out,
		browserOrder{ID: browserNG, Email: "ng@example.jp"},
		browserOrder{ID: browserReview, Email: "review-ok@example.jp"},
		browserOrder{ID: browserOK, Email: "taro@example.jp"},
		browserOrder{ID: browserHostile, Email: "taro@example.jp", Item: hostileItem},
		browserOrder{ID: browserLetter, Email: "taro@example.jp", Zip: badZip},
	)
}

// TestConsoleInBrowser drives the operators' console of the embedded product in a real headless
// Chromium, as an operator would, while orders are published to its NATS as an importer would:
// the automatic login (and, on a console with an operators file, the login form), the list's
// filters, a bulk cancel followed live, tracking numbers, enclosed invoices printed to PDF, a dead
// letter edited and replayed, the language switch and hostile text. Every request the pages make
// stays on the console.
func TestConsoleInBrowser(t *testing.T) {
	began := time.Now()
	// bcrypt is slow under the race detector: the hash of the operators file is made while the
	// product starts.
	var hash []byte
	var hashErr error
	hashed := make(chan struct{})
	go func() { defer close(hashed); hash, hashErr = console.HashPassword(formPassword) }()
	w := newEmbeddedWorker(t, t.TempDir())
	stdout, stop := startInProcess(t, append(w.args, "-log-level", "warn"))
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stopping the embedded product: %v", err)
		}
	})
	waitReady(t, "http://"+w.http+"/readyz")
	m := consoleURLPattern.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("the banner has no console line:\n%s", stdout.String())
	}
	consoleURL := m[1]

	nc, err := nats.Connect("nats://" + w.nats)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := worker.NewRedis("redis://"+w.redis, transport.RedisFiles{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	store := orderstate.NewStore(rdb, orderstate.Config{Prefix: config.DefaultSettings().RedisPrefix})
	t.Cleanup(store.Close)

	publishBrowserOrders(t, js, browserOrders()...)

	// A second operator, in a browser of their own, uses the console while the first waits for
	// the outcomes of an action on slow… buyers (5 s each).
	p := openConsole(t, consoleURL)
	var q *consolePage
	step(t, "automatic login", func() { autoLogin(p) })
	step(t, "orders decided", func() { awaitBrowserOrders(t, store) })
	step(t, "filters", func() { filterOrders(p) })
	step(t, "bulk cancel; meanwhile a dead letter replayed", func() {
		bulkCancel(p, func() {
			q = openConsole(t, consoleURL)
			replayDeadLetter(q, js, store)
		})
	})
	var form *loginForm
	step(t, "tracking numbers; meanwhile hostile text, the languages and a wrong password", func() {
		enterTracking(p, func() {
			hostileText(q, store)
			switchLanguage(q)
			<-hashed
			if hashErr != nil {
				t.Fatalf("hashing the password: %v", hashErr)
			}
			form = startLoginForm(t, q, js, store, hash)
			form.refuseWrongPassword()
		})
	})
	step(t, "invoices; meanwhile the right password", func() { printInvoices(p, func() { form.logIn() }) })
	t.Logf("the steps took %s from the start", time.Since(began).Round(time.Millisecond))
}

// step runs a step of a test and logs how long it took.
func step(t *testing.T, name string, f func()) {
	t.Helper()
	at := time.Now()
	f()
	t.Logf("%s: %s", name, time.Since(at).Round(time.Millisecond))
}

// autoLogin: the embedded console logs a browser of this machine in as the demo operator, and the
// page says so.
func autoLogin(p *consolePage) {
	t := p.t
	t.Helper()
	p.open("orders", "#orders-table")
	if got := p.text("#demo-notice"); !strings.Contains(got, "パスワードなしで自動的にログイン") {
		t.Errorf("the demo notice reads %q, want it to say the login is automatic", got)
	}
	if got := p.text(`[data-testid="operator"]`); got != consoleOperator {
		t.Errorf("logged in as %q, want %q", got, consoleOperator)
	}
	p.shot("01-auto-login", "")
}

// The operator of the operators file of loginForm's console.
const formOperator, formPassword = "tanaka", "correct horse battery staple"

// loginForm is a second console on the embedded product's NATS and Redis, with an operators file
// and no automatic login, and a page on it.
type loginForm struct{ p *consolePage }

// startLoginForm serves the second console, whose operators file lists formOperator with hash
// (console.HashPassword of formPassword), and opens its order list with p's browser: it leads to
// the login form. (The browser's session of p's console is gone then: both consoles name their
// cookie alike, and the cookies of 127.0.0.1 are shared by every port.)
func startLoginForm(t *testing.T, p *consolePage, js jetstream.JetStream, store *orderstate.Store, hash []byte) *loginForm {
	t.Helper()
	path := filepath.Join(t.TempDir(), "operators")
	if err := os.WriteFile(path, []byte("# operators of the test\n"+formOperator+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	operators, err := console.LoadOperators(path)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, console.MinSessionKey)
	_, _ = rand.Read(key)
	srv, err := console.New(console.Config{Store: store, JetStream: js,
		Auth: console.Auth{Operators: operators, SessionKey: key, InsecureCookie: true}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the second console: %v", err)
		}
	})
	f := &loginForm{p: p.on("http://" + ln.Addr().String() + "/")}
	f.p.open("orders?shop="+DemoShopID, "#login-form")
	if got := eval[string](f.p, "location.pathname"); got != "/login" {
		t.Errorf("without a session the orders page leads to %s, want /login", got)
	}
	return f
}

// refuseWrongPassword: the operator's name with a wrong password is refused.
func (f *loginForm) refuseWrongPassword() {
	p, t := f.p, f.p.t
	t.Helper()
	p.b.Run(chromedp.SetValue(chromedp.CSS("#login-name"), formOperator), chromedp.SetValue(chromedp.CSS("#login-password"), "wrong password"))
	p.click("#login-submit", "#login-error")
	if got := p.text("#login-error"); got != "オペレーター名またはパスワードが違います。" {
		t.Errorf("a wrong password: the page reads %q", got)
	}
	if p.text(`[data-testid="operator"]`) != "" {
		t.Error("a wrong password logged the operator in")
	}
	p.shot("01-login-refused", "")
}

// logIn: the right password opens the page asked for, as the operator, without the demo notice.
func (f *loginForm) logIn() {
	p, t := f.p, f.p.t
	t.Helper()
	p.b.Run(chromedp.SetValue(chromedp.CSS("#login-name"), formOperator), chromedp.SetValue(chromedp.CSS("#login-password"), formPassword))
	p.click("#login-submit", "#orders-table")
	if got := p.text(`[data-testid="operator"]`); got != formOperator {
		t.Errorf("logged in as %q, want %q", got, formOperator)
	}
	if got := eval[string](p, "location.pathname + location.search"); got != "/orders?shop="+DemoShopID {
		t.Errorf("after the login the browser is at %s, want the page it asked for", got)
	}
	if p.text("#demo-notice") != "" {
		t.Error("a console with an operators file shows the demo notice")
	}
	p.shot("01-login-form", "")
}

// awaitBrowserOrders waits until the worker has decided the orders the test acts on.
func awaitBrowserOrders(t *testing.T, store *orderstate.Store) {
	t.Helper()
	want := map[string]orderstate.Status{browserNG: orderstate.StatusNG, browserOK: orderstate.StatusOK}
	for _, id := range slices.Concat(browserCancelled, browserTracked, browserInvoiced) {
		want[id] = orderstate.StatusOK
	}
	awaitStatuses(t, store, want)
}

// awaitStatuses waits until each order of the demo shop has the credit status want gives it.
func awaitStatuses(t *testing.T, store *orderstate.Store, want map[string]orderstate.Status) {
	t.Helper()
	got := map[string]orderstate.Status{}
	decided := wait.Until(30*time.Second, func() bool {
		for id, status := range want {
			st, err := store.Get(context.Background(), DemoShopID, id)
			if got[id] = st.Status; err != nil || st.Status != status {
				return false
			}
		}
		return true
	})
	if !decided {
		t.Fatalf("the orders did not reach their credit status in 30s: got %v, want %v", got, want)
	}
}

// filterOrders: a status tab and the order-ID search show the orders that match, and only them.
// (The test's orders are named BR-…: the shop may hold others, from other publishers.)
func filterOrders(p *consolePage) {
	t := p.t
	t.Helper()
	p.open("orders?shop="+DemoShopID, "#orders-table")
	p.shot("02-orders", "orders")
	p.b.Run(chromedp.SendKeys(chromedp.CSS("#f-prefix"), "BR-"))
	p.click("#filter-apply", "#orders-table")
	p.click("#tab-ng", `#tab-ng[aria-current="page"]`)
	if got := eval[string](p, "location.search"); !strings.Contains(got, "status=ng") || !strings.Contains(got, "prefix=BR-") {
		t.Errorf("the 与信NG tab's address is %s, want the status and the search", got)
	}
	if got := p.rows(); !slices.Equal(got, []string{browserNG}) {
		t.Errorf("the 与信NG tab lists %q, want %s alone", got, browserNG)
	}
	if got := p.text(`tr[data-testid="order-row"] [data-testid="badge-credit"]`); !strings.HasPrefix(got, "与信NG") {
		t.Errorf("on the 与信NG tab, the badge reads %q", got)
	}
	p.shot("02-tab-ng", "")
	p.open("orders?shop="+DemoShopID, "#orders-table")
	p.b.Run(chromedp.SendKeys(chromedp.CSS("#f-prefix"), "BR-TRK"))
	p.click("#filter-apply", "#orders-table")
	if got := eval[string](p, "location.search"); !strings.Contains(got, "prefix=BR-TRK") {
		t.Errorf("the search's address is %s", got)
	}
	got := p.rows()
	slices.Sort(got)
	if !slices.Equal(got, browserTracked) {
		t.Errorf("the search for BR-TRK lists %q, want %q", got, browserTracked)
	}
	p.shot("02-search", "")
}

// pick opens the order list filtered by prefix and checks the boxes of orders, which must be the
// list's rows.
func (p *consolePage) pick(prefix string, orders []string) {
	t := p.t
	t.Helper()
	p.open("orders?shop="+DemoShopID+"&prefix="+prefix, "#orders-table")
	got := p.rows()
	slices.Sort(got)
	if !slices.Equal(got, orders) {
		t.Fatalf("the orders %s… are %q, want %q", prefix, got, orders)
	}
	for _, id := range orders {
		p.check("#pick-" + id)
	}
	p.waitFor(fmt.Sprintf("%d orders checked", len(orders)), fmt.Sprintf(`document.getElementById("bulk-count").textContent === "%d件選択中"`, len(orders)))
}

// confirmAction clicks the bulk button of action on the checked orders, checks that the
// confirmation counts n orders, runs fill on the confirmation page, confirms, and checks that
// each was published. It leaves the browser on the result page, marked to tell a reload.
func (p *consolePage) confirmAction(action string, n int, docs string, fill func()) {
	t := p.t
	t.Helper()
	p.waitFor("the "+action+" button enabled", fmt.Sprintf(`!document.getElementById("bulk-%s").disabled`, action))
	p.click("#bulk-"+action, "#confirm-text")
	if got := p.attr("#confirm-text", "data-count"); got != fmt.Sprint(n) {
		t.Errorf("%s: the confirmation counts %s orders, want %d", action, got, n)
	}
	if got := p.text("#confirm-text"); !strings.Contains(got, fmt.Sprintf("%d件", n)) {
		t.Errorf("%s: the confirmation reads %q, want it to say %d件", action, got, n)
	}
	if fill != nil {
		fill()
	}
	p.shot("confirm-"+action, docs)
	p.click("#confirm-submit", "#action-summary")
	if got := p.attr("#action-summary", "data-published"); got != fmt.Sprint(n) {
		t.Errorf("%s: %s published, want %d: %s", action, got, n, p.text("#results"))
	}
	results := eval[[]string](p, `Array.from(document.querySelectorAll('tr[data-testid="result-row"]')).map(r => r.dataset.result + " " + r.cells[1].textContent.trim())`)
	if len(results) != n || slices.ContainsFunc(results, func(r string) bool { return r != "published 送信済" }) {
		t.Errorf("%s: the results per order are %q, want %d × published 送信済", action, results, n)
	}
	eval[bool](p, `window.notReloaded = true`)
}

// awaitLive waits until every result row of the result page shows a live outcome of class cls,
// the page not reloaded meanwhile, and returns the outcomes' texts.
func (p *consolePage) awaitLive(what, cls string) []string {
	p.t.Helper()
	p.waitFor("the live updates connected", `document.getElementById("live-state").classList.contains("on")`)
	p.waitFor(what+" arriving live", fmt.Sprintf(`window.notReloaded === true && Array.from(document.querySelectorAll('tr[data-testid="result-row"]')).every(r => r.querySelector('.live-outcomes .badge.%s'))`, cls))
	return eval[[]string](p, fmt.Sprintf(`Array.from(document.querySelectorAll('tr[data-testid="result-row"] .live-outcomes .badge.%s')).map(b => b.textContent)`, cls))
}

// bulkCancel: three OK orders checked and cancelled at once; the confirmation counts 3, each is
// published, and their credit.cancelled outcomes arrive on the page without a reload.
func bulkCancel(p *consolePage, meanwhile func()) {
	t := p.t
	t.Helper()
	p.pick("BR-CAN", browserCancelled)
	p.confirmAction("cancel", 3, "bulk-confirm", nil)
	p.shot("03-published", "")
	meanwhile()
	if got := p.awaitLive("credit.cancelled", "b-cancelled"); !slices.Equal(got, []string{"与信キャンセル済", "与信キャンセル済", "与信キャンセル済"}) {
		t.Errorf("the live outcomes read %q", got)
	}
	p.shot("03-cancelled-live", "")
	p.open("orders?shop="+DemoShopID+"&prefix=BR-CAN", "#orders-table")
	badges := eval[[]string](p, `Array.from(document.querySelectorAll('tr[data-testid="order-row"] [data-testid="badge-credit"]')).map(b => b.textContent)`)
	if len(badges) != 3 || slices.ContainsFunc(badges, func(b string) bool { return b != "与信キャンセル済" }) {
		t.Errorf("after the cancel, the list's badges read %q", badges)
	}
}

// enterTracking: a carrier and a tracking number for each of two orders; the shipments are
// reported (伝票番号同期OK).
func enterTracking(p *consolePage, meanwhile func()) {
	t := p.t
	t.Helper()
	numbers := map[string][2]string{"demo/BR-TRK-1": {"yamato", "1234-5678-9012"}, "demo/BR-TRK-2": {"sagawa", "4000-1111-2222"}}
	p.pick("BR-TRK", browserTracked)
	p.confirmAction("track", 2, "", func() {
		keys := eval[[]string](p, `Array.from(document.querySelectorAll('tr[data-testid="target-row"]')).map(r => r.dataset.key)`)
		for i, k := range keys {
			n, ok := numbers[k]
			if !ok {
				t.Fatalf("the confirmation lists %s", k)
			}
			p.b.Run(chromedp.SetValue(chromedp.CSS(fmt.Sprintf("#carrier-%d", i)), n[0]),
				chromedp.SendKeys(chromedp.CSS(fmt.Sprintf("#number-%d", i)), n[1]))
		}
	})
	meanwhile()
	if got := p.awaitLive("shipment.ok", "s-reported"); !slices.Equal(got, []string{"伝票番号同期OK", "伝票番号同期OK"}) {
		t.Errorf("the live outcomes read %q", got)
	}
	p.shot("04-tracking-live", "")
	p.open("orders/demo/BR-TRK-1", "#order-facts")
	if got := p.text(`#order [data-testid="badge-shipment"]`); got != "伝票番号同期OK" {
		t.Errorf("BR-TRK-1's shipment badge reads %q", got)
	}
	if got := p.text(`[data-testid="fact-tracking"]`); !strings.Contains(got, "1234-5678-9012") && !strings.Contains(got, "123456789012") {
		t.Errorf("BR-TRK-1's tracking number reads %q", got)
	}
}

// printInvoices: the print data of two orders with enclosed invoices is fetched, and their invoices
// print as a PDF of two pages, one per invoice; an order's own invoice page prints one.
func printInvoices(p *consolePage, meanwhile func()) {
	t := p.t
	t.Helper()
	p.pick("BR-INV", browserInvoiced)
	p.confirmAction("invoice", 2, "", nil)
	meanwhile()
	if got := p.awaitLive("invoice.ok", "i-ok"); !slices.Equal(got, []string{"請求書データ取得OK", "請求書データ取得OK"}) {
		t.Errorf("the live outcomes read %q", got)
	}
	p.shot("05-invoice-live", "")

	p.pick("BR-INV", browserInvoiced)
	p.click("#bulk-print", "#sheets")
	p.printed(2, "05-invoices", "invoice-print")

	p.open("orders/demo/BR-INV-1", "#print-invoice")
	if got := p.text(`[data-testid="fact-delivery"]`); got != "同梱" {
		t.Errorf("BR-INV-1's invoice delivery reads %q, want 同梱", got)
	}
	p.shot("05-order", "order")
	p.click("#print-invoice", "#sheets")
	if got := p.attr(`[data-testid="print-count"]`, "data-count"); got != "1" {
		t.Errorf("BR-INV-1's invoice page counts %s invoices, want 1", got)
	}
}

// printed checks that the print page shows n invoices, none missing, and prints them on n A4 pages.
func (p *consolePage) printed(n int, name, docs string) {
	t := p.t
	t.Helper()
	p.waitFor("the invoices' stylesheet", `Array.from(document.styleSheets).some(s => s.href && s.href.includes("/invoices/sheets.css"))`)
	if got := p.attr(`[data-testid="print-count"]`, "data-count"); got != fmt.Sprint(n) {
		t.Errorf("the print page counts %s invoices, want %d", got, n)
	}
	if missing := p.text(`[data-testid="invoices-missing"]`); missing != "" {
		t.Errorf("the print page says: %s", missing)
	}
	if e := p.text("#invoices-error"); e != "" {
		t.Errorf("the print page says: %s", e)
	}
	p.shot(name, docs)
	pdf, err := p.b.PrintToPDF()
	if err != nil {
		t.Fatalf("printing to PDF: %v", err)
	}
	if err := os.WriteFile(filepath.Join(browser.ArtifactDir(t), name+".pdf"), pdf, 0o644); err != nil {
		t.Error(err)
	}
	if got := browser.PDFPageCount(pdf); got != n {
		t.Errorf("%d invoices print on %d pages, want %d", n, got, n)
	}
}

// replayDeadLetter: the invalid order's dead letter is listed, revealed, corrected and replayed;
// it leaves the list, and the order is registered.
func replayDeadLetter(p *consolePage, js jetstream.JetStream, store *orderstate.Store) {
	t := p.t
	t.Helper()
	wait.For(t, 30*time.Second, "the invalid order's dead letter", func() bool {
		s, err := js.Stream(context.Background(), "DLQ")
		if err != nil {
			return false
		}
		info, err := s.Info(context.Background())
		return err == nil && info.State.Msgs > 0
	})
	p.open("dlq", "#letters-table")
	letters := eval[[]string](p, `Array.from(document.querySelectorAll('tr[data-testid="letter-row"]')).map(r => r.dataset.seq + " " + r.textContent.replace(/\s+/g, " "))`)
	seq := ""
	for _, l := range letters {
		if strings.Contains(l, browserLetter) && strings.Contains(l, "invalid") {
			seq, _, _ = strings.Cut(l, " ")
		}
	}
	if seq == "" {
		t.Fatalf("no invalid dead letter of %s in the list: %q", browserLetter, letters)
	}
	p.shot("06-dead-letters", "dead-letters")
	p.click(fmt.Sprintf(`a[data-testid="letter-link"][href="/dlq/%s"]`, seq), "#letter-body")
	if body := p.text("#letter-body"); strings.Contains(body, "加藤") || strings.Contains(body, badZip) {
		t.Errorf("the letter's body shows personal data before it is revealed:\n%s", body)
	}
	p.click("#letter-reveal", "#letter-edit-body")
	edited := eval[bool](p, fmt.Sprintf(`(() => { const ta = document.getElementById("letter-edit-body"); const v = ta.value;
		ta.value = v.replace(%q, "150-0001"); return ta.value !== v; })()`, badZip))
	if !edited {
		t.Fatalf("the letter's body holds no %s:\n%s", badZip, p.text("#letter-edit-body"))
	}
	p.click("#letter-edit-submit", "#edit-confirm-text")
	p.click("#letter-edit-submit", "#edit-outcome")
	if got := p.attr("#edit-outcome", "data-published"); got != "yes" {
		t.Fatalf("the edit was not published: %s", p.text("#edit-outcome"))
	}
	p.shot("06-edit-published", "")
	p.open("dlq", "#letters-table")
	if n := eval[int](p, fmt.Sprintf(`document.querySelectorAll('tr[data-testid="letter-row"][data-seq="%s"]').length`, seq)); n != 0 {
		t.Errorf("dead letter %s is still listed after its replay", seq)
	}
	p.shot("06-dead-letters-after", "")
	var status orderstate.Status
	if !wait.Until(pageWait, func() bool {
		st, err := store.Get(context.Background(), DemoShopID, browserLetter)
		status = st.Status
		return err == nil && st.Status == orderstate.StatusOK
	}) {
		t.Errorf("the corrected order %s is %q, want ok", browserLetter, status)
	}
}

// switchLanguage: English and back to Japanese; the choice holds on the next page.
func switchLanguage(p *consolePage) {
	t := p.t
	t.Helper()
	p.open("orders?shop="+DemoShopID, "#orders-table")
	p.click("#lang-en", `html[lang="en"] #orders-table`)
	for sel, want := range map[string]string{"h1": "Orders", "#nav-dlq": "Dead letters", "#bulk-cancel": "Cancel credit"} {
		if got := p.text(sel); got != want {
			t.Errorf("in English, %s reads %q, want %q", sel, got, want)
		}
	}
	if got := p.text("#tab-ok"); !strings.HasPrefix(got, "Credit OK") {
		t.Errorf("in English, the OK tab reads %q", got)
	}
	p.shot("07-english", "")
	p.open("shops", `html[lang="en"] [data-testid="shop"]`)
	if got := p.text("h1"); got != "Shops" {
		t.Errorf("the next page, in English, is titled %q, want Shops", got)
	}
	p.click("#lang-ja", `html[lang="ja"] [data-testid="shop"]`)
	if got := p.text("h1"); got != "ショップ設定" {
		t.Errorf("back in Japanese, the shops page is titled %q", got)
	}
	// The fee calculator: an order billed 2,950 yen is sent with the demo shop's fee of 205 added.
	p.b.Run(chromedp.SendKeys(chromedp.CSS("#calc-billed-"+DemoShopID), "2950"))
	p.click("#calc-submit-"+DemoShopID, `[data-testid="calc-result"]`)
	if fee, billed := p.attr(`[data-testid="calc-result"]`, "data-fee"), p.attr(`[data-testid="calc-result"]`, "data-billed"); fee != "205" || billed != "3155" {
		t.Errorf("the calculator sends a fee of %s and %s billed, want 205 and 3155", fee, billed)
	}
	p.shot("07-shops", "shops")
	p.open("orders?shop="+DemoShopID, "#orders-table")
	if got, want := p.text("#bulk-cancel"), "与信キャンセル"; got != want {
		t.Errorf("in Japanese again, the cancel button reads %q, want %q", got, want)
	}
}

// hostileText: an item name with markup, a right-to-left override and a 500-character word shows
// as text on the order's page, opens no dialog, runs nothing and does not widen the page.
func hostileText(p *consolePage, store *orderstate.Store) {
	t := p.t
	t.Helper()
	awaitStatuses(t, store, map[string]orderstate.Status{browserHostile: orderstate.StatusOK})
	p.open("orders/demo/"+browserHostile, "#reveal-pii")
	const width = `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`
	before := eval[[]int](p, width)
	p.click("#reveal-pii", `[data-testid="pii-item"]`)
	item := p.text(`[data-testid="pii-item"] td`)
	for _, want := range []string{"<script>alert(1)</script>", "[U+202E]exe.live", strings.Repeat("W", 100)} {
		if !strings.Contains(item, want) {
			t.Errorf("the item's name reads %q, want it to show %q", item, want)
		}
	}
	if strings.ContainsRune(item, '\u202E') {
		t.Error("the right-to-left override is in the page, not shown as [U+202E]")
	}
	if n := eval[int](p, `document.querySelectorAll("script").length`); n != 1 {
		t.Errorf("the page holds %d script elements, want the console's one", n)
	}
	after := eval[[]int](p, width)
	if after[0] > after[1] || after[0] != before[0] {
		t.Errorf("the page is %d wide in a window of %d after the reveal (%d before): the item's name widens it", after[0], after[1], before[0])
	}
	if cell := eval[float64](p, `document.querySelector('[data-testid="pii-item"] td').getBoundingClientRect().right`); cell > float64(after[1]) {
		t.Errorf("the item's cell ends at %.0f px, beyond the window's %d", cell, after[1])
	}
	if n := p.tab.dialogs.Load(); n != 0 {
		t.Errorf("%d JavaScript dialogs opened", n)
	}
	p.shot("08-hostile", "")
	// The check sees a dialog: one the test opens itself.
	eval[bool](p, `setTimeout(() => alert("probe"), 0) > 0`)
	wait.For(t, pageWait, "the test's own dialog to be seen", func() bool { return p.tab.dialogs.Load() == 1 })
}
