package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv/clock"
)

// The tests in this file are about the operator events, order.recheck_requested and
// order.resolve_requested (docs/lifecycle.md#operator-events); internal/worker's
// operator_test.go walks them through a real worker and the sandbox.

// operatorProvider answers as fakeProvider, but registrations with er000101 while taken is set
// (the shopOrderId is held by a transaction the worker has no record of), and getauthori.do with
// the screening or error given for the transaction (OK for any other).
type operatorProvider struct {
	fakeProvider
	taken      bool
	screenings map[string]atodene.Screening
	errs       map[string]error
}

func (p *operatorProvider) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	if p.taken {
		p.count("register-taken")
		return atodene.Registration{}, rejected("transaction.do", "shopOrderId", atodene.CodeAlreadyRegistered)
	}
	return p.fakeProvider.Register(ctx, req)
}

func (p *operatorProvider) GetAuthori(_ context.Context, tx string) (atodene.Screening, error) {
	p.count("getauthori")
	if err := p.errs[tx]; err != nil {
		return atodene.Screening{}, err
	}
	if s, ok := p.screenings[tx]; ok {
		return s, nil
	}
	return atodene.Screening{TransactionID: tx, Auto: atodene.DecisionOK}, nil
}

func rejected(op, point, code string) error {
	return &atodene.RejectedError{Op: op, Errors: []atodene.ProviderError{{Point: point, Code: code, Message: "エラー"}}}
}

var (
	underReview = atodene.Screening{Auto: atodene.DecisionReview}
	onHold      = atodene.Screening{Auto: atodene.DecisionReview, Manual: atodene.DecisionHold}
	manualOK    = atodene.Screening{Auto: atodene.DecisionReview, Manual: atodene.DecisionOK}
)

// publishedOutcomes records the outcomes published, with their bodies.
type publishedOutcomes struct {
	mu   sync.Mutex
	sent []events.Envelope
}

func (p *publishedOutcomes) Publish(_ context.Context, _, _ string, body []byte) error {
	var env events.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, env)
	return nil
}

// types lists the outcome types published, e.g. "credit.ok".
func (p *publishedOutcomes) types() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, e := range p.sent {
		out = append(out, e.Type)
	}
	return strings.Join(out, ",")
}

// operatorEnv is Orders for shop-a over a store of the test's own, answering through prov.
type operatorEnv struct {
	o     *handlers.Orders
	store *orderstate.Store
	outs  *publishedOutcomes
	polls *recordedPolls
	prov  *operatorProvider
}

func newOperatorEnv(t *testing.T) *operatorEnv {
	t.Helper()
	e := &operatorEnv{store: newStore(t), outs: &publishedOutcomes{}, polls: &recordedPolls{}, prov: &operatorProvider{}}
	shop := &handlers.Shop{ID: "shop-a", Provider: e.prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}}
	e.o = newOrders(t, handlers.OrdersConfig{Store: e.store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: e.outs, Polls: e.polls, Now: time.Now})
	return e
}

// put writes an order's state; a pending order's re-check is scheduled already.
func (e *operatorEnv) put(t *testing.T, order string, st orderstate.State) {
	t.Helper()
	if st.Status == orderstate.StatusPending {
		st.PollScheduled, st.PollAt = true, time.Now().Add(time.Hour)
	}
	if _, err := e.store.Put(context.Background(), "shop-a", order, st, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func (e *operatorEnv) get(t *testing.T, order string) orderstate.State {
	t.Helper()
	st, err := e.store.Get(context.Background(), "shop-a", order)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// last returns the last entry of the order's history.
func (e *operatorEnv) last(t *testing.T, order string) orderstate.Entry {
	t.Helper()
	h, err := e.store.History(context.Background(), "shop-a", order)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) == 0 {
		t.Fatalf("%s has no history", order)
	}
	return h[len(h)-1]
}

func (e *operatorEnv) recheck(id, order string) error {
	return e.o.RecheckRequested(context.Background(), handlers.Event[events.RecheckRequest]{
		Meta: handlers.Meta{ID: id, Source: "console", Type: events.TypeRecheckRequested, Shop: "shop-a", Seq: 100, Attempt: 1},
		Data: events.RecheckRequest{ShopID: "shop-a", OrderID: order, Operator: "ops-tanaka"}})
}

func (e *operatorEnv) resolve(id, order, tx string) error {
	return e.o.ResolveRequested(context.Background(), handlers.Event[events.ResolveRequest]{
		Meta: handlers.Meta{ID: id, Source: "console", Type: events.TypeResolveRequested, Shop: "shop-a", Seq: 100, Attempt: 1},
		Data: events.ResolveRequest{ShopID: "shop-a", OrderID: order, Operator: "ops-sato", TransactionID: tx, NotRegistered: tx == ""}})
}

func checkReason(t *testing.T, err error, want handlers.Reason) {
	t.Helper()
	if reason, ok := handlers.DeadLetterReason(err); !ok || reason != want {
		t.Errorf("error %v (reason %v), want a dead letter %s", err, reason, want)
	}
}

// An operator's re-check of an order under review asks ATODENE now and applies the answer as a
// due re-check does, naming the request as the outcome's cause; of an order in any other status
// it asks nothing, publishes nothing and records the decision that stands, with the operator.
func TestRecheck(t *testing.T) {
	t.Parallel()
	const tx = "12345678901"
	for _, tc := range []struct {
		name     string
		state    *orderstate.State // nil: the worker has no record of the order
		answer   atodene.Screening
		status   orderstate.Status // after
		outcomes string
		did      string
		reason   handlers.Reason // a dead letter
	}{
		{name: "pending, decided ok", state: &orderstate.State{Status: orderstate.StatusPending, TransactionID: tx, CausedBy: "c-1"},
			answer: manualOK, status: orderstate.StatusOK, outcomes: "credit.ok", did: "decided: ok"},
		{name: "pending, on hold", state: &orderstate.State{Status: orderstate.StatusPending, TransactionID: tx},
			answer: onHold, status: orderstate.StatusPending, outcomes: "credit.pending", did: "review on hold (保留)"},
		{name: "pending, still under review", state: &orderstate.State{Status: orderstate.StatusPending, TransactionID: tx},
			answer: underReview, status: orderstate.StatusPending, did: "no change: still under review (審査中)"},
		{name: "pending, still on hold", state: &orderstate.State{Status: orderstate.StatusPending, Review: "hold", TransactionID: tx},
			answer: onHold, status: orderstate.StatusPending, did: "no change: still on hold (保留)"},
		{name: "ok", state: &orderstate.State{Status: orderstate.StatusOK, TransactionID: tx},
			status: orderstate.StatusOK, did: "no change: the credit is ok already"},
		{name: "ng", state: &orderstate.State{Status: orderstate.StatusNG, TransactionID: tx},
			status: orderstate.StatusNG, did: "no change: the credit is ng already"},
		{name: "cancelled", state: &orderstate.State{Status: orderstate.StatusCancelled, TransactionID: tx},
			status: orderstate.StatusCancelled, did: "no change: the credit is cancelled already"},
		{name: "registering", state: &orderstate.State{Status: orderstate.StatusRegistering},
			status: orderstate.StatusRegistering, did: "no change: the order's registration is under way"},
		{name: "unknown", state: &orderstate.State{Status: orderstate.StatusUnknown},
			status: orderstate.StatusUnknown, did: "no change: the outcome of the order's registration is unknown"},
		{name: "none, parked events only", state: &orderstate.State{TrackingSeq: 3},
			status: orderstate.StatusNone, did: "no change: the order is not registered (none)"},
		{name: "no record", reason: handlers.ReasonNoTransaction},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newOperatorEnv(t)
			e.prov.screenings = map[string]atodene.Screening{tx: tc.answer}
			if tc.state != nil {
				e.put(t, "R-1", *tc.state)
			}
			before := e.get(t, "R-1")
			err := e.recheck("rc-1", "R-1")
			if tc.reason != (handlers.Reason{}) {
				checkReason(t, err, tc.reason)
				if e.prov.calls["getauthori"] != 0 || e.outs.types() != "" {
					t.Errorf("calls %v, outcomes %q for an order the worker has no record of", e.prov.calls, e.outs.types())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st := e.get(t, "R-1")
			if st.Status != tc.status || e.outs.types() != tc.outcomes {
				t.Errorf("status %q, outcomes %q; want %q, %q", st.Status, e.outs.types(), tc.status, tc.outcomes)
			}
			if wantCalls := map[bool]int{true: 1}[tc.state.Status == orderstate.StatusPending]; e.prov.calls["getauthori"] != wantCalls {
				t.Errorf("%d getauthori.do calls, want %d", e.prov.calls["getauthori"], wantCalls)
			}
			if tc.outcomes == "" && st.Version != before.Version {
				t.Errorf("a re-check that changed nothing wrote the state (version %d to %d): the re-check schedule must stand", before.Version, st.Version)
			}
			for _, out := range e.outs.sent {
				if out.CausationID != "rc-1" {
					t.Errorf("%s names %q as its cause, want the request rc-1", out.Type, out.CausationID)
				}
			}
			last := e.last(t, "R-1")
			if last.ID != "rc-1" || last.Operator != "ops-tanaka" || !strings.HasPrefix(last.Did, tc.did) || last.Status != tc.status {
				t.Errorf("history entry %+v, want rc-1 by ops-tanaka: %q → %s", last, tc.did, tc.status)
			}
		})
	}
}

// A re-check whose transaction ATODENE holds as cancelled cancels the order, as a poll does.
func TestRecheckOfACancelledTransaction(t *testing.T) {
	t.Parallel()
	e := newOperatorEnv(t)
	e.prov.errs = map[string]error{"12345678901": rejected("getauthori.do", "transactionId", atodene.CodeAlreadyCancelled)}
	e.put(t, "R-1", orderstate.State{Status: orderstate.StatusPending, TransactionID: "12345678901"})
	if err := e.recheck("rc-1", "R-1"); err != nil {
		t.Fatal(err)
	}
	if st := e.get(t, "R-1"); st.Status != orderstate.StatusCancelled || e.outs.types() != "credit.cancelled" {
		t.Errorf("status %q, outcomes %q; want cancelled, credit.cancelled", st.Status, e.outs.types())
	}
}

// TestRecheckOfATransactionATODENEDoesNotKnow: an operator's re-check (与信結果確認) answered
// er000002 makes the order unknown at once, as a due re-check does, instead of dead-lettering the
// request no-transaction and leaving the order under review for the next due re-check to find.
func TestRecheckOfATransactionATODENEDoesNotKnow(t *testing.T) {
	t.Parallel()
	const lost = "11111111111"
	e := newOperatorEnv(t)
	e.prov.errs = map[string]error{lost: rejected("getauthori.do", "transactionId", atodene.CodeUnknownTransaction)}
	e.put(t, "R-2", orderstate.State{Status: orderstate.StatusPending, TransactionID: lost, Fee: 205, BilledAmount: 3155,
		DataHash: "v1:x", CausedBy: "c-1", CreditSeq: 10, PollSince: time.Now(), PollScheduled: true})
	err := e.recheck("rc-2", "R-2")
	checkReason(t, err, handlers.ReasonOutcomeUnknown)
	st := e.get(t, "R-2")
	if _, relies := st.TimerDue(); st.Status != orderstate.StatusUnknown || relies || e.outs.types() != "" {
		t.Fatalf("state %s, relies on a timer %v, outcomes %q; want unknown, no timer, none", st.Status, relies, e.outs.types())
	}
}

// An unknown order resolved with a transaction ATODENE confirms takes the transaction and its
// decision, and publishes the credit outcome a registration would; one ATODENE does not know is
// not adopted (the order stays unknown, and the request is dead-lettered no-transaction).
func TestResolveWithATransaction(t *testing.T) {
	t.Parallel()
	const tx = "98765432101"
	unknown := orderstate.State{Status: orderstate.StatusUnknown, Fee: 205, BilledAmount: 3155, DataHash: "v1:x", CausedBy: "c-1", CreditSeq: 10}
	for _, tc := range []struct {
		name     string
		answer   atodene.Screening
		err      error
		status   orderstate.Status
		review   string
		outcomes string
		reason   handlers.Reason
	}{
		{name: "ok", answer: atodene.Screening{Auto: atodene.DecisionOK}, status: orderstate.StatusOK, outcomes: "credit.ok"},
		{name: "ng", answer: atodene.Screening{Auto: atodene.DecisionNG}, status: orderstate.StatusNG, outcomes: "credit.ng"},
		{name: "under review", answer: underReview, status: orderstate.StatusPending, outcomes: "credit.pending"},
		{name: "on hold", answer: onHold, status: orderstate.StatusPending, review: "hold", outcomes: "credit.pending"},
		{name: "cancelled", err: rejected("getauthori.do", "transactionId", atodene.CodeAlreadyCancelled), status: orderstate.StatusCancelled, outcomes: "credit.cancelled"},
		{name: "unknown to ATODENE", err: rejected("getauthori.do", "transactionId", atodene.CodeUnknownTransaction), status: orderstate.StatusUnknown, reason: handlers.ReasonNoTransaction},
		{name: "refused otherwise", err: rejected("getauthori.do", "transactionId", "er000001"), status: orderstate.StatusUnknown, reason: handlers.ReasonInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newOperatorEnv(t)
			e.prov.screenings = map[string]atodene.Screening{tx: tc.answer}
			if tc.err != nil {
				e.prov.errs = map[string]error{tx: tc.err}
			}
			e.put(t, "U-1", unknown)
			err := e.resolve("rs-1", "U-1", tx)
			st := e.get(t, "U-1")
			if tc.reason != (handlers.Reason{}) {
				checkReason(t, err, tc.reason)
				if st.Status != orderstate.StatusUnknown || st.TransactionID != "" || e.outs.types() != "" {
					t.Errorf("state %+v, outcomes %q: a transaction ATODENE did not confirm was adopted", st, e.outs.types())
				}
				if tc.reason == handlers.ReasonNoTransaction && !strings.Contains(err.Error(), "not adopted") {
					t.Errorf("error %q does not say the transaction was not adopted", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.Status != tc.status || st.Review != tc.review || st.TransactionID != tx || e.outs.types() != tc.outcomes {
				t.Errorf("status %q review %q transaction %q, outcomes %q; want %q %q %s, %q", st.Status, st.Review, st.TransactionID,
					e.outs.types(), tc.status, tc.review, tx, tc.outcomes)
			}
			if out := e.outs.sent[0]; out.CausationID != "rs-1" {
				t.Errorf("%s names %q as its cause, want the request rs-1", out.Type, out.CausationID)
			}
			var credit events.Credit
			if err := json.Unmarshal(e.outs.sent[0].Data, &credit); err != nil || credit.TransactionID != tx || credit.Fee != 205 || credit.BilledAmount != 3155 {
				t.Errorf("credit outcome %+v (%v), want transaction %s, fee 205, billed 3155", credit, err, tx)
			}
			if polls := len(e.polls.timer); (tc.status == orderstate.StatusPending) != (polls > 0) {
				t.Errorf("%d re-checks scheduled for a %s order", polls, tc.status)
			}
			if last := e.last(t, "U-1"); last.Operator != "ops-sato" || !strings.HasPrefix(last.Did, "resolved: transaction "+tx+" adopted") {
				t.Errorf("history entry %+v", last)
			}
			// The same request again changes nothing.
			if err := e.resolve("rs-1", "U-1", tx); err != nil {
				t.Fatal(err)
			}
			if e.prov.calls["getauthori"] != 1 || len(e.outs.sent) != 1 || e.last(t, "U-1").Did != "duplicate: processed already" {
				t.Errorf("a duplicate made %d calls, %d outcomes; history %+v", e.prov.calls["getauthori"], len(e.outs.sent), e.last(t, "U-1"))
			}
		})
	}
}

// A resolution of an order that is not unknown changes nothing and is recorded; one of an order
// the worker has no record of is dead-lettered.
func TestResolveOfAnOrderNotUnknown(t *testing.T) {
	t.Parallel()
	for _, status := range []orderstate.Status{orderstate.StatusOK, orderstate.StatusPending, orderstate.StatusNG, orderstate.StatusRegistering, orderstate.StatusCancelled} {
		for _, tx := range []string{"12345678901", ""} {
			t.Run(string(status)+" "+tx, func(t *testing.T) {
				t.Parallel()
				e := newOperatorEnv(t)
				e.put(t, "O-1", orderstate.State{Status: status, TransactionID: "11111111111"})
				before := e.get(t, "O-1")
				if err := e.resolve("rs-1", "O-1", tx); err != nil {
					t.Fatal(err)
				}
				st := e.get(t, "O-1")
				if st.Version != before.Version || e.prov.calls["getauthori"] != 0 || e.outs.types() != "" {
					t.Errorf("version %d → %d, calls %v, outcomes %q: want nothing", before.Version, st.Version, e.prov.calls, e.outs.types())
				}
				want := "no change: the order is " + string(status) + ", not unknown"
				if last := e.last(t, "O-1"); !strings.HasPrefix(last.Did, want) || last.Operator != "ops-sato" {
					t.Errorf("history entry %+v, want %q by ops-sato", last, want)
				}
			})
		}
	}
	e := newOperatorEnv(t)
	checkReason(t, e.resolve("rs-1", "NEVER-1", ""), handlers.ReasonNoTransaction)
}

// unknown → resolved not registered → the order.created that made it unknown, replayed from its
// dead letter, registers it; a credit event published before that one stays stale.
func TestResolveNotRegisteredThenCreatedRegisters(t *testing.T) {
	t.Parallel()
	e := newOperatorEnv(t)
	ctx := context.Background()
	e.prov.taken = true
	at := time.Date(2026, 11, 26, 10, 15, 0, 0, time.UTC)
	created := handlers.Event[events.Order]{Meta: handlers.Meta{ID: "c-1", Source: "test", Type: events.TypeOrderCreated, Shop: "shop-a",
		Seq: 10, PublishedCreated: 1, Time: at, Attempt: 1}, Data: testOrder("N-1", 2950)}
	checkReason(t, e.o.OrderCreated(ctx, created), handlers.ReasonOutcomeUnknown)
	if st := e.get(t, "N-1"); st.Status != orderstate.StatusUnknown {
		t.Fatalf("status %q, want unknown", st.Status)
	}
	e.prov.taken = false // the operator found nothing at ATODENE (or cancelled what was there)

	if err := e.resolve("rs-1", "N-1", ""); err != nil {
		t.Fatal(err)
	}
	st := e.get(t, "N-1")
	if st.Status != orderstate.StatusNone || st.TransactionID != "" || st.DataHash != "" || st.Fee != 0 {
		t.Fatalf("state after not_registered: %+v, want none without transaction, request or fee", st)
	}
	if last := e.last(t, "N-1"); last.Operator != "ops-sato" || !strings.HasPrefix(last.Did, "resolved: not registered") || last.Status != orderstate.StatusNone {
		t.Errorf("history entry %+v", last)
	}

	older := created
	older.ID, older.Seq = "c-0", 9
	if err := e.o.OrderCreated(ctx, older); err != nil {
		t.Fatal(err)
	}
	if e.prov.calls["register"] != 0 || !strings.HasPrefix(e.last(t, "N-1").Did, "no change: older in the stream") {
		t.Fatalf("an order.created published before the one that went unknown registered the order: %v, %+v", e.prov.calls, e.last(t, "N-1"))
	}

	replay := created
	replay.Seq, replay.Published, replay.ReplayCount = 30, 10, "1"
	if err := e.o.OrderCreated(ctx, replay); err != nil {
		t.Fatalf("the replayed order.created: %v", err)
	}
	st = e.get(t, "N-1")
	if st.Status != orderstate.StatusOK || e.prov.calls["register"] != 1 || e.outs.types() != "credit.ok" {
		t.Errorf("status %q after %v, outcomes %q; want ok, one registration, credit.ok", st.Status, e.prov.calls, e.outs.types())
	}
	// A resolution of the order now changes nothing.
	if err := e.resolve("rs-2", "N-1", ""); err != nil {
		t.Fatal(err)
	}
	if got := e.get(t, "N-1"); got.Status != orderstate.StatusOK || !strings.HasPrefix(e.last(t, "N-1").Did, "no change: the order is ok, not unknown") {
		t.Errorf("status %q, history %+v", got.Status, e.last(t, "N-1"))
	}
}

// A tracking number for an order whose registration's outcome is unknown waits for the operator's
// resolution, parked: ATODENE may hold a live transaction, so "the credit is not ok" would be a
// made-up refusal. Once the resolution adopts the transaction, the number is reported.
func TestTrackingWaitsForTheResolution(t *testing.T) {
	t.Parallel()
	const tx = "98765432102"
	e := newOperatorEnv(t)
	e.prov.screenings = map[string]atodene.Screening{tx: {Auto: atodene.DecisionOK}}
	e.put(t, "U-2", orderstate.State{Status: orderstate.StatusUnknown, Fee: 205, BilledAmount: 3155, DataHash: "v1:x", CausedBy: "c-1", CreditSeq: 10})
	if err := e.o.TrackingEntered(context.Background(), trackingEvent("t-1", "U-2", 20, "1234-5678-9012")); err != nil {
		t.Fatalf("tracking: %v", err)
	}
	if got := e.outs.types(); got != "" {
		t.Fatalf("outcomes %q for a tracking number of an unknown order, want none until it is resolved", got)
	}
	if st := e.get(t, "U-2"); len(st.Parked) != 1 {
		t.Fatalf("the tracking number is not parked: %d parked", len(st.Parked))
	}
	if err := e.resolve("rs-1", "U-2", tx); err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if got := e.outs.types(); got != "credit.ok,shipment.ok" {
		t.Errorf("outcomes %q after the resolution, want credit.ok,shipment.ok", got)
	}
}

// TestRecheckWhoseQueuedShipmentFailsPublishesCreditOKOnce: an operator's re-check finds an order
// under review decided OK; its credit.ok is published, and then the tracking number queued while
// the order was under review fails to be reported: ATODENE refuses the shop's account
// (account-refused, dead-lettered at once), or answers HTTP 503 on every delivery until the
// consumer gives up. The credit.ok is written out of the outbox before the report is tried, so
// the re-check replayed later, after RESULTS's duplicate window, publishes it no second time: it
// reports the tracking number (shipment.ok) and nothing else.
func TestRecheckWhoseQueuedShipmentFailsPublishesCreditOKOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		deliveries int
		later      time.Duration
		prov       interface {
			handlers.Provider
			heal()
		}
	}{
		{"refused", 1, 30 * time.Minute, &refusedShipment{refusingProvider: refusingProvider{refused: true}}},
		{"transient", 10, time.Hour, &failingShipment{shipmentFails: shipmentFails{failing: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := newStore(t)
			clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
			results := newWindowedResults(clk.Now)
			shop := &handlers.Shop{ID: "shop-a", Provider: tc.prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}}
			o := newOrders(t, handlers.OrdersConfig{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
				Outcomes: results, Polls: noPolls{}, Now: clk.Now})
			ctx := context.Background()
			st := orderstate.State{Status: orderstate.StatusPending, TransactionID: "12345678901", Fee: 205, BilledAmount: 3155,
				PollScheduled: true, PollAt: clk.Now().Add(30 * time.Minute), PollSince: clk.Now(),
				Shipment: &orderstate.Shipment{CarrierCode: "12", TrackingNumber: "1234-5678-9012"}}
			if _, err := store.Put(ctx, "shop-a", "o-1", st, clk.Now()); err != nil {
				t.Fatal(err)
			}
			rc := handlers.Event[events.RecheckRequest]{
				Meta: handlers.Meta{ID: "rc-1", Source: "console", Type: events.TypeRecheckRequested, Shop: "shop-a", Seq: 100},
				Data: events.RecheckRequest{ShopID: "shop-a", OrderID: "o-1", Operator: "ops-tanaka"}}
			delay := time.Second // the consumer's redelivery backoff
			for attempt := 1; attempt <= tc.deliveries; attempt++ {
				rc.Attempt = attempt
				if err := o.RecheckRequested(ctx, rc); err == nil {
					t.Fatalf("delivery %d succeeded: the queued shipment's report did not fail", attempt)
				}
				clk.Advance(delay)
				delay = min(2*delay, time.Minute)
			}
			got, _ := store.Get(ctx, "shop-a", "o-1")
			if got.Status != orderstate.StatusOK || len(got.Outbox) != 0 || got.Shipment == nil || got.Shipment.Reported {
				t.Fatalf("after the failed report: %s, outbox %d, shipment %+v; want ok, the credit.ok out of the outbox, the shipment queued",
					got.Status, len(got.Outbox), got.Shipment)
			}

			clk.Advance(tc.later) // the operator replays the letter once the account or ATODENE is well
			tc.prov.heal()
			rc.ReplayCount, rc.Attempt, rc.Seq = "1", 1, 200
			if err := o.RecheckRequested(ctx, rc); err != nil {
				t.Fatalf("replay: %v", err)
			}
			var stored []string
			for id, n := range results.copies() {
				stored = append(stored, id[strings.LastIndex(id, ":")+1:])
				if n != 1 {
					t.Errorf("RESULTS stored %s %d times, want once", id, n)
				}
			}
			slices.Sort(stored)
			if strings.Join(stored, ",") != "credit.ok,shipment.ok" {
				t.Errorf("RESULTS holds %q, want credit.ok,shipment.ok", stored)
			}
		})
	}
}

// refusedShipment refuses the merchant's account on shipment reports only, until healed: the
// shop's calls stopped between the re-check's getauthori.do and the queued report.
type refusedShipment struct{ refusingProvider }

func (p *refusedShipment) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	return p.fakeProvider.Register(ctx, req)
}
func (p *refusedShipment) Cancel(ctx context.Context, tx string) error {
	return p.fakeProvider.Cancel(ctx, tx)
}
func (p *refusedShipment) GetAuthori(ctx context.Context, tx string) (atodene.Screening, error) {
	return p.fakeProvider.GetAuthori(ctx, tx)
}
func (p *refusedShipment) heal() { p.refused = false }

type failingShipment struct{ shipmentFails }

func (p *failingShipment) heal() { p.failing = false }

// TestDueRecheckOfATransactionATODENEDoesNotKnow: the due re-check of an order under review is
// answered er000002: ATODENE knows no such transaction (its records lost, or the shop's account
// pointed at another). No retry changes that, so the order becomes unknown, as a registration whose
// outcome is unknown: nothing is published, the re-check is dead-lettered outcome-unknown once,
// and the state relies on no re-check (the reconciler makes none again). A re-check due later
// changes nothing; the operator's resolution with the transaction ATODENE's screen holds adopts it.
func TestDueRecheckOfATransactionATODENEDoesNotKnow(t *testing.T) {
	t.Parallel()
	const lost, found = "11111111111", "22222222222"
	e := newOperatorEnv(t)
	e.prov.errs = map[string]error{lost: rejected("getauthori.do", "transactionId", atodene.CodeUnknownTransaction)}
	e.put(t, "P-1", orderstate.State{Status: orderstate.StatusPending, TransactionID: lost, Fee: 205, BilledAmount: 3155,
		DataHash: "v1:x", CausedBy: "c-1", CreditSeq: 10, PollSince: time.Now()})
	due := handlers.PollRequest{Shop: "shop-a", OrderID: "P-1"}
	err := e.o.PollDue(context.Background(), due)
	checkReason(t, err, handlers.ReasonOutcomeUnknown)
	if err == nil || !strings.Contains(err.Error(), "no transaction "+lost) {
		t.Errorf("error %v, want it to name the transaction ATODENE does not know", err)
	}
	st := e.get(t, "P-1")
	if _, relies := st.TimerDue(); st.Status != orderstate.StatusUnknown || relies || e.outs.types() != "" {
		t.Fatalf("state %s, relies on a timer %v, outcomes %q; want unknown, no timer, none", st.Status, relies, e.outs.types())
	}
	if err := e.o.PollDue(context.Background(), due); err != nil {
		t.Fatalf("a later re-check of the unknown order: %v, want nothing done", err)
	}
	if n := e.prov.calls["getauthori"]; n != 1 {
		t.Fatalf("%d getauthori.do calls, want 1", n)
	}
	if err := e.resolve("rs-1", "P-1", found); err != nil {
		t.Fatal(err)
	}
	if st := e.get(t, "P-1"); st.Status != orderstate.StatusOK || st.TransactionID != found || e.outs.types() != "credit.ok" {
		t.Errorf("after the resolution: %s on %s, outcomes %q; want ok on %s, credit.ok", st.Status, st.TransactionID, e.outs.types(), found)
	}
}

// TestConcurrentResolvesOfOneUnknownOrder: two operators resolve the same unknown order at once
// with different transactions: one is adopted, the other, queued behind its lease, finds the order
// ok and changes nothing; getauthori.do is called once.
func TestConcurrentResolvesOfOneUnknownOrder(t *testing.T) {
	t.Parallel()
	e := newOperatorEnv(t)
	e.put(t, "U-1", orderstate.State{Status: orderstate.StatusUnknown, Fee: 205, BilledAmount: 3155, DataHash: "v1:x", CausedBy: "c-1", CreditSeq: 10})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, tx := range []string{"11111111111", "22222222222"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.resolve(fmt.Sprintf("rs-%d", i), "U-1", tx)
		}()
	}
	wg.Wait()
	// A resolution queued behind the other's lease is applied by the holder, or by its inbox timer.
	for _, p := range e.polls.timer {
		_ = e.o.PollDue(context.Background(), p)
	}
	st := e.get(t, "U-1")
	h, _ := e.store.History(context.Background(), "shop-a", "U-1")
	var dids []string
	for _, x := range h {
		dids = append(dids, x.ID+": "+x.Did)
	}
	t.Logf("errors %v; state %s on %s; outcomes %q; getauthori %d; history %q", errs, st.Status, st.TransactionID, e.outs.types(), e.prov.calls["getauthori"], dids)
	if st.Status != orderstate.StatusOK || e.outs.types() != "credit.ok" || e.prov.calls["getauthori"] != 1 {
		t.Errorf("two concurrent resolutions: %s on %s, outcomes %q, %d getauthori.do", st.Status, st.TransactionID, e.outs.types(), e.prov.calls["getauthori"])
	}
}
