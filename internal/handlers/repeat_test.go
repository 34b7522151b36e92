package handlers_test

import (
	"context"
	"testing"
	"time"

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
