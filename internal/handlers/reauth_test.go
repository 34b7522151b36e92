package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/clock"
)

// The tests in this file are about re-authorization (docs/lifecycle.md#re-authorization), against
// the sandbox and Redis, with a clock that the test moves: 88 days pass in a call.

const reauthAfter = 88 * 24 * time.Hour

// timedPolls records the timers scheduled, with when they are due; while failing is set, it fails
// them as JetStream down would.
type timedPolls struct {
	mu      sync.Mutex
	timers  []timedPoll
	failing bool
}

type timedPoll struct {
	req handlers.PollRequest
	at  time.Time
}

func (p *timedPolls) Schedule(_ context.Context, r handlers.PollRequest, at time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing {
		return errors.New("JetStream unavailable (the test)")
	}
	p.timers = append(p.timers, timedPoll{r, at})
	return nil
}

func (p *timedPolls) fail(failing bool) { p.mu.Lock(); p.failing = failing; p.mu.Unlock() }

// last returns the last timer of a kind scheduled.
func (p *timedPolls) last(t *testing.T, kind string) timedPoll {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.timers) - 1; i >= 0; i-- {
		if p.timers[i].req.Kind == kind {
			return p.timers[i]
		}
	}
	t.Fatalf("no %q timer scheduled", kind)
	return timedPoll{}
}

func (p *timedPolls) count(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, tm := range p.timers {
		if tm.req.Kind == kind {
			n++
		}
	}
	return n
}

// hookedProvider is the sandbox's client with hooks around some calls: a registration may be held
// until released, or its answer lost after ATODENE got it; a cancel may fail.
type hookedProvider struct {
	handlers.Provider
	mu sync.Mutex
	// holdRegister, if set, is waited on by a registration of a derived shopOrderId before it is sent.
	holdRegister chan struct{}
	registering  chan struct{} // closed when a held registration waits
	once         sync.Once
	// loseRegister loses the answer of the next registration of a derived shopOrderId.
	loseRegister bool
	// loseOwn loses the answer of the next registration of an order's own shopOrderId.
	loseOwn bool
	// emails holds the buyer's email of each registration of a derived shopOrderId sent.
	emails []string
	// failCancels fails that many cancels before they are sent.
	failCancels int
	// unknownTx is a transaction whose getauthori.do ATODENE answers with er000002 (no such
	// transaction), as if it had lost it.
	unknownTx string
}

func (p *hookedProvider) GetAuthori(ctx context.Context, tx string) (atodene.Screening, error) {
	p.mu.Lock()
	unknown := p.unknownTx != "" && tx == p.unknownTx
	p.mu.Unlock()
	if unknown {
		return atodene.Screening{}, &atodene.RejectedError{Op: "getauthori", Errors: []atodene.ProviderError{{Point: "transactionId", Code: atodene.CodeUnknownTransaction}}}
	}
	return p.Provider.GetAuthori(ctx, tx)
}

var errLost = &atodene.OutcomeUnknownError{Op: "transaction", Err: errors.New("connection reset by the test")}

func (p *hookedProvider) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	derived := strings.Contains(req.Sent().ShopOrderID, "_R")
	p.mu.Lock()
	hold, lose := p.holdRegister, p.loseRegister && derived
	if lose {
		p.loseRegister = false
	}
	if p.loseOwn && !derived {
		lose, p.loseOwn = true, false
	}
	if derived {
		p.emails = append(p.emails, req.Order().Buyer.Email)
	}
	p.mu.Unlock()
	if hold != nil && derived {
		p.once.Do(func() { close(p.registering) })
		<-hold
	}
	reg, err := p.Provider.Register(ctx, req)
	if lose && err == nil {
		return atodene.Registration{}, errLost
	}
	return reg, err
}

func (p *hookedProvider) Cancel(ctx context.Context, tx string) error {
	p.mu.Lock()
	fail := p.failCancels > 0
	if fail {
		p.failCancels--
	}
	p.mu.Unlock()
	if fail {
		return &atodene.OutcomeUnknownError{Op: "modifytransaction", Err: errors.New("connection refused by the test")}
	}
	return p.Provider.Cancel(ctx, tx)
}

// reauthEnv is Orders for shop-a, which re-authorizes after 88 days, calling the sandbox; both
// read the same fake clock.
type reauthEnv struct {
	o       *handlers.Orders
	cfg     handlers.OrdersConfig
	store   *orderstate.Store
	outs    *publishedOutcomes
	polls   *timedPolls
	clock   *clock.Fake
	prov    *hookedProvider
	sbURL   string
	results map[string]int
	mu      sync.Mutex
	seq     uint64 // of the last update, after the creation's 1
}

func newReauthEnv(t *testing.T) *reauthEnv {
	t.Helper()
	e := &reauthEnv{store: newStore(t), outs: &publishedOutcomes{}, polls: &timedPolls{},
		clock: clock.NewFake(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)), results: map[string]int{}, seq: 10}
	sb, err := sandbox.New(sandbox.Config{Now: e.clock.Now, Shops: []sandbox.Shop{sandbox.DemoShop}, ReviewDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { sb.Close(); srv.Close() })
	e.sbURL = srv.URL
	client, err := atodene.New(atodene.Config{BaseURL: srv.URL + "/api/", Credentials: atodene.Credentials{
		ShopCode: sandbox.DemoShop.ShopCode, LinkID: sandbox.DemoShop.LinkID, LinkPassword: sandbox.DemoShop.LinkPassword}})
	if err != nil {
		t.Fatal(err)
	}
	e.prov = &hookedProvider{Provider: client}
	shop := &handlers.Shop{ID: "shop-a", Provider: e.prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep},
		ReauthorizeAfter: reauthAfter}
	e.cfg = handlers.OrdersConfig{Store: e.store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: e.outs, Polls: e.polls, Now: e.clock.Now,
		Reauthorized: func(result string) { e.mu.Lock(); e.results[result]++; e.mu.Unlock() }}
	e.o = newOrders(t, e.cfg)
	return e
}

// restart is a worker started again: Orders anew over the same Redis and sandbox.
func (e *reauthEnv) restart(t *testing.T) { e.o = newOrders(t, e.cfg) }

func (e *reauthEnv) create(t *testing.T, order, email string) {
	t.Helper()
	ev := createdEvent("c-"+order, order, 1)
	ev.Data.Buyer.Email = email
	if err := e.o.OrderCreated(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

// update publishes an order.updated of order with the buyer's email and a billed amount, at the
// clock's time.
func (e *reauthEnv) update(t *testing.T, id, order, email string, billed int64) error {
	t.Helper()
	e.seq++
	ev := handlers.Event[events.Order]{Meta: handlers.Meta{ID: id, Source: "test", Type: events.TypeOrderUpdated, Shop: "shop-a", Seq: e.seq, Time: e.clock.Now()},
		Data: testOrder(order, billed)}
	ev.Data.Buyer.Email = email
	return e.o.OrderUpdated(context.Background(), ev)
}

func (e *reauthEnv) track(order string) error {
	return e.o.TrackingEntered(context.Background(), handlers.Event[events.Tracking]{
		Meta: handlers.Meta{ID: "t-" + order, Source: "test", Type: events.TypeTrackingEntered, Shop: "shop-a", Seq: 2, Time: e.clock.Now()},
		Data: events.Tracking{ShopID: "shop-a", OrderID: order, Carrier: "yamato", TrackingNumber: "123456789012"}})
}

func (e *reauthEnv) cancel(order string) error {
	return e.o.OrderCancelled(context.Background(), handlers.Event[events.Cancel]{
		Meta: handlers.Meta{ID: "x-" + order, Source: "test", Type: events.TypeOrderCancelled, Shop: "shop-a", Seq: 3, Time: e.clock.Now()},
		Data: events.Cancel{ShopID: "shop-a", OrderID: order, Reason: "buyer"}})
}

func (e *reauthEnv) get(t *testing.T, order string) orderstate.State {
	t.Helper()
	st, err := e.store.Get(context.Background(), "shop-a", order)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// timer returns the re-authorization timer o-1's state relies on (held in the timer index, or
// scheduled in JetStream), and when it is due.
func (e *reauthEnv) timer(t *testing.T) (handlers.PollRequest, time.Time) {
	t.Helper()
	st := e.get(t, "o-1")
	if st.Reauth == nil {
		t.Fatal("o-1 has no re-authorization timer")
	}
	return handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Seq: st.Reauth.Seq, Kind: handlers.TimerReauth}, st.Reauth.At
}

// fire handles o-1's re-authorization timer, as JetStream delivers it when due.
func (e *reauthEnv) fire(t *testing.T) error {
	t.Helper()
	req, _ := e.timer(t)
	return e.o.PollDue(context.Background(), req)
}

// poll handles the last re-check scheduled.
func (e *reauthEnv) poll(t *testing.T) {
	t.Helper()
	if err := e.o.PollDue(context.Background(), e.polls.last(t, handlers.TimerPoll).req); err != nil {
		t.Fatal(err)
	}
}

// transactions returns the sandbox's transactions by shopOrderId.
func (e *reauthEnv) transactions(t *testing.T) map[string]sandbox.TransactionView {
	t.Helper()
	resp, err := http.Get(e.sbURL + "/sandbox/transactions")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []sandbox.TransactionView
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	out := map[string]sandbox.TransactionView{}
	for _, v := range list {
		out[v.ShopOrderID] = v
	}
	return out
}

// credits lists the credit outcomes published, each once, as "type[ reauthorized] transaction".
func (e *reauthEnv) credits(t *testing.T) []string {
	t.Helper()
	e.outs.mu.Lock()
	defer e.outs.mu.Unlock()
	var out []string
	seen := map[string]bool{}
	for _, env := range e.outs.sent {
		if !strings.HasPrefix(env.Type, "credit.") || seen[env.ID] {
			continue // a publish repeated after a failure, under its message ID: a duplicate the stream drops
		}
		seen[env.ID] = true
		var c events.Credit
		if err := json.Unmarshal(env.Data, &c); err != nil {
			t.Fatal(err)
		}
		s := env.Type
		if c.Reauthorized {
			s += " reauthorized"
		}
		out = append(out, s+" "+c.TransactionID)
	}
	return out
}

func (e *reauthEnv) result(r string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.results[r]
}

// reauthorizingUnderReview makes order o-1, under review then OK, due for re-authorization and
// fires its timer: the new registration is under review. It returns the old transaction.
func (e *reauthEnv) reauthorizingUnderReview(t *testing.T) string {
	t.Helper()
	e.create(t, "o-1", "review-ok@example.jp")
	old := e.get(t, "o-1").TransactionID
	decide(t, e.sbURL, old, "OK")
	e.poll(t)
	e.clock.Advance(reauthAfter)
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	return old
}

// reauthorizationEndedUnknown makes order o-1 OK, due for re-authorization, and loses the answer
// of its registration of o-1_R1, whose retry finds it registered: the re-authorization ends
// unknown. It returns the order's transaction.
func (e *reauthEnv) reauthorizationEndedUnknown(t *testing.T) string {
	t.Helper()
	e.create(t, "o-1", "taro@example.jp")
	old := e.get(t, "o-1").TransactionID
	e.clock.Advance(reauthAfter)
	e.prov.loseRegister = true
	_ = e.fire(t)
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	return old
}

// TestReauthorizedOnce: an order OK and not shipped for 88 days is registered again under o-1_R1,
// with credit.ok reauthorized naming the new transaction; the old one is cancelled. The timer
// handled again, or a timer scheduled before it, registers nothing more. A tracking number is then
// reported on the new transaction, and after it no re-authorization follows.
func TestReauthorizedOnce(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	e.create(t, "o-1", "taro@example.jp")
	st := e.get(t, "o-1")
	old := st.TransactionID
	first, at := e.timer(t)
	if want := st.AuthorizedAt.Add(reauthAfter); !at.Equal(want) || st.AuthorizedAt.IsZero() || !st.Reauth.Held {
		t.Fatalf("re-authorization set for %s (held %v), want 88 days after the approval (%s), held in the timer index", at, st.Reauth.Held, want)
	}
	if n := e.polls.count(handlers.TimerReauth); n != 0 {
		t.Fatalf("%d re-authorization timers put in JetStream 88 days ahead, want none (held)", n)
	}
	if !st.HasData {
		t.Fatal("the OK order's data is not kept")
	}

	// Due a day early (a clock that ran ahead): nothing is registered; it is scheduled again.
	e.clock.Advance(reauthAfter - 24*time.Hour)
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	if n := len(e.transactions(t)); n != 1 {
		t.Fatalf("%d transactions after an early timer, want 1", n)
	}
	e.clock.Advance(24 * time.Hour)
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	st = e.get(t, "o-1")
	txs := e.transactions(t)
	nw := txs["o-1_R1"]
	if nw.TransactionID == "" || nw.State != "active" || nw.Decision != "OK" || st.TransactionID != nw.TransactionID || st.ShopOrderID != "o-1_R1" {
		t.Fatalf("after re-authorization: state tx %s shopOrderId %q; sandbox %+v", st.TransactionID, st.ShopOrderID, nw)
	}
	if txs["o-1"].State != "cancelled" {
		t.Fatalf("the old transaction is %s, want cancelled", txs["o-1"].State)
	}
	want := []string{"credit.ok " + old, "credit.ok reauthorized " + nw.TransactionID}
	if got := e.credits(t); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("credit outcomes %q, want %q", got, want)
	}
	if st.Reauth == nil || st.Reauth.Phase != "" || st.Reauth.N != 1 || !st.AuthorizedAt.Equal(e.clock.Now()) {
		t.Fatalf("re-authorization state %+v, authorized at %s; want done, 1, now", st.Reauth, st.AuthorizedAt)
	}
	if _, next := e.timer(t); !next.Equal(e.clock.Now().Add(reauthAfter)) {
		t.Fatalf("next re-authorization at %s, want 88 days from now", next)
	}

	// The timer handled again (redelivered), and the first one, register nothing more.
	if err := e.o.PollDue(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if err := e.fire(t); err != nil { // not due yet: scheduled again
		t.Fatal(err)
	}
	if n, got := len(e.transactions(t)), e.result(handlers.ReauthOK); n != 2 || got != 1 {
		t.Fatalf("%d transactions, %d re-authorizations; want 2 and 1", n, got)
	}

	// The shipment goes to the new transaction; once it is reported, no re-authorization follows
	// and the order's data is dropped.
	if err := e.track("o-1"); err != nil {
		t.Fatal(err)
	}
	if sh := e.transactions(t)["o-1_R1"].Shipment; sh == nil {
		t.Fatal("the tracking number is not reported on the new transaction")
	}
	if st := e.get(t, "o-1"); st.HasData {
		t.Fatal("a shipped order's data is still kept")
	}
	e.clock.Advance(reauthAfter)
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	if n := len(e.transactions(t)); n != 2 {
		t.Fatalf("%d transactions after the shipment, want 2", n)
	}
}

// TestReauthorizationKilledBeforeTheCancel: the worker dies after the new registration is recorded
// and before the old transaction's cancel is done (the cancel fails, and so does the scheduling
// of its retry, as with a worker killed then). The state relies on the re-authorization's timer,
// due at once, so the reconciler would carry it on; the credit.ok of the new transaction, published
// before, is no longer in the outbox. Started again, the redelivered timer registers nothing new
// and cancels the old transaction; any other event of the order would have done the same first.
func TestReauthorizationKilledBeforeTheCancel(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	e.create(t, "o-1", "taro@example.jp")
	e.clock.Advance(reauthAfter)
	e.prov.failCancels = 1
	e.polls.fail(true)
	if err := e.fire(t); err == nil {
		t.Fatal("the re-authorization whose cancel and timer failed returned no error")
	}
	e.polls.fail(false)
	st := e.get(t, "o-1")
	if st.Reauth == nil || st.Reauth.Phase != orderstate.ReauthCancelling || st.ShopOrderID != "o-1_R1" {
		t.Fatalf("after the failed cancel: %+v, shopOrderId %q; want the new transaction recorded, its cancel to do", st.Reauth, st.ShopOrderID)
	}
	if due, ok := st.TimerDue(); !ok || !due.Equal(e.clock.Now()) || len(st.Outbox) != 0 {
		t.Fatalf("the state relies on a timer %v due %s, outbox %d; want the re-authorization's due now (%s), the outbox written back empty",
			ok, due, len(st.Outbox), e.clock.Now())
	}
	e.restart(t)
	if err := e.o.PollDue(context.Background(), handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: handlers.TimerReauth, Seq: st.Reauth.Seq - 1}); err != nil {
		t.Fatal(err)
	}
	txs := e.transactions(t)
	if txs["o-1"].State != "cancelled" || txs["o-1_R1"].State != "active" || txs["o-1_R1"].Registrations != 1 || len(txs) != 2 {
		t.Fatalf("after the restart: %+v", txs)
	}
	if st := e.get(t, "o-1"); st.Reauth.Phase != "" {
		t.Fatalf("re-authorization left at phase %q", st.Reauth.Phase)
	}
	if got := e.credits(t); len(got) != 2 {
		t.Fatalf("credit outcomes %q, want 2 (one each registration)", got)
	}
}

// TestReauthorizationWhoseOldCancelKeepsFailing: after the re-authorization's credit.ok is
// published, the cancel of the old transaction fails on every try for days (ATODENE timing out on
// it). No step fails for it: the credit.ok is written out of the outbox at once, the cancel is left
// to the re-authorization's timer (the state relies on it, so the reconciler would make it again),
// which tries again on the re-check schedule, and the history notes the failure once. A tracking
// number meanwhile is reported on the new transaction. Three days later ATODENE is well again: the
// timer cancels the old transaction, the next re-authorization stays off (shipped), and RESULTS
// holds the credit.ok once, although the duplicate window ended long before.
func TestReauthorizationWhoseOldCancelKeepsFailing(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	results := newWindowedResults(e.clock.Now)
	e.cfg.Outcomes = results
	e.restart(t)
	e.create(t, "o-1", "taro@example.jp")
	old := e.get(t, "o-1").TransactionID
	e.clock.Advance(reauthAfter)
	e.prov.mu.Lock()
	e.prov.failCancels = 1000
	e.prov.mu.Unlock()
	ctx := context.Background()

	for try := 1; try <= 5; try++ {
		if err := e.fire(t); err != nil {
			t.Fatalf("try %d: the timer failed (%v); want the cancel's failure left to the timer", try, err)
		}
		st := e.get(t, "o-1")
		tm := e.polls.last(t, handlers.TimerReauth)
		due, relies := st.TimerDue()
		if st.Reauth.Phase != orderstate.ReauthCancelling || st.Reauth.Old != old || len(st.Outbox) != 0 || !relies ||
			!due.Equal(st.Reauth.At) || !tm.at.Equal(st.Reauth.At) || tm.req.Seq != st.Reauth.Seq || !st.Reauth.At.After(e.clock.Now()) {
			t.Fatalf("try %d: reauth %+v, outbox %d, relies on a timer %v due %s; last timer %+v at %s; want the cancel of %s scheduled ahead",
				try, st.Reauth, len(st.Outbox), relies, due, tm.req, tm.at, old)
		}
		if try == 1 {
			// Another event of the order meanwhile is not held up by the cancel.
			if err := e.track("o-1"); err != nil {
				t.Fatalf("the tracking number failed while the old transaction's cancel fails: %v", err)
			}
			if e.transactions(t)["o-1_R1"].Shipment == nil {
				t.Fatal("the tracking number is not reported on the new transaction")
			}
		}
		e.clock.Advance(st.Reauth.At.Sub(e.clock.Now()))
	}
	h, _ := e.store.History(ctx, "shop-a", "o-1")
	failed := 0
	for _, x := range h {
		if strings.Contains(x.Did, "the cancel of the old transaction "+old+" failed") {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d history entries note the failing cancel, want 1", failed)
	}

	e.clock.Advance(72 * time.Hour)
	e.prov.mu.Lock()
	e.prov.failCancels = 0
	e.prov.mu.Unlock()
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	st := e.get(t, "o-1")
	if txs := e.transactions(t); txs["o-1"].State != "cancelled" || st.Reauth.Phase != "" || st.Reauth.Scheduled {
		t.Fatalf("after ATODENE is back: sandbox %+v; reauth %+v", txs, st.Reauth)
	}
	for id, n := range results.copies() {
		if n != 1 {
			t.Errorf("RESULTS stored %s %d times, want once", id, n)
		}
	}
	if n := len(results.copies()); n != 3 { // credit.ok, credit.ok reauthorized, shipment.ok
		t.Errorf("%d outcomes stored, want 3", n)
	}
}

// TestReauthorizationWhoseAnswerIsLost: ATODENE registers the new transaction but its answer is
// lost. The retry sends the same derived shopOrderId (no second registration can be made of it),
// is told it is registered already, and leaves the order on its old transaction, for an operator:
// history, metric, and no outcome.
func TestReauthorizationWhoseAnswerIsLost(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	e.create(t, "o-1", "taro@example.jp")
	old := e.get(t, "o-1").TransactionID
	e.clock.Advance(reauthAfter)
	e.prov.loseRegister = true
	if err := e.fire(t); err == nil {
		t.Fatal("a lost answer returned no error")
	}
	if st := e.get(t, "o-1"); st.Reauth.Phase != orderstate.ReauthRegistering || st.Reauth.ShopOrderID != "o-1_R1" {
		t.Fatalf("after the lost answer: %+v, want the intent kept", st.Reauth)
	}
	e.restart(t)
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	st := e.get(t, "o-1")
	txs := e.transactions(t)
	if st.TransactionID != old || st.Status != orderstate.StatusOK || st.Reauth.Failed != handlers.ReauthUnknown || txs["o-1_R1"].Registrations != 1 {
		t.Fatalf("state tx %s %s, reauth %+v; sandbox %+v", st.TransactionID, st.Status, st.Reauth, txs)
	}
	if got := e.result(handlers.ReauthUnknown); got != 1 {
		t.Fatalf("metric unknown %d, want 1", got)
	}
	if got := e.credits(t); len(got) != 1 {
		t.Fatalf("credit outcomes %q, want only the first", got)
	}
	h, _ := e.store.History(context.Background(), "shop-a", "o-1")
	if last := h[len(h)-1]; !strings.Contains(last.Did, "already holds") {
		t.Fatalf("last history entry %+v, want the unknown re-authorization", last)
	}
}

// TestReauthorizationDeclined: the new registration goes under review and is declined. The order
// stays on its old transaction throughout (credit.pending, then credit.ng, both reauthorized and
// naming the new one), the old one is not cancelled, its data is no longer kept, and no other
// re-authorization follows; a change of the order then changes the old transaction, and a
// tracking number is reported on it.
func TestReauthorizationDeclined(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	e.create(t, "o-1", "review-ng@example.jp")
	old := e.get(t, "o-1").TransactionID
	decide(t, e.sbURL, old, "OK")
	e.poll(t)
	if st := e.get(t, "o-1"); st.Status != orderstate.StatusOK {
		t.Fatalf("status %s after the review, want ok", st.Status)
	}
	e.clock.Advance(reauthAfter)
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	st := e.get(t, "o-1")
	nw := st.Reauth.New
	if st.Status != orderstate.StatusOK || st.TransactionID != old || st.Reauth.Phase != orderstate.ReauthPending || nw == "" {
		t.Fatalf("after the re-authorization: %s on %s, %+v; want ok on the old one, the new one under review", st.Status, st.TransactionID, st.Reauth)
	}
	decide(t, e.sbURL, nw, "NG")
	if err := e.fire(t); err != nil { // the re-check of the new transaction
		t.Fatal(err)
	}
	st = e.get(t, "o-1")
	if st.Status != orderstate.StatusOK || st.TransactionID != old || st.Reauth.Phase != "" || st.Reauth.Failed != handlers.ReauthNG || st.HasData {
		t.Fatalf("after the decline: %s on %s, %+v, data kept %v; want ok on the old one, ended ng, no data", st.Status, st.TransactionID, st.Reauth, st.HasData)
	}
	if tx := e.transactions(t)["o-1"]; tx.State != "active" {
		t.Fatalf("the old transaction is %s after the decline, want active", tx.State)
	}
	want := []string{"credit.pending " + old, "credit.ok " + old, "credit.pending reauthorized " + nw, "credit.ng reauthorized " + nw}
	if got := e.credits(t); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("credit outcomes %q, want %q", got, want)
	}
	if e.result(handlers.ReauthPending) != 1 || e.result(handlers.ReauthNG) != 1 {
		t.Fatalf("metrics %v, want pending 1 and ng 1", e.results)
	}

	// A change of the order changes the old transaction (it is not registered again), and no
	// re-authorization is scheduled.
	if err := e.update(t, "u-1", "o-1", "review-ng@example.jp", 3100); err != nil {
		t.Fatal(err)
	}
	if st := e.get(t, "o-1"); st.Status == orderstate.StatusUnknown || st.TransactionID != old {
		t.Fatalf("after a change: %s on %s; want the old transaction changed", st.Status, st.TransactionID)
	}
	if got := e.transactions(t)["o-1"].BilledAmount; got != 3100 {
		t.Fatalf("the old transaction bills %d after the change, want 3100", got)
	}
	decide(t, e.sbURL, old, "OK") // the change re-screened it: under review again
	e.poll(t)
	if err := e.track("o-1"); err != nil {
		t.Fatal(err)
	}
	if sh := e.transactions(t)["o-1"].Shipment; sh == nil {
		t.Fatal("the tracking number is not reported on the order's old transaction")
	}
	if st := e.get(t, "o-1"); st.Reauth.Scheduled {
		t.Fatalf("a re-authorization timer set after it ended: %+v", st.Reauth)
	}
	if _, ok := e.get(t, "o-1").TimerDue(); ok {
		t.Fatal("the order relies on a timer after its re-authorization ended")
	}
}

// TestReauthorizationUnderReviewTurnsOK: the new registration under review turns OK: the order
// moves onto it then, and the old one is cancelled then, not before.
func TestReauthorizationUnderReviewTurnsOK(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	e.reauthorizingUnderReview(t)
	if tx := e.transactions(t)["o-1"]; tx.State != "active" {
		t.Fatalf("the old transaction is %s while the new one is under review, want active", tx.State)
	}
	if err := e.fire(t); err != nil { // still under review: re-checked again later
		t.Fatal(err)
	}
	nw := e.get(t, "o-1").Reauth.New
	decide(t, e.sbURL, nw, "OK")
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	st := e.get(t, "o-1")
	if tx := e.transactions(t)["o-1"]; tx.State != "cancelled" || st.Status != orderstate.StatusOK || st.TransactionID != nw || st.Reauth.Phase != "" {
		t.Fatalf("after the new one turned OK: old %s; state %s on %s, %+v", tx.State, st.Status, st.TransactionID, st.Reauth)
	}
	if got := e.credits(t); got[len(got)-1] != "credit.ok reauthorized "+nw {
		t.Fatalf("credit outcomes %q, want the last one credit.ok reauthorized %s", got, nw)
	}
	if e.result(handlers.ReauthPending) != 1 || e.result(handlers.ReauthOK) != 1 {
		t.Fatalf("metrics %v, want pending 1 and ok 1", e.results)
	}
}

// TestReauthorizationWhoseNewTransactionATODENEDoesNotKnow: the re-check of a re-authorization's new
// transaction under review is answered er000002 (ATODENE knows no such transaction). No retry
// changes that: the re-authorization ends unknown, as one whose registration was answered
// "already registered" does (the order stays ok on its old transaction, the metric counts
// unknown, no outcome), and its timer is not relied on any more, so the reconciler does not make
// it again for ever. The operator's resolution, not registered, schedules the next one.
func TestReauthorizationWhoseNewTransactionATODENEDoesNotKnow(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	old := e.reauthorizingUnderReview(t)
	nw := e.get(t, "o-1").Reauth.New
	e.prov.mu.Lock()
	e.prov.unknownTx = nw
	e.prov.mu.Unlock()
	if err := e.fire(t); err != nil {
		t.Fatalf("the re-check answered er000002: %v; want the re-authorization ended unknown, the timer done", err)
	}
	st := e.get(t, "o-1")
	if st.Status != orderstate.StatusOK || st.TransactionID != old || st.Reauth.Failed != handlers.ReauthUnknown || st.Reauth.Phase != "" {
		t.Fatalf("state %s on %s, reauth %+v; want ok on %s, the re-authorization unknown", st.Status, st.TransactionID, st.Reauth, old)
	}
	if _, relies := st.TimerDue(); relies {
		t.Fatalf("the state still relies on a timer: %+v", st.Reauth)
	}
	if e.result(handlers.ReauthUnknown) != 1 {
		t.Fatalf("metrics %v, want unknown 1", e.results)
	}
	h, _ := e.store.History(context.Background(), "shop-a", "o-1")
	if last := h[len(h)-1].Did; !strings.Contains(last, "no transaction "+nw+" (er000002)") || !strings.Contains(last, "o-1_R1") {
		t.Fatalf("last history entry %q, want the unknown transaction and the derived shopOrderId named", last)
	}
	if got := e.credits(t); len(got) != 3 || got[2] != "credit.pending reauthorized "+nw {
		t.Fatalf("credit outcomes %q, want the order's credit.pending and credit.ok, then the re-authorization's credit.pending only", got)
	}
	if err := e.resolve("r-1", "o-1", ""); err != nil {
		t.Fatal(err)
	}
	if st := e.get(t, "o-1"); st.Reauth.Failed != "" || !st.Reauth.Scheduled {
		t.Fatalf("after the resolution: %+v, want the next re-authorization scheduled", st.Reauth)
	}
}

// TestChangeDuringAReauthorizationUnderReview: an order.updated while the re-authorization's new
// transaction is under review changes the order's (old) transaction; its outcome is no
// re-authorization's. The new transaction, registered with the data before the change, is
// cancelled, and the next re-authorization registers the changed data.
func TestChangeDuringAReauthorizationUnderReview(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	old := e.reauthorizingUnderReview(t)
	nw := e.get(t, "o-1").Reauth.New
	if err := e.update(t, "u-1", "o-1", "taro@example.jp", 3100); err != nil {
		t.Fatal(err)
	}
	got := e.credits(t)
	if last := got[len(got)-1]; last != "credit.ok "+old {
		t.Fatalf("credit outcomes %q, want the change's credit.ok on the old transaction, not reauthorized", got)
	}
	txs := e.transactions(t)
	if txs["o-1_R1"].State != "cancelled" || txs["o-1"].State != "active" {
		t.Fatalf("after the change: new %s, old %s; want the new one (stale data) cancelled", txs["o-1_R1"].State, txs["o-1"].State)
	}
	// Still due (the approval is 88 days old): the next re-authorization registers the new data.
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	st := e.get(t, "o-1")
	txs = e.transactions(t)
	if st.ShopOrderID != "o-1_R2" || txs["o-1_R2"].BilledAmount != 3100 || txs["o-1"].State != "cancelled" || st.TransactionID == nw {
		t.Fatalf("after the next re-authorization: %s on %s (%s); sandbox %+v", st.Status, st.TransactionID, st.ShopOrderID, txs)
	}
}

// TestShipmentRacingTheReauthorization: a tracking number that comes while the re-authorization
// holds the order waits in the order's inbox and is reported on the new transaction; a cancel
// that comes then cancels the new one (the re-authorization cancels the old).
func TestShipmentRacingTheReauthorization(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		event func(e *reauthEnv) error
		check func(t *testing.T, txs map[string]sandbox.TransactionView, st orderstate.State)
	}{
		{"tracking", (*reauthEnv).trackO1, func(t *testing.T, txs map[string]sandbox.TransactionView, st orderstate.State) {
			if txs["o-1_R1"].Shipment == nil || txs["o-1"].Shipment != nil || txs["o-1"].State != "cancelled" {
				t.Fatalf("shipment reported on the new %v, the old %v (%s); want the new only", txs["o-1_R1"].Shipment, txs["o-1"].Shipment, txs["o-1"].State)
			}
		}},
		{"cancel", (*reauthEnv).cancelO1, func(t *testing.T, txs map[string]sandbox.TransactionView, st orderstate.State) {
			if txs["o-1_R1"].State != "cancelled" || txs["o-1"].State != "cancelled" || st.Status != orderstate.StatusCancelled {
				t.Fatalf("after the cancel: new %s, old %s, order %s; want both cancelled", txs["o-1_R1"].State, txs["o-1"].State, st.Status)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newReauthEnv(t)
			held := make(chan string, 1)
			e.cfg.LeaseHeld = func(then string) {
				select {
				case held <- then:
				default:
				}
			}
			e.restart(t)
			e.create(t, "o-1", "taro@example.jp")
			e.clock.Advance(reauthAfter)
			e.prov.holdRegister, e.prov.registering = make(chan struct{}), make(chan struct{})
			done, evDone := make(chan error, 1), make(chan error, 1)
			timer, _ := e.timer(t)
			go func() { done <- e.o.PollDue(context.Background(), timer) }()
			<-e.prov.registering
			go func() { evDone <- tc.event(e) }()
			<-held // the event found the order's lease held by the re-authorization
			close(e.prov.holdRegister)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if err := <-evDone; err != nil {
				t.Fatal(err)
			}
			tc.check(t, e.transactions(t), e.get(t, "o-1"))
		})
	}
}

func (e *reauthEnv) trackO1() error  { return e.track("o-1") }
func (e *reauthEnv) cancelO1() error { return e.cancel("o-1") }

// TestReauthorizationOffAndReservedOrderIDs: a shop with reauthorize_after 0 schedules nothing and
// keeps no data; one that re-authorizes refuses an order_id of the derived form.
func TestReauthorizationOffAndReservedOrderIDs(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	ev := createdEvent("c-r", "A-100_R2", 1)
	err := e.o.OrderCreated(context.Background(), ev)
	wantReason(t, err, handlers.ReasonInvalid)
	for _, ok := range []string{"A-100_R", "A-100_Rx", "R2", "A_R2B"} {
		if err := e.o.OrderCreated(context.Background(), createdEvent("c-"+ok, ok, 1)); err != nil {
			t.Errorf("order %s: %v, want it registered", ok, err)
		}
	}

	off := newReauthEnv(t)
	off.cfg.Shops = func(string) (*handlers.Shop, bool) {
		return &handlers.Shop{ID: "shop-a", Provider: off.prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}}, true
	}
	off.restart(t)
	if err := off.o.OrderCreated(context.Background(), createdEvent("c-1", "A-100_R2", 1)); err != nil {
		t.Fatalf("an order_id of the derived form, re-authorization off: %v", err)
	}
	if st := off.get(t, "A-100_R2"); st.HasData || st.Reauth != nil {
		t.Fatalf("re-authorization off: data kept %v, re-authorization %+v", st.HasData, st.Reauth)
	}
}

// TestReauthShopOrderID: the derived shopOrderId stays within ATODENE's 50 characters and ends in
// _R and the number; a cut one keeps long order IDs that share their start apart.
func TestReauthShopOrderID(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("1", 26) + "-" + strings.Repeat("2", 23) // 50 characters
	for _, tc := range []struct {
		base string
		n    int
		want string
	}{
		{"o-1", 1, "o-1_R1"},
		{"R-290000-20261129-0000000001", 12, "R-290000-20261129-0000000001_R12"},
		{strings.Repeat("a", 47), 1, strings.Repeat("a", 47) + "_R1"},
	} {
		if got := handlers.ReauthShopOrderID(tc.base, tc.n); got != tc.want {
			t.Errorf("ReauthShopOrderID(%q, %d) = %q, want %q", tc.base, tc.n, got, tc.want)
		}
	}
	a, b := handlers.ReauthShopOrderID(long, 1), handlers.ReauthShopOrderID(long[:49]+"3", 1)
	for _, id := range []string{a, b} {
		if len(id) > atodene.MaxShopOrderID || !strings.HasSuffix(id, "_R1") {
			t.Errorf("derived %q: %d characters, want ≤ 50 ending _R1", id, len(id))
		}
		if err := atodene.CheckField("shopOrderId", id); err != nil {
			t.Errorf("derived %q: %v", id, err)
		}
	}
	if a == b {
		t.Errorf("two 50-character order IDs that differ at the end derive the same %q", a)
	}
}

// decide decides a review in the sandbox now (its admin API).
func decide(t *testing.T, sbURL, tx, result string) {
	t.Helper()
	resp, err := http.Post(sbURL+"/sandbox/transactions/"+tx+"/decision", "application/json", strings.NewReader(`{"result":"`+result+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("deciding %s %s: HTTP %d", tx, result, resp.StatusCode)
	}
}

// refusingCancel is a provider whose cancel of one transaction ATODENE refuses for good.
type refusingCancel struct {
	handlers.Provider
	tx string
}

func (p *refusingCancel) Cancel(ctx context.Context, tx string) error {
	if tx == p.tx {
		return &atodene.RejectedError{Op: "modifytransaction", Errors: []atodene.ProviderError{{Point: "transactionId", Code: atodene.CodeUnknownTransaction}}}
	}
	return p.Provider.Cancel(ctx, tx)
}

// setShop starts Orders again with the shop calling prov and re-authorizing after after.
func (e *reauthEnv) setShop(t *testing.T, prov handlers.Provider, after time.Duration) {
	t.Helper()
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}, ReauthorizeAfter: after}
	e.cfg.Shops = func(string) (*handlers.Shop, bool) { return shop, true }
	e.restart(t)
}

// TestOldTransactionsCancelRefused: ATODENE refuses the cancel of the old transaction for good.
// The order is on its new transaction all the same: credit.ok reauthorized is published, the
// history says what to check, and the tracking number that follows is reported on the new one.
func TestOldTransactionsCancelRefused(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	e.create(t, "o-1", "taro@example.jp")
	old := e.get(t, "o-1").TransactionID
	e.setShop(t, &refusingCancel{Provider: e.prov, tx: old}, reauthAfter)
	e.clock.Advance(reauthAfter)
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	st := e.get(t, "o-1")
	if st.Reauth.Phase != "" || st.ShopOrderID != "o-1_R1" {
		t.Fatalf("after the refused cancel: %+v on %s", st.Reauth, st.ShopOrderID)
	}
	if got := e.credits(t); len(got) != 2 || !strings.HasPrefix(got[1], "credit.ok reauthorized") {
		t.Fatalf("credit outcomes %q, want credit.ok reauthorized published", got)
	}
	h, _ := e.store.History(context.Background(), "shop-a", "o-1")
	if !strings.Contains(h[len(h)-1].Did, "refused the cancel of the old transaction "+old) {
		t.Fatalf("last history entry %q, want the refused cancel", h[len(h)-1].Did)
	}
	if err := e.track("o-1"); err != nil {
		t.Fatal(err)
	}
	if e.transactions(t)["o-1_R1"].Shipment == nil {
		t.Fatal("the tracking number is not reported on the new transaction")
	}
}

// TestInvoiceFetchedAgainAfterAReauthorization: the enclosed invoice of an order is fetched
// (invoice.ok names its transaction), and the order is re-authorized before it ships: it moves onto
// the new transaction and the one the printed invoice names is cancelled (docs/lifecycle.md#re-authorization
// says so; the approval would expire otherwise). The shop fetches the invoice again: the new
// invoice.ok names the new transaction, on which the shipment is then reported.
func TestInvoiceFetchedAgainAfterAReauthorization(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	shop := &handlers.Shop{ID: "shop-a", Provider: e.prov, Service: atodene.ServiceEnclosed, Fees: fees.Table{Mode: fees.ModeKeep}, ReauthorizeAfter: reauthAfter}
	e.cfg.Shops = func(string) (*handlers.Shop, bool) { return shop, true }
	e.restart(t)
	e.create(t, "o-1", "taro@example.jp")
	invoiced := func(id string) string {
		t.Helper()
		ev := handlers.Event[events.InvoiceRequest]{Meta: handlers.Meta{ID: id, Source: "test", Type: events.TypeInvoiceRequested, Shop: "shop-a", Seq: 5, Time: e.clock.Now()},
			Data: events.InvoiceRequest{ShopID: "shop-a", OrderID: "o-1"}}
		if err := e.o.InvoiceRequested(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		e.outs.mu.Lock()
		defer e.outs.mu.Unlock()
		last := e.outs.sent[len(e.outs.sent)-1]
		var d events.Invoice
		if err := json.Unmarshal(last.Data, &d); err != nil || last.Type != events.TypeInvoiceOK {
			t.Fatalf("%s answered %s (%v), want invoice.ok", id, last.Type, err)
		}
		return d.TransactionID
	}
	old := e.get(t, "o-1").TransactionID
	if tx := invoiced("i-1"); tx != old {
		t.Fatalf("the first invoice names %s, want %s", tx, old)
	}
	e.clock.Advance(reauthAfter)
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	st := e.get(t, "o-1")
	if st.TransactionID == old || e.transactions(t)["o-1"].State != "cancelled" {
		t.Fatalf("not re-authorized: on %s", st.TransactionID)
	}
	if tx := invoiced("i-2"); tx != st.TransactionID {
		t.Fatalf("the invoice fetched again names %s, want the new transaction %s", tx, st.TransactionID)
	}
	if err := e.track("o-1"); err != nil {
		t.Fatal(err)
	}
	if e.transactions(t)["o-1_R1"].Shipment == nil {
		t.Fatal("the shipment is not reported on the new transaction")
	}
}

// accountRefusing refuses the shop's account (a rotated link password) on every registration,
// re-check and cancel while refused is set, and otherwise calls Provider.
type accountRefusing struct {
	handlers.Provider
	refused atomic.Bool
	calls   atomic.Int32 // refused calls
}

func (p *accountRefusing) refusal() error {
	p.calls.Add(1)
	return &atodene.RejectedError{Op: "test", Errors: []atodene.ProviderError{{Point: "linkPassword", Code: "er000003"}}}
}

func (p *accountRefusing) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	if p.refused.Load() {
		return atodene.Registration{}, p.refusal()
	}
	return p.Provider.Register(ctx, req)
}

func (p *accountRefusing) GetAuthori(ctx context.Context, tx string) (atodene.Screening, error) {
	if p.refused.Load() {
		return atodene.Screening{}, p.refusal()
	}
	return p.Provider.GetAuthori(ctx, tx)
}

func (p *accountRefusing) Cancel(ctx context.Context, tx string) error {
	if p.refused.Load() {
		return p.refusal()
	}
	return p.Provider.Cancel(ctx, tx)
}

// TestReauthorizationRefusedForTheAccountWaitsForTheStop: the re-authorization timer comes due
// while ATODENE refuses the shop's account. The timer is not dead-lettered (it carries nothing to
// replay, and the reconciler would make it again after each interval): the intent stays, the
// timer is scheduled again for when the shop's calls resume, and the history says so once. The one
// call let through then is refused again; once the password is fixed, the timer at the stop's end
// registers the order under the same derived shopOrderId.
func TestReauthorizationRefusedForTheAccountWaitsForTheStop(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	e.create(t, "o-1", "taro@example.jp")
	prov := &accountRefusing{Provider: e.prov}
	prov.refused.Store(true)
	e.setShop(t, prov, reauthAfter)
	e.clock.Advance(reauthAfter)
	check := func(step string, calls int32, stop time.Duration) {
		t.Helper()
		st := e.get(t, "o-1")
		tm := e.polls.last(t, handlers.TimerReauth)
		want := e.clock.Now().Add(stop)
		if st.Reauth.Phase != orderstate.ReauthRegistering || st.Reauth.ShopOrderID != "o-1_R1" || !afterTheStop(st.Reauth.At, want, stop) || !st.Reauth.Scheduled ||
			!tm.at.Equal(st.Reauth.At) || !tm.req.Refused || tm.req.Seq != st.Reauth.Seq {
			t.Fatalf("%s: reauth %+v; last timer %+v at %s; want the intent of o-1_R1 kept, its timer at %s (+ up to a tenth of %s) marked refused", step, st.Reauth, tm.req, tm.at, want, stop)
		}
		if n := notDone(t, e.store, "o-1"); prov.calls.Load() != calls || n != 1 {
			t.Fatalf("%s: %d refused calls, %d history entries of the refusal; want %d, 1", step, prov.calls.Load(), n, calls)
		}
	}
	if err := e.fire(t); err != nil {
		t.Fatalf("the refused re-authorization: %v, want its timer scheduled again, not dead-lettered", err)
	}
	check("refused", 1, 30*time.Second)
	again := func() { // the timer scheduled again comes due
		t.Helper()
		if err := e.o.PollDue(context.Background(), e.polls.last(t, handlers.TimerReauth).req); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(30 * time.Second)
	again()
	check("refused again", 2, time.Minute)

	prov.refused.Store(false)
	e.clock.Advance(time.Minute)
	again()
	txs := e.transactions(t)
	if st := e.get(t, "o-1"); st.ShopOrderID != "o-1_R1" || txs["o-1_R1"].Registrations != 1 || txs["o-1"].State != "cancelled" {
		t.Fatalf("after the fix: on %q, sandbox %+v; want re-authorized under o-1_R1, the old one cancelled", st.ShopOrderID, txs)
	}
}

// TestNoReauthorizationWithoutKeptData: an order approved by a worker that kept no data (its state
// has no authorized_at) is not re-authorized when a later change is approved, and its data is not
// kept for it: the change does not count as the approval (docs/lifecycle.md#re-authorization).
func TestNoReauthorizationWithoutKeptData(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	e.create(t, "o-1", "taro@example.jp")
	st := e.get(t, "o-1")
	st.AuthorizedAt, st.Reauth, st.HasData = time.Time{}, nil, false // as written before re-authorization
	if _, err := e.store.Put(context.Background(), "shop-a", "o-1", st, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(60 * 24 * time.Hour)
	if err := e.update(t, "u-1", "o-1", "taro@example.jp", 3100); err != nil {
		t.Fatal(err)
	}
	st = e.get(t, "o-1")
	if st.Status != orderstate.StatusOK || !st.AuthorizedAt.IsZero() || st.HasData || st.Reauth != nil {
		t.Fatalf("after the change: %s, authorized at %s, data kept %v, re-authorization %+v; want ok, no approval time, nothing kept or set",
			st.Status, st.AuthorizedAt, st.HasData, st.Reauth)
	}
}

// TestReauthorizationTurnedOffDropsTheData: once the shop's reauthorize_after is 0, the next event
// of an order drops its kept data, and its timer, when it comes, does nothing.
func TestReauthorizationTurnedOffDropsTheData(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	e.create(t, "o-1", "taro@example.jp")
	e.setShop(t, e.prov, 0)
	if err := e.update(t, "u-1", "o-1", "taro@example.jp", 3100); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.store.OrderData(context.Background(), "shop-a", "o-1"); got != nil || e.get(t, "o-1").HasData {
		t.Fatalf("data kept after re-authorization was turned off: %d bytes", len(got))
	}
	e.clock.Advance(reauthAfter)
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	if n := len(e.transactions(t)); n != 1 {
		t.Fatalf("%d transactions, want 1", n)
	}
}

// TestReauthorizationDueDuringAChangeUnderReview: the timer comes due while a change of the order
// is under review; it does nothing then, and is scheduled again once the order is OK again, for the
// approval's time (already past: at once).
func TestReauthorizationDueDuringAChangeUnderReview(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	e.create(t, "o-1", "taro@example.jp")
	approved := e.get(t, "o-1").AuthorizedAt
	e.clock.Advance(reauthAfter - time.Hour)
	if err := e.update(t, "u-1", "o-1", "review-ok@example.jp", 3100); err != nil {
		t.Fatal(err)
	}
	if st := e.get(t, "o-1"); st.Status != orderstate.StatusPending {
		t.Fatalf("status %s after the change, want pending", st.Status)
	}
	e.clock.Advance(time.Hour)
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	if st := e.get(t, "o-1"); st.Reauth.Scheduled {
		t.Fatalf("the timer due during the review is still set: %+v", st.Reauth)
	}
	decide(t, e.sbURL, e.get(t, "o-1").TransactionID, "OK")
	e.poll(t)
	st := e.get(t, "o-1")
	if _, at := e.timer(t); !st.Reauth.Scheduled || !at.Equal(approved.Add(reauthAfter)) {
		t.Fatalf("set %v for %s, want the first approval + 88 days (%s)", st.Reauth.Scheduled, at, approved.Add(reauthAfter))
	}
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	if st := e.get(t, "o-1"); st.Reauth.N != 1 || st.Reauth.Phase != orderstate.ReauthPending {
		t.Fatalf("not re-authorized: %+v", st.Reauth)
	}
}

// resolve publishes the operator's order.resolve_requested of order: the transaction found, or
// none (not_registered).
func (e *reauthEnv) resolve(id, order, tx string) error {
	return e.o.ResolveRequested(context.Background(), handlers.Event[events.ResolveRequest]{
		Meta: handlers.Meta{ID: id, Source: "console", Type: events.TypeResolveRequested, Shop: "shop-a", Seq: 100, Attempt: 1},
		Data: events.ResolveRequest{ShopID: "shop-a", OrderID: order, Operator: "ops-sato", TransactionID: tx, NotRegistered: tx == ""}})
}

// TestResolveAnUnknownReauthorization: a re-authorization whose answer was lost ends unknown, with
// two live transactions at ATODENE. The operator finds the new one under o-1_R1 and resolves the
// order with it: the order moves onto it and the old one is cancelled, and the credit.ok names the
// resolution as its cause. Resolved as not registered instead, the next re-authorization registers
// o-1_R2, its credit.ok caused by the order's order.created.
func TestResolveAnUnknownReauthorization(t *testing.T) {
	t.Parallel()
	for _, adopt := range []bool{true, false} {
		t.Run(fmt.Sprintf("adopt=%v", adopt), func(t *testing.T) {
			t.Parallel()
			e := newReauthEnv(t)
			old := e.reauthorizationEndedUnknown(t)
			if st := e.get(t, "o-1"); st.Reauth.Failed != handlers.ReauthUnknown || !st.HasData {
				t.Fatalf("after the lost answer: %+v, data kept %v; want unknown, the data kept for the resolution", st.Reauth, st.HasData)
			}
			found := e.transactions(t)["o-1_R1"].TransactionID
			if !adopt {
				// Say it registered nothing: the operator cancelled o-1_R1 at ATODENE by hand first.
				if err := e.prov.Provider.Cancel(context.Background(), found); err != nil {
					t.Fatal(err)
				}
				found = ""
			}
			if err := e.resolve("r-1", "o-1", found); err != nil {
				t.Fatal(err)
			}
			if !adopt {
				if err := e.fire(t); err != nil {
					t.Fatal(err)
				}
			}
			st, txs := e.get(t, "o-1"), e.transactions(t)
			want := map[bool]string{true: "o-1_R1", false: "o-1_R2"}[adopt]
			if st.ShopOrderID != want || st.TransactionID != txs[want].TransactionID || txs["o-1"].State != "cancelled" || st.Reauth.Phase != "" {
				t.Fatalf("after the resolution: %s on %s (%s), %+v; sandbox old %s", st.Status, st.TransactionID, st.ShopOrderID, st.Reauth, txs["o-1"].State)
			}
			live := 0
			for _, tx := range txs {
				if tx.State == "active" {
					live++
				}
			}
			if live != 1 {
				t.Fatalf("%d live transactions after the resolution, want 1: %+v", live, txs)
			}
			if got := e.credits(t); got[len(got)-1] != "credit.ok reauthorized "+st.TransactionID || old == st.TransactionID {
				t.Fatalf("credit outcomes %q", got)
			}
			// The cause of the outcome: the resolution that adopted the transaction, or, for the
			// next re-authorization's, the event that started the order's credit check.
			e.outs.mu.Lock()
			last := e.outs.sent[len(e.outs.sent)-1]
			e.outs.mu.Unlock()
			if cause := map[bool]string{true: "r-1", false: "c-o-1"}[adopt]; last.CausationID != cause {
				t.Errorf("%s reauthorized names %q as its cause, want %s", last.Type, last.CausationID, cause)
			}
		})
	}
}

// TestResolveAnUnknownReauthorizationAfterItShipped: a re-authorization ends unknown and the order
// ships on its old transaction before the operator acts. Resolved with the transaction found under
// o-1_R1, the order stays on the old, shipped transaction and the new one is cancelled: a shipped
// transaction is never cancelled for a re-authorization (found by the reliability suite's
// reauthorization scenario, whose orders ship while their re-authorization waits for the operator).
func TestResolveAnUnknownReauthorizationAfterItShipped(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	old := e.reauthorizationEndedUnknown(t)
	if err := e.trackO1(); err != nil {
		t.Fatal(err)
	}
	before := e.credits(t)
	found := e.transactions(t)["o-1_R1"].TransactionID
	if err := e.resolve("r-1", "o-1", found); err != nil {
		t.Fatal(err)
	}
	st, txs := e.get(t, "o-1"), e.transactions(t)
	if st.TransactionID != old || st.ShopOrderID != "" || st.Reauth.Failed != "" || st.Reauth.Scheduled {
		t.Fatalf("after the resolution: on %s (%s), %+v; want the old transaction %s, nothing scheduled", st.TransactionID, st.ShopOrderID, st.Reauth, old)
	}
	if txs["o-1"].State != "active" || txs["o-1"].Shipment == nil || txs["o-1_R1"].State != "cancelled" {
		t.Fatalf("sandbox: old %s (shipment %v), new %s; want the old active and shipped, the new cancelled", txs["o-1"].State, txs["o-1"].Shipment, txs["o-1_R1"].State)
	}
	if got := e.credits(t); len(got) != len(before) {
		t.Fatalf("credit outcomes %q after the resolution, want none more than %q", got, before)
	}
}

// TestResolveReauthorizationWithTheOrdersOwnTransaction: a re-authorization ends unknown, and
// ATODENE's screen shows two live transactions of the order (o-1 and o-1_R1). The operator resolves
// it with the wrong row, the order's own transaction: taken as the re-authorization's, it would be
// cancelled as the old one, with the order left on it. It is refused (dead letter invalid naming
// both), with nothing called or changed; the resolution with the right row then adopts it.
func TestResolveReauthorizationWithTheOrdersOwnTransaction(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	old := e.reauthorizationEndedUnknown(t)
	if st := e.get(t, "o-1"); st.Reauth.Failed != handlers.ReauthUnknown {
		t.Fatalf("setup: %+v", st.Reauth)
	}
	found := e.transactions(t)["o-1_R1"].TransactionID
	err := e.resolve("r-1", "o-1", old)
	wantReason(t, err, handlers.ReasonInvalid)
	if msg := err.Error(); !strings.Contains(msg, old+" is the transaction order o-1 is on") || !strings.Contains(msg, "o-1_R1") {
		t.Errorf("error %q, want it to name the order's own transaction and the derived shopOrderId", msg)
	}
	st, txs := e.get(t, "o-1"), e.transactions(t)
	if st.TransactionID != old || st.Reauth.Failed != handlers.ReauthUnknown || txs["o-1"].State != "active" || txs["o-1"].Calls["getauthori"] != 0 {
		t.Fatalf("after the refused resolution: on %s, reauth %+v; sandbox o-1 %+v; want unchanged, nothing called", st.TransactionID, st.Reauth, txs["o-1"])
	}
	if err := e.resolve("r-2", "o-1", found); err != nil {
		t.Fatal(err)
	}
	st, txs = e.get(t, "o-1"), e.transactions(t)
	if st.TransactionID != found || txs["o-1"].State != "cancelled" || txs["o-1_R1"].State != "active" {
		t.Fatalf("after the right resolution: on %s; sandbox %+v; want on %s, the old one cancelled", st.TransactionID, txs, found)
	}
}

// TestCancelWhileAReauthorizationIsUnknown: an order cancelled while its re-authorization's outcome
// is unknown cancels its transaction, and its history names the derived shopOrderId ATODENE may
// still hold live, for the operator to cancel there.
func TestCancelWhileAReauthorizationIsUnknown(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	e.reauthorizationEndedUnknown(t)
	if err := e.cancel("o-1"); err != nil {
		t.Fatal(err)
	}
	h, _ := e.store.History(context.Background(), "shop-a", "o-1")
	if did := h[len(h)-1].Did; !strings.Contains(did, "cancelled") || !strings.Contains(did, "o-1_R1") {
		t.Fatalf("last history entry %q, want the cancel naming o-1_R1", did)
	}
	if tx := e.transactions(t)["o-1"]; tx.State != "cancelled" {
		t.Fatalf("the order's transaction is %s, want cancelled", tx.State)
	}
}

// scriptedRegistrations answers registrations from a script ("refused": the shop's account
// refused; "transient": no answer), then as fakeProvider, and records the cancels it is sent.
type scriptedRegistrations struct {
	fakeProvider
	mu      sync.Mutex
	script  []string
	sent    int
	cancels []string
}

func (p *scriptedRegistrations) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	p.mu.Lock()
	p.sent++
	step := "ok"
	if len(p.script) > 0 {
		step, p.script = p.script[0], p.script[1:]
	}
	p.mu.Unlock()
	switch step {
	case "refused":
		return atodene.Registration{}, &atodene.RejectedError{Op: "transaction", Errors: []atodene.ProviderError{{Point: "linkPassword", Code: "er000003"}}}
	case "transient":
		return atodene.Registration{}, errors.New("HTTP 503 (the test)")
	}
	return p.fakeProvider.Register(ctx, req)
}

func (p *scriptedRegistrations) Cancel(_ context.Context, tx string) error {
	p.mu.Lock()
	p.cancels = append(p.cancels, tx)
	p.mu.Unlock()
	return nil
}

func (p *scriptedRegistrations) cancelled() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.cancels...)
}

// hookOutcomes runs fn before each publish, then records the outcome.
type hookOutcomes struct {
	fn   func()
	sent publishedOutcomes
}

func (h *hookOutcomes) Publish(ctx context.Context, subj, id string, body []byte) error {
	if h.fn != nil {
		h.fn()
	}
	return h.sent.Publish(ctx, subj, id, body)
}

// staleReauthEnv is shop-a re-authorizing, whose calls are stopped for 30 s from its clock's start
// (another order's registration refused for the account), and an order o-1 stored as st, the stop
// then 1 s from its end. Its first publish moves the clock 2 s: the stop ends during the handling.
func staleReauthEnv(t *testing.T, st orderstate.State) (*handlers.Orders, *orderstate.Store, *scriptedRegistrations, *hookOutcomes, *clock.Fake) {
	t.Helper()
	prov := &scriptedRegistrations{script: []string{"refused"}}
	clk := clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	outs := &hookOutcomes{}
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}, ReauthorizeAfter: reauthAfter}
	store := newStore(t)
	o := newOrders(t, handlers.OrdersConfig{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: outs, Polls: &timedPolls{}, Now: clk.Now})
	ctx := context.Background()
	wantReason(t, o.OrderCreated(ctx, createdEvent("c-x", "X-1", 1)), handlers.ReasonAccountRefused)
	st.AuthorizedAt, st.CausedBy = clk.Now().Add(-reauthAfter), "c-1"
	if _, err := store.Put(ctx, "shop-a", "o-1", st, clk.Now()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(29 * time.Second)
	var once sync.Once
	outs.fn = func() { once.Do(func() { clk.Advance(2 * time.Second) }) }
	return o, store, prov, outs, clk
}

// TestStaleReauthorizationUnderReviewIsCancelledNotAdopted: an order shipped while its
// re-authorization's new transaction was under review. The drop of the new transaction is refused
// (the shop's calls are stopped), and the stop ends while the re-authorization's timer is handled:
// the timer cancels the new transaction, it does not re-check it. The order stays on its old,
// shipped transaction, which is not cancelled, and no credit.ok is published.
func TestStaleReauthorizationUnderReviewIsCancelledNotAdopted(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	o, store, prov, outs, _ := staleReauthEnv(t, orderstate.State{Status: orderstate.StatusOK, TransactionID: "11111111111", Fee: 205, BilledAmount: 3155, DataHash: "v1:x",
		Shipment: &orderstate.Shipment{CarrierCode: "12", TrackingNumber: "1234", Reported: true, Filed: true},
		Reauth:   &orderstate.Reauth{Seq: 3, N: 1, Phase: orderstate.ReauthPending, New: "22222222222", ShopOrderID: "o-1_R1", DataHash: "v1:x", Since: now, Scheduled: true, At: now},
		Outbox:   []orderstate.Outcome{{Subject: "results.x", MsgID: "shop-a:o-1:e:1:credit.pending", Body: []byte(`{"type":"credit.pending"}`)}}})
	ctx := context.Background()
	if err := o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: handlers.TimerReauth, Seq: 3}); err != nil {
		t.Fatal(err)
	}
	got, _ := store.Get(ctx, "shop-a", "o-1")
	if got.TransactionID != "11111111111" || got.Reauth.Phase != "" || got.Reauth.New != "" ||
		strings.Join(prov.cancelled(), ",") != "22222222222" || outs.sent.types() != "credit.pending" {
		t.Fatalf("on %s, reauth %+v, cancels %v, outcomes %q; want on 11111111111, the re-authorization dropped, 22222222222 cancelled, only credit.pending",
			got.TransactionID, got.Reauth, prov.cancelled(), outs.sent.types())
	}
}

// TestStaleReauthorizationIntentShippedEndsUnknown: a re-authorization's registration intent
// (answer unrecorded) whose resend is refused for the account; a tracking number ships the order
// on its old transaction, and the order's kept data goes with it. The intent cannot be sent
// again: it ends unknown (whether the registration reached ATODENE only its screen tells), not
// no-data, and nothing is cancelled.
func TestStaleReauthorizationIntentShippedEndsUnknown(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	data, _ := json.Marshal(testOrder("o-1", 2950))
	o, store, prov, outs, clk := staleReauthEnv(t, orderstate.State{Status: orderstate.StatusOK, TransactionID: "11111111111", ShopOrderID: "o-1", Service: atodene.ServiceSeparate,
		Fee: 205, BilledAmount: 3155, DataHash: "v1:x", OrderData: data,
		Reauth: &orderstate.Reauth{Seq: 3, N: 1, Phase: orderstate.ReauthRegistering, ShopOrderID: "o-1_R1", DataHash: "v1:x", Scheduled: true, At: now.Add(time.Minute)},
		Outbox: []orderstate.Outcome{{Subject: "results.x", MsgID: "shop-a:o-1:e:1:x", Body: []byte(`{"type":"x"}`)}}})
	ctx := context.Background()
	if err := o.TrackingEntered(ctx, handlers.Event[events.Tracking]{
		Meta: handlers.Meta{ID: "t-o-1", Source: "test", Type: events.TypeTrackingEntered, Shop: "shop-a", Seq: 2, Time: clk.Now()},
		Data: events.Tracking{ShopID: "shop-a", OrderID: "o-1", Carrier: "yamato", TrackingNumber: "123456789012"}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if err := o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: handlers.TimerReauth, Seq: 3}); err != nil {
		t.Fatal(err)
	}
	got, _ := store.Get(ctx, "shop-a", "o-1")
	h, _ := store.History(ctx, "shop-a", "o-1")
	last := ""
	for _, x := range h {
		if x.Type == "reauthorization" {
			last = x.Did
		}
	}
	if got.TransactionID != "11111111111" || got.Reauth.Failed != handlers.ReauthUnknown || len(prov.cancelled()) != 0 ||
		strings.Contains(outs.sent.types(), "credit.ok") || !strings.Contains(last, "o-1_R1 reached ATODENE is unknown") {
		t.Fatalf("on %s, reauth %+v, cancels %v, outcomes %q, history %q; want on 11111111111, ended unknown naming o-1_R1, nothing cancelled",
			got.TransactionID, got.Reauth, prov.cancelled(), outs.sent.types(), last)
	}
}

// TestEarlyOldCancelTimerIsScheduledAgain: the cancel of a re-authorization's old transaction
// failed, and its retry's timer is handled 5 ms before it is due (the NATS server's clock ahead of
// the worker's). It cancels nothing yet, and is scheduled again for its time but no sooner than
// handlers.EarlyTimerAgain from now (for its time alone, it would fire again at once by the
// server's clock), and it cancels the old transaction once handled at its time.
func TestEarlyOldCancelTimerIsScheduledAgain(t *testing.T) {
	t.Parallel()
	e := newReauthEnv(t)
	e.create(t, "o-1", "taro@example.jp")
	e.clock.Advance(reauthAfter)
	e.prov.mu.Lock()
	e.prov.failCancels = 1
	e.prov.mu.Unlock()
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	at := e.get(t, "o-1").Reauth.At
	n := e.polls.count(handlers.TimerReauth)
	e.clock.Advance(at.Sub(e.clock.Now()) - 5*time.Millisecond)
	if err := e.fire(t); err != nil {
		t.Fatal(err)
	}
	st := e.get(t, "o-1")
	want := e.clock.Now().Add(handlers.EarlyTimerAgain)
	if last := e.polls.last(t, handlers.TimerReauth); st.Reauth.Phase != orderstate.ReauthCancelling || e.polls.count(handlers.TimerReauth) != n+1 ||
		!last.at.Equal(want) || last.req.Seq != st.Reauth.Seq || !st.Reauth.At.Equal(at) {
		t.Fatalf("after the early timer: phase %q (due %s), %d timers scheduled (were %d), last %+v at %s; want still cancelling, due %s, one more timer at %s",
			st.Reauth.Phase, st.Reauth.At, e.polls.count(handlers.TimerReauth), n, last.req, last.at, at, want)
	}
	e.clock.Advance(5 * time.Millisecond)
	if err := e.o.PollDue(context.Background(), e.polls.last(t, handlers.TimerReauth).req); err != nil {
		t.Fatal(err)
	}
	if st := e.get(t, "o-1"); st.Reauth.Phase != "" || e.transactions(t)["o-1"].State != "cancelled" {
		t.Fatalf("at its time: phase %q, old transaction %+v; want it cancelled", st.Reauth.Phase, e.transactions(t)["o-1"])
	}
}

// TestResolveAnUnknownRegistrationResumesReauthorization: an order whose registration's answer was
// lost turns unknown and keeps the data it sent. Resolved with the transaction ATODENE's screen
// holds, it is re-authorized 88 days after it turned unknown (the approval's own time is unknown:
// the earlier time stands for it), with the kept data. Resolved as not registered instead, it is
// none again and its data is deleted.
func TestResolveAnUnknownRegistrationResumesReauthorization(t *testing.T) {
	t.Parallel()
	for _, adopt := range []bool{true, false} {
		t.Run(fmt.Sprintf("adopt=%v", adopt), func(t *testing.T) {
			t.Parallel()
			e := newReauthEnv(t)
			e.prov.loseOwn = true
			ev := createdEvent("c-o-1", "o-1", 1)
			ev.Data.Buyer.Email = "hanako@example.jp"
			if err := e.o.OrderCreated(context.Background(), ev); err == nil {
				t.Fatal("the lost answer was not reported")
			}
			e.clock.Advance(10 * time.Minute)
			unknownAt := e.clock.Now()
			if err := e.o.OrderCreated(context.Background(), ev); err == nil {
				t.Fatal("the retry answered already registered reported nothing")
			}
			st := e.get(t, "o-1")
			data, err := e.store.OrderData(context.Background(), "shop-a", "o-1")
			if err != nil {
				t.Fatal(err)
			}
			if st.Status != orderstate.StatusUnknown || !st.HasData || !strings.Contains(string(data), "hanako@example.jp") || !st.ChangedAt.Equal(unknownAt) {
				t.Fatalf("after the retry: %s, data kept %v (%d bytes), changed at %s; want unknown, the data sent kept, changed at %s", st.Status, st.HasData, len(data), st.ChangedAt, unknownAt)
			}

			e.clock.Advance(3 * 24 * time.Hour)
			found := e.transactions(t)["o-1"].TransactionID
			if !adopt {
				if err := e.prov.Provider.Cancel(context.Background(), found); err != nil {
					t.Fatal(err)
				}
				found = ""
			}
			if err := e.resolve("r-1", "o-1", found); err != nil {
				t.Fatal(err)
			}
			st = e.get(t, "o-1")
			if !adopt {
				data, err := e.store.OrderData(context.Background(), "shop-a", "o-1")
				if err != nil {
					t.Fatal(err)
				}
				if st.Status != orderstate.StatusNone || st.HasData || data != nil || !st.AuthorizedAt.IsZero() || st.Reauth != nil {
					t.Fatalf("resolved not registered: %s, data kept %v (%d bytes), authorized at %s, %+v; want none, no data, no approval", st.Status, st.HasData, len(data), st.AuthorizedAt, st.Reauth)
				}
				return
			}
			_, at := e.timer(t)
			if st.Status != orderstate.StatusOK || !st.HasData || !st.AuthorizedAt.Equal(unknownAt) || !at.Equal(unknownAt.Add(reauthAfter)) || !st.Reauth.Scheduled {
				t.Fatalf("after the resolution: %s, data kept %v, authorized at %s, %+v; want ok, kept, authorized at %s, re-authorized at %s",
					st.Status, st.HasData, st.AuthorizedAt, st.Reauth, unknownAt, unknownAt.Add(reauthAfter))
			}
			e.clock.Advance(at.Sub(e.clock.Now()))
			if err := e.fire(t); err != nil {
				t.Fatal(err)
			}
			st, txs := e.get(t, "o-1"), e.transactions(t)
			nw := txs["o-1_R1"]
			if nw.State != "active" || nw.Decision != "OK" || st.TransactionID != nw.TransactionID || st.ShopOrderID != "o-1_R1" || txs["o-1"].State != "cancelled" {
				t.Fatalf("after the re-authorization: %s on %s (%s); sandbox new %+v, old %s", st.Status, st.TransactionID, st.ShopOrderID, nw, txs["o-1"].State)
			}
			e.prov.mu.Lock()
			emails := e.prov.emails
			e.prov.mu.Unlock()
			if len(emails) != 1 || emails[0] != "hanako@example.jp" {
				t.Fatalf("re-authorizations sent with buyer emails %q, want the kept data's", emails)
			}
		})
	}
}
