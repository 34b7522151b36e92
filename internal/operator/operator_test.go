package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/clock"
)

// TestMain fails the package's tests if any goroutine outlives them: Bulk waits for its own, and
// the tests close the clients and servers they start.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a JetStream server with the worker's ORDERS and RESULTS streams, and a store under a
// Redis key prefix of the test's own.
type env struct {
	t      *testing.T
	js     jetstream.JetStream
	orders jetstream.Stream
	store  *orderstate.Store
	clock  *clock.Fake
	ops    *Operator
}

func newEnv(t *testing.T) *env {
	t.Helper()
	_, js := testenv.JetStream(t)
	orders, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"},
		Duplicates: 2 * time.Minute, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "RESULTS", Subjects: []string{"credit.>", "shipment.>", "invoice.>"},
		Duplicates: 2 * time.Minute, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	rdb, prefix := testenv.Redis(t)
	store := orderstate.NewStore(rdb, orderstate.Config{Prefix: prefix})
	t.Cleanup(store.Close)
	clk := clock.NewFake(time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC))
	ops, err := New(Config{JetStream: js, Store: store, SourcePrefix: "console/operator/", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, js: js, orders: orders, store: store, clock: clk, ops: ops}
}

// put writes an order's state as the worker would.
func (e *env) put(shop, order string, st orderstate.State) {
	e.t.Helper()
	if _, err := e.store.Put(context.Background(), shop, order, st, time.Now()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) msgs() uint64 {
	e.t.Helper()
	info, err := e.orders.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// statuses are the states the rules tell apart.
var statuses = map[string]orderstate.State{
	"none":        {Status: orderstate.StatusNone},
	"registering": {Status: orderstate.StatusRegistering},
	"ok-enclosed": {Status: orderstate.StatusOK, Service: "3", TransactionID: "10000000001"},
	"ok-separate": {Status: orderstate.StatusOK, Service: "2", TransactionID: "10000000002"},
	"ng":          {Status: orderstate.StatusNG},
	"review":      {Status: orderstate.StatusPending, TransactionID: "10000000003"},
	"hold":        {Status: orderstate.StatusPending, Review: "hold", TransactionID: "10000000004"},
	"cancelled":   {Status: orderstate.StatusCancelled, CancelledAt: time.Date(2026, 11, 30, 7, 2, 3, 0, time.UTC)},
	"invalid":     {Status: orderstate.StatusInvalid},
	"unknown":     {Status: orderstate.StatusUnknown},
}

// TestAllowed: the actions each status allows, read from a state and from the index's summary.
func TestAllowed(t *testing.T) {
	t.Parallel()
	want := map[string][]Action{
		"none":        nil,
		"registering": {ActionCancel},
		"ok-enclosed": {ActionCancel, ActionTrack, ActionRequestInvoice},
		"ok-separate": {ActionCancel, ActionTrack},
		"ng":          {ActionRerun, ActionCancel},
		"review":      {ActionRecheck, ActionCancel, ActionTrack},
		"hold":        {ActionRecheck, ActionCancel, ActionTrack},
		"cancelled":   {ActionRerun},
		"invalid":     {ActionRerun, ActionCancel},
		"unknown":     {ActionResolve},
	}
	for name, st := range statuses {
		st.Version = 3
		if got := Allowed(st); !slices.Equal(got, want[name]) {
			t.Errorf("Allowed(state %s) = %v, want %v", name, got, want[name])
		}
		sum := orderstate.Summary{Shop: "demo", OrderID: "A-1", Status: st.Status, Review: st.Review}
		wantSum := want[name]
		if name == "ok-separate" { // the index does not hold the invoice delivery
			wantSum = want["ok-enclosed"]
		}
		if got := Allowed(sum); !slices.Equal(got, wantSum) {
			t.Errorf("Allowed(summary %s) = %v, want %v", name, got, wantSum)
		}
	}
	if got := Allowed(orderstate.State{}); got != nil {
		t.Errorf("an order without a state allows %v", got)
	}
	if why := WhyNot("demo", "A-1", orderstate.State{Version: 1, Status: orderstate.StatusOK}, ActionRerun); !strings.HasPrefix(why,
		"order A-1 of shop demo is ok: its credit is live at ATODENE") {
		t.Errorf("WhyNot: %s", why)
	}
	if why := WhyNot("demo", "A-1", orderstate.Summary{Status: orderstate.StatusNG}, ActionCancel); why != "" {
		t.Errorf("WhyNot of an allowed action: %q", why)
	}
	// An OK order whose re-authorization's outcome is unknown can be resolved, too.
	reauthUnknown := orderstate.State{Version: 3, Status: orderstate.StatusOK, Service: "3", Reauth: &orderstate.Reauth{N: 1, Failed: "unknown"}}
	if got, want := Allowed(reauthUnknown), []Action{ActionCancel, ActionTrack, ActionRequestInvoice, ActionResolve}; !slices.Equal(got, want) {
		t.Errorf("Allowed(ok, re-authorization unknown) = %v, want %v", got, want)
	}
}

// TestActionsFollowTheRules: every action publishes exactly where Allowed says it may, and is
// refused, with the reason WhyNot gives and nothing published, everywhere else.
func TestActionsFollowTheRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for name, st := range statuses {
		e.put("demo", "S-"+name, st)
	}
	published := 0
	for name := range statuses {
		order := "S-" + name
		st, err := e.store.Get(ctx, "demo", order)
		if err != nil {
			t.Fatal(err)
		}
		allowed := Allowed(st)
		for _, a := range Actions {
			if a == ActionRerun {
				continue // its data comes from the stream: TestRerun
			}
			req := Request{Action: a, Operator: "alice", Shop: "demo", Order: order, Tracking: Tracking{Carrier: "yamato", Number: "1234-5678-9012"},
				Resolution: Resolution{TransactionID: "12345678909"}}
			r, err := e.ops.Do(ctx, req)
			if err != nil {
				t.Fatalf("%s %s: %v", a, name, err)
			}
			if slices.Contains(allowed, a) {
				published++
				if r.Outcome != Published || r.Sequence != uint64(published) || r.Source != "console/operator/alice" || r.Status != statusWords(st.Status, st.Review) {
					t.Errorf("%s of %s: %+v, want published", a, name, r)
				}
				continue
			}
			if r.Outcome != Refused || r.Reason != WhyNot("demo", order, st, a) || r.Sequence != 0 || r.Refusal != RefusedStatus {
				t.Errorf("%s of %s: %+v, want refused: %s", a, name, r, WhyNot("demo", order, st, a))
			}
		}
	}
	if e.msgs() != uint64(published) {
		t.Errorf("%d messages, want the %d published", e.msgs(), published)
	}
	r, err := e.ops.Cancel(ctx, "alice", "demo", "NOBODY", "")
	if err != nil || r.Refusal != RefusedNoState || !strings.Contains(r.Reason, "no credit state") || r.Before != orderstate.StatusNone || r.Status != "none" {
		t.Errorf("an order the worker does not know: %+v %v", r, err)
	}
}

// TestEvents: the events published, in their time from the clock, and a dry run.
func TestEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.put("demo", "OK-1", statuses["ok-enclosed"])
	e.put("demo", "U-1", statuses["unknown"])
	for _, tc := range []struct {
		req     Request
		subject string
		data    string
	}{
		{Request{Action: ActionCancel, Order: "OK-1", Reason: " buyer asked "}, "orders.cancelled.demo", `{"shop_id":"demo","order_id":"OK-1","reason":"operator: buyer asked"}`},
		{Request{Action: ActionTrack, Order: "OK-1", Tracking: Tracking{Carrier: "sagawa", Number: "1234-5678", InvoiceDate: "2026-12-01"}},
			"orders.tracking_entered.demo", `{"shop_id":"demo","order_id":"OK-1","carrier":"sagawa","tracking_number":"1234-5678","invoice_date":"2026-12-01"}`},
		{Request{Action: ActionRequestInvoice, Order: "OK-1"}, "orders.invoice_requested.demo", `{"shop_id":"demo","order_id":"OK-1"}`},
		{Request{Action: ActionResolve, Order: "U-1", Resolution: Resolution{NotRegistered: true}}, "orders.resolve_requested.demo",
			`{"shop_id":"demo","order_id":"U-1","operator":"ops-tanaka","not_registered":true}`},
	} {
		tc.req.Operator, tc.req.Shop = "ops-tanaka", "demo"
		r, err := e.ops.Do(ctx, tc.req)
		if err != nil || r.Outcome != Published {
			t.Fatalf("%s: %+v %v", tc.req.Action, r, err)
		}
		m, err := e.orders.GetMsg(ctx, r.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		env, err := events.DecodeEnvelope(m.Subject, m.Data)
		if err != nil || m.Subject != tc.subject || string(env.Data) != tc.data || env.ID != r.ID || env.Source != "console/operator/ops-tanaka" ||
			env.Time != "2026-11-30T07:00:00Z" || m.Header.Get(jetstream.MsgIDHeader) != r.MsgID || r.Subject != tc.subject {
			t.Errorf("%s: %s %s %+v %v", tc.req.Action, m.Subject, m.Data, r, err)
		}
	}
	n := e.msgs()
	r, err := e.ops.Cancel(ctx, "ops-tanaka", "demo", "OK-1", "", DryRun())
	if err != nil || r.Outcome != WouldPublish || len(r.Event) == 0 || r.ID == "" || e.msgs() != n {
		t.Errorf("dry run: %+v %v", r, err)
	}
}

// TestInputRefusals: the request's own values, refused before the order is read, with the
// fields at fault.
func TestInputRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.put("demo", "OK-1", statuses["ok-enclosed"])
	e.put("demo", "U-1", statuses["unknown"])
	for _, tc := range []struct {
		req   Request
		field string
	}{
		{Request{Action: ActionCancel, Operator: "a b", Order: "OK-1"}, "operator"},
		{Request{Action: ActionCancel, Operator: "", Order: "OK-1"}, "operator"},
		{Request{Action: ActionTrack, Operator: "alice", Order: "OK-1", Tracking: Tracking{Carrier: "pigeon", Number: "12"}}, "carrier"},
		{Request{Action: ActionResolve, Operator: "alice", Order: "U-1", Resolution: Resolution{TransactionID: "ABC"}}, "transaction_id"},
		{Request{Action: ActionResolve, Operator: "alice", Order: "U-1"}, "transaction_id"},
		{Request{Action: ActionResolve, Operator: "alice", Order: "U-1", Resolution: Resolution{TransactionID: "1", NotRegistered: true}}, "transaction_id"},
		{Request{Action: "ship", Operator: "alice", Order: "OK-1"}, ""},
	} {
		tc.req.Shop = "demo"
		r, err := e.ops.Do(ctx, tc.req)
		if err != nil || r.Outcome != Refused || r.Refusal != RefusedInput || r.Reason == "" ||
			tc.field != "" && (len(r.Problems) == 0 || r.Problems[0].Field != tc.field) {
			t.Errorf("%+v: %+v %v, want refused for %s", tc.req, r, err, tc.field)
		}
	}
	if r, _ := e.ops.Cancel(ctx, "alice", "de.mo", "OK-1", ""); r.Refusal != RefusedInput {
		t.Errorf("a shop ID that is not one: %+v", r)
	}
	if e.msgs() != 0 {
		t.Errorf("%d messages published", e.msgs())
	}
}

// TestRerun: 与信を実行 re-sends the data of the order's last credit event, and is refused when
// the data is gone.
func TestRerun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	data := `{"shop_id":"demo","order_id":"NG-1","ordered_at":"2026-11-26T10:14:03+09:00","buyer":{"name":"加藤 太郎","name_kana":"カトウ タロウ","zip":"150-0001","address":"東京都渋谷区神宮前1-1-1","phone":"03-1234-5678","email":"taro@example.jp"},"items":[{"name":"緑茶","unit_price":2400,"quantity":1}],"shipping_fee":550,"billed_amount":2950}`
	body, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: "e-1", Source: "mall-importer/test", Type: "order.created", Data: json.RawMessage(data)})
	ack, err := e.js.Publish(ctx, "orders.created.demo", body)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := e.orders.Info(ctx)
	e.put("demo", "NG-1", orderstate.State{Status: orderstate.StatusNG, CreditSeq: ack.Sequence, CreditCreated: info.Created.UnixNano()})
	r, err := e.ops.Rerun(ctx, "alice", "demo", "NG-1")
	if err != nil || r.Outcome != Published || r.From == nil || r.From.Sequence != 1 || r.From.ID != "e-1" || r.Sequence != 2 || !strings.Contains(r.Note, "no change: same data") {
		t.Fatalf("rerun: %+v %v", r, err)
	}
	m, _ := e.orders.GetMsg(ctx, 2)
	if env, err := events.DecodeEnvelope(m.Subject, m.Data); err != nil || string(env.Data) != data || env.Source != "console/operator/alice" {
		t.Errorf("the rerun's event: %s %v", m.Data, err)
	}
	if rec, err := e.ops.Latest(ctx, "demo", "NG-1"); err != nil || string(rec.Data) != data || rec.Sequence != 1 {
		t.Errorf("Latest: %+v %v", rec, err)
	}
	if _, err := e.ops.Latest(ctx, "demo", "NOBODY"); !errors.Is(err, ErrNoData) || !strings.Contains(err.Error(), "no credit state") {
		t.Errorf("Latest of an order without state: %v", err)
	}
	if err := e.orders.DeleteMsg(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ops.Latest(ctx, "demo", "NG-1"); !errors.Is(err, ErrNoData) || !strings.Contains(err.Error(), "order NG-1 of shop demo: its received data is gone") {
		t.Errorf("Latest of data gone: %v", err)
	}
	r, err = e.ops.Rerun(ctx, "alice", "demo", "NG-1")
	if err != nil || r.Refusal != RefusedDataGone || !strings.Contains(r.Reason, "its received data is gone") {
		t.Errorf("data gone: %+v %v", r, err)
	}
}

// TestBulkCancel: 500 orders cancelled in one call, every one published, well within 2 s; the
// same call again (the same key) reports each a duplicate and publishes nothing; once the orders
// are cancelled, another call refuses each and says why.
func TestBulkCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const n = 500
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{Action: ActionCancel, Operator: "alice", Shop: "demo", Order: fmt.Sprintf("B-%03d", i), Reason: "bulk"}
		e.put("demo", reqs[i].Order, orderstate.State{Status: orderstate.StatusOK, TransactionID: fmt.Sprint(20000000000 + i)})
	}
	// How fast is cmd/bench's to measure (the console's bulk action); this proves what it does.
	results, err := e.ops.Bulk(ctx, reqs, Key("form-1"))
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[uint64]bool{}
	for i, r := range results {
		if r.Order != reqs[i].Order || r.Outcome != Published || r.Duplicate || r.Status != "ok" || r.Sequence == 0 {
			t.Fatalf("result %d: %+v", i, r)
		}
		seqs[r.Sequence] = true
	}
	if len(seqs) != n || e.msgs() != n {
		t.Fatalf("%d sequences, %d messages; want %d", len(seqs), e.msgs(), n)
	}

	again, err := e.ops.Bulk(ctx, reqs, Key("form-1"))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if r.Outcome != Published || !r.Duplicate || r.ID != results[i].ID || r.Sequence != results[i].Sequence {
			t.Fatalf("the same call again, result %d: %+v, want a duplicate of %+v", i, r, results[i])
		}
	}
	if e.msgs() != n {
		t.Errorf("%d messages after the repeated call, want %d", e.msgs(), n)
	}

	for i := range reqs { // as the worker would, once it handled the cancels
		if i%2 == 0 {
			st, err := e.store.Get(ctx, "demo", reqs[i].Order)
			if err != nil {
				t.Fatal(err)
			}
			st.Status, st.CancelledAt = orderstate.StatusCancelled, time.Date(2026, 11, 30, 7, 1, 0, 0, time.UTC)
			e.put("demo", reqs[i].Order, st)
		}
	}
	later, err := e.ops.Bulk(ctx, reqs, Key("form-2"))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range later {
		switch {
		case i%2 == 0 && (r.Outcome != Refused || r.Refusal != RefusedStatus ||
			r.Reason != "order "+reqs[i].Order+" of shop demo is cancelled already (at 2026-11-30 16:01:00 JST)"):
			t.Fatalf("result %d of a cancelled order: %+v", i, r)
		case i%2 == 1 && (r.Outcome != Published || r.Duplicate || r.ID == results[i].ID):
			t.Fatalf("result %d of an order still ok, with another key: %+v", i, r)
		}
	}
	if e.msgs() != n+n/2 {
		t.Errorf("%d messages, want %d", e.msgs(), n+n/2)
	}
}

// TestBulkStopsAtAFailure: NATS gone, a bulk call returns the failure and the results it has,
// and leaves no goroutine behind.
func TestBulkStopsAtAFailure(t *testing.T) {
	t.Parallel()
	srv := testenv.StartNATS(t)
	_, js := jsOf(t, srv.URL)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	rdb, prefix := testenv.Redis(t)
	store := orderstate.NewStore(rdb, orderstate.Config{Prefix: prefix})
	t.Cleanup(store.Close)
	ops, err := New(Config{JetStream: js, Store: store, SourcePrefix: "console/operator/", Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []Request
	for i := range 40 {
		order := fmt.Sprintf("F-%02d", i)
		if _, err := store.Put(t.Context(), "demo", order, orderstate.State{Status: orderstate.StatusOK}, time.Now()); err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, Request{Action: ActionCancel, Operator: "alice", Shop: "demo", Order: order})
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	results, err := ops.Bulk(ctx, reqs)
	if err == nil || len(results) != len(reqs) {
		t.Fatalf("err %v, %d results", err, len(results))
	}
	for i, r := range results {
		if r.Outcome == Published || r.Order != reqs[i].Order {
			t.Errorf("result %d: %+v", i, r)
		}
	}
}

// TestAnswers: the outcomes whose causationid is a published action's event id.
func TestAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.clock.Advance(time.Since(e.clock.Now())) // outcomes are stored at the server's time
	e.put("demo", "OK-1", statuses["ok-enclosed"])
	r, err := e.ops.Cancel(ctx, "alice", "demo", "OK-1", "")
	if err != nil || r.Outcome != Published {
		t.Fatal(r, err)
	}
	for i, cause := range []string{"someone-else", r.ID} {
		body, err := events.NewOutcome(fmt.Sprintf("o-%d", i), events.TypeCreditCancelled, cause, time.Now(),
			events.Credit{ShopID: "demo", OrderID: "OK-1", Result: "cancelled"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.Publish(ctx, "credit.cancelled.demo", body); err != nil {
			t.Fatal(err)
		}
	}
	answers, err := e.ops.Answers(ctx, []Result{r, {Outcome: Refused}}, 0)
	if err != nil || len(answers) != 1 || len(answers[r.ID]) != 1 || answers[r.ID][0].Type != events.TypeCreditCancelled || answers[r.ID][0].ID != "o-1" {
		t.Errorf("answers: %+v %v", answers, err)
	}
}

func jsOf(t *testing.T, url string) (string, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.NoReconnect()) // a server gone fails a publish at once

	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return url, js
}
