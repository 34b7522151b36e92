package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// workerProcess runs the worker binary against the test's NATS, Redis and sandbox.
type workerProcess struct {
	t    *testing.T
	bin  string
	args []string
	env  []string
	cmd  *exec.Cmd
	log  *os.File
}

func (w *workerProcess) start() {
	w.t.Helper()
	w.cmd = exec.Command(w.bin, w.args...)
	w.cmd.Env = append(os.Environ(), w.env...)
	w.cmd.Stdout, w.cmd.Stderr = w.log, w.log
	if err := w.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
}

func (w *workerProcess) signal(sig syscall.Signal) error {
	_ = w.cmd.Process.Signal(sig)
	return w.cmd.Wait()
}

// TestKilledAndStoppedWorker runs the real worker binary, SIGKILLs it and SIGTERMs it in the
// middle of a run, and restarts it each time: every order ends with exactly one final outcome
// (or, if a kill fell between the registration and its record, one outcome-unknown dead letter),
// and none is registered twice.
func TestKilledAndStoppedWorker(t *testing.T) {
	dir := t.TempDir()
	bin := buildWorker(t)
	ns := testenv.StartNATS(t)
	_, prefix := testenv.Redis(t)
	sb, err := sandbox.New(sandbox.Config{ReviewDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { sb.Close(); srv.Close() })

	shops := filepath.Join(dir, "shops.yaml")
	yaml := fmt.Sprintf("shops:\n  - id: shop-k\n    atodene:\n      base_url: %s/api/\n      shop_code: %s\n      link_password: ${KILL_TEST_PASSWORD}\n    fees:\n      mode: add\n      table:\n        - {min: 1, max: 999999, fee: 205}\n",
		srv.URL, sandbox.DemoShop.ShopCode)
	if err := os.WriteFile(shops, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	w := &workerProcess{t: t, bin: bin, log: logFile,
		args: []string{"-config", shops, "-nats-url", ns.URL, "-redis-url", testenv.RedisURL(),
			"-redis-prefix", prefix, "-http-addr", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
			"-poll-first-delay", "1s", "-poll-max-interval", "1s", "-shutdown-grace", "10s",
			"-ack-wait", "5s", "-provider-timeout", "2s"},
		env: []string{"KILL_TEST_PASSWORD=" + sandbox.DemoShop.LinkPassword}}
	w.start()
	t.Cleanup(func() { _ = w.cmd.Process.Kill() })

	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	waitStream(t, js, "ORDERS")

	const n = 600
	go func() {
		for i := range n {
			email := "taro@example.jp"
			if i%10 == 0 {
				email = "review-ok@example.jp"
			}
			publishOrder(t, js, "shop-k", fmt.Sprintf("K-%04d", i), email)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	settled := func() int { f, d := finals(t, js); return len(f) + d }
	wait.For(t, 30*time.Second, "60 settled orders", func() bool { return settled() >= 60 })
	_ = w.signal(syscall.SIGKILL)
	w.start()
	wait.For(t, 30*time.Second, "250 settled orders", func() bool { return settled() >= 250 })
	_ = w.signal(syscall.SIGKILL)
	w.start()
	wait.For(t, 30*time.Second, "400 settled orders", func() bool { return settled() >= 400 })
	if err := w.signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: the worker exited with %v, want status 0", err)
	}
	w.start()
	wait.Until(60*time.Second, func() bool { return settled() >= n }) // the check below says what went wrong
	if got := settled(); got < n {
		logs, _ := os.ReadFile(logFile.Name())
		lines := strings.Split(string(logs), "\n")
		var warn []string
		for _, l := range lines {
			if strings.Contains(l, `"warn"`) || strings.Contains(l, `"error"`) {
				warn = append(warn, l)
			}
		}
		t.Fatalf("%d of %d orders settled; warnings and errors:\n%s", got, n, strings.Join(warn[max(0, len(warn)-20):], "\n"))
	}

	f, dead := finals(t, js)
	for order, count := range f {
		if count != 1 {
			t.Errorf("%s: %d final outcomes", order, count)
		}
	}
	if len(f)+dead != n {
		t.Errorf("%d orders with outcomes + %d outcome-unknown dead letters, want %d", len(f), dead, n)
	}
	resp, err := http.Get(srv.URL + "/sandbox/transactions")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var txs []sandbox.TransactionView
	if err := json.NewDecoder(resp.Body).Decode(&txs); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, tx := range txs {
		seen[tx.ShopOrderID] += tx.Registrations
	}
	for order, regs := range seen {
		if regs != 1 {
			t.Errorf("%s registered %d times", order, regs)
		}
	}
	if len(seen) != n {
		t.Errorf("%d orders registered, want %d", len(seen), n)
	}
	t.Logf("%d final outcomes, %d outcome-unknown dead letters, %d registrations", len(f), dead, len(seen))
}

func publishOrder(t *testing.T, js jetstream.JetStream, shop, order, email string) {
	data, _ := json.Marshal(map[string]any{
		"shop_id": shop, "order_id": order, "ordered_at": "2026-11-26T10:14:03+09:00",
		"buyer": map[string]any{"name": "加藤 太郎", "name_kana": "カトウ タロウ", "zip": "150-0001",
			"address": "東京都渋谷区神宮前1-1-1", "phone": "03-1234-5678", "email": email},
		"items":        []any{map[string]any{"name": "緑茶", "unit_price": 1200, "quantity": 2}},
		"shipping_fee": 550, "billed_amount": 2950,
	})
	body, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: "ev-" + order, Source: "test", Type: "order.created", Data: data})
	if _, err := js.Publish(context.Background(), events.Subject("order.created", shop), body, jetstream.WithMsgID("ev-"+order)); err != nil {
		t.Errorf("publishing %s: %v", order, err)
	}
}

// finals counts final credit outcomes per order, and outcome-unknown dead letters.
func finals(t *testing.T, js jetstream.JetStream) (map[string]int, int) {
	out := map[string]int{}
	for _, m := range readStream(t, js, "RESULTS") {
		if typ := strings.TrimSuffix(m.Subject(), ".shop-k"); typ == "credit.ok" || typ == "credit.ng" {
			var env events.Envelope
			var c events.Credit
			_ = json.Unmarshal(m.Data(), &env)
			_ = json.Unmarshal(env.Data, &c)
			out[c.OrderID]++
		}
	}
	dead := 0
	for _, m := range readStream(t, js, "DLQ") {
		if m.Headers().Get("Dlq-Reason") == "outcome-unknown" {
			dead++
		} else {
			t.Errorf("unexpected dead letter: %v", m.Headers())
		}
	}
	return out, dead
}

func readStream(t *testing.T, js jetstream.JetStream, name string) []jetstream.Msg {
	ctx := context.Background()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for uint64(len(out)) < info.State.Msgs {
		batch, err := c.Fetch(int(info.State.Msgs)-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, m)
		}
	}
	return out
}

func waitStream(t *testing.T, js jetstream.JetStream, name string) {
	wait.For(t, 20*time.Second, "stream "+name, func() bool {
		_, err := js.Stream(context.Background(), name)
		return err == nil
	})
}

// built is the worker binary the tests build once.
var built struct {
	once sync.Once
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.bin != "" {
		_ = os.RemoveAll(filepath.Dir(built.bin))
	}
	os.Exit(code)
}

// buildWorker builds the worker binary once for the package's tests and returns its path.
func buildWorker(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "worker-test-")
		if err != nil {
			built.err = err
			return
		}
		built.bin = filepath.Join(dir, "worker")
		if out, err := exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("building the worker: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// ready reports whether url answers 200.
func ready(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// countSubject counts the messages of stream on subject.
func countSubject(t *testing.T, js jetstream.JetStream, stream, subject string) int {
	n := 0
	for _, m := range readStream(t, js, stream) {
		if m.Subject() == subject {
			n++
		}
	}
	return n
}
