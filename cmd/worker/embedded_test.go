//go:build !noembedded

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/config"
	pub "github.com/atodene-worker/atodene-worker/internal/publisher"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// embeddedWorker is the command line of an embedded worker with its own data directory and
// free ports.
type embeddedWorker struct {
	args              []string
	http, nats, redis string // the addresses it listens on
}

func newEmbeddedWorker(t *testing.T, dir string) embeddedWorker {
	w := embeddedWorker{http: freeAddr(t), nats: freeAddr(t), redis: freeAddr(t)}
	w.args = []string{"-embedded", "-config", filepath.Join(dir, "none.yaml"), "-data-dir", dir,
		"-http-addr", w.http, "-embedded-nats-addr", w.nats, "-embedded-redis-addr", w.redis,
		"-embedded-console-addr", "127.0.0.1:0", "-embedded-no-samples"}
	return w
}

func embeddedArgs(t *testing.T, dir string) []string { return newEmbeddedWorker(t, dir).args }

// startInProcess runs the worker with args until the test ends, and returns once it prints
// its "publish events" line.
func startInProcess(t *testing.T, args []string) (*syncBuffer, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, &stdout, &stderr) }()
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return fmt.Errorf("did not stop in 20s after cancel")
		}
	}
	started := wait.Until(20*time.Second, func() bool {
		if strings.Contains(stdout.String(), "publish events to nats://") {
			return true
		}
		select {
		case err := <-done:
			t.Fatalf("stopped before it started: %v\nstdout:\n%s", err, stdout.String())
		default:
		}
		return false
	})
	if !started {
		t.Fatalf("not started in 20s; stdout:\n%s", stdout.String())
	}
	return &stdout, stop
}

// TestEmbedded runs the whole product in-process with no shops file, as the README's quick start
// does, then stops it as SIGTERM would (context cancelled): it must start, say where NATS listens,
// publish the sample orders once (one per sandbox rule, each handled), and exit 0.
func TestEmbedded(t *testing.T) {
	w := newEmbeddedWorker(t, t.TempDir())
	args := slices.DeleteFunc(slices.Clone(w.args), func(a string) bool { return a == "-embedded-no-samples" })
	stdout, stop := startInProcess(t, append(args, "-log-level", "warn"))
	waitReady(t, "http://"+w.http+"/readyz")
	nc, err := nats.Connect("nats://" + w.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	wait.For(t, 30*time.Second, "the sample orders handled", func() bool {
		return strings.Contains(stdout.String(), "published 8 sample orders") &&
			countSubject(t, js, "DLQ", "dlq.orders.created."+DemoShopID) == 1 &&
			countSubject(t, js, "RESULTS", "credit.ok."+DemoShopID) >= 1
	})
	if n := countSubject(t, js, "ORDERS", "orders.created."+DemoShopID); n != len(demoBatch) {
		t.Errorf("ORDERS holds %d sample orders, want %d", n, len(demoBatch))
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for _, want := range []string{"embedded NATS", "embedded Redis-protocol server (in memory, not durable)", `shop "demo"`,
		"for publisher: export ATODENE_PUBLISHER_NATS_URL=nats://" + w.nats + " ATODENE_PUBLISHER_REDIS_URL=redis://" + w.redis + "\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestEmbeddedConsole: the embedded mode serves the operators' console on loopback and prints its
// address; a client on this machine is logged in as the demo operator without a password, and the
// page says so; the console ends with the worker.
func TestEmbeddedConsole(t *testing.T) {
	w := newEmbeddedWorker(t, t.TempDir())
	stdout, stop := startInProcess(t, append(w.args, "-log-level", "warn"))
	defer func() { _ = stop() }()
	waitReady(t, "http://"+w.http+"/readyz")
	m := regexp.MustCompile(`operators' console on (http://127\.0\.0\.1:\d+/) \(demo: this machine is logged in as "demo" without a password`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("the banner has no console line:\n%s", stdout.String())
	}
	res, err := http.Get(m[1] + "orders?shop=demo")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(page), `id="demo-notice"`) || !strings.Contains(string(page), `id="orders-table"`) {
		t.Fatalf("GET %sorders: %d\n%s", m[1], res.StatusCode, page)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	http.DefaultClient.CloseIdleConnections()
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := http.Get(m[1] + "healthz"); err == nil {
		t.Error("the console still answers after the worker stopped")
	}
}

// TestEmbeddedBrokenShopsFile: a shops file that exists is loaded and validated with -embedded
// too; its errors stop the start-up instead of running the demo shop.
func TestEmbeddedBrokenShopsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shops.yaml")
	content := strings.Replace(shopsYAML, "own-cart.password", "missing.password", 1)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(embeddedArgs(t, dir), "-config", path)
	var stdout, stderr bytes.Buffer
	err := runEnv(context.Background(), args, lookup(passwordEnv), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "missing.password") {
		t.Fatalf("err = %v, want the shops file's error about missing.password", err)
	}
	if strings.Contains(stdout.String(), "sandbox") {
		t.Errorf("the demo sandbox started in place of the broken shops file:\n%s", stdout.String())
	}
}

// TestEmbeddedDataDirLocked: a second embedded worker on the same data directory is refused,
// naming the directory and the process that holds it.
func TestEmbeddedDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	_, stop := startInProcess(t, embeddedArgs(t, dir))
	defer func() { _ = stop() }()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), embeddedArgs(t, dir), &stdout, &stderr)
	want := fmt.Sprintf("-data-dir %s is in use by another embedded worker (process %d)", dir, os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second worker on the same data directory: err = %v, want %q", err, want)
	}
}

// TestEmbeddedRestart stops an embedded worker with orders under review, cleanly and with
// SIGKILL, and starts it again: a clean stop says how many orders under review its in-memory
// state forgets and leaves nothing to resume; a store left by a kill is refused, with how to
// reset it, instead of forgetting those orders without a word.
func TestEmbeddedRestart(t *testing.T) {
	bin := buildWorker(t)
	dir := t.TempDir()
	w := newEmbeddedWorker(t, dir)
	args, natsURL := w.args, "nats://"+w.nats
	start := func(extra ...string) (*exec.Cmd, *syncBuffer) {
		var out syncBuffer
		cmd := exec.Command(bin, append(append(args, "-log-level", "warn"), extra...)...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		wait.For(t, 30*time.Second, "the embedded worker ready", func() bool { return ready("http://" + w.http + "/readyz") })
		return cmd, &out
	}
	underReview := func(prefix string, n int) {
		nc, err := nats.Connect(natsURL)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		for i := range n {
			publishOrder(t, js, DemoShopID, fmt.Sprintf("%s-%d", prefix, i), "review-ok@example.jp")
		}
		wait.For(t, 20*time.Second, "orders under review", func() bool {
			return countSubject(t, js, "RESULTS", "credit.pending."+DemoShopID) >= n
		})
	}

	cmd, out := start()
	underReview("CLEAN", 3)
	waitingAndDead(t, natsURL)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, out.String())
	}
	if want := "embedded mode: forgotten with the in-memory state and " + filepath.Join(dir, "nats") + ": events not handled yet 0, orders under review 3, events waiting for their order 1, dead letters 1"; !strings.Contains(out.String(), want) {
		t.Errorf("a clean stop did not say what it forgets, %q:\n%s", want, out.String())
	}

	cmd, _ = start() // a clean restart starts afresh
	underReview("KILLED", 2)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	refused := exec.Command(bin, args...)
	got, err := refused.CombinedOutput()
	want := "holds the JetStream store of an embedded run that did not stop cleanly (killed or crashed)"
	if err == nil || !strings.Contains(string(got), want) || !strings.Contains(string(got), "Remove "+filepath.Join(dir, "nats")) {
		t.Fatalf("restart after SIGKILL: err %v, output:\n%s\nwant a refusal saying %q and how to reset", err, got, want)
	}
	if err := os.RemoveAll(filepath.Join(dir, "nats")); err != nil {
		t.Fatal(err)
	}
	// The reset the refusal names; then a backlog that the stop leaves: 40 slow orders (5 s each
	// at the sandbox) for 4 handling slots and a 1 s grace.
	cmd, out = start("-concurrency", "4", "-shutdown-grace", "1s")
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	for i := range 40 {
		publishOrder(t, js, DemoShopID, fmt.Sprintf("SLOW-%d", i), "slow@example.jp")
	}
	nc.Close()
	time.Sleep(time.Second)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, out.String())
	}
	if m := regexp.MustCompile(`events not handled yet (\d+),`).FindStringSubmatch(out.String()); m == nil || m[1] == "0" {
		t.Errorf("a clean stop with a backlog did not say how many events it forgets:\n%s", out.String())
	}
}

// TestDemo runs the demo end to end: every sandbox rule meets its expected outcome. It runs
// beside an embedded worker on the default data directory and addresses of the test: the demo
// takes a directory and ports of its own. It reads no shops file: one that exists (here, one that
// would not even load) leaves the demo to the sandbox's demo shop.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	args := embeddedArgs(t, dir)
	_, stop := startInProcess(t, args)
	defer func() { _ = stop() }()
	shops := filepath.Join(dir, "shops.yaml")
	if err := os.WriteFile(shops, []byte("shops: [not a shop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	err := run(context.Background(), append(args, "-demo", "-log-level", "error", "-config", shops), &stdout, &stderr)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{
		"DEMO-OK", "credit.ok", "credit.pending → credit.ok", "credit.pending → credit.ng",
		"credit.pending → credit.pending(hold) → credit.ng", "dead letter (invalid)", "60205",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestPublisherReachesEmbeddedFromTheBanner: another terminal that sets only what the banner
// prints reaches the embedded product with publisher: it publishes an order, and reads the order's
// state and the dead letters.
func TestPublisherReachesEmbeddedFromTheBanner(t *testing.T) {
	dir := t.TempDir()
	w := newEmbeddedWorker(t, dir)
	stdout, stop := startInProcess(t, append(w.args, "-redis-prefix", "banner-test:", "-log-level", "warn"))
	defer func() { _ = stop() }()
	waitReady(t, "http://"+w.http+"/readyz")
	env := map[string]string{}
	for line := range strings.Lines(stdout.String()) {
		if rest, ok := strings.CutPrefix(line, "for publisher: export "); ok {
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		}
	}
	if env["ATODENE_PUBLISHER_REDIS_PREFIX"] != "banner-test:" {
		t.Fatalf("the banner's settings %v lack the Redis prefix:\n%s", env, stdout.String())
	}
	publisher := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		app := &pub.App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
		if err := app.Run(context.Background(), args); err != nil {
			t.Fatalf("publisher %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	publisher("publish", "-type", "order.created", "-file", writeOrder(t, dir))
	wait.For(t, 20*time.Second, "the order's outcome", func() bool {
		var out, errOut bytes.Buffer
		app := &pub.App{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
		return app.Run(context.Background(), []string{"order", "show", DemoShopID, "BANNER-1"}) == nil &&
			regexp.MustCompile(`(?m)^credit +ok$`).MatchString(out.String())
	})
	publisher("dlq", "ls")
}

// writeOrder writes the data of order BANNER-1 of the demo shop to a file and returns its path.
func writeOrder(t *testing.T, dir string) string {
	path := filepath.Join(dir, "order.json")
	body := `{"shop_id":"demo","order_id":"BANNER-1","ordered_at":"2026-11-26T10:14:03+09:00",
"buyer":{"name":"加藤 太郎","name_kana":"カトウ タロウ","zip":"150-0001","address":"東京都渋谷区神宮前1-1-1","phone":"03-1234-5678","email":"taro@example.jp"},
"items":[{"name":"緑茶","unit_price":1200,"quantity":2}],"shipping_fee":550,"billed_amount":2950}`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitingAndDead publishes a cancel for an order the worker has never seen (it waits for the
// order) and an order of a shop it does not know (a dead letter), and waits until both are handled.
func waitingAndDead(t *testing.T, natsURL string) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	cancel := `{"specversion":"1.0","id":"c-1","source":"test","type":"order.cancelled","data":{"shop_id":"demo","order_id":"NOPE-1","reason":"buyer"}}`
	if _, err := js.Publish(context.Background(), "orders.cancelled.demo", []byte(cancel)); err != nil {
		t.Fatal(err)
	}
	publishOrder(t, js, "nope", "NOPE-2", "taro@example.jp")
	wait.For(t, time.Minute, "a waiting event and a dead letter", func() bool {
		return len(readStream(t, js, "ATODENE_KEPT")) == 1 && len(readStream(t, js, "DLQ")) == 1
	})
}

// TestEmbeddedStoreNotWritable: -data-dir writable, but its JetStream store directory (data/nats)
// not, as after an earlier run with sudo: the start stops at once, naming -data-dir, the store and
// nats-server's reason, not the port of -embedded-nats-addr (before: "-embedded-nats-addr …:
// embedded NATS: not ready after 10s", after 10 s). The worker runs as another user: needs root.
func TestEmbeddedStoreNotWritable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs the worker as another user: needs root")
	}
	base := worldDir(t)
	bin := filepath.Join(base, "worker")
	copyFile(t, buildWorker(t), bin, 0o755)
	dir := filepath.Join(base, "data")
	store := filepath.Join(dir, "nats")
	if err := os.MkdirAll(store, 0o755); err != nil { // root's, as the sudo run left it
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, embeddedArgs(t, dir)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
		t.Fatalf("exit %v (status %d), want status 1\nstdout:\n%s\nstderr:\n%s", err, code, stdout.String(), stderr.String())
	}
	prefix := "worker: -data-dir " + dir + ": embedded NATS: JetStream store " + store + ": Can't start JetStream: "
	suffix := "mkdir " + filepath.Join(store, "jetstream") + ": permission denied\n"
	if got := stderr.String(); !strings.HasPrefix(got, prefix) || !strings.HasSuffix(got, suffix) || strings.Count(got, "\n") != 1 {
		t.Errorf("stderr:\n%s\nwant one line %q…%q", got, prefix, suffix)
	}
	if took > 5*time.Second {
		t.Errorf("the refusal came after %v, want at once", took.Round(time.Millisecond))
	}
}

// nobody is the user TestEmbeddedStoreNotWritable runs the worker as.
const nobody = 65534

// worldDir returns a directory that every user may read and enter, removed when the test ends
// (t.TempDir's parent is private to the user who runs the tests).
func worldDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "embedded-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// TestEmbeddedBannerSaysTheMetricsPortTaken: with -http-addr 127.0.0.1:0 the banner's metrics line
// names the port the worker took, where /readyz answers (before: "metrics on
// http://127.0.0.1:0/metrics", the flag's value).
func TestEmbeddedBannerSaysTheMetricsPortTaken(t *testing.T) {
	args := slices.Clone(embeddedArgs(t, t.TempDir()))
	args[slices.Index(args, "-http-addr")+1] = "127.0.0.1:0"
	stdout, stop := startInProcess(t, append(args, "-log-level", "error"))
	defer func() { _ = stop() }()
	m := regexp.MustCompile(`metrics on http://127\.0\.0\.1:(\d+)/metrics\n`).FindStringSubmatch(stdout.String())
	if m == nil || m[1] == "0" {
		t.Fatalf("the banner does not say the port taken for -http-addr 127.0.0.1:0:\n%s", stdout.String())
	}
	waitReady(t, "http://127.0.0.1:"+m[1]+"/readyz")
}

// TestEmbeddedStopDuringStart: a stop (SIGTERM, Ctrl-C: the context's end) that comes while the
// worker is still starting is a clean stop: run returns nil (exit status 0) and leaves nothing
// behind, as a stop once started does (before: status 1, "connecting to Redis at …: context
// canceled" or "creating or updating stream ORDERS: context canceled"). A start-up error of
// another kind is still one, stop or not.
func TestEmbeddedStopDuringStart(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		dir     string
		stopAt  string // the line of stdout after which the stop comes; "" before the start
		wantErr string // "" for a clean stop
	}{
		{"before the start", t.TempDir(), "", ""},                         // connecting to Redis
		{"at the console line", t.TempDir(), "operators' console on", ""}, // setting up the streams
		{"with -data-dir a file", notADir, "", "-data-dir " + notADir + ": mkdir " + notADir + ": not a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.stopAt == "" {
				cancel()
			}
			args := embeddedArgs(t, tt.dir)
			args[slices.Index(args, "-config")+1] = filepath.Join(t.TempDir(), "none.yaml")
			var stdout, stderr syncBuffer
			done := make(chan error, 1)
			go func() { done <- run(ctx, append(args, "-log-level", "error"), &stdout, &stderr) }()
			if tt.stopAt != "" {
				wait.For(t, 20*time.Second, tt.stopAt, func() bool { return strings.Contains(stdout.String(), tt.stopAt) })
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("not stopped 20 s after the stop")
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("err %v (exit status %d), want %q\nstdout:\n%s", err, exitCode(err, io.Discard), tt.wantErr, stdout.String())
			}
			if tt.wantErr != "" {
				return
			}
			for _, l := range leftovers(t, tt.dir) {
				t.Errorf("the stop left %s", l)
			}
		})
	}
}

// leftovers lists what a stopped embedded worker left in dir: a JetStream store, the mark that
// says its states were in memory, and a lock still held.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	if entries, err := os.ReadDir(filepath.Join(dir, "nats")); err == nil && len(entries) > 0 {
		out = append(out, "a JetStream store "+filepath.Join(dir, "nats"))
	}
	if _, err := os.Stat(filepath.Join(dir, volatileMark)); err == nil {
		out = append(out, "the mark "+volatileMark)
	}
	if f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR, 0); err == nil {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			out = append(out, "the lock of "+dir+" still held")
		}
		f.Close()
	}
	return out
}

// TestOpenStore: a store is resumed only with the states it goes with.
func TestOpenStore(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name           string
		store, mark    bool   // a store with streams, the mark of in-memory states
		redisURL, want string // want: part of the refusal, "" to resume
	}{
		{"fresh, in memory", false, false, "", ""},
		{"fresh, real Redis", false, false, "redis://r:6379", ""},
		{"killed, in memory", true, true, "", "did not stop cleanly"},
		{"killed, in memory, now a real Redis", true, true, "redis://r:6379", "did not stop cleanly"},
		{"real Redis, again", true, false, "redis://r:6379", ""},
		{"real Redis, now in memory", true, false, "", "of a run with -redis-url"},
		{"marked but empty, now a real Redis", false, true, "redis://r:6379", ""},
	} {
		dir := t.TempDir()
		if tt.store {
			if err := os.MkdirAll(filepath.Join(dir, "nats", "jetstream"), 0o750); err != nil {
				t.Fatal(err)
			}
		}
		if tt.mark {
			if err := os.WriteFile(filepath.Join(dir, volatileMark), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		err := openStore(&config.Settings{DataDir: dir, RedisURL: tt.redisURL})
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
		if _, err := os.Stat(filepath.Join(dir, volatileMark)); tt.want == "" && (err == nil) != (tt.redisURL == "") {
			t.Errorf("%s: the mark of in-memory states is there: %v, want %v", tt.name, err == nil, tt.redisURL == "")
		}
	}
}

// TestEmbeddedPortTaken: each of the four ports taken by something else stops the start at once
// with the flag that names it and how to take a free port; -http-addr, checked first, stops it
// before any server prints a line that looks like a start.
func TestEmbeddedPortTaken(t *testing.T) {
	for _, flag := range []string{"-http-addr", "-embedded-nats-addr", "-embedded-redis-addr", "-embedded-console-addr"} {
		t.Run(flag, func(t *testing.T) {
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			args := append(embeddedArgs(t, t.TempDir()), flag, taken.Addr().String())
			var stdout, stderr bytes.Buffer
			start := time.Now()
			err = run(t.Context(), args, &stdout, &stderr)
			want := fmt.Sprintf("%s %s: ", flag, taken.Addr())
			if code := exitCode(err, &stderr); code != 1 || !strings.Contains(stderr.String(), want) ||
				!strings.Contains(stderr.String(), "(give "+flag+" 127.0.0.1:0 for a free port)") {
				t.Errorf("exit %d, stderr %q; want 1, naming %q and how to take a free port", code, stderr.String(), want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("the start took %s to fail", d)
			}
			if flag == "-http-addr" && stdout.Len() > 0 {
				t.Errorf("-http-addr taken: the embedded servers printed their lines first:\n%s", stdout.String())
			}
		})
	}
}
