package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// TestBulkAction: the first POST asks for a confirmation that states the count and the orders the
// action does not apply to; the confirmation runs it as the operator on those it applies to, and
// reports each order published or refused and why.
func TestBulkAction(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	seedOrders(h)
	h.actions.refuse = map[string]string{"INVALID-1": "its received data is gone"}
	form := url.Values{"action": {"rerun"}, "o": {"demo/NG-1", "demo/OK-1", "demo/INVALID-1"}}
	page := body(t, h.post("/actions", "alice", form), http.StatusOK)
	mustContain(t, page, "「与信を実行」を2件の受注に実行します。よろしいですか？", `data-testid="confirm-skipped" data-count="1"`,
		`<tr data-key="demo/OK-1" data-testid="target-row" data-allowed="no">`, "この状態（与信OK）では実行できません",
		`name="confirm" value="yes"`)
	if len(h.actions.Calls()) != 0 {
		t.Fatal("the action ran before its confirmation")
	}
	// The confirmation carries the form's idempotency key, which the action is run with.
	m := regexp.MustCompile(`name="key" value="([0-9a-f]{32})"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the confirmation has no idempotency key")
	}
	form.Set("confirm", "yes")
	form.Set("key", m[1])
	page = body(t, h.post("/actions", "alice", form), http.StatusOK)
	calls := h.actions.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	want := actionCall{Operator: "alice", Key: m[1], Action: ActionRerun, Targets: []Target{{Shop: "demo", Order: "NG-1"}, {Shop: "demo", Order: "INVALID-1"}}}
	if !reflect.DeepEqual(calls[0], want) {
		t.Errorf("call %+v, want %+v", calls[0], want)
	}
	mustContain(t, page, `data-published="1" data-refused="1" data-skipped="1"`,
		`<tr data-key="demo/NG-1" data-testid="result-row" data-result="published">`,
		`<tr data-key="demo/INVALID-1" data-testid="result-row" data-result="refused">`,
		`<tr data-key="demo/OK-1" data-testid="result-row" data-result="skipped">`,
		"its received data is gone", "msg-NG-1", `data-keys="demo/NG-1"`)
	if n := h.logs.FilterMessage("operator action").Len(); n != 1 {
		t.Errorf("%d log lines of the action, want 1", n)
	}
	// The same confirmation sent again runs with the same key (Actions.Do publishes nothing
	// twice); a key that is not one is replaced by a new one.
	body(t, h.post("/actions", "alice", form), http.StatusOK)
	form.Set("key", "../../x")
	body(t, h.post("/actions", "alice", form), http.StatusOK)
	if calls = h.actions.Calls(); len(calls) != 3 || calls[1].Key != m[1] || !formKey.MatchString(calls[2].Key) || calls[2].Key == m[1] {
		t.Errorf("keys of the calls after sending the form again: %+v", calls)
	}
}

// TestTrackAction: 伝票番号同期 takes a carrier and number per order, checked before anything is
// published.
func TestTrackAction(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	seedOrders(h)
	form := url.Values{"action": {"track"}, "o": {"demo/OK-1", "demo/REVIEW-1"}}
	page := body(t, h.post("/actions", "alice", form), http.StatusOK)
	mustContain(t, page, `name="carrier_0"`, `name="number_1"`, "ヤマト運輸")
	form.Set("confirm", "yes")
	form.Set("carrier_0", "yamato")
	form.Set("number_0", "1234-5678-9012")
	form.Set("carrier_1", "sagawa")
	form.Set("number_1", "12")
	page = body(t, h.post("/actions", "alice", form), http.StatusBadRequest)
	mustContain(t, page, "受注 REVIEW-1: 伝票番号は数字とハイフンで5〜40文字です")
	if len(h.actions.Calls()) != 0 {
		t.Fatal("published with a bad tracking number")
	}
	form.Set("number_1", "9876-5432-1098")
	body(t, h.post("/actions", "alice", form), http.StatusOK)
	calls := h.actions.Calls()
	if len(calls) != 1 || len(calls[0].Targets) != 2 || calls[0].Targets[0].Carrier != "yamato" || calls[0].Targets[1].Number != "9876-5432-1098" {
		t.Errorf("calls %+v", calls)
	}
}

// TestResolveAction: one order at a time, with a transaction ID or not registered, one of them.
func TestResolveAction(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	seedOrders(h)
	form := url.Values{"action": {"resolve"}, "o": {"demo/UNKNOWN-1"}, "confirm": {"yes"}}
	body(t, h.post("/actions", "alice", form), http.StatusBadRequest)
	form.Set("transaction_id", "12ab")
	body(t, h.post("/actions", "alice", form), http.StatusBadRequest)
	form.Set("transaction_id", "21781147790")
	body(t, h.post("/actions", "alice", form), http.StatusOK)
	calls := h.actions.Calls()
	if len(calls) != 1 || calls[0].Targets[0].TransactionID != "21781147790" || calls[0].Targets[0].NotRegistered {
		t.Errorf("calls %+v", calls)
	}
	body(t, h.post("/actions", "alice", url.Values{"action": {"resolve"}, "o": {"demo/UNKNOWN-1", "demo/NG-1"}}), http.StatusBadRequest)
}

// TestActionRefusals: an unknown action, no order, an order that is none, the adapter not wired.
func TestActionRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order(testShop, "NG-1", ngState())
	body(t, h.post("/actions", "alice", url.Values{"action": {"drop"}, "o": {"demo/NG-1"}}), http.StatusBadRequest)
	body(t, h.post("/actions", "alice", url.Values{"action": {"rerun"}}), http.StatusBadRequest)
	body(t, h.post("/actions", "alice", url.Values{"action": {"rerun"}, "o": {"demo/../x"}}), http.StatusBadRequest)
	// An order the worker has no state of gets no action.
	page := body(t, h.post("/actions", "alice", url.Values{"action": {"cancel"}, "o": {"demo/GHOST"}}), http.StatusOK)
	mustContain(t, page, `data-allowed="no"`, "状態なし")

	nw := newHarness(t, func(c *Config) { c.Actions = NotWired{} })
	nw.order(testShop, "NG-1", ngState())
	page = body(t, nw.post("/actions", "alice", url.Values{"action": {"rerun"}, "o": {"demo/NG-1"}, "confirm": {"yes"}}), http.StatusServiceUnavailable)
	mustContain(t, page, `id="action-error"`, "まだ接続されていません", "not wired")
}

// TestStatusActions: the actions the placeholder allows follow the worker's rules.
func TestStatusActions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		st   orderstate.State
		want []Action
	}{
		{orderstate.State{}, nil},
		{orderstate.State{Version: 1, Status: orderstate.StatusRegistering}, []Action{ActionCancel}},
		{orderstate.State{Version: 1, Status: orderstate.StatusOK}, []Action{ActionCancel, ActionTrack}},
		{orderstate.State{Version: 1, Status: orderstate.StatusOK, Service: "3"}, []Action{ActionCancel, ActionTrack, ActionInvoice}},
		{orderstate.State{Version: 1, Status: orderstate.StatusPending}, []Action{ActionRecheck, ActionCancel, ActionTrack}},
		{orderstate.State{Version: 1, Status: orderstate.StatusNG}, []Action{ActionRerun, ActionCancel}},
		{orderstate.State{Version: 1, Status: orderstate.StatusInvalid}, []Action{ActionRerun, ActionCancel}},
		{orderstate.State{Version: 1, Status: orderstate.StatusCancelled}, []Action{ActionRerun}},
		{orderstate.State{Version: 1, Status: orderstate.StatusUnknown}, []Action{ActionResolve}},
		{orderstate.State{Version: 1, Status: orderstate.StatusNone}, nil},
	} {
		if got := StatusActions(c.st); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s (v%d): %v, want %v", c.st.Status, c.st.Version, got, c.want)
		}
	}
}

// TestOrderPageActionForm: the single-order buttons post the order and the action to the same
// confirmation as the list's.
func TestOrderPageActionForm(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order(testShop, "NG-1", ngState())
	page := body(t, h.get("/orders/demo/NG-1", "alice"), http.StatusOK)
	if !strings.Contains(page, `<input type="hidden" name="o" value="demo/NG-1">`) {
		t.Error("the order page's forms do not carry the order")
	}
	page = body(t, h.post("/actions", "alice", url.Values{"action": {"rerun"}, "o": {"demo/NG-1"}}), http.StatusOK)
	mustContain(t, page, "「与信を実行」を1件の受注に実行します。")
}

// stoppingActions publishes the first target, then fails, as consoleops.Do returns when NATS goes
// away in the middle of a bulk action: with the error, the outcomes that say what was done.
type stoppingActions struct{ *fakeActions }

var errNATSClosed = errors.New("publishing: nats: connection closed")

func (p stoppingActions) Do(_ context.Context, _, _ string, a Action, targets []Target) ([]Outcome, error) {
	out := make([]Outcome, len(targets))
	for i, t := range targets {
		out[i] = Outcome{Shop: t.Shop, Order: t.Order, Action: a,
			Reason: "not done: the action stopped at a failure before this order (nothing published for it)"}
	}
	out[0].Published, out[0].Reason, out[0].MsgID = true, "", "msg-published-before-failure"
	return out, errNATSClosed
}

// TestBulkActionPartialFailure: an action that fails part-way answers 503 with the error, and
// still lists every order as what became of it: the one published with its message ID (and
// followed live), the others refused, those it did not apply to skipped.
func TestBulkActionPartialFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Actions = stoppingActions{c.Actions.(*fakeActions)} })
	seedOrders(h)
	h.order(testShop, "NG-2", ngState())
	form := url.Values{"action": {"rerun"}, "o": {"demo/NG-1", "demo/NG-2", "demo/OK-1"}, "confirm": {"yes"},
		"key": {"0123456789abcdef0123456789abcdef"}}
	page := body(t, h.post("/actions", "alice", form), http.StatusServiceUnavailable)
	mustContain(t, page, `id="action-error"`, "操作を実行できませんでした: publishing: nats: connection closed",
		`data-testid="action-partial"`, `data-published="1" data-refused="1" data-skipped="1"`,
		`<tr data-key="demo/NG-1" data-testid="result-row" data-result="published">`, "msg-published-before-failure",
		`<tr data-key="demo/NG-2" data-testid="result-row" data-result="refused">`, "not done: the action stopped",
		`<tr data-key="demo/OK-1" data-testid="result-row" data-result="skipped">`, `data-keys="demo/NG-1"`)
	if n := h.logs.FilterMessage("operator action failed").Len(); n != 1 {
		t.Errorf("%d log lines of the failure, want 1", n)
	}
}

// TestBulkActionWithRedisDown: with the orders' states unreadable, the confirmation and the
// confirmed action answer 503 with the console's Redis message, publish nothing, and never say
// the orders have no state.
func TestBulkActionWithRedisDown(t *testing.T) {
	t.Parallel()
	healthy, failing := storeFailing(t, "get")
	h := newHarness(t, func(c *Config) { c.Store = failing })
	for _, id := range []string{"OK-1", "OK-2"} {
		if _, err := healthy.Put(context.Background(), testShop, id, okState(), testNow); err != nil {
			t.Fatal(err)
		}
	}
	for _, confirm := range []string{"", "yes"} {
		form := url.Values{"action": {"cancel"}, "o": {"demo/OK-1", "demo/OK-2"}, "confirm": {confirm}}
		page := body(t, h.post("/actions", "alice", form), http.StatusServiceUnavailable)
		mustContain(t, page, "Redisを読めませんでした:", "connection refused")
		mustNotContain(t, page, "状態なし", "対象外", `data-testid="confirm-form"`)
	}
	if calls := h.actions.Calls(); len(calls) != 0 {
		t.Errorf("published with the states unreadable: %+v", calls)
	}
}
