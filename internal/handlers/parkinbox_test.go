package handlers_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Parked events and the events their order's inbox holds (a creation waiting for the retry of a
// call that failed): stream order between the two, and the park deadline while the inbox is busy.

// receivedCreated is an order.created of order as received from the ORDERS stream: subject, stream
// and body, so that the inbox can keep it for a retry.
func receivedCreated(t *testing.T, id, order string, seq uint64, billed int64) handlers.Event[events.Order] {
	t.Helper()
	return received(t, events.TypeOrderCreated, id, order, seq, billed)
}

// received is an order.created or order.updated (typ) of order as received from the ORDERS stream.
func received(t *testing.T, typ, id, order string, seq uint64, billed int64) handlers.Event[events.Order] {
	t.Helper()
	data := testOrder(order, billed)
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	at, _ := time.Parse(time.RFC3339, "2026-11-26T10:15:00+09:00")
	return handlers.Event[events.Order]{Meta: handlers.Meta{ID: id, Source: "test", Type: typ, Shop: "shop-a",
		Subject: events.Subject(typ, "shop-a"), Stream: "ORDERS", Seq: seq, Attempt: 1, Time: at,
		Body: envelope(typ, id, string(raw))}, Data: data}
}

// TestParkDeadlineWaitsForTheRegistrationKeptForRetry: the shop's cancel (seq 3) waits,
// parked, for an order the worker has no record of. Its order.created (seq 1) comes 90 s before
// the cancel's -park-limit; ATODENE answers 503 for two minutes, so the creation waits first in
// the order's inbox for its retry, the order registering. At the cancel's deadline the
// park timer, a timer that does not wait behind the inbox, used to find the cancel "waiting for the
// outcome of the order's registration" and dead-letters it no-transaction; the creation's next
// retry registers the order: credit.ok, the order live, the shop's cancel in the DLQ. In stream
// order the creation comes first and the cancel then finds the order registered: cancelled. The
// order came before the deadline, and only a transient failure of its call (bounded by
// -max-deliveries) kept the cancel waiting, which the deadline is not for. No parked event is
// dead-lettered while the inbox holds events: the cancel is applied after the registration.
func TestParkDeadlineWaitsForTheRegistrationKeptForRetry(t *testing.T) {
	t.Parallel()
	prov := &registerFails{}
	e, ctx := newEnv(t, prov), context.Background()
	const order = "PK-A1"
	handled(t, e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 3)))
	st, _ := e.store.Get(ctx, "shop-a", order)
	if len(st.Parked) != 1 {
		t.Fatalf("setup: parked %+v", st.Parked)
	}
	deadline := st.ParkTimer
	e.clock.Advance(deadline.Sub(e.clock.Now()) - 90*time.Second)
	prov.failing = true
	if err := e.o.OrderCreated(ctx, receivedCreated(t, "c-1", order, 1, 2950)); !handlers.RetriedLater(err) {
		t.Fatalf("creation: %v; want kept for its retry", err)
	}
	// ATODENE down for two minutes: the creation's retries (1 s doubling) until the deadline.
	for {
		st, _ = e.store.Get(ctx, "shop-a", order)
		held, _ := e.store.HeldEvents(ctx, "shop-a", order)
		if !held.Keys["test/c-1"] && !held.Keys[events.EventKey("test", "c-1")] {
			t.Fatalf("the creation left the inbox: %+v, status %q", held, st.Status)
		}
		last := e.polls.at[len(e.polls.at)-1]
		if !last.Before(deadline) {
			break
		}
		e.clock.Advance(last.Sub(e.clock.Now()))
		if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: order, Kind: handlers.TimerRetry}); err != nil {
			t.Fatal(err)
		}
	}
	// The park timer at the cancel's deadline, then ATODENE answers again and the retry comes.
	e.clock.Advance(deadline.Sub(e.clock.Now()))
	if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: order, Kind: handlers.TimerParked}); err != nil {
		t.Fatal(err)
	}
	prov.failing = false
	for range 3 {
		e.retryTimer(t, order, time.Minute)
	}
	st, _ = e.store.Get(ctx, "shop-a", order)
	if st.Status != orderstate.StatusCancelled || e.letterOf(3) != "" || e.outcomes(order, events.TypeCreditCancelled) != 1 {
		t.Errorf("status %q, cancel's letter %q, outcomes %v; want the cancel applied after the registration (cancelled, credit.cancelled), not dead-lettered no-transaction",
			st.Status, e.letterOf(3), e.outs.ids)
	}
}

// TestReleasedCancelRetriesPastItsDeadlineWithLaterEventsQueued: a cancel (seq 3) parked
// since long before, released by its order.created (seq 1) 30 s before its deadline, fails
// transiently and retries, parked. A tracking number (seq 4) handled meanwhile is held behind it.
// Past its deadline the park timer must not dead-letter the retrying cancel no-transaction (nor
// the tracking number); the cancel's retry cancels the order and the tracking number finds it
// cancelled.
func TestReleasedCancelRetriesPastItsDeadlineWithLaterEventsQueued(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsTimes{n: 3}
	e, ctx := newEnv(t, prov), context.Background()
	const order = "PK-A2"
	handled(t, e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 3)))
	st, _ := e.store.Get(ctx, "shop-a", order)
	e.clock.Advance(st.ParkTimer.Sub(e.clock.Now()) - 30*time.Second)
	handled(t, e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", order, 1, orderedAt, 2950)))
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 4, "1111-2222-3333")))
	for range 10 {
		if st, _ = e.store.Get(ctx, "shop-a", order); st.ParkTimer.IsZero() {
			break
		}
		e.parkedTimer(t, order)
	}
	st, _ = e.store.Get(ctx, "shop-a", order)
	if st.Status != orderstate.StatusCancelled || len(e.letters.letters) != 0 || len(prov.slips) != 0 ||
		e.outcomes(order, events.TypeShipmentNG) != 1 || prov.calls["cancel"] != 4 {
		t.Errorf("status %q, letters %d, slips %v, outcomes %v, cancels %d; want cancelled, no letter, nothing reported, shipment.ng, 4 cancel calls",
			st.Status, len(e.letters.letters), prov.slips, e.outs.ids, prov.calls["cancel"])
	}
}

// TestCancelQueuedBehindAKeptCreationIsNotOvertakenByAParkedTrackingNumber: a tracking number
// (seq 4) waits, parked, for an order the worker has no record of. The order's creation (seq 1)
// comes and its call fails transiently: it waits first in the inbox for its retry, the
// order registering. The shop's cancel (seq 3, published before the tracking number; handled
// after it, e.g. a redelivery or a replayed dead letter) queues in the inbox behind the creation
// instead of parking among the parked events, where stream order would put it before the
// tracking number. At the creation's retry, settle used to apply the parked tracking number first
// (shipment.ok: billing starts), then the cancel from the inbox cancelled the order. The parked
// tracking number waits behind the inbox's cancel: as in stream order, the cancel applies first
// and the tracking number finds the order cancelled (shipment.ng, nothing reported).
func TestCancelQueuedBehindAKeptCreationIsNotOvertakenByAParkedTrackingNumber(t *testing.T) {
	t.Parallel()
	prov := &registerFails{}
	sent := &sentShipments{registerFails: prov}
	e, ctx := newEnv(t, sent), context.Background()
	const order = "PK-A3"
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 4, "1111-2222-3333")))
	prov.failing = true
	if err := e.o.OrderCreated(ctx, receivedCreated(t, "c-1", order, 1, 2950)); !handlers.RetriedLater(err) {
		t.Fatalf("creation: %v; want kept for its retry", err)
	}
	handled(t, e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 3)))
	prov.failing = false
	for range 3 {
		e.retryTimer(t, order, time.Minute)
	}
	st, _ := e.store.Get(ctx, "shop-a", order)
	if st.Status != orderstate.StatusCancelled || sent.calls["shipment"] != 0 || e.outcomes(order, events.TypeShipmentOK) != 0 || e.outcomes(order, events.TypeShipmentNG) != 1 {
		t.Errorf("status %q, shipment reports %d, outcomes %v; want cancelled, the tracking number (seq 4) not reported (shipment.ng) after the cancel (seq 3)",
			st.Status, sent.calls["shipment"], e.outs.ids)
	}
}

// sentShipments is registerFails counting shipment reports in its calls.
type sentShipments struct{ *registerFails }

// registeredThenAlready times out the first registration (ATODENE registered it: the answer
// lost) and answers every later one er000101 (already registered).
type registeredThenAlready struct {
	fakeProvider
	n int
}

func (p *registeredThenAlready) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	p.count("register")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if p.n == 1 {
		return atodene.Registration{}, &atodene.StatusError{Op: "transaction.do", StatusCode: 504}
	}
	return atodene.Registration{}, atodene.ErrAlreadyRegistered
}

// TestKeptCreationAnsweredAlreadyRegisteredIsUnknown: an order.created whose first
// registration's answer is lost is kept in the inbox for its retry; the retry, from the inbox (a
// retried attempt of the intent), is answered er000101. The order is unknown, the creation
// dead-lettered outcome-unknown once (Dlq-Attempts 2), no credit outcome, and a cancel queued
// behind it meanwhile is then dead-lettered outcome-unknown too ("cancel it at ATODENE by
// hand"), not applied as cancelled.
func TestKeptCreationAnsweredAlreadyRegisteredIsUnknown(t *testing.T) {
	t.Parallel()
	prov := &registeredThenAlready{}
	e, ctx := newEnv(t, prov), context.Background()
	const order = "PK-A4"
	if err := e.o.OrderCreated(ctx, receivedCreated(t, "c-1", order, 1, 2950)); !handlers.RetriedLater(err) {
		t.Fatalf("creation: %v; want kept for its retry", err)
	}
	handled(t, e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 2)))
	for range 3 {
		e.retryTimer(t, order, time.Minute)
	}
	st, _ := e.store.Get(ctx, "shop-a", order)
	var created handlers.DeadLetter
	for _, l := range e.letters.letters {
		if l.Sequence == 1 {
			created = l
		}
	}
	if st.Status != orderstate.StatusUnknown || created.Reason != handlers.ReasonOutcomeUnknown.String() || created.Attempts != 2 ||
		e.letterOf(2) != handlers.ReasonOutcomeUnknown.String() || len(e.letters.letters) != 2 || len(e.outs.ids) != 0 || prov.calls["register"] != 2 {
		t.Errorf("status %q, letters %v, outcomes %v, registrations %d; want unknown, the creation (attempts 2) and the cancel dead-lettered outcome-unknown, no outcome, 2 registrations",
			st.Status, reasons(e.letters), e.outs.ids, prov.calls["register"])
	}
}

// TestParkedEventHeldByTheInboxIsAppliedWhenItDrains: a tracking number (seq 4) waits, parked, for
// an order the worker has no record of; the order's creation (seq 1) waits in the inbox for its
// retry, and two updates queue behind it, the later one (seq 3) first. At the retry the creation
// registers the order, the update of seq 3 changes it, and the one of seq 2, stale, changes
// nothing: the tracking number, held behind the inbox's updates published before it, used to stay
// parked once the inbox was empty (the stale update wrote nothing, so nothing settled the order
// again), until its park timer, up to -park-limit later. It is reported as the inbox drains.
func TestParkedEventHeldByTheInboxIsAppliedWhenItDrains(t *testing.T) {
	t.Parallel()
	prov := &registerFails{}
	e, ctx := newEnv(t, prov), context.Background()
	const order = "PK-A5"
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 4, "1111-2222-3333")))
	prov.failing = true
	if err := e.o.OrderCreated(ctx, receivedCreated(t, "c-1", order, 1, 2950)); !handlers.RetriedLater(err) {
		t.Fatalf("creation: %v; want kept for its retry", err)
	}
	handled(t, e.o.OrderUpdated(ctx, received(t, events.TypeOrderUpdated, "u-3", order, 3, 3950)),
		e.o.OrderUpdated(ctx, received(t, events.TypeOrderUpdated, "u-2", order, 2, 3450)))
	prov.failing = false
	e.retryTimer(t, order, time.Minute)
	st, _ := e.store.Get(ctx, "shop-a", order)
	if n, _ := e.store.InboxLen(ctx, "shop-a", order); n != 0 || len(st.Parked) != 0 || prov.calls["shipment"] != 1 || e.outcomes(order, events.TypeShipmentOK) != 1 {
		t.Errorf("inbox %d, parked %+v, reports %d, outcomes %v; want the inbox drained, the tracking number reported once", n, st.Parked, prov.calls["shipment"], e.outs.ids)
	}
}

// TestCorrectionIsNotReportedBeforeACancelInTheInbox: a tracking number (seq 10) waits, parked,
// for an order the worker has no record of, and its correction (seq 40) replaces it, taking its
// place. The order's creation (seq 1) waits in the inbox for its retry, and the shop's cancel
// (seq 20, published between the two numbers) queues behind it. At the retry the creation
// registers the order; the correction, which stood at the replaced number's place, was reported
// before the cancel. It stands at its own position against the inbox: the cancel applies first,
// and the correction finds the order cancelled (shipment.ng, nothing reported).
func TestCorrectionIsNotReportedBeforeACancelInTheInbox(t *testing.T) {
	t.Parallel()
	prov := &registerFails{}
	e, ctx := newEnv(t, prov), context.Background()
	const order = "PK-A6"
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 10, "1111-2222-3333")),
		e.o.TrackingEntered(ctx, trackingEvent("t-2", order, 40, "4444-5555-6666")))
	prov.failing = true
	if err := e.o.OrderCreated(ctx, receivedCreated(t, "c-1", order, 1, 2950)); !handlers.RetriedLater(err) {
		t.Fatalf("creation: %v; want kept for its retry", err)
	}
	handled(t, e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 20)))
	prov.failing = false
	e.retryTimer(t, order, time.Minute)
	st, _ := e.store.Get(ctx, "shop-a", order)
	if st.Status != orderstate.StatusCancelled || prov.calls["shipment"] != 0 || e.outcomes(order, events.TypeShipmentNG) != 1 || len(st.Parked) != 0 {
		t.Errorf("status %q, reports %d, outcomes %v, %d parked; want cancelled, nothing reported, shipment.ng once, none parked",
			st.Status, prov.calls["shipment"], e.outs.ids, len(st.Parked))
	}
}

// TestBusyInboxDoesNotPutOffARetry: a parked cancel of an OK order waits for the retry of a call
// that failed, due in 30 s, past its -park-limit; the order's inbox holds an invoice request. The
// park timer, delivered early, used to be put off by a minute because the inbox was busy,
// replacing the timer of the cancel's retry (retries slowed to one a minute). Only an event that
// would be dead-lettered is put off: the cancel's timer stays at its retry.
func TestBusyInboxDoesNotPutOffARetry(t *testing.T) {
	t.Parallel()
	e, ctx := newEnv(t, &sentProvider{}), context.Background()
	e.okOrder(t)
	st, err := e.store.Get(ctx, "shop-a", "o-1")
	if err != nil {
		t.Fatal(err)
	}
	x := parkableCancel("x-1", "o-1", 5)
	retry := e.clock.Now().Add(30 * time.Second).UTC()
	st.Parked = []orderstate.Parked{{Type: x.Type, Key: x.Key(), ID: x.ID, Source: x.Source, Subject: x.Subject, Stream: x.Stream, Seq: x.Seq, Attempt: 1,
		Body: x.Body, Since: e.clock.Now().Add(-e.o.ParkLimit - time.Hour).UTC(), Waits: "its retry after a failed try", Kind: "cancel",
		Tries: 1, LastError: "modifytransaction.do: timeout", RetryAt: retry}}
	st.ParkTimer = retry
	if _, err := e.store.Put(ctx, "shop-a", "o-1", st, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	holder := e.holder(t, "o-1", time.Minute)
	invoice := invoiceEvent("i-1", 6)
	invoice.Data.OrderID = "o-1"
	handled(t, e.o.InvoiceRequested(ctx, invoice)) // queued behind the holder
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	handled(t, e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: handlers.TimerParked}))
	var last time.Time
	for i, x := range e.polls.timer {
		if x.Kind == handlers.TimerParked {
			last = e.polls.at[i]
		}
	}
	if last.IsZero() || last.After(retry) || len(e.letters.letters) != 0 {
		t.Errorf("park timer scheduled last for %v, letters %d; want it at the cancel's retry %v at the latest, nothing dead-lettered", last, len(e.letters.letters), retry)
	}
}
