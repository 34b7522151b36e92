package orderstate

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// entryIDs lists the ids of an order's history, oldest first.
func entryIDs(t *testing.T, s *Store, order string) []string {
	t.Helper()
	entries, err := s.History(context.Background(), "shop", order)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	return ids
}

// wantIDs is ev-<from> … ev-<to-1>.
func wantIDs(from, to int) []string {
	ids := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		ids = append(ids, fmt.Sprintf("ev-%d", i))
	}
	return ids
}

// An order's history keeps its newest HistoryLimit entries, oldest first, whether they come one
// per state write, many in one write, or appended on their own.
func TestHistoryKeepsTheNewest(t *testing.T) {
	t.Parallel()
	const n = HistoryLimit + 30
	entry := func(i int) Entry {
		return Entry{At: time.Now(), Type: "order.updated", ID: fmt.Sprintf("ev-%d", i), Did: "changed", Status: StatusOK}
	}
	t.Run("one per write", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		var st State
		for i := range n {
			st.Status, st.History = StatusOK, []Entry{entry(i)}
			next, err := s.Put(ctx, "shop", "o1", st, time.Now())
			if err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			st = next
		}
		if got, want := entryIDs(t, s, "o1"), wantIDs(n-HistoryLimit, n); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("history after %d writes holds %d entries %v, want the newest %d %v", n, len(got), got, HistoryLimit, want)
		}
	})
	t.Run("many in one write", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		st := State{Status: StatusOK}
		for i := range n {
			st.History = append(st.History, entry(i))
		}
		if _, err := s.Put(ctx, "shop", "o2", st, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got, want := entryIDs(t, s, "o2"), wantIDs(n-HistoryLimit, n); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("history after one write of %d entries holds %d entries %v, want the newest %d %v", n, len(got), got, HistoryLimit, want)
		}
	})
	t.Run("appended", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		for i := range n {
			if err := s.AppendHistory(ctx, "shop", "o3", entry(i), time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := entryIDs(t, s, "o3"), wantIDs(n-HistoryLimit, n); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("history after %d appends holds %d entries %v, want the newest %d %v", n, len(got), got, HistoryLimit, want)
		}
	})
}

// A write refused on a version conflict writes none of its history entries: the history tells
// only what was done.
func TestHistoryOfARefusedWrite(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t), context.Background()
	st := State{Status: StatusRegistering, History: []Entry{{At: time.Now(), Type: "order.created", ID: "ev-1", Did: "registered", Status: StatusOK}}}
	stale := st
	if _, err := s.Put(ctx, "shop", "o1", st, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Another writer read version 0 too and loses.
	stale.Status = StatusCancelled
	stale.History = []Entry{{At: time.Now(), Type: "order.cancelled", ID: "ev-2", Did: "cancelled", Status: StatusCancelled}}
	if _, err := s.Put(ctx, "shop", "o1", stale, time.Now()); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale write: %v, want ErrConflict", err)
	}
	if got := entryIDs(t, s, "o1"); fmt.Sprint(got) != "[ev-1]" {
		t.Errorf("history after a refused write: %v, want [ev-1]", got)
	}
	if got, err := s.Get(ctx, "shop", "o1"); err != nil || got.Version != 1 || got.Status != StatusRegistering {
		t.Errorf("state after a refused write: %+v, %v; want version 1, registering", got, err)
	}
}
