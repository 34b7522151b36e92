package browser_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/css"
	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/atodene-worker/atodene-worker/internal/testenv/browser"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const ordersPage = `<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>受注一覧</title>
<style>body { font-family: sans-serif; } .ok { background: #d8f5d0; }</style></head>
<body>
<h1>受注一覧</h1>
<img id="logo" alt="" src="data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///ywAAAAAAQABAAACAUwAOw==">
<table><tr><th>注文番号</th><th>状態</th></tr>
<tr><td>DEMO-OK</td><td id="status" class="ok">与信OK</td></tr></table>
<form action="/search" method="get"><input id="q" name="q"><button id="search" type="submit">検索</button></form>
<button id="check" type="button">再確認</button>
<p id="result"></p>
<script>
document.getElementById("check").addEventListener("click", async () => {
  const r = await fetch("/api/status");
  const p = document.getElementById("result");
  p.textContent = await r.text();
  p.className = "done";
});
</script>
</body></html>`

const printPage = `<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>請求書</title>
<style>.sheet { page-break-after: always; } h2 { background: #eee; }</style></head>
<body>
<section class="sheet"><h2>請求書 1</h2><p>与信OK</p></section>
<section><h2>請求書 2</h2><p>与信OK</p></section>
</body></html>`

const foreignPage = `<!doctype html>
<html><head><meta charset="utf-8"></head>
<body><p id="p">外部画像</p><img src="http://example.invalid/logo.png" alt=""></body></html>`

// consoleServer serves the pages of the self-test, all from its own host.
func consoleServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	page := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, body)
		}
	}
	mux.HandleFunc("GET /{$}", page(ordersPage))
	mux.HandleFunc("GET /print", page(printPage))
	mux.HandleFunc("GET /foreign", page(foreignPage))
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "与信OK（1件）")
	})
	mux.HandleFunc("GET /search", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><p id="found">検索: %s</p>`, r.URL.Query().Get("q"))
	})
	mux.HandleFunc("GET /favicon.ico", http.NotFound)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestConsolePage(t *testing.T) {
	t.Parallel()
	srv := consoleServer(t)
	b := browser.New(t)

	b.Run(chromedp.Navigate(srv.URL + "/"))
	if got := browser.Get(b, chromedp.Text(chromedp.CSS("h1"))); got != "受注一覧" {
		t.Errorf("h1 = %q, want 受注一覧", got)
	}
	if got := browser.Get(b, chromedp.Text(chromedp.CSS("#status"))); got != "与信OK" {
		t.Errorf("status = %q, want 与信OK", got)
	}
	// The Japanese text is drawn with a CJK font, not as empty boxes.
	if fonts := platformFonts(b, "h1"); !slices.ContainsFunc(fonts, func(f string) bool { return strings.Contains(f, "CJK") }) {
		t.Errorf("h1 is drawn with %q, want a Noto Sans CJK font (install it: %s)", fonts, browser.InstallHint)
	}

	b.Run(
		chromedp.Click(chromedp.CSS("#check")),
		chromedp.WaitVisible(chromedp.CSS("#result.done")),
	)
	if got := browser.Get(b, chromedp.Text(chromedp.CSS("#result"))); got != "与信OK（1件）" {
		t.Errorf("after the click, result = %q, want 与信OK（1件）", got)
	}

	// A full-page PNG of the orders page, in the test's artifacts directory.
	shot := b.Screenshot("orders")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", shot, err)
	}
	if cfg.Width != 1280 || cfg.Height < 100 {
		t.Errorf("screenshot is %d×%d, want 1280 wide and a page's height", cfg.Width, cfg.Height)
	}
	if filepath.Base(filepath.Dir(shot)) != t.Name() {
		t.Errorf("screenshot saved in %s, want a directory named after the test", filepath.Dir(shot))
	}

	b.Run(
		chromedp.SendKeys(chromedp.CSS("#q"), "与信"),
		chromedp.Click(chromedp.CSS("#search")),
		chromedp.WaitVisible(chromedp.CSS("#found")),
	)
	if got := browser.Get(b, chromedp.Text(chromedp.CSS("#found"))); got != "検索: 与信" {
		t.Errorf("search result = %q, want 検索: 与信", got)
	}

	// What the page loaded was recorded, so that an empty ForeignRequests means something.
	reqs := b.Requests()
	for _, want := range []string{srv.URL + "/", srv.URL + "/api/status", srv.URL + "/search?q=%E4%B8%8E%E4%BF%A1"} {
		if !slices.Contains(reqs, want) {
			t.Errorf("requests %q lack %s", reqs, want)
		}
	}
	if foreign := b.ForeignRequests(srv.URL); len(foreign) != 0 {
		t.Errorf("requests to hosts other than the console's: %q", foreign)
	}
	if foreign := b.ForeignRequests(strings.TrimPrefix(srv.URL, "http://")); len(foreign) != 0 {
		t.Errorf("with host:port, requests to other hosts: %q", foreign)
	}

	// A page that loads an image from elsewhere is caught.
	b.Run(chromedp.Navigate(srv.URL + "/foreign"))
	want := []string{"http://example.invalid/logo.png"}
	if got := b.ForeignRequests(srv.URL); !slices.Equal(got, want) {
		t.Errorf("after /foreign, ForeignRequests = %q, want %q (all requests: %q)", got, want, b.Requests())
	}
}

// platformFonts returns the families of the fonts the browser drew the element's text with.
func platformFonts(b *browser.Browser, sel string) []string {
	return browser.Get(b, func(ctx context.Context, tgt *chromedp.Target) ([]string, error) {
		ids, err := chromedp.QueryNodeIDs(chromedp.CSS(sel))(ctx, tgt)
		if err != nil {
			return nil, err
		}
		res, err := cdp.Call(ctx, tgt, css.GetPlatformFontsForNode, css.GetPlatformFontsForNodeParams{NodeID: ids[0]})
		if err != nil {
			return nil, err
		}
		var families []string
		for _, f := range res.Fonts {
			families = append(families, f.FamilyName)
		}
		return families, nil
	})
}

func TestPrintToPDF(t *testing.T) {
	t.Parallel()
	srv := consoleServer(t)
	b := browser.New(t)
	for _, tc := range []struct {
		path  string
		pages int
	}{
		{"/print", 2}, // two sections, a page break after the first
		{"/", 1},
	} {
		b.Run(chromedp.Navigate(srv.URL + tc.path))
		pdf, err := b.PrintToPDF()
		if err != nil {
			t.Fatalf("%s: PrintToPDF: %v", tc.path, err)
		}
		if got := browser.PDFPageCount(pdf); got != tc.pages {
			t.Errorf("%s: the PDF has %d pages, want %d", tc.path, got, tc.pages)
		}
		// The page tree's own count agrees.
		if m := pageTreeCount.FindSubmatch(pdf); m == nil || string(m[1]) != strconv.Itoa(tc.pages) {
			t.Errorf("%s: the page tree says %q, want /Count %d", tc.path, m, tc.pages)
		}
		// A4 is 210×297 mm, 595×842 points; Chromium rounds the paper to whole CSS pixels.
		var w, h float64
		if i := bytes.Index(pdf, []byte("/MediaBox [")); i < 0 {
			t.Errorf("%s: the PDF has no /MediaBox", tc.path)
		} else if _, err := fmt.Sscanf(string(pdf[i:]), "/MediaBox [0 0 %g %g]", &w, &h); err != nil || math.Abs(w-595) > 2 || math.Abs(h-842) > 2 {
			t.Errorf("%s: the PDF is not on A4 paper: %q (%v)", tc.path, pdf[i:min(i+40, len(pdf))], err)
		}
	}
}

var pageTreeCount = regexp.MustCompile(`/Type /Pages\s*/Count (\d+)`)

// fatalRecorder stands in for the test where a failure is the expected outcome: Fatalf and Skipf
// record the message and end the goroutine, as the real ones do; everything else goes to the test.
type fatalRecorder struct {
	testing.TB
	fatal, skip string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// onGoroutine runs f on a goroutine of its own, so that its Fatalf or Skipf ends only that one.
func onGoroutine(f func()) {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	<-done
}

func TestStuckActionFailsInTime(t *testing.T) {
	t.Parallel()
	srv := consoleServer(t)
	rec := &fatalRecorder{TB: t}
	// Long enough for the first page on a loaded machine (1 s failed a CI run), far below the
	// default 20 s.
	b := browser.New(rec, browser.WithActionTimeout(5*time.Second))
	b.Run(chromedp.Navigate(srv.URL + "/"))
	start := time.Now()
	onGoroutine(func() { b.Run(chromedp.WaitVisible(chromedp.CSS("#never"))) })
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("a stuck action took %s to fail, want about 5s", took)
	}
	for _, want := range []string{"action 1 of 1 failed at", "did not finish within 5s", srv.URL + "/", "failure-1.png"} {
		if !strings.Contains(rec.fatal, want) {
			t.Errorf("failure message %q lacks %q", rec.fatal, want)
		}
	}
}

func TestMissingChromium(t *testing.T) {
	t.Setenv(browser.EnvChromium, filepath.Join(t.TempDir(), "no-chromium"))

	rec := &fatalRecorder{TB: t}
	onGoroutine(func() { browser.New(rec) })
	if !strings.Contains(rec.fatal, browser.InstallHint) || rec.skip != "" {
		t.Errorf("without Chromium: fatal %q, skip %q; want a failure naming %q", rec.fatal, rec.skip, browser.InstallHint)
	}

	t.Setenv(browser.EnvSkip, "1")
	rec = &fatalRecorder{TB: t}
	onGoroutine(func() { browser.New(rec) })
	if rec.skip == "" || rec.fatal != "" {
		t.Errorf("without Chromium and %s=1: fatal %q, skip %q; want a skip", browser.EnvSkip, rec.fatal, rec.skip)
	}
}

func TestProcessesEndWithTheTest(t *testing.T) {
	t.Parallel()
	var pid int
	var profile string
	t.Run("browser", func(t *testing.T) {
		b := browser.New(t)
		pid = b.PID()
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatalf("browser process %d: %v", pid, err)
		}
		for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
			if v, ok := bytes.CutPrefix(arg, []byte("--user-data-dir=")); ok {
				profile = string(v)
			}
		}
		if profile == "" {
			t.Fatalf("browser process %d has no --user-data-dir: %q", pid, cmdline)
		}
	})
	if pid == 0 {
		t.Fatal("no browser process id")
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("browser process %d still exists after its test (kill 0: %v)", pid, err)
	}
	if left := processesUsing(profile); len(left) > 0 {
		t.Errorf("processes %v still use the profile %s after the test", left, profile)
	}
	if _, err := os.Stat(profile); !os.IsNotExist(err) {
		t.Errorf("profile %s left behind (stat: %v)", profile, err)
	}
}

// processesUsing returns the ids of the processes whose command line has --user-data-dir=dir.
func processesUsing(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte("--user-data-dir="+dir+"\x00")) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}
