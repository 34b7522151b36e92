package console

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestSecurityHeaders: every response, a page, the login page, a refusal, a static file, carries
// the Content-Security-Policy and its companions.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, w := range []struct {
		name string
		code int
		hdr  http.Header
	}{
		{"orders", h.get("/orders", "alice").Code, h.get("/orders", "alice").Header()},
		{"login", h.get("/login", "").Code, h.get("/login", "").Header()},
		{"refused", h.postRaw("/actions", "alice", url.Values{"action": {"rerun"}}).Code, h.postRaw("/actions", "alice", url.Values{"action": {"rerun"}}).Header()},
		{"static", h.get("/static/console.js", "").Code, h.get("/static/console.js", "").Header()},
	} {
		if got := w.hdr.Get("Content-Security-Policy"); got != "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'" {
			t.Errorf("%s (%d): Content-Security-Policy %q", w.name, w.code, got)
		}
		if w.hdr.Get("X-Content-Type-Options") != "nosniff" || w.hdr.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: X-Content-Type-Options %q, Referrer-Policy %q", w.name, w.hdr.Get("X-Content-Type-Options"), w.hdr.Get("Referrer-Policy"))
		}
	}
}

// TestNoInlineScriptOrStyle: the pages load their script and styles from files only, as the
// policy demands: no <script> with a body, no <style>, no style or on* attribute.
func TestNoInlineScriptOrStyle(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order(testShop, "A1", okState())
	h.invoices.known = map[string]bool{"A1": true}
	for _, path := range []string{"/login", "/orders", "/orders/demo/A1", "/shops", "/dlq", "/invoices?shop=demo&order=A1"} {
		op := "alice"
		if path == "/login" {
			op = ""
		}
		page := body(t, h.get(path, op), http.StatusOK)
		lower := strings.ToLower(page)
		for _, bad := range []string{"<style", " style=", " onclick=", " onload=", " onchange=", "javascript:"} {
			if strings.Contains(lower, bad) {
				t.Errorf("%s holds %q", path, bad)
			}
		}
		for i := strings.Index(lower, "<script"); i >= 0; {
			end := strings.Index(lower[i:], "</script>")
			tag := lower[i : i+end]
			if !strings.Contains(tag, `src="/static/`) || strings.TrimSpace(tag[strings.Index(tag, ">")+1:]) != "" {
				t.Errorf("%s: inline script %q", path, tag)
			}
			next := strings.Index(lower[i+1:], "<script")
			if next < 0 {
				break
			}
			i += 1 + next
		}
	}
}

// TestLoginRequired: a page without a session is sent to the login page, keeping where it was
// going; anything else (a POST, the live stream, a stylesheet) is refused with 401.
func TestLoginRequired(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.get("/orders?shop=demo&status=ok", "")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?next="+url.QueryEscape("/orders?shop=demo&status=ok") {
		t.Errorf("GET /orders: %d to %q, want 303 to the login page", w.Code, w.Header().Get("Location"))
	}
	for _, path := range []string{"/orders/demo/A1", "/dlq", "/dlq/1", "/shops", "/export?shop=demo", "/invoices?shop=demo&order=A1", "/"} {
		if w := h.get(path, ""); w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/login") {
			t.Errorf("GET %s: %d to %q, want 303 to the login page", path, w.Code, w.Header().Get("Location"))
		}
	}
	for _, path := range []string{"/events", "/invoices/sheets.css?shop=demo"} {
		if w := h.get(path, ""); w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s: %d, want 401", path, w.Code)
		}
	}
	for _, path := range []string{"/actions", "/orders/demo/A1/reveal", "/dlq/actions", "/dlq/1/reveal", "/dlq/1/edit", "/logout", "/invoices"} {
		if w := h.postRaw(path, "", url.Values{"action": {"rerun"}, "o": {"demo/A1"}}); w.Code != http.StatusUnauthorized {
			t.Errorf("POST %s: %d, want 401", path, w.Code)
		}
	}
	if len(h.actions.Calls()) != 0 {
		t.Errorf("actions ran without a login: %v", h.actions.Calls())
	}
}

// TestLogin: the login form's session carries its CSRF token; the right password starts a
// session in a Secure, HttpOnly, SameSite=Lax cookie and goes where the operator was going; a
// wrong one, or an unknown name, is refused alike; a form without its token is refused (403).
func TestLogin(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.get("/login?next=/dlq", "")
	page := body(t, w, http.StatusOK)
	mustContain(t, page, `id="login-form"`, `name="next" value="/dlq"`)
	var form *http.Cookie
	for _, c := range w.Result().Cookies() {
		switch c.Name {
		case "__Host-atodene_console_login":
			form = c
		case "__Host-atodene_console":
			t.Errorf("the login page sets the session cookie: %+v", c)
		}
	}
	if form == nil || !form.Secure || !form.HttpOnly || form.SameSite != http.SameSiteStrictMode || form.Path != "/" {
		t.Fatalf("the login form's cookie %+v (of %v): want Secure, HttpOnly, SameSite=Strict, Path=/", form, w.Result().Cookies())
	}
	ss, ok := h.s.decodeSession(form.Value)
	if !ok || ss.Operator != "" {
		t.Fatalf("login form session %+v, %v", ss, ok)
	}
	csrf := h.s.csrfToken(ss)
	mustContain(t, page, `name="csrf" value="`+csrf+`"`)

	login := func(form url.Values, withCookie *http.Cookie) *http.Response {
		req := newFormRequest("/login", form)
		if withCookie != nil {
			req.AddCookie(withCookie)
		}
		return h.do(req, "").Result()
	}
	res := login(url.Values{"csrf": {csrf}, "name": {"alice"}, "password": {testPassword}, "next": {"/dlq"}}, form)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dlq" {
		t.Fatalf("login: %d to %q, want 303 to /dlq", res.StatusCode, res.Header.Get("Location"))
	}
	var sc *http.Cookie
	formCleared := false
	for _, c := range res.Cookies() {
		switch c.Name {
		case "__Host-atodene_console":
			sc = c
		case "__Host-atodene_console_login":
			formCleared = c.MaxAge < 0
		}
	}
	if sc == nil || !sc.Secure || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" {
		t.Fatalf("session cookie %+v: want Secure, HttpOnly, SameSite=Lax, Path=/", sc)
	}
	if !formCleared {
		t.Error("the login did not remove the login form's cookie")
	}
	got, ok := h.s.decodeSession(sc.Value)
	if !ok || got.Operator != "alice" || got.ID == ss.ID {
		t.Errorf("session after login %+v (ok %v): want alice with a new ID", got, ok)
	}
	for _, bad := range []url.Values{
		{"csrf": {csrf}, "name": {"alice"}, "password": {"wrong"}},
		{"csrf": {csrf}, "name": {"mallory"}, "password": {testPassword}},
	} {
		if res := login(bad, form); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("login %v: %d, want 401", bad["name"], res.StatusCode)
		}
	}
	if res := login(url.Values{"name": {"alice"}, "password": {testPassword}}, form); res.StatusCode != http.StatusForbidden {
		t.Errorf("login without the CSRF token: %d, want 403", res.StatusCode)
	}
	if res := login(url.Values{"csrf": {csrf}, "name": {"alice"}, "password": {testPassword}}, nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("login without the form's session: %d, want 403", res.StatusCode)
	}
	if res := login(url.Values{"csrf": {csrf}, "name": {"alice"}, "password": {testPassword}, "next": {"//evil.example/"}}, form); res.Header.Get("Location") != "/orders" {
		t.Errorf("next //evil.example/: redirected to %q, want /orders", res.Header.Get("Location"))
	}
	for _, e := range h.logs.All() {
		for _, f := range e.Context {
			if strings.Contains(f.String, testPassword) {
				t.Errorf("log line %q holds the password", e.Message)
			}
		}
	}
}

// TestSessionExpiresAndIsSigned: a session past its expiry, or a cookie altered, is no session.
func TestSessionExpiresAndIsSigned(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c, _ := h.cookie("alice")
	req := newGet("/orders")
	req.AddCookie(c)
	if w := h.do(req, ""); w.Code != http.StatusOK {
		t.Fatalf("fresh session: %d", w.Code)
	}
	payload, sig, _ := strings.Cut(c.Value, ".")
	raw, _ := b64.DecodeString(payload)
	forged := b64.EncodeToString([]byte(strings.Replace(string(raw), "alice", "bob", 1))) + "." + sig
	req = newGet("/orders")
	req.AddCookie(&http.Cookie{Name: c.Name, Value: forged})
	if w := h.do(req, ""); w.Code != http.StatusSeeOther {
		t.Errorf("forged session: %d, want 303 to the login page", w.Code)
	}
	h.clock.Advance(h.s.cfg.Auth.SessionTTL)
	req = newGet("/orders")
	req.AddCookie(c)
	if w := h.do(req, ""); w.Code != http.StatusSeeOther {
		t.Errorf("expired session: %d, want 303 to the login page", w.Code)
	}
	// Another replica with the same key reads the session; one with another key does not.
	other := newHarness(t, func(c *Config) { c.Auth.SessionKey = []byte(strings.Repeat("z", 32)) })
	if _, ok := other.s.decodeSession(c.Value); ok {
		t.Error("a session signed with another key was accepted")
	}
}

// TestCSRF: every POST of a logged-in operator needs the session's own token: none, another
// session's, or a cross-site Origin are refused with 403 and nothing is done.
func TestCSRF(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order(testShop, "A1", ngState())
	form := url.Values{"action": {"rerun"}, "o": {"demo/A1"}, "confirm": {"yes"}}
	_, bobToken := h.cookie("bob")
	for name, f := range map[string]url.Values{
		"no token":              form,
		"another session's":     withValue(form, "csrf", bobToken),
		"a token of no session": withValue(form, "csrf", "AAAA"),
	} {
		if w := h.postRaw("/actions", "alice", f); w.Code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, w.Code)
		}
	}
	req := newFormRequest("/actions", withValue(form, "csrf", mustToken(h, "alice")))
	req.Header.Set("Origin", "https://evil.example")
	if w := h.do(req, "alice"); w.Code != http.StatusForbidden {
		t.Errorf("cross-site Origin: %d, want 403", w.Code)
	}
	// Behind a proxy that rewrites Host, the browser's host is X-Forwarded-Host.
	req = newFormRequest("/actions", withValue(url.Values{"action": {"rerun"}, "o": {"demo/A1"}}, "csrf", mustToken(h, "alice")))
	req.Host = "127.0.0.1:8090"
	req.Header.Set("Origin", "https://console.example.jp")
	req.Header.Set("X-Forwarded-Host", "console.example.jp")
	if w := h.do(req, "alice"); w.Code != http.StatusOK {
		t.Errorf("same-site Origin behind a proxy: %d, want 200", w.Code)
	}
	for _, path := range []string{"/orders/demo/A1/reveal", "/dlq/actions", "/dlq/1/reveal", "/dlq/1/edit", "/logout", "/invoices"} {
		if w := h.postRaw(path, "alice", url.Values{"action": {"purge"}, "seq": {"1"}}); w.Code != http.StatusForbidden {
			t.Errorf("POST %s without a token: %d, want 403", path, w.Code)
		}
	}
	if len(h.actions.Calls()) != 0 || len(h.letters.Calls()) != 0 {
		t.Errorf("refused requests acted: %v %v", h.actions.Calls(), h.letters.Calls())
	}
	// With the token, the same action runs.
	if w := h.post("/actions", "alice", form); w.Code != http.StatusOK || len(h.actions.Calls()) != 1 {
		t.Errorf("with the token: %d, %d calls", w.Code, len(h.actions.Calls()))
	}
}

// TestLogout ends the session.
func TestLogout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.post("/logout", "alice", nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" {
		t.Fatalf("logout: %d to %q", w.Code, w.Header().Get("Location"))
	}
	var cleared bool
	for _, c := range w.Result().Cookies() {
		cleared = cleared || (c.Name == h.s.cookieName() && c.MaxAge < 0)
	}
	if !cleared {
		t.Error("logout left the session cookie")
	}
}

// TestTrustedHeader: behind an authenticating proxy, the header names the operator; a request
// without it, or with a name that is none, is refused (401), and there is no login page.
func TestTrustedHeader(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Auth.Operators, c.Auth.TrustedHeader = nil, "X-Forwarded-User" })
	req := newGet("/orders")
	req.Header.Set("X-Forwarded-User", "tanaka@example.jp")
	w := h.do(req, "")
	page := body(t, w, http.StatusOK)
	mustContain(t, page, "tanaka@example.jp")
	if len(w.Result().Cookies()) == 0 {
		t.Error("no session cookie for the header's operator (its CSRF token needs one)")
	}
	if w := h.get("/orders", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("without the header: %d, want 401", w.Code)
	}
	req = newGet("/orders")
	req.Header.Set("X-Forwarded-User", "<script>")
	if w := h.do(req, ""); w.Code != http.StatusUnauthorized {
		t.Errorf("a header that is no name: %d, want 401", w.Code)
	}
	// A session of another operator does not outlive the header's change.
	req = newGet("/orders")
	req.Header.Set("X-Forwarded-User", "suzuki")
	if page := body(t, h.do(req, "alice"), http.StatusOK); !strings.Contains(page, "suzuki") || strings.Contains(page, ">alice<") {
		t.Error("the session's operator won over the header's")
	}
}

// TestAutoLogin: the embedded demo logs in loopback clients without a password, and says so;
// others must log in.
func TestAutoLogin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Auth.Operators, c.Auth.AutoLogin, c.Auth.InsecureCookie = nil, "demo", true })
	req := newGet("/orders")
	req.RemoteAddr, req.Host = "127.0.0.1:50123", "127.0.0.1:8090"
	w := h.do(req, "")
	page := body(t, w, http.StatusOK)
	mustContain(t, page, `id="demo-notice"`, "パスワードなしで自動的にログイン")
	for _, c := range w.Result().Cookies() {
		if c.Name == "atodene_console" && c.Secure {
			t.Error("the demo's cookie is Secure on plain HTTP")
		}
	}
	req = newGet("/orders")
	req.RemoteAddr, req.Host = "[::1]:50123", "[::1]:8090"
	if w := h.do(req, ""); w.Code != http.StatusOK {
		t.Errorf("IPv6 loopback: %d", w.Code)
	}
	req = newGet("/orders")
	req.Host = "127.0.0.1:8090"
	if w := h.do(req, ""); w.Code != http.StatusSeeOther {
		t.Errorf("a client off the machine: %d, want 303 to the login page", w.Code)
	}
}

// TestAutoLoginRefusesOtherHosts: with the automatic login, a request naming a host other than a
// loopback one (a page of another site whose name resolves to 127.0.0.1: DNS rebinding) is
// refused, with or without a session, and gets none.
func TestAutoLoginRefusesOtherHosts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Auth.Operators, c.Auth.AutoLogin, c.Auth.InsecureCookie = nil, "demo", true })
	for _, host := range []string{"rebind.attacker.example:8090", "rebind.attacker.example", "127.0.0.1.attacker.example:8090",
		"localhost.attacker.example", "10.0.0.1:8090", "", "127.0.0.1:notaport"} {
		for _, path := range []string{"/orders", "/orders/demo/A1", "/login", "/dlq"} {
			req := newGet(path)
			req.RemoteAddr, req.Host = "127.0.0.1:50123", host
			w := h.do(req, "")
			if w.Code != http.StatusMisdirectedRequest {
				t.Errorf("Host %q, GET %s: %d, want 421", host, path, w.Code)
			}
			if len(w.Result().Cookies()) > 0 {
				t.Errorf("Host %q, GET %s: got a session cookie", host, path)
			}
		}
		req := newFormRequest("/orders/demo/A1/reveal", url.Values{})
		req.RemoteAddr, req.Host = "127.0.0.1:50123", host
		req.Header.Set("Origin", "http://"+host)
		if w := h.do(req, "demo"); w.Code != http.StatusMisdirectedRequest {
			t.Errorf("Host %q, POST with a session: %d, want 421", host, w.Code)
		}
	}
	for _, host := range []string{"127.0.0.1:8090", "127.0.0.1", "localhost:1234", "LOCALHOST:80", "[::1]:8090", "[::1]", "127.0.0.2:9"} {
		req := newGet("/orders")
		req.RemoteAddr, req.Host = "127.0.0.1:50123", host
		if w := h.do(req, ""); w.Code != http.StatusOK {
			t.Errorf("Host %q: %d, want 200", host, w.Code)
		}
	}
	if w := h.get("/healthz", ""); w.Code != http.StatusOK {
		t.Errorf("/healthz: %d", w.Code)
	}
}

// TestAllowedHosts: with AllowedHosts, the console answers to those names only.
func TestAllowedHosts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.AllowedHosts = []string{"console.example"} })
	if w := h.do(newGet("/login"), ""); w.Code != http.StatusOK {
		t.Errorf("Host console.example: %d, want 200", w.Code)
	}
	req := newGet("/login")
	req.Host = "Console.Example:443"
	if w := h.do(req, ""); w.Code != http.StatusOK {
		t.Errorf("Host Console.Example:443: %d, want 200", w.Code)
	}
	req = newGet("/login")
	req.Host = "rebind.attacker.example"
	if w := h.do(req, ""); w.Code != http.StatusMisdirectedRequest {
		t.Errorf("Host rebind.attacker.example: %d, want 421", w.Code)
	}
}

// TestNewRefusesABadConfig: no store, a short key, no way to log in.
func TestNewRefusesABadConfig(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Auth: Auth{SessionKey: []byte("short")}})
	if err == nil {
		t.Fatal("New accepted a config with no store, a short key and no operators")
	}
	for _, want := range []string{"Store", "at least 32", "no way to log in"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestParseOperators: name:hash lines, comments; every problem with its line, no hash quoted.
func TestParseOperators(t *testing.T) {
	t.Parallel()
	hash, _ := HashPassword("pw")
	ops, err := ParseOperators(strings.NewReader("# operators\n\nalice:"+string(hash)+"\n"), "ops")
	if err != nil || len(ops) != 1 || ops["alice"] == nil {
		t.Fatalf("ops %v, err %v", ops, err)
	}
	_, err = ParseOperators(strings.NewReader("alice:"+string(hash)+"\nalice:"+string(hash)+"\nbad name:"+string(hash)+"\nbob:plaintext\nnocolon\n"), "ops")
	if err == nil {
		t.Fatal("a bad file was accepted")
	}
	for _, want := range []string{"ops:2: operator \"alice\" is listed twice", "ops:3:", "ops:4: operator \"bob\": the hash is not a bcrypt hash", "ops:5: want name:bcrypt-hash"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "plaintext") {
		t.Error("the error quotes a hash")
	}
}

func withValue(v url.Values, k, x string) url.Values {
	out := cloneValues(v)
	out.Set(k, x)
	return out
}

func mustToken(h *harness, operator string) string {
	_, t := h.cookie(operator)
	return t
}

func newGet(path string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = "203.0.113.9:41000"
	req.Host = "console.example"
	return req
}

func newFormRequest(path string, form url.Values) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "203.0.113.9:41000"
	req.Host = "console.example"
	return req
}

// TestSafeNext: the page after login is a path of the console's own, nothing a browser could read
// as another site.
func TestSafeNext(t *testing.T) {
	t.Parallel()
	for next, want := range map[string]string{
		"/dlq":                  "/dlq",
		"/orders?shop=demo&p=2": "/orders?shop=demo&p=2",
		"/orders/demo/A%2F1":    "/orders/demo/A%2F1",
		"":                      "/orders",
		"//evil.example/":       "/orders",
		"/\t/evil.example/":     "/orders",
		"/\n/evil.example/":     "/orders",
		"/\r/evil.example/":     "/orders",
		"/ /evil.example/":      "/orders",
		"/\\evil.example/":      "/orders",
		"/\\/evil.example/":     "/orders",
		"/\u00a0/evil.example/": "/orders",
		"/\u200b/evil.example/": "/orders",
		"/\x00/evil.example/":   "/orders",
		"/\x7f/evil.example/":   "/orders",
		"https://evil.example/": "/orders",
		"http:/evil.example/":   "/orders",
		"javascript:alert(1)":   "/orders",
		"evil.example":          "/orders",
		"/\xff/evil.example/":   "/orders",
		"\t//evil.example/":     "/orders",
		"/%09/evil.example/":    "/%09/evil.example/",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
	h := newHarness(t)
	w := h.get("/login?next=/%09/evil.example/", "")
	mustContain(t, body(t, w, http.StatusOK), `name="next" value="/orders"`)
}

// TestUnknownNameTakesAnOperatorsTime: a login of an unknown name is checked against a hash of the
// cost of one of the operators, the same for the same name, so that it takes as long as some
// operator's: with one cost in the file, that one; with the lines of htpasswd -B (5) and of
// `console hash` (10) mixed, either, in the proportion of the file's lines, never a cost of none.
func TestUnknownNameTakesAnOperatorsTime(t *testing.T) {
	t.Parallel()
	hashOf := func(cost int) []byte {
		h, err := bcrypt.GenerateFromPassword([]byte(testPassword), cost)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	key := []byte(strings.Repeat("k", 32))
	single := newDummyHashes(map[string][]byte{"alice": hashOf(5), "bob": hashOf(5)}, key)
	if got, err := bcrypt.Cost(single.of("nobody")); err != nil || got != 5 {
		t.Errorf("every operator's cost 5: an unknown name's is %d (%v)", got, err)
	}
	mixed := newDummyHashes(map[string][]byte{"tanaka": hashOf(bcrypt.MinCost), "suzuki": hashOf(bcrypt.MinCost + 1)}, key)
	picked := map[int]int{}
	for i := range 200 {
		name := "nobody" + strconv.Itoa(i)
		c, err := bcrypt.Cost(mixed.of(name))
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := bcrypt.Cost(mixed.of(name)); again != c {
			t.Fatalf("%s: cost %d, then %d: a name's timing would vary", name, c, again)
		}
		picked[c]++
	}
	if len(picked) != 2 || picked[bcrypt.MinCost] < 60 || picked[bcrypt.MinCost+1] < 60 {
		t.Errorf("costs picked for 200 unknown names: %v, want both of the file's, about half each", picked)
	}
}

// TestLoginThrottle: 5 attempts at once per client address and per operator name, then one every
// 12 s; a refused attempt is 429 with the reason, the password not even checked.
func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	var th loginThrottle
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	ip := netip.MustParseAddr
	for i := range 5 {
		if !th.allow(ip("203.0.113.9"), "alice", at) {
			t.Fatalf("attempt %d refused, want the first 5 allowed", i+1)
		}
	}
	if th.allow(ip("203.0.113.9"), "bob", at) {
		t.Error("a 6th attempt from the same address (another name) allowed")
	}
	if th.allow(ip("198.51.100.7"), "alice", at) {
		t.Error("a 6th attempt for the same name (another address) allowed")
	}
	if !th.allow(ip("198.51.100.7"), "carol", at) {
		t.Error("another address and name refused")
	}
	if !th.allow(ip("203.0.113.9"), "dave", at.Add(25*time.Second)) {
		t.Error("the address refused 25 s later, want one attempt per 12 s")
	}
	// Behind a reverse proxy that names no client: only the names are limited.
	for i := range 8 {
		if !th.allow(netip.Addr{}, "op"+strconv.Itoa(i), at) {
			t.Fatalf("attempt %d through a proxy refused", i+1)
		}
	}
	// An IPv6 host holds its /64 whole: its addresses share one budget.
	for i := range 5 {
		th.allow(ip("2001:db8:1:2::"+strconv.Itoa(i+1)), "erin"+strconv.Itoa(i), at)
	}
	if th.allow(ip("2001:db8:1:2:ffff::9"), "frank", at) {
		t.Error("a 6th attempt from another address of the same IPv6 /64 allowed")
	}
	if !th.allow(ip("2001:db8:1:3::1"), "grace", at) {
		t.Error("an address of another /64 refused")
	}

	h := newHarness(t)
	w := h.get("/login", "")
	var form *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == "__Host-atodene_console_login" {
			form = c
		}
	}
	ss, _ := h.s.decodeSession(form.Value)
	try := func(password string) *httptest.ResponseRecorder {
		req := newFormRequest("/login", url.Values{"csrf": {h.s.csrfToken(ss)}, "name": {"alice"}, "password": {password}})
		req.AddCookie(form)
		return h.do(req, "")
	}
	for range 5 {
		if w := try("wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d, want 401", w.Code)
		}
	}
	w = try(testPassword)
	// Five attempts at once use the burst; the next frees 12 s later (loginEvery), not a minute.
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "12" {
		t.Fatalf("6th attempt: %d (Retry-After %q), want 429 with Retry-After 12", w.Code, w.Header().Get("Retry-After"))
	}
	mustContain(t, w.Body.String(), `id="login-throttled"`, "ログインの試行が多すぎます")
}
