package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// lockedBuffer collects logs written from the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const registerXML = `<?xml version="1.0" encoding="UTF-8"?>
<request>
  <linkInfo><shopCode>demo00000001</shopCode><linkId>original00</linkId><linkPassword>demopass01</linkPassword></linkInfo>
  <browserInfo><httpHeader></httpHeader><deviceInfo/></browserInfo>
  <customer><shopOrderId>M-1</shopOrderId><shopOrderDate>2026/11/26</shopOrderDate><name>加藤 太郎</name>
    <kanaName>カトウ タロウ</kanaName><zip>150-0001</zip><address>東京都渋谷区神宮前1-1-1</address><companyName/>
    <sectionName/><tel>03-1234-5678</tel><email>taro@example.jp</email><billedAmount>1000</billedAmount><expand1/>
    <service>2</service></customer>
  <ship><shipName>加藤 太郎</shipName><shipKananame>カトウ タロウ</shipKananame><shipZip>150-0001</shipZip>
    <shipAddress>東京都渋谷区神宮前1-1-1</shipAddress><shipCompanyName/><shipSectionName/><shipTel>03-1234-5678</shipTel></ship>
  <details><detail><goods>品</goods><goodsPrice>1000</goodsPrice><goodsAmount>1</goodsAmount><expand2/><expand3/><expand4/></detail></details>
</request>`

// TestRunServesAndShutsDownCleanly starts the command, registers an order, leaves a request held by
// a timeout fault, and checks that a signal (ctx) still shuts the server down promptly.
func TestRunServesAndShutsDownCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-seed", "3"}, outW, logs) }()

	banner := readBanner(t, outR)
	base := regexp.MustCompile(`http://\S+/api/`).FindString(banner)
	if base == "" || !strings.Contains(banner, "linkPassword=demopass01") {
		t.Fatalf("banner lacks the base URL or the demo credentials:\n%s", banner)
	}
	res := post(t, base+"transaction.do", registerXML)
	if !strings.Contains(res, "<result>OK</result>") {
		t.Fatalf("registration: %s", res)
	}

	admin := strings.TrimSuffix(base, "/api/") + "/sandbox/"
	put(t, admin+"faults", `{"timeout_rate": 1}`)
	held := make(chan error, 1)
	go func() {
		res, err := http.Post(base+"getauthori.do", "application/xml", strings.NewReader("<request/>"))
		if err == nil {
			res.Body.Close()
		}
		held <- err
	}()
	waitForUnanswered(t, admin)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after the context was cancelled")
	}
	if err := <-held; err == nil {
		t.Error("the held request got an answer")
	}
	for _, secret := range []string{"demopass01", "加藤", "taro@example.jp", "東京都", "03-1234-5678"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs.String(), `"msg":"request"`) {
		t.Errorf("no request logged:\n%s", logs)
	}
}

func readBanner(t *testing.T, r io.Reader) string {
	t.Helper()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var b strings.Builder
	for {
		select {
		case l := <-lines:
			b.WriteString(l + "\n")
			if strings.HasPrefix(l, "admin API") {
				return b.String()
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no banner; got %q", b.String())
		}
	}
}

func post(t *testing.T, url, body string) string {
	t.Helper()
	res, err := http.Post(url, "application/xml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func put(t *testing.T, url, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("PUT %s: HTTP %d", url, res.StatusCode)
	}
}

func waitForUnanswered(t *testing.T, admin string) {
	t.Helper()
	wait.For(t, 5*time.Second, "the held request to be counted as unanswered", func() bool {
		res, err := http.Get(admin + "stats")
		if err != nil {
			t.Fatal(err)
		}
		var st sandbox.Stats
		err = json.NewDecoder(res.Body).Decode(&st)
		res.Body.Close()
		return err == nil && st.Unanswered == 1
	})
}

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shops")
	content := "# shops\n\nabc123456789:original00:pass:with:colons\n  def123456789:original00:pw2  \n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"-shop", "ghi123456789:eccubeid01:pw3", "-shops-file", file,
		"-review-delay", "2s", "-hold-delay", "3s", "-slow-delay", "4ms", "-seed", "9", "-addr", ":0",
		"-authorization-lifetime", "2112h"},
		env(ShopsEnv, "# from the environment\njkl123456789:original00:env:pw4\n"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []sandbox.Shop{
		{ShopCode: "ghi123456789", LinkID: "eccubeid01", LinkPassword: "pw3"},
		{ShopCode: "abc123456789", LinkID: "original00", LinkPassword: "pass:with:colons"},
		{ShopCode: "def123456789", LinkID: "original00", LinkPassword: "pw2"},
		{ShopCode: "jkl123456789", LinkID: "original00", LinkPassword: "env:pw4"},
	}
	if !slices.Equal(o.cfg.Shops, want) {
		t.Errorf("shops %+v", o.cfg.Shops)
	}
	if o.addr != ":0" || o.cfg.ReviewDelay != 2*time.Second || o.cfg.HoldDelay != 3*time.Second ||
		o.cfg.SlowDelay != 4*time.Millisecond || o.cfg.Seed != 9 || o.cfg.AuthorizationLifetime != 88*24*time.Hour {
		t.Errorf("options %+v", o)
	}

	d, err := parseFlags(nil, env(), io.Discard)
	if err != nil || d.addr != "127.0.0.1:8089" || d.cfg.ReviewDelay != 30*time.Second || d.cfg.HoldDelay != time.Minute ||
		d.cfg.SlowDelay != 5*time.Second || d.cfg.AuthorizationLifetime != 0 || len(d.cfg.Shops) != 0 {
		t.Errorf("defaults %+v %v", d, err)
	}
	// A delay given as 0 is none, not the default.
	z, err := parseFlags([]string{"-review-delay", "0s", "-hold-delay", "0", "-slow-delay", "0ms"}, env(), io.Discard)
	if err != nil || z.cfg.ReviewDelay != sandbox.NoDelay || z.cfg.HoldDelay != sandbox.NoDelay || z.cfg.SlowDelay != sandbox.NoDelay {
		t.Errorf("zero delays %+v %v, want sandbox.NoDelay", z, err)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "shops")
	if err := os.WriteFile(bad, []byte("ok123:original00:pw\nsecretline-without-colons\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-shop", "abc:original00"},
		{"-shop", "abc::pw"},
		{"-shops-file", bad},
		{"-shops-file", filepath.Join(t.TempDir(), "missing")},
		{"extra"},
		{"-review-delay", "soon"},
		{"-authorization-lifetime", "88"},
		{"-review-delay", "-1ns"}, {"-hold-delay", "-1s"}, {"-slow-delay", "-1ns"},
		{"-authorization-lifetime", "-1ns"},
	} {
		_, err := parseFlags(args, env(), io.Discard)
		if err == nil {
			t.Errorf("%q accepted", args)
			continue
		}
		if strings.Contains(err.Error(), "secretline") {
			t.Errorf("error quotes a shop line, which holds a password: %v", err)
		}
	}
	if _, err := parseFlags(nil, env(ShopsEnv, "secretline-without-colons"), io.Discard); err == nil || strings.Contains(err.Error(), "secretline") {
		t.Errorf("a bad line of $%s: %v, want an error that does not quote it", ShopsEnv, err)
	}
	if _, err := parseFlags([]string{"-h"}, env(), io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	if err := run(context.Background(), []string{"-h"}, io.Discard, io.Discard); err != nil {
		t.Errorf("run -h: %v", err)
	}
	if err := run(context.Background(), []string{"-shop", "a:b:c", "-shop", "a:b:c"}, io.Discard, io.Discard); err == nil {
		t.Error("run accepted the same shop twice")
	}
	if err := run(context.Background(), []string{"-authorization-lifetime", "-1h"}, io.Discard, io.Discard); err == nil {
		t.Error("run accepted a negative authorization lifetime")
	}
}

// env returns a getenv of the given name, value pairs.
func env(kv ...string) func(string) string {
	return func(k string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1]
			}
		}
		return ""
	}
}

// TestZeroDelayFlags: -review-delay 0s, -hold-delay 0s and -slow-delay 0s mean no delay
// (docs/atodene.md "Running it"). sandbox.Config reads a zero delay as "the default", so they used to
// become 30 s, 60 s and 5 s silently.
func TestZeroDelayFlags(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-seed", "5", "-review-delay", "0s", "-hold-delay", "0s", "-slow-delay", "0s"}, outW, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		outW.Close()
	})
	base := regexp.MustCompile(`http://\S+/api/`).FindString(readBanner(t, outR))

	reg := func(id, email string) string {
		x := strings.Replace(strings.Replace(registerXML, "<shopOrderId>M-1<", "<shopOrderId>"+id+"<", 1), "taro@example.jp", email, 1)
		return post(t, base+"transaction.do", x)
	}
	txID := regexp.MustCompile(`<transactionId>(\d+)</transactionId>`)
	authori := func(id string) string {
		return post(t, base+"getauthori.do", `<?xml version="1.0" encoding="UTF-8"?><request><linkInfo><shopCode>demo00000001</shopCode><linkId>original00</linkId><linkPassword>demopass01</linkPassword></linkInfo><transactionInfo><transactionId>`+id+`</transactionId></transactionInfo></request>`)
	}

	// -review-delay 0s: a review-ok buyer's manual OK is there at once.
	res := reg("Z-1", "review-ok-taro@example.jp")
	m := txID.FindStringSubmatch(res)
	if m == nil {
		t.Fatalf("registration: %s", res)
	}
	if a := authori(m[1]); !strings.Contains(a, "<manualAuthoriresult>OK</manualAuthoriresult>") {
		t.Errorf("-review-delay 0s: getauthori right after registering a review-ok buyer:\n%s\nwant manualAuthoriresult OK", a)
	}
	// -hold-delay 0s (with -review-delay 0s): a hold turns NG at once.
	res = reg("Z-2", "hold-taro@example.jp")
	if m = txID.FindStringSubmatch(res); m == nil {
		t.Fatalf("registration: %s", res)
	}
	if a := authori(m[1]); !strings.Contains(a, "<manualAuthoriresult>NG</manualAuthoriresult>") {
		t.Errorf("-review-delay 0s -hold-delay 0s: getauthori right after registering a hold buyer:\n%s\nwant manualAuthoriresult NG", a)
	}
	// -slow-delay 0s: a slow buyer's answer does not wait.
	start := time.Now()
	reg("Z-3", "slow-taro@example.jp")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("-slow-delay 0s: a slow buyer's registration took %v; want no delay", d)
	}
}

// TestStalledBodyDoesNotBlockCleanShutdown: a client that sends its headers and then stalls in the
// body used to hold its handler (blocked in io.ReadAll) until Shutdown gave up after shutdownTimeout
// (10 s) and run returned an error. The sandbox's Close, run on shutdown, now ends the read at once.
func TestStalledBodyDoesNotBlockCleanShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-seed", "7"}, outW, io.Discard) }()
	base := regexp.MustCompile(`http://(\S+)/api/`).FindStringSubmatch(readBanner(t, outR))
	conn, err := net.Dial("tcp", base[1])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers and the start of a 1000-byte body, then nothing.
	if _, err := io.WriteString(conn, "POST /api/transaction.do HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\nContent-Length: 1000\r\n\r\n<?xml version=\"1.0\"?><request>"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after the signal, with a client stalled mid-body: %v; want a clean shutdown", err)
		}
	case <-time.After(5 * time.Second): // well under shutdownTimeout
		t.Fatal("run did not return within 5 s of the signal")
	}
	outW.Close()
}

// TestStalledBodyTimesOut: the http.Server's ReadTimeout ends a request whose body stalls, so it
// does not hold a handler past the timeout (here shortened from readTimeout), and the server goes on
// serving.
func TestStalledBodyTimesOut(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	opts := options{addr: "127.0.0.1:0", readTimeout: 300 * time.Millisecond}
	opts.cfg.Seed = 11
	go func() { done <- serve(ctx, opts, outW, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		outW.Close()
	})
	base := regexp.MustCompile(`http://(\S+)/api/`).FindStringSubmatch(readBanner(t, outR))
	conn, err := net.Dial("tcp", base[1])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /api/transaction.do HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n<request>"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, conn) // until the server closes the connection
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the stalled request held its connection for %v; want it closed after the 300ms read timeout", d)
	}
	if res := post(t, "http://"+base[1]+"/api/getauthori.do", "<request/>"); !strings.Contains(res, "<result>NG</result>") {
		t.Errorf("after the timeout: %s", res)
	}
}
