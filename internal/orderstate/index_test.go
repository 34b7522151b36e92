package orderstate

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// listAll pages through a listing and returns every order, failing on a repeated one.
func listAll(t *testing.T, s *Store, f Filter) []Summary {
	t.Helper()
	var all []Summary
	seen := map[string]bool{}
	for page := 0; ; page++ {
		p, err := s.ListOrders(context.Background(), f)
		if err != nil {
			t.Fatalf("page %d of %+v: %v", page, f, err)
		}
		for _, o := range p.Orders {
			if seen[o.OrderID] {
				t.Fatalf("page %d of %+v repeats %s", page, f, o.OrderID)
			}
			seen[o.OrderID] = true
		}
		all = append(all, p.Orders...)
		if p.Next == "" {
			return all
		}
		if page > 10000 {
			t.Fatal("the listing does not end")
		}
		f.Cursor = p.Next
	}
}

func ids(orders []Summary) []string {
	out := make([]string, len(orders))
	for i, o := range orders {
		out[i] = o.OrderID
	}
	return out
}

// wantSummary is what the index should hold of a state as written.
func wantSummary(shop, order string, st State) Summary {
	return Summary{Shop: shop, OrderID: order, Status: st.Status, Review: st.Review, Shipment: st.ShipmentStatus(),
		TransactionID: st.TransactionID, Fee: st.Fee, BilledAmount: st.BilledAmount,
		OrderedAt: time.UnixMilli(st.OrderedAt.UnixMilli()).UTC(), ChangedAt: time.UnixMilli(st.ChangedAt.UnixMilli()).UTC()}
}

// only returns the one order a shop's listing has, by its id.
func only(t *testing.T, s *Store, shop, order string) (Summary, bool) {
	t.Helper()
	p, err := s.ListOrders(context.Background(), Filter{Shop: shop, OrderIDPrefix: order})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range p.Orders {
		if o.OrderID == order {
			return o, true
		}
	}
	return Summary{}, false
}

// The index follows each transition of an order as the handlers write it: the intent written
// with the lease, then compare-and-set writes and the commit.
func TestIndexFollowsEveryTransition(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t), context.Background()
	ordered := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
	now := time.Now().Truncate(time.Millisecond)
	first := State{Status: StatusRegistering, Fee: 330, BilledAmount: 10330, OrderedAt: ordered}
	l, err := s.AcquireLease(ctx, "shop", "o1", Take{EventKey: "k1", TTL: time.Minute, First: &first, Now: now})
	if err != nil || !l.Created {
		t.Fatalf("lease with the intent: %+v, %v", l, err)
	}
	want := wantSummary("shop", "o1", l.State)
	if got, ok := only(t, s, "shop", "o1"); !ok || got != want {
		t.Fatalf("after the intent: %+v, %v; want %+v", got, ok, want)
	}
	st := l.State
	step := func(name string, change func(*State), wantBucket Bucket, wantShip ShipmentStatus) {
		t.Helper()
		now = now.Add(time.Second)
		change(&st)
		next, err := s.Put(ctx, "shop", "o1", st, now)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		st = next
		got, ok := only(t, s, "shop", "o1")
		if want := wantSummary("shop", "o1", st); !ok || got != want {
			t.Fatalf("%s: listed %+v, %v; want %+v", name, got, ok, want)
		}
		if got.Bucket() != wantBucket || got.Shipment != wantShip {
			t.Fatalf("%s: filed under %s/%s, want %s/%s", name, got.Bucket(), got.Shipment, wantBucket, wantShip)
		}
		counts, err := s.CountOrders(ctx, "shop")
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range Buckets {
			if n := counts[b]; (b == wantBucket) != (n == 1) || n > 1 {
				t.Fatalf("%s: counts %v, want one order under %s", name, counts, wantBucket)
			}
		}
		p, err := s.ListOrders(ctx, Filter{Shop: "shop", Status: got.Status, Shipment: wantShip})
		if err != nil || len(p.Orders) != 1 {
			t.Fatalf("%s: filtered by its status and shipment: %+v, %v", name, p, err)
		}
	}
	step("pending", func(st *State) { st.Status, st.TransactionID = StatusPending, "12345678901" }, BucketReview, ShipmentNone)
	step("tracking number queued", func(st *State) { st.Shipment = &Shipment{CarrierCode: "11", TrackingNumber: "1234"} }, BucketReview, ShipmentQueued)
	step("on hold", func(st *State) { st.Review = "hold" }, BucketHold, ShipmentQueued)
	step("ok, shipment reported", func(st *State) {
		st.Status, st.Review, st.Shipment.Reported = StatusOK, "", true
		st.Outbox = []Outcome{{Subject: "credit.ok.shop"}, {Subject: "shipment.ok.shop"}}
	}, BucketOK, ShipmentReported)
	step("published", func(st *State) { st.Outbox = nil }, BucketOK, ShipmentReported)
	step("a change of the tracking number refused", func(st *State) {
		st.Outbox = []Outcome{{Subject: "shipment.ng.shop"}}
	}, BucketOK, ShipmentRefused)
	step("published again", func(st *State) { st.Outbox = nil }, BucketOK, ShipmentRefused)
	step("a new tracking number reported", func(st *State) {
		st.Outbox = []Outcome{{Subject: "shipment.ok.shop"}}
	}, BucketOK, ShipmentReported)
	step("changed to NG", func(st *State) { st.Status, st.Fee, st.BilledAmount = StatusNG, 0, 5000 }, BucketNG, ShipmentReported)
	step("cancelled", func(st *State) { st.Status, st.Shipment = StatusCancelled, nil }, BucketCancelled, ShipmentNone)
	step("invalid", func(st *State) { st.Status = StatusInvalid }, BucketInvalid, ShipmentNone)
	step("unknown", func(st *State) { st.Status = StatusUnknown }, BucketUnknown, ShipmentNone)
	step("returned to none", func(st *State) { st.Status = StatusNone }, BucketNone, ShipmentNone)
	// The commit (the last write, which releases the lease) writes the index too.
	st.Status = StatusOK
	now = now.Add(time.Second)
	if _, _, err := l.Commit(ctx, Commit{State: &st, Done: true}, now); err != nil {
		t.Fatal(err)
	}
	if got, _ := only(t, s, "shop", "o1"); got.Status != StatusOK || !got.ChangedAt.Equal(now) || !got.OrderedAt.Equal(ordered) {
		t.Fatalf("after the commit: %+v", got)
	}
	// A commit that writes no state leaves the entry as it is.
	l, err = s.AcquireLease(ctx, "shop", "o1", Take{TTL: time.Minute, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	before := dumpIndex(t, s, "shop")
	if _, _, err := l.Commit(ctx, Commit{Entries: []Entry{{Type: "order.created", Did: "no change"}}}, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if after := dumpIndex(t, s, "shop"); !equalDumps(before, after) {
		t.Fatalf("a commit without a state changed the index: %v → %v", before, after)
	}
}

// An order known first by an event parked for it (a state of status none, without an ordered
// time) is listed from the time the index first saw it, until its intent brings its ordered_at.
func TestIndexOrderedTimeOfAnOrderWithoutOne(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t), context.Background()
	seen := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	st, err := s.Put(ctx, "shop", "o1", State{Parked: []Parked{{Type: "order.tracking_entered", Key: "k"}}}, seen)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := only(t, s, "shop", "o1"); got.Status != StatusNone || !got.OrderedAt.Equal(seen) {
		t.Fatalf("an order known by a parked event: %+v; want status none, ordered at %v", got, seen)
	}
	if st, err = s.Put(ctx, "shop", "o1", st, seen.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := only(t, s, "shop", "o1"); !got.OrderedAt.Equal(seen) {
		t.Fatalf("a second write without an ordered time: %+v; want it kept at %v", got, seen)
	}
	ordered := seen.Add(-24 * time.Hour)
	st.Status, st.OrderedAt = StatusRegistering, ordered
	if _, err = s.Put(ctx, "shop", "o1", st, seen.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := only(t, s, "shop", "o1"); !got.OrderedAt.Equal(ordered) {
		t.Fatalf("after the intent: %+v; want ordered at %v", got, ordered)
	}
}

// indexDump is everything a shop's index holds: per order, its two scores, whether it is in the
// id set, and its summary.
type indexDump map[string]string

func dumpIndex(t *testing.T, s *Store, shop string) indexDump {
	t.Helper()
	ctx, keys := context.Background(), s.indexKeys(shop)
	out := indexDump{}
	add := func(id, what string) { out[id] += what + ";" }
	for i, name := range []string{"changed", "ordered", "id"} {
		zs, err := s.rdb.ZRangeWithScores(ctx, keys[i], 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range zs {
			add(z.Member.(string), name+"="+strconv.FormatFloat(z.Score, 'f', -1, 64))
		}
	}
	sums, err := s.rdb.HGetAll(ctx, keys[3]).Result()
	if err != nil {
		t.Fatal(err)
	}
	for id, v := range sums {
		add(id, "summary="+v)
	}
	return out
}

func equalDumps(a, b indexDump) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkIndexMatchesStates fails unless a shop's index holds exactly the orders that have a state,
// each filed as its state says.
func checkIndexMatchesStates(t *testing.T, s *Store, shop string) int {
	t.Helper()
	ctx := context.Background()
	want := map[string]Summary{}
	err := s.scanAll(ctx, s.stateKey(shop, "*"), func(key string) error {
		order := strings.TrimPrefix(key, s.stateKey(shop, ""))
		st, err := s.Get(ctx, shop, order)
		want[order] = wantSummary(shop, order, st)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got := listAll(t, s, Filter{Shop: shop, Limit: MaxLimit})
	if len(got) != len(want) {
		t.Fatalf("the index lists %d orders, %d have a state", len(got), len(want))
	}
	for _, o := range got {
		if w, ok := want[o.OrderID]; !ok || o != w {
			t.Errorf("order %s: listed %+v, its state says %+v", o.OrderID, o, want[o.OrderID])
		}
	}
	if d := dumpIndex(t, s, shop); len(d) != len(want) {
		t.Errorf("the index keys hold %d orders, %d have a state", len(d), len(want))
	}
	return len(want)
}

// A write that fails leaves both the state and the index as they were: a compare-and-set that
// loses, a script refused for its arguments before its first write, and a lease taken while
// another handler holds it.
func TestIndexUntouchedByAFailedWrite(t *testing.T) {
	t.Parallel()
	s, ctx, now := newStore(t), context.Background(), time.Now()
	st, err := s.Put(ctx, "shop", "o1", State{Status: StatusPending, OrderedAt: now.Add(-time.Hour)}, now)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := s.rdb.Get(ctx, s.stateKey("shop", "o1")).Result()
	before := dumpIndex(t, s, "shop")
	unchanged := func(what string) {
		t.Helper()
		if after := dumpIndex(t, s, "shop"); !equalDumps(before, after) {
			t.Errorf("%s changed the index: %v → %v", what, before, after)
		}
		if got, _ := s.rdb.Get(ctx, s.stateKey("shop", "o1")).Result(); got != stored {
			t.Errorf("%s changed the state", what)
		}
	}
	stale := st
	stale.Version, stale.Status = 0, StatusOK
	if _, err := s.Put(ctx, "shop", "o1", stale, now.Add(time.Second)); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale write: %v, want ErrConflict", err)
	}
	unchanged("a losing compare-and-set")

	// The script checks its arguments before it writes anything: Redis would not undo the writes
	// of a script that fails halfway.
	keys := append([]string{s.stateKey("shop", "o1"), s.pendingKey("shop"), s.leaseKey("shop", "o1"), s.eventKey("shop", ""),
		s.historyKey("shop", "o1"), s.inboxKey("shop", "o1"), s.timersKey("shop")}, s.indexKeys("shop")...)
	keys = append(keys, s.dataKey("shop", "o1"))
	args := []any{st.Version, `{"version":2}`, "shop:o1", "0", "", "", HistoryLimit, "", "", "", "", "0",
		"not a number", "o1", "1", "", "{}", "", "", "", `{"did":"x"}`}
	if err := s.batch.run(ctx, writeScript, keys, args...).Err(); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("write with a malformed retention: %v, want it refused", err)
	}
	unchanged("a script refused for its arguments")

	l, err := s.AcquireLease(ctx, "shop", "o2", Take{TTL: time.Minute, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	first := State{Status: StatusRegistering}
	if _, err := s.AcquireLease(ctx, "shop", "o2", Take{TTL: time.Minute, First: &first, Now: now}); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second lease: %v", err)
	}
	unchanged("a lease refused")
	_ = l.Release(ctx)
}

// Redis killed (SIGKILL) while writers run, then started again from its append-only file: each
// state written is in the index as it says, and the index lists no order without a state. A
// script's effects reach the file as one transaction, so none is half there.
func TestIndexSurvivesARedisCrash(t *testing.T) {
	t.Parallel()
	srv := testenv.StartPrivateRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	s := New(rdb, "crash:", time.Hour)
	t.Cleanup(s.Close)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	writes := 0
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for ctx.Err() == nil {
				order := fmt.Sprintf("o%d", rng.IntN(200))
				st, err := s.Get(ctx, "shop", order)
				if err != nil {
					continue
				}
				st.Status = []Status{StatusOK, StatusNG, StatusPending, StatusCancelled}[rng.IntN(4)]
				st.OrderedAt = time.Now().Add(-time.Hour)
				if _, err := s.Put(ctx, "shop", order, st, time.Now()); err == nil {
					mu.Lock()
					writes++
					mu.Unlock()
				}
			}
		}()
	}
	for {
		mu.Lock()
		n := writes
		mu.Unlock()
		if n >= 500 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.Stop() // SIGKILL, in the middle of the writes
	cancel()
	wg.Wait()
	// A write its writer gave up on may still be queued in the store's batcher; sent after the
	// restart, it would land between the check's two reads. Closed, the store sends it now, to
	// the stopped server, and its client is closed too: a send still dialling when Close gives
	// up waiting for it (a loaded machine) fails instead of reaching the restarted server.
	s.Close()
	rdb.Close()
	srv.Start()
	rdb = redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	check := New(rdb, "crash:", time.Hour)
	t.Cleanup(check.Close)
	if n := checkIndexMatchesStates(t, check, "shop"); n == 0 {
		t.Fatal("no state survived the restart")
	}
}

// Concurrent writers: many on one order (a compare-and-set race each round), and many orders at
// once. The index ends as the states end.
func TestIndexWithConcurrentWriters(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t), context.Background()
	statuses := []Status{StatusRegistering, StatusOK, StatusNG, StatusPending, StatusCancelled, StatusInvalid}
	var written sync.Map
	writer := func(orders []string, seed uint64, rounds int) {
		rng := rand.New(rand.NewPCG(seed, 2))
		for range rounds {
			order := orders[rng.IntN(len(orders))]
			for {
				st, err := s.Get(ctx, "shop", order)
				if err != nil {
					t.Error(err)
					return
				}
				st.Status = statuses[rng.IntN(len(statuses))]
				st.Review = ""
				if st.Status == StatusPending && rng.IntN(2) == 0 {
					st.Review = "hold"
				}
				if rng.IntN(3) == 0 {
					st.Shipment = &Shipment{Reported: rng.IntN(2) == 0}
				}
				st.Fee, st.OrderedAt = int64(rng.IntN(1000)), time.Date(2026, 11, 1+rng.IntN(28), 0, 0, 0, 0, time.UTC)
				_, err = s.Put(ctx, "shop", order, st, time.Now())
				if err == nil {
					written.Store(order, true)
					break
				}
				if !errors.Is(err, ErrConflict) {
					t.Error(err)
					return
				}
			}
		}
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(2)
		go func() { defer wg.Done(); writer([]string{"hot"}, uint64(w), 30) }()
		many := make([]string, 40)
		for i := range many {
			many[i] = fmt.Sprintf("w%d-o%d", w%2, i) // two groups of orders, each shared by four writers
		}
		go func() { defer wg.Done(); writer(many, uint64(100+w), 60) }()
	}
	wg.Wait()
	want := 0
	written.Range(func(any, any) bool { want++; return true })
	if n := checkIndexMatchesStates(t, s, "shop"); n != want || n < 60 {
		t.Fatalf("%d orders in the index, %d written", n, want)
	}
}

// Paging while orders change: no order is listed twice, and every order that stays where it was
// in the sort is listed once. Sorted by time ordered, the position of an order never changes, so
// every order is listed exactly once however often it is written meanwhile.
func TestListPagesWhileOrdersChange(t *testing.T) {
	t.Parallel()
	for _, sort := range []SortKey{SortChanged, SortOrdered} {
		t.Run(string(sort), func(t *testing.T) {
			t.Parallel()
			s, ctx := newStore(t), context.Background()
			rng := rand.New(rand.NewPCG(7, 7))
			base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
			states := map[string]State{}
			var orders []string
			for i := range 300 {
				order := fmt.Sprintf("o%03d", i)
				// Many share a time, so that the cursor's tie-breaking by id is exercised.
				at := base.Add(time.Duration(i/4) * time.Millisecond)
				st, err := s.Put(ctx, "shop", order, State{Status: StatusOK, OrderedAt: at}, at)
				if err != nil {
					t.Fatal(err)
				}
				states[order], orders = st, append(orders, order)
			}
			changed := map[string]bool{}
			seen := map[string]int{}
			f := Filter{Shop: "shop", Sort: sort, Limit: 7}
			for {
				p, err := s.ListOrders(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range p.Orders {
					seen[o.OrderID]++
				}
				// Between pages, five orders are written: status and time changed move.
				for range 5 {
					order := orders[rng.IntN(len(orders))]
					st := states[order]
					st.Status = []Status{StatusOK, StatusNG, StatusCancelled}[rng.IntN(3)]
					next, err := s.Put(ctx, "shop", order, st, time.Now())
					if err != nil {
						t.Fatal(err)
					}
					states[order], changed[order] = next, true
				}
				if p.Next == "" {
					break
				}
				f.Cursor = p.Next
			}
			for _, order := range orders {
				n := seen[order]
				switch {
				case n > 1:
					t.Errorf("%s listed %d times", order, n)
				case n == 0 && (sort == SortOrdered || !changed[order]):
					t.Errorf("%s (changed meanwhile: %v) was not listed", order, changed[order])
				}
			}
		})
	}
}

// TestListPagesThroughMoreTiesThanTheBudget: more orders share one time than a call may look at (an
// importer that sends its orders' dates at midnight, a batch stamped with one time), in two cells.
// A page starts past the cursor's ties listed already instead of reading them again against the
// budget, where it ended where it began, or before, and the listing never ended (with 3,200 orders
// of one time, `publisher order export` looped on its second page). Every order is listed once, in
// both sorts and at any page size.
func TestListPagesThroughMoreTiesThanTheBudget(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t), context.Background()
	s.listBudget, s.gatherLimit = 5, 0
	at := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	const n = 40
	for i := range n {
		st := State{Status: []Status{StatusOK, StatusNG}[i%2], OrderedAt: at}
		if _, err := s.Put(ctx, "shop", fmt.Sprintf("T-%02d", i), st, at); err != nil {
			t.Fatal(err)
		}
	}
	for _, sort := range []SortKey{SortChanged, SortOrdered} {
		for _, limit := range []int{1, 3, 50} {
			if got := listAll(t, s, Filter{Shop: "shop", Sort: sort, Limit: limit}); len(got) != n {
				t.Errorf("by %s, %d a page: %d orders listed, want %d", sort, limit, len(got), n)
			}
		}
	}
}

// TestAllOrdersInTheListingsSort: AllOrders, which reads by time ordered, returns the orders in the
// order the listing pages them, by either sort, filters applied; more than its bound is an error.
func TestAllOrdersInTheListingsSort(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t), context.Background()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 30 {
		// Ordered and changed in different orders, with ties in both.
		st := State{Status: []Status{StatusOK, StatusNG, StatusCancelled}[i%3], OrderedAt: base.Add(time.Duration(i/2) * time.Millisecond)}
		if _, err := s.Put(ctx, "shop", fmt.Sprintf("A-%02d", (i*7)%30), st, base.Add(time.Duration((29-i)/3)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []Filter{{Shop: "shop"}, {Shop: "shop", Sort: SortOrdered}, {Shop: "shop", Status: StatusNG}, {Shop: "shop", OrderIDPrefix: "A-1"}} {
		want := listAll(t, s, Filter{Shop: f.Shop, Sort: f.Sort, Status: f.Status, OrderIDPrefix: f.OrderIDPrefix, Limit: 4})
		got, err := s.AllOrders(ctx, f, 0)
		if err != nil || !slices.EqualFunc(got, want, func(a, b Summary) bool { return a.OrderID == b.OrderID }) {
			t.Errorf("%+v: AllOrders %v (%v); the listing pages %v", f, ids(got), err, ids(want))
		}
	}
	if _, err := s.AllOrders(ctx, Filter{Shop: "shop"}, 29); !errors.Is(err, ErrTooManyOrders) {
		t.Errorf("30 orders, at most 29: %v, want ErrTooManyOrders", err)
	}
}

// TestCursorOfItsListingOnly: a cursor goes on with the listing it was made for, at any page size;
// given to a listing of other filters it is refused, where it would start that listing at a
// position that means nothing there. A cursor made before cursors named their listing is taken.
func TestCursorOfItsListingOnly(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t), context.Background()
	at := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 4 {
		if _, err := s.Put(ctx, "shop", fmt.Sprintf("C-%d", i), State{Status: StatusOK, OrderedAt: at}, at.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	f := Filter{Shop: "shop", Status: StatusOK, Limit: 1}
	first, err := s.ListOrders(ctx, f)
	if err != nil || first.Next == "" {
		t.Fatalf("first page: %+v, %v", first, err)
	}
	f.Cursor, f.Limit = first.Next, 2
	if p, err := s.ListOrders(ctx, f); err != nil || len(p.Orders) != 2 || p.Orders[0].OrderID != "C-2" {
		t.Errorf("the next page, 2 orders: %v (%v), want C-2 and C-1", ids(p.Orders), err)
	}
	other := Filter{Shop: "shop", OrderIDPrefix: "C-", Cursor: first.Next}
	if _, err := s.ListOrders(ctx, other); !errors.Is(err, ErrFilter) || !strings.Contains(err.Error(), "other filters") {
		t.Errorf("the cursor in a listing of other filters: %v, want ErrFilter naming them", err)
	}
	c, _ := decodeCursor(first.Next)
	v1 := base64.RawURLEncoding.EncodeToString([]byte("1|changed|" + strconv.FormatInt(c.ms, 10) + "|" + c.id))
	if p, err := s.ListOrders(ctx, Filter{Shop: "shop", Cursor: v1}); err != nil || len(p.Orders) != 3 {
		t.Errorf("a cursor of version 1: %v (%v), want the 3 orders after it", ids(p.Orders), err)
	}
}

// TestAllOrdersWhileAnOrderMoves: while AllOrders reads its pages by time ordered, the oldest order,
// not read yet, is written with a later time ordered (an order.updated changing ordered_at): it
// moves among the orders read already, and paging alone would leave it out. It is in the answer,
// once, as last written; so is an order that moves the other way, which paging reads twice.
func TestAllOrdersWhileAnOrderMoves(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	s := New(rdb, prefix, time.Hour)
	t.Cleanup(s.Close)
	s.listBudget, s.gatherLimit = 5, 0 // pages of 5 at most
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	const n = 20
	for i := range n {
		at := base.Add(time.Duration(i) * time.Second)
		if _, err := s.Put(ctx, "shop", fmt.Sprintf("M-%02d", i), State{Status: StatusOK, OrderedAt: at}, at); err != nil {
			t.Fatal(err)
		}
	}
	move := func(order string, orderedAt time.Time) {
		st, err := s.Get(ctx, "shop", order)
		if err == nil {
			st.OrderedAt = orderedAt
			_, err = s.Put(ctx, "shop", order, st, time.Now())
		}
		if err != nil {
			t.Error(err)
		}
	}
	page := func(cmd redis.Cmder) bool { args := cmd.Args(); return len(args) > 1 && args[1] == listScript.Hash() }
	hook := testenv.AfterCommand(rdb, page, func() {
		move("M-00", base.Add(time.Hour))  // from the pages to come to those read
		move("M-19", base.Add(-time.Hour)) // from the page read to those to come
	})
	hook.Arm()
	all, err := s.AllOrders(ctx, Filter{Shop: "shop", Sort: SortOrdered}, 0)
	if err != nil || !hook.Fired() {
		t.Fatalf("AllOrders: %v (the orders moved after its first page: %v)", err, hook.Fired())
	}
	got := ids(all)
	if len(got) != n || got[0] != "M-00" || got[n-1] != "M-19" {
		t.Errorf("AllOrders by time ordered: %v; want the %d orders once each, M-00 first and M-19 last as moved", got, n)
	}
}

// ListOrders answers each filter, and combinations, as a model of the orders does, page by page,
// by both paths of a prefix and with a budget small enough to end pages early.
func TestListFilters(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	now := time.Now().Truncate(time.Millisecond)
	s := NewStore(rdb, Config{Prefix: prefix, Retention: 30 * 24 * time.Hour, Now: func() time.Time { return now }})
	t.Cleanup(s.Close)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var model []Summary
	day := 24 * time.Hour
	for i := range 400 {
		order := fmt.Sprintf("%s-%04d", []string{"A1", "A2", "B1", "C"}[i%4], i)
		st := State{Status: []Status{StatusNone, StatusRegistering, StatusOK, StatusOK, StatusOK, StatusNG, StatusPending, StatusCancelled, StatusInvalid, StatusUnknown}[rng.IntN(10)],
			TransactionID: fmt.Sprint(10000000000 + i), Fee: int64(i), BilledAmount: int64(1000 + i),
			OrderedAt: now.Add(-time.Duration(rng.IntN(40*24)) * time.Hour)}
		if st.Status == StatusPending && rng.IntN(3) == 0 {
			st.Review = "hold"
		}
		switch rng.IntN(4) {
		case 1:
			st.Shipment = &Shipment{TrackingNumber: "1"}
		case 2:
			st.Shipment = &Shipment{TrackingNumber: "1", Reported: true}
		case 3:
			st.ShipmentRefused = true
		}
		changedAt := st.OrderedAt.Add(time.Duration(rng.IntN(72)) * time.Hour)
		if i%10 == 0 || changedAt.After(now) {
			changedAt = now.Add(-time.Duration(i) * time.Millisecond) // recent, some sharing a time
		}
		written, err := s.Put(ctx, "shop", order, st, changedAt)
		if err != nil {
			t.Fatal(err)
		}
		if changedAt.After(now.Add(-30 * day)) { // older ones are past the retention
			model = append(model, wantSummary("shop", order, written))
		}
	}
	// An order of another shop is never listed.
	if _, err := s.Put(ctx, "other", "A1-0000", State{Status: StatusOK}, now); err != nil {
		t.Fatal(err)
	}
	expect := func(f Filter) []Summary {
		var out []Summary
		for _, o := range model {
			in := func(t, from, to time.Time) bool {
				return (from.IsZero() || !t.Before(from.Truncate(time.Millisecond))) && (to.IsZero() || t.Before(to))
			}
			switch {
			case f.Status == StatusNoneFilter && o.Status != StatusNone,
				f.Status != "" && f.Status != StatusNoneFilter && o.Status != f.Status,
				f.Hold == HoldReview && o.Bucket() != BucketReview,
				f.Hold == HoldOnHold && o.Bucket() != BucketHold,
				f.Shipment != "" && o.Shipment != f.Shipment,
				!in(o.OrderedAt, f.OrderedFrom, f.OrderedTo),
				!in(o.ChangedAt, f.ChangedFrom, f.ChangedTo),
				!strings.HasPrefix(o.OrderID, f.OrderIDPrefix):
				continue
			}
			out = append(out, o)
		}
		slices.SortFunc(out, func(a, b Summary) int {
			ta, tb := a.ChangedAt, b.ChangedAt
			if f.Sort == SortOrdered {
				ta, tb = a.OrderedAt, b.OrderedAt
			}
			if c := tb.Compare(ta); c != 0 {
				return c
			}
			return bytes.Compare([]byte(b.OrderID), []byte(a.OrderID))
		})
		return out
	}
	filters := map[string]Filter{
		"all":                       {},
		"status ok":                 {Status: StatusOK},
		"status pending":            {Status: StatusPending},
		"pending under review":      {Status: StatusPending, Hold: HoldReview},
		"on hold":                   {Hold: HoldOnHold},
		"status none":               {Status: StatusNoneFilter},
		"shipment reported":         {Shipment: ShipmentReported},
		"shipment refused":          {Shipment: ShipmentRefused},
		"ok and queued":             {Status: StatusOK, Shipment: ShipmentQueued},
		"ordered in a week":         {OrderedFrom: now.Add(-14 * day), OrderedTo: now.Add(-7 * day)},
		"ordered in a week, sorted": {OrderedFrom: now.Add(-14 * day), OrderedTo: now.Add(-7 * day), Sort: SortOrdered},
		"changed in a week":         {ChangedFrom: now.Add(-10 * day), ChangedTo: now.Add(-3 * day)},
		"changed, sorted ordered":   {ChangedFrom: now.Add(-10 * day), Sort: SortOrdered},
		"prefix":                    {OrderIDPrefix: "A"},
		"prefix of one":             {OrderIDPrefix: "A1-0004"},
		"prefix and status":         {OrderIDPrefix: "B1", Status: StatusOK},
		"everything":                {Status: StatusOK, Shipment: ShipmentReported, OrderedFrom: now.Add(-30 * day), ChangedTo: now.Add(-day), OrderIDPrefix: "A"},
		"no match":                  {OrderIDPrefix: "Z"},
		"empty range":               {OrderedFrom: now.Add(-90 * day), OrderedTo: now.Add(-60 * day)},
	}
	for _, bounds := range []struct {
		name                string
		budget, exact, page int
	}{{"defaults", listBudget, gatherLimit, 0}, {"small pages", listBudget, gatherLimit, 3}, {"walked prefixes, small budget", 5, 0, 4}, {"gathered or walked", listBudget, 50, 5}} {
		t.Run(bounds.name, func(t *testing.T) {
			s := *s
			s.listBudget, s.gatherLimit = bounds.budget, bounds.exact
			for name, f := range filters {
				f.Shop, f.Limit = "shop", bounds.page
				want := expect(f)
				got := listAll(t, &s, f)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: listed %d %v,\nwant %d %v", name, len(got), ids(got), len(want), ids(want))
				}
			}
		})
	}
	counts, err := s.CountOrders(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range Buckets {
		want := 0
		for _, o := range model {
			if o.Bucket() == b {
				want++
			}
		}
		if counts[b] != int64(want) {
			t.Errorf("count of %s: %d, want %d", b, counts[b], want)
		}
	}
}

// Orders past the retention are hidden at once, and leave the index when their shop's writes or
// TrimIndex reach them; their states and histories expire one retention after they last changed.
func TestIndexRetention(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	now := time.Now().Truncate(time.Millisecond)
	clock := func() time.Time { return now }
	s := NewStore(rdb, Config{Prefix: prefix, Retention: time.Hour, Now: clock})
	t.Cleanup(s.Close)
	ctx := context.Background()
	for i := range 6 {
		if _, err := s.Put(ctx, "shop", fmt.Sprintf("old%d", i), State{Status: StatusOK, History: []Entry{{Did: "registered"}}}, now.Add(-2*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Put(ctx, "shop", "old-ng", State{Status: StatusNG}, now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, s, Filter{Shop: "shop"}); len(got) != 0 {
		t.Fatalf("orders past the retention listed: %v", ids(got))
	}
	if counts, _ := s.CountOrders(ctx, "shop"); counts[BucketOK] != 0 || counts[BucketNG] != 0 {
		t.Fatalf("orders past the retention counted: %v", counts)
	}
	// The state and history expire one retention after the write (Redis's clock).
	for _, key := range []string{s.stateKey("shop", "old0"), s.historyKey("shop", "old0")} {
		if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
			t.Errorf("%s expires in %v, want one retention (1h)", key, ttl)
		}
	}
	// A write to a cell trims up to two of its orders past the retention.
	if _, err := s.Put(ctx, "shop", "new", State{Status: StatusOK}, now); err != nil {
		t.Fatal(err)
	}
	if n := len(dumpIndex(t, s, "shop")); n != 6 {
		t.Fatalf("after one write the index holds %d orders, want 6: the new one, and 5 of the 7 old", n)
	}
	n, err := s.TrimIndex(ctx, "shop", 2)
	if err != nil || n != 2 {
		t.Fatalf("trim of at most 2: %d, %v", n, err)
	}
	if n, err = s.TrimIndex(ctx, "shop", 100); err != nil || n != 3 {
		t.Fatalf("trim of the rest: %d, %v; want 3", n, err)
	}
	if d := dumpIndex(t, s, "shop"); len(d) != 1 || d["new"] == "" {
		t.Fatalf("after the trim the index holds %v, want only the new order", d)
	}
	if got := listAll(t, s, Filter{Shop: "shop"}); len(got) != 1 || got[0].OrderID != "new" {
		t.Fatalf("listed %v", ids(got))
	}
	// AppendHistory for an order with a state gives its history the retention too.
	if err := s.AppendHistory(ctx, "shop", "new", Entry{Did: "dead-lettered"}, 0); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, s.historyKey("shop", "new")).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("history appended on its own expires in %v, want 1h", ttl)
	}
}

// The bulk loader writes what the state scripts write.
func TestLoadIndexWritesTheScriptsLayout(t *testing.T) {
	t.Parallel()
	s, ctx, now := newStore(t), context.Background(), time.Now()
	var written []Summary
	for i, st := range []State{
		{Status: StatusOK, TransactionID: "11111111111", Fee: 330, BilledAmount: 10330, OrderedAt: now.Add(-time.Hour), Shipment: &Shipment{Reported: true}},
		{Status: StatusPending, Review: "hold", OrderedAt: now.Add(-2 * time.Hour), Shipment: &Shipment{}},
		{Status: StatusNG, ShipmentRefused: true, OrderedAt: now.Add(-3 * time.Hour)},
		{Status: StatusNone},
	} {
		next, err := s.Put(ctx, "shop", fmt.Sprintf("o%d", i), st, now)
		if err != nil {
			t.Fatal(err)
		}
		written = append(written, wantSummary("shop", fmt.Sprintf("o%d", i), next))
	}
	written[3].OrderedAt = written[3].ChangedAt
	loaded := New(s.rdb, s.prefix+"loaded:", 0)
	t.Cleanup(loaded.Close)
	if err := loaded.LoadIndex(ctx, written); err != nil {
		t.Fatal(err)
	}
	if a, b := dumpIndex(t, s, "shop"), dumpIndex(t, loaded, "shop"); !equalDumps(a, b) {
		t.Fatalf("written by the scripts %v\nloaded %v", a, b)
	}
}

// An invalid filter is refused with an error naming each field at fault.
func TestListFilterErrors(t *testing.T) {
	t.Parallel()
	s, now := newStore(t), time.Now()
	for _, tc := range []struct {
		f      Filter
		fields []string
	}{
		{Filter{}, []string{"shop"}},
		{Filter{Shop: "a{b}"}, []string{"shop"}},
		{Filter{Shop: "s", Status: "approved"}, []string{"status"}},
		{Filter{Shop: "s", Status: StatusOK, Hold: HoldOnHold}, []string{"hold"}},
		{Filter{Shop: "s", Hold: "maybe"}, []string{"hold"}},
		{Filter{Shop: "s", Shipment: "lost"}, []string{"shipment"}},
		{Filter{Shop: "s", OrderedFrom: now, OrderedTo: now.Add(-time.Hour)}, []string{"ordered_to"}},
		{Filter{Shop: "s", ChangedFrom: now, ChangedTo: now}, []string{"changed_to"}},
		{Filter{Shop: "s", OrderIDPrefix: "a b"}, []string{"order_id_prefix"}},
		{Filter{Shop: "s", Limit: MaxLimit + 1}, []string{"limit"}},
		{Filter{Shop: "s", Limit: -1, Sort: "price"}, []string{"sort", "limit"}},
		{Filter{Shop: "s", Cursor: "nonsense"}, []string{"cursor"}},
		{Filter{Shop: "s", Sort: SortOrdered, Cursor: cursor{SortChanged, 1, "o1", ""}.encode()}, []string{"cursor"}},
		// A cursor of another listing: another shop, another status.
		{Filter{Shop: "t", Cursor: cursor{SortChanged, 1, "o1", selection(Filter{Shop: "s"})}.encode()}, []string{"cursor"}},
		{Filter{Shop: "s", Status: StatusOK, Cursor: cursor{SortChanged, 1, "o1", selection(Filter{Shop: "s"})}.encode()}, []string{"cursor"}},
	} {
		_, err := s.ListOrders(context.Background(), tc.f)
		if !errors.Is(err, ErrFilter) {
			t.Errorf("%+v: %v, want ErrFilter", tc.f, err)
			continue
		}
		var got []string
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var fe *FilterError
			if errors.As(e, &fe) {
				got = append(got, fe.Field)
			}
		}
		slices.Sort(got)
		slices.Sort(tc.fields)
		if !slices.Equal(got, tc.fields) {
			t.Errorf("%+v: fields %v (%v), want %v", tc.f, got, err, tc.fields)
		}
	}
	if _, err := s.CountOrders(context.Background(), ""); !errors.Is(err, ErrFilter) {
		t.Errorf("count without a shop: %v", err)
	}
}

// The shipment status the index files an order under.
func TestShipmentStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		st   State
		want ShipmentStatus
	}{
		{State{}, ShipmentNone},
		{State{Shipment: &Shipment{}}, ShipmentQueued},
		{State{Shipment: &Shipment{}, ShipmentRefused: true}, ShipmentQueued},
		{State{Shipment: &Shipment{Reported: true}}, ShipmentReported},
		{State{Shipment: &Shipment{Reported: true}, ShipmentRefused: true}, ShipmentRefused},
		{State{ShipmentRefused: true}, ShipmentRefused},
	} {
		if got := tc.st.ShipmentStatus(); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.st, got, tc.want)
		}
	}
	enc, err := encode("s", "o", State{Outbox: []Outcome{{Subject: "shipment.ok.s"}, {Subject: "shipment.ng.s"}}}, time.Now(), DefaultRetention)
	if err != nil || !enc.st.ShipmentRefused {
		t.Fatalf("the last shipment outcome is shipment.ng: refused %v, %v", enc.st.ShipmentRefused, err)
	}
	enc, _ = encode("s", "o", State{ShipmentRefused: true, Outbox: []Outcome{{Subject: "shipment.ok.s"}}}, time.Now(), DefaultRetention)
	if enc.st.ShipmentRefused {
		t.Fatal("a shipment.ok did not clear refused")
	}
}

// The embedded mode (-embedded) runs the scripts on miniredis's Lua: the index works there too.
func TestIndexOnTheEmbeddedRedis(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	s := New(rdb, "atodene:", time.Hour)
	t.Cleanup(s.Close)
	ctx, now := context.Background(), time.Now().Truncate(time.Millisecond)
	first := State{Status: StatusRegistering, OrderedAt: now.Add(-time.Hour)}
	l, err := s.AcquireLease(ctx, "shop", "A-1", Take{TTL: time.Minute, First: &first, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	st := l.State
	st.Status, st.TransactionID = StatusOK, "12345678901"
	if _, _, err := l.Commit(ctx, Commit{State: &st}, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if _, err := s.Put(ctx, "shop", fmt.Sprintf("B-%d", i), State{Status: StatusPending, OrderedAt: now.Add(-time.Duration(i) * time.Minute)}, now); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := only(t, s, "shop", "A-1"); got.Status != StatusOK || got.TransactionID != "12345678901" || !got.OrderedAt.Equal(first.OrderedAt) {
		t.Fatalf("listed %+v", got)
	}
	s.gatherLimit = 0 // walk the index for the prefix
	if got := listAll(t, s, Filter{Shop: "shop", Status: StatusPending, OrderIDPrefix: "B-1", Sort: SortOrdered, Limit: 4}); len(got) != 11 {
		t.Fatalf("listed %v, want B-1 and B-10 to B-19", ids(got))
	}
	if counts, err := s.CountOrders(ctx, "shop"); err != nil || counts[BucketOK] != 1 || counts[BucketReview] != 30 {
		t.Fatalf("counts %v, %v", counts, err)
	}
	if n, err := s.TrimIndex(ctx, "shop", 10); err != nil || n != 0 {
		t.Fatalf("trim: %d, %v", n, err)
	}
}

// A summary reads back as written, whatever the transaction ID holds.
func TestSummaryEncoding(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fee, billed int64
		tx          string
	}{{0, 0, ""}, {330, 10330, "12345678901"}, {-1, 5, "a|b|c"}, {1, 2, `注文"\`}} {
		fee, billed, tx, ok := decodeSummary(encodeSummary(tc.fee, tc.billed, tc.tx))
		if !ok || fee != tc.fee || billed != tc.billed || tx != tc.tx {
			t.Errorf("%+v read back as %d %d %q %v", tc, fee, billed, tx, ok)
		}
	}
	if _, _, _, ok := decodeSummary(`{"t":"1"}`); ok {
		t.Error("a summary of another layout was read")
	}
}

// A write that changes nothing the index shows (an outbox published, a re-check that finds the
// order still under review) leaves the index as it is, and the state's expiry too: the order
// changed last when its status did.
func TestIndexSkipsWritesThatChangeNothingShown(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	s := NewStore(rdb, Config{Prefix: prefix, Retention: 24 * time.Hour})
	t.Cleanup(s.Close)
	ctx, now := context.Background(), time.Now().Truncate(time.Millisecond)
	st, err := s.Put(ctx, "shop", "o1", State{Status: StatusPending, TransactionID: "12345678901", OrderedAt: now.Add(-time.Hour),
		Outbox: []Outcome{{Subject: "credit.pending.shop"}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	before := dumpIndex(t, s, "shop")
	later := now.Add(10 * time.Minute)
	st.Outbox, st.PollAttempt, st.PollAt = nil, 1, later.Add(time.Minute)
	next, err := s.Put(ctx, "shop", "o1", st, later)
	if err != nil {
		t.Fatal(err)
	}
	if !next.ChangedAt.Equal(now) || !next.UpdatedAt.Equal(later) {
		t.Fatalf("changed at %v, updated at %v; want %v and %v", next.ChangedAt, next.UpdatedAt, now, later)
	}
	if after := dumpIndex(t, s, "shop"); !equalDumps(before, after) {
		t.Fatalf("the index changed: %v → %v", before, after)
	}
	if ttl := rdb.PTTL(ctx, s.stateKey("shop", "o1")).Val(); ttl > 23*time.Hour+50*time.Minute+time.Second || ttl < 23*time.Hour+49*time.Minute {
		t.Fatalf("the state expires in %v, want one retention after it changed (23h50m)", ttl)
	}
	// The decision changes what the index shows: the order moves, and lives a retention from now.
	next.Status = StatusOK
	if next, err = s.Put(ctx, "shop", "o1", next, later); err != nil {
		t.Fatal(err)
	}
	if got, _ := only(t, s, "shop", "o1"); got.Status != StatusOK || !got.ChangedAt.Equal(later) {
		t.Fatalf("after the decision: %+v", got)
	}
	if ttl := rdb.PTTL(ctx, s.stateKey("shop", "o1")).Val(); ttl < 23*time.Hour+59*time.Minute {
		t.Fatalf("the state expires in %v, want 24h", ttl)
	}
}

// A write that changes nothing shown, late in an order's life, still keeps the order: its time
// changed is refreshed once older than the retention less the event records' life, so the state
// (and its index entry, moved with it) outlives every redelivery of the event written.
func TestLateWriteRefreshesTheRetention(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	now := time.Now().Truncate(time.Millisecond)
	s := NewStore(rdb, Config{Prefix: prefix, Retention: 10 * time.Hour, EventTTL: 3 * time.Hour, Now: func() time.Time { return now }})
	t.Cleanup(s.Close)
	ctx := context.Background()
	start := now.Add(-8 * time.Hour)
	st, err := s.Put(ctx, "shop", "o1", State{Status: StatusPending, TransactionID: "12345678901", OrderedAt: start}, start)
	if err != nil {
		t.Fatal(err)
	}
	// 6h after the change (10h - 3h = 7h not reached): the time changed stands.
	early := start.Add(6 * time.Hour)
	st.PollAttempt = 1
	if st, err = s.Put(ctx, "shop", "o1", st, early); err != nil {
		t.Fatal(err)
	}
	if !st.ChangedAt.Equal(start) {
		t.Fatalf("changed at %v after a write 6h on, want %v", st.ChangedAt, start)
	}
	// 8h after the change: past 7h, the write refreshes it, the state lives 10h from now, and
	// the index lists the order as changed now.
	st.PollAttempt = 2
	if st, err = s.Put(ctx, "shop", "o1", st, now); err != nil {
		t.Fatal(err)
	}
	if !st.ChangedAt.Equal(now) {
		t.Fatalf("changed at %v after a write 8h on, want %v", st.ChangedAt, now)
	}
	if ttl := rdb.PTTL(ctx, s.stateKey("shop", "o1")).Val(); ttl < 9*time.Hour+59*time.Minute {
		t.Fatalf("the state expires in %v, want 10h", ttl)
	}
	if got, _ := only(t, s, "shop", "o1"); !got.ChangedAt.Equal(now) {
		t.Fatalf("the index lists it as changed at %v, want %v", got.ChangedAt, now)
	}
	if got := listAll(t, s, Filter{Shop: "shop", ChangedFrom: now.Add(-time.Minute), ChangedTo: now.Add(time.Minute)}); len(got) != 1 {
		t.Fatalf("changed-at filter finds %v, want o1", ids(got))
	}
}
