package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/deadletter"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
	"github.com/atodene-worker/atodene-worker/internal/worker"
)

// opsEnv is a running worker with the tool pointed at it.
type opsEnv struct {
	t      *testing.T
	nats   *testenv.NATS
	js     jetstream.JetStream
	deps   worker.Deps
	sbURL  string
	prefix string
	stop   func()
	// env adds to the tool's environment (EDITOR, say).
	env map[string]string
}

func (e *opsEnv) startWorker(shopIDs ...string) {
	var list []config.Shop
	for _, id := range shopIDs {
		// The shops share the sandbox's demo account, so each sends its order numbers behind a prefix.
		list = append(list, config.Shop{ID: id, Atodene: config.Atodene{BaseURL: e.sbURL + "/api/",
			ShopCode: sandbox.DemoShop.ShopCode, LinkID: sandbox.DemoShop.LinkID, OrderIDPrefix: id + "-",
			LinkPassword: config.NewSecret(sandbox.DemoShop.LinkPassword), InvoiceDelivery: config.InvoiceSeparate},
			Fees: fees.Table{Mode: fees.ModeKeep}})
	}
	shops, err := config.NewShops(list)
	if err != nil {
		e.t.Fatal(err)
	}
	e.deps.Shops = shops
	e.deps.Settings.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(e.t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx, e.deps) }()
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("worker: %v", err)
		}
	}
	wait.For(e.t, 20*time.Second, "streams", func() bool { _, err := e.js.Stream(context.Background(), "DLQ"); return err == nil })
}

// run runs the tool and returns its output.
func (e *opsEnv) run(stdin string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	app := &App{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string {
			if v, ok := e.env[k]; ok {
				return v
			}
			return map[string]string{"ATODENE_PUBLISHER_NATS_URL": e.nats.URL, "ATODENE_PUBLISHER_REDIS_URL": testenv.RedisURL(),
				"ATODENE_PUBLISHER_REDIS_PREFIX": e.prefix}[k]
		}}
	err := app.Run(context.Background(), args)
	return out.String() + errOut.String(), err
}

func (e *opsEnv) count(stream string) int {
	s, err := e.js.Stream(context.Background(), stream)
	if err != nil {
		return 0
	}
	info, _ := s.Info(context.Background())
	return int(info.State.Msgs)
}

func (e *opsEnv) publish(shop, id string, data map[string]any) {
	raw, _ := json.Marshal(data)
	body, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: id, Source: "t", Type: "order.created", Data: raw})
	if _, err := e.js.Publish(context.Background(), "orders.created."+shop, body, jetstream.WithMsgID(id)); err != nil {
		e.t.Fatal(err)
	}
}

func order(shop, id string) map[string]any {
	return map[string]any{
		"shop_id": shop, "order_id": id, "ordered_at": "2026-11-26T10:14:03+09:00",
		"buyer": map[string]any{"name": "加藤 太郎", "name_kana": "カトウ タロウ", "zip": "150-0001",
			"address": "東京都渋谷区神宮前1-1-1", "phone": "03-1234-5678", "email": "taro@example.jp"},
		"items": []any{map[string]any{"name": "緑茶", "unit_price": 2400, "quantity": 1}}, "shipping_fee": 550, "billed_amount": 2950,
	}
}

// TestDeadLetterOperations is the operators' story: poison messages land in DLQ; the missing
// shop is added and the worker restarted; replaying the unknown-shop letters processes them,
// while the bad-data ones stay, are counted by a dry run, are refused after too many replays,
// and are purged.
func TestDeadLetterOperations(t *testing.T) {
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

	for i := range 3 {
		e.publish("shop-b", fmt.Sprintf("b-%d", i), order("shop-b", fmt.Sprintf("B-%d", i)))
	}
	for i := range 2 {
		bad := order("shop-a", fmt.Sprintf("BAD-%d", i))
		bad["billed_amount"] = 1
		e.publish("shop-a", fmt.Sprintf("bad-%d", i), bad)
	}
	wait.For(e.t, 20*time.Second, "5 dead letters", func() bool { return e.count("DLQ") == 5 })

	out, err := e.run("", "dlq", "ls")
	if err != nil || !strings.Contains(out, "5 dead letters") || !strings.Contains(out, "unknown-shop") {
		t.Fatalf("dlq ls: %v\n%s", err, out)
	}
	out, _ = e.run("", "dlq", "ls", "-reason", "unknown-shop", "-json")
	if n := strings.Count(out, "\n"); n != 3 || !strings.Contains(out, `"order":"B-0"`) {
		t.Errorf("dlq ls -reason unknown-shop -json: %d lines\n%s", n, out)
	}
	out, _ = e.run("", "dlq", "ls", "-shop", "shop-a", "-order", "BAD-1")
	if !strings.Contains(out, "1 dead letters") {
		t.Errorf("dlq ls -shop -order:\n%s", out)
	}
	out, _ = e.run("", "dlq", "replay", "-dry-run")
	if !strings.Contains(out, "would replay 5") || !regexpLine(out, "invalid", "orders.created.shop-a", "2") || !regexpLine(out, "unknown-shop", "orders.created.shop-b", "3") {
		t.Errorf("dry run:\n%s", out)
	}
	if e.count("DLQ") != 5 {
		t.Fatal("the dry run changed the stream")
	}

	e.stop()
	e.startWorker("shop-a", "shop-b")
	out, err = e.run("", "dlq", "replay", "-reason", "unknown-shop", "-rate", "100")
	if err != nil || !strings.Contains(out, "replayed 3") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	wait.For(e.t, 20*time.Second, "3 outcomes for shop-b", func() bool { return e.count("RESULTS") == 3 })
	if e.count("DLQ") != 2 {
		t.Errorf("%d dead letters left, want the 2 invalid ones", e.count("DLQ"))
	}
	out, _ = e.run("", "dlq", "replay", "-dry-run")
	if !strings.Contains(out, "would replay 2") || !regexpLine(out, "invalid", "orders.created.shop-a", "2") {
		t.Errorf("dry run after the replay:\n%s", out)
	}

	// The bad ones fail again when replayed, and carry their replay count back into DLQ.
	if out, err = e.run("", "dlq", "replay", "-reason", "invalid"); err != nil {
		t.Fatalf("replay invalid: %v\n%s", err, out)
	}
	wait.For(e.t, 20*time.Second, "the invalid letters back", func() bool { return e.count("DLQ") == 2 })
	out, _ = e.run("", "dlq", "replay", "-max-replays", "1")
	if !strings.Contains(out, "replayed 0, refused 2") {
		t.Errorf("guard:\n%s", out)
	}
	out, _ = e.run("", "dlq", "ls", "-json")
	if strings.Count(out, `"replay_count":1`) != 2 {
		t.Errorf("replay counts:\n%s", out)
	}
	var first deadletter.Letter
	_ = json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &first)
	// The letter of the replay names where the replay was, and keeps where the event was first.
	if first.Published == 0 || first.Published == first.OrigSeq {
		t.Errorf("letter of a replay: published sequence %d, original sequence %d; want the first event's, not the replay's", first.Published, first.OrigSeq)
	}
	out, err = e.run("", "dlq", "show", fmt.Sprint(first.Seq))
	if err != nil || !strings.Contains(out, "Dlq-Reason: invalid") || !strings.Contains(out, "Dlq-Replay-Count: 1") || !strings.Contains(out, `"billed_amount": 1`) {
		t.Errorf("dlq show: %v\n%s", err, out)
	}

	if _, err := e.run("n\n", "dlq", "purge", "-reason", "invalid"); err == nil || e.count("DLQ") != 2 {
		t.Errorf("purge without confirmation: %v, %d left", err, e.count("DLQ"))
	}
	if out, err := e.run("", "dlq", "purge", "-reason", "invalid", "-yes"); err != nil || !strings.Contains(out, "purged 2") || e.count("DLQ") != 0 {
		t.Errorf("purge: %v\n%s", err, out)
	}

	out, err = e.run("", "order", "show", "shop-b", "B-1")
	if err != nil || !regexpLine(out, "credit", "ok") || strings.Contains(out, "加藤") {
		t.Errorf("order show: %v\n%s", err, out)
	}
	if !regexpLine(out, "order.created", "registered", "transaction.do: OK", "credit.ok", "→ ok") {
		t.Errorf("order show lacks the history of the registration:\n%s", out)
	}
	e.stop()
}

// regexpLine reports whether some line holds all the words, in order.
func regexpLine(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for _, w := range words {
			i := strings.Index(rest, w)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(w):]
		}
		if ok {
			return true
		}
	}
	return false
}
