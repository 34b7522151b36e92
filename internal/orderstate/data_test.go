package orderstate

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestOrderDataLivesWhileTheOrderMayBeReauthorized: the order's data is stored with the write that
// holds it, kept (and its expiry moved with the state's) by later writes while the order keeps it,
// and deleted by the write that ships or cancels the order, each in the state's own atomic step.
func TestOrderDataLivesWhileTheOrderMayBeReauthorized(t *testing.T) {
	t.Parallel()
	s, ctx, now := newStore(t), context.Background(), time.Now()
	data := func(want string) {
		t.Helper()
		got, err := s.OrderData(ctx, "shop", "o1")
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("order data %q, want %q", got, want)
		}
	}
	data("") // never stored

	st, err := s.Put(ctx, "shop", "o1", State{Status: StatusOK, TransactionID: "1", AuthorizedAt: now, OrderData: []byte(`{"order_id":"o1"}`)}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !st.HasData || st.OrderData != nil {
		t.Fatalf("written state: HasData %v, OrderData %q; want true and none", st.HasData, st.OrderData)
	}
	data(`{"order_id":"o1"}`)
	if raw, _ := s.rdb.Get(ctx, s.stateKey("shop", "o1")).Result(); raw == "" || strings.Contains(raw, `"order_id"`) {
		t.Fatalf("the state document %q holds the order's data", raw)
	}

	// A later write without data keeps it, with the state's expiry.
	st.Review = "x"
	if st, err = s.Put(ctx, "shop", "o1", st, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	data(`{"order_id":"o1"}`)
	stateTTL, _ := s.rdb.PTTL(ctx, s.stateKey("shop", "o1")).Result()
	dataTTL, _ := s.rdb.PTTL(ctx, s.dataKey("shop", "o1")).Result()
	if dataTTL <= 0 || stateTTL-dataTTL > time.Second || dataTTL-stateTTL > time.Second {
		t.Fatalf("data expires in %s, the state in %s: want the same", dataTTL, stateTTL)
	}

	// A reported shipment ends re-authorization: the data goes with that write.
	st.Shipment = &Shipment{CarrierCode: "1", TrackingNumber: "123", Reported: true}
	if st, err = s.Put(ctx, "shop", "o1", st, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st.HasData {
		t.Fatal("HasData after the shipment's write, want false")
	}
	data("")

	// Data of an OK order approved before data was kept (no AuthorizedAt), or whose
	// re-authorization ended for good, or asked to be dropped, is not kept.
	for name, st := range map[string]State{
		"approved before":     {Status: StatusOK},
		"ended for good":      {Status: StatusOK, AuthorizedAt: now, Reauth: &Reauth{Failed: "ng"}},
		"dropped by the shop": {Status: StatusOK, AuthorizedAt: now, DropData: true},
	} {
		st.OrderData = []byte(`{}`)
		if _, err := s.Put(ctx, "shop", "o-"+name, st, now); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.OrderData(ctx, "shop", "o-"+name); got != nil {
			t.Errorf("%s: data %q kept", name, got)
		}
	}

	// Data given for an order that does not keep it (cancelled) is not stored.
	if _, err := s.Put(ctx, "shop", "o2", State{Status: StatusCancelled, OrderData: []byte(`{}`)}, now); err != nil {
		t.Fatal(err)
	}
	if got, err := s.OrderData(ctx, "shop", "o2"); err != nil || got != nil {
		t.Fatalf("data of a cancelled order: %q, %v; want none", got, err)
	}

	// A write that loses its compare-and-set stores no data.
	stale := State{Version: 7, Status: StatusOK, OrderData: []byte(`{"stale":true}`)}
	if _, err := s.Put(ctx, "shop", "o3", stale, now); err == nil {
		t.Fatal("stale write succeeded")
	}
	if got, _ := s.OrderData(ctx, "shop", "o3"); got != nil {
		t.Fatalf("a losing write stored data %q", got)
	}
}

// TestTimerDueCountsTheReauthorization: an OK order relying on its re-authorization timer is in
// the timer index by that timer, so the reconciler finds it if JetStream loses it.
func TestTimerDueCountsTheReauthorization(t *testing.T) {
	t.Parallel()
	at := time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)
	st := State{Status: StatusOK, Reauth: &Reauth{Scheduled: true, At: at}}
	if due, ok := st.TimerDue(); !ok || !due.Equal(at) {
		t.Fatalf("TimerDue %s %v, want %s", due, ok, at)
	}
	st.ParkTimer = at.Add(-time.Hour)
	if due, ok := st.TimerDue(); !ok || !due.Equal(st.ParkTimer) {
		t.Fatalf("TimerDue %s %v, want the earlier park timer", due, ok)
	}
	if _, ok := (State{Status: StatusOK, Reauth: &Reauth{At: at}}).TimerDue(); ok {
		t.Fatal("a re-authorization not scheduled counts as a timer")
	}
	// One under way relies on its timer whatever the order's status: the reconciler carries it on.
	for _, phase := range []string{ReauthRegistering, ReauthPending} {
		if due, ok := (State{Status: StatusOK, Reauth: &Reauth{Phase: phase, At: at}}).TimerDue(); !ok || !due.Equal(at) {
			t.Fatalf("phase %s: TimerDue %s %v, want %s", phase, due, ok, at)
		}
	}
	shipped := State{Status: StatusOK, Reauth: &Reauth{Scheduled: true, At: at}, Shipment: &Shipment{Reported: true}}
	if _, ok := shipped.TimerDue(); ok {
		t.Fatal("a shipped order relies on its re-authorization timer")
	}
}
