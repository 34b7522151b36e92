package orderstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	s := New(rdb, prefix, time.Hour)
	t.Cleanup(s.Close) // before the client's close, registered earlier and so run later
	return s
}

func TestGetPut(t *testing.T) {
	t.Parallel()
	s, ctx, now := newStore(t), context.Background(), time.Now()
	st, err := s.Get(ctx, "shop", "o1")
	if err != nil || st.Version != 0 || st.Status != StatusNone {
		t.Fatalf("new order: %+v, %v", st, err)
	}
	st.Status, st.TransactionID = StatusOK, "12345678901"
	st.Outbox = []Outcome{{Subject: "credit.ok.shop", MsgID: "m1", Body: []byte(`{"a":1}`)}}
	written, err := s.Put(ctx, "shop", "o1", st, now)
	if err != nil || written.Version != 1 || len(written.Epoch) != 8 {
		t.Fatalf("put: %+v, %v", written, err)
	}
	st.Epoch = written.Epoch // as a handler's state, read from the store, carries it
	got, err := s.Get(ctx, "shop", "o1")
	if err != nil || got.Version != 1 || got.Status != StatusOK || got.Outbox[0].MsgID != "m1" || string(got.Outbox[0].Body) != `{"a":1}` || got.TransactionID != "12345678901" {
		t.Fatalf("read back: %+v, %v", got, err)
	}
	st.Version, st.Status = 1, StatusPending
	if _, err := s.Put(ctx, "shop", "o1", st, now); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PendingCount(ctx, "shop"); err != nil || n != 1 {
		t.Fatalf("pending count %d, %v; want 1", n, err)
	}
	st.Version, st.Status = 2, StatusOK
	if _, err := s.Put(ctx, "shop", "o1", st, now); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.PendingCount(ctx, "shop"); n != 0 {
		t.Fatalf("pending count %d after the order was decided, want 0", n)
	}
	// The same write again (the client resending it after a lost reply) succeeds.
	if _, err := s.Put(ctx, "shop", "o1", st, now); err != nil {
		t.Fatalf("resent put: %v", err)
	}
	st.Version = 1
	// A writer holding the old version loses.
	if _, err := s.Put(ctx, "shop", "o1", st, now); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale put: %v, want ErrConflict", err)
	}
}

func TestPutIsCompareAndSet(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t), context.Background()
	// 20 writers all read version 0 and try to write; exactly one may win.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Put(ctx, "shop", "race", State{Status: StatusPending}, time.Now()); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d writers won, want 1", wins.Load())
	}
}

func TestLease(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t), context.Background()
	l, err := s.AcquireLease(ctx, "shop", "o1", Take{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, "shop", "o1", Take{TTL: time.Minute}); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second lease: %v, want ErrLeaseHeld", err)
	}
	if _, err := s.AcquireLease(ctx, "shop", "o2", Take{TTL: time.Minute}); err != nil {
		t.Fatalf("another order's lease: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, "shop", "o1", Take{TTL: time.Minute}); err != nil {
		t.Fatalf("lease after release: %v", err)
	}
}

func TestLeaseExpiresAndStaleHolderCannotRelease(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t), context.Background()
	old, err := s.AcquireLease(ctx, "shop", "o1", Take{TTL: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The holder "crashed": its lease expires by Redis's own timer (PX), which only time passing
	// on the server's side can show.
	time.Sleep(60 * time.Millisecond)
	fresh, err := s.AcquireLease(ctx, "shop", "o1", Take{TTL: time.Minute})
	if err != nil {
		t.Fatalf("lease after expiry: %v", err)
	}
	_ = old.Release(ctx)
	if _, _, err := old.Commit(ctx, Commit{Done: true}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, "shop", "o1", Take{TTL: time.Minute}); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("the stale holder released the new holder's lease: %v", err)
	}
	_ = fresh.Release(ctx)
}

// A commit of no state follows a state its handler wrote. Redis flushed (or rolled back) between
// the two, the commit would record the event in a Redis that lost its effects, and the event's
// copy would be dropped as applied: it records nothing, appends no history, and still lets the
// lease go; also when another handler rebuilt the state past the version followed after the
// flush. The state followed, or a later one of its own handler's, lets it record.
func TestCommitAfterTheStateWasLostRecordsNothing(t *testing.T) {
	t.Parallel()
	s, ctx, now := newStore(t), context.Background(), time.Now()
	entry := []Entry{{Type: "order.tracking_entered", Did: "queued"}}
	for _, c := range []struct {
		name string
		lose func(first string) error // first: the state's first version, as stored
		lost bool
	}{
		{"kept", func(string) error { return nil }, false},
		{"flushed", func(string) error {
			return s.rdb.Del(ctx, s.stateKey("shop", "o1"), s.leaseKey("shop", "o1"), s.historyKey("shop", "o1")).Err()
		}, true},
		{"rolled back", func(first string) error { return s.rdb.Set(ctx, s.stateKey("shop", "o1"), first, 0).Err() }, true},
		{"rebuilt", func(string) error { // flushed, then written twice by another handler
			if err := s.rdb.Del(ctx, s.stateKey("shop", "o1"), s.leaseKey("shop", "o1"), s.historyKey("shop", "o1")).Err(); err != nil {
				return err
			}
			st, err := s.Put(ctx, "shop", "o1", State{Status: StatusNone}, now)
			if err == nil {
				_, err = s.Put(ctx, "shop", "o1", st, now)
			}
			return err
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := s.rdb.Del(ctx, s.stateKey("shop", "o1"), s.historyKey("shop", "o1")).Err(); err != nil {
				t.Fatal(err)
			}
			l, err := s.AcquireLease(ctx, "shop", "o1", Take{EventKey: "ev-" + c.name, TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.Put(ctx, "shop", "o1", State{Status: StatusPending, TransactionID: "12345678901"}, now)
			if err != nil {
				t.Fatal(err)
			}
			first, err := s.rdb.Get(ctx, s.stateKey("shop", "o1")).Result()
			if err != nil {
				t.Fatal(err)
			}
			if st, err = s.Put(ctx, "shop", "o1", st, now); err != nil {
				t.Fatal(err)
			}
			if err := c.lose(first); err != nil {
				t.Fatal(err)
			}
			// The handler follows its second write, or (kept) its first, the second being a later
			// one its own steps made.
			follows := st.Version
			if !c.lost {
				follows--
			}
			_, _, err = l.Commit(ctx, Commit{Version: follows, Entries: entry, Done: true}, now)
			if c.lost != errors.Is(err, ErrConflict) || (!c.lost && err != nil) {
				t.Fatalf("commit, the state %s: %v (want ErrConflict: %v)", c.name, err, c.lost)
			}
			if done, err := s.EventDone(ctx, "shop", "ev-"+c.name); err != nil || done == c.lost {
				t.Errorf("the state %s: event recorded as processed %v (%v), want %v", c.name, done, err, !c.lost)
			}
			if h, err := s.History(ctx, "shop", "o1"); err != nil || (len(h) == 1) == c.lost {
				t.Errorf("the state %s: history %+v (%v)", c.name, h, err)
			}
			if l, err := s.AcquireLease(ctx, "shop", "o1", Take{TTL: time.Minute}); err != nil {
				t.Errorf("the state %s: the commit kept the lease: %v", c.name, err)
			} else {
				_ = l.Release(ctx)
			}
		})
	}
}

// The lease brings the state and the event record with it, and Commit writes the state, records
// the event and releases the lease together.
func TestLeaseReadsAndCommits(t *testing.T) {
	t.Parallel()
	s, ctx, now := newStore(t), context.Background(), time.Now()
	l, err := s.AcquireLease(ctx, "shop", "o1", Take{EventKey: "ev1", TTL: time.Minute})
	if err != nil || l.State.Version != 0 || l.EventDone {
		t.Fatalf("first lease: %+v, %v", l, err)
	}
	st, err := s.Put(ctx, "shop", "o1", State{Status: StatusRegistering}, now)
	if err != nil {
		t.Fatal(err)
	}
	st.Status = StatusPending
	written, _, err := l.Commit(ctx, Commit{State: &st, Done: true}, now)
	if err != nil || written.Version != 2 {
		t.Fatalf("commit: %+v, %v", written, err)
	}
	if n, _ := s.PendingCount(ctx, "shop"); n != 1 {
		t.Fatalf("pending count %d after committing a pending state, want 1", n)
	}
	l, err = s.AcquireLease(ctx, "shop", "o1", Take{EventKey: "ev1", TTL: time.Minute}) // the commit released it
	if err != nil || l.State.Version != 2 || l.State.Status != StatusPending || !l.EventDone {
		t.Fatalf("lease after commit: %+v, %v", l, err)
	}
	if done, err := s.EventDone(ctx, "shop", "ev1"); err != nil || !done {
		t.Fatalf("event record: %v %v", done, err)
	}

	// A commit that lost the compare-and-set records nothing and still releases the lease.
	if _, err := s.AcquireLease(ctx, "shop", "o1", Take{EventKey: "ev2", TTL: time.Minute}); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("lease held by the previous acquire: %v", err)
	}
	_ = l.Release(ctx)
	stale, err := s.AcquireLease(ctx, "shop", "o1", Take{EventKey: "ev2", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	old := st // version 1: stale
	if _, _, err := stale.Commit(ctx, Commit{State: &old, Done: true}, now.Add(time.Second)); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale commit: %v, want ErrConflict", err)
	}
	if done, _ := s.EventDone(ctx, "shop", "ev2"); done {
		t.Error("a commit that lost its compare-and-set recorded its event")
	}
	if _, err := s.AcquireLease(ctx, "shop", "o1", Take{TTL: time.Minute}); err != nil {
		t.Fatalf("a conflicting commit kept the lease: %v", err)
	}
	// A new order's first state is written with its lease, unless its event was processed.
	first := State{Status: StatusRegistering, DataHash: "h"}
	l3, err := s.AcquireLease(ctx, "shop", "o3", Take{EventKey: "ev4", TTL: time.Minute, First: &first, Now: now})
	if err != nil || l3.State.Version != 1 || l3.State.DataHash != "h" {
		t.Fatalf("lease of a new order with a first state: %+v, %v", l3.State, err)
	}
	if got, _ := s.Get(ctx, "shop", "o3"); got.Version != 1 || got.Status != StatusRegistering {
		t.Fatalf("stored first state: %+v", got)
	}
	_ = l3.Release(ctx)
	first.DataHash = "other"
	l3, _ = s.AcquireLease(ctx, "shop", "o3", Take{TTL: time.Minute, First: &first, Now: now})
	if l3.State.DataHash != "h" {
		t.Fatalf("the first state replaced an existing one: %+v", l3.State)
	}
	_ = l3.Release(ctx)
	l4, _ := s.AcquireLease(ctx, "shop", "o4", Take{EventKey: "ev1", TTL: time.Minute, First: &first, Now: now})
	if l4.State.Version != 0 || !l4.EventDone {
		t.Fatalf("a processed event wrote a first state: %+v", l4)
	}
	_ = l4.Release(ctx)

	// A commit without a state (nothing changed) still records the event.
	none, _ := s.AcquireLease(ctx, "shop", "o2", Take{EventKey: "ev3", TTL: time.Minute})
	if _, _, err := none.Commit(ctx, Commit{Done: true}, now); err != nil {
		t.Fatal(err)
	}
	if done, _ := s.EventDone(ctx, "shop", "ev3"); !done {
		t.Error("a commit without a state write did not record its event")
	}
}

func TestRedisDown(t *testing.T) {
	t.Parallel()
	r := testenv.StartPrivateRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	s, ctx := New(rdb, "t:", time.Hour), context.Background()
	defer s.Close()
	if _, err := s.Put(ctx, "shop", "o1", State{Status: StatusOK}, time.Now()); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if _, err := s.Get(ctx, "shop", "o1"); err == nil {
		t.Fatal("Get succeeded with Redis down")
	}
	if _, err := s.Put(ctx, "shop", "o1", State{Version: 1}, time.Now()); err == nil || errors.Is(err, ErrConflict) {
		t.Fatalf("Put with Redis down: %v, want a connection error", err)
	}
	r.Start()
	st, err := s.Get(ctx, "shop", "o1")
	if err != nil || st.Status != StatusOK {
		t.Fatalf("after restart: %+v %v (the state must survive)", st, err)
	}
}

// roundTrips is a go-redis hook that counts the pipelines that carry the store's scripts
// (EVALSHA) and the scripts they carry.
type roundTrips struct {
	pipelines, scripts atomic.Int64
}

func (*roundTrips) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (rt *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := int64(0)
		for _, c := range cmds {
			if c.Name() == "evalsha" {
				n++
			}
		}
		if n > 0 {
			rt.pipelines.Add(1)
			rt.scripts.Add(n)
		}
		return next(ctx, cmds)
	}
}

// Many handlers at once share pipelines: 200 concurrent leases and commits (400 script calls) go
// out in fewer pipelines than calls, counted by a hook on the client; each call gets its own
// reply, also after Redis lost its scripts (a restart), which a pipeline learns from NOSCRIPT
// errors.
func TestConcurrentCallsShareRoundTrips(t *testing.T) {
	t.Parallel()
	r := testenv.StartPrivateRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	var rt roundTrips
	rdb.AddHook(&rt)
	s, ctx := New(rdb, "t:", time.Hour), context.Background()
	defer s.Close()
	const orders = 200
	round := func(name string) {
		var wg sync.WaitGroup
		for i := range orders {
			wg.Go(func() {
				order := fmt.Sprintf("%s-%d", name, i)
				l, err := s.AcquireLease(ctx, "shop", order, Take{EventKey: "ev-" + order, TTL: time.Minute, First: &State{Status: StatusRegistering}, Now: time.Now()})
				if err != nil {
					t.Error(err)
					return
				}
				if l.State.Version != 1 {
					t.Errorf("%s: first state version %d, want 1", order, l.State.Version)
				}
				st := l.State
				st.Status, st.TransactionID = StatusOK, order
				if _, _, err := l.Commit(ctx, Commit{State: &st, Done: true}, time.Now()); err != nil {
					t.Errorf("%s: commit: %v", order, err)
				}
				if got, err := s.Get(ctx, "shop", order); err != nil || got.TransactionID != order || got.Version != 2 {
					t.Errorf("%s: stored %+v, %v", order, got, err)
				}
			})
		}
		wg.Wait()
		// Sent alone, each call would take a pipeline of its own (and NOSCRIPT resends more):
		// shared, the 2 calls per order go out in at most half as many pipelines. (7 to 55 in runs
		// with -race on two cores: calls queue while a pipeline is on the wire.)
		calls := int64(2 * orders)
		pipelines, scripts := rt.pipelines.Swap(0), rt.scripts.Swap(0)
		t.Logf("round %s: %d script calls sent in %d pipelines (%d EVALSHA)", name, calls, pipelines, scripts)
		if scripts < calls {
			t.Errorf("round %s: %d EVALSHA sent for %d script calls", name, scripts, calls)
		}
		if 2*pipelines > calls {
			t.Errorf("round %s: %d script calls went out in %d pipelines, want at most %d: calls do not share round trips", name, calls, pipelines, calls/2)
		}
	}
	round("a")
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	round("b")
}

// A lease whose state cannot be read is given up, not left to expire.
func TestLeaseGivenUpWhenTheStateIsUnreadable(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	s, ctx := New(rdb, prefix, time.Hour), context.Background()
	t.Cleanup(s.Close)
	if err := rdb.Set(ctx, prefix+"order:{shop}:bad", "{not json", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.AcquireLease(ctx, "shop", "bad", Take{TTL: time.Minute}); err == nil || errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("lease of an unreadable state: %v, want a decoding error", err)
		}
	}
}

// The lease script resent by the client after a lost reply finds the lease held with its own
// token and answers as the first time did, so the holder is not locked out of its own order.
func TestAcquireResentWithItsTokenSucceeds(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t), context.Background()
	keys := append([]string{s.leaseKey("shop", "o1"), s.stateKey("shop", "o1"), s.pendingKey("shop"), s.eventKey("shop", ""), s.inboxKey("shop", "o1"), s.timersKey("shop")},
		s.indexKeys("shop")...)
	args := []any{"token-1", time.Minute.Milliseconds(), "0", "", "shop:o1", "0", "", MaxInbox, "0", "0", "", "o1", "", "", "", ""}
	for i := range 2 {
		if err := s.batch.run(ctx, acquireScript, keys, args...).Err(); err != nil {
			t.Fatalf("acquire %d with the same token: %v", i+1, err)
		}
	}
	args[0] = "token-2"
	if err := s.batch.run(ctx, acquireScript, keys, args...).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("acquire with another token: %v, want the lease held (nil reply)", err)
	}
}

// An event that finds the lease held is queued in the order's inbox; the holder's commit keeps
// the lease and hands it the queued events one by one, oldest first, and lets it go once the
// inbox is empty. A handler that takes the lease while the inbox holds events is told to apply
// them first, and its first state is not written.
func TestInboxQueuesBehindTheHolder(t *testing.T) {
	t.Parallel()
	s, ctx, now := newStore(t), context.Background(), time.Now()
	entry := func(id string) *Parked {
		return &Parked{Type: "order.tracking_entered", Key: "k-" + id, ID: id, Body: []byte(`{"id":"` + id + `"}`)}
	}
	holder, err := s.AcquireLease(ctx, "shop", "o1", Take{EventKey: "k-0", TTL: time.Minute, Queue: entry("0"), Now: now})
	if err != nil || holder.Drain {
		t.Fatalf("first take: %+v, %v", holder, err)
	}
	for _, id := range []string{"1", "2"} {
		if _, err := s.AcquireLease(ctx, "shop", "o1", Take{EventKey: "k-" + id, TTL: time.Minute, Queue: entry(id), Now: now}); !errors.Is(err, ErrQueued) {
			t.Fatalf("take of %s while held: %v, want ErrQueued", id, err)
		}
	}
	if _, err := s.AcquireLease(ctx, "shop", "o1", Take{EventKey: "k-t", TTL: time.Minute, Now: now}); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("take without a queue entry while held: %v, want ErrLeaseHeld", err)
	}
	_, next, err := holder.Commit(ctx, Commit{Done: true}, now)
	if err != nil || next == nil || next.ID != "1" {
		t.Fatalf("commit of the holder's event: next %+v, %v; want event 1", next, err)
	}
	_, next, err = holder.Commit(ctx, Commit{Done: true, Applied: next}, now)
	if err != nil || next == nil || next.ID != "2" {
		t.Fatalf("commit of event 1: next %+v, %v; want event 2", next, err)
	}
	// Event 2 fails: it is put back first with its try counted, and the lease is let go.
	retried := *next
	retried.Tries = 1
	if _, next, err = holder.Commit(ctx, Commit{Applied: next, Retry: &retried}, now); err != nil || next != nil {
		t.Fatalf("retrying commit: next %+v, %v", next, err)
	}
	for _, id := range []string{"1"} {
		if done, _ := s.EventDone(ctx, "shop", "k-"+id); !done {
			t.Errorf("event %s applied from the inbox is not recorded", id)
		}
	}
	first := State{Status: StatusRegistering}
	l, err := s.AcquireLease(ctx, "shop", "o1", Take{EventKey: "k-3", TTL: time.Minute, Queue: entry("3"), First: &first, Now: now})
	if err != nil || !l.Drain {
		t.Fatalf("take with a queued event: %+v, %v; want Drain", l, err)
	}
	if st, _ := s.Get(ctx, "shop", "o1"); st.Version != 0 {
		t.Errorf("the first state was written in Drain mode: %+v", st)
	}
	p, err := l.Next(ctx)
	if err != nil || p == nil || p.ID != "2" || p.Tries != 1 {
		t.Fatalf("Next: %+v, %v; want event 2 after one try", p, err)
	}
	if _, next, err = l.Commit(ctx, Commit{Done: true, Applied: p}, now); err != nil || next == nil || next.ID != "3" {
		t.Fatalf("commit of event 2: next %+v, %v; want the taker's own event 3, queued last", next, err)
	}
	if _, next, err = l.Commit(ctx, Commit{Done: true, Applied: next}, now); err != nil || next != nil {
		t.Fatalf("commit of the taker's own event: next %+v, %v", next, err)
	}
	if _, err := s.AcquireLease(ctx, "shop", "o1", Take{TTL: time.Minute, Now: now}); err != nil {
		t.Fatalf("the lease was not released when the inbox emptied: %v", err)
	}
}

// TestFirstStateHeldIsTheStoredOne: a lease that wrote the order's first state holds that state as
// encoded, without reading it back: it must be the state stored, field for field (its JSON the
// same document), with no history entries (they are not part of the document), and a commit from
// it must succeed.
func TestFirstStateHeldIsTheStoredOne(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t), context.Background()
	jst := time.FixedZone("JST", 9*60*60)
	now := time.Date(2026, 11, 30, 21, 0, 0, 123456789, time.Local)
	first := State{Status: StatusRegistering, DataHash: "v1:" + fmt.Sprint(42), Fee: 205, BilledAmount: 3155,
		CausedBy: "ev", CreditSeq: 7, CreditCreated: now.UnixNano(), OrderedAt: time.Date(2026, 11, 30, 9, 0, 0, 0, jst),
		Shipment:  &Shipment{CarrierCode: "yamato", TrackingNumber: "1234"},
		Parked:    []Parked{{Type: "order.tracking_entered", Key: "src:1", Body: []byte(`{"a":1}`), Since: now, Waits: "the credit"}},
		ParkTimer: now.Add(time.Hour), History: []Entry{{Type: "order.created", Did: "intent"}}}
	l, err := s.AcquireLease(ctx, "shop", "o1", Take{EventKey: "ev", TTL: time.Minute, First: &first, Now: now})
	if err != nil || !l.Created {
		t.Fatalf("lease with a first state: %+v, %v", l, err)
	}
	stored, err := s.Get(ctx, "shop", "o1")
	if err != nil {
		t.Fatal(err)
	}
	held, _ := json.Marshal(l.State)
	want, _ := json.Marshal(stored)
	if string(held) != string(want) {
		t.Errorf("the lease holds\n%s\nRedis holds\n%s", held, want)
	}
	if l.State.History != nil {
		t.Errorf("the lease's state carries history entries %+v", l.State.History)
	}
	if h, _ := s.History(ctx, "shop", "o1"); len(h) != 0 {
		t.Errorf("a first state wrote history %+v", h)
	}
	st := l.State
	st.Status = StatusOK
	if _, _, err := l.Commit(ctx, Commit{State: &st, Done: true}, now.Add(time.Second)); err != nil {
		t.Fatalf("commit from the state held: %v", err)
	}
}
