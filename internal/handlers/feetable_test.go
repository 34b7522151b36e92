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
// is the order after the table, and an edited table is no change of an order's data.

// tableOrders is Orders for shop-a, whose fee table is table and whose calls go to prov, over store,
// with outcomes published to outs.
func tableOrders(t *testing.T, store *orderstate.Store, prov handlers.Provider, outs handlers.Outcomes, table fees.Table) *handlers.Orders {
	t.Helper()
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: table}
	return newOrders(t, handlers.OrdersConfig{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: outs, Polls: &recordedPolls{}, Now: time.Now})
}

// addTable is the common default, mode add with one row 1–999999 → fee.
func addTable(fee int64) fees.Table {
	return fees.Table{Mode: fees.ModeAdd, Rows: []fees.Row{{Min: 1, Max: 999999, Fee: fee}}}
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
// after the table. What ATODENE would be sent is what counts (docs/events.md, credit.*: the amounts sent): billed 0 is nothing to
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
// cancel of the live transaction, as one received at 0 is (docs/events.md, order.updated; docs/protocol.md#changes-and-cancels).
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

// answeringProvider is sentProvider whose registrations are answered answer (an error: refused).
type answeringProvider struct {
	sentProvider
	answer atodene.Decision
	refuse bool
}

func (p *answeringProvider) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	reg, err := p.sentProvider.Register(ctx, req)
	if p.refuse {
		return atodene.Registration{}, &atodene.RejectedError{Op: "transaction.do",
			Errors: []atodene.ProviderError{{Point: "address", Code: "er000200", Message: "住所が不正です"}}}
	}
	reg.Auto = p.answer
	return reg, err
}

// TestEditedFeeTableLeavesUnchangedOrders: the shop's table is edited (add 205, then add 330: the
// shops file changed, the worker restarted) after an order was registered at 2,950 + 205. The
// importer sends the order again with its data unchanged: nothing is called and the order keeps
// the amounts of its transaction, whatever its status (docs/lifecycle.md: changes follow new data; an NG or
// invalid order's unchanged data is not sent again). Same data was the request's hash after the
// table, so the edit alone made new data: an approved transaction re-priced to 3,280, an NG order
// registered again. An order whose data changes gets the table of now.
func TestEditedFeeTableLeavesUnchangedOrders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		prov   *answeringProvider
		status orderstate.Status
		again  string // the type of the event that sends the order again
		did    string
	}{
		{"ok, updated", &answeringProvider{answer: atodene.DecisionOK}, orderstate.StatusOK, events.TypeOrderUpdated, "no change: same data"},
		{"ng, created", &answeringProvider{answer: atodene.DecisionNG}, orderstate.StatusNG, events.TypeOrderCreated, "no change: same data as the request ATODENE answered ng"},
		{"ng, updated", &answeringProvider{answer: atodene.DecisionNG}, orderstate.StatusNG, events.TypeOrderUpdated, "no change: same data as the request ATODENE answered ng"},
		{"invalid, updated", &answeringProvider{refuse: true}, orderstate.StatusInvalid, events.TypeOrderUpdated, "no change: same data as the request ATODENE answered invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store, ctx := newStore(t), context.Background()
			handle := func(o *handlers.Orders, typ, id string, seq uint64, billed int64) error {
				ev := orderEvent(typ, id, "FE-1", seq, orderedAt.Add(time.Duration(seq)*time.Minute), billed)
				if typ == events.TypeOrderCreated {
					return o.OrderCreated(ctx, ev)
				}
				return o.OrderUpdated(ctx, ev)
			}
			handled(t, handle(tableOrders(t, store, tc.prov, &flakyOutcomes{}, addTable(205)), events.TypeOrderCreated, "c-1", 1, 2950))

			edited := tableOrders(t, store, tc.prov, &flakyOutcomes{}, addTable(330))
			handled(t, handle(edited, tc.again, "again-2", 2, 2950))
			st, _ := store.Get(ctx, "shop-a", "FE-1")
			if len(tc.prov.billed) != 1 || st.Status != tc.status || st.Fee != 205 || st.BilledAmount != 3155 {
				t.Errorf("the order sent again unchanged after the table's edit: sent %v, state %q fee %d billed %d; "+
					"want only the registration's 3155 sent and the order %s at fee 205, billed 3155", tc.prov.billed, st.Status, st.Fee, st.BilledAmount, tc.status)
			}
			if did := historyDid(t, store, "FE-1"); did[len(did)-1] != tc.did {
				t.Errorf("history %q; want the last entry %q", did, tc.did)
			}

			// New data gets the table of now: 3,950 + 330.
			handled(t, handle(edited, events.TypeOrderUpdated, "u-3", 3, 3950))
			if st, _ = store.Get(ctx, "shop-a", "FE-1"); len(tc.prov.billed) != 2 || tc.prov.billed[1] != 4280 || st.Fee != 330 {
				t.Errorf("changed data after the table's edit: sent %v, state fee %d; want 4280 sent with fee 330", tc.prov.billed, st.Fee)
			}
		})
	}
}

// TestMallFeeChangeIsNewData: an order whose only change is the mall's fee (and so its billed
// amount) is new data, in a mode that passes the mall's fee on: the change is sent. An edited fee
// table is told from it by the order as received, not by the fee the state records as sent: the
// two look alike after the table (fee 0 + 205 and fee 100 + 105 are both sent as fee 205).
func TestMallFeeChangeIsNewData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		table      fees.Table
		sent       int64 // the change's billed amount
		sentFee    int64
		registered int64
	}{
		{"add", addTable(205), 1000 + 550 + 100 - 0 + 205, 305, 1000 + 550 + 205},
		{"keep", fees.Table{Mode: fees.ModeKeep}, 1000 + 550 + 100, 100, 1000 + 550},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store, ctx := newStore(t), context.Background()
			prov := &sentProvider{}
			o := tableOrders(t, store, prov, &flakyOutcomes{}, tc.table)
			handled(t,
				o.OrderCreated(ctx, feeOrder(events.TypeOrderCreated, "c-1", "FM-1", 1, 0, 0)),
				o.OrderUpdated(ctx, feeOrder(events.TypeOrderUpdated, "u-2", "FM-1", 2, 100, 0)))
			st, _ := store.Get(ctx, "shop-a", "FM-1")
			if len(prov.billed) != 2 || prov.billed[0] != tc.registered || prov.billed[1] != tc.sent || st.Fee != tc.sentFee || st.BilledAmount != tc.sent {
				t.Errorf("sent %v, state fee %d billed %d; want %d then the change's %d, fee %d", prov.billed, st.Fee, st.BilledAmount,
					tc.registered, tc.sent, tc.sentFee)
			}
		})
	}
}
