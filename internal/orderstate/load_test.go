package orderstate

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// The bulk loader of states writes what a first write of each state by the scripts writes: the
// state, its index entry, its sets of orders under review and of timers.
func TestLoadStatesWritesTheScriptsLayout(t *testing.T) {
	t.Parallel()
	s, ctx, now := newStore(t), context.Background(), time.Now()
	loaded := New(s.rdb, s.prefix+"loaded:", time.Hour)
	t.Cleanup(loaded.Close)
	states := []State{
		{Status: StatusOK, TransactionID: "11111111111", Fee: 330, BilledAmount: 10330, OrderedAt: now.Add(-time.Hour), Shipment: &Shipment{Reported: true}},
		{Status: StatusPending, TransactionID: "22222222222", PollScheduled: true, PollSeq: 3, PollAt: now.Add(5 * time.Minute), PollSince: now.Add(-time.Minute), OrderedAt: now.Add(-2 * time.Hour)},
		{Status: StatusPending, Review: "hold", OrderedAt: now.Add(-2 * time.Hour), Shipment: &Shipment{}},
		{Status: StatusNG, ShipmentRefused: true, OrderedAt: now.Add(-3 * time.Hour)},
		{Status: StatusCancelled, OrderedAt: now.Add(-4 * time.Hour)},
	}
	var batch []Loaded
	for i, st := range states {
		order := fmt.Sprintf("o%d", i)
		if _, err := s.Put(ctx, "shop", order, st, now); err != nil {
			t.Fatal(err)
		}
		batch = append(batch, Loaded{Shop: "shop", Order: order, State: st, At: now})
	}
	if err := loaded.LoadStates(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for i := range states {
		order := fmt.Sprintf("o%d", i)
		a, err := s.Get(ctx, "shop", order)
		if err != nil {
			t.Fatal(err)
		}
		b, err := loaded.Get(ctx, "shop", order)
		if err != nil {
			t.Fatal(err)
		}
		if b.Epoch == "" {
			t.Errorf("%s: loaded without an epoch", order)
		}
		a.Epoch, b.Epoch = "", ""
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: written by the scripts\n%+v\nloaded\n%+v", order, a, b)
		}
		ta, tb := s.rdb.PTTL(ctx, s.stateKey("shop", order)).Val(), loaded.rdb.PTTL(ctx, loaded.stateKey("shop", order)).Val()
		if d := ta - tb; d < -time.Minute || d > time.Minute {
			t.Errorf("%s: written to expire in %v, loaded in %v", order, ta, tb)
		}
	}
	if a, b := dumpIndex(t, s, "shop"), dumpIndex(t, loaded, "shop"); !equalDumps(a, b) {
		t.Fatalf("index written by the scripts %v\nloaded %v", a, b)
	}
	if a, b := s.rdb.SMembers(ctx, s.pendingKey("shop")).Val(), loaded.rdb.SMembers(ctx, loaded.pendingKey("shop")).Val(); !sameSet(a, b) || len(a) != 2 {
		t.Errorf("under review: written %v, loaded %v", a, b)
	}
	za := s.rdb.ZRangeWithScores(ctx, s.timersKey("shop"), 0, -1).Val()
	zb := loaded.rdb.ZRangeWithScores(ctx, loaded.timersKey("shop"), 0, -1).Val()
	if !reflect.DeepEqual(za, zb) || len(za) != 1 {
		t.Errorf("timers: written %v, loaded %v", za, zb)
	}
	if err := loaded.LoadStates(ctx, []Loaded{{Shop: "a{b}", Order: "o"}}); err == nil {
		t.Error("a shop id with braces loaded")
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	in := map[string]bool{}
	for _, x := range a {
		in[x] = true
	}
	for _, x := range b {
		if !in[x] {
			return false
		}
	}
	return true
}
