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
	// redelivery. A re-authorization whose answer died with the worker ends unknown within that
	// window, and holds its two transactions until the operator's resolution (reauthop.go): from
	// then on the worker has the window again to settle them. 48 s + a redelivery came to 51 – 55 s
	// in runs on a busy machine: 15 s more leave room for a slower redelivery.
	twoLiveWindow = 75 * time.Second
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

	// op is the operator who resolves the re-authorizations that ended unknown.
	op *reauthOperator

	mu      sync.Mutex
	since   map[string]time.Time     // order → since when it holds two live transactions, in this stretch
	over    map[string][]liveStretch // orders that held two longer than twoLiveWindow: those stretches
	longest time.Duration
	which   string
	samples int
	failed  int
	lastErr error
}

// liveStretch is a time an order held two live transactions, from the first sample that saw them
// to the last.
type liveStretch struct{ from, to time.Time }

// startReauthWatch starts the sampler, every 500 ms (a second at full size, where the list is
// ten times as long), and the operator; checkReauthorizations stops them.
func startReauthWatch(ctx context.Context, x *run) error {
	every := 500 * time.Millisecond
	if !x.r.opts.Quick {
		every = time.Second
	}
	op, err := startReauthOperator(ctx, x)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &reauthWatch{op: op, stop: cancel, done: make(chan struct{}), since: map[string]time.Time{}, over: map[string][]liveStretch{}}
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
		if d > twoLiveWindow {
			if ss := w.over[key]; len(ss) > 0 && ss[len(ss)-1].from.Equal(first) {
				ss[len(ss)-1].to = now
			} else {
				w.over[key] = append(ss, liveStretch{first, now})
			}
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

// checkReauthorizations runs once the worker went quiet. It stops the operator, resolves what it
// missed (then waits for the worker to go quiet again), stops the sampler and checks, per order of
// the workload:
//   - it never held two live transactions longer than twoLiveWindow (sampled), but while a
//     re-authorization that ended unknown waited for the operator: the warn line must come within
//     the window of the stretch's start, and the stretch end within the window of the resolution;
//   - it ends with exactly one live transaction, every other cancelled;
//   - its re-authorizations were registered as <id>_R1, _R2... without a gap, each shopOrderId
//     once (the sandbox's Registrations);
//   - every re-authorization's transaction is named by a credit outcome marked reauthorized (its
//     outcome is not lost), but one an operator's resolution cancelled rather than adopted (the
//     order shipped on its old transaction meanwhile: its re-authorization no longer applies);
//   - its last credit.ok names the live transaction, and every credit outcome after it is a
//     re-authorization's that left the order on it (under review, then dropped or cancelled as the
//     order shipped; declined), naming a transaction no longer live.
//
// The shipments (shipment.ok on the live transaction, never refused as expired) are the workload's
// own wants, checked by Check with the rest.
func checkReauthorizations(ctx context.Context, x *run) error {
	w := x.reauth
	late, err := w.op.finish(ctx, x.d.ledger())
	if err != nil {
		return fmt.Errorf("the operator's resolutions: %w", err)
	}
	if late > 0 {
		if err := x.quiesce(ctx); err != nil {
			x.find("not quiet", "after the operator's resolutions: %v", err)
		}
	}
	w.op.store.Close()
	w.stop()
	<-w.done

	op := w.op
	op.mu.Lock()
	resolved, named, waited, whose := 0, op.transactionsLocked(), time.Duration(0), ""
	for _, key := range slices.Sorted(maps.Keys(op.resolved)) {
		for _, r := range op.resolved[key] {
			resolved++
			if r.after {
				x.find("operator late", "%s: its re-authorization %s ended unknown, and the operator resolved it only after the workload (no warn line read)", key, r.shopOrderID)
			} else if d := r.at.Sub(r.seen); d > waited {
				waited, whose = d, key
			}
		}
	}
	for _, why := range op.refused {
		x.find("operator refused", "the operator's resolution was refused: %s", why)
	}
	if op.failed > 0 {
		x.notef("%d rounds of the operator failed (last: %v)", op.failed, op.lastErr)
	}
	x.note += fmt.Sprintf("; %d resolved by the operator", resolved)
	if resolved > 0 {
		x.notef("the operator resolved %d re-authorizations that ended unknown (order.resolve_requested), %d after the workload; the longest from the worker's warn line to the resolution published: %.1fs (%s)",
			resolved, late, waited.Seconds(), whose)
	} else {
		x.notef("no re-authorization ended unknown: the kills met no registration in flight, and the operator had nothing to resolve")
	}
	w.mu.Lock()
	for _, key := range slices.Sorted(maps.Keys(w.over)) {
		for _, st := range w.over[key] {
			if r, ok := resolvedWithin(op.resolved[key], st); ok {
				if st.to.Sub(r.at) > twoLiveWindow || r.seen.Sub(st.from) > twoLiveWindow {
					x.find("two live transactions", "%s held two live transactions for %.1fs: %.1fs until the worker's line that its re-authorization ended unknown, %.1fs from the operator's resolution; want each at most %s",
						key, st.to.Sub(st.from).Seconds(), r.seen.Sub(st.from).Seconds(), st.to.Sub(r.at).Seconds(), twoLiveWindow)
				}
				continue
			}
			x.find("two live transactions", "%s held two live transactions for %.1fs, longer than %s", key, st.to.Sub(st.from).Seconds(), twoLiveWindow)
		}
	}
	x.notef("two live transactions of one order at once (a re-authorization under way, or waiting for the operator): at most %.1fs (%s), in %d samples of the sandbox", w.longest.Seconds(), w.which, w.samples)
	if w.failed > 0 {
		x.notef("%d samples of the sandbox failed (last: %v)", w.failed, w.lastErr)
	}
	w.mu.Unlock()
	op.mu.Unlock()

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
	credits, reauthOut := map[string][]Outcome{}, map[string]bool{}
	for _, o := range outs {
		if strings.HasPrefix(o.Type, "credit.") {
			credits[o.Shop+"/"+o.Order] = append(credits[o.Shop+"/"+o.Order], o)
			if o.Reauthorized {
				reauthOut[o.TxID] = true
			}
		}
	}
	byOrder := txsByOrder(txs)
	times := map[int]int{} // re-authorizations per order → orders
	dropped := 0           // re-authorizations' transactions an operator's resolution cancelled
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
			} else if t.State != "cancelled" && !derivedShopOrderID(t.ShopOrderID) {
				// A declined re-authorization's transaction stays NG at ATODENE (not live); the
				// order's own transaction is cancelled once replaced.
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
			switch {
			case reauthOut[t.TransactionID]:
			case named[t.TransactionID] && t.State == "cancelled":
				dropped++
			default:
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
		if why := lastCreditOK(credits[key], live[0], ts); why != "" {
			x.find("last credit outcome", "%s: %s, but the live transaction is %s (%s)", key, why, live[0].TransactionID, live[0].ShopOrderID)
		}
	}
	var dist []string
	for _, k := range slices.Sorted(maps.Keys(times)) {
		dist = append(dist, fmt.Sprintf("%d×%d", times[k], k))
	}
	x.notef("re-authorizations per order (orders×times): %s", strings.Join(dist, ", "))
	if dropped > 0 {
		x.notef("%d re-authorizations' transactions an operator's resolution cancelled, not adopted: the order had shipped on its old transaction meanwhile", dropped)
	}
	if len(operator) > 0 {
		x.notef("%d orders left out of the re-authorization checks: their registration ended outcome-unknown, for an operator", len(operator))
	}
	if len(times) == 0 || times[0] == sum(times) {
		x.find("not injected", "no order was re-authorized")
	}
	return nil
}

// resolvedWithin returns the operator's resolution of an order that falls within a stretch of two
// live transactions (its warn line read then).
func resolvedWithin(rs []resolution, st liveStretch) (resolution, bool) {
	for _, r := range rs {
		if !r.after && !r.seen.Before(st.from) && !r.seen.After(st.to) {
			return r, true
		}
	}
	return resolution{}, false
}

// lastCreditOK checks an order's credit outcomes (in stream order) against its live transaction:
// the last credit.ok names it, and every credit outcome after that one is a re-authorization's
// that left the order on it, naming a transaction of the order that is no longer live (a review
// dropped or cancelled as the order shipped, or declined). It returns what is wrong, or "".
func lastCreditOK(outs []Outcome, live sandbox.TransactionView, ts []sandbox.TransactionView) string {
	last := -1
	for i, o := range outs {
		if o.Type == events.TypeCreditOK {
			last = i
		}
	}
	if last < 0 {
		return "no credit.ok"
	}
	if outs[last].TxID != live.TransactionID {
		return fmt.Sprintf("its last credit.ok names transaction %q", outs[last].TxID)
	}
	for _, o := range outs[last+1:] {
		if !o.Reauthorized {
			return fmt.Sprintf("%s naming %q came after its last credit.ok and is no re-authorization's", o.Type, o.TxID)
		}
		i := slices.IndexFunc(ts, func(t sandbox.TransactionView) bool { return t.TransactionID == o.TxID })
		if i < 0 || txLive(ts[i]) {
			return fmt.Sprintf("%s of a re-authorization came after its last credit.ok, naming %q, which is not a transaction of the order no longer live", o.Type, o.TxID)
		}
	}
	return ""
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
