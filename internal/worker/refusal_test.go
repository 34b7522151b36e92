package worker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// get returns the status and body of a GET of the worker's HTTP path.
func (h *harness) get(path string) (int, string) {
	h.t.Helper()
	resp, err := http.Get("http://" + h.deps.Settings.HTTPAddr + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestRotatedPasswordStopsTheShopNotItsOrders: ATODENE refuses shop-a's link password (rotated at
// ATODENE, not yet in the shops file). Its orders get no outcome (a credit.invalid would tell the
// shop the orders are wrong) and go to the dead-letter stream as account-refused; /readyz stays
// ready for shop-b and names the stopped shop, and so does a metric. With the password fixed and
// the letters replayed, each order registers once.
func TestRotatedPasswordStopsTheShopNotItsOrders(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{shops: []string{"shop-a", "shop-b"},
		shopsEdit: func(l []config.Shop) { l[0].Atodene.LinkPassword = config.NewSecret("rotated-away") }})
	const n = 5
	for i := range n {
		h.publish("order.created", "shop-a", fmt.Sprintf("ev-%d", i), orderData("shop-a", fmt.Sprintf("PW-%d", i), "taro@example.jp"))
	}
	h.publish("order.created", "shop-b", "ev-b", orderData("shop-b", "PW-B", "taro@example.jp"))
	h.waitOutcomes("PW-B", "credit.ok", 10*time.Second)
	wait.For(t, 20*time.Second, "account-refused dead letters", func() bool { return deadLettersByReason(h)["account-refused"] == n })
	if outs := h.results(); len(outs) != 1 {
		t.Errorf("outcomes %s; want only shop-b's credit.ok", typesOf(outs))
	}
	if code, body := h.get("/readyz"); code != http.StatusOK || !strings.Contains(body, "shop shop-a: calls to ATODENE stopped") ||
		!strings.Contains(body, "linkPassword er000003") || strings.Contains(body, "shop-b") {
		t.Errorf("/readyz: %d %q; want 200 naming shop-a's refused password only", code, body)
	}
	if _, body := h.get("/metrics"); !strings.Contains(body, `atodene_worker_shop_calls_stopped_since_seconds{shop="shop-a"}`) {
		t.Error("/metrics has no stopped-calls series for shop-a")
	}

	// The operator fixes the password, restarts the worker and replays the letters.
	h.shutdown()
	list := append([]config.Shop(nil), h.deps.Shops.All()...)
	list[0].Atodene.LinkPassword = list[1].Atodene.LinkPassword
	shops, err := config.NewShops(list)
	if err != nil {
		t.Fatal(err)
	}
	h.deps.Shops = shops
	h.start()
	for _, d := range h.deadLetters() {
		replay := nats.NewMsg(d.Headers().Get(dlq.HeaderOriginalSubject))
		replay.Data = d.Data()
		replay.Header.Set(dlq.HeaderReplayCount, "1")
		replay.Header.Set(dlq.HeaderPublishedSequence, d.Headers().Get(dlq.HeaderPublishedSequence))
		if _, err := h.js.PublishMsg(context.Background(), replay, jetstream.WithMsgID("replay-"+d.Headers().Get(dlq.HeaderPublishedSequence))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		order := fmt.Sprintf("PW-%d", i)
		h.waitOutcomes(order, "credit.ok", 10*time.Second)
		if tx := h.tx(order); tx.State != "active" {
			t.Errorf("%s at the sandbox: %+v", order, tx)
		}
	}
	if _, body := h.get("/readyz"); body != "ok\n" {
		t.Errorf("/readyz after the fix: %q", body)
	}
}

// TestRotatedPasswordWhileUnderReview: shop-a's link password is rotated at ATODENE while three of
// its orders are under review (the worker restarted with the old one). Each due re-check is
// refused; none is dead-lettered (a timer has nothing to replay, and the reconciler would make it
// again at each of its passes): each is scheduled again for when the shop's calls resume, and the
// order's history says so once, through several reconcile intervals. With the password fixed and
// the worker restarted, the re-checks come at their time and the orders decided meanwhile get
// their credit.ok, each once, with nothing to replay.
func TestRotatedPasswordWhileUnderReview(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{
		sandbox:  sandbox.Config{ReviewDelay: time.Hour, HoldDelay: time.Hour, SlowDelay: time.Second},
		settings: func(s *config.Settings) { s.ReconcileInterval = time.Second }})
	const n = 3
	orders := make([]string, n)
	for i := range n {
		orders[i] = fmt.Sprintf("PR-%d", i)
		h.publish("order.created", "shop-a", fmt.Sprintf("ev-%d", i), orderData("shop-a", orders[i], "review-ok@example.jp"))
	}
	for _, order := range orders {
		h.waitOutcomes(order, "credit.pending", 10*time.Second)
	}
	good := h.deps.Shops.All()[0].Atodene.LinkPassword
	restartWith := func(pw config.Secret) {
		h.shutdown()
		list := append([]config.Shop(nil), h.deps.Shops.All()...)
		list[0].Atodene.LinkPassword = pw
		shops, err := config.NewShops(list)
		if err != nil {
			t.Fatal(err)
		}
		h.deps.Shops = shops
		h.start()
	}
	refusals := func(order string) int {
		n := 0
		for _, e := range h.history(order) {
			if e.Type == "poll" && strings.HasPrefix(e.Did, "not done: ") {
				n++
			}
		}
		return n
	}
	restartWith(config.NewSecret("rotated-away"))
	wait.For(t, 20*time.Second, "each re-check refused", func() bool {
		for _, order := range orders {
			if refusals(order) == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(4 * time.Second) // four reconcile intervals
	for _, order := range orders {
		st := h.state(order)
		due, relies := st.TimerDue()
		if got := refusals(order); got != 1 || st.Status != orderstate.StatusPending || !relies {
			t.Errorf("%s: %d history entries of the refusal, %s, relies on a timer %v (due %s); want 1, pending, true", order, got, st.Status, relies, due)
		}
	}
	if letters := h.deadLetters(); len(letters) != 0 {
		t.Errorf("%d dead letters (%v), want none", len(letters), deadLettersByReason(h))
	}

	restartWith(good)
	for _, order := range orders {
		h.decide(h.tx(order).TransactionID, "OK")
	}
	for _, order := range orders {
		h.waitOutcomes(order, "credit.pending,credit.ok", 45*time.Second)
	}
	if letters := h.deadLetters(); len(letters) != 0 {
		t.Errorf("%d dead letters after the fix (%v), want none", len(letters), deadLettersByReason(h))
	}
}
