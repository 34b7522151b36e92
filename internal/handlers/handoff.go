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
// Several workers may run it: each held re-check is claimed by one (orderstate.Store.TakeHeld).
// One claimed and not handed (the worker stopped, JetStream failed) is taken again once the claim
// runs out, handoffClaim past Ahead.
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

// handoffClaim is how long past Ahead a re-check taken by a worker is its own: one the worker
// did not hand (it stopped, JetStream failed) is taken again after it, that much late at most.
const handoffClaim = 30 * time.Second

// Once hands every held re-check due within Ahead and returns how many it scheduled. An order
// whose state no longer holds the re-check it was taken for (decided, changed or cancelled since)
// is dropped. The error joins the failures of every shop, each naming its shop: Redis's, or
// JetStream's; the re-checks a failed run took are taken again once its claim runs out.
// Cancelling ctx stops it before the next shop, with ctx's error among the others.
func (h *Handoff) Once(ctx context.Context) (int, error) {
	return eachShop(ctx, h.Shops, "handing the held re-checks of shop %s to JetStream", h.shop)
}

// eachShop runs f for every shop and sums what it counts. A shop's failure does not stop the
// others: the error joins every shop's, each wrapped with what (a format naming the shop).
// Cancelling ctx stops it before the next shop, with ctx's error among the others.
func eachShop(ctx context.Context, shops []string, what string, f func(ctx context.Context, shop string) (int, error)) (int, error) {
	total := 0
	var errs []error
	for _, shop := range shops {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		n, err := f(ctx, shop)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf(what+": %w", shop, err))
		}
	}
	return total, errors.Join(errs...)
}

// shop is Once for the held re-checks of one shop.
func (h *Handoff) shop(ctx context.Context, shop string) (int, error) {
	handed := 0
	for {
		now := h.Now()
		claim := now.Add(h.Ahead + handoffClaim)
		held, err := h.Store.TakeHeld(ctx, shop, now.Add(h.Ahead), claim, handoffBatch)
		if err != nil || len(held) == 0 {
			return handed, err
		}
		n, done, err := h.hand(ctx, shop, held)
		handed += n
		if err := h.Store.Handed(ctx, shop, done, claim); err != nil {
			return handed, err
		}
		if err != nil || len(held) < handoffBatch {
			return handed, err
		}
	}
}

// handAtOnce is how many schedules hand publishes at once: each waits for JetStream's
// acknowledgement, and one after the other they did not keep up with a wave of 1,800 re-checks/s
// on a busy 2-core machine (docs/benchmarks.md, section 4).
const handAtOnce = 32

// hand schedules the re-checks of held in JetStream and returns how many it scheduled, the
// orders done with (handed, or no longer holding the re-check claimed), and the first error
// (after it, it tries no more).
func (h *Handoff) hand(ctx context.Context, shop string, held []orderstate.HeldRecheck) (int, []string, error) {
	states, readErr := h.states(ctx, shop, held)
	var (
		mu        sync.Mutex
		scheduled int
		done      []string
		pubErr    error
		wg        sync.WaitGroup
	)
	slots := make(chan struct{}, handAtOnce)
	for i, st := range states {
		req, ok := recheckOf(shop, held[i], st)
		if !ok {
			mu.Lock()
			done = append(done, held[i].Order)
			mu.Unlock()
			continue
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			mu.Lock()
			failed := pubErr != nil
			mu.Unlock()
			if failed {
				return
			}
			err := h.Polls.Schedule(withTraceParent(ctx, st.PollTrace), req, req.At)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				pubErr = cmp.Or(pubErr, err)
				return
			}
			scheduled++
			done = append(done, held[i].Order)
		})
	}
	wg.Wait()
	return scheduled, done, errors.Join(readErr, pubErr)
}

// states reads the states of held; an order whose state cannot be read (undecodable) gets a
// state with Version -1, left claimed, and the error names it: it does not hold the others back.
func (h *Handoff) states(ctx context.Context, shop string, held []orderstate.HeldRecheck) ([]orderstate.State, error) {
	orders := make([]string, len(held))
	for i, r := range held {
		orders[i] = r.Order
	}
	states, err := h.Store.GetMany(ctx, shop, orders)
	if err == nil || errors.Is(err, orderstate.ErrUnavailable) {
		return states, err
	}
	states = make([]orderstate.State, len(held))
	var first error
	for i, o := range orders {
		if states[i], err = h.Store.Get(ctx, shop, o); err != nil {
			if errors.Is(err, orderstate.ErrUnavailable) {
				return nil, err
			}
			states[i].Version, first = -1, cmp.Or(first, err)
		}
	}
	return states, first
}

// recheckOf returns the re-check to hand for the held r of shop, whose state is st, and whether
// there is one: the state still holds that very re-check (under review, due by r's time: the state
// of a worker of an earlier version, which does not know PollHeld, counts), or the state is gone
// (lost with Redis, or expired): its re-check then goes to an operator as any re-check of a lost
// state does. A state that moved on (decided, cancelled, its re-check set again since) has
// nothing to hand: a newer hold has its own entry.
func recheckOf(shop string, r orderstate.HeldRecheck, st orderstate.State) (PollRequest, bool) {
	req := PollRequest{Shop: shop, OrderID: r.Order, Seq: st.PollSeq, At: st.PollAt}
	switch {
	case st.Version < 0: // unreadable: left claimed
		return req, false
	case st.Version == 0:
		req.At = r.Due
		return req, true
	}
	// r.Due is the due time, or a claim that ran out (later than it); a later PollAt is a newer
	// re-check, held with an entry of its own.
	due, ok := st.RecheckDue()
	return req, ok && due.UnixMilli() <= r.Due.UnixMilli()
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
