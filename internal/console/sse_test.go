package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// resultsStream creates the worker's RESULTS stream on js.
func resultsStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "RESULTS", Subjects: []string{"credit.>", "shipment.>", "invoice.>"}}); err != nil {
		t.Fatal(err)
	}
}

// publishOutcome publishes an outcome event as the worker does.
func publishOutcome(t *testing.T, js jetstream.JetStream, typ, shop string, data any) {
	t.Helper()
	body, err := events.NewOutcome(shop+":x:"+typ, typ, "cause", testNow, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: events.Subject(typ, shop), Data: body}); err != nil {
		t.Fatal(err)
	}
}

// sseEvent is one event of a live stream.
type sseEvent struct{ name, data string }

// readEvents reads a live stream's events into a channel until it ends.
func readEvents(res *http.Response) <-chan sseEvent {
	out := make(chan sseEvent, 16)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out
}

func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event in 10s")
	}
	return sseEvent{}
}

// TestLiveOutcomes: the live stream follows RESULTS from now on, for the shop asked: an outcome
// published to a real JetStream reaches the page with its badge, an older one and another shop's
// do not, and nothing of the invoice's print data goes with it.
func TestLiveOutcomes(t *testing.T) {
	t.Parallel()
	_, js := testenv.JetStream(t)
	resultsStream(t, js)
	publishOutcome(t, js, events.TypeCreditNG, testShop, events.Credit{ShopID: testShop, OrderID: "OLD-1", Result: "ng"})
	h := newHarness(t, func(c *Config) { c.JetStream = js })
	srv := httptest.NewServer(h.s)
	defer srv.Close()
	defer h.s.Close()
	// The order list follows the outcomes from after the last one when it was made; a page that
	// shows none (the shops) does not ask the stream.
	mustContain(t, body(t, h.get("/orders?shop=demo", "alice"), http.StatusOK), `data-live="on" data-since="1"`)
	mustContain(t, body(t, h.get("/shops", "alice"), http.StatusOK), `data-live="" data-since="0"`)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events?shop=demo&lang=ja", nil)
	c, _ := h.cookie("alice")
	req.AddCookie(c)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("status %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	evs := readEvents(res)
	if ev := next(t, evs); ev.name != "ready" {
		t.Fatalf("first event %+v, want ready", ev)
	}
	publishOutcome(t, js, events.TypeCreditOK, "other", events.Credit{ShopID: "other", OrderID: "O-1", Result: "ok"})
	publishOutcome(t, js, events.TypeCreditOK, testShop, events.Credit{ShopID: testShop, OrderID: "A-1", TransactionID: "21781147782", Result: "ok", Fee: 205, BilledAmount: 3155})
	publishOutcome(t, js, events.TypeCreditInvalid, testShop, events.Credit{ShopID: testShop, OrderID: "A-2", Result: "invalid",
		Errors: []events.ProviderError{{Point: "zip", Code: "er000010", Message: "郵便番号が不正です"}}})
	publishOutcome(t, js, events.TypeInvoiceOK, testShop, events.Invoice{ShopID: testShop, OrderID: "A-1",
		Invoice: &events.InvoicePrintData{Fields: map[string]string{"name": "加藤 太郎"}}})
	publishOutcome(t, js, events.TypeCreditPending, testShop, events.Credit{ShopID: testShop, OrderID: "A-3", Result: "pending", Review: "hold"})
	var got []liveOutcome
	for range 4 {
		ev := next(t, evs)
		if ev.name != "outcome" {
			t.Fatalf("event %+v, want an outcome", ev)
		}
		if strings.Contains(ev.data, "加藤") {
			t.Errorf("the live stream carries personal data: %s", ev.data)
		}
		var o liveOutcome
		if err := json.Unmarshal([]byte(ev.data), &o); err != nil {
			t.Fatal(err)
		}
		got = append(got, o)
	}
	want := []liveOutcome{
		{Type: "credit.ok", Key: "demo/A-1", Kind: "credit", Class: "b-ok", Label: "与信OK", Transaction: "21781147782"},
		{Type: "credit.invalid", Key: "demo/A-2", Kind: "credit", Class: "b-invalid", Label: "登録エラー", Text: "zip er000010: 郵便番号が不正です"},
		{Type: "invoice.ok", Key: "demo/A-1", Kind: "invoice", Class: "i-ok", Label: "請求書データ取得OK"},
		{Type: "credit.pending", Key: "demo/A-3", Kind: "credit", Class: "b-hold", Label: "保留"},
	}
	for i, w := range want {
		g := got[i]
		if g.Type != w.Type || g.Key != w.Key || g.Kind != w.Kind || g.Class != w.Class || g.Label != w.Label || g.Text != w.Text || g.Transaction != w.Transaction || g.Seq == 0 {
			t.Errorf("outcome %d: %+v, want %+v", i, g, w)
		}
	}
	// Close ends the stream, so that a shutdown does not wait for it.
	done := make(chan struct{})
	go func() { h.s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the live stream")
	}
	for range evs {
	}
}

// TestLiveOff: without a JetStream the stream says so (503), and the pages say live updates are
// off.
func TestLiveOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body(t, h.get("/events", "alice"), http.StatusServiceUnavailable)
	mustContain(t, body(t, h.get("/orders?shop=demo", "alice"), http.StatusOK), "ライブ更新なし")
}

// TestServe: Serve answers on its listener and returns once its context ends, live streams open.
func TestServe(t *testing.T) {
	t.Parallel()
	_, js := testenv.JetStream(t)
	resultsStream(t, js)
	h := newHarness(t, func(c *Config) { c.JetStream = js; c.Auth.AutoLogin = "demo"; c.Auth.InsecureCookie = true })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.s.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	res, err := http.Get(base + "/healthz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", res, err)
	}
	res.Body.Close()
	res, err = http.Get(base + "/events")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("events: %v %v", res, err)
	}
	evs := readEvents(res)
	if ev := next(t, evs); ev.name != "ready" {
		t.Fatalf("first event %+v", ev)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return in 10s")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Serve took %v to stop with a live stream open", d)
	}
	for range evs {
	}
	res.Body.Close()
	http.DefaultClient.CloseIdleConnections()
}

// TestLiveStreamLimits: a session may keep a few live streams open, the console a few hundred;
// beyond, 429; a stream closed makes room; a stream ends when its session expires.
func TestLiveStreamLimits(t *testing.T) {
	t.Parallel()
	_, js := testenv.JetStream(t)
	resultsStream(t, js)
	h := newHarness(t, func(c *Config) { c.JetStream = js })
	h.s.maxLivePerSession, h.s.maxLive = 2, 3
	srv := httptest.NewServer(h.s)
	defer srv.Close()
	defer h.s.Close()
	open := func(c *http.Cookie) (*http.Response, context.CancelFunc) {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events", nil)
		req.AddCookie(c)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if res.StatusCode == http.StatusOK {
			if ev := next(t, readEvents(res)); ev.name != "ready" {
				t.Fatalf("first event %+v", ev)
			}
		}
		return res, func() { cancel(); res.Body.Close() }
	}
	alice, _ := h.cookie("alice")
	bob, _ := h.cookie("bob")
	var closers []context.CancelFunc
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for i, want := range []struct {
		c    *http.Cookie
		code int
	}{{alice, 200}, {alice, 200}, {alice, 429}, {bob, 200}, {bob, 429}} {
		res, closeIt := open(want.c)
		closers = append(closers, closeIt)
		if res.StatusCode != want.code {
			t.Fatalf("stream %d: %d, want %d", i, res.StatusCode, want.code)
		}
	}
	closers[0]()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, closeIt := open(bob)
		closers = append(closers, closeIt)
		if res.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a stream closed made no room: %d", res.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A session that expires in 2 s: its stream ends then.
	h2 := newHarness(t, func(c *Config) { c.JetStream = js })
	srv2 := httptest.NewServer(h2.s)
	defer srv2.Close()
	defer h2.s.Close()
	ss := session{ID: "short", Operator: "alice", Via: viaPassword, Issued: h2.clock.Now().Add(2*time.Second - h2.s.cfg.Auth.SessionTTL).Unix(),
		Hash: h2.s.hashMark("alice", h2.cfg.Auth.Operators["alice"])}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv2.URL+"/events", nil)
	req.AddCookie(&http.Cookie{Name: h2.s.cookieName(), Value: h2.s.encodeSession(ss)})
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("stream: %v %v", res, err)
	}
	defer res.Body.Close()
	evs := readEvents(res)
	if ev := next(t, evs); ev.name != "ready" {
		t.Fatalf("first event %+v", ev)
	}
	select {
	case _, ok := <-evs:
		if ok {
			for range evs {
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its session by 8 s")
	}
}

// TestServeReadTimeout: a client that sends a request's headers and then its body never (or
// slowly) does not hold a connection and its handler for long.
func TestServeReadTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if h.s.readTimeout != 30*time.Second || h.s.idleTimeout <= 0 {
		t.Errorf("timeouts: read %v, idle %v", h.s.readTimeout, h.s.idleTimeout)
	}
	h.s.readTimeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /login HTTP/1.1\r\nHost: " + ln.Addr().String() + "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nname=")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := conn.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the connection is still open 5 s after its body stalled")
		}
		break // closed by the server
	}
}

// TestLiveStreamSince: a stream opened with the page's since (or, reconnecting, the browser's
// Last-Event-ID) starts after it, so an outcome published between the page and its stream (the
// worker answering a bulk action before the result page connects) is not missed, and none is
// sent twice after a reconnection. The pages carry since in data-since.
func TestLiveStreamSince(t *testing.T) {
	t.Parallel()
	_, js := testenv.JetStream(t)
	resultsStream(t, js)
	publishOutcome(t, js, events.TypeCreditNG, testShop, events.Credit{ShopID: testShop, OrderID: "OLD-1", Result: "ng"}) // seq 1
	h := newHarness(t, func(c *Config) { c.JetStream = js })
	seedOrders(h)
	srv := httptest.NewServer(h.s)
	defer srv.Close()
	defer h.s.Close()
	page := body(t, h.get("/orders?shop=demo", "alice"), http.StatusOK)
	mustContain(t, page, `data-since="1"`)
	// Published after the page, before its stream connects.
	publishOutcome(t, js, events.TypeCreditOK, testShop, events.Credit{ShopID: testShop, OrderID: "A-1", Result: "ok"})               // seq 2
	publishOutcome(t, js, events.TypeCreditCancelled, testShop, events.Credit{ShopID: testShop, OrderID: "A-2", Result: "cancelled"}) // seq 3
	open := func(query, lastID string) <-chan sseEvent {
		ctx, cancel := context.WithCancel(t.Context())
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events?shop=demo"+query, nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		c, _ := h.cookie("alice")
		req.AddCookie(c)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		evs := readEvents(res)
		if ev := next(t, evs); ev.name != "ready" {
			t.Fatalf("first event %+v, want ready", ev)
		}
		return evs
	}
	keyOf := func(ev sseEvent) string {
		var o liveOutcome
		if err := json.Unmarshal([]byte(ev.data), &o); err != nil {
			t.Fatal(err)
		}
		return o.Key
	}
	evs := open("&since=1", "")
	if a, b := keyOf(next(t, evs)), keyOf(next(t, evs)); a != "demo/A-1" || b != "demo/A-2" {
		t.Fatalf("after since=1: %s, %s; want demo/A-1, demo/A-2", a, b)
	}
	// A reconnection with Last-Event-ID 2 gets only what came after it.
	evs = open("&since=1", "2")
	if k := keyOf(next(t, evs)); k != "demo/A-2" {
		t.Fatalf("after Last-Event-ID 2: %s, want demo/A-2", k)
	}
	// A position past the stream's end (RESULTS deleted and created again since the page was
	// made): the stream goes on with what comes next instead of waiting for that sequence.
	evs = open("&since=1", "900")
	publishOutcome(t, js, events.TypeCreditOK, testShop, events.Credit{ShopID: testShop, OrderID: "A-3", Result: "ok"}) // seq 4
	if k := keyOf(next(t, evs)); k != "demo/A-3" {
		t.Fatalf("after Last-Event-ID 900 on a stream at 3: %s, want demo/A-3", k)
	}
}

// TestLiveSinceTakenBeforeThePageIsRead: an order decided while its page is made (after the
// console read it from Redis, before the page is written) comes live: the page's data-since is
// the outcome stream's last sequence before the read, so that its stream delivers the decision.
func TestLiveSinceTakenBeforeThePageIsRead(t *testing.T) {
	t.Parallel()
	_, js := testenv.JetStream(t)
	resultsStream(t, js)
	publishOutcome(t, js, events.TypeCreditNG, testShop, events.Credit{ShopID: testShop, OrderID: "OLD-1", Result: "ng"}) // seq 1
	rdb, prefix := testenv.Redis(t)
	store := orderstate.NewStore(rdb, orderstate.Config{Prefix: prefix})
	t.Cleanup(store.Close)
	h := newHarness(t, func(c *Config) { c.JetStream, c.Store = js, store })
	defer h.s.Close()
	if _, err := store.Put(context.Background(), testShop, "A1",
		orderstate.State{Status: orderstate.StatusPending, TransactionID: "21781147784", Fee: 205, BilledAmount: 3155, OrderedAt: testNow}, testNow); err != nil {
		t.Fatal(err)
	}
	seq := 1
	// The worker decides A1 right after the console's first read of Redis.
	hook := testenv.AfterCommand(rdb, func(redis.Cmder) bool { return true }, func() {
		publishOutcome(t, js, events.TypeCreditOK, testShop, events.Credit{ShopID: testShop, OrderID: "A1", Result: "ok"})
		seq++
	})
	for _, path := range []string{"/orders/demo/A1", "/orders?shop=demo", "/orders/demo/A1/reveal"} {
		before := seq
		hook.Arm()
		var w *httptest.ResponseRecorder
		if strings.HasSuffix(path, "/reveal") {
			w = h.post(path, "alice", nil)
		} else {
			w = h.get(path, "alice")
		}
		page := body(t, w, http.StatusOK)
		if !hook.Fired() {
			t.Fatalf("%s: the hook did not fire", path)
		}
		mustContain(t, page, "審査中") // A1 as read, before the decision
		m := regexp.MustCompile(`data-live="on" data-since="(\d+)"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("%s: no data-since", path)
		}
		if since, _ := strconv.Atoi(m[1]); since != before {
			t.Errorf("%s: data-since=%d, want %d (the last outcome before the page was read; %d is A1's decision, published after the read)",
				path, since, before, before+1)
		}
	}
}
