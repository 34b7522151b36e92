package handlers_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Events of one order handled out of the order they were published (docs/lifecycle.md#events-handled-out-of-order):
// the shop's last word stands, also when that word found nothing to do, and also among the events
// that wait for their order, parked.

// sentProvider is fakeProvider recording the billed amount of each registration and change, and
// the slip number of each shipment report.
type sentProvider struct {
	fakeProvider
	mu     sync.Mutex
	billed []int64
	slips  []string
}

func (p *sentProvider) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	p.record(req.Order().BilledAmount, "")
	return p.fakeProvider.Register(ctx, req)
}

func (p *sentProvider) Modify(ctx context.Context, tx string, req atodene.Request) (atodene.Change, error) {
	p.record(req.Order().BilledAmount, "")
	if _, err := p.fakeProvider.Modify(ctx, tx, req); err != nil {
		return atodene.Change{}, err
	}
	return atodene.Change{Auto: atodene.DecisionOK}, nil
}

func (p *sentProvider) ReportShipment(ctx context.Context, s atodene.Shipment) error {
	p.record(0, s.SlipNo)
	return p.fakeProvider.ReportShipment(ctx, s)
}

func (p *sentProvider) record(billed int64, slip string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if slip != "" {
		p.slips = append(p.slips, slip)
	} else {
		p.billed = append(p.billed, billed)
	}
}

// orderEvent is an order.created or order.updated of order at sequence seq, written at at.
func orderEvent(typ, id, order string, seq uint64, at time.Time, billed int64) handlers.Event[events.Order] {
	return handlers.Event[events.Order]{Meta: handlers.Meta{ID: id, Source: "test", Type: typ, Shop: "shop-a", Seq: seq, Time: at},
		Data: testOrder(order, billed)}
}

// parkableCancel is cancelEvent with the body and subject an event needs to wait, parked.
func parkableCancel(id, order string, seq uint64) handlers.Event[events.Cancel] {
	ev := cancelEvent(id, order, seq)
	ev.Subject, ev.Stream, ev.Attempt = "orders.cancelled.shop-a", "ORDERS", 1
	ev.Body = envelope(events.TypeOrderCancelled, id, `{"shop_id":"shop-a","order_id":"`+order+`","reason":"buyer"}`)
	return ev
}

var orderedAt = time.Date(2026, 11, 26, 10, 15, 0, 0, time.UTC)

// handled fails the test on the first error of the events handled, in the order given (Go
// evaluates a call's arguments left to right).
func handled(t *testing.T, errs ...error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("event %d: %v", i+1, err)
		}
	}
}

// TestSameDataKeepsItsPlace: the shop changes an order from 2950 to 3950 (seq 2) and back to 2950
// (seq 3). The change back is handled first and finds the data ATODENE holds: nothing to send, but
// it is the shop's last word, and the change to 3950, handled last, is stale.
func TestSameDataKeepsItsPlace(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	handled(t,
		e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", "S-1", 1, orderedAt, 2950)),
		e.o.OrderUpdated(ctx, orderEvent(events.TypeOrderUpdated, "u-3", "S-1", 3, orderedAt.Add(2*time.Minute), 2950)),
		e.o.OrderUpdated(ctx, orderEvent(events.TypeOrderUpdated, "u-2", "S-1", 2, orderedAt.Add(time.Minute), 3950)))
	st, _ := e.store.Get(ctx, "shop-a", "S-1")
	if st.BilledAmount != 2950 || len(prov.billed) != 1 || st.CreditSeq != 3 {
		t.Errorf("billed %d, sent %v, credit_seq %d; want 2950 (seq 3's), only the registration sent, 3", st.BilledAmount, prov.billed, st.CreditSeq)
	}
	if got := e.history(t, "S-1"); !strings.HasPrefix(got[len(got)-1].Did, "no change: older in the stream") {
		t.Errorf("last history entry %q; want the stale change", got[len(got)-1].Did)
	}
}

// TestRepeatedCancelKeepsItsPlace: the shop cancels (seq 2), updates (seq 3) and cancels again (seq
// 4). The second cancel, handled before the update, finds the order cancelled already; the update,
// handled last, is older than it and does not register the order again.
func TestRepeatedCancelKeepsItsPlace(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	handled(t,
		e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", "S-2", 1, orderedAt, 2950)),
		e.o.OrderCancelled(ctx, cancelEvent("x-2", "S-2", 2)),
		e.o.OrderCancelled(ctx, cancelEvent("x-4", "S-2", 4)),
		e.o.OrderUpdated(ctx, orderEvent(events.TypeOrderUpdated, "u-3", "S-2", 3, time.Now().Add(time.Minute), 3950)))
	st, _ := e.store.Get(ctx, "shop-a", "S-2")
	if st.Status != orderstate.StatusCancelled || len(prov.billed) != 1 {
		t.Errorf("status %q after sending %v; want cancelled (seq 4) after the registration alone", st.Status, prov.billed)
	}
}

// TestSameTrackingNumberKeepsItsPlace: tracking number A (seq 1), corrected to B (seq 2), and back to
// A (seq 3). Seq 3 is handled before seq 2 and finds A reported; seq 2, handled last, is stale.
func TestSameTrackingNumberKeepsItsPlace(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	e.okOrder(t)
	handled(t,
		e.o.TrackingEntered(ctx, trackingEvent("t-1", "o-1", 1, "1111-2222-3333")),
		e.o.TrackingEntered(ctx, trackingEvent("t-3", "o-1", 3, "1111-2222-3333")),
		e.o.TrackingEntered(ctx, trackingEvent("t-2", "o-1", 2, "4444-5555-6666")))
	st, _ := e.store.Get(ctx, "shop-a", "o-1")
	if st.Shipment == nil || st.Shipment.TrackingNumber != "1111-2222-3333" || len(prov.slips) != 1 {
		t.Errorf("shipment %+v after reporting %v; want 1111-2222-3333 (seq 3), reported once", st.Shipment, prov.slips)
	}
}

// TestOlderParkedTrackingNumberIsStale: tracking numbers entered before their order is registered
// wait, parked. The correction (seq 6) waits first; the number it corrects (seq 5), handled late,
// is stale and does not replace it. Once the order is registered, the correction is reported.
func TestOlderParkedTrackingNumberIsStale(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	handled(t,
		e.o.TrackingEntered(ctx, trackingEvent("t-6", "P-1", 6, "4444-5555-6666")),
		e.o.TrackingEntered(ctx, trackingEvent("t-5", "P-1", 5, "1111-2222-3333")),
		e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", "P-1", 1, orderedAt, 2950)))
	st, _ := e.store.Get(ctx, "shop-a", "P-1")
	if st.Shipment == nil || st.Shipment.TrackingNumber != "4444-5555-6666" || len(prov.slips) != 1 {
		t.Errorf("shipment %+v after reporting %v; want 4444-5555-6666 (seq 6), reported once", st.Shipment, prov.slips)
	}
	if !e.historyHas(t, "P-1", "no change: older in the stream than the tracking number waiting (event t-6)") {
		t.Error("no history entry says the late number is stale")
	}
}

// TestLaterCancelReplacesAParkedOne: two cancels of an order the worker has no record of yet wait,
// parked; an update published between them (seq 4) is handled after both and registers the order.
// The shop's last word is the second cancel (seq 5): it is the one that waits, and it cancels the
// order once registered. (When the first cancel waited and the second was dropped, the first,
// older than the update, was stale and the order stayed registered.)
func TestLaterCancelReplacesAParkedOne(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	handled(t,
		e.o.OrderCancelled(ctx, parkableCancel("x-3", "S-3", 3)),
		e.o.OrderCancelled(ctx, parkableCancel("x-5", "S-3", 5)),
		e.o.OrderCancelled(ctx, parkableCancel("x-1", "S-3", 1)),
		e.o.OrderUpdated(ctx, orderEvent(events.TypeOrderUpdated, "u-4", "S-3", 4, orderedAt, 2950)))
	st, _ := e.store.Get(ctx, "shop-a", "S-3")
	if st.Status != orderstate.StatusCancelled || prov.calls["cancel"] != 1 || len(st.Parked) != 0 {
		t.Errorf("status %q, %d cancels at ATODENE, %d still parked; want cancelled by seq 5, 1, none", st.Status, prov.calls["cancel"], len(st.Parked))
	}
	for _, did := range []string{
		"superseded while waiting: a later cancel (event x-5) replaces it",
		"no change: older in the stream than the cancel waiting (event x-5)",
	} {
		if !e.historyHas(t, "S-3", did) {
			t.Errorf("no history entry %q", did)
		}
	}
}

// TestRepeatedCreationDoesNotHideAChange: an importer sends order.created again (seq 3) after the
// shop changed the order (seq 2), and the repeat is handled first. A repeat of a live order's
// creation is ignored, so it is no word on the order's data: the change, handled after it, applies.
func TestRepeatedCreationDoesNotHideAChange(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	handled(t,
		e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", "S-4", 1, orderedAt, 2950)),
		e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1b", "S-4", 3, orderedAt, 2950)),
		e.o.OrderUpdated(ctx, orderEvent(events.TypeOrderUpdated, "u-2", "S-4", 2, orderedAt.Add(time.Minute), 3950)))
	st, _ := e.store.Get(ctx, "shop-a", "S-4")
	if st.BilledAmount != 3950 || len(prov.billed) != 2 {
		t.Errorf("billed %d after sending %v; want 3950, the change applied", st.BilledAmount, prov.billed)
	}
}

// TestLateRetryAfterACancelDoesNotHideAnUpdate: after a cancel (seq 2), an importer's late retry of
// the order.created (seq 5, its time before the cancel) changes nothing and is no word of the shop;
// an update written after the cancel (seq 4), handled after the retry, registers the order again.
func TestLateRetryAfterACancelDoesNotHideAnUpdate(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	handled(t,
		e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", "S-5", 1, orderedAt, 2950)),
		e.o.OrderCancelled(ctx, cancelEvent("x-2", "S-5", 2)),
		e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1-retry", "S-5", 5, time.Now().Add(-time.Hour), 2950)),
		e.o.OrderUpdated(ctx, orderEvent(events.TypeOrderUpdated, "u-4", "S-5", 4, time.Now().Add(time.Hour), 3950)))
	st, _ := e.store.Get(ctx, "shop-a", "S-5")
	if st.Status != orderstate.StatusOK || st.BilledAmount != 3950 || len(prov.billed) != 2 {
		t.Errorf("status %q billed %d after sending %v; want ok at 3950, registered again by seq 4", st.Status, st.BilledAmount, prov.billed)
	}
	if !e.historyHas(t, "S-5", "no change: the event's time is before the order's cancel") {
		t.Errorf("the late retry was not taken for one: %+v", e.history(t, "S-5"))
	}
}

// history returns the history of order of shop-a.
func (e *env) history(t *testing.T, order string) []orderstate.Entry {
	t.Helper()
	entries, err := e.store.History(context.Background(), "shop-a", order)
	if err != nil || len(entries) == 0 {
		t.Fatalf("history of %s: %d entries, %v", order, len(entries), err)
	}
	return entries
}

// historyHas reports whether an entry of order's history did exactly did.
func (e *env) historyHas(t *testing.T, order, did string) bool {
	t.Helper()
	for _, h := range e.history(t, order) {
		if h.Did == did {
			return true
		}
	}
	return false
}

// TestLaterCancelTakesTheParkedOnesPlace: a cancel (seq 3), a tracking number (seq 4) and a second
// cancel (seq 5) wait for an order the worker has no record of. The second cancel replaces the
// first in its place: once the order is registered, it is cancelled before the tracking number is
// applied (shipment.ng, nothing reported to ATODENE), as the events came, where the second cancel,
// put last, had the shipment reported to ATODENE on a transaction the shop had cancelled.
func TestLaterCancelTakesTheParkedOnesPlace(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	handled(t,
		e.o.OrderCancelled(ctx, parkableCancel("x-3", "S-6", 3)),
		e.o.TrackingEntered(ctx, trackingEvent("t-4", "S-6", 4, "1111-2222-3333")),
		e.o.OrderCancelled(ctx, parkableCancel("x-5", "S-6", 5)),
		e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", "S-6", 1, orderedAt, 2950)))
	st, _ := e.store.Get(ctx, "shop-a", "S-6")
	if st.Status != orderstate.StatusCancelled || len(prov.slips) != 0 || !e.published("S-6", events.TypeShipmentNG) {
		t.Errorf("status %q, shipments reported %v, outcomes %v; want cancelled, none reported, shipment.ng", st.Status, prov.slips, e.outs.ids)
	}
}

// TestParkedEventsApplyInStreamOrder: a cancel and a tracking number wait, parked, for the order's
// registration, having arrived in another order than the shop published them. Once the order is
// registered they apply in the shop's order, compared as the state's positions are (a replay by the
// sequence it was first published at, a stream created again as newer): a tracking number entered
// after the cancel finds the order cancelled (shipment.ng, nothing reported to ATODENE, whose billing
// a report starts); one entered before it is reported, then the credit is cancelled. (Applied as
// they arrived, the tracking number entered after the cancel was reported first.)
func TestParkedEventsApplyInStreamOrder(t *testing.T) {
	t.Parallel()
	const oldStream, newStream = int64(1_000), int64(2_000) // stream creation times (Unix ns)
	for _, tc := range []struct {
		name            string
		trackingSeq     uint64 // the tracking number is handled first, the cancel second
		cancelSeq       uint64
		cancelPublished uint64 // a replayed dead letter's Dlq-Published-Sequence
		trackingCreated int64  // the creation time of the stream each was published in
		cancelCreated   int64
		reported        bool // the tracking number comes before the cancel in the stream
	}{
		{name: "tracking entered after the cancel", trackingSeq: 3, cancelSeq: 2},
		{name: "replayed cancel published before the tracking number", trackingSeq: 3, cancelSeq: 9, cancelPublished: 2},
		{name: "tracking entered before the cancel", trackingSeq: 2, cancelSeq: 3, reported: true},
		{name: "cancel in a stream created again", trackingSeq: 9, trackingCreated: oldStream, cancelSeq: 2, cancelCreated: newStream, reported: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prov := &sentProvider{}
			e, ctx := newEnv(t, prov), context.Background()
			const order = "Q-1"
			tracking := trackingEvent("t-1", order, tc.trackingSeq, "1111-2222-3333")
			tracking.PublishedCreated = tc.trackingCreated
			cancel := parkableCancel("x-1", order, tc.cancelSeq)
			cancel.Published, cancel.PublishedCreated = tc.cancelPublished, tc.cancelCreated
			created := orderEvent(events.TypeOrderCreated, "c-1", order, 1, orderedAt, 2950)
			created.PublishedCreated = tc.cancelCreated
			handled(t,
				e.o.TrackingEntered(ctx, tracking), // parked: no record of the order
				e.o.OrderCancelled(ctx, cancel),    // parked too
				e.o.OrderCreated(ctx, created))
			st, _ := e.store.Get(ctx, "shop-a", order)
			if st.Status != orderstate.StatusCancelled || len(st.Parked) != 0 {
				t.Fatalf("status %q, %d still parked; want cancelled, none", st.Status, len(st.Parked))
			}
			if tc.reported {
				if len(prov.slips) != 1 || !e.published(order, events.TypeShipmentOK) {
					t.Errorf("shipments reported %v, outcomes %v; want the tracking number entered before the cancel reported", prov.slips, e.outs.ids)
				}
				return
			}
			if len(prov.slips) != 0 || e.published(order, events.TypeShipmentOK) || !e.published(order, events.TypeShipmentNG) {
				t.Errorf("shipments reported %v, outcomes %v; want none reported and shipment.ng: the tracking number was entered after the cancel", prov.slips, e.outs.ids)
			}
		})
	}
}

// cancelFailsOnce is sentProvider whose first cancel fails transiently (ATODENE not answering).
type cancelFailsOnce struct {
	sentProvider
	failed bool
}

func (p *cancelFailsOnce) Cancel(ctx context.Context, tx string) error {
	p.mu.Lock()
	first := !p.failed
	p.failed = true
	p.mu.Unlock()
	if first {
		return errors.New("modifytransaction.do: timeout")
	}
	return p.sentProvider.Cancel(ctx, tx)
}

// TestParkedEventWaitingForItsRetryIsNotOvertaken: a cancel and then a tracking number of the
// same order wait, parked, for its registration; the cancel's call fails transiently when the
// registration is recorded, and it waits for its retry. The tracking number, later in the stream,
// waits behind it (it used to be reported at once, before the cancel): the park timer, due at the
// cancel's retry, cancels the order, and the tracking number then finds it cancelled (shipment.ng,
// nothing reported). docs/lifecycle.md#parked-events.
func TestParkedEventWaitingForItsRetryIsNotOvertaken(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsOnce{}
	e, ctx := newEnv(t, prov), context.Background()
	const order = "Q-2"
	handled(t,
		e.o.OrderCancelled(ctx, parkableCancel("x-1", order, 2)),                                     // parked: no record of the order
		e.o.TrackingEntered(ctx, trackingEvent("t-1", order, 3, "1111-2222-3333")),                   // parked too, after the cancel
		e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", order, 1, orderedAt, 2950))) // the cancel's call fails
	st, _ := e.store.Get(ctx, "shop-a", order)
	if st.Status != orderstate.StatusOK || len(st.Parked) != 2 || len(prov.slips) != 0 || e.published(order, events.TypeShipmentOK) {
		t.Fatalf("after the registration: status %q, %d parked, slips reported %v, outcomes %v; want ok, both still parked, nothing reported",
			st.Status, len(st.Parked), prov.slips, e.outs.ids)
	}
	var retry time.Time
	for _, p := range st.Parked {
		if p.ID == "x-1" {
			retry = p.RetryAt
		} else if p.Tries != 0 || !p.RetryAt.IsZero() {
			t.Errorf("the tracking number was tried (tries %d, retry at %v) while the cancel before it waited", p.Tries, p.RetryAt)
		}
	}
	if retry.IsZero() || !st.ParkTimer.Equal(retry) {
		t.Fatalf("park timer %v; want the cancel's retry %v", st.ParkTimer, retry)
	}
	e.clock.Advance(retry.Sub(e.clock.Now()))
	if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: order, Kind: handlers.TimerParked}); err != nil {
		t.Fatal(err)
	}
	st, _ = e.store.Get(ctx, "shop-a", order)
	if st.Status != orderstate.StatusCancelled || len(st.Parked) != 0 {
		t.Fatalf("after the retry: status %q, %d still parked; want cancelled, none", st.Status, len(st.Parked))
	}
	if len(prov.slips) != 0 || e.published(order, events.TypeShipmentOK) || !e.published(order, events.TypeShipmentNG) || !e.published(order, events.TypeCreditCancelled) {
		t.Errorf("shipments reported %v, outcomes %v; want none reported, credit.cancelled and shipment.ng: the tracking number was entered after the cancel", prov.slips, e.outs.ids)
	}
}

// TestParkedEventsKeepTheirHistory: two events parked for an order are applied in one settle, the
// second finding the state saying what it says already (the tracking number reported). Both keep
// their history entries: the second's change started from a state without the first's entry.
func TestParkedEventsKeepTheirHistory(t *testing.T) {
	t.Parallel()
	e, ctx := newEnv(t, &fakeProvider{}), context.Background()
	invoice := handlers.Meta{ID: "i-1", Source: "test", Type: events.TypeInvoiceRequested, Shop: "shop-a", Subject: "orders.invoice_requested.shop-a",
		Stream: "ORDERS", Seq: 8, Attempt: 1, Body: envelope(events.TypeInvoiceRequested, "i-1", `{"shop_id":"shop-a","order_id":"o-1"}`)}
	tracking := trackingEvent("t-1", "o-1", 9, "1111-2222-3333").Meta
	parked := func(m handlers.Meta, kind string) orderstate.Parked {
		return orderstate.Parked{Type: m.Type, Key: m.Key(), ID: m.ID, Source: m.Source, Subject: m.Subject, Stream: m.Stream, Seq: m.Seq,
			Attempt: 1, Body: m.Body, Since: time.Now().UTC(), Waits: "the order's credit check", Kind: kind}
	}
	st := orderstate.State{Status: orderstate.StatusOK, TransactionID: "12345678901", Service: atodene.ServiceEnclosed,
		Shipment: &orderstate.Shipment{CarrierCode: "12", TrackingNumber: "1111-2222-3333", Reported: true, Filed: true, Report: "new"},
		Parked:   []orderstate.Parked{parked(invoice, "invoice"), parked(tracking, "tracking")}}
	if _, err := e.store.Put(ctx, "shop-a", "o-1", st, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: handlers.TimerInbox}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"i-1", "t-1"} {
		found := false
		for _, h := range e.history(t, "o-1") {
			found = found || h.ID == id && strings.HasPrefix(h.Did, "applied after waiting since ")
		}
		if !found {
			t.Errorf("no history entry of the parked event %s applied: %+v", id, e.history(t, "o-1"))
		}
	}
}

// published reports whether an outcome of type typ was published for order of shop-a.
func (e *env) published(order, typ string) bool {
	return slices.ContainsFunc(e.outs.ids, func(id string) bool {
		return strings.HasPrefix(id, "shop-a:"+order+":") && strings.HasSuffix(id, ":"+typ)
	})
}
