package reliability

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sampledata"
)

// One hot order: a burst of events for one order must not stall the other shops' orders.

// hotBurst is how many events the hot order gets at once: more than the worker's -concurrency
// (64), and more than its history keeps (a change that got no outcome is found in the history or,
// beyond it, by its record in Redis; else it is lost).
const hotBurst = 400

// probeSize is how many orders of the other shop each latency probe sends at once.
func (x *run) probeSize() int {
	if x.r.opts.Quick {
		return 50
	}
	return 200
}

// injectHotOrder registers one order of rel-a, measures the latency of a probe of rel-b orders
// when 15% of the orders have started, and at 50% publishes the hot order's burst (hotBurst
// changes of it, each with another coupon) and at once the same probe again. The probe with the
// burst must end within twice the time of the probe without it (and never less than 1 s more).
func injectHotOrder(ctx context.Context, x *run) error {
	hot, err := x.hotOrder(ctx)
	if err != nil {
		return err
	}
	if err := x.waitStarted(ctx, 0.15); err != nil {
		return err
	}
	without, err := x.probe(ctx, "P")
	if err != nil {
		return err
	}
	if err := x.waitStarted(ctx, 0.5); err != nil {
		return err
	}
	if err := x.burst(ctx, hot); err != nil {
		return err
	}
	with, err := x.probe(ctx, "Q")
	if err != nil {
		return err
	}
	x.judgeLatency(without, with)
	return nil
}

// hotOrder registers the hot order, an ordinary order of rel-a with room for hotBurst yen of
// coupons, and waits for its approval.
func (x *run) hotOrder(ctx context.Context) (events.Order, error) {
	id := x.d.tag + "-HOT"
	o := x.d.gen.order(&plan{Shop: shopA, OrderID: id, Rule: sampledata.Ordinary})
	o.Items = append(o.Items, events.Item{Name: dearest().Name, UnitPrice: dearest().Price, Quantity: 1})
	sampledata.Bill(&o)
	want := Want{Direct: []string{events.TypeCreditOK}, Final: events.TypeCreditOK, MayBeUnknown: true}
	created, err := x.d.send(ctx, events.TypeOrderCreated, shopA, id, o, want, "")
	if err != nil {
		return o, err
	}
	if l, ok := x.d.first(ctx, created); !ok || l.dead || l.outs[0].Type != events.TypeCreditOK {
		return o, fmt.Errorf("the hot order %s was not approved", id)
	}
	return o, nil
}

// burst publishes hotBurst changes of the hot order, each with one yen more of coupon. A change of
// an OK order is approved again; one handled after a later one is stale and changes nothing (its
// order's history says so), hence Silent. The last one is never stale: it must be answered, and
// ATODENE must end with its amount (see the false outcomes).
func (x *run) burst(ctx context.Context, hot events.Order) error {
	for i := range hotBurst {
		u := hot
		u.Discount = hot.Discount + int64(i+1)
		sampledata.Bill(&u)
		change := Want{Direct: []string{events.TypeCreditOK}, Final: events.TypeCreditOK, Silent: i < hotBurst-1}
		if _, err := x.d.send(ctx, events.TypeOrderUpdated, shopA, hot.OrderID, u, change, ""); err != nil {
			return err
		}
	}
	return nil
}

// judgeLatency compares the longest latency of the probe with the burst with the one without.
func (x *run) judgeLatency(without, with []time.Duration) {
	base, got := slices.Max(without), slices.Max(with)
	limit := max(2*base, base+time.Second)
	x.note = fmt.Sprintf("%d changes of one rel-a order; %d rel-b orders answered within %s without, %s with the burst",
		hotBurst, len(with), base.Round(10*time.Millisecond), got.Round(10*time.Millisecond))
	x.notef("latency of %d rel-b orders published at once, without the burst: %s; with it: %s", len(with), percentiles(without), percentiles(with))
	if got > limit {
		x.find("hot order stalls the others", "with the burst of %d events on one order, %d other orders took %s to be answered; without it %s (limit %s)",
			hotBurst, len(with), got.Round(10*time.Millisecond), base.Round(10*time.Millisecond), limit.Round(10*time.Millisecond))
	}
}

// probe publishes probeSize new orders of rel-b (ordinary buyers) at once and returns, for each,
// the time from its publication to its first answer, sorted.
func (x *run) probe(ctx context.Context, label string) ([]time.Duration, error) {
	n := x.probeSize()
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := &plan{Shop: shopB, OrderID: fmt.Sprintf("%s-%s%04d", x.d.tag, label, i+1), Rule: sampledata.Ordinary}
			start := time.Now()
			e, err := x.d.send(ctx, events.TypeOrderCreated, p.Shop, p.OrderID, x.d.gen.order(p),
				Want{Direct: []string{events.TypeCreditOK}, Final: events.TypeCreditOK, MayBeUnknown: true}, "")
			if err != nil {
				errs[i] = err
				return
			}
			if _, ok := x.d.first(ctx, e); !ok {
				errs[i] = ctx.Err()
			}
			lat[i] = time.Since(start)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(lat)
	return lat, nil
}

// percentiles describes sorted latencies: p50, p90 and the longest.
func percentiles(d []time.Duration) string {
	at := func(q float64) time.Duration { return d[int(q*float64(len(d)-1))].Round(10 * time.Millisecond) }
	return fmt.Sprintf("p50 %s, p90 %s, max %s", at(0.5), at(0.9), at(1))
}

// dearest is the dearest of the workload's products.
func dearest() sampledata.Product {
	return slices.MaxFunc(products, func(a, b sampledata.Product) int { return int(a.Price - b.Price) })
}
