package consumer

import (
	"context"
	"testing"
	"testing/synctest"
)

// The rules of Budget, tested on its own in a synctest bubble: synctest.Wait returns once every
// goroutine of the test is blocked, so "this acquire is still waiting" is a fact, not a guess
// made after a sleep.

// inBubble runs test in a synctest bubble with a budget of the given slots, closed when test returns.
func inBubble(t *testing.T, slots int, test func(t *testing.T, b *Budget)) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(slots)
		defer b.Close()
		test(t, b)
	})
}

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

// wantServed fails the test unless the acquire behind ch has returned, with want slots; who says
// whose acquire it is.
func wantServed(t *testing.T, ch <-chan int, want int, who string) {
	t.Helper()
	if n, ok := granted(ch); !ok || n != want {
		t.Fatalf("%s got (%d, %v), want (%d, true)", who, n, ok, want)
	}
}

// wantWaiting fails the test, saying what went wrong, if the acquire behind ch has returned.
func wantWaiting(t *testing.T, ch <-chan int, wrong string) {
	t.Helper()
	if n, ok := granted(ch); ok {
		t.Fatalf("%s (it got %d)", wrong, n)
	}
}

// TestBudgetBoundsSlotsAcrossShares: the shares of a budget of 4 hold at most 4 slots between
// them, and a slot given back goes to the share that waited longest.
func TestBudgetBoundsSlotsAcrossShares(t *testing.T) {
	t.Parallel()
	inBubble(t, 4, func(t *testing.T, b *Budget) {
		ctx := t.Context()
		a, c := b.Share(0), b.Share(0)
		if n := a.acquire(ctx, 3); n != 3 {
			t.Fatalf("the first share took %d slots of 4, want the 3 it asked for", n)
		}
		if n := c.acquire(ctx, 3); n != 1 {
			t.Fatalf("the second share took %d slots, want the 1 left of 4", n)
		}
		moreA := acquiring(ctx, a, 1)
		wantWaiting(t, moreA, "a fifth slot was taken from a budget of 4")
		moreC := acquiring(ctx, c, 1)
		wantWaiting(t, moreC, "a fifth slot was taken from a budget of 4")

		c.release(1)
		wantServed(t, moreA, 1, "after a slot was given back, the longest waiter")
		wantWaiting(t, moreC, "one slot given back let two waiters go")
		a.release(1)
		wantServed(t, moreC, 1, "the second waiter")
	})
}

// TestBudgetKeepsGuaranteedSlots: a share never takes the slots guaranteed to another, even
// when they are free, and the share they are guaranteed to gets them at once.
func TestBudgetKeepsGuaranteedSlots(t *testing.T) {
	t.Parallel()
	inBubble(t, 4, func(t *testing.T, b *Budget) {
		ctx := t.Context()
		orders, polls := b.Share(1), b.Share(1)
		if n := orders.acquire(ctx, 4); n != 3 {
			t.Fatalf("orders took %d slots of 4, want 3: one is kept for polls", n)
		}
		more := acquiring(ctx, orders, 1)
		wantWaiting(t, more, "orders took the slot kept for polls")
		wantServed(t, acquiring(ctx, polls, 4), 1, "polls, asking beside a waiting orders for its guaranteed slot,")
		polls.release(1)
		wantWaiting(t, more, "orders took the slot polls gave back: it is still polls'")
		orders.release(1)
		wantServed(t, more, 1, "orders, when one of its own slots was given back,")
	})
}

// TestBudgetServesWaitersInTurn: a consumer that waits again right after it was served queues
// behind the others, so a consumer with a backlog does not take every slot freed.
func TestBudgetServesWaitersInTurn(t *testing.T) {
	t.Parallel()
	inBubble(t, 2, func(t *testing.T, b *Budget) {
		ctx := t.Context()
		busy, other := b.Share(0), b.Share(0)
		if n := busy.acquire(ctx, 2); n != 2 {
			t.Fatalf("took %d slots of 2", n)
		}
		first := acquiring(ctx, busy, 2)
		synctest.Wait() // busy waits first
		second := acquiring(ctx, other, 1)
		wantWaiting(t, second, "a slot was taken while all were held")

		busy.release(1)
		wantServed(t, first, 1, "the first waiter")
		again := acquiring(ctx, busy, 2) // the backlog asks again at once
		wantWaiting(t, second, "one slot given back let two waiters go")
		busy.release(1)
		wantServed(t, second, 1, "the other consumer, not the busy one served just before, when the next slot was given back,")
		wantWaiting(t, again, "the busy consumer was served out of turn")
		busy.release(1)
		wantServed(t, again, 1, "the busy consumer's next turn")
	})
}

// TestBudgetAcquireEndsWithItsContext: an acquire whose context ends returns 0 and leaves the
// queue, so the next slot given back goes to a waiter that still wants it.
func TestBudgetAcquireEndsWithItsContext(t *testing.T) {
	t.Parallel()
	inBubble(t, 1, func(t *testing.T, b *Budget) {
		holder, quitter, waiter := b.Share(0), b.Share(0), b.Share(0)
		if n := holder.acquire(t.Context(), 1); n != 1 {
			t.Fatalf("took %d slots of 1", n)
		}
		ctx, cancel := context.WithCancel(t.Context())
		quit := acquiring(ctx, quitter, 1)
		synctest.Wait()
		wait := acquiring(t.Context(), waiter, 1)
		cancel()
		wantServed(t, quit, 0, "an acquire whose context was cancelled")
		if n := b.Waiters(); n != 1 {
			t.Fatalf("%d waiters after one gave up, want 1", n)
		}
		holder.release(1)
		wantServed(t, wait, 1, "the waiter, when the slot was given back,")
	})
}
