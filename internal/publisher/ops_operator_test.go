package publisher

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
	"github.com/atodene-worker/atodene-worker/internal/worker"
)

// TestOperatorStory is an operator's day with a running worker: watching the outcomes, reading an
// order's history, 与信を実行 on an NG order (which the worker declines to send again unchanged)
// and on a cancelled one (registered again), 与信キャンセル, printing an enclosed invoice, and a
// dead letter corrected with dlq edit, whose correction a later rerun re-sends.
func TestOperatorStory(t *testing.T) {
	t.Parallel()
	e := &opsEnv{t: t, nats: testenv.StartNATS(t)}
	sb, err := sandbox.New(sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { sb.Close(); srv.Close() })
	e.sbURL = srv.URL
	rdb, prefix := testenv.Redis(t)
	e.prefix = prefix
	nc, err := nats.Connect(e.nats.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e.js, _ = jetstream.New(nc)
	s := config.DefaultSettings()
	s.AckWait, s.ProviderTimeout, s.ShutdownGrace = 10*time.Second, 2*time.Second, 5*time.Second
	e.deps = worker.Deps{Settings: s, NATS: nc, Redis: rdb, KeyPrefix: prefix, Logger: zap.NewNop()}
	e.startWorker("shop-a")
	defer e.stop()

	enclosed := order("shop-a", "A-1")
	enclosed["invoice_delivery"] = "enclosed"
	e.publish("shop-a", "a-1", enclosed)
	ng := order("shop-a", "NG-1")
	ng["buyer"].(map[string]any)["email"] = "ng-taro@example.jp"
	e.publish("shop-a", "ng-1", ng)
	bad := order("shop-a", "BAD-1")
	bad["billed_amount"] = 1
	e.publish("shop-a", "bad-1", bad)
	wait.For(t, 20*time.Second, "2 outcomes and a dead letter", func() bool { return e.count("RESULTS") == 2 && e.count("DLQ") == 1 })

	out, err := e.run("", "results", "tail", "-since", "1h", "-shop", "shop-a", "-n", "2")
	if err != nil || !regexpLine(out, "credit.ok", "shop-a", "A-1") || !regexpLine(out, "credit.ng", "shop-a", "NG-1") {
		t.Errorf("results tail: %v\n%s", err, out)
	}
	out, err = e.run("", "order", "history", "shop-a", "NG-1")
	if err != nil || !regexpLine(out, "order.created", "t", "registered", "transaction.do: NG", "credit.ng", "ng") {
		t.Errorf("order history: %v\n%s", err, out)
	}

	// 与信を実行 on a live order is refused; on the NG order the worker sees the same data.
	if out, err := e.run("", "order", "rerun", "-operator", "alice", "shop-a", "A-1"); err == nil || !strings.Contains(err.Error(), "is ok") {
		t.Errorf("rerun of an OK order: %v\n%s", err, out)
	}
	if out, err := e.run("", "order", "rerun", "-operator", "alice", "shop-a", "NG-1"); err != nil {
		t.Fatalf("rerun of the NG order: %v\n%s", err, out)
	}
	wait.For(t, 20*time.Second, "the rerun in NG-1's history", func() bool {
		out, _ := e.run("", "order", "history", "shop-a", "NG-1")
		return regexpLine(out, "order.created", "publisher/operator/alice", "no change: same data as the request ATODENE answered ng")
	})

	// 与信キャンセル, then 与信を実行: the order is registered again with its data.
	if out, err := e.run("", "order", "cancel", "-operator", "alice", "shop-a", "A-1"); err != nil {
		t.Fatalf("cancel: %v\n%s", err, out)
	}
	wait.For(t, 20*time.Second, "credit.cancelled", func() bool { return e.count("RESULTS") == 3 })
	if out, err := e.run("", "order", "rerun", "-operator", "alice", "shop-a", "A-1"); err != nil || !strings.Contains(out, "order.created a-1 from t") {
		t.Fatalf("rerun of the cancelled order: %v\n%s", err, out)
	}
	wait.For(t, 20*time.Second, "credit.ok again", func() bool { return e.count("RESULTS") == 4 })
	out, _ = e.run("", "order", "history", "shop-a", "A-1")
	if !regexpLine(out, "order.cancelled", "publisher/operator/alice", "cancelled", "credit.cancelled") ||
		!regexpLine(out, "order.created", "publisher/operator/alice", "registered", "transaction.do: OK", "credit.ok", "ok") {
		t.Errorf("A-1's history:\n%s", out)
	}

	// The enclosed invoice, printed from its invoice.ok.
	if out, err := e.run("", "publish", "-type", "order.invoice_requested", "-shop", "shop-a", "-order", "A-1"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wait.For(t, 20*time.Second, "invoice.ok", func() bool { return e.count("RESULTS") == 5 })
	out, err = e.run("", "invoice", "print", "-text", "shop-a", "A-1")
	if err != nil || !regexpLine(out, "請求書ステータス（表題）", "ご請求書") || !regexpLine(out, "氏名", "加藤 太郎") || strings.Contains(out, "[その他]") {
		t.Errorf("invoice print: %v\n%s", err, out)
	}
	if out, err := e.run("", "invoice", "print", "shop-a", "NG-1"); err == nil || !strings.Contains(out, "publisher publish -type order.invoice_requested -shop shop-a -order NG-1") {
		t.Errorf("invoice print of an order without one: %v\n%s", err, out)
	}

	// The invalid order, corrected in the editor: the worker registers the correction.
	e.env = map[string]string{"EDITOR": script(t, `sed -i 's/"billed_amount": 1,/"billed_amount": 2950,/' "$1"`)}
	if out, err := e.run("", "dlq", "edit", "1"); err != nil || !strings.Contains(out, "dead letter 1 removed") {
		t.Fatalf("dlq edit: %v\n%s", err, out)
	}
	wait.For(t, 20*time.Second, "BAD-1's credit.ok", func() bool { return e.count("RESULTS") == 6 })
	out, _ = e.run("", "order", "history", "shop-a", "BAD-1")
	if !regexpLine(out, "order.created", "dead-lettered: invalid") || !regexpLine(out, "order.created", "registered", "credit.ok") || e.count("DLQ") != 0 {
		t.Errorf("BAD-1's history after the edit:\n%s", out)
	}
	// Cancelled and run again, it is the correction that is re-sent, not the letter's data.
	if out, err := e.run("", "order", "cancel", "-operator", "bob", "shop-a", "BAD-1"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wait.For(t, 20*time.Second, "BAD-1's credit.cancelled", func() bool { return e.count("RESULTS") == 7 })
	out, err = e.run("", "order", "rerun", "-operator", "bob", "shop-a", "BAD-1")
	if err != nil || !strings.Contains(out, "a dead letter's replay or edit of sequence 3") {
		t.Fatalf("rerun after the edit: %v\n%s", err, out)
	}
	wait.For(t, 20*time.Second, "BAD-1's credit.ok again", func() bool { return e.count("RESULTS") == 8 })
	out, _ = e.run("", "results", "tail", "-since", "1h", "-order", "BAD-1", "-n", "3")
	if !regexpLine(out, "credit.ok", "BAD-1", "billed 2950") || strings.Count(out, "\n") != 4 {
		t.Errorf("BAD-1's outcomes:\n%s", out)
	}
}
