package orderstate

import (
	"context"
	"encoding/json"
	"errors"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestCheckLayout: a store refuses a Redis that holds keys of layout 1 under its prefix, records
// the layout on a Redis that holds none, and reads only that record afterwards.
func TestCheckLayout(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t), context.Background()
	if _, err := s.Put(ctx, "shop", "o1", State{Status: StatusOK}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckLayout(ctx, false); err != nil {
		t.Fatalf("layout 2 keys only, not recording: %v", err)
	}
	if n, _ := s.rdb.Exists(ctx, s.layoutKey()).Result(); n != 0 {
		t.Fatal("a check that does not record recorded the layout")
	}
	if err := s.CheckLayout(ctx, true); err != nil {
		t.Fatalf("layout 2 keys only: %v", err)
	}
	if v, _ := s.rdb.Get(ctx, s.layoutKey()).Result(); v != LayoutVersion {
		t.Fatalf("layout recorded %q, want %q", v, LayoutVersion)
	}

	for _, old := range []string{"order:shop:o2", "event:0123abcd", "pending", "timers", "history:shop:o2", "inbox:shop:o2", "lease:shop:o2"} {
		fresh := newStore(t)
		if err := fresh.rdb.Set(ctx, fresh.prefix+old, "x", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		err := fresh.CheckLayout(ctx, true)
		if !errors.Is(err, ErrOldLayout) || !strings.Contains(err.Error(), fresh.prefix+old) || !strings.Contains(err.Error(), "publisher order migrate-layout") {
			t.Errorf("layout 1 key %s: %v, want ErrOldLayout naming it and the command", old, err)
		}
		if n, _ := fresh.rdb.Exists(ctx, fresh.layoutKey()).Result(); n != 0 {
			t.Errorf("layout 1 key %s: the layout was recorded", old)
		}
	}

	later := newStore(t)
	later.rdb.Set(ctx, later.layoutKey(), "3", 0)
	if err := later.CheckLayout(ctx, true); err == nil || !strings.Contains(err.Error(), `layout "3"`) {
		t.Errorf("a layout recorded by a later version: %v", err)
	}
}

// writeLayout1 writes, under s's prefix, what a worker of layout 1 left: an order under review of
// shop-a with its history, inbox, timer and index entry; an OK order of shop-b; an event record.
func writeLayout1(t *testing.T, s *Store, due time.Time) {
	t.Helper()
	ctx, p := context.Background(), s.prefix
	review, _ := json.Marshal(State{Version: 3, Status: StatusPending, TransactionID: "12345678901"})
	ok, _ := json.Marshal(State{Version: 2, Status: StatusOK, TransactionID: "12345678902"})
	pipe := s.rdb.Pipeline()
	pipe.Set(ctx, p+"order:shop-a:R-1", review, 400*24*time.Hour)
	pipe.RPush(ctx, p+"history:shop-a:R-1", `{"did":"registered"}`, `{"did":"polled: still under review"}`)
	pipe.RPush(ctx, p+"inbox:shop-a:R-1", `{"key":"k-queued"}`)
	pipe.Set(ctx, p+"order:shop-b:K-1", ok, 0)
	pipe.SAdd(ctx, p+"pending", "shop-a:R-1")
	pipe.ZAdd(ctx, p+"timers", redis.Z{Score: float64(due.UnixMilli()), Member: "shop-a:R-1"})
	pipe.Set(ctx, p+"event:0123456789abcdef0123456789abcdef", "1", time.Hour)
	pipe.Set(ctx, p+"event:fedcba9876543210fedcba9876543210", "1", 0)
	pipe.HSet(ctx, p+"index:{shop-c}:summary", "C-1", "x") // layout 1 tagged its index already
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateLayout: the keys a worker of layout 1 left are moved so that this version reads
// every one of them: states with their expiry, histories, inboxes, the orders under review and
// timers per shop, event records for every shop; then the layout is recorded and the store
// starts. A worker of layout 1 still running (its lease) stops the migration before it moves
// anything.
func TestMigrateLayout(t *testing.T) {
	t.Parallel()
	if testenv.OnCluster() {
		t.Skip("layout 1 never ran on a Redis Cluster (its scripts were refused there): nothing to migrate")
	}
	s, ctx := newStore(t), context.Background()
	due := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	writeLayout1(t, s, due)
	s.rdb.Set(ctx, s.prefix+"lease:shop-a:R-1", "token", time.Minute)
	if _, err := s.MigrateLayout(ctx); err == nil || !strings.Contains(err.Error(), "stop every worker") {
		t.Fatalf("migration with a layout 1 lease: %v, want a refusal", err)
	}
	if n, _ := s.rdb.Exists(ctx, s.prefix+"order:shop-a:R-1", s.prefix+"pending").Result(); n != 2 {
		t.Fatal("the refused migration moved keys")
	}
	s.rdb.Del(ctx, s.prefix+"lease:shop-a:R-1")

	m, err := s.MigrateLayout(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Orders != 2 || m.Events != 2 || m.Pending != 1 || m.Timers != 1 || len(m.Shops) != 3 || len(m.Conflicts) != 0 {
		t.Errorf("migration: %+v", m)
	}
	if err := s.CheckLayout(ctx, true); err != nil {
		t.Fatalf("after the migration: %v", err)
	}
	st, err := s.Get(ctx, "shop-a", "R-1")
	if err != nil || st.Version != 3 || st.Status != StatusPending {
		t.Errorf("state of R-1: %+v, %v", st, err)
	}
	if ttl := s.rdb.PTTL(ctx, s.stateKey("shop-a", "R-1")).Val(); ttl < 399*24*time.Hour {
		t.Errorf("the state's expiry is %v, want it kept (400 days)", ttl)
	}
	if st, _ := s.Get(ctx, "shop-b", "K-1"); st.Version != 2 || st.Status != StatusOK {
		t.Errorf("state of K-1: %+v", st)
	}
	if h, err := s.History(ctx, "shop-a", "R-1"); err != nil || len(h) != 2 {
		t.Errorf("history of R-1: %+v, %v", h, err)
	}
	if n, _ := s.InboxLen(ctx, "shop-a", "R-1"); n != 1 {
		t.Errorf("inbox of R-1 holds %d, want 1", n)
	}
	if n, err := s.PendingCount(ctx, "shop-a", "shop-b"); err != nil || n != 1 {
		t.Errorf("under review: %d, %v; want 1", n, err)
	}
	if ts, err := s.OverdueTimers(ctx, "shop-a", time.Now(), 10); err != nil || len(ts) != 1 || ts[0].Order != "R-1" || !ts[0].Due.Equal(due) {
		t.Errorf("overdue timers of shop-a: %+v, %v", ts, err)
	}
	for _, shop := range []string{"shop-a", "shop-b", "shop-c"} {
		for _, key := range []string{"0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"} {
			if done, err := s.EventDone(ctx, shop, key); err != nil || !done {
				t.Errorf("event %s of %s: done %v, %v", key, shop, done, err)
			}
		}
	}
	if ttl := s.rdb.PTTL(ctx, s.eventKey("shop-b", "0123456789abcdef0123456789abcdef")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("a copied event record expires in %v, want its own hour", ttl)
	}
	var left []string
	_ = s.scanAll(ctx, s.prefix+"*", func(key string) error {
		if oldKind(strings.TrimPrefix(key, s.prefix)) != "" {
			left = append(left, key)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("layout 1 keys left: %v", left)
	}

	// Run again, with a layout 1 state written meanwhile beside a layout 2 one: the newer stays.
	s.rdb.Set(ctx, s.prefix+"order:shop-b:K-1", "stale", 0)
	again, err := s.MigrateLayout(ctx)
	if err != nil || again.Orders != 0 || len(again.Conflicts) != 1 || again.Conflicts[0] != s.prefix+"order:shop-b:K-1" {
		t.Errorf("second migration: %+v, %v", again, err)
	}
	if st, _ := s.Get(ctx, "shop-b", "K-1"); st.Version != 2 {
		t.Errorf("the layout 2 state of K-1 was replaced: %+v", st)
	}
}

// TestMigrateLayoutManyEvents: event records of layout 1 over many SCAN pages, which the
// migration copies page by page, are each copied to every shop and removed, counted once each.
func TestMigrateLayoutManyEvents(t *testing.T) {
	t.Parallel()
	if testenv.OnCluster() {
		t.Skip("layout 1 never ran on a Redis Cluster (its scripts were refused there): nothing to migrate")
	}
	s, ctx := newStore(t), context.Background()
	const n = 3*scanCount + 1
	pipe := s.rdb.Pipeline()
	pipe.Set(ctx, s.prefix+"order:shop-a:A-1", `{"version":1,"status":"ok"}`, 0)
	pipe.Set(ctx, s.prefix+"order:shop-b:B-1", `{"version":1,"status":"ok"}`, 0)
	for i := range n {
		pipe.Set(ctx, s.prefix+"event:"+strconv.Itoa(i), "1", time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := s.MigrateLayout(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Events != n || m.Orders != 2 || len(m.Shops) != 2 {
		t.Errorf("migration: %d events, %d orders, shops %v; want %d, 2, 2", m.Events, m.Orders, m.Shops, n)
	}
	pipe = s.rdb.Pipeline()
	var copies, old []*redis.IntCmd
	for i := range n {
		key := strconv.Itoa(i)
		copies = append(copies, pipe.Exists(ctx, s.eventKey("shop-a", key), s.eventKey("shop-b", key)))
		old = append(old, pipe.Exists(ctx, s.prefix+"event:"+key))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if copies[i].Val() != 2 || old[i].Val() != 0 {
			t.Fatalf("event %d: %d of 2 copies, layout 1 record left %d", i, copies[i].Val(), old[i].Val())
		}
	}
}

// TestKeysOfAScriptShareASlot: every key a script of the store touches has its shop as hash tag
// (what Redis Cluster hashes: the text between the first '{' and the next '}'), so they share a slot
// whatever the prefix or the order's ID (braces in an order ID come after the tag).
func TestKeysOfAScriptShareASlot(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	for _, shop := range []string{"shop-a", "demo", "S_1"} {
		order := "o{1}"
		keys := append([]string{s.stateKey(shop, order), s.pendingKey(shop), s.leaseKey(shop, order), s.eventKey(shop, "abc"),
			s.historyKey(shop, order), s.inboxKey(shop, order), s.timersKey(shop), s.dataKey(shop, order)}, s.indexKeys(shop)...)
		for _, key := range keys {
			if got := hashTag(key); got != shop {
				t.Errorf("%s: hash tag %q, want %q", key, got, shop)
			}
		}
	}
}

// hashTag is the part of key Redis Cluster hashes when it has one (cluster spec, "Hash tags").
func hashTag(key string) string {
	_, rest, ok := strings.Cut(key, "{")
	if !ok {
		return ""
	}
	tag, _, ok := strings.Cut(rest, "}")
	if !ok || tag == "" {
		return ""
	}
	return tag
}

// TestOldPattern: the pattern the layout check scans for matches every per-order key of layout 1
// and no key of layout 2, so that a Redis full of orders of layout 2 sends none of their names
// back to the check (it delayed the worker's readiness by seconds with a million orders).
func TestOldPattern(t *testing.T) {
	t.Parallel()
	s := New(nil, "atodene:", time.Hour)
	matches := func(key string) bool {
		ok, err := path.Match(oldPattern(s.prefix), key)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, kind := range append(slices.Clone(perOrderKinds), "event") {
		for _, key := range []string{s.prefix + kind + ":shop:o-1", s.prefix + kind + ":s:o", s.prefix + kind + ":0123abcd"} {
			if !matches(key) {
				t.Errorf("layout 1 key %s: no pattern matches it", key)
			}
			if oldKind(strings.TrimPrefix(key, s.prefix)) != kind {
				t.Errorf("layout 1 key %s: oldKind says %q", key, oldKind(strings.TrimPrefix(key, s.prefix)))
			}
		}
	}
	layout2 := []string{s.stateKey("shop", "o-1"), s.leaseKey("shop", "o-1"), s.eventKey("shop", "0123abcd"), s.historyKey("shop", "o-1"),
		s.inboxKey("shop", "o-1"), s.dataKey("shop", "o-1"), s.pendingKey("shop"), s.timersKey("shop"), s.layoutKey()}
	layout2 = append(layout2, s.indexKeys("shop")...)
	layout2 = append(layout2, s.stateKey("s", "o"), s.historyKey("s", "o"), s.pendingKey("s"), s.timersKey("s"))
	for _, key := range layout2 {
		if matches(key) {
			t.Errorf("layout 2 key %s matches a pattern of layout 1", key)
		}
	}
	for _, key := range oldSets(s.prefix) {
		if oldKind(strings.TrimPrefix(key, s.prefix)) == "" {
			t.Errorf("%s is not of layout 1 for oldKind", key)
		}
	}
}
