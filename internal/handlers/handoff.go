package handlers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Handoff hands the re-checks held in Redis (OrdersConfig.PollHoldAhead) to JetStream shortly
// before they are due, as message schedules for the time each is due. JetStream then holds only
// the re-checks due within Ahead, however many orders are under review: nats-server fires a
// schedule late when its stream holds a great many of them (docs/benchmarks.md, section 4).
// Several workers may run it: each held re-check is taken by one. One taken and not handed (the
// worker stopped between the two, JetStream refused it) is found by the Reconciler once overdue.
type Handoff struct {
	Store *orderstate.Store
	// Shops are the IDs of the shops whose held re-checks it hands (they are kept per shop).
	Shops []string
	Polls Polls
	// Ahead is how long before a held re-check is due it is handed: more than a run's interval
	// and the time a run takes, so that JetStream has it before it is due.
	Ahead time.Duration
	Now   func() time.Time
}

// handoffBatch bounds the re-checks one Redis call takes.
const handoffBatch = 500

// Once hands every held re-check due within Ahead and returns how many it scheduled. An order
// whose state no longer holds the re-check it was taken for (decided, changed or cancelled since)
// is dropped. The error joins the failures of every shop, each naming its shop: Redis's, or
// JetStream's; the re-checks of a failed batch are left to the Reconciler.
func (h *Handoff) Once(ctx context.Context) (int, error) {
	handed := 0
	var errs []error
	for _, shop := range h.Shops {
		n, err := h.shop(ctx, shop)
		handed += n
		if err != nil {
			errs = append(errs, fmt.Errorf("handing the held re-checks of shop %s to JetStream: %w", shop, err))
		}
	}
	return handed, errors.Join(errs...)
}

// shop is Once for the held re-checks of one shop.
func (h *Handoff) shop(ctx context.Context, shop string) (int, error) {
	handed := 0
	for {
		held, err := h.Store.TakeHeld(ctx, shop, h.Now().Add(h.Ahead), handoffBatch)
		if err != nil || len(held) == 0 {
			return handed, err
		}
		n, rest, err := h.hand(ctx, shop, held)
		handed += n
		if err != nil {
			return handed, errors.Join(err, h.Store.HoldAgain(ctx, shop, rest))
		}
		if len(held) < handoffBatch {
			return handed, nil
		}
	}
}

// handAtOnce is how many schedules hand publishes at once: each waits for JetStream's
// acknowledgement, and one after the other they did not keep up with a wave of 1,800 re-checks/s
// on a busy 2-core machine (docs/benchmarks.md, section 4).
const handAtOnce = 32

// hand schedules the re-checks of held in JetStream and returns how many it scheduled and, on an
// error, those it did not hand (after the first failure it tries no more).
func (h *Handoff) hand(ctx context.Context, shop string, held []orderstate.HeldRecheck) (int, []orderstate.HeldRecheck, error) {
	orders := make([]string, len(held))
	for i, r := range held {
		orders[i] = r.Order
	}
	states, err := h.Store.GetMany(ctx, shop, orders)
	if err != nil {
		return 0, held, err
	}
	var (
		mu        sync.Mutex
		scheduled int
		rest      []orderstate.HeldRecheck
		first     error
		wg        sync.WaitGroup
	)
	slots := make(chan struct{}, handAtOnce)
	for i, st := range states {
		if st.Status != orderstate.StatusPending || !st.PollScheduled || !st.PollHeld || st.PollAt.IsZero() {
			continue // decided, changed or cancelled since it was held
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			mu.Lock()
			failed := first != nil
			mu.Unlock()
			err := first
			if !failed {
				err = h.Polls.Schedule(withTraceParent(ctx, st.PollTrace), PollRequest{Shop: shop, OrderID: held[i].Order, Seq: st.PollSeq}, st.PollAt)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rest = append(rest, held[i])
				first = cmp.Or(first, err)
				return
			}
			scheduled++
		})
	}
	wg.Wait()
	return scheduled, rest, first
}

// traceParent returns the W3C traceparent of ctx's span, "" when it has none (tracing off).
func traceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c.Get("traceparent")
}

// withTraceParent returns ctx with the remote span of traceparent (traceParent), so that what is
// published within it joins that trace; ctx as it is for "" or one not valid.
func withTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}
