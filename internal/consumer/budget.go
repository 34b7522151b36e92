package consumer

import (
	"context"
	"slices"
	"sync"
)

// Budget is the handling slots that the consumers of one worker share, and the goroutines that
// run the messages put in them: a budget of n handles at most n messages at once, whichever
// consumers they come from (-concurrency).
//
// Two rules keep one consumer from starving the others. Free slots go to the consumers waiting
// for them in the order they began to wait, so that a consumer with a backlog takes turns with
// the others instead of taking every slot freed. And a consumer may be guaranteed a few slots
// (Share): the others never take those, so that a consumer whose handlers hang (each until the
// handler timeout) can hold every slot but the ones guaranteed to the others.
type Budget struct {
	size  int
	tasks chan func() // never full: a task is sent for a slot taken, and a slot is given back after its task
	wg    sync.WaitGroup
	once  sync.Once

	mu         sync.Mutex
	free       int
	guaranteed int // given to shares so far
	shares     []*Share
	waiting    []*waiter // in the order they began to wait
}

// Share is one consumer's part of a budget (Config.Share).
type Share struct {
	b          *Budget
	guaranteed int
	held       int // slots taken and not given back
}

// waiter is a consumer waiting for slots.
type waiter struct {
	s     *Share
	want  int
	got   int
	ready chan struct{} // closed once got is set
}

// NewBudget returns a budget of size slots (at least 1) and starts its size goroutines. They stop
// with Close: a fixed set, rather than one goroutine per message, keeps the stacks grown deep by
// the first messages (a new goroutine per message spent 8% of the CPU copying stacks as they grew).
func NewBudget(size int) *Budget {
	size = max(size, 1)
	b := &Budget{size: size, tasks: make(chan func(), size), free: size}
	for range size {
		b.wg.Go(func() {
			for task := range b.tasks {
				task()
			}
		})
	}
	return b
}

// Close stops the budget's goroutines and waits for them. Call it once every Consume using the
// budget has returned; a second Close does nothing.
func (b *Budget) Close() {
	b.once.Do(func() {
		close(b.tasks)
		b.wg.Wait()
	})
}

// Share returns a consumer's part of the budget, with guaranteed slots that the other consumers
// never take, so that they are free whenever it has messages. Shares are made before any consumer
// starts: a slot already taken by another is not taken back. The guarantees of a budget leave at
// least one slot unguaranteed, for a consumer guaranteed none: a guarantee beyond that is cut.
func (b *Budget) Share(guaranteed int) *Share {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := max(min(guaranteed, b.size-1-b.guaranteed), 0)
	b.guaranteed += g
	s := &Share{b: b, guaranteed: g}
	b.shares = append(b.shares, s)
	return s
}

// acquire waits for at least one slot and takes up to want; it returns how many it took, 0 when
// ctx ended first.
func (s *Share) acquire(ctx context.Context, want int) int {
	b := s.b
	b.mu.Lock()
	w := &waiter{s: s, want: max(want, 1), ready: make(chan struct{})}
	b.waiting = append(b.waiting, w)
	b.dispatch()
	b.mu.Unlock()
	select {
	case <-w.ready:
		return w.got
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.got > 0 { // granted as ctx ended
		s.held -= w.got
		b.free += w.got
		b.dispatch()
		return 0
	}
	b.waiting = slices.DeleteFunc(b.waiting, func(x *waiter) bool { return x == w })
	return 0
}

// release gives back n slots.
func (s *Share) release(n int) {
	if n <= 0 {
		return
	}
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	s.held -= n
	b.free += n
	b.dispatch()
}

// run runs task on one of the budget's goroutines, in a slot the share took.
func (s *Share) run(task func()) { s.b.tasks <- task }

// dispatch gives free slots to the waiters, the longest waiting first: each takes what it wants
// of what it may take. b.mu is held.
func (b *Budget) dispatch() {
	if b.free == 0 || len(b.waiting) == 0 {
		return
	}
	keep := b.waiting[:0]
	for _, w := range b.waiting {
		if n := min(w.want, b.available(w.s)); n > 0 {
			w.s.held += n
			b.free -= n
			w.got = n
			close(w.ready)
			continue
		}
		keep = append(keep, w)
	}
	clear(b.waiting[len(keep):])
	b.waiting = keep
}

// available is how many free slots s may take: those not kept for the guarantees of the other
// shares. b.mu is held.
func (b *Budget) available(s *Share) int {
	kept := 0
	for _, o := range b.shares {
		if o != s {
			kept += max(o.guaranteed-o.held, 0)
		}
	}
	return b.free - kept
}
