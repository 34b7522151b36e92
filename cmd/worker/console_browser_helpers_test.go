//go:build !noembedded

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/testenv/browser"
)

// envDocsScreenshots names a directory where the browser test of the console writes the
// screenshots docs/console.md shows (a relative one is taken from the module's root).
const envDocsScreenshots = "ATODENE_DOCS_SCREENSHOTS"

// pageWait bounds each wait for what a page shows: a live outcome, a page after a click.
const pageWait = 15 * time.Second

// consoleURLPattern reads the console's address from the embedded mode's banner.
var consoleURLPattern = regexp.MustCompile(`operators' console on (http://127\.0\.0\.1:\d+/)`)

// consolePage drives the browser tab of a test on a console: navigation relative to the
// console's address, bounded waits on the page's DOM that fail the test with what was awaited, and
// screenshots for the artifacts and, when envDocsScreenshots is set, for the documentation.
type consolePage struct {
	t    *testing.T
	b    *browser.Browser
	base string // the console's address, ending in /
	docs string // where the documentation's screenshots go; "" for none
	tab  *tabState
}

// tabState is what the pages of one browser share: the consoles it may request from, and the
// JavaScript dialogs it opened.
type tabState struct {
	consoles []string
	dialogs  atomic.Int32
}

// openConsole starts a browser for the test on the console at base. When the test ends, however
// far it went, it checks that the browser requested nothing from other hosts than its consoles.
func openConsole(t *testing.T, base string) *consolePage {
	t.Helper()
	b := browser.New(t)
	p := &consolePage{t: t, b: b, base: base, docs: docsScreenshotDir(t), tab: &tabState{consoles: []string{base}}}
	t.Cleanup(func() {
		var foreign []string
		for _, u := range b.ForeignRequests(base) {
			if !slices.ContainsFunc(p.tab.consoles, func(c string) bool { return strings.HasPrefix(u, c) }) {
				foreign = append(foreign, u)
			}
		}
		if len(foreign) > 0 {
			t.Errorf("requests to other hosts than the consoles %q: %q", p.tab.consoles, foreign)
		}
	})
	// A JavaScript dialog (alert, confirm) counts, and is dismissed so that the page goes on.
	err := chromedp.Listen(b.Context(), func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			p.tab.dialogs.Add(1)
			go func() {
				ctx, cancel := context.WithTimeout(b.Context(), 5*time.Second)
				defer cancel()
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			}()
		}
	})
	if err != nil {
		t.Fatalf("listening for dialogs: %v", err)
	}
	return p
}

// on returns the page of the same browser on another console, at base.
func (p *consolePage) on(base string) *consolePage {
	p.tab.consoles = append(p.tab.consoles, base)
	return &consolePage{t: p.t, b: p.b, base: base, docs: p.docs, tab: p.tab}
}

// open navigates to path (relative to the console's address) and waits until sel is visible.
func (p *consolePage) open(path, sel string) {
	p.t.Helper()
	p.b.Run(chromedp.Navigate(p.base + strings.TrimPrefix(path, "/")))
	p.visible(sel)
}

// visible waits until sel is visible.
func (p *consolePage) visible(sel string) {
	p.t.Helper()
	p.waitFor(sel+" visible", fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.getClientRects().length > 0; })()`, sel))
}

// click clicks sel, which loads a page (a link, a form's button), waits until the page has loaded,
// then until next (an element of it) is visible.
func (p *consolePage) click(sel, next string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.b.Context(), pageWait)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		p.fail(fmt.Sprintf("the page %s leads to", sel), err)
	}
	p.visible(next)
}

// check clicks the check box sel (no page loads).
func (p *consolePage) check(sel string) {
	p.t.Helper()
	p.b.Run(chromedp.Click(chromedp.CSS(sel)))
}

// waitFor polls the JavaScript expression expr in the page until it is truthy, at most pageWait;
// it fails the test, with a screenshot and the page's text, if it is not. A poll that a page load
// interrupts starts again on the new page.
func (p *consolePage) waitFor(what, expr string) {
	p.t.Helper()
	deadline := time.Now().Add(pageWait)
	var err error
	for left := pageWait; left > 0; left = time.Until(deadline) {
		ctx, cancel := context.WithTimeout(p.b.Context(), left+2*time.Second)
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(left)))
		if err == nil || errors.Is(err, chromedp.ErrPollingTimeout) || p.b.Context().Err() != nil {
			cancel()
			break
		}
		// A page load destroyed the document the poll ran in: wait for the next one.
		_, _ = chromedp.Run(ctx, chromedp.WaitReady(chromedp.CSS("body")))
		cancel()
	}
	if err == nil {
		return
	}
	if errors.Is(err, chromedp.ErrPollingTimeout) {
		err = fmt.Errorf("not within %s", pageWait)
	}
	p.fail(what, err)
}

// fail fails the test for what did not happen, with the page's address, text and screenshot.
func (p *consolePage) fail(what string, err error) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.b.Context(), 5*time.Second)
	defer cancel()
	where, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ""`))
	shot := "none"
	if png, serr := chromedp.Run(ctx, chromedp.FullScreenshot(100)); serr == nil {
		shot = filepath.Join(browser.ArtifactDir(p.t), fmt.Sprintf("failed-%d.png", time.Now().UnixNano()))
		_ = os.WriteFile(shot, png, 0o644)
	}
	p.t.Fatalf("waiting for %s at %s: %v (screenshot %s); the page reads:\n%s", what, where, err, shot, text)
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](p *consolePage, expr string) T {
	p.t.Helper()
	return browser.Get(p.b, chromedp.Evaluate[T](expr))
}

// text returns the text of sel ("" if there is none).
func (p *consolePage) text(sel string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.textContent.trim() : ""; })()`, sel))
}

// attr returns the attribute name of sel ("" if there is none).
func (p *consolePage) attr(sel, name string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? (e.getAttribute(%q) || "") : ""; })()`, sel, name))
}

// rows returns the order IDs of the order list's rows, in order.
func (p *consolePage) rows() []string {
	p.t.Helper()
	return eval[[]string](p, `Array.from(document.querySelectorAll('tr[data-testid="order-row"]')).map(r => r.dataset.order)`)
}

// shot saves a full-page screenshot among the test's artifacts and, for the documentation
// (docs != ""), the window as docs/img/console-<docs>.png where envDocsScreenshots is set.
func (p *consolePage) shot(name, docs string) {
	p.t.Helper()
	p.b.Screenshot(name)
	if docs == "" || p.docs == "" {
		return
	}
	raw := browser.Get(p.b, chromedp.CaptureScreenshot())
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		p.t.Fatal(err)
	}
	path := filepath.Join(p.docs, "console-"+docs+".png")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("documentation screenshot %s (%d KiB)", path, buf.Len()>>10)
}

// docsScreenshotDir returns the directory envDocsScreenshots names, created, a relative one taken
// from the module's root; "" where the variable is not set.
func docsScreenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(envDocsScreenshots)
	if dir == "" {
		return ""
	}
	if !filepath.IsAbs(dir) {
		root, err := moduleRoot()
		if err != nil {
			t.Fatalf("%s=%s: %v", envDocsScreenshots, dir, err)
		}
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("%s: %v", envDocsScreenshots, err)
	}
	return dir
}

// moduleRoot returns the directory of go.mod, above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// browserOrder is an order.created of the demo shop as an importer publishes it: a buyer whose
// e-mail picks the sandbox's decision (docs/atodene.md#decisions), one item, billed 2,950 yen.
type browserOrder struct {
	ID, Email string
	Enclosed  bool   // the invoice is enclosed in the parcel (同梱), not mailed
	Item      string // the item's name; default 緑茶
	Zip       string // the buyer's postal code; default 150-0001
}

// data is the order's event data.
func (o browserOrder) data() map[string]any {
	item, zip := o.Item, o.Zip
	if item == "" {
		item = "緑茶"
	}
	if zip == "" {
		zip = "150-0001"
	}
	d := map[string]any{
		"shop_id": DemoShopID, "order_id": o.ID, "ordered_at": "2026-11-26T10:14:03+09:00",
		"buyer": map[string]any{"name": "加藤 太郎", "name_kana": "カトウ タロウ", "zip": zip,
			"address": "東京都渋谷区神宮前1-1-1", "phone": "03-1234-5678", "email": o.Email},
		"items":        []any{map[string]any{"name": item, "unit_price": 1200, "quantity": 2}},
		"shipping_fee": 550, "billed_amount": 2950,
	}
	if o.Enclosed {
		d["invoice_delivery"] = "enclosed"
	}
	return d
}

// publishBrowserOrders publishes the orders' order.created events to orders.created.demo.
func publishBrowserOrders(t *testing.T, js jetstream.JetStream, orders ...browserOrder) {
	t.Helper()
	for _, o := range orders {
		data, err := json.Marshal(o.data())
		if err != nil {
			t.Fatal(err)
		}
		id := "browser-" + o.ID
		body, err := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: id, Source: "test/importer", Type: events.TypeOrderCreated, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(context.Background(), events.Subject(events.TypeOrderCreated, DemoShopID), body, jetstream.WithMsgID(id)); err != nil {
			t.Fatalf("publishing %s: %v", o.ID, err)
		}
	}
}
