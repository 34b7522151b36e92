package console

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// operatorPattern is what an operator's name may hold: a login name or an e-mail address, which
// keeps the events' source (console/operator/NAME) a plain URI reference. The same as publisher's
// -operator.
var operatorPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)

func validOperator(name string) bool { return operatorPattern.MatchString(name) }

// SourcePrefix heads the CloudEvents source of the events an operator publishes from the console:
// console/operator/NAME.
const SourcePrefix = "console/operator/"

// LoadOperators reads an operators file: one operator a line, `name:bcrypt-hash` (as
// `htpasswd -nbB name password` or `cmd/console hash` prints it); blank lines and lines starting
// with # are skipped. Every problem is reported, each with its line; the error never quotes a
// hash.
func LoadOperators(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseOperators(f, path)
}

// ParseOperators reads an operators file from r; name is the file's name in errors.
func ParseOperators(r io.Reader, name string) (map[string][]byte, error) {
	out := map[string][]byte{}
	var errs []error
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s:%d: want name:bcrypt-hash", name, n))
			continue
		case !validOperator(user):
			errs = append(errs, fmt.Errorf("%s:%d: operator %q: want 1-64 of A-Z, a-z, 0-9 and . _ @ + -, starting with a letter or digit", name, n, user))
			continue
		case out[user] != nil:
			errs = append(errs, fmt.Errorf("%s:%d: operator %q is listed twice", name, n, user))
			continue
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: operator %q: the hash is not a bcrypt hash ($2a$, $2b$ or $2y$); make one with `console hash`", name, n, user))
			continue
		}
		out[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	if len(out) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: no operators listed", name))
	}
	return out, errors.Join(errs...)
}

// HashPassword returns the bcrypt hash of password for an operators file.
func HashPassword(password string) ([]byte, error) {
	return bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
}

// session is what the session cookie holds, signed: who is logged in, how, and since when. The
// login form's cookie holds one too, of no one, for the form's CSRF token. Its end is reckoned
// from the login and the console's -session-ttl of the day, so a shorter setting applies to the
// sessions made before it.
type session struct {
	ID       string `json:"sid"`
	Operator string `json:"op,omitempty"`
	Via      string `json:"via,omitempty"` // password, header or auto
	Issued   int64  `json:"iat"`           // the login, Unix seconds
	// Hash binds a password session to the operator's line of the operators file (a signature
	// of its hash): removed, or given another password, the operator's sessions end when the
	// console restarts with the file.
	Hash string `json:"h,omitempty"`
}

// The ways an operator is identified.
const (
	viaPassword = "password"
	viaHeader   = "header"
	viaAuto     = "auto"
)

// cookieName is the session cookie's name: with Secure, the __Host- prefix binds it to this host
// and path / (browsers refuse it otherwise).
func (s *Server) cookieName() string {
	if s.cfg.Auth.InsecureCookie {
		return "atodene_console"
	}
	return "__Host-atodene_console"
}

// loginCookieName is the login form's cookie, which carries the session of its CSRF token: a name
// of its own, so that showing the login page never replaces an operator's session. (Under the
// session cookie's name, a link of another site followed, or a sibling subdomain's <img> of a
// page, which reach the login page without the session, logged the operator out.)
func (s *Server) loginCookieName() string { return s.cookieName() + "_login" }

// sign returns HMAC-SHA256(key, purpose, data).
func (s *Server) sign(purpose string, data []byte) []byte {
	m := hmac.New(sha256.New, s.cfg.Auth.SessionKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write(data)
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

// encodeSession is the cookie value of ss: its JSON and its signature, base64url, joined by ".".
func (s *Server) encodeSession(ss session) string {
	raw, _ := json.Marshal(ss)
	return b64.EncodeToString(raw) + "." + b64.EncodeToString(s.sign("session", raw))
}

// decodeSession checks a cookie value's signature, its expiry and that what made it still
// stands (sessionStands).
func (s *Server) decodeSession(v string) (session, bool) {
	p, sig, ok := strings.Cut(v, ".")
	if !ok {
		return session{}, false
	}
	raw, err1 := b64.DecodeString(p)
	got, err2 := b64.DecodeString(sig)
	if err1 != nil || err2 != nil || !hmac.Equal(got, s.sign("session", raw)) {
		return session{}, false
	}
	var ss session
	if json.Unmarshal(raw, &ss) != nil || ss.ID == "" || !s.cfg.Now().Before(s.expiry(ss)) || !s.sessionStands(ss) {
		return session{}, false
	}
	return ss, true
}

// expiry is when ss ends: its login and -session-ttl later.
func (s *Server) expiry(ss session) time.Time {
	return time.Unix(ss.Issued, 0).Add(s.cfg.Auth.SessionTTL)
}

// sessionStands reports whether the identity source that made ss still names its operator: the
// operators file the same line (password), the automatic login the same operator (auto), a
// trusted header at all (header; its value is checked at each request).
func (s *Server) sessionStands(ss session) bool {
	a := s.cfg.Auth
	switch ss.Via {
	case "":
		return ss.Operator == "" // the login form's
	case viaPassword:
		hash, listed := a.Operators[ss.Operator]
		return listed && hmac.Equal([]byte(ss.Hash), []byte(s.hashMark(ss.Operator, hash)))
	case viaAuto:
		return a.AutoLogin != "" && ss.Operator == a.AutoLogin
	case viaHeader:
		return a.TrustedHeader != ""
	}
	return false
}

// hashMark is what a password session of operator holds of its hash: a signature, which tells
// another hash without showing this one.
func (s *Server) hashMark(operator string, hash []byte) string {
	return b64.EncodeToString(s.sign("operator-hash", append([]byte(operator+"\x00"), hash...))[:16])
}

// csrfToken is the CSRF token of a session: a signature of its ID.
func (s *Server) csrfToken(ss session) string {
	return b64.EncodeToString(s.sign("csrf", []byte(ss.ID)))
}

// makeSession returns a session for operator ("" for the login form) with a fresh ID.
func (s *Server) makeSession(operator, via string) session {
	var id [18]byte
	_, _ = rand.Read(id[:])
	ss := session{ID: b64.EncodeToString(id[:]), Operator: operator, Via: via, Issued: s.cfg.Now().Unix()}
	if via == viaPassword {
		ss.Hash = s.hashMark(operator, s.cfg.Auth.Operators[operator])
	}
	return ss
}

// newSession starts a session for operator and sets its cookie. The cookie is SameSite=Lax: a
// link of another site followed (a top-level GET) carries it and opens the page, as the operator
// expects; the browser withholds it from other sites' forms, images, scripts and fetches, and
// every POST is checked for its CSRF token and Origin besides.
func (s *Server) newSession(w http.ResponseWriter, operator, via string) session {
	ss := s.makeSession(operator, via)
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: s.encodeSession(ss), Path: "/",
		Expires: s.expiry(ss), HttpOnly: true, Secure: !s.cfg.Auth.InsecureCookie, SameSite: http.SameSiteLaxMode})
	return ss
}

// newLoginSession starts the login form's session, of no one, in the login form's cookie
// (SameSite=Strict: only the console's own form posts it).
func (s *Server) newLoginSession(w http.ResponseWriter) session {
	ss := s.makeSession("", "")
	http.SetCookie(w, &http.Cookie{Name: s.loginCookieName(), Value: s.encodeSession(ss), Path: "/",
		Expires: s.expiry(ss), HttpOnly: true, Secure: !s.cfg.Auth.InsecureCookie, SameSite: http.SameSiteStrictMode})
	return ss
}

// loginSession returns the login form's session from its cookie; ok is false without a valid one.
func (s *Server) loginSession(r *http.Request) (ss session, ok bool) {
	c, err := r.Cookie(s.loginCookieName())
	if err != nil {
		return session{}, false
	}
	if ss, ok = s.decodeSession(c.Value); !ok || ss.Operator != "" {
		return session{}, false
	}
	return ss, true
}

// clearSession removes the session cookie.
func (s *Server) clearSession(w http.ResponseWriter) {
	s.clearCookie(w, s.cookieName(), http.SameSiteLaxMode)
}

func (s *Server) clearCookie(w http.ResponseWriter, name string, sameSite http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: !s.cfg.Auth.InsecureCookie, SameSite: sameSite})
}

type sessionKey struct{}

// sessionOf returns the request's session, set by public or private.
func sessionOf(r *http.Request) session {
	ss, _ := r.Context().Value(sessionKey{}).(session)
	return ss
}

// identify reads the request's session and applies the identity sources: the trusted header
// (which overrides any session of another name), then the automatic login of loopback clients.
// ok is false when a trusted header is configured and the request lacks a usable one. A request
// another site's page made (embedded) has no session: an <img> of a page the operator opens
// cannot write a printing into an order's history. Nor does it lose one: identify sets no cookie
// for it, and the login page none either.
func (s *Server) identify(w http.ResponseWriter, r *http.Request) (ss session, ok bool, why string) {
	if embeddedByOtherSite(r) {
		return session{}, true, ""
	}
	if c, err := r.Cookie(s.cookieName()); err == nil {
		ss, _ = s.decodeSession(c.Value)
	}
	a := s.cfg.Auth
	if a.TrustedHeader != "" {
		name := r.Header.Get(a.TrustedHeader)
		switch {
		case name == "":
			return session{}, false, "no " + a.TrustedHeader + " header: the console is run behind an authenticating proxy, which sets it"
		case !validOperator(name):
			return session{}, false, a.TrustedHeader + " does not hold an operator name (1-64 of A-Z, a-z, 0-9 and . _ @ + -)"
		case ss.Operator != name:
			ss = s.newSession(w, name, viaHeader)
		}
		return ss, true, ""
	}
	if ss.Operator == "" && a.AutoLogin != "" && loopback(r.RemoteAddr) {
		ss = s.newSession(w, a.AutoLogin, viaAuto)
		s.log.Info("operator logged in automatically (embedded demo, loopback client)", zap.String("operator", ss.Operator))
	}
	return ss, true, ""
}

// embeddedByOtherSite reports whether the browser says (Fetch Metadata) that a page of another
// origin made r for something other than a navigation: an image, a script, a fetch, a frame. A
// same-site page (a sibling subdomain) counts as another: SameSite sends it the cookie.
// Browsers that send no Sec-Fetch-Site are left to the cookie's SameSite and the CSRF token.
func embeddedByOtherSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return r.Header.Get("Sec-Fetch-Mode") != "navigate" || r.Header.Get("Sec-Fetch-Dest") != "document"
	}
	return false
}

// loopback reports whether addr (host:port) is a loopback address.
func loopback(addr string) bool { return addrOf(addr).IsLoopback() }

// addrOf is the address of host:port (or of a bare address); the zero address if it is none.
func addrOf(hostport string) netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// client is the address the login throttle counts a request against: its peer's, or, when the
// peer is a reverse proxy (on loopback, or within Auth.TrustedProxies), the last address of
// X-Forwarded-For that is not a proxy's; the zero address when there is none (every operator
// then shares the proxy's address, and only the limit per name applies).
func (s *Server) client(r *http.Request) netip.Addr {
	peer := addrOf(r.RemoteAddr)
	if !s.proxy(peer) {
		return peer
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for _, hop := range slices.Backward(hops) {
		a, err := netip.ParseAddr(strings.TrimSpace(hop))
		if err != nil {
			return netip.Addr{}
		}
		if a = a.Unmap(); !s.proxy(a) {
			return a
		}
	}
	return netip.Addr{}
}

// proxy reports whether a is a reverse proxy's address: loopback, or within Auth.TrustedProxies.
func (s *Server) proxy(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	for _, p := range s.cfg.Auth.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// public wraps the handler of a page anyone may see (the login page): its session, if any, is in
// the request's context.
func (s *Server) public(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss, ok, why := s.identify(w, r)
		if !ok {
			http.Error(w, why, http.StatusUnauthorized)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, ss)))
	})
}

// private wraps the handler of a page for operators: a request without an operator's session is
// sent to the login page (a GET of a page) or refused with 401 (anything else); a POST without
// the session's CSRF token is refused with 403.
func (s *Server) private(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss, ok, why := s.identify(w, r)
		if !ok {
			http.Error(w, why, http.StatusUnauthorized)
			return
		}
		if ss.Operator == "" {
			if r.Method == http.MethodGet && r.URL.Path != "/events" && !strings.HasSuffix(r.URL.Path, ".css") && s.cfg.Auth.TrustedHeader == "" {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, ss))
		if r.Method == http.MethodPost {
			s.checkCSRF(next)(w, r)
			return
		}
		next(w, r)
	})
}

// maxForm bounds a form's body: a dead letter's edited body is at most the server's max_payload
// (1 MiB by default).
const maxForm = 2 << 20

// checkCSRF refuses with 403 a request whose CSRF token (the form's csrf field, or the
// X-CSRF-Token header) is not its session's, or whose Origin is another site's.
func (s *Server) checkCSRF(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss := sessionOf(r)
		if o := r.Header.Get("Origin"); o != "" && o != "null" {
			// A proxy may rewrite Host; the host the browser asked for is then in X-Forwarded-Host.
			if u, err := url.Parse(o); err != nil || (u.Host != r.Host && u.Host != r.Header.Get("X-Forwarded-Host")) {
				s.forbidden(w, r, "cross-site request refused")
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		token := r.Header.Get("X-CSRF-Token")
		if token == "" {
			token = r.PostFormValue("csrf")
		}
		want := s.csrfToken(ss)
		if ss.ID == "" || subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1 {
			s.forbidden(w, r, "the form's CSRF token is missing or not this session's: reload the page and try again")
			return
		}
		next(w, r)
	}
}

func (s *Server) forbidden(w http.ResponseWriter, r *http.Request, why string) {
	s.log.Warn("request refused (CSRF)", zap.String("path", r.URL.Path), zap.String("why", why))
	http.Error(w, why, http.StatusForbidden)
}

// dummyHashes are the hashes a login of an unknown name is checked against, so that it takes as
// long as one of a known name: one of each cost of the operators file (htpasswd -B writes cost 5,
// `console hash` 10), the cost of a name picked by a signature of it among the operators', so
// that an unknown name takes, every time, as long as some operator's login.
type dummyHashes struct {
	key    []byte
	costs  []int // the operators' costs, one an operator, in the order of their names
	hashes map[int]func() []byte
}

func newDummyHashes(operators map[string][]byte, key []byte) dummyHashes {
	d := dummyHashes{key: key, hashes: map[int]func() []byte{}}
	for _, name := range slices.Sorted(maps.Keys(operators)) {
		if c, err := bcrypt.Cost(operators[name]); err == nil {
			d.costs = append(d.costs, c)
		}
	}
	if len(d.costs) == 0 {
		d.costs = []int{bcrypt.DefaultCost}
	}
	for _, c := range d.costs {
		d.hashes[c] = sync.OnceValue(func() []byte {
			h, _ := bcrypt.GenerateFromPassword([]byte("not a password of anyone"), c)
			return h
		})
	}
	return d
}

// of returns the hash an unknown name is checked against.
func (d dummyHashes) of(name string) []byte {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte(name))
	pick := binary.BigEndian.Uint64(m.Sum(nil)) % uint64(len(d.costs))
	return d.hashes[d.costs[pick]]()
}

// loginPage shows the login form, with the login form's session (its own cookie) that carries
// its CSRF token. Another site's page embedding it (an <img> sent here to log in) gets 401 and no
// cookie.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if sessionOf(r).Operator != "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if embeddedByOtherSite(r) {
		http.Error(w, "log in first", http.StatusUnauthorized)
		return
	}
	form, ok := s.loginSession(r)
	if !ok {
		form = s.newLoginSession(w)
	}
	s.render(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, form)), http.StatusOK, "login.html", "login.title", loginData{Next: next})
}

// loginForm puts the login form's session (its cookie's) in the request's context, for
// checkCSRF and the form shown again.
func (s *Server) loginForm(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		form, _ := s.loginSession(r)
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, form)))
	}
}

type loginData struct {
	Next      string
	Failed    bool
	Throttled bool
	Name      string
}

// login checks the name and password of the login form, and starts the operator's session.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	name, password := r.PostFormValue("name"), r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	if len(name) > 64 {
		name = "" // never an operator's (validOperator), and not shown back at any length
	}
	client := s.client(r)
	if !s.logins.allow(client, name, s.cfg.Now()) {
		s.log.Warn("login refused: too many attempts", clientFields(client, r)...)
		wait := s.logins.retryAfter(client, name, s.cfg.Now()) // whole seconds, at most loginEvery
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
		s.render(w, r, http.StatusTooManyRequests, "login.html", "login.title", loginData{Next: next, Throttled: true, Name: name})
		return
	}
	hash, known := s.cfg.Auth.Operators[name]
	if !known {
		hash = s.dummyHash.of(name)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !known {
		s.log.Warn("login failed", clientFields(client, r)...)
		s.render(w, r, http.StatusUnauthorized, "login.html", "login.title", loginData{Next: next, Failed: true, Name: name})
		return
	}
	s.newSession(w, name, viaPassword)
	s.clearCookie(w, s.loginCookieName(), http.SameSiteStrictMode)
	s.log.Info("operator logged in", append([]zap.Field{zap.String("operator", name)}, clientFields(client, r)...)...)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// clientFields are a login's log fields: client, the address the login throttle counts (behind a
// reverse proxy, the client of X-Forwarded-For; "unknown" when the proxy names none), and remote,
// the connection's peer (the proxy's address).
func clientFields(client netip.Addr, r *http.Request) []zap.Field {
	c := "unknown"
	if client.IsValid() {
		c = client.String()
	}
	return []zap.Field{zap.String("client", c), zap.String("remote", r.RemoteAddr)}
}

// logout ends the session.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	ss := sessionOf(r)
	s.clearSession(w)
	s.log.Info("operator logged out", zap.String("operator", ss.Operator))
	if s.cfg.Auth.TrustedHeader != "" || ss.Via == viaAuto {
		// The proxy, or the loopback login, identifies the next request again.
		s.render(w, r, http.StatusOK, "message.html", "logout.title", messageData{Text: "logout.again"})
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a redirect after login on the console: a path of its own, or /orders. It takes
// only a path that url.Parse reads with no scheme, host or user, that starts with a single "/",
// and that holds no control character, space or backslash (which browsers drop or read as "/",
// turning "/\t/evil.example/" into "//evil.example/").
func safeNext(next string) string {
	const home = "/orders"
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return home
	}
	for _, c := range next {
		if c < 0x21 || c == 0x7f || c == '\\' || (c >= 0x80 && c <= 0x9f) || !utf8Safe(c) {
			return home
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return home
	}
	return next
}

// utf8Safe reports whether c is a character a browser keeps in a URL as it is: not a
// replacement of invalid UTF-8, nor a Unicode space or format character.
func utf8Safe(c rune) bool {
	return c != utf8.RuneError && !unicode.IsSpace(c) && !unicode.Is(unicode.Cf, c)
}
