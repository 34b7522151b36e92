package orderstate

import (
	"context"
	"testing"
	"time"
)

// The event record holds the event's digest: an event whose identity is recorded with another
// digest (its id reused for another event) is RecordedOther, and writes no first state; one with
// the same digest is a copy; a record from before digests ("1") is a copy of any event. A commit
// of an inbox entry records the entry's digest.
func TestEventRecordHoldsTheDigest(t *testing.T) {
	t.Parallel()
	s, ctx, now := newStore(t), context.Background(), time.Now()
	take := func(order, key, digest string, first *State) *Lease {
		t.Helper()
		l, err := s.AcquireLease(ctx, "shop", order, Take{EventKey: key, EventDigest: digest, TTL: time.Minute, First: first, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := take("o1", "ev1", "v1:aaaa", nil)
	if l.Record != NotRecorded {
		t.Fatalf("an event never seen: %v", l.Record)
	}
	if _, _, err := l.Commit(ctx, Commit{Done: true}, now); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.EventRecord(ctx, "shop", "ev1"); err != nil || rec != "v1:aaaa" {
		t.Fatalf("record %q (%v); want the digest", rec, err)
	}
	l = take("o1", "ev1", "v1:aaaa", nil)
	if l.Record != RecordedSame || !l.EventDone {
		t.Errorf("a copy: %v, done %v", l.Record, l.EventDone)
	}
	_ = l.Release(ctx)
	first := State{Status: StatusRegistering}
	l = take("o2", "ev1", "v1:bbbb", &first) // another order's event under the same identity
	if l.Record != RecordedOther || l.EventDone || l.Created {
		t.Errorf("a reused identity: %v, done %v, first state written %v", l.Record, l.EventDone, l.Created)
	}
	_ = l.Release(ctx)
	if st, _ := s.Get(ctx, "shop", "o2"); st.Version != 0 {
		t.Errorf("a reused identity wrote the first state of its order: %+v", st)
	}
	if err := s.rdb.Set(ctx, s.eventKey("shop", "ev2"), legacyRecord, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if l = take("o3", "ev2", "v1:cccc", nil); l.Record != RecordedSame {
		t.Errorf("a record from before digests: %v; want a copy, as before", l.Record)
	}
	_ = l.Release(ctx)

	// An inbox entry's commit records its digest.
	l = take("o4", "", "", nil)
	p := Parked{Type: "order.updated", Key: "ev3", Digest: "v1:dddd", raw: "x"}
	if _, _, err := l.Commit(ctx, Commit{Done: true, Applied: &p}, now); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.EventRecord(ctx, "shop", "ev3"); rec != "v1:dddd" {
		t.Errorf("record of an inbox entry %q; want its digest", rec)
	}
}

func TestRecorded(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		record, digest string
		want           Record
	}{
		{"", "v1:aa", NotRecorded},
		{"v1:aa", "v1:aa", RecordedSame},
		{"v1:aa", "v1:bb", RecordedOther},
		{"1", "v1:bb", RecordedSame},     // written before digests
		{"v2:aa", "v1:bb", RecordedSame}, // a version this worker does not compute
		{"v1:aa", "", RecordedSame},      // an event handled without a digest
	} {
		if got := Recorded(c.record, c.digest); got != c.want {
			t.Errorf("Recorded(%q, %q) = %v, want %v", c.record, c.digest, got, c.want)
		}
	}
}
