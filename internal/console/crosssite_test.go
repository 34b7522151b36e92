package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/atodene-worker/atodene-worker/internal/testenv/browser"
)

// Other sites' links and images: a link of another site followed opens the page as the operator
// (the session cookie is SameSite=Lax), and nothing another site's page makes the browser ask for
// replaces the operator's session cookie. The login page used to set the login form's session
// under the session cookie's name: a link followed while the cookie was SameSite=Strict (withheld
// on a cross-site navigation, so the console sent the browser to /login), or a sibling
// subdomain's <img> of a page, logged the operator out of every tab.

// crossSiteNav is a top-level navigation from another site's page, with the Fetch Metadata
// Chromium sends.
func crossSiteNav(target string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Sec-Fetch-Dest", "document")
	req.Header.Set("Sec-Fetch-User", "?1")
	return req
}

// follow serves req as the browser would, following the console's redirects with the same
// headers (and cookie, if any), and returns every response of the chain.
func follow(h *harness, req *http.Request) []*httptest.ResponseRecorder {
	h.t.Helper()
	var chain []*httptest.ResponseRecorder
	for hops := 0; hops < 5; hops++ {
		w := h.do(req, "")
		chain = append(chain, w)
		if w.Code != http.StatusSeeOther {
			break
		}
		next := httptest.NewRequest(http.MethodGet, w.Header().Get("Location"), nil)
		next.Header = req.Header.Clone()
		req = next
	}
	return chain
}

// TestLinkOfAnotherSiteKeepsTheSession: a link of another site to an order, followed by a
// logged-in operator, opens the order (the Lax cookie is sent); followed without the cookie (a
// browser that withholds it), it goes to the login page, which sets no cookie of the session's
// name: the operator's session still opens the console afterwards.
func TestLinkOfAnotherSiteKeepsTheSession(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order(testShop, "A1", okState())
	alice, _ := h.cookie("alice")

	req := crossSiteNav("/orders/demo/A1")
	req.AddCookie(alice)
	w := h.do(req, "")
	page := body(t, w, http.StatusOK)
	mustContain(t, page, `data-testid="operator"><bdi class="text">alice</bdi>`)

	chain := follow(h, crossSiteNav("/orders/demo/A1"))
	last := chain[len(chain)-1]
	if last.Code != http.StatusOK || len(chain) != 2 || chain[0].Header().Get("Location") != "/login?next=%2Forders%2Fdemo%2FA1" {
		t.Fatalf("the link without the cookie: %d after %d responses, want the login page (and back to the order)", last.Code, len(chain))
	}
	form := false
	for _, w := range chain {
		for _, c := range w.Result().Cookies() {
			switch c.Name {
			case h.s.cookieName():
				t.Errorf("a response to the link followed without the cookie (%d) sets the session cookie %q: it replaces the operator's session", w.Code, c.Value)
			case h.s.loginCookieName():
				form = true
			}
		}
	}
	if !form {
		t.Error("the login page set no login form cookie")
	}
	if !opens(h, alice) {
		t.Error("alice's session no longer opens the order list")
	}
}

// TestLinkOfAnotherSiteKeepsTheSessionInBrowser: the same in Chromium. alice logs in on the
// console (127.0.0.1), opens a page of another site (localhost) and clicks its link to an order:
// the order opens; then she types the console's address: she is still logged in.
func TestLinkOfAnotherSiteKeepsTheSessionInBrowser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Auth.InsecureCookie, c.Now = true, time.Now })
	h.order(testShop, "A1", okState())
	console := httptest.NewServer(h.s)
	t.Cleanup(console.Close)
	consoleURL, _ := url.Parse(console.URL)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>ticket</title><a id="go" href="http://127.0.0.1:%s/orders/demo/A1">order A1</a>`, consoleURL.Port())
	}))
	t.Cleanup(other.Close)
	otherURL, _ := url.Parse(other.URL)
	b := browser.New(t)
	b.Run(
		chromedp.Navigate(console.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS("#login-name"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#login-password"), testPassword),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="operator"]`)),
	)
	b.Run(
		chromedp.Navigate("http://localhost:"+otherURL.Port()+"/"),
		chromedp.Click(chromedp.CSS("#go")),
		chromedp.WaitReady(chromedp.CSS("h1")),
	)
	if p := browser.Get(b, chromedp.Evaluate[string](`location.pathname`)); p != "/orders/demo/A1" {
		t.Errorf("another site's link to the order, clicked by a logged-in operator, lands on %s; want the order", p)
	}
	b.Run(chromedp.Navigate(console.URL+"/orders?shop=demo"), chromedp.WaitReady(chromedp.CSS("h1")))
	if p := browser.Get(b, chromedp.Evaluate[string](`location.pathname`)); p != "/orders" {
		t.Errorf("after clicking another site's link, the console's own address lands on %s: the operator was logged out; want the order list", p)
	}
}

// TestSiblingSubdomainImageKeepsTheSession: a page of a sibling subdomain (same site, e.g.
// shop.example.jp beside console.example.jp) embeds <img src="https://console…/orders">. The
// browser sends the cookie; the console treats the request as having no session and sets no
// cookie at all, down the redirect to the login page (which refuses it with 401): the operator
// stays logged in.
func TestSiblingSubdomainImageKeepsTheSession(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	alice, _ := h.cookie("alice")
	img := httptest.NewRequest(http.MethodGet, "/orders?shop=demo", nil)
	img.Header.Set("Sec-Fetch-Site", "same-site")
	img.Header.Set("Sec-Fetch-Mode", "no-cors")
	img.Header.Set("Sec-Fetch-Dest", "image")
	img.AddCookie(alice)
	chain := follow(h, img)
	if last := chain[len(chain)-1]; last.Code != http.StatusUnauthorized {
		t.Errorf("the <img>, redirects followed: %d, want 401", last.Code)
	}
	for _, w := range chain {
		if c := w.Result().Cookies(); len(c) != 0 {
			t.Errorf("a response (%d) to another page's <img> sets cookies: %v", w.Code, c)
		}
	}
	if !opens(h, alice) {
		t.Error("alice's session no longer opens the order list")
	}
}
