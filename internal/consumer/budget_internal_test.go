package consumer

import (
	"context"
	"testing"
	"testing/synctest"
)

// The rules of Budget, tested on its own in a synctest bubble: synctest.Wait returns once every
// goroutine of the test is blocked, so "this acquire is still waiting" is a fact, not a guess
// made after a sleep.

// acquiring starts s.acquire(ctx, want) in a goroutine of the bubble; the channel receives how
// many slots it took.
func acquiring(ctx context.Context, s *Share, want int) <-chan int {
	got := make(chan int, 1)
	go func() { got <- s.acquire(ctx, want) }()
	return got
}

// granted waits until every goroutine of the bubble is blocked, then reports whether the acquire
// behind ch has returned, and with how many slots.
func granted(ch <-chan int) (int, bool) {
	synctest.Wait()
	select {
	case n := <-ch:
		return n, true
	default:
		return 0, false
	}
}

// TestBudgetBoundsSlotsAcrossShares: the shares of a budget of 4 hold at most 4 slots between
// them, and a slot given back goes to the share that waited longest.
func TestBudgetBoundsSlotsAcrossShares(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(4)
		defer b.Close()
		ctx := t.Context()
		a, c := b.Share(0), b.Share(0)
		if n := a.acquire(ctx, 3); n != 3 {
			t.Fatalf("the first share took %d slots of 4, want the 3 it asked for", n)
		}
		if n := c.acquire(ctx, 3); n != 1 {
			t.Fatalf("the second share took %d slots, want the 1 left of 4", n)
		}
		moreA := acquiring(ctx, a, 1)
		if n, ok := granted(moreA); ok {
			t.Fatalf("a fifth slot (%d) was taken from a budget of 4", n)
		}
		moreC := acquiring(ctx, c, 1)
		if n, ok := granted(moreC); ok {
			t.Fatalf("a fifth slot (%d) was taken from a budget of 4", n)
		}

		c.release(1)
		if n, ok := granted(moreA); !ok || n != 1 {
			t.Fatalf("after a slot was given back, the longest waiter got (%d, %v), want (1, true)", n, ok)
		}
		if _, ok := granted(moreC); ok {
			t.Fatal("one slot given back let two waiters go")
		}
		a.release(1)
		if n, ok := granted(moreC); !ok || n != 1 {
			t.Fatalf("the second waiter got (%d, %v), want (1, true)", n, ok)
		}
	})
}

// TestBudgetKeepsGuaranteedSlots: a share never takes the slots guaranteed to another, even
// when they are free, and the share they are guaranteed to gets them at once.
func TestBudgetKeepsGuaranteedSlots(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(4)
		defer b.Close()
		ctx := t.Context()
		orders, polls := b.Share(1), b.Share(1)
		if n := orders.acquire(ctx, 4); n != 3 {
			t.Fatalf("orders took %d slots of 4, want 3: one is kept for polls", n)
		}
		more := acquiring(ctx, orders, 1)
		if n, ok := granted(more); ok {
			t.Fatalf("orders took the slot kept for polls (%d)", n)
		}
		if n, ok := granted(acquiring(ctx, polls, 4)); !ok || n != 1 {
			t.Fatalf("polls got (%d, %v) beside a waiting orders, want its guaranteed slot at once", n, ok)
		}
		polls.release(1)
		if n, ok := granted(more); ok {
			t.Fatalf("orders took the slot polls gave back (%d): it is still polls'", n)
		}
		orders.release(1)
		if n, ok := granted(more); !ok || n != 1 {
			t.Fatalf("orders got (%d, %v) when one of its own slots was given back, want (1, true)", n, ok)
		}
	})
}

// TestBudgetServesWaitersInTurn: a consumer that waits again right after it was served queues
// behind the others, so a consumer with a backlog does not take every slot freed.
func TestBudgetServesWaitersInTurn(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(2)
		defer b.Close()
		ctx := t.Context()
		busy, other := b.Share(0), b.Share(0)
		if n := busy.acquire(ctx, 2); n != 2 {
			t.Fatalf("took %d slots of 2", n)
		}
		first := acquiring(ctx, busy, 2)
		synctest.Wait() // busy waits first
		second := acquiring(ctx, other, 1)
		if _, ok := granted(second); ok {
			t.Fatal("a slot was taken while all were held")
		}

		busy.release(1)
		if n, ok := granted(first); !ok || n != 1 {
			t.Fatalf("the first waiter got (%d, %v), want (1, true)", n, ok)
		}
		again := acquiring(ctx, busy, 2) // the backlog asks again at once
		if _, ok := granted(second); ok {
			t.Fatal("one slot given back let two waiters go")
		}
		busy.release(1)
		if n, ok := granted(second); !ok || n != 1 {
			t.Fatalf("the other consumer got (%d, %v) when the next slot was given back, want (1, true): the busy one took it again", n, ok)
		}
		if _, ok := granted(again); ok {
			t.Fatal("the busy consumer was served out of turn")
		}
		busy.release(1)
		if n, ok := granted(again); !ok || n != 1 {
			t.Fatalf("the busy consumer's next turn got (%d, %v), want (1, true)", n, ok)
		}
	})
}

// TestBudgetAcquireEndsWithItsContext: an acquire whose context ends returns 0 and leaves the
// queue, so the next slot given back goes to a waiter that still wants it.
func TestBudgetAcquireEndsWithItsContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(1)
		defer b.Close()
		holder, quitter, waiter := b.Share(0), b.Share(0), b.Share(0)
		if n := holder.acquire(t.Context(), 1); n != 1 {
			t.Fatalf("took %d slots of 1", n)
		}
		ctx, cancel := context.WithCancel(t.Context())
		quit := acquiring(ctx, quitter, 1)
		synctest.Wait()
		wait := acquiring(t.Context(), waiter, 1)
		cancel()
		if n, ok := granted(quit); !ok || n != 0 {
			t.Fatalf("acquire with its context cancelled returned (%d, %v), want (0, true)", n, ok)
		}
		if n := b.Waiters(); n != 1 {
			t.Fatalf("%d waiters after one gave up, want 1", n)
		}
		holder.release(1)
		if n, ok := granted(wait); !ok || n != 1 {
			t.Fatalf("the waiter got (%d, %v), want the slot given back", n, ok)
		}
	})
}
