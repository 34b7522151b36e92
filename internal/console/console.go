// Package console is the operators' web console (docs/console.md): the order list with each
// order's ATODENE state, bulk and single actions, an order's history, invoices for printing, dead
// letters, the shops and their fee tables, and CSV exports.
//
// The console is stateless: it reads the order index and states in Redis (orderstate.Store) and
// follows the RESULTS stream for live updates; it writes only by publishing inbound events through
// Actions and DeadLetters, and, the one exception, the audit entries it appends to an order's
// history when an operator reveals personal data or prints an invoice. Any number of replicas may
// serve the same operators: sessions are signed cookies under a key the replicas share.
//
// Pages are rendered on the server with html/template; the one script (static/console.js) only
// enables buttons, follows the live updates and prints. Every response carries a strict
// Content-Security-Policy, every POST a CSRF token tied to the session.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures a Server. Store, Auth.SessionKey and an identity source (Auth.Operators,
// Auth.TrustedHeader or Auth.AutoLogin) are required; the comment of each other field gives its
// default.
type Config struct {
	// Store reads the order index, states and histories, and appends the audit entries.
	Store *orderstate.Store
	// JetStream follows the outcome events for the live updates. Default nil: no live updates
	// (the pages say so).
	JetStream jetstream.JetStream
	// ResultsStream is the worker's stream of outcome events. Default "RESULTS".
	ResultsStream string
	// Shops are the shops as the worker loads them, for the order list's shop selector and the
	// shops page. Default nil: none (the order list asks for a shop ID).
	Shops *config.Shops
	// Actions, DeadLetters and Invoices do the operators' work. Default NotWired: the pages work,
	// and say that acting is not connected.
	Actions     Actions
	DeadLetters DeadLetters
	Invoices    Invoices
	// Export writes the CSV of an order list. Default CSVExport.
	Export Exporter
	// Auth says who operators are and how sessions are kept.
	Auth Auth
	// Logger logs logins, actions and reveals, without personal data. Default zap.NewNop().
	Logger *zap.Logger
	// Now is the console's clock (sessions, default dates). Default time.Now.
	Now func() time.Time
	// AllowedHosts are the host names (without port, compared case-insensitively) the console
	// answers to: a request whose Host header names another is refused with 421, which defeats
	// DNS rebinding. Default none: any host, except with Auth.AutoLogin, which answers to
	// loopback names only (127.0.0.1, [::1], localhost, any port).
	AllowedHosts []string
}

// Auth are the console's identity and session settings.
type Auth struct {
	// Operators maps each operator's name to the bcrypt hash of their password (LoadOperators),
	// for the login page. Default none.
	Operators map[string][]byte
	// TrustedHeader names the request header that carries the operator's name set by an
	// authenticating proxy in front of the console (X-Forwarded-User of oauth2-proxy). With it,
	// every request must carry the header and there is no login page. Only behind such a proxy:
	// anyone who reaches the console directly can set the header. Default "": none.
	TrustedHeader string
	// AutoLogin names an operator logged in without a password when the client connects from a
	// loopback address: the embedded demo's. Pages say so. With it, the console answers only
	// requests whose Host is a loopback name or address (DNS rebinding). Never behind a proxy on
	// the same host, whose clients all come from loopback. Default "": none.
	AutoLogin string
	// SessionKey signs the session cookies and CSRF tokens (HMAC-SHA256); replicas that share it
	// share sessions. At least 32 bytes.
	SessionKey []byte
	// TrustedProxies are the addresses of the reverse proxies in front of the console beside
	// loopback ones (a load balancer's), whose X-Forwarded-For names the client that the login
	// throttle counts. Default none.
	TrustedProxies []netip.Prefix
	// SessionTTL is how long a session lasts after its login. Default 12h.
	SessionTTL time.Duration
	// InsecureCookie sends the session cookie without Secure, for plain HTTP on loopback (the
	// embedded demo). Default false: Secure, which browsers send over HTTPS only.
	InsecureCookie bool
}

// MinSessionKey is the least length of Auth.SessionKey, in bytes.
const MinSessionKey = 32

func (c Config) withDefaults() Config {
	if c.ResultsStream == "" {
		c.ResultsStream = "RESULTS"
	}
	if c.Actions == nil {
		c.Actions = NotWired{}
	}
	if c.DeadLetters == nil {
		c.DeadLetters = NotWired{}
	}
	if c.Invoices == nil {
		c.Invoices = NotWired{}
	}
	if c.Export == nil {
		c.Export = CSVExport
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Auth.SessionTTL <= 0 {
		c.Auth.SessionTTL = 12 * time.Hour
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("console: Config.Store is required"))
	}
	if len(c.Auth.SessionKey) < MinSessionKey {
		errs = append(errs, fmt.Errorf("console: the session key has %d bytes; at least %d", len(c.Auth.SessionKey), MinSessionKey))
	}
	if len(c.Auth.Operators) == 0 && c.Auth.TrustedHeader == "" && c.Auth.AutoLogin == "" {
		errs = append(errs, errors.New("console: no way to log in: give operators, a trusted header or an automatic login"))
	}
	if c.Auth.AutoLogin != "" && !validOperator(c.Auth.AutoLogin) {
		errs = append(errs, fmt.Errorf("console: automatic login %q is not an operator name", c.Auth.AutoLogin))
	}
	for name := range c.Auth.Operators {
		if !validOperator(name) {
			errs = append(errs, fmt.Errorf("console: operator %q: want 1-64 of A-Z, a-z, 0-9 and . _ @ + -, starting with a letter or digit", name))
		}
	}
	return errors.Join(errs...)
}

// Server is the console's HTTP handler.
type Server struct {
	cfg    Config
	log    *zap.Logger
	logins loginThrottle
	mux    *http.ServeMux
	pages  map[string]*pageTemplate
	// closing is closed when Serve stops: the live streams end, so that the server's shutdown
	// does not wait for them.
	closing chan struct{}
	mu      sync.Mutex
	closed  bool
	// streams counts the live streams open, for Close to wait for.
	streams sync.WaitGroup
	// live counts the live streams open, in all and per session (under mu), against maxLive and
	// maxLivePerSession.
	live              int
	liveBySession     map[string]int
	maxLive           int
	maxLivePerSession int
	// readTimeout and idleTimeout are Serve's (the constants; shorter in tests).
	readTimeout, idleTimeout time.Duration
	// exporting holds the operators whose CSV export is running (under mu): one each at a time.
	exporting map[string]bool
	// dummyHash is compared against at a login of an unknown name.
	dummyHash dummyHashes
}

// New returns the console configured by cfg, or every problem of cfg joined.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, pages: pages, closing: make(chan struct{}), dummyHash: newDummyHashes(cfg.Auth.Operators, cfg.Auth.SessionKey),
		liveBySession: map[string]int{}, maxLive: MaxLiveStreams, maxLivePerSession: MaxLiveStreamsPerSession, exporting: map[string]bool{},
		readTimeout: readTimeout, idleTimeout: idleTimeout}
	s.routes()
	return s, nil
}

// routes registers every route, in one place.
func (s *Server) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(static)))
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })

	m.Handle("GET /login", s.public(s.loginPage))
	m.Handle("POST /login", s.public(s.loginForm(s.checkCSRF(s.login))))
	m.Handle("POST /logout", s.private(s.logout))

	m.Handle("GET /{$}", s.private(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/orders", http.StatusSeeOther)
	}))
	m.Handle("GET /orders", s.private(s.ordersPage))
	m.Handle("GET /orders/{shop}/{order}", s.private(s.orderPage))
	m.Handle("POST /orders/{shop}/{order}/reveal", s.private(s.revealOrder))
	m.Handle("POST /actions", s.private(s.actions))
	m.Handle("GET /events", s.private(s.events))
	m.Handle("GET /export", s.private(s.export))

	m.Handle("GET /invoices", s.private(s.invoicesPage))
	m.Handle("POST /invoices", s.private(s.invoicesPage))
	m.Handle("GET /invoices/sheets.css", s.private(s.invoicesCSS))

	m.Handle("GET /dlq", s.private(s.lettersPage))
	m.Handle("GET /dlq/{seq}", s.private(s.letterPage))
	m.Handle("POST /dlq/{seq}/reveal", s.private(s.revealLetter))
	m.Handle("POST /dlq/{seq}/edit", s.private(s.editLetter))
	m.Handle("POST /dlq/actions", s.private(s.letterActions))

	m.Handle("GET /shops", s.private(s.shopsPage))
	s.mux = m
}

// ServeHTTP serves the console: security headers on every response, then the route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.URL.Path != "/healthz" && !s.hostAllowed(r.Host) {
		s.log.Warn("request refused: not a host of the console", zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr))
		http.Error(w, "this host name is not the console's: open the console by its own address", http.StatusMisdirectedRequest)
		return
	}
	rememberLang(w, r)
	s.mux.ServeHTTP(w, r)
}

// hostAllowed reports whether the console answers to host (a request's Host header): one of
// Config.AllowedHosts, and with Auth.AutoLogin a loopback name or address, whatever its port. A
// page of another site whose name resolves to the console's address (DNS rebinding) names its
// own host, and is refused.
func (s *Server) hostAllowed(host string) bool {
	if len(s.cfg.AllowedHosts) == 0 && s.cfg.Auth.AutoLogin == "" {
		return true
	}
	name := hostName(host)
	if name == "" {
		return false
	}
	if s.cfg.Auth.AutoLogin != "" {
		return loopbackName(name)
	}
	for _, h := range s.cfg.AllowedHosts {
		if strings.EqualFold(strings.TrimSuffix(h, "."), name) {
			return true
		}
	}
	return false
}

// hostName is the host part of a Host header, lower case, without port, brackets or a final
// dot; "" when it does not read as one.
func hostName(host string) string {
	if h, port, err := net.SplitHostPort(host); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return ""
		}
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" || strings.ContainsAny(host, "/\\@ \t\r\n[]") {
		return ""
	}
	return host
}

// loopbackName reports whether name (hostName's) is localhost or a loopback address.
func loopbackName(name string) bool {
	if name == "localhost" {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}

// contentSecurityPolicy allows the console's own scripts, styles and images only: no inline
// script or style, no framing, forms posted to the console only.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// Close ends the live streams; the pages go on being served. Serve calls it when it stops.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.streams.Wait()
}

// The bounds of the live streams open at once: in all, and of one session (a few tabs).
const (
	MaxLiveStreams           = 256
	MaxLiveStreamsPerSession = 8
)

// errTooManyStreams is openStream's refusal of a stream beyond the bounds.
var errTooManyStreams = errors.New("too many live streams open")

// errClosing is openStream's refusal while the server stops.
var errClosing = errors.New("the console is stopping")

// openStream counts a live stream of the session sid in, unless the server is closing or the
// stream would pass a bound; closeStream counts it out.
func (s *Server) openStream(sid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errClosing
	case s.live >= s.maxLive || s.liveBySession[sid] >= s.maxLivePerSession:
		return errTooManyStreams
	}
	s.live++
	s.liveBySession[sid]++
	s.streams.Add(1)
	return nil
}

func (s *Server) closeStream(sid string) {
	s.mu.Lock()
	s.live--
	if s.liveBySession[sid]--; s.liveBySession[sid] <= 0 {
		delete(s.liveBySession, sid)
	}
	s.mu.Unlock()
	s.streams.Done()
}

// The server's timeouts: a request's whole reading (headers and body, a dead letter's edit at
// most 2 MiB), and a kept-alive connection's wait for its next request.
const (
	readTimeout = 30 * time.Second
	idleTimeout = 2 * time.Minute
)

// shutdownGrace bounds how long Serve waits for requests in flight when it stops.
const shutdownGrace = 5 * time.Second

// Serve serves the console on ln until ctx ends, then ends the live streams, lets the requests in
// flight finish (at most 5 s) and returns. The error is the listener's, not ctx's.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	errLog, _ := zap.NewStdLogAt(s.log.Named("http"), zap.WarnLevel)
	// No WriteTimeout: the live streams last as long as their page (or session).
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: s.readTimeout, IdleTimeout: s.idleTimeout, ErrorLog: errLog}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		s.Close()
		return err
	case <-ctx.Done():
	}
	s.Close()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// staticHandler serves the embedded static files, cached for an hour.
func staticHandler(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}
