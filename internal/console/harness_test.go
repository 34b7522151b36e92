package console

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/clock"
)

// The console's tests drive its handler with requests, against the shared Redis (each test under
// its own key prefix), and the fakes of Actions, DeadLetters and Invoices below.

const (
	testShop     = "demo"
	testPassword = "correct horse battery staple"
)

// testNow is the tests' clock start: orders are written at it.
var testNow = time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC)

type harness struct {
	t        *testing.T
	s        *Server
	cfg      Config
	store    *orderstate.Store
	actions  *fakeActions
	letters  *fakeLetters
	invoices *fakeInvoices
	clock    *clock.Fake
	logs     *observer.ObservedLogs
}

// newHarness starts a console on the test's own Redis keys, with the operators alice and bob
// (password testPassword), the shops demo (enclosed invoices, add 205) and other, and the fakes.
func newHarness(t *testing.T, configure ...func(*Config)) *harness {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	clk := clock.NewFake(testNow)
	store := orderstate.NewStore(rdb, orderstate.Config{Prefix: prefix, Now: clk.Now})
	t.Cleanup(store.Close)
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	shops, err := config.NewShops([]config.Shop{
		{ID: testShop, Atodene: config.Atodene{BaseURL: "http://127.0.0.1:8089/api/", ShopCode: "demo00000001", LinkID: "original00",
			LinkPassword: config.NewSecret("s3cret-link-password"), LinkPasswordFrom: "${DEMO_PASSWORD}", InvoiceDelivery: config.InvoiceEnclosed},
			Fees: fees.Table{Mode: fees.ModeAdd, Rows: []fees.Row{{Min: 1, Max: 999999, Fee: 205}, {}}}},
		{ID: "other", Atodene: config.Atodene{BaseURL: "http://127.0.0.1:8089/api/", ShopCode: "oth000000001", LinkID: "original00",
			LinkPassword: config.NewSecret("another-secret"), LinkPasswordFrom: "secrets/other.password", InvoiceDelivery: config.InvoiceSeparate},
			Fees: fees.Table{Mode: fees.ModeOverwrite, Rows: []fees.Row{{Min: 1, Max: 9999, Fee: 330}, {Min: 10000, Max: 54999, Fee: 220}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	h := &harness{t: t, store: store, clock: clk, logs: logs,
		actions: &fakeActions{received: map[string]json.RawMessage{}}, letters: newFakeLetters(), invoices: &fakeInvoices{}}
	cfg := Config{Store: store, Shops: shops, Actions: h.actions, DeadLetters: h.letters, Invoices: h.invoices,
		Auth:   Auth{Operators: map[string][]byte{"alice": hash, "bob": hash}, SessionKey: []byte(strings.Repeat("k", 32))},
		Logger: zap.New(core), Now: clk.Now}
	for _, c := range configure {
		c(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.s, h.cfg = s, cfg
	return h
}

// cookie returns the session cookie of operator (logged in with a password) and its CSRF token.
func (h *harness) cookie(operator string) (*http.Cookie, string) {
	ss := session{ID: "test-" + operator, Operator: operator, Via: viaPassword, Issued: h.clock.Now().Unix(),
		Hash: h.s.hashMark(operator, h.cfg.Auth.Operators[operator])}
	return &http.Cookie{Name: h.s.cookieName(), Value: h.s.encodeSession(ss)}, h.s.csrfToken(ss)
}

// do serves req as operator ("" for no session).
func (h *harness) do(req *http.Request, operator string) *httptest.ResponseRecorder {
	h.t.Helper()
	if operator != "" {
		c, _ := h.cookie(operator)
		req.AddCookie(c)
	}
	if req.RemoteAddr == "" || req.RemoteAddr == "192.0.2.1:1234" {
		req.RemoteAddr = "203.0.113.9:41000" // not loopback
	}
	w := httptest.NewRecorder()
	h.s.ServeHTTP(w, req)
	return w
}

// get serves a GET of path as operator.
func (h *harness) get(path, operator string) *httptest.ResponseRecorder {
	h.t.Helper()
	return h.do(httptest.NewRequest(http.MethodGet, path, nil), operator)
}

// post serves a POST of form to path as operator, with the session's CSRF token.
func (h *harness) post(path, operator string, form url.Values) *httptest.ResponseRecorder {
	h.t.Helper()
	form = cloneValues(form)
	if operator != "" {
		_, csrf := h.cookie(operator)
		form.Set("csrf", csrf)
	}
	return h.postRaw(path, operator, form)
}

// postRaw serves a POST of form as it is.
func (h *harness) postRaw(path, operator string, form url.Values) *httptest.ResponseRecorder {
	h.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return h.do(req, operator)
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, x := range v {
		out[k] = append([]string(nil), x...)
	}
	return out
}

// order writes an order's state (and its history entries) as the worker would.
func (h *harness) order(shop, id string, st orderstate.State) orderstate.State {
	h.t.Helper()
	if st.OrderedAt.IsZero() {
		st.OrderedAt = h.clock.Now().Add(-time.Hour)
	}
	written, err := h.store.Put(context.Background(), shop, id, st, h.clock.Now())
	if err != nil {
		h.t.Fatalf("writing order %s/%s: %v", shop, id, err)
	}
	return written
}

// body returns a response's body, and fails the test if its status is not want.
func body(t *testing.T, w *httptest.ResponseRecorder, want int) string {
	t.Helper()
	b, _ := io.ReadAll(w.Result().Body)
	if w.Code != want {
		t.Fatalf("status %d, want %d; body:\n%s", w.Code, want, b)
	}
	return string(b)
}

// mustContain fails the test for each want the page lacks.
func mustContain(t *testing.T, page string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func mustNotContain(t *testing.T, page string, nots ...string) {
	t.Helper()
	for _, not := range nots {
		if strings.Contains(page, not) {
			t.Errorf("page holds %q", not)
		}
	}
}

// actionCall is a call of fakeActions.Do.
type actionCall struct {
	Operator string
	Key      string
	Action   Action
	Targets  []Target
}

// fakeActions answers as the adapter would: Allowed by StatusActions, Do publishes every target
// but those refused, Received from its map.
type fakeActions struct {
	mu       sync.Mutex
	calls    []actionCall
	refuse   map[string]string // order → why
	received map[string]json.RawMessage
	err      error
}

func (f *fakeActions) Allowed(st orderstate.State) []Action { return StatusActions(st) }

func (f *fakeActions) Do(_ context.Context, operator, key string, a Action, targets []Target) ([]Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.calls = append(f.calls, actionCall{operator, key, a, append([]Target(nil), targets...)})
	out := make([]Outcome, len(targets))
	for i, t := range targets {
		out[i] = Outcome{Shop: t.Shop, Order: t.Order, Action: a, Published: true, MsgID: "msg-" + t.Order}
		if why, ok := f.refuse[t.Order]; ok {
			out[i].Published, out[i].Reason, out[i].MsgID = false, why, ""
		}
	}
	return out, nil
}

func (f *fakeActions) Received(_ context.Context, shop, order string) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	raw, ok := f.received[shop+"/"+order]
	if !ok {
		return nil, fmt.Errorf("order %s of shop %s: its received data is gone: the stream keeps messages for 7 days", order, shop)
	}
	return raw, nil
}

func (f *fakeActions) Calls() []actionCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]actionCall(nil), f.calls...)
}

// fakeLetters is a dead-letter stream in memory.
type fakeLetters struct {
	mu      sync.Mutex
	letters map[uint64]Letter
	calls   []string
	edited  map[uint64][]byte
}

func newFakeLetters() *fakeLetters {
	return &fakeLetters{letters: map[uint64]Letter{}, edited: map[uint64][]byte{}}
}

func (f *fakeLetters) add(l Letter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.letters[l.Seq] = l
}

func (f *fakeLetters) List(_ context.Context, flt LetterFilter) ([]Letter, map[string]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Letter
	counts := map[string]int{}
	for seq := uint64(1); seq <= 1000; seq++ {
		l, ok := f.letters[seq]
		if !ok || (flt.Shop != "" && l.Shop != flt.Shop) || (!flt.Since.IsZero() && l.At.Before(flt.Since)) || (!flt.Until.IsZero() && !l.At.Before(flt.Until)) {
			continue
		}
		counts[l.Reason]++
		if flt.Reason != "" && l.Reason != flt.Reason {
			continue
		}
		l.Body = nil
		out = append(out, l)
	}
	return out, counts, nil
}

func (f *fakeLetters) Get(_ context.Context, seq uint64) (Letter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.letters[seq]
	if !ok {
		return Letter{}, fmt.Errorf("no dead letter %d in stream DLQ", seq)
	}
	return l, nil
}

func (f *fakeLetters) outcomes(op string, seqs []uint64) []Outcome {
	out := make([]Outcome, len(seqs))
	for i, seq := range seqs {
		l, ok := f.letters[seq]
		out[i] = Outcome{Shop: l.Shop, Order: l.Order, Published: ok, MsgID: fmt.Sprintf("dlq:ORDERS:%d:r1", seq)}
		if !ok {
			out[i].Reason = "no such letter"
		}
	}
	f.calls = append(f.calls, fmt.Sprintf("%s by %s: %v", op, "x", seqs))
	return out
}

func (f *fakeLetters) Replay(_ context.Context, operator string, seqs []uint64, dryRun bool) ([]Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := "replay"
	if dryRun {
		op = "dryrun"
	}
	out := f.outcomes(op+" "+operator, seqs)
	if !dryRun {
		for _, seq := range seqs {
			delete(f.letters, seq)
		}
	}
	return out, nil
}

func (f *fakeLetters) Purge(_ context.Context, operator string, seqs []uint64) ([]Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.outcomes("purge "+operator, seqs)
	for _, seq := range seqs {
		delete(f.letters, seq)
	}
	return out, nil
}

func (f *fakeLetters) EditReplay(_ context.Context, operator string, seq uint64, body []byte) (Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.letters[seq]
	if !ok {
		return Outcome{}, fmt.Errorf("no dead letter %d", seq)
	}
	f.edited[seq] = body
	f.calls = append(f.calls, fmt.Sprintf("edit %s %d", operator, seq))
	return Outcome{Shop: l.Shop, Order: l.Order, Published: true, MsgID: "edited"}, nil
}

func (f *fakeLetters) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// fakeInvoices renders a sheet per order it has print data for; the orders of unprinted have
// print data that is not printed (stale, or of a cancelled order).
type fakeInvoices struct {
	mu        sync.Mutex
	known     map[string]bool
	unprinted map[string]MissingInvoice
}

func (f *fakeInvoices) Sheets(_ context.Context, shop string, orders []string) (template.HTML, template.CSS, []MissingInvoice, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	var missing []MissingInvoice
	for _, o := range orders {
		if m, ok := f.unprinted[o]; ok {
			m.Order = o
			missing = append(missing, m)
			continue
		}
		if !f.known[o] {
			missing = append(missing, MissingInvoice{Order: o})
			continue
		}
		fmt.Fprintf(&b, `<section class="invoice" data-shop="%s" data-order="%s"><h1>ご請求書</h1></section>`, template.HTMLEscapeString(shop), template.HTMLEscapeString(o))
	}
	return template.HTML(b.String()), template.CSS("section.invoice { break-after: page; }"), missing, nil
}
