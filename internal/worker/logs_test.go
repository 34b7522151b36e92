package worker

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// TestLogsHoldNoPersonalData runs orders through every path that logs (success, invalid input,
// provider failures and retries, dead letters) with debug logging on, and checks that no log
// line holds a buyer's name, kana, e-mail, phone, zip or address, or the link password.
func TestLogsHoldNoPersonalData(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	h := newHarnessWith(t, harnessOpts{logger: zap.New(core)})
	secret := []string{"加藤", "カトウ", "taro.secret@example.jp", "03-9876-5432", "150-0001", "神宮前", sandbox.DemoShop.LinkPassword}
	data := func(order string) map[string]any {
		d := orderData("shop-a", order, "taro.secret@example.jp")
		d["buyer"].(map[string]any)["phone"] = "03-9876-5432"
		return d
	}
	h.publish("order.created", "shop-a", "ok", data("L-OK"))
	bad := data("L-BAD")
	bad["buyer"].(map[string]any)["zip"] = "150-0001x"
	h.publish("order.created", "shop-a", "bad", bad)
	h.setFaults(`{"error_rate": 1.0}`)
	h.publish("order.created", "shop-a", "retry", data("L-RETRY"))
	time.Sleep(1500 * time.Millisecond)
	h.setFaults(`{"garbage_rate": 1.0}`)
	h.publish("order.created", "shop-a", "garbage", data("L-GARBAGE"))
	time.Sleep(1500 * time.Millisecond)
	h.setFaults(`{}`)
	// Each of the four orders ends with one credit outcome or one dead letter. Which one the
	// retried orders get depends on when their retries meet the faults: a registration answered
	// with garbage was processed, so its retry is told it is already registered (outcome-unknown).
	wait.For(t, time.Minute, "the four orders to settle", func() bool { return len(h.results())+len(h.deadLetters()) >= 4 })

	if logs.Len() < 5 {
		t.Fatalf("only %d log lines: the test proves nothing", logs.Len())
	}
	for _, e := range logs.All() {
		line, _ := json.Marshal(map[string]any{"msg": e.Message, "fields": e.ContextMap()})
		for _, s := range secret {
			if strings.Contains(string(line), s) {
				t.Errorf("log line holds %q: %s", s, line)
			}
		}
	}
}

// TestStartedLineTimesTheStart: the "worker started" line says how long Run took to get ready
// and what each step of it took, so that a slow start shows where its time went.
func TestStartedLineTimesTheStart(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.InfoLevel)
	newHarnessWith(t, harnessOpts{logger: zap.New(core)})
	wait.For(t, 30*time.Second, "the worker started", func() bool { return logs.FilterMessage("worker started").Len() > 0 })
	fields := logs.FilterMessage("worker started").All()[0].ContextMap()
	total, _ := fields["startup_total_ms"].(float64)
	steps, _ := fields["startup_ms"].(map[string]any)
	if total <= 0 {
		t.Errorf("startup_total_ms %v, want the time Run took", fields["startup_total_ms"])
	}
	sum := 0.0
	for _, name := range []string{"streams", "metrics_shops_kept", "redis_replicas", "redis_layout", "handlers_consumers_http"} {
		ms, ok := steps[name].(float64)
		if !ok || ms < 0 {
			t.Errorf("startup_ms holds no step %s: %v", name, steps)
		}
		sum += ms
	}
	if sum > total+0.01 || len(steps) != 5 {
		t.Errorf("the steps %v do not add up to the total %v ms", steps, total)
	}
}
