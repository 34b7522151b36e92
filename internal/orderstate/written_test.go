package orderstate

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestWrittenTellsEachWrite: Config.Written is told, for each write that stored something, the
// state versions, index entries and history entries it stored: a write that changes nothing the
// index shows writes no index entry, a conflict stores nothing, a history entry on its own and the
// first state written with a lease count too.
func TestWrittenTellsEachWrite(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	var mu sync.Mutex
	var got []Written
	s := NewStore(rdb, Config{Prefix: prefix, EventTTL: time.Hour, Written: func(w Written) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, w)
	}})
	t.Cleanup(s.Close)
	ctx, now := context.Background(), time.Now()
	expect := func(step string, want ...Written) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(got) != len(want) || (len(want) > 0 && got[0] != want[0]) {
			t.Errorf("%s: told %+v, want %+v", step, got, want)
		}
		got = nil
	}

	st := State{Status: StatusOK, TransactionID: "12345678901", History: []Entry{{Type: "order.created", Did: "registered"}}}
	st, err := s.Put(ctx, "shop", "o1", st, now)
	if err != nil {
		t.Fatal(err)
	}
	expect("a new order with a history entry", Written{States: 1, Index: 1, History: 1})

	st.Outbox = []Outcome{{Subject: "credit.ok.shop", MsgID: "m1", Body: []byte(`{}`)}}
	if st, err = s.Put(ctx, "shop", "o1", st, now); err != nil {
		t.Fatal(err)
	}
	expect("an outbox written: nothing the index shows", Written{States: 1})

	stale := st
	stale.Version-- // a write of another time: the same one at now would be taken for a resend
	if _, err := s.Put(ctx, "shop", "o1", stale, now.Add(time.Second)); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale write: %v, want ErrConflict", err)
	}
	expect("a conflict")

	st.Status = StatusPending
	st.History = []Entry{{Type: "poll", Did: "under review"}, {Type: "poll", Did: "on hold"}}
	if _, err = s.Put(ctx, "shop", "o1", st, now); err != nil {
		t.Fatal(err)
	}
	expect("under review, two entries", Written{States: 1, Index: 1, History: 2})

	if err := s.AppendHistory(ctx, "shop", "o1", Entry{Type: "order.created", Did: "dead-lettered"}, 0); err != nil {
		t.Fatal(err)
	}
	expect("a history entry on its own", Written{History: 1})

	l, err := s.AcquireLease(ctx, "shop", "o2", Take{TTL: time.Minute, Now: now, First: &State{Status: StatusNone}})
	if err != nil {
		t.Fatal(err)
	}
	expect("a first state written with the lease", Written{States: 1, Index: 1})
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, "shop", "o2", Take{TTL: time.Minute, Now: now, First: &State{Status: StatusNone}}); err != nil {
		t.Fatal(err)
	}
	expect("a lease of an order that has a state")
}

// TestUnderReview: the count of orders under review (審査中 and 保留, whatever their shipment) of
// the shops asked, and the earliest time one of them was ordered; decided orders and other shops
// do not count, and none under review is a zero time.
func TestUnderReview(t *testing.T) {
	t.Parallel()
	s, ctx, now := newStore(t), context.Background(), time.Now()
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	put := func(shop, order string, st State) {
		t.Helper()
		if _, err := s.Put(ctx, shop, order, st, now); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, want UnderReview, shops ...string) {
		t.Helper()
		got, err := s.UnderReview(ctx, shops...)
		if err != nil || got.Count != want.Count || !got.Oldest.Equal(want.Oldest) {
			t.Errorf("%s: %+v, %v; want %+v", step, got, err, want)
		}
	}
	check("nothing", UnderReview{}, "shop-a", "shop-b")
	put("shop-a", "ok", State{Status: StatusOK, OrderedAt: t0.Add(-48 * time.Hour)})
	put("shop-a", "review", State{Status: StatusPending, OrderedAt: t0.Add(2 * time.Hour)})
	put("shop-a", "hold-queued", State{Status: StatusPending, Review: "hold", OrderedAt: t0.Add(time.Hour),
		Shipment: &Shipment{TrackingNumber: "1234"}})
	put("shop-b", "review", State{Status: StatusPending, OrderedAt: t0})
	put("shop-c", "review", State{Status: StatusPending, OrderedAt: t0.Add(-time.Hour)})
	check("two shops", UnderReview{Count: 3, Oldest: t0}, "shop-a", "shop-b")
	check("shop-a: on hold with a tracking number queued is the oldest", UnderReview{Count: 2, Oldest: t0.Add(time.Hour)}, "shop-a")

	st, err := s.Get(ctx, "shop-b", "review")
	if err != nil {
		t.Fatal(err)
	}
	st.Status = StatusNG
	put("shop-b", "review", st)
	check("shop-b's decided", UnderReview{Count: 2, Oldest: t0.Add(time.Hour)}, "shop-a", "shop-b")
}
