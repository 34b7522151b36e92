package handlers_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// A repeat of an order's creation (an importer's retry, or the console's 与信を実行 run again)
// handled before events published before it (docs/lifecycle.md#events-handled-out-of-order).

// TestCancelOlderThanARerunIsStale: the shop registers an order (seq 1), cancels it (与信キャンセル,
// seq 3, written at T+2s) and runs the credit check again (与信を実行: an order.created with the
// order's data, seq 4, written at T+3s). The re-run is handled before the cancel (two handlers,
// two replicas): it finds the order live and does nothing. In stream order the cancel cancels the
// order and the re-run registers it again, so the shop's last word is a live order: the cancel,
// handled last, is stale; no cancel reaches ATODENE. A cancel later than the creation either way
// (later in the stream, or written after it: the creation an importer's late retry of the
// original) still cancels. Replays compare by the sequence the event was first published at, and
// a stream created again is newer whatever its sequences, as for credit_seq.
func TestCancelOlderThanARerunIsStale(t *testing.T) {
	t.Parallel()
	const old, recreated = int64(1_000), int64(2_000) // creation times of ORDERS, and of ORDERS created again
	at := func(s int) time.Time { return orderedAt.Add(time.Duration(s) * time.Second) }
	created := func(id string, seq uint64, written time.Time, stream int64) handlers.Event[events.Order] {
		ev := orderEvent(events.TypeOrderCreated, id, "R-1", seq, written, 2950)
		ev.PublishedCreated = stream
		return ev
	}
	cancel := func(seq uint64, written time.Time, stream int64) func(*env) error {
		return func(e *env) error {
			ev := cancelEvent("x-1", "R-1", seq)
			ev.Time, ev.PublishedCreated = written, stream
			return e.o.OrderCancelled(context.Background(), ev)
		}
	}
	const stale = "no change: older in the stream than the order's creation run again after it"
	for _, tc := range []struct {
		name   string
		rerun  handlers.Event[events.Order]
		cancel func(*env) error // handled after the re-run
		stale  bool             // else the cancel cancels the order
	}{
		{"a cancel published and written before the re-run", created("c-4", 4, at(3), 0), cancel(3, at(2), 0), true},
		{"an update billed 0 published and written before the re-run", created("c-4", 4, at(3), 0), func(e *env) error {
			return e.o.OrderUpdated(context.Background(), orderEvent(events.TypeOrderUpdated, "u-3", "R-1", 3, at(2), 0))
		}, true},
		{"a cancel written at the re-run's time", created("c-4", 4, at(3), 0), cancel(3, at(3), 0), true},
		{"a re-run without a time", created("c-4", 4, time.Time{}, 0), cancel(3, at(2), 0), true},
		{"a replayed cancel first published before the re-run", created("c-4", 4, at(3), 0), func(e *env) error {
			ev := cancelEvent("x-1", "R-1", 9) // a new message, as old as the event it replays
			ev.Published, ev.Time = 3, at(2)
			return e.o.OrderCancelled(context.Background(), ev)
		}, true},
		{"a cancel of the old stream, the re-run of the stream created again", created("c-2", 2, at(3), recreated), cancel(3, at(2), old), true},
		{"a cancel written after the creation (an importer's late retry of it)", created("c-4", 4, at(0), 0), cancel(3, at(2), 0), false},
		{"a cancel later in the stream", created("c-4", 4, at(3), 0), cancel(5, at(2), 0), false},
		{"a cancel of the stream created again, the re-run of the old one", created("c-4", 4, at(3), old), cancel(2, at(2), recreated), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prov := &sentProvider{}
			e, ctx := newEnv(t, prov), context.Background()
			handled(t,
				e.o.OrderCreated(ctx, created("c-1", 1, at(0), old)),
				e.o.OrderCreated(ctx, tc.rerun),
				tc.cancel(e))
			st, _ := e.store.Get(ctx, "shop-a", "R-1")
			want, cancels := orderstate.StatusCancelled, 1
			if tc.stale {
				want, cancels = orderstate.StatusOK, 0
			}
			if st.Status != want || prov.calls["cancel"] != cancels || prov.calls["register"] != 1 ||
				e.published("R-1", events.TypeCreditCancelled) != !tc.stale || e.historyHas(t, "R-1", stale) != tc.stale {
				t.Errorf("status %q after %d registrations and %d cancels (credit.cancelled published: %v); want %q after 1 and %d. History: %+v",
					st.Status, prov.calls["register"], prov.calls["cancel"], e.published("R-1", events.TypeCreditCancelled), want, cancels, e.history(t, "R-1"))
			}
		})
	}
}

// refuses2950 refuses a registration billed 2950 yen, NG or (invalid set) as a request ATODENE
// rejects, and approves any other, recording the amounts sent.
type refuses2950 struct {
	sentProvider
	invalid bool
}

func (p *refuses2950) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	reg, err := p.sentProvider.Register(ctx, req)
	switch {
	case err != nil || req.Order().BilledAmount != 2950:
	case p.invalid:
		return atodene.Registration{}, &atodene.RejectedError{Op: "transaction.do", Errors: []atodene.ProviderError{{Point: "billedAmount", Code: "E0001"}}}
	default:
		reg.Auto = atodene.DecisionNG
	}
	return reg, err
}

// TestRepeatedCreationOfARefusedOrderDoesNotHideItsFix: the shop registers an order (seq 1, 2950
// yen), which ATODENE refuses (NG, or the request rejected: invalid), fixes it (order.updated, seq
// 2, 3950 yen), and the order.created is sent again with the first data (seq 3: an importer's
// retry, or the credit check run again with the data it had). The repeat is handled before the fix
// and finds the refused data: it sends nothing and, as for a live order, is no word on the order's
// data, so the fix, handled last, registers the order at 3950, as in stream order. An order.updated
// with the refused data is the shop's word: the one published before it is stale.
func TestRepeatedCreationOfARefusedOrderDoesNotHideItsFix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		invalid bool
		repeat  string // the type of the event with the refused data handled before the fix
		want    orderstate.Status
		sent    []int64 // billed amounts sent to ATODENE
	}{
		{"NG, order.created again", false, events.TypeOrderCreated, orderstate.StatusOK, []int64{2950, 3950}},
		{"invalid, order.created again", true, events.TypeOrderCreated, orderstate.StatusOK, []int64{2950, 3950}},
		{"NG, order.updated with the refused data", false, events.TypeOrderUpdated, orderstate.StatusNG, []int64{2950}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prov := &refuses2950{invalid: tc.invalid}
			e, ctx := newEnv(t, prov), context.Background()
			refused := orderEvent(tc.repeat, "c-3", "F-1", 3, orderedAt, 2950)
			handle := e.o.OrderCreated
			if tc.repeat == events.TypeOrderUpdated {
				handle = e.o.OrderUpdated
			}
			handled(t,
				e.o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", "F-1", 1, orderedAt, 2950)),
				handle(ctx, refused),
				e.o.OrderUpdated(ctx, orderEvent(events.TypeOrderUpdated, "u-2", "F-1", 2, orderedAt.Add(time.Minute), 3950)))
			st, _ := e.store.Get(ctx, "shop-a", "F-1")
			if st.Status != tc.want || !slices.Equal(prov.billed, tc.sent) || prov.calls["register"] != len(tc.sent) {
				t.Errorf("status %q, billed %d after sending %v; want %q after sending %v. History: %+v",
					st.Status, st.BilledAmount, prov.billed, tc.want, tc.sent, e.history(t, "F-1"))
			}
		})
	}
}
