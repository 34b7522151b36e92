package handlers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// The tests in this file are about the shop's fee table (docs/configuration.md#fees): what is sent
// is the order after the table.

// tableOrders is Orders for shop-a, whose fee table is table and whose calls go to prov, over store,
// with outcomes published to outs.
func tableOrders(t *testing.T, store *orderstate.Store, prov handlers.Provider, outs handlers.Outcomes, table fees.Table) *handlers.Orders {
	t.Helper()
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: table}
	return newOrders(t, handlers.OrdersConfig{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: outs, Polls: &recordedPolls{}, Now: time.Now})
}

// waiveTable overwrites every order's fee with 0: the shop does not charge the fee the mall put on
// the order.
var waiveTable = fees.Table{Mode: fees.ModeOverwrite, Rows: []fees.Row{{Min: 1, Max: 999999, Fee: 0}}}

// feeOrder is an order.created or order.updated of order at sequence seq: one item at 1,000,
// shipping 550, the mall's handling fee and a discount (points), billed what they add up to.
func feeOrder(typ, id, order string, seq uint64, fee, discount int64) handlers.Event[events.Order] {
	ev := orderEvent(typ, id, order, seq, orderedAt.Add(time.Duration(seq)*time.Minute), 0)
	billed := 1000 + 550 + fee - discount
	ev.Data.Items[0].UnitPrice = 1000
	ev.Data.ShippingFee, ev.Data.Fee, ev.Data.Discount, ev.Data.BilledAmount = 550, fee, discount, &billed
	return ev
}

// historyDid returns what the events of order's history did, oldest first.
func historyDid(t *testing.T, store *orderstate.Store, order string) []string {
	t.Helper()
	entries, err := store.History(context.Background(), "shop-a", order)
	if err != nil {
		t.Fatal(err)
	}
	var did []string
	for _, h := range entries {
		did = append(did, h.Did)
	}
	return did
}

// TestOrderBilledZeroAfterTheFeeTableIsInvalid: an order whose goods and shipping are paid by
// points leaves only the mall's fee of 330 to bill, and the shop's table waives the fee: billed 0
// after the table. What ATODENE would be sent is what counts (DESIGN §6): billed 0 is nothing to
// bill, invalid for a new order as one received at 0 is (§5). It was registered with billedAmount
// 0 (credit.ok, billed 0).
func TestOrderBilledZeroAfterTheFeeTableIsInvalid(t *testing.T) {
	t.Parallel()
	store, ctx := newStore(t), context.Background()
	prov := &sentProvider{}
	o := tableOrders(t, store, prov, &flakyOutcomes{}, waiveTable)
	ev := feeOrder(events.TypeOrderCreated, "c-1", "F0-1", 1, 330, 1550)
	if err := ev.Data.Validate("shop-a"); err != nil {
		t.Fatalf("the order is valid input as received: %v", err)
	}
	err := o.OrderCreated(ctx, ev)
	if reason, ok := handlers.DeadLetterReason(err); !ok || reason != handlers.ReasonInvalid {
		t.Fatalf("order.created billed 330, 0 after the fee table: err %v (reason %q), want a dead letter invalid", err, reason)
	}
	if msg := err.Error(); !strings.Contains(msg, "billed_amount") || !strings.Contains(msg, "is 0 after the fee table") {
		t.Errorf("error %q, want it to name billed_amount and say it is 0 after the fee table", msg)
	}
	if st, _ := store.Get(ctx, "shop-a", "F0-1"); len(prov.billed) != 0 || st.Status != orderstate.StatusNone {
		t.Errorf("sent %v, status %q; want nothing sent and no state", prov.billed, st.Status)
	}
}

// TestUpdateBilledZeroAfterTheFeeTableCancels: an order.updated that the fee table brings to 0 is a
// cancel of the live transaction, as one received at 0 is (DESIGN §5, docs/protocol.md#changes-and-cancels).
// The test of 0 came before the table, and the update was sent as a change of 0 yen.
func TestUpdateBilledZeroAfterTheFeeTableCancels(t *testing.T) {
	t.Parallel()
	store, ctx := newStore(t), context.Background()
	prov := &sentProvider{}
	o := tableOrders(t, store, prov, &flakyOutcomes{}, waiveTable)
	handled(t,
		o.OrderCreated(ctx, feeOrder(events.TypeOrderCreated, "c-1", "F0-2", 1, 330, 550)),  // billed 1,330, sent 1,000
		o.OrderUpdated(ctx, feeOrder(events.TypeOrderUpdated, "u-2", "F0-2", 2, 330, 1550))) // billed 330, 0 after the table
	st, _ := store.Get(ctx, "shop-a", "F0-2")
	if st.Status != orderstate.StatusCancelled || prov.calls["cancel"] != 1 || len(prov.billed) != 1 || prov.billed[0] != 1000 {
		t.Errorf("status %q after sending %v and %d cancels; want cancelled, the registration's 1000 alone sent, and one cancel",
			st.Status, prov.billed, prov.calls["cancel"])
	}
	if did := historyDid(t, store, "F0-2"); did[len(did)-1] != "cancelled: billed_amount 0 after the fee table" {
		t.Errorf("history %q; want the update recorded as cancelled: billed_amount 0 after the fee table", did)
	}
}
