package consumer_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/consumer"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// filtered creates a durable consumer of the test stream that takes the subjects of filter.
func (e *jsEnv) filtered(t *testing.T, name, filter string) jetstream.Consumer {
	t.Helper()
	c, err := e.js.CreateOrUpdateConsumer(t.Context(), testStream, jetstream.ConsumerConfig{
		Durable: name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 5 * time.Second, MaxDeliver: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// publishTo publishes n messages to subject.
func (e *jsEnv) publishTo(t *testing.T, subject string, n int) {
	t.Helper()
	for i := range n {
		if _, err := e.js.Publish(t.Context(), subject, fmt.Appendf(nil, "%s-%d", subject, i)); err != nil {
			t.Fatal(err)
		}
	}
}

// ordersAndPolls starts a JetStream server of the test's own with two consumers of its stream,
// orders (subject orders.created) and polls (orders.poll), and publishes n messages for orders.
func ordersAndPolls(t *testing.T, n int) (e *jsEnv, orders, polls jetstream.Consumer) {
	t.Helper()
	e = newJSEnv(t)
	orders, polls = e.filtered(t, "orders", "orders.created"), e.filtered(t, "polls", "orders.poll")
	e.publishTo(t, "orders.created", n)
	return e, orders, polls
}

// newBudget returns a budget of the given slots, closed when the test ends: after the consumers
// are stopped, if run is called later.
func newBudget(t *testing.T, slots int) *consumer.Budget {
	b := consumer.NewBudget(slots)
	t.Cleanup(b.Close)
	return b
}

// gauge counts the handlers running and the most that ran at once.
type gauge struct{ now, most, done atomic.Int32 }

func (g *gauge) enter() {
	n := g.now.Add(1)
	for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
	}
}

func (g *gauge) leave() { g.now.Add(-1); g.done.Add(1) }

// TestConsumersShareOneBudget: the consumers of one budget handle at most its size of messages
// at once between them, not each (the worker's three consumers each handled -concurrency).
func TestConsumersShareOneBudget(t *testing.T) {
	t.Parallel()
	e := newJSEnv(t)
	a, b := e.filtered(t, "a", "orders.a"), e.filtered(t, "b", "orders.b")
	e.publishTo(t, "orders.a", 6)
	e.publishTo(t, "orders.b", 6)
	budget := newBudget(t, 4)
	var g gauge
	gate := make(chan struct{})
	h := func(ctx context.Context, _ *handlers.Message) error {
		g.enter()
		defer g.leave()
		select {
		case <-gate:
		case <-ctx.Done():
		}
		return nil
	}
	for _, c := range []jetstream.Consumer{a, b} {
		run(t, c, h, consumer.Config{Share: budget.Share(0), AckWait: 5 * time.Second, MaxDeliver: 3,
			DeadLetter: (&deadLetters{}).write})
	}
	// Every slot busy and both consume loops waiting for one: neither fetches until a slot is
	// given back, so no fifth handler can start from here on.
	wait.For(t, 5*time.Second, "4 handlers running and both consumers waiting for a slot",
		func() bool { return g.now.Load() == 4 && budget.Waiters() == 2 })
	if m := g.most.Load(); m != 4 {
		t.Errorf("%d handlers ran at once on a budget of 4", m)
	}
	close(gate)
	wait.For(t, 5*time.Second, "the 12 messages handled", func() bool { return g.done.Load() == 12 })
	if m := g.most.Load(); m != 4 {
		t.Errorf("%d handlers ran at once on a budget of 4", m)
	}
}

// TestStuckConsumerLeavesTheOthersTheirSlots: a consumer whose handlers hang (each until its
// handler timeout) takes every slot it can, but not those another consumer is guaranteed: the
// due polls still run while ORDERS is flooded with messages that hang.
func TestStuckConsumerLeavesTheOthersTheirSlots(t *testing.T) {
	t.Parallel()
	e, orders, polls := ordersAndPolls(t, 20)
	budget := newBudget(t, 4)
	ordersShare, pollsShare := budget.Share(1), budget.Share(1)
	var stuck gauge
	cfg := consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 3, Grace: 100 * time.Millisecond,
		DeadLetter: (&deadLetters{}).write}
	cfg.Share = ordersShare
	run(t, orders, func(ctx context.Context, _ *handlers.Message) error {
		stuck.enter()
		defer stuck.leave()
		<-ctx.Done()
		return ctx.Err()
	}, cfg)
	// Three stuck handlers and the consume loop waiting for a slot: the free fourth is not given
	// to it (Budget's own tests check that it never is).
	wait.For(t, 5*time.Second, "3 stuck handlers and the consumer waiting for the fourth slot",
		func() bool { return stuck.now.Load() == 3 && budget.Waiters() == 1 })
	if m := stuck.most.Load(); m != 3 {
		t.Fatalf("the stuck consumer took %d slots of 4; one is the other consumer's", m)
	}

	e.publishTo(t, "orders.poll", 5)
	var handled atomic.Int32
	cfg.Share = pollsShare
	run(t, polls, func(context.Context, *handlers.Message) error { handled.Add(1); return nil }, cfg)
	wait.For(t, 5*time.Second, "the 5 polls handled beside the stuck consumer", func() bool { return handled.Load() == 5 })
}

// TestSlowConsumerDoesNotStarveTheOthers: free slots go to the consumers waiting for them in
// turn, so that a consumer with a backlog of slow messages does not keep another waiting until
// its backlog is gone.
func TestSlowConsumerDoesNotStarveTheOthers(t *testing.T) {
	t.Parallel()
	e, orders, polls := ordersAndPolls(t, 200)
	budget := newBudget(t, 4)
	var slow gauge
	cfg := consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 3, DeadLetter: (&deadLetters{}).write}
	cfg.Share = budget.Share(0)
	run(t, orders, func(context.Context, *handlers.Message) error {
		slow.enter()
		defer slow.leave()
		time.Sleep(50 * time.Millisecond)
		return nil
	}, cfg)
	wait.For(t, 5*time.Second, "every slot busy with ORDERS", func() bool { return slow.now.Load() == 4 })

	e.publishTo(t, "orders.poll", 20)
	var handled atomic.Int32
	cfg.Share = budget.Share(0)
	run(t, polls, func(context.Context, *handlers.Message) error { handled.Add(1); return nil }, cfg)
	wait.For(t, 10*time.Second, "the 20 polls handled", func() bool { return handled.Load() == 20 })
	// 4 slots at 50 ms a message take 2.5 s for the 200 orders: the polls waited for a part of them.
	if n := slow.done.Load(); n > 150 {
		t.Errorf("the polls were handled after %d of the 200 slow orders; want them to take turns", n)
	}
}
