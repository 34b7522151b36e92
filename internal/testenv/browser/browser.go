// Package browser drives a real headless Chromium for tests of the web console: one browser per
// test, started by New and stopped when the test ends. It runs chromedp actions with a time limit
// each (Run, Get), records every network request of the page (Requests, ForeignRequests), saves
// full-page screenshots where CI collects them (Screenshot) and prints the page to PDF
// (PrintToPDF, PDFPageCount).
//
// The browser is Debian's chromium: $CHROMIUM, else /usr/bin/chromium, chromium or
// chromium-browser on the PATH. Where none is installed New fails the test, saying how to install
// it, unless ATODENE_SKIP_BROWSER=1, which makes it skip the test instead.
//
// A typical test:
//
//	srv := httptest.NewServer(handler)
//	b := browser.New(t)
//	b.Run(chromedp.Navigate(srv.URL + "/orders"))
//	if got := browser.Get(b, chromedp.Text(chromedp.CSS("h1"))); got != "受注一覧" { ... }
//	b.Screenshot("orders")
//	if foreign := b.ForeignRequests(srv.URL); len(foreign) > 0 { t.Errorf("requests to other hosts: %q", foreign) }
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Environment variables read by New.
const (
	// EnvChromium names the Chromium executable to use instead of looking for one.
	EnvChromium = "CHROMIUM"
	// EnvSkip, set to 1, makes New skip the test where no Chromium is installed, instead of
	// failing it.
	EnvSkip = "ATODENE_SKIP_BROWSER"
)

// InstallHint is the command that installs the browser and the Japanese fonts the tests need.
const InstallHint = "apt-get install -y chromium fonts-noto-cjk"

// DefaultActionTimeout is how long one action of Run or Get may take before the test fails.
const DefaultActionTimeout = 20 * time.Second

const (
	startTimeout = 30 * time.Second // for Chromium to start and open its tab
	closeTimeout = 10 * time.Second // for Chromium to close gracefully before it is killed
	outputLimit  = 64 << 10         // bytes of Chromium's own output kept for a failed test's log
)

// Option changes how New starts the browser.
type Option func(*config)

type config struct {
	actionTimeout time.Duration
	width, height int
}

// WithActionTimeout sets how long each action of Run and Get, and each Screenshot and PrintToPDF,
// may take (default DefaultActionTimeout). A zero or negative d keeps the default.
func WithActionTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.actionTimeout = d
		}
	}
}

// WithWindowSize sets the size of the browser window in CSS pixels (default 1280×800). A
// full-page screenshot is as wide as the window and as tall as the page.
func WithWindowSize(width, height int) Option {
	return func(c *config) {
		if width > 0 && height > 0 {
			c.width, c.height = width, height
		}
	}
}

// Browser is one headless Chromium with one tab, owned by one test. Its methods fail the test on
// error (except PrintToPDF, which returns it) and so must be called from the test's goroutine.
type Browser struct {
	t       testing.TB
	ctx     context.Context // the tab's chromedp context: lives until the test ends
	timeout time.Duration
	output  *tailBuffer
	pid     int

	mu       sync.Mutex
	requests []string // URLs of every request the tab has made, in order
	failures int      // screenshots taken by failed actions, to name them apart
}

// New starts a headless Chromium for the test, with a fresh temporary profile, and opens one tab
// on about:blank. The browser is closed when the test ends (gracefully, then killed after 10 s),
// with every process it started and its profile directory; Chromium's own output is logged if the
// test failed.
//
// Where no Chromium is installed New fails the test with a message naming InstallHint, or skips
// it if ATODENE_SKIP_BROWSER=1. It fails the test if the browser does not start within 30 s.
func New(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	cfg := config{actionTimeout: DefaultActionTimeout, width: 1280, height: 800}
	for _, o := range opts {
		o(&cfg)
	}
	path, err := findChromium()
	if err != nil {
		if os.Getenv(EnvSkip) == "1" {
			t.Skipf("browser: %v (%s=1)", err, EnvSkip)
		}
		t.Fatalf("browser: %v; install it with: %s (or set %s=1 to skip the browser tests)", err, InstallHint, EnvSkip)
	}

	output := &tailBuffer{limit: outputLimit}
	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		// Headless, no sandbox (the tests may run as root), no GPU, and nothing that would
		// reach for the internet on its own: a closed network refuses those connections.
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "ja-JP"),
		chromedp.WindowSize(cfg.width, cfg.height),
		// No UserDataDir: chromedp then creates a fresh temporary --user-data-dir, kills any
		// process still using it when the browser exits, and removes it.
		chromedp.CombinedOutput(output),
	)
	// The browser lives as long as this context, not the test's: the cleanup below closes it
	// gracefully first, which t.Context (cancelled before the cleanups run) would pre-empt.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	b := &Browser{t: t, ctx: tabCtx, timeout: cfg.actionTimeout, output: output}

	t.Cleanup(func() {
		closeCtx, cancel := context.WithTimeout(tabCtx, closeTimeout)
		_ = chromedp.Cancel(closeCtx) // graceful Browser.close; an error here means it was killed
		cancel()
		cancelTab()
		cancelAlloc() // kills the browser if it still runs, waits for it and removes its profile
		if t.Failed() {
			if out := output.String(); out != "" {
				t.Logf("browser: Chromium's output:\n%s", out)
			}
		}
	})

	// The first action starts the browser and must run on the long-lived context (a timeout on
	// it would stop the browser), so the start is bounded by a timer that cancels everything.
	timer := time.AfterFunc(startTimeout, cancelTab)
	err = chromedp.Do(tabCtx)
	if !timer.Stop() {
		err = fmt.Errorf("not started within %s", startTimeout)
	}
	if err == nil {
		err = chromedp.Listen(tabCtx, b.record)
	}
	if err != nil {
		t.Fatalf("browser: starting %s: %v\nChromium's output:\n%s", path, err, output.String())
	}
	if p := chromedp.FromContext(tabCtx).Browser.Process(); p != nil {
		b.pid = p.Pid
	}
	return b
}

// findChromium returns the path of the Chromium to run: $CHROMIUM if set (and an error if it is
// not an executable), else the first of /usr/bin/chromium, chromium and chromium-browser found.
func findChromium() (string, error) {
	if p := os.Getenv(EnvChromium); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s=%s is not an executable: %w", EnvChromium, p, err)
		}
		return path, nil
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", errors.New("no Chromium is installed (looked for $CHROMIUM, /usr/bin/chromium, chromium and chromium-browser on the PATH)")
}

// Context returns the tab's chromedp context, for calls Run and Get do not cover (chromedp.Call,
// chromedp.Events). It is cancelled when the test ends. Bound each call with context.WithTimeout
// derived from it.
func (b *Browser) Context() context.Context { return b.ctx }

// PID returns the process id of the browser's main process (0 if unknown). The process and its
// children are gone once the test's cleanups have run.
func (b *Browser) PID() int { return b.pid }

// Run runs the actions in order in the tab, each with the action time limit (default 20 s). On
// the first error it saves a screenshot of the page (best effort) and fails the test at the
// caller's line, saying which action failed ("action 2 of 3"), the page's URL then and, for a
// time-out, that it was one. For an action that returns a value, use Get.
func (b *Browser) Run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	for i, a := range actions {
		if _, err := run(b, a); err != nil {
			b.fail(fmt.Sprintf("action %d of %d", i+1, len(actions)), err)
		}
	}
}

// Get runs one action that returns a value, such as chromedp.Text or chromedp.Evaluate, with the
// action time limit, and returns the value. On error it fails the test as Run does.
func Get[T any](b *Browser, action chromedp.Action[T]) T {
	b.t.Helper()
	v, err := run(b, action)
	if err != nil {
		b.fail("action", err)
	}
	return v
}

// run runs the action under the action time limit and names a time-out as such.
func run[T any](b *Browser, action chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && b.ctx.Err() == nil {
		err = fmt.Errorf("did not finish within %s (the page may be stuck or the element absent): %w", b.timeout, err)
	}
	return v, err
}

// fail saves a screenshot of the page as it is, if the browser still answers, and fails the test.
func (b *Browser) fail(what string, err error) {
	b.t.Helper()
	where := "unknown"
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if loc, lerr := chromedp.Run(ctx, chromedp.Location()); lerr == nil {
		where = loc
	}
	b.mu.Lock()
	b.failures++
	name := fmt.Sprintf("failure-%d", b.failures)
	b.mu.Unlock()
	shot := ""
	if path, serr := b.saveScreenshot(ctx, name); serr == nil {
		shot = "; screenshot " + path
	}
	b.t.Fatalf("browser: %s failed at %s: %v%s", what, where, err, shot)
}

// tailBuffer keeps the last limit bytes written to it; Chromium writes to it from another
// goroutine.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.limit; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

// String returns the text kept, less the lines about D-Bus, which a headless Chromium without a
// desktop session writes by the dozen and which say nothing about a failure.
func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out strings.Builder
	for line := range strings.Lines(string(w.buf)) {
		if !strings.Contains(line, ":dbus/") && !strings.Contains(line, "D-Bus") {
			out.WriteString(line)
		}
	}
	return out.String()
}
