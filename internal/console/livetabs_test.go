package console

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/browser"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// TestConsoleTabsShareOneLiveStream: an operator opens the order list and then six orders in
// tabs of their own, as one does to work through them. The tabs share one live stream (one
// connection), so the seventh page loads: with a stream a tab, over HTTP/1.1 (the browser keeps at
// most 6 connections to a host) the six first tabs held every connection and the seventh, or any
// form posted from them, waited forever. An outcome reaches the tab of its order through the tab
// that holds the stream; when that tab goes, another one follows the stream on.
func TestConsoleTabsShareOneLiveStream(t *testing.T) {
	t.Parallel()
	_, js := testenv.JetStream(t)
	resultsStream(t, js)
	h := newHarness(t, func(c *Config) { c.JetStream, c.Auth.InsecureCookie, c.Now = js, true, time.Now })
	seedOrders(h)
	srv := httptest.NewServer(h.s)
	t.Cleanup(srv.Close)
	t.Cleanup(h.s.Close)
	b := browser.New(t)
	b.Run(
		chromedp.Navigate(srv.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS("#login-name"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#login-password"), testPassword),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#live-state.on`)),
	)
	tabs := map[string]context.Context{}
	for _, o := range []string{"OK-1", "NG-1", "REVIEW-1", "HOLD-1", "SHIP-1", "INVALID-1"} {
		tab, cancel := chromedp.NewContext(b.Context())
		t.Cleanup(cancel)
		// The tab is opened with its own context (a timeout's, cancelled, would close it).
		if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`true`)); err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithTimeout(tab, 20*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/orders/demo/"+o))
		if err == nil {
			_, err = chromedp.Run(ctx, chromedp.WaitVisible(chromedp.CSS(`#live-state.on`)))
		}
		stop()
		if err != nil {
			t.Fatalf("tab %d (order %s) with %d live streams open: %v", len(tabs)+2, o, h.s.liveCount(), err)
		}
		tabs[o] = tab
	}
	if n := h.s.liveCount(); n != 1 {
		t.Errorf("%d live streams open for seven tabs, want 1", n)
	}

	// An outcome reaches a tab that does not hold the stream.
	badge := func(tab context.Context, order, class string) error {
		ctx, stop := context.WithTimeout(tab, 15*time.Second)
		defer stop()
		_, err := chromedp.Run(ctx, chromedp.WaitVisible(chromedp.CSS(`[data-key="demo/`+order+`"] .badge.`+class+`[data-kind="credit"]`)))
		return err
	}
	publishOutcome(t, js, events.TypeCreditOK, testShop, events.Credit{ShopID: testShop, OrderID: "REVIEW-1", Result: "ok"})
	if err := badge(tabs["REVIEW-1"], "REVIEW-1", "b-ok"); err != nil {
		t.Errorf("the credit.ok of REVIEW-1 did not reach its tab: %v", err)
	}

	// The first tab, which holds the stream, leaves the console: another tab follows it on.
	b.Run(chromedp.Navigate("about:blank"))
	wait.For(t, 10*time.Second, "a tab follows the stream on", func() bool { return h.s.liveCount() == 1 })
	publishOutcome(t, js, events.TypeCreditNG, testShop, events.Credit{ShopID: testShop, OrderID: "HOLD-1", Result: "ng"})
	if err := badge(tabs["HOLD-1"], "HOLD-1", "b-ng"); err != nil {
		t.Errorf("after the first tab left, the credit.ng of HOLD-1 did not reach its tab: %v", err)
	}
}

func (s *Server) liveCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}
