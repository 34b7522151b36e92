package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/atodene-worker/atodene-worker/internal/testenv/browser"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// loginForm fetches the login page as a client at remote and returns its form cookie and token.
func loginForm(t *testing.T, h *harness, remote string) (*http.Cookie, string) {
	t.Helper()
	req := newGet("/login")
	req.RemoteAddr = remote
	w := h.do(req, "")
	for _, c := range w.Result().Cookies() {
		if c.Name == h.s.loginCookieName() {
			ss, ok := h.s.decodeSession(c.Value)
			if !ok {
				t.Fatal("the login page's cookie does not decode")
			}
			return c, h.s.csrfToken(ss)
		}
	}
	t.Fatalf("the login page set no cookie: %d", w.Code)
	return nil, ""
}

// tryLogin posts the login form from remote, through the proxies of forwardedFor if any.
func tryLogin(h *harness, remote, forwardedFor string, form *http.Cookie, csrf, name, password string) *httptest.ResponseRecorder {
	req := newFormRequest("/login", url.Values{"csrf": {csrf}, "name": {name}, "password": {password}})
	req.RemoteAddr = remote
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	req.AddCookie(form)
	return h.do(req, "")
}

// sessionCookie is the session cookie a response set.
func sessionCookie(t *testing.T, h *harness, w *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == h.s.cookieName() {
			return c
		}
	}
	t.Fatalf("no session cookie (%d)", w.Code)
	return nil
}

// opens reports whether cookie opens the order list of h.
func opens(h *harness, cookie *http.Cookie) bool {
	req := newGet("/orders?shop=demo")
	req.AddCookie(cookie)
	return h.do(req, "").Code == http.StatusOK
}

// TestSessionEndsWithItsOperatorsLine: an operator removed from the operators file, or given
// another password, and the console restarted with the same session key, is logged out: their
// session opens no page and acts on nothing (it used to, until -session-ttl). The others' stand.
func TestSessionEndsWithItsOperatorsLine(t *testing.T) {
	t.Parallel()
	before := newHarness(t)
	before.order(testShop, "NG-1", ngState())
	remote := "198.51.100.20:5000"
	form, csrf := loginForm(t, before, remote)
	bob := sessionCookie(t, before, tryLogin(before, remote, "", form, csrf, "bob", testPassword))
	alice := sessionCookie(t, before, tryLogin(before, remote, "", form, csrf, "alice", testPassword))
	bobSession, _ := before.s.decodeSession(bob.Value)

	newHash, _ := bcrypt.GenerateFromPassword([]byte("another password"), bcrypt.MinCost)
	for name, operators := range map[string]map[string][]byte{
		"bob removed":            {"alice": before.cfg.Auth.Operators["alice"]},
		"bob's password changed": {"alice": before.cfg.Auth.Operators["alice"], "bob": newHash},
	} {
		after := newHarness(t, func(c *Config) { c.Auth.Operators, c.Store, c.Now = operators, before.store, before.clock.Now })
		if opens(after, bob) {
			t.Errorf("%s, the console restarted: bob's session still opens /orders", name)
		}
		if !opens(after, alice) {
			t.Errorf("%s, the console restarted: alice's session no longer opens /orders", name)
		}
		req := newFormRequest("/actions", url.Values{"action": {"cancel"}, "o": {"demo/NG-1"}, "confirm": {"yes"}, "csrf": {after.s.csrfToken(bobSession)}})
		req.AddCookie(bob)
		after.do(req, "")
		if calls := after.actions.Calls(); len(calls) != 0 {
			t.Errorf("%s: bob's old session acted: %+v", name, calls)
		}
	}
}

// TestShorterSessionTTLAppliesToEarlierSessions: a session lasts -session-ttl after its login as
// the console reckons it now: lowered from 12h to 1h after an incident, a login of 3 hours ago
// has ended (it lasted the 12 hours of the old setting).
func TestShorterSessionTTLAppliesToEarlierSessions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Auth.SessionTTL = 12 * time.Hour })
	remote := "198.51.100.21:5000"
	form, csrf := loginForm(t, h, remote)
	cookie := sessionCookie(t, h, tryLogin(h, remote, "", form, csrf, "alice", testPassword))
	h.clock.Advance(3 * time.Hour)
	if !opens(h, cookie) {
		t.Fatal("a session of 3 hours under -session-ttl 12h has ended")
	}
	short := newHarness(t, func(c *Config) { c.Auth.SessionTTL, c.Now = time.Hour, h.clock.Now })
	if opens(short, cookie) {
		t.Error("a login of 3 hours ago still opens /orders under -session-ttl 1h")
	}
}

// TestSessionOutlivesNotItsSource: a session made by the trusted header is none once the console
// runs without it, and one of the automatic login is none for another operator's automatic login
// or without one: each stands only while what made it names its operator.
func TestSessionOutlivesNotItsSource(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	at := h.clock.Now().Unix()
	for _, ss := range []session{
		{ID: "h", Operator: "alice", Via: viaHeader, Issued: at},
		{ID: "a", Operator: "demo", Via: viaAuto, Issued: at},
		{ID: "p", Operator: "alice", Via: viaPassword, Issued: at}, // no mark of alice's hash
		{ID: "x", Operator: "alice", Via: "sso", Issued: at},
	} {
		if _, ok := h.s.decodeSession(h.s.encodeSession(ss)); ok {
			t.Errorf("a %s session accepted by a console of passwords", ss.Via)
		}
	}
	auto := newHarness(t, func(c *Config) { c.Auth.Operators, c.Auth.AutoLogin, c.Auth.InsecureCookie = nil, "guest", true })
	if _, ok := auto.s.decodeSession(auto.s.encodeSession(session{ID: "a", Operator: "demo", Via: viaAuto, Issued: at})); ok {
		t.Error("an automatic session of demo accepted where the automatic login is guest")
	}
	if _, ok := auto.s.decodeSession(auto.s.encodeSession(session{ID: "a", Operator: "guest", Via: viaAuto, Issued: at})); !ok {
		t.Error("an automatic session of guest refused where the automatic login is guest")
	}
}

// TestLoginBehindALoadBalancer: behind a load balancer on another host, every operator's login
// comes from its address. Without -trusted-proxies, an attacker's 5 wrong logins with made-up
// names lock every operator out (the documented reason to set it); with it, the throttle counts
// the client X-Forwarded-For names, so alice logs in. A client that is no proxy cannot choose
// its address with the header.
func TestLoginBehindALoadBalancer(t *testing.T) {
	t.Parallel()
	lb := "10.0.0.5:40000"
	for _, trusted := range []bool{false, true} {
		h := newHarness(t, func(c *Config) {
			if trusted {
				c.Auth.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
			}
		})
		form, csrf := loginForm(t, h, lb)
		for i := range 5 {
			tryLogin(h, lb, "198.51.100.66", form, csrf, fmt.Sprintf("nobody%d", i), "x")
		}
		want := map[bool]int{false: http.StatusTooManyRequests, true: http.StatusSeeOther}[trusted]
		if w := tryLogin(h, lb, "192.0.2.10, 10.0.0.7", form, csrf, "alice", testPassword); w.Code != want {
			t.Errorf("trusted proxies %v: alice after an attacker's 5 made-up names: %d, want %d", trusted, w.Code, want)
		}
	}
	h := newHarness(t, func(c *Config) { c.Auth.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })
	attacker := "203.0.113.66:4444"
	form, csrf := loginForm(t, h, attacker)
	for i := range 6 {
		w := tryLogin(h, attacker, fmt.Sprintf("192.0.2.%d", i+1), form, csrf, fmt.Sprintf("nobody%d", i), "x")
		if i == 5 && w.Code != http.StatusTooManyRequests {
			t.Errorf("a 6th attempt of a client that is no proxy, another X-Forwarded-For each time: %d, want 429", w.Code)
		}
	}
}

// TestLoginLogsTheClient: behind a reverse proxy on the same host, a login's log line names the
// client the proxy's X-Forwarded-For gives (the address the throttle counts), and the proxy as the
// connection's peer: failed, refused for too many attempts, and successful alike. Every one used
// to name the peer only, 127.0.0.1, so the log of a guessing run named no client. A client
// reached directly is logged with its own address; a proxy that names no client, as unknown.
func TestLoginLogsTheClient(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	proxy, client := "127.0.0.1:38000", "198.51.100.77"
	form, csrf := loginForm(t, h, proxy)
	for range loginBurst {
		if w := tryLogin(h, proxy, client, form, csrf, "alice", "wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("a wrong password: %d", w.Code)
		}
	}
	if w := tryLogin(h, proxy, client, form, csrf, "alice", "wrong"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("an attempt beyond the limit: %d", w.Code)
	}
	if w := tryLogin(h, proxy, "198.51.100.78", form, csrf, "bob", testPassword); w.Code != http.StatusSeeOther {
		t.Fatalf("bob's login: %d", w.Code)
	}
	if w := tryLogin(h, "203.0.113.5:4000", "", form, csrf, "carol", "x"); w.Code != http.StatusUnauthorized {
		t.Fatalf("a direct client's login: %d", w.Code)
	}
	if w := tryLogin(h, proxy, "", form, csrf, "dave", "x"); w.Code != http.StatusUnauthorized {
		t.Fatalf("a login through a proxy that names no client: %d", w.Code)
	}
	for _, c := range []struct {
		msg            string
		n              int
		client, remote string
	}{
		{"login failed", loginBurst, client, proxy},
		{"login refused: too many attempts", 1, client, proxy},
		{"operator logged in", 1, "198.51.100.78", proxy},
	} {
		logs := h.logs.FilterMessage(c.msg).All()
		if len(logs) < c.n {
			t.Fatalf("%q: %d log lines, want %d", c.msg, len(logs), c.n)
		}
		for _, e := range logs[:c.n] {
			if f := e.ContextMap(); f["client"] != c.client || f["remote"] != c.remote {
				t.Errorf("%q logged with %v: want client %s and remote %s", c.msg, f, c.client, c.remote)
			}
		}
	}
	failed := h.logs.FilterMessage("login failed").All()
	for i, want := range []string{"203.0.113.5", "unknown"} {
		if f := failed[loginBurst+i].ContextMap(); f["client"] != want {
			t.Errorf("failed login %d logged with %v: want client %s", loginBurst+i+1, f, want)
		}
	}
}

// TestLoginThrottleSurvivesAFloodOfNames: an address out of attempts that sends 10,001 more with
// made-up names (each refused, no bcrypt) does not get its budget back: alice's password is not
// checked before the next attempt is due; names that cannot be an operator's (longer than 64
// bytes) are never remembered; and with every limiter remembered still counting, a new client
// waits until some are full again rather than being given a fresh budget by forgetting them.
func TestLoginThrottleSurvivesAFloodOfNames(t *testing.T) {
	t.Parallel()
	var th loginThrottle
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	attacker := netip.MustParseAddr("203.0.113.66")
	for range loginBurst {
		th.allow(attacker, "alice", at)
	}
	for i := range 10001 {
		if th.allow(attacker, fmt.Sprintf("x%d", i), at) {
			t.Fatalf("made-up name %d allowed from an address out of attempts", i)
		}
	}
	if th.allow(attacker, "alice", at) {
		t.Error("after 10,001 refused attempts with made-up names, the address was let guess alice's password again")
	}
	if n := len(th.limiters); n != 2 {
		t.Errorf("%d limiters remembered, want 2 (the address and alice): refused attempts' names are not", n)
	}
	th.allow(netip.MustParseAddr("198.51.100.1"), strings.Repeat("n", 1<<20), at)
	if n := len(th.limiters); n != 3 {
		t.Errorf("%d limiters remembered after a 1 MiB name, want 3 (no name)", n)
	}

	var full loginThrottle
	for i := range loginTracked {
		full.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), "", at)
	}
	newcomer := netip.MustParseAddr("192.0.2.200")
	if full.allow(newcomer, "", at) {
		t.Error("a new address allowed while every one of the limiters remembered is counting")
	}
	if !full.allow(newcomer, "", at.Add(loginEvery+time.Second)) {
		t.Error("a new address refused once the limiters are full again")
	}
	if n := len(full.limiters); n != 1 {
		t.Errorf("%d limiters after the sweep, want 1 (the newcomer)", n)
	}
}

// TestOtherSitesCannotPrintInvoices: in the demo (automatic login of loopback clients), an <img>
// of another site's page is a GET of /invoices from 127.0.0.1 that used to be logged in on the
// spot and write console.invoice_printed entries in the demo operator's name; a request the
// browser marks as another site's (Sec-Fetch-Site cross-site or same-site, not a navigation) has
// no session now, nor does an operator's cookie sent with one. A navigation (a link followed)
// still opens the page.
func TestOtherSitesCannotPrintInvoices(t *testing.T) {
	t.Parallel()
	demo := newHarness(t, func(c *Config) { c.Auth.Operators, c.Auth.AutoLogin, c.Auth.InsecureCookie = nil, "demo", true })
	prod := newHarness(t)
	for _, h := range []*harness{demo, prod} {
		h.order(testShop, "A1", okState())
		h.invoices.known = map[string]bool{"A1": true}
	}
	get := func(h *harness, site, mode, dest, operator string) int {
		req := httptest.NewRequest(http.MethodGet, "/invoices?shop=demo&order=A1", nil)
		req.RemoteAddr, req.Host = "127.0.0.1:50123", "127.0.0.1:18090"
		req.Header.Set("Sec-Fetch-Site", site)
		req.Header.Set("Sec-Fetch-Mode", mode)
		req.Header.Set("Sec-Fetch-Dest", dest)
		return h.do(req, operator).Code
	}
	for _, site := range []string{"cross-site", "same-site"} {
		if code := get(demo, site, "no-cors", "image", ""); code == http.StatusOK {
			t.Errorf("demo: a %s <img> of /invoices: 200", site)
		}
		if code := get(prod, site, "no-cors", "image", "alice"); code == http.StatusOK {
			t.Errorf("an operator's cookie with a %s <img> of /invoices: 200", site)
		}
	}
	if n := printings(t, demo, "A1") + printings(t, prod, "A1"); n != 0 {
		t.Errorf("%d console.invoice_printed entries written by other sites' images", n)
	}
	if code := get(demo, "cross-site", "navigate", "document", ""); code != http.StatusOK {
		t.Errorf("demo: a link of another site followed to /invoices: %d, want 200", code)
	}
	if code := get(prod, "same-origin", "cors", "empty", "alice"); code != http.StatusOK {
		t.Errorf("the console's own request: %d, want 200", code)
	}
}

func printings(t *testing.T, h *harness, order string) int {
	t.Helper()
	hist, err := h.store.History(t.Context(), testShop, order)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range hist {
		if e.Type == InvoiceAuditType {
			n++
		}
	}
	return n
}

// TestOtherSitesImageInBrowser: the same in Chromium, which sends the Fetch Metadata itself: a
// page of http://localhost:PORT (another site than 127.0.0.1) holding an <img> of the demo
// console's /invoices and /export writes no printing into the order's history.
func TestOtherSitesImageInBrowser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Auth.Operators, c.Auth.AutoLogin, c.Auth.InsecureCookie = nil, "demo", true })
	h.order(testShop, "A1", okState())
	h.invoices.known = map[string]bool{"A1": true}
	console := httptest.NewServer(h.s)
	t.Cleanup(console.Close)
	consoleURL, _ := url.Parse(console.URL)
	loaded := make(chan struct{}, 1)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/done" {
			loaded <- struct{}{}
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>cats</title>`+
			`<img src="http://127.0.0.1:%[1]s/invoices?shop=demo&amp;order=A1" alt="">`+
			`<img src="http://127.0.0.1:%[1]s/export?shop=demo" alt="" onerror="fetch('/done')" onload="fetch('/done')">`, consoleURL.Port())
	}))
	t.Cleanup(other.Close)
	otherURL, _ := url.Parse(other.URL)
	b := browser.New(t)
	b.Run(chromedp.Navigate("http://localhost:" + otherURL.Port() + "/"))
	select {
	case <-loaded:
	case <-time.After(10 * time.Second):
		t.Fatal("the other site's page did not load its images")
	}
	if wait.Until(2*time.Second, func() bool { return printings(t, h, "A1") > 0 }) {
		t.Errorf("a page of another site opened in the operator's browser wrote %d console.invoice_printed entries", printings(t, h, "A1"))
	}
}
