package worker

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// finalOutcomes counts, per order, the credit outcomes that end a credit check (ok, ng, invalid).
func finalOutcomes(outs []outcome) map[string][]outcome {
	m := map[string][]outcome{}
	for _, o := range outs {
		switch o.Env.Type {
		case "credit.ok", "credit.ng", "credit.invalid":
			m[o.Credit.ShopID+"/"+o.Credit.OrderID] = append(m[o.Credit.ShopID+"/"+o.Credit.OrderID], o)
		}
	}
	return m
}

func deadLettersByReason(h *harness) map[string]int {
	m := map[string]int{}
	for _, d := range h.deadLetters() {
		m[d.Headers().Get(dlq.HeaderReason)]++
	}
	return m
}

// TestOutcomeUnknownIsNotRegisteredTwice: ATODENE processes the registration but its answer never
// comes; the retry must not register a second time but park the order as outcome-unknown.
func TestOutcomeUnknownIsNotRegisteredTwice(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.ProviderTimeout = 500 * time.Millisecond }})
	h.setFaults(`{"timeout_rate": 1.0}`)
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "U-1", "taro@example.jp"))
	wait.For(t, 5*time.Second, "the registration to reach the sandbox", func() bool { return len(h.sandboxTransactions("U-1")) == 1 })
	h.setFaults(`{}`)
	wait.For(t, 15*time.Second, "an outcome-unknown dead letter", func() bool { return deadLettersByReason(h)["outcome-unknown"] == 1 })
	txs := h.sandboxTransactions("U-1")
	if len(txs) != 1 || txs[0].Registrations != 1 {
		t.Fatalf("sandbox: %+v, want exactly one registration", txs)
	}
	if outs := h.results(); len(outs) != 0 {
		t.Errorf("%d outcomes published for an order whose outcome is unknown", len(outs))
	}
	// A later order.created for the same order must not register it either.
	h.publish("order.created", "shop-a", "ev-2", orderData("shop-a", "U-1", "taro@example.jp"))
	wait.For(t, 10*time.Second, "a second outcome-unknown dead letter", func() bool { return deadLettersByReason(h)["outcome-unknown"] == 2 })
	if txs := h.sandboxTransactions("U-1"); txs[0].Registrations != 1 {
		t.Fatalf("registered again: %+v", txs)
	}
}

// TestProviderErrorsRetriedThenExhausted: HTTP 500s are retried; when they never stop, the message
// ends as an exhausted dead letter and the next messages are still processed.
func TestProviderErrorsRetriedThenExhausted(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.MaxDeliveries = 3 }})
	h.setFaults(`{"error_rate": 1.0}`)
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "E-1", "taro@example.jp"))
	wait.For(t, 20*time.Second, "an exhausted dead letter", func() bool { return deadLettersByReason(h)["exhausted"] == 1 })
	d := h.deadLetters()[0]
	if got := d.Headers().Get(dlq.HeaderAttempts); got != "3" {
		t.Errorf("Dlq-Attempts = %s, want 3", got)
	}
	h.setFaults(`{}`)
	h.publish("order.created", "shop-a", "ev-2", orderData("shop-a", "E-2", "taro@example.jp"))
	wait.For(t, 10*time.Second, "the next order's outcome", func() bool { return len(finalOutcomes(h.results())["shop-a/E-2"]) == 1 })
}

// TestTransientErrorsRecover: a few 500s are retried with backoff and end in one outcome.
func TestTransientErrorsRecover(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.setFaults(`{"error_rate": 1.0}`)
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "T-1", "taro@example.jp"))
	time.Sleep(1500 * time.Millisecond)
	h.setFaults(`{}`)
	wait.For(t, 15*time.Second, "the outcome", func() bool { return len(finalOutcomes(h.results())["shop-a/T-1"]) == 1 })
	if txs := h.sandboxTransactions("T-1"); len(txs) != 1 || txs[0].Registrations != 1 {
		t.Fatalf("sandbox: %+v", txs)
	}
}

// TestSlowProviderIsNotRedelivered: a call slower than AckWait is kept alive by progress
// heartbeats, so the message is not redelivered to a second handler.
func TestSlowProviderIsNotRedelivered(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) {
		s.AckWait, s.ProviderTimeout = time.Second, 10*time.Second
	}})
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "S-1", "slow@example.jp"))
	wait.For(t, 15*time.Second, "the slow order's outcome", func() bool { return len(finalOutcomes(h.results())["shop-a/S-1"]) == 1 })
	c, err := h.js.Consumer(context.Background(), "ORDERS", ordersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 || info.Delivered.Consumer != 1 {
		t.Errorf("delivered %d times, %d redelivered; want 1 delivery", info.Delivered.Consumer, info.NumRedelivered)
	}
	if len(h.deadLetters()) != 0 {
		t.Errorf("dead letters: %d", len(h.deadLetters()))
	}
}

// TestPollDeadline: an order still under review at the deadline is dead-lettered.
func TestPollDeadline(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.PollDeadline = 2 * time.Second }})
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "D-1", "hold@example.jp"))
	wait.For(t, 20*time.Second, "a poll-deadline dead letter", func() bool { return deadLettersByReason(h)["poll-deadline"] == 1 })
	if d := h.deadLetters()[0]; !strings.HasPrefix(d.Subject(), "dlq.atodene.poll.due.shop-a.") || !strings.Contains(d.Headers().Get(dlq.HeaderError), "still under review") {
		t.Errorf("dead letter %s: %v", d.Subject(), d.Headers())
	}
}

// TestPollingSurvivesRestart: the worker stops while orders are under review; after a restart
// the schedules still fire and the orders resolve.
func TestPollingSurvivesRestart(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{sandbox: sandboxCfg(3 * time.Second)})
	for i := range 5 {
		h.publish("order.created", "shop-a", fmt.Sprintf("ev-%d", i), orderData("shop-a", fmt.Sprintf("P-%d", i), "review-ok@example.jp"))
	}
	wait.For(t, 10*time.Second, "5 pending outcomes", func() bool { return len(h.results()) == 5 })
	h.shutdown()
	time.Sleep(time.Second)
	h.start()
	wait.For(t, 30*time.Second, "5 OK outcomes", func() bool { return len(finalOutcomes(h.results())) == 5 })
	for order, outs := range finalOutcomes(h.results()) {
		if len(outs) != 1 || outs[0].Env.Type != "credit.ok" {
			t.Errorf("%s: %d final outcomes (%s)", order, len(outs), outs[0].Env.Type)
		}
	}
}

func sandboxCfg(review time.Duration) sandbox.Config {
	return sandbox.Config{ReviewDelay: review, HoldDelay: 4 * time.Second, SlowDelay: 3 * time.Second}
}

// TestRedisOutage: Redis is down for a while; messages are retried, nothing is lost or doubled.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	r := testenv.StartPrivateRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: 1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	h := newHarnessWith(t, harnessOpts{redis: rdb, settings: func(s *config.Settings) { s.MaxDeliveries = 100 }})
	h.publish("order.created", "shop-a", "ev-0", orderData("shop-a", "R-0", "taro@example.jp"))
	wait.For(t, 10*time.Second, "the first outcome", func() bool { return len(h.results()) == 1 })
	r.Stop()
	for i := 1; i <= 10; i++ {
		h.publish("order.created", "shop-a", fmt.Sprintf("ev-%d", i), orderData("shop-a", fmt.Sprintf("R-%d", i), "taro@example.jp"))
	}
	time.Sleep(2 * time.Second)
	r.Start()
	wait.For(t, 60*time.Second, "11 outcomes", func() bool { return len(finalOutcomes(h.results())) == 11 })
	for order, outs := range finalOutcomes(h.results()) {
		if len(outs) != 1 {
			t.Errorf("%s: %d outcomes", order, len(outs))
		}
	}
	if n := len(h.deadLetters()); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}

// TestNATSRestart: the NATS server restarts (same storage) in the middle of a run.
func TestNATSRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for i := range 20 {
		h.publish("order.created", "shop-a", fmt.Sprintf("ev-%d", i), orderData("shop-a", fmt.Sprintf("N-%d", i), "taro@example.jp"))
	}
	h.nats.Stop()
	time.Sleep(500 * time.Millisecond)
	h.nats.Start()
	wait.For(t, 10*time.Second, "the client to reconnect", h.nc.IsConnected)
	for i := 20; i < 40; i++ {
		h.publish("order.created", "shop-a", fmt.Sprintf("ev-%d", i), orderData("shop-a", fmt.Sprintf("N-%d", i), "taro@example.jp"))
	}
	wait.For(t, 60*time.Second, "40 outcomes", func() bool { return len(finalOutcomes(h.results())) == 40 })
	for order, outs := range finalOutcomes(h.results()) {
		if len(outs) != 1 {
			t.Errorf("%s: %d outcomes", order, len(outs))
		}
		if txs := h.sandboxTransactions(strings.TrimPrefix(order, "shop-a/")); len(txs) != 1 || txs[0].Registrations != 1 {
			t.Errorf("%s registered %+v", order, txs)
		}
	}
}

// TestManyOrdersWithDuplicates: 1,000 orders across 3 shops, each published twice more (the
// same Nats-Msg-Id, and a fresh event id): one registration and one outcome per order.
func TestManyOrdersWithDuplicates(t *testing.T) {
	t.Parallel()
	shops := []string{"shop-a", "shop-b", "shop-c"}
	h := newHarnessWith(t, harnessOpts{shops: shops})
	const n = 1000
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				shop, order := shops[i%3], fmt.Sprintf("M-%04d", i)
				data := orderData(shop, order, "taro@example.jp")
				h.publish("order.created", shop, "ev-"+order, data)
				h.publish("order.created", shop, "ev-"+order, data)
				h.publish("order.created", shop, "ev2-"+order, data)
			}
		}()
	}
	wg.Wait()
	wait.For(t, 120*time.Second, "1000 outcomes", func() bool { return len(finalOutcomes(h.results())) == n })
	time.Sleep(time.Second)
	outs := h.results()
	if len(outs) != n {
		t.Errorf("%d outcomes for %d orders", len(outs), n)
	}
	for order, o := range finalOutcomes(outs) {
		if len(o) != 1 || o[0].Credit.Fee != 205 || o[0].Credit.BilledAmount != 3155 {
			t.Errorf("%s: %d outcomes, first %+v", order, len(o), o[0].Credit)
		}
	}
	// Shops share the sandbox merchant, so every order ID is unique across shops.
	for i := 0; i < n; i += 37 {
		if txs := h.sandboxTransactions(fmt.Sprintf("M-%04d", i)); len(txs) != 1 || txs[0].Registrations != 1 {
			t.Errorf("M-%04d: %+v", i, txs)
		}
	}
}

// TestNeverAcknowledgedIsExhausted: a message whose every delivery goes unanswered (a handler
// that hangs, a worker that crashes on it) still ends in the dead-letter stream, as exhausted,
// through the server's max-deliveries advisory.
func TestNeverAcknowledgedIsExhausted(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{settings: func(s *config.Settings) { s.MaxDeliveries, s.AckWait = 2, time.Second }})
	h.shutdown() // a stand-in takes the deliveries and never answers
	body := []byte(`{"specversion":"1.0","id":"hang-1","source":"t","type":"order.created","data":{}}`)
	h.publishRaw("orders.created.shop-a", "hang-1", body)
	c, err := h.js.Consumer(context.Background(), "ORDERS", ordersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // two deliveries, then the pull that finds the limit reached
		batch, err := c.Fetch(1, jetstream.FetchMaxWait(1500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for range batch.Messages() {
		}
	}
	h.start()
	wait.For(t, 15*time.Second, "an exhausted dead letter", func() bool { return deadLettersByReason(h)["exhausted"] == 1 })
	d := h.deadLetters()[0]
	if string(d.Data()) != string(body) || d.Headers().Get(dlq.HeaderAttempts) != "2" || d.Subject() != "dlq.orders.created.shop-a" {
		t.Errorf("dead letter %s %v %s", d.Subject(), d.Headers(), d.Data())
	}
	// Counted as the letters of every other path are, once.
	wait.For(t, 5*time.Second, "the exhausted letter counted", func() bool {
		_, metrics := h.get("/metrics")
		return strings.Contains(metrics, `atodene_worker_dead_letters_total{reason="exhausted"} 1`)
	})
}

// createdHandled returns how many order.created messages the worker serving addr has handled to
// the end (outcome ok), read from its /metrics.
func createdHandled(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range families["atodene_worker_messages_total"].GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		if labels["type"] == "order.created" && labels["outcome"] == "ok" {
			n += int(m.GetCounter().GetValue())
		}
	}
	return n
}

// TestTwoWorkersShareTheWork: two replicas on the same streams and Redis split the orders: each
// handles some of the messages (read from each one's /metrics), each order is decided once, none
// registered twice; the orders under review resolve too.
func TestTwoWorkersShareTheWork(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	second := h.deps
	second.Settings.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, second) }()
	t.Cleanup(func() { cancel(); <-done })
	// Both consume before the first order is published: a second worker still starting while the
	// first drains the stream would have nothing to share.
	wait.For(t, 10*time.Second, "the second worker ready", func() bool {
		resp, err := http.Get("http://" + second.Settings.HTTPAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	const n = 200
	for i := range n {
		email := "taro@example.jp"
		if i%10 == 0 {
			email = "review-ok@example.jp"
		}
		order := fmt.Sprintf("W-%03d", i)
		h.publish("order.created", "shop-a", "ev-"+order, orderData("shop-a", order, email))
		h.publish("order.created", "shop-a", "ev2-"+order, orderData("shop-a", order, email))
	}
	wait.For(t, 60*time.Second, "every order decided", func() bool { return len(finalOutcomes(h.results())) == n })
	for order, outs := range finalOutcomes(h.results()) {
		if len(outs) != 1 {
			t.Errorf("%s: %d final outcomes", order, len(outs))
		}
	}
	for i := 0; i < n; i += 7 {
		if txs := h.sandboxTransactions(fmt.Sprintf("W-%03d", i)); len(txs) != 1 || txs[0].Registrations != 1 {
			t.Errorf("W-%03d: %+v", i, txs)
		}
	}
	// Every one of the 2n order.created messages is handled to the end by one worker or the other
	// (a duplicate too: it ends ok), and each worker took a share of them. An outcome is published
	// before its message is acked and counted, hence the wait.
	var first, other int
	wait.For(t, 30*time.Second, "every order.created message counted", func() bool {
		first, other = createdHandled(t, h.deps.Settings.HTTPAddr), createdHandled(t, second.Settings.HTTPAddr)
		return first+other >= 2*n
	})
	t.Logf("order.created messages handled: %d by the first worker, %d by the second", first, other)
	if first == 0 || other == 0 {
		t.Errorf("order.created messages handled: %d by the first worker, %d by the second; want a share for each", first, other)
	}
}

// TestPollDeadlineReplayResumesPolling: an operator replays a poll-deadline dead letter; polling
// starts again with a fresh deadline and the order resolves. (Each replay buys a deadline's worth
// of re-checks; on a loaded machine it may take a second replay.)
func TestPollDeadlineReplayResumesPolling(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{sandbox: sandboxCfg(4 * time.Second), settings: func(s *config.Settings) { s.PollDeadline = 1500 * time.Millisecond }})
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "DR-1", "review-ok@example.jp"))
	wait.For(t, 20*time.Second, "a poll-deadline dead letter", func() bool { return deadLettersByReason(h)["poll-deadline"] == 1 })
	decided := func() bool {
		outs := finalOutcomes(h.results())["shop-a/DR-1"]
		return len(outs) == 1 && outs[0].Env.Type == "credit.ok"
	}
	replayed := 0
	for !decided() && replayed < 5 {
		for _, d := range h.deadLetters()[replayed:] {
			replay := nats.NewMsg(d.Headers().Get(dlq.HeaderOriginalSubject))
			replay.Data = d.Data()
			replay.Header.Set(dlq.HeaderReplayCount, fmt.Sprint(replayed+1))
			if _, err := h.js.PublishMsg(context.Background(), replay); err != nil {
				t.Fatal(err)
			}
			replayed++
		}
		// Decided, or dead-lettered again (replayed on the next turn); the check below says which.
		wait.Until(10*time.Second, func() bool { return decided() || len(h.deadLetters()) != replayed })
	}
	if !decided() {
		t.Fatalf("not decided after %d replays", replayed)
	}
}
