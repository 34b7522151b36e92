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
