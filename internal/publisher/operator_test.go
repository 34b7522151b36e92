package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// orderEnv is a JetStream server with the worker's ORDERS stream and a Redis key prefix of the
// test's own, where a test writes order states as the worker would.
type orderEnv struct {
	t      *testing.T
	url    string
	js     jetstream.JetStream
	orders jetstream.Stream
	rdb    redis.UniversalClient
	prefix string
}

func newOrderEnv(t *testing.T) *orderEnv {
	t.Helper()
	url, s := ordersStream(t)
	rdb, prefix := testenv.Redis(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return &orderEnv{t: t, url: url, js: js, orders: s, rdb: rdb, prefix: prefix}
}

// run runs the tool against the env's servers.
func (e *orderEnv) run(stdin string, args ...string) runResult {
	e.t.Helper()
	env := map[string]string{"ATODENE_PUBLISHER_NATS_URL": e.url, "ATODENE_PUBLISHER_REDIS_URL": testenv.RedisURL(),
		"ATODENE_PUBLISHER_REDIS_PREFIX": e.prefix}
	var out, errOut bytes.Buffer
	a := &App{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	err := a.Run(context.Background(), args)
	return runResult{out.String(), errOut.String(), err}
}

// event publishes an inbound event to ORDERS as an importer would, with headers h, and returns
// its sequence.
func (e *orderEnv) event(typ, id, data string, h nats.Header) uint64 {
	e.t.Helper()
	var d struct {
		ShopID string `json:"shop_id"`
	}
	_ = json.Unmarshal([]byte(data), &d)
	body, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: id, Source: "mall-importer/test", Type: typ,
		Time: "2026-11-26T10:15:00+09:00", Data: json.RawMessage(data)})
	msg := nats.NewMsg(events.Subject(typ, d.ShopID))
	msg.Data, msg.Header = body, h
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	ack, err := e.js.PublishMsg(context.Background(), msg) // no message ID: a copy of an event may share its id
	if err != nil {
		e.t.Fatal(err)
	}
	return ack.Sequence
}

// created is when ORDERS was created (Unix ns), as the worker records it in a state.
func (e *orderEnv) created() int64 {
	info, err := e.orders.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.Created.UnixNano()
}

// put writes an order's state, with history entries, as the worker would.
func (e *orderEnv) put(shop, order string, st orderstate.State, history ...orderstate.Entry) {
	e.t.Helper()
	store := orderstate.New(e.rdb, e.prefix, 0)
	defer store.Close()
	st.History = history
	if _, err := store.Put(context.Background(), shop, order, st, time.Now()); err != nil {
		e.t.Fatal(err)
	}
}

// last returns the last message of ORDERS.
func (e *orderEnv) last() *jetstream.RawStreamMsg {
	e.t.Helper()
	msgs := storedMsgs(e.t, e.orders)
	if len(msgs) == 0 {
		e.t.Fatal("ORDERS is empty")
	}
	return msgs[len(msgs)-1]
}

func entry(typ, id, did string, status orderstate.Status) orderstate.Entry {
	return orderstate.Entry{At: time.Date(2026, 11, 26, 1, 15, 2, 0, time.UTC), Type: typ, Source: "mall-importer/test", ID: id,
		Did: did, Calls: []string{"transaction.do: OK"}, Outcomes: []string{"credit." + string(status)}, Status: status}
}

// TestOrderHistory: the history as a table in JST, as JSON lines, and an order without one.
func TestOrderHistory(t *testing.T) {
	t.Parallel()
	e := newOrderEnv(t)
	e.put("demo", "H-1", orderstate.State{Status: orderstate.StatusNG},
		entry("order.created", "e-1", "registered", orderstate.StatusNG),
		orderstate.Entry{At: time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC), Type: "order.cancelled", Source: "publisher/operator/alice",
			ID: "e-2", Operator: "alice", Did: "cancelled", Outcomes: []string{"credit.cancelled"}, Status: orderstate.StatusCancelled})
	r := e.run("", "order", "history", "demo", "H-1")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !regexpLine(lines[0], "TIME (JST)", "TYPE", "SOURCE", "DID", "CALLS", "OUTCOMES", "STATUS") ||
		!regexpLine(lines[1], "2026-11-26 10:15:02", "order.created", "mall-importer/test", "registered", "transaction.do: OK", "credit.ng", "ng") ||
		!regexpLine(lines[2], "2026-11-26 11:00:00", "order.cancelled", "publisher/operator/alice (alice)", "cancelled", "-", "credit.cancelled", "cancelled") ||
		lines[3] != "2 entries (at most 100 are kept)" {
		t.Errorf("order history:\n%s", r.stdout)
	}
	r = e.run("", "order", "history", "-json", "demo", "H-1")
	var first historyLine
	if r.err != nil || strings.Count(r.stdout, "\n") != 2 || json.Unmarshal([]byte(strings.Split(r.stdout, "\n")[0]), &first) != nil ||
		first.Shop != "demo" || first.Order != "H-1" || first.ID != "e-1" || first.Status != orderstate.StatusNG {
		t.Errorf("order history -json: %v\n%s", r.err, r.stdout)
	}
	r = e.run("", "order", "history", "demo", "NONE")
	if r.err == nil || errors.As(r.err, new(UsageError)) || !strings.Contains(r.err.Error(), "no history") {
		t.Errorf("an order without history: %v", r.err)
	}
	if r := e.run("", "order", "history", "demo"); !errors.As(r.err, new(UsageError)) {
		t.Errorf("without ORDER: %v, want a usage error", r.err)
	}
}

// TestOrderRerun: 与信を実行 re-sends the data the worker last received for the order, as a new
// order.created from the operator, for an order that is ng, cancelled or invalid.
func TestOrderRerun(t *testing.T) {
	t.Parallel()
	e := newOrderEnv(t)
	data := compact(t, orderData("NG-1"))
	seq := e.event("order.created", "e-1", data, nil)
	e.put("demo", "NG-1", orderstate.State{Status: orderstate.StatusNG, CreditSeq: seq, CreditCreated: e.created()},
		entry("order.created", "e-1", "registered", orderstate.StatusNG))

	before := time.Now().Truncate(time.Second)
	r := e.run("", "order", "rerun", "-operator", "alice", "demo", "NG-1")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	m := e.last()
	env := checkStored(t, m, "orders.created.demo")
	if !uuidPattern.MatchString(env.ID) || env.ID == "e-1" || env.Source != "publisher/operator/alice" || env.Type != "order.created" {
		t.Errorf("the re-run event: %+v", env)
	}
	if at, err := time.Parse(time.RFC3339, env.Time); err != nil || at.Before(before) {
		t.Errorf("time %q is not now", env.Time)
	}
	if string(env.Data) != data {
		t.Errorf("data = %s, want the received data %s", env.Data, data)
	}
	if !regexpLine(r.stdout, "published order.created "+env.ID, "order NG-1 of shop demo (was ng)", "stream ORDERS, sequence 2") ||
		!regexpLine(r.stdout, "data from ORDERS sequence 1: order.created e-1 from mall-importer/test") || !strings.Contains(r.stderr, "no change: same data") {
		t.Errorf("output:\n%s%s", r.stdout, r.stderr)
	}

	// -json, and a dry run, which publishes nothing.
	r = e.run("", "order", "rerun", "-operator", "alice", "-dry-run", "-json", "demo", "NG-1")
	var res actionResult
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &res) != nil || !res.DryRun || res.From == nil || res.From.Sequence != 1 ||
		res.Status != "ng" || res.Subject != "orders.created.demo" || len(res.Event) == 0 || len(storedMsgs(t, e.orders)) != 2 {
		t.Errorf("dry run -json: %v\n%s", r.err, r.stdout)
	}

	// A cancelled order: the data is the last order.created or order.updated before the cancel.
	upd := strings.Replace(compact(t, orderData("C-1")), `"billed_amount":2950`, `"billed_amount":2950,"discount":0`, 1)
	e.event("order.created", "c-1", compact(t, orderData("C-1")), nil)
	e.event("order.created", "x-1", compact(t, orderData("OTHER")), nil)
	updSeq := e.event("order.updated", "c-2", upd, nil)
	e.event("order.created", "x-2", compact(t, orderData("OTHER-2")), nil)
	cancelSeq := e.event("order.cancelled", "c-3", `{"shop_id":"demo","order_id":"C-1"}`, nil)
	e.put("demo", "C-1", orderstate.State{Status: orderstate.StatusCancelled, CreditSeq: cancelSeq, CreditCreated: e.created()},
		entry("order.created", "c-1", "registered", orderstate.StatusOK), entry("order.updated", "c-2", "changed", orderstate.StatusOK))
	r = e.run("", "order", "rerun", "-operator", "bob@example.jp", "-json", "demo", "C-1")
	res = actionResult{}
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &res) != nil || res.From.Sequence != updSeq || res.From.ID != "c-2" {
		t.Fatalf("rerun of a cancelled order: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if env := checkStored(t, e.last(), "orders.created.demo"); string(env.Data) != upd || env.Source != "publisher/operator/bob@example.jp" {
		t.Errorf("data of the cancelled order's rerun: %s from %s", env.Data, env.Source)
	}
	if strings.Contains(r.stderr, "no change") {
		t.Errorf("a cancelled order is registered again: no note expected\n%s", r.stderr)
	}

	// An order whose last credit event was dead-lettered, then corrected with dlq edit: the
	// correction is what the worker applied, published later with the original's position.
	bad := strings.Replace(compact(t, orderData("E-1")), `"billed_amount":2950`, `"billed_amount":1`, 1)
	badSeq := e.event("order.created", "d-1", bad, nil)
	fixed := compact(t, orderData("E-1"))
	e.event("order.created", "d-1", fixed, nats.Header{dlq.HeaderReplayCount: {"1"}, dlq.HeaderPublishedSequence: {itoa(badSeq)}, dlq.HeaderEditedFrom: {"4"}})
	e.put("demo", "E-1", orderstate.State{Status: orderstate.StatusInvalid, CreditSeq: badSeq, CreditCreated: e.created()},
		entry("order.created", "d-1", "dead-lettered: invalid: billed_amount: …", orderstate.StatusNone),
		entry("order.created", "d-1", "registered", orderstate.StatusInvalid))
	r = e.run("", "order", "rerun", "-operator", "alice", "-json", "demo", "E-1")
	res = actionResult{}
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &res) != nil || !res.From.Copy || res.From.Sequence != badSeq+1 {
		t.Fatalf("rerun after a dead-letter edit: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if env := checkStored(t, e.last(), "orders.created.demo"); string(env.Data) != fixed {
		t.Errorf("data after a dead-letter edit: %s, want the corrected %s", env.Data, fixed)
	}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// TestOrderRerunRefusals: an order in another status, one the worker does not know, a missing
// -operator; and data gone from the stream, past its retention or with the stream created again.
func TestOrderRerunRefusals(t *testing.T) {
	t.Parallel()
	e := newOrderEnv(t)
	seq := e.event("order.created", "e-1", compact(t, orderData("OK-1")), nil)
	for _, status := range []orderstate.Status{orderstate.StatusOK, orderstate.StatusPending, orderstate.StatusRegistering, orderstate.StatusUnknown} {
		e.put("demo", "S-"+string(status), orderstate.State{Status: status, CreditSeq: seq, CreditCreated: e.created()})
		r := e.run("", "order", "rerun", "-operator", "alice", "demo", "S-"+string(status))
		if r.err == nil || errors.As(r.err, new(UsageError)) || !strings.Contains(r.err.Error(), "is "+string(status)) {
			t.Errorf("rerun of a %s order: %v, want a failure naming the status", status, r.err)
		}
	}
	if n := len(storedMsgs(t, e.orders)); n != 1 {
		t.Errorf("a refused rerun published: %d messages", n)
	}
	if r := e.run("", "order", "rerun", "-operator", "alice", "demo", "NOBODY"); r.err == nil || !strings.Contains(r.err.Error(), "no credit state") {
		t.Errorf("an unknown order: %v", r.err)
	}
	for _, args := range [][]string{{"demo", "X"}, {"-operator", "", "demo", "X"}, {"-operator", "a b", "demo", "X"}, {"-operator", "alice", "de.mo", "X"}} {
		if r := e.run("", append([]string{"order", "rerun"}, args...)...); !errors.As(r.err, new(UsageError)) {
			t.Errorf("order rerun %v: %v, want a usage error", args, r.err)
		}
	}

	// A message deleted from the stream.
	gone := e.event("order.created", "g-1", compact(t, orderData("GONE-1")), nil)
	e.put("demo", "GONE-1", orderstate.State{Status: orderstate.StatusNG, CreditSeq: gone, CreditCreated: e.created()})
	if err := e.orders.DeleteMsg(context.Background(), gone); err != nil {
		t.Fatal(err)
	}
	r := e.run("", "order", "rerun", "-operator", "alice", "demo", "GONE-1")
	if r.err == nil || !strings.Contains(r.err.Error(), "its received data is gone: the order's last credit event, sequence 2 of stream ORDERS, is no longer there") ||
		!strings.Contains(r.err.Error(), "publish order.created with the order's data again") {
		t.Errorf("a deleted message: %v", r.err)
	}
	// The stream created again: the position is another stream's.
	e.put("demo", "OLD-1", orderstate.State{Status: orderstate.StatusNG, CreditSeq: 1, CreditCreated: e.created() - int64(time.Hour)})
	if r := e.run("", "order", "rerun", "-operator", "alice", "demo", "OLD-1"); r.err == nil || !strings.Contains(r.err.Error(), "was created again") {
		t.Errorf("the stream created again: %v", r.err)
	}
	// A cancelled order whose data left the stream before its cancel.
	cancel := e.event("order.cancelled", "k-1", `{"shop_id":"demo","order_id":"K-1"}`, nil)
	e.put("demo", "K-1", orderstate.State{Status: orderstate.StatusCancelled, CreditSeq: cancel, CreditCreated: e.created()})
	if r := e.run("", "order", "rerun", "-operator", "alice", "demo", "K-1"); r.err == nil || !strings.Contains(r.err.Error(), "no order.created or order.updated of the order is left") {
		t.Errorf("a cancel without data before it: %v", r.err)
	}
	if info, _ := e.orders.Info(context.Background()); info.State.Msgs != 2 {
		t.Errorf("%d messages: a failed rerun published", info.State.Msgs)
	}
}

// TestOrderRerunPastRetention: the order's last credit event aged out of the stream: the rerun
// says so, with the stream's retention, and what to do.
func TestOrderRerunPastRetention(t *testing.T) {
	t.Parallel()
	e := newOrderEnv(t)
	if _, err := e.js.UpdateStream(context.Background(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"},
		Duplicates: time.Second, MaxAge: 2 * time.Second, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	seq := e.event("order.created", "e-1", compact(t, orderData("AGED-1")), nil)
	e.put("demo", "AGED-1", orderstate.State{Status: orderstate.StatusNG, CreditSeq: seq, CreditCreated: e.created()})
	deadline := time.Now().Add(10 * time.Second)
	for info, _ := e.orders.Info(context.Background()); info.State.Msgs > 0; info, _ = e.orders.Info(context.Background()) {
		if time.Now().After(deadline) {
			t.Fatal("the message did not age out")
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := e.run("", "order", "rerun", "-operator", "alice", "demo", "AGED-1")
	want := "order AGED-1 of shop demo: its received data is gone: the order's last credit event, sequence 1 of stream ORDERS, is no longer there: " +
		"the stream keeps messages for 2s (its first is now sequence 2); publish order.created with the order's data again"
	if r.err == nil || errors.As(r.err, new(UsageError)) || !strings.HasPrefix(r.err.Error(), want) {
		t.Errorf("err = %v\nwant %s…", r.err, want)
	}
}

// TestOrderCancel: 与信キャンセル publishes order.cancelled from the operator with reason
// "operator", and refuses an order cancelled already, unknown, or not known at all.
func TestOrderCancel(t *testing.T) {
	t.Parallel()
	e := newOrderEnv(t)
	e.put("demo", "OK-1", orderstate.State{Status: orderstate.StatusOK, TransactionID: "12345678901"})
	r := e.run("", "order", "cancel", "-operator", "alice", "-reason", "buyer asked", "demo", "OK-1")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	env := checkStored(t, e.last(), "orders.cancelled.demo")
	if env.Source != "publisher/operator/alice" || string(env.Data) != `{"shop_id":"demo","order_id":"OK-1","reason":"operator: buyer asked"}` || !uuidPattern.MatchString(env.ID) {
		t.Errorf("the cancel: %+v %s", env, env.Data)
	}
	if !regexpLine(r.stdout, "published order.cancelled "+env.ID, "order OK-1 of shop demo (was ok), source publisher/operator/alice: stream ORDERS, sequence 1") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	r = e.run("", "order", "cancel", "-operator", "alice", "-json", "demo", "OK-1")
	var res actionResult
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Sequence != 2 || res.Operator != "alice" || res.Duplicate {
		t.Errorf("-json: %v\n%s", r.err, r.stdout)
	}
	for status, want := range map[orderstate.Status]string{orderstate.StatusCancelled: "cancelled already", orderstate.StatusUnknown: "cancel it at ATODENE by hand"} {
		e.put("demo", "R-"+string(status), orderstate.State{Status: status})
		if r := e.run("", "order", "cancel", "-operator", "alice", "demo", "R-"+string(status)); r.err == nil || !strings.Contains(r.err.Error(), want) {
			t.Errorf("cancel of a %s order: %v, want %q", status, r.err, want)
		}
	}
	if r := e.run("", "order", "cancel", "-operator", "alice", "demo", "NOBODY"); r.err == nil || !strings.Contains(r.err.Error(), "no credit state") {
		t.Errorf("cancel of an unknown order: %v", r.err)
	}
	if n := len(storedMsgs(t, e.orders)); n != 2 {
		t.Errorf("%d messages, want the 2 cancels", n)
	}
}
