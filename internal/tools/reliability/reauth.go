package reliability

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sampledata"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// The reauthorization scenario (docs/reliability.md): the shops re-authorize an order OK and not
// shipped after reauthorizeAfter, and the sandbox refuses a shipment report on an approval older
// than authorizationLifetime (er000102). Most orders wait from shipAfterMin to shipAfterMax after
// their OK before their tracking number (one to three re-authorizations); longWaits of them wait
// longWaitMin to longWaitMax, past the lifetime, so that a re-authorization missed shows as a
// refused shipment.
//
// The lifetime is long for a test because a SIGKILLed worker's order leases outlive it: an order
// it was handling waits out the lease (the worker's -lease is its handler timeout, 18 s here, and
// 30 s more: 48 s) before anything else of it is handled, its re-authorization too. The approval
// of such an order is then at most reauthorizeAfter + 48 s + a redelivery old, well within 66 s.
const (
	reauthorizeAfter      = 4 * time.Second
	authorizationLifetime = 66 * time.Second
	shipAfterMin          = 5 * time.Second
	shipAfterMax          = 14 * time.Second
	longWaits             = 15 // percent of the orders
	longWaitMin           = 68 * time.Second
	longWaitMax           = 72 * time.Second
	// twoLiveWindow is how long an order may hold two live transactions: from a re-authorization's
	// registration to the cancel of the old transaction, a review (2 s) and its re-checks (1 s,
	// then 2 s), and, when the worker is killed in between, its lease on the order (48 s) and the
	// redelivery.
	twoLiveWindow = 60 * time.Second
)

// reauthPlans makes the orders of the reauthorization scenario: all approved (85% at once, 10%
// after a review, 5% of slow buyers), every one shipped once or, 15%, with a corrected number,
// and an invoice asked for where it is enclosed; each waits ShipAfter before shipping, longWaits
// in a hundred past the authorization's lifetime.
func reauthPlans(g *generator, n int) []*plan {
	out := make([]*plan, n)
	for i := range n {
		r := g.rng(7, uint64(i))
		rl := sampledata.Ordinary
		switch x := r.IntN(100); {
		case x < 10:
			rl = sampledata.ReviewOK
		case x < 15:
			rl = sampledata.Slow
		}
		p := &plan{Shop: shopA, OrderID: fmt.Sprintf("%s-%06d", g.tag, i+1), Rule: rl, Track: 1}
		if r.IntN(100) < 30 {
			p.Shop, p.Enclosed = shopB, true
		}
		if r.IntN(100) < 15 {
			p.Track = 2
		}
		p.Invoice = p.Enclosed
		p.ShipAfter = shipAfterMin + time.Duration(r.Int64N(int64(shipAfterMax-shipAfterMin)))
		if r.IntN(100) < longWaits {
			p.ShipAfter = longWaitMin + time.Duration(r.Int64N(int64(longWaitMax-longWaitMin)))
		}
		out[i] = p
	}
	return out
}

// injectReauthKills SIGKILLs the worker three times (five at full size) at random moments while
// orders are being re-authorized: from reauthorizeAfter after the start to when the last orders
// ship, one in each slice of that span, and restarts it each time.
func injectReauthKills(ctx context.Context, x *run) error {
	n, rate := 5, 60.0
	if x.r.opts.Quick {
		n, rate = 3, 25
	}
	start := time.Now()
	span := time.Duration(float64(x.total)/rate*float64(time.Second)) + shipAfterMax - reauthorizeAfter
	r := rand.New(rand.NewPCG(x.seed, 2))
	var at []string
	for i := range n {
		due := reauthorizeAfter + time.Duration((float64(i)+r.Float64())/float64(n)*float64(span))
		if err := childproc.Sleep(ctx, time.Until(start.Add(due))); err != nil {
			return err
		}
		at = append(at, fmt.Sprintf("%.1fs", time.Since(start).Seconds()))
		if err := x.killWorker(ctx, x.s.Workers[0]); err != nil {
			return err
		}
	}
	x.note = fmt.Sprintf("%d worker SIGKILLs (at %s)", n, strings.Join(at, ", "))
	return nil
}

// reauthWatch samples the sandbox's transactions while the scenario runs, and measures how long
// each order holds two live ones (neither cancelled nor declined) at once.
type reauthWatch struct {
	stop context.CancelFunc
	done chan struct{}

	mu      sync.Mutex
	since   map[string]time.Time     // order → since when it holds two live transactions, in this stretch
	over    map[string]time.Duration // orders that held two longer than twoLiveWindow: the longest stretch
	longest time.Duration
	which   string
	samples int
	failed  int
	lastErr error
}

// startReauthWatch starts the sampler, every 500 ms (a second at full size, where the list is
// ten times as long); checkReauthorizations stops it.
func startReauthWatch(ctx context.Context, x *run) error {
	every := 500 * time.Millisecond
	if !x.r.opts.Quick {
		every = time.Second
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &reauthWatch{stop: cancel, done: make(chan struct{}), since: map[string]time.Time{}, over: map[string]time.Duration{}}
	x.reauth = w
	go func() {
		defer close(w.done)
		for wctx.Err() == nil {
			w.sample(wctx, x)
			_ = childproc.Sleep(wctx, every)
		}
	}()
	return nil
}

func (w *reauthWatch) sample(ctx context.Context, x *run) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var txs []sandbox.TransactionView
	err := x.s.SandboxJSON(cctx, "/sandbox/transactions", &txs)
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			w.failed, w.lastErr = w.failed+1, err
		}
		return
	}
	w.samples++
	for key, ts := range txsByOrder(txs) {
		if live := countLive(ts); live < 2 {
			delete(w.since, key)
			continue
		}
		first, ok := w.since[key]
		if !ok {
			w.since[key] = now
			continue
		}
		d := now.Sub(first)
		if d > w.longest {
			w.longest, w.which = d, key
		}
		if d > twoLiveWindow && d > w.over[key] {
			w.over[key] = d
		}
	}
}

func countLive(ts []sandbox.TransactionView) int {
	n := 0
	for _, t := range ts {
		if txLive(t) {
			n++
		}
	}
	return n
}

// checkReauthorizations runs once the worker went quiet. It stops the sampler and checks, per
// order of the workload:
//   - it never held two live transactions longer than twoLiveWindow (sampled);
//   - it ends with exactly one live transaction, every other cancelled;
//   - its re-authorizations were registered as <id>_R1, _R2... without a gap, each shopOrderId
//     once (the sandbox's Registrations);
//   - every re-authorization's transaction is named by a credit outcome marked reauthorized (its
//     outcome is not lost);
//   - its last credit outcome is credit.ok naming the live transaction.
//
// The shipments (shipment.ok on the live transaction, never refused as expired) are the workload's
// own wants, checked by Check with the rest.
func checkReauthorizations(ctx context.Context, x *run) error {
	w := x.reauth
	w.stop()
	<-w.done
	w.mu.Lock()
	for _, key := range slices.Sorted(maps.Keys(w.over)) {
		x.find("two live transactions", "%s held two live transactions for %.1fs, longer than %s", key, w.over[key].Seconds(), twoLiveWindow)
	}
	x.notef("two live transactions of one order at once (a re-authorization under way): at most %.1fs (%s), in %d samples of the sandbox", w.longest.Seconds(), w.which, w.samples)
	if w.failed > 0 {
		x.notef("%d samples of the sandbox failed (last: %v)", w.failed, w.lastErr)
	}
	w.mu.Unlock()

	var txs []sandbox.TransactionView
	if err := x.s.SandboxJSON(ctx, "/sandbox/transactions", &txs); err != nil {
		return fmt.Errorf("reading the sandbox's transactions: %w", err)
	}
	outs, dead, err := x.d.collect(ctx)
	if err != nil {
		return fmt.Errorf("reading RESULTS and DLQ: %w", err)
	}
	// An order whose registration's answer died with the worker ends outcome-unknown, for an
	// operator (Check allows it): what ATODENE holds of it is the operator's to settle.
	ledger := x.d.ledger()
	byKey := map[string]*Event{}
	for _, e := range ledger {
		byKey[e.Key] = e
	}
	operator := map[string]bool{}
	for _, d := range dead {
		if e := byKey[d.Event]; e != nil && d.Reason == "outcome-unknown" {
			operator[e.Shop+"/"+e.Order] = true
		}
	}
	outs = sortBySeq(outs)
	lastCredit, reauthOut := map[string]Outcome{}, map[string]bool{}
	for _, o := range outs {
		if strings.HasPrefix(o.Type, "credit.") {
			lastCredit[o.Shop+"/"+o.Order] = o
			if o.Reauthorized {
				reauthOut[o.TxID] = true
			}
		}
	}
	byOrder := txsByOrder(txs)
	times := map[int]int{} // re-authorizations per order → orders
	for _, e := range ledger {
		if e.Type != events.TypeOrderCreated || len(e.Msgs) == 0 {
			continue
		}
		key := e.Shop + "/" + e.Order
		ts := byOrder[key]
		if len(ts) == 0 || operator[key] {
			continue // Check reports the order, or allows it to an operator
		}
		var live []sandbox.TransactionView
		var ns []int
		for _, t := range ts {
			if txLive(t) {
				live = append(live, t)
			} else if t.State != "cancelled" {
				x.find("not cancelled", "%s: transaction %s (%s) is %s, decided %s, and not the live one", key, t.TransactionID, t.ShopOrderID, t.State, t.Decision)
			}
			if !derivedShopOrderID(t.ShopOrderID) {
				continue
			}
			n, _ := strconv.Atoi(t.ShopOrderID[strings.LastIndex(t.ShopOrderID, "_R")+2:])
			ns = append(ns, n)
			if t.Registrations != 1 {
				x.find("derived shopOrderId registered twice", "%s: %s registered %d times", key, t.ShopOrderID, t.Registrations)
			}
			if !reauthOut[t.TransactionID] {
				x.find("lost", "%s: re-authorization %s (transaction %s, %s) has no credit outcome marked reauthorized", key, t.ShopOrderID, t.TransactionID, t.Decision)
			}
		}
		slices.Sort(ns)
		for i, n := range ns {
			if n != i+1 {
				x.find("re-authorizations out of sequence", "%s: derived shopOrderIds _R%v, want _R1 to _R%d each once", key, ns, len(ns))
				break
			}
		}
		times[len(ns)]++
		if len(live) != 1 {
			x.find("not one live transaction", "%s: %d live transactions at the end, want exactly 1", key, len(live))
			continue
		}
		if o := lastCredit[key]; o.Type != events.TypeCreditOK || o.TxID != live[0].TransactionID {
			x.find("last credit outcome", "%s: last credit outcome %s names transaction %q, but the live one is %s (%s)", key, o.Type, o.TxID, live[0].TransactionID, live[0].ShopOrderID)
		}
	}
	var dist []string
	for _, k := range slices.Sorted(maps.Keys(times)) {
		dist = append(dist, fmt.Sprintf("%d×%d", times[k], k))
	}
	x.notef("re-authorizations per order (orders×times): %s", strings.Join(dist, ", "))
	if len(operator) > 0 {
		x.notef("%d orders left out of the re-authorization checks: their registration ended outcome-unknown, for an operator", len(operator))
	}
	if len(times) == 0 || times[0] == sum(times) {
		x.find("not injected", "no order was re-authorized")
	}
	return nil
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
