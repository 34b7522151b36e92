package reliability

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sampledata"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// Ordering by the importer's clock: a late retry of an order.created is no reinstatement.

// lateCount is how many orders get a late retry of their order.created after their cancel.
func (x *run) lateCount() int {
	if x.r.opts.Quick {
		return 40
	}
	return 200
}

// lateOrder is one order of the late-retry scenario and whether it was created again after its
// cancel (reinstated) or must stay cancelled.
type lateOrder struct {
	shop, id   string
	reinstated bool
	done       bool // its script reached the end
}

// injectLateRetries runs lateCount orders of their own, started between 20% and 60% of the
// workload: each is created (its CloudEvents time a minute before it is published, as an
// importer's event carries when the order was imported), approved, cancelled, and then gets the
// importer's late retry of its order.created: the same data and time, a new id, published after
// the cancel. Every other order is then created again with the time now, after the cancel's.
func injectLateRetries(ctx context.Context, x *run) error {
	n := x.lateCount()
	orders := make([]*lateOrder, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		if err := x.waitStarted(ctx, 0.2+0.4*float64(i)/float64(n)); err != nil {
			return err
		}
		shop := shopA
		if i%3 == 0 {
			shop = shopB
		}
		orders[i] = &lateOrder{shop: shop, id: fmt.Sprintf("%s-L%04d", x.d.tag, i+1), reinstated: i%2 == 0}
		wg.Go(func() {
			if err := x.lateRetry(ctx, orders[i]); err != nil && ctx.Err() == nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	x.lateOrders = orders
	done, again := 0, 0
	for _, o := range orders {
		if o.done {
			done++
			if o.reinstated {
				again++
			}
		}
	}
	x.note = fmt.Sprintf("%d orders cancelled, then a late retry of their order.created; %d created again after", done, again)
	if done == 0 || again == 0 {
		x.find("not injected", "%d of %d orders got their late retry, %d were created again: too few to test anything", done, n, again)
	}
	return <-errs
}

// lateRetry drives one order of the late-retry scenario. An order whose life stops early (a dead
// letter) is left as it is: the check sees its events.
func (x *run) lateRetry(ctx context.Context, lo *lateOrder) error {
	d := x.d
	p := &plan{Shop: lo.shop, OrderID: lo.id, Rule: sampledata.Ordinary}
	o := d.gen.order(p)
	orderTime := time.Now().Add(-time.Minute)
	ok := Want{Direct: []string{events.TypeCreditOK}, Final: events.TypeCreditOK, MayBeUnknown: true}
	created, err := d.sendAt(ctx, orderTime, events.TypeOrderCreated, lo.shop, lo.id, o, ok, "")
	if err != nil {
		return err
	}
	if decided, ok := d.decision(ctx, created); !ok || decided != events.TypeCreditOK {
		return nil
	}
	cancelledAt := time.Now()
	cancel, err := d.sendAt(ctx, cancelledAt, events.TypeOrderCancelled, lo.shop, lo.id, events.Cancel{ShopID: lo.shop, OrderID: lo.id},
		Want{Direct: []string{events.TypeCreditCancelled}}, "")
	if err != nil {
		return err
	}
	if l, ok := d.first(ctx, cancel); !ok || l.dead {
		return nil
	}
	// The late retry changes nothing: no outcome (its order's history says so), or the
	// cancellation again.
	retry, err := d.sendAt(ctx, orderTime, events.TypeOrderCreated, lo.shop, lo.id, o,
		Want{Direct: []string{events.TypeCreditCancelled}, Silent: true}, "")
	if err != nil {
		return err
	}
	x.settled(ctx, retry)
	if lo.reinstated {
		// Created again by the shop: its time is after the cancel's, to the second (CloudEvents
		// times are written in whole seconds here).
		if wait := time.Until(cancelledAt.Truncate(time.Second).Add(time.Second)); wait > 0 {
			if err := childproc.Sleep(ctx, wait); err != nil {
				return err
			}
		}
		again, err := d.send(ctx, events.TypeOrderCreated, lo.shop, lo.id, o, ok, "")
		if err != nil {
			return err
		}
		if _, ok := d.decision(ctx, again); !ok {
			return nil
		}
	}
	lo.done = true
	return nil
}

// settled waits (at most 30 s) until an event has an outcome, a dead letter, or an entry in its
// order's history: a late retry changes nothing, and the script must not go on before the
// worker handled it. One still unanswered after that is the check's to count.
func (x *run) settled(ctx context.Context, e *Event) {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !x.d.answered(e) {
		if done, err := x.inHistory(wctx, e); err == nil && done {
			return
		}
		if childproc.Sleep(wctx, 250*time.Millisecond) != nil {
			return
		}
	}
}

// checkLateOrders runs once the worker went quiet: ATODENE must hold every order that only got a
// late retry as cancelled, registered once; and every reinstated one registered again, live.
func checkLateOrders(ctx context.Context, x *run) error {
	var txs []sandbox.TransactionView
	if err := x.s.SandboxJSON(ctx, "/sandbox/transactions", &txs); err != nil {
		return err
	}
	byOrder := txsByOrder(txs)
	for _, lo := range x.lateOrders {
		if lo == nil || !lo.done {
			continue
		}
		ts := byOrder[lo.shop+"/"+lo.id]
		live := 0
		for _, t := range ts {
			if txLive(t) {
				live++
			}
		}
		switch {
		case !lo.reinstated && (len(ts) != 1 || live != 0):
			x.find("reinstated by a late retry", "%s/%s: cancelled, then only a late retry of its order.created, but ATODENE holds %d transactions, %d live", lo.shop, lo.id, len(ts), live)
		case lo.reinstated && (len(ts) != 2 || live != 1):
			x.find("not created again", "%s/%s: cancelled, then created again after the cancel, but ATODENE holds %d transactions, %d live", lo.shop, lo.id, len(ts), live)
		}
	}
	return nil
}
