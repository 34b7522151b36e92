package consoleops

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/console"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/operator"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestActionNames: every action of the console is one of the operator's with the same name, and
// back.
func TestActionNames(t *testing.T) {
	t.Parallel()
	if len(console.AllActions) != len(operator.Actions) {
		t.Fatalf("the console has %d actions, the operator %d", len(console.AllActions), len(operator.Actions))
	}
	for i, ca := range console.AllActions {
		oa, ok := toOperator(ca)
		if !ok || string(oa) != string(ca) || oa != operator.Actions[i] {
			t.Errorf("console %q: operator %q %v, want %q at the same place", ca, oa, ok, operator.Actions[i])
		}
		if back, ok := toConsole(oa); !ok || back != ca {
			t.Errorf("operator %q: console %q %v, want %q", oa, back, ok, ca)
		}
	}
	if _, ok := toOperator("replay"); ok {
		t.Error(`"replay" maps to an operator's action`)
	}
	if _, ok := toConsole("replay"); ok {
		t.Error(`"replay" maps to a console's action`)
	}
}

// states are the states the rules tell apart.
var states = map[string]orderstate.State{
	"no state":    {},
	"none":        {Version: 1, Status: orderstate.StatusNone},
	"registering": {Version: 1, Status: orderstate.StatusRegistering},
	"ok-enclosed": {Version: 1, Status: orderstate.StatusOK, Service: "3"},
	"ok-separate": {Version: 1, Status: orderstate.StatusOK, Service: "2"},
	"ng":          {Version: 1, Status: orderstate.StatusNG},
	"review":      {Version: 1, Status: orderstate.StatusPending},
	"hold":        {Version: 1, Status: orderstate.StatusPending, Review: "hold"},
	"cancelled":   {Version: 1, Status: orderstate.StatusCancelled},
	"invalid":     {Version: 1, Status: orderstate.StatusInvalid},
	"unknown":     {Version: 1, Status: orderstate.StatusUnknown},
}

// TestAllowed: the operator's rules, as the console's actions; they agree with the console's own
// reading of the statuses (console.StatusActions).
func TestAllowed(t *testing.T) {
	t.Parallel()
	ops := &Ops{}
	want := map[string][]console.Action{
		"no state":    nil,
		"none":        nil,
		"registering": {console.ActionCancel},
		"ok-enclosed": {console.ActionCancel, console.ActionTrack, console.ActionInvoice},
		"ok-separate": {console.ActionCancel, console.ActionTrack},
		"ng":          {console.ActionRerun, console.ActionCancel},
		"review":      {console.ActionRecheck, console.ActionCancel, console.ActionTrack},
		"hold":        {console.ActionRecheck, console.ActionCancel, console.ActionTrack},
		"cancelled":   {console.ActionRerun},
		"invalid":     {console.ActionRerun, console.ActionCancel},
		"unknown":     {console.ActionResolve},
	}
	for name, st := range states {
		t.Run(name, func(t *testing.T) {
			got := ops.Allowed(st)
			if !slices.Equal(got, want[name]) {
				t.Errorf("Allowed: %v, want %v", got, want[name])
			}
			if sa := console.StatusActions(st); !slices.Equal(got, sa) {
				t.Errorf("Allowed %v, console.StatusActions %v", got, sa)
			}
		})
	}
}

// decoded is an event of the inbound stream.
func (e *env) decoded(seq uint64) (string, events.Envelope) {
	e.t.Helper()
	m, err := e.orders.GetMsg(context.Background(), seq)
	if err != nil {
		e.t.Fatal(err)
	}
	env, err := events.DecodeEnvelope(m.Subject, m.Data)
	if err != nil {
		e.t.Fatal(err)
	}
	return m.Subject, env
}

// TestDoCancel: 与信キャンセル on several orders: the ok and ng ones published with the console's
// source, a cancelled one refused with the reason; the same form again with its key publishes
// nothing twice.
func TestDoCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.put("demo", "OK-1", orderstate.State{Status: orderstate.StatusOK, TransactionID: "10000000001"})
	e.put("demo", "OK-2", orderstate.State{Status: orderstate.StatusOK, TransactionID: "10000000002"})
	e.put("demo", "NG-1", orderstate.State{Status: orderstate.StatusNG})
	e.put("demo", "CX-1", orderstate.State{Status: orderstate.StatusCancelled, CancelledAt: time.Date(2026, 11, 30, 7, 1, 0, 0, time.UTC)})
	targets := []console.Target{{Shop: "demo", Order: "OK-1"}, {Shop: "demo", Order: "NG-1"}, {Shop: "demo", Order: "CX-1"}, {Shop: "demo", Order: "OK-2"}}

	out, err := e.ops.Do(ctx, "alice", "", console.ActionCancel, targets)
	if err != nil || len(out) != len(targets) {
		t.Fatalf("Do: %d outcomes, %v", len(out), err)
	}
	for i, o := range out {
		if o.Shop != "demo" || o.Order != targets[i].Order || o.Action != console.ActionCancel {
			t.Errorf("outcome %d: %+v", i, o)
		}
		switch o.Order {
		case "CX-1":
			if o.Published || o.MsgID != "" || o.Reason != "order CX-1 of shop demo is cancelled already (at 2026-11-30 16:01:00 JST)" {
				t.Errorf("the cancelled order: %+v", o)
			}
		default:
			if !o.Published || o.MsgID == "" || o.Reason != "" {
				t.Errorf("%s: %+v", o.Order, o)
			}
		}
	}
	if n := e.msgs(e.orders); n != 3 {
		t.Fatalf("%d messages in ORDERS, want 3", n)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		subject, env := e.decoded(seq)
		if subject != "orders.cancelled.demo" || env.Source != "console/operator/alice" || env.Type != events.TypeOrderCancelled ||
			!strings.Contains(string(env.Data), `"reason":"operator"`) {
			t.Errorf("event %d: %s %+v %s", seq, subject, env, env.Data)
		}
	}

	// The same form twice, with its key: the second publishes nothing.
	first, err := e.ops.Do(ctx, "alice", "form-7", console.ActionCancel, targets[:2])
	if err != nil || !first[0].Published || !first[1].Published || first[0].Reason != "" {
		t.Fatalf("Do with a key: %+v %v", first, err)
	}
	again, err := e.ops.Do(ctx, "alice", "form-7", console.ActionCancel, targets[:2])
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range again {
		if !o.Published || o.MsgID != first[i].MsgID || !strings.HasPrefix(o.Reason, "duplicate: stream ORDERS holds this event already (sequence ") {
			t.Errorf("the same form again, %d: %+v (first %+v)", i, o, first[i])
		}
	}
	if n := e.msgs(e.orders); n != 5 {
		t.Errorf("%d messages in ORDERS, want 5", n)
	}
	other, err := e.ops.Do(ctx, "alice", "form-8", console.ActionCancel, targets[:1])
	if err != nil || !other[0].Published || other[0].MsgID == first[0].MsgID || other[0].Reason != "" {
		t.Errorf("another form: %+v %v", other, err)
	}
}

// TestDoTrackAndResolve: 伝票番号同期 with the shipment; a tracking number the worker would reject
// and a resolve of an order that is not unknown are refused, each with the reason; an action that
// is none is refused for every target.
func TestDoTrackAndResolve(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.put("demo", "OK-1", orderstate.State{Status: orderstate.StatusOK, Service: "3", TransactionID: "10000000001"})
	e.put("demo", "UK-1", orderstate.State{Status: orderstate.StatusUnknown})

	out, err := e.ops.Do(ctx, "bob@example.jp", "", console.ActionTrack, []console.Target{
		{Shop: "demo", Order: "OK-1", Carrier: "yamato", Number: "1234-5678-9012"},
		{Shop: "demo", Order: "OK-1", Carrier: "yamato", Number: "12"},
	})
	if err != nil || len(out) != 2 || !out[0].Published || out[1].Published ||
		!strings.Contains(out[1].Reason, "order.tracking_entered for order OK-1 of shop demo rejected") {
		t.Fatalf("track: %+v %v", out, err)
	}
	subject, env := e.decoded(1)
	var tr events.Tracking
	if err := json.Unmarshal(env.Data, &tr); err != nil || subject != "orders.tracking_entered.demo" || tr.Carrier != "yamato" ||
		tr.TrackingNumber != "1234-5678-9012" || env.Source != "console/operator/bob@example.jp" {
		t.Errorf("the tracking event: %s %s %v", subject, env.Data, err)
	}

	out, err = e.ops.Do(ctx, "bob", "", console.ActionResolve, []console.Target{
		{Shop: "demo", Order: "OK-1", TransactionID: "10000000001"},
		{Shop: "demo", Order: "UK-1", NotRegistered: true},
	})
	if err != nil || out[0].Published || out[0].Reason != "order OK-1 of shop demo is ok: resolve is for an order whose outcome is unknown, or whose re-authorization's is" || !out[1].Published {
		t.Fatalf("resolve: %+v %v", out, err)
	}
	if subject, env := e.decoded(2); subject != "orders.resolve_requested.demo" || !strings.Contains(string(env.Data), `"not_registered":true`) {
		t.Errorf("the resolve event: %s %s", subject, env.Data)
	}

	out, err = e.ops.Do(ctx, "bob", "", "replay", []console.Target{{Shop: "demo", Order: "OK-1"}, {Shop: "demo", Order: "UK-1"}})
	if err != nil || len(out) != 2 || out[0].Published || out[1].Order != "UK-1" || !strings.HasPrefix(out[1].Reason, `"replay" is not an action`) {
		t.Errorf("an action that is none: %+v %v", out, err)
	}
	out, err = e.ops.Do(ctx, "bob smith", "", console.ActionCancel, []console.Target{{Shop: "demo", Order: "OK-1"}})
	if err != nil || out[0].Published || !strings.HasPrefix(out[0].Reason, `operator "bob smith": want a login name`) {
		t.Errorf("an operator that is none: %+v %v", out, err)
	}
	if n := e.msgs(e.orders); n != 2 {
		t.Errorf("%d messages in ORDERS, want 2", n)
	}
}

// TestReceived: the order's latest received data, read back from the inbound stream; an order
// without state is an error that says so.
func TestReceived(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	data := `{"shop_id":"demo","order_id":"NG-1","ordered_at":"2026-11-26T10:14:03+09:00","buyer":{"name":"加藤 太郎","name_kana":"カトウ タロウ","zip":"150-0001","address":"東京都渋谷区神宮前1-1-1","phone":"03-1234-5678","email":"taro@example.jp"},"items":[{"name":"緑茶","unit_price":2400,"quantity":1}],"shipping_fee":550,"billed_amount":2950}`
	body, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: "e-1", Source: "mall-importer/test", Type: "order.created", Data: json.RawMessage(data)})
	ack, err := e.js.Publish(ctx, "orders.created.demo", body)
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.orders.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.put("demo", "NG-1", orderstate.State{Status: orderstate.StatusNG, CreditSeq: ack.Sequence, CreditCreated: info.Created.UnixNano()})
	got, err := e.ops.Received(ctx, "demo", "NG-1")
	if err != nil || string(got) != data {
		t.Errorf("Received: %s %v", got, err)
	}
	if _, err := e.ops.Received(ctx, "demo", "NOBODY"); !errors.Is(err, operator.ErrNoData) || !strings.Contains(err.Error(), "no credit state") {
		t.Errorf("Received of an order without state: %v", err)
	}
}

// TestDoFails: NATS gone, Do returns the failure with an outcome per target, none published.
func TestDoFails(t *testing.T) {
	t.Parallel()
	srv := testenv.StartNATS(t)
	nc, err := nats.Connect(srv.URL, nats.NoReconnect()) // a server gone fails a publish at once
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	rdb, prefix := testenv.Redis(t)
	store := orderstate.NewStore(rdb, orderstate.Config{Prefix: prefix})
	t.Cleanup(store.Close)
	ops, err := New(Config{JetStream: js, Store: store, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	var targets []console.Target
	for _, order := range []string{"F-1", "F-2", "F-3", "F-4", "F-5"} {
		if _, err := store.Put(t.Context(), "demo", order, orderstate.State{Status: orderstate.StatusOK}, time.Now()); err != nil {
			t.Fatal(err)
		}
		targets = append(targets, console.Target{Shop: "demo", Order: order})
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := ops.Do(ctx, "alice", "", console.ActionCancel, targets)
	if err == nil || len(out) != len(targets) {
		t.Fatalf("err %v, %d outcomes", err, len(out))
	}
	for i, o := range out {
		if o.Published || o.Order != targets[i].Order || o.Reason == "" {
			t.Errorf("outcome %d: %+v", i, o)
		}
	}
}
