package handlers_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// The shipment sub-state across the end of a credit and a new registration
// (docs/lifecycle.md#the-shipment-sub-state).

// TestRegisteredAgainReportsNoCorrectedNumber: a tracking number entered while the order's credit
// is cancelled or NG is answered shipment.ng, with no call; the number it corrects is forgotten, so
// a new registration (与信を実行 after 与信キャンセル, or the data fixed after NG) reports neither to
// the new transaction: not the corrected one (the wrong slip; the state kept it, and the new
// transaction was reported it), and not the new one, whose event has had its one shipment outcome.
func TestRegisteredAgainReportsNoCorrectedNumber(t *testing.T) {
	t.Parallel()
	const a, b = "1111-1111-1111", "2222-2222-2222"
	for _, tc := range []struct {
		name   string
		events func(e *env, ctx context.Context) []error
		slips  []string // the slip numbers reported to ATODENE, in order
	}{
		{name: "cancelled, corrected, registered again", slips: []string{a},
			events: func(e *env, ctx context.Context) []error {
				return []error{
					e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", "T-1", 1, orderedAt, 3950)),
					e.o.TrackingEntered(ctx, trackingEvent("t-a", "T-1", 2, a)), // reported to the first transaction
					e.o.OrderCancelled(ctx, cancelEvent("x-3", "T-1", 3)),
					e.o.TrackingEntered(ctx, trackingEvent("t-b", "T-1", 4, b)), // shipment.ng: the credit is cancelled
					// 与信を実行: registered again
					e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-5", "T-1", 5, time.Now().Add(time.Hour), 3950)),
				}
			}},
		{name: "NG, tracking entered, fixed", slips: nil,
			events: func(e *env, ctx context.Context) []error {
				return []error{
					e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", "T-1", 1, orderedAt, 2950)), // NG
					e.o.TrackingEntered(ctx, trackingEvent("t-b", "T-1", 2, b)),                                  // shipment.ng: the credit is NG
					e.o.OrderUpdated(ctx, orderEvent(events.TypeOrderUpdated, "u-3", "T-1", 3, orderedAt.Add(time.Minute), 3950)),
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prov := &refuses2950{}
			e, ctx := newEnv(t, prov), context.Background()
			handled(t, tc.events(e, ctx)...)
			st, err := e.store.Get(ctx, "shop-a", "T-1")
			if err != nil {
				t.Fatal(err)
			}
			if st.Status != orderstate.StatusOK || !e.published("T-1", events.TypeShipmentNG) {
				t.Fatalf("status %q, outcomes %v; want ok, registered again, after a shipment.ng", st.Status, e.outs.ids)
			}
			if !slices.Equal(prov.slips, tc.slips) {
				t.Errorf("slip numbers reported %v, want %v: the new transaction gets no number from before it", prov.slips, tc.slips)
			}
			if st.Shipment != nil {
				t.Errorf("shipment %+v, want none: the shop enters the number again for the new transaction", st.Shipment)
			}
			if e.published("T-1", events.TypeShipmentOK) && len(tc.slips) == 0 {
				t.Errorf("outcomes %v: shipment.ok for a number whose event was answered shipment.ng", e.outs.ids)
			}
		})
	}
}

// TestTrackingRefusedByTheCreditForgetsTheOld: a tracking number for a cancelled order is answered
// shipment.ng and not reported, and the number the state kept, which it corrects, is forgotten.
func TestTrackingRefusedByTheCreditForgetsTheOld(t *testing.T) {
	t.Parallel()
	prov := &sentProvider{}
	e, ctx := newEnv(t, prov), context.Background()
	handled(t,
		e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", "T-2", 1, orderedAt, 2950)),
		e.o.TrackingEntered(ctx, trackingEvent("t-a", "T-2", 2, "1111-1111-1111")),
		e.o.OrderCancelled(ctx, cancelEvent("x-3", "T-2", 3)),
		e.o.TrackingEntered(ctx, trackingEvent("t-b", "T-2", 4, "2222-2222-2222")))
	st, _ := e.store.Get(ctx, "shop-a", "T-2")
	if st.Status != orderstate.StatusCancelled || st.Shipment != nil ||
		!slices.Equal(prov.slips, []string{"1111-1111-1111"}) || !e.published("T-2", events.TypeShipmentNG) {
		t.Errorf("status %q, shipment %+v after reporting %v, outcomes %v; want cancelled, no shipment kept, shipment.ng",
			st.Status, st.Shipment, prov.slips, e.outs.ids)
	}
}
