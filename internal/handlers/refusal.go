package handlers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Refusals stops the calls to ATODENE for a shop whose merchant account ATODENE refuses (a wrong
// or rotated link password, an unknown shop code): such a refusal is no order's outcome
// (docs/lifecycle.md#refusals-of-the-merchants-account). The event that met it, and every event of the shop that would call ATODENE while the stop
// lasts, is dead-lettered with reason account-refused, to be replayed once the account is fixed.
// The stop lasts 30 s; then one call tries again, alone (the others stay stopped for the stop's
// length again), and its refusal doubles the stop, up to 10 min. It ends at the first call ATODENE
// does not refuse that way, and with the process.
//
// The zero value is ready to use, and safe for concurrent use.
type Refusals struct {
	mu    sync.Mutex
	shops map[string]*Refused
	// gen numbers the stops begun and the calls let through after one, in order (ticket).
	gen uint64
}

// Refused says why the calls of a shop are stopped.
type Refused struct {
	Shop    string
	Detail  string    // ATODENE's errors, e.g. "linkPassword er000003"
	Since   time.Time // the first refusal
	RetryAt time.Time // when a call tries again
	backoff time.Duration
	// gen is the stop's number: an answer to a call checked before it (a lower ticket.seen) does
	// not end it.
	gen uint64
	// probe is the number of the call let through after the stop (check), 0 when none is under
	// way: its refusal lengthens the stop, that of a call sent before the stop began does not, and
	// its failing with no answer lets the next call through.
	probe uint64
}

// ticket is what check says of a call it lets through, for record: the last number given out
// then (a stop begun after it began after the call was checked), and the call's number if it is
// the one let through after a stop.
type ticket struct {
	seen  uint64
	probe uint64
}

const (
	firstRefusalStop = 30 * time.Second
	maxRefusalStop   = 10 * time.Minute
)

// check returns an account-refused error while the shop's calls are stopped, and otherwise the
// ticket of the call, for record. Once the stop is over, it lets one call through and stops the
// others for the stop's length again, so that the calls waiting for the stop's end do not all go
// to ATODENE at once; the call's answer ends the stop or lengthens it (record).
func (r *Refusals) check(shop string, now time.Time) (ticket, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.shops[shop]
	switch {
	case !ok:
		return ticket{seen: r.gen}, nil
	case now.Before(f.RetryAt):
		return ticket{}, Permanent(ReasonAccountRefused, fmt.Errorf("calls to ATODENE for shop %s are stopped until %s: ATODENE refused its account (%s) since %s",
			shop, f.RetryAt.UTC().Format(time.RFC3339), f.Detail, f.Since.UTC().Format(time.RFC3339)))
	}
	r.gen++
	f.RetryAt, f.probe = now.Add(f.backoff), r.gen
	return ticket{seen: r.gen, probe: r.gen}, nil
}

// record notes the answer of a call checked with ticket t: a refusal of the account stops the
// shop's calls, any other answer of ATODENE to a call checked after the stop began ends it. The
// refusal of the call let through after a stop doubles it; that of a call sent before the stop
// began (calls of the shop in flight together) leaves it as it is. That call failing with no
// answer (a timeout, HTTP 5xx, a cancelled context) says nothing of the account: the next call is
// let through at once. It returns the stop that a refusal began or met, and whether an answer
// ended one.
func (r *Refusals) record(shop string, t ticket, err error, now time.Time) (stop *Refused, ended bool) {
	rejected, isRejected := errors.AsType[*atodene.RejectedError](err)
	refused := isRejected && errors.Is(err, atodene.ErrAccountRefused)
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.shops[shop]
	probe := ok && t.probe != 0 && t.probe == f.probe
	switch {
	case refused && !ok:
		if r.shops == nil {
			r.shops = map[string]*Refused{}
		}
		r.gen++
		f = &Refused{Shop: shop, Since: now, backoff: firstRefusalStop, gen: r.gen}
		r.shops[shop] = f
		f.RetryAt = now.Add(f.backoff)
	case refused && probe:
		f.backoff, f.probe = min(2*f.backoff, maxRefusalStop), 0
		f.RetryAt = now.Add(f.backoff)
	case refused:
		// Sent before the stop began, or before the call let through after it: the stop stands.
	case ok && (err == nil || isRejected) && t.seen >= f.gen:
		delete(r.shops, shop) // ATODENE answered, and not about the account
		return nil, true
	case probe:
		// No answer: nothing learnt of the account, and no refusal seen since the stop's end.
		f.RetryAt, f.probe = now, 0
		return nil, false
	default:
		// No answer, or the answer to a call checked before the stop began (sent with the
		// refused one): the stop stands.
		return nil, false
	}
	f.Detail = rejected.Points(", ")
	copied := *f
	return &copied, false
}

// retryAt returns when the calls of a stopped shop resume (zero for a shop not stopped).
func (r *Refusals) retryAt(shop string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.shops[shop]; ok {
		return f.RetryAt
	}
	return time.Time{}
}

// accountRefused says err is a refusal of the shop's account: ATODENE's, or the stop of the
// shop's calls that follows it.
func accountRefused(err error) bool {
	reason, permanent := DeadLetterReason(err)
	return permanent && reason == ReasonAccountRefused
}

// timerRefused ends the handling of timer p of an order whose call ATODENE refused for the shop's
// account (cause): no dead letter, as for an event, since a timer carries nothing to replay and
// the state relies on it (the reconciler would make it again after each -reconcile-interval, and
// each again be refused). It is scheduled again, as the state's own, for when the shop's calls
// resume, spread over a tenth of the wait after that, with st (the state as the timer's work left it) saying so. Its history notes the first
// refusal of the timer only: the timer scheduled again carries Refused, and the state names the
// timer in RefusedTimers, so that the same message delivered again (its ack lost) notes nothing
// either; a run of the timer that meets no refusal clears it (clearRefused).
func (o *Orders) timerRefused(ctx context.Context, r *run, p PollRequest, st orderstate.State, cause error) change {
	at := o.retryAt(r.shop.ID, cause, 0)
	if wait := at.Sub(o.Now()); wait > 0 {
		// Spread over a tenth of the wait after the stop's end: the timers of a shop refused
		// together would all come at that instant, and once ATODENE accepts the account again
		// their calls would go at once (rand.N: math/rand/v2).
		at = at.Add(rand.N(wait/10 + 1))
	}
	next := PollRequest{Shop: p.Shop, OrderID: p.OrderID, Seq: p.Seq, Kind: p.Kind, Behind: p.Behind, Refused: true, At: at}
	if p.Kind == TimerReauth {
		rs := reauthOf(&st)
		rs.Scheduled, rs.At, rs.Held = true, at, false
	} else {
		next.Seq = st.PollSeq // the state's own re-check, whichever series came due
		if st.Status == orderstate.StatusPending {
			st.PollScheduled, st.PollAt, st.PollHeld = true, at, false
		} // else decided, its queued tracking number's report refused: the re-check comes to report it
	}
	if err := o.Polls.Schedule(ctx, next, at); err != nil {
		return fail(err)
	}
	r.refused = append(r.refused, refusedKey(p.Kind))
	did, key := "", refusedKey(p.Kind)
	if !p.Refused && !slices.Contains(st.RefusedTimers, key) {
		did = "not done: " + cause.Error() + "; tried again at " + at.UTC().Format(time.RFC3339) + ", when the shop's calls resume"
	}
	if !slices.Contains(st.RefusedTimers, key) {
		st.RefusedTimers = append(slices.Clone(st.RefusedTimers), key)
	}
	return write(st, did)
}

// refusedKey names a timer kind in State.RefusedTimers: "poll" for a re-check, else its kind.
func refusedKey(kind string) string {
	if kind == TimerPoll {
		return "poll"
	}
	return kind
}

// clearRefused drops timer kind from the timers whose refusal st's history noted, in c (which it
// makes write st when it wrote nothing): the timer ran without meeting a refusal of the account,
// so that its next refusal, another day, is noted again.
func clearRefused(kind string, st orderstate.State, c change) change {
	key := refusedKey(kind)
	if !slices.Contains(st.RefusedTimers, key) {
		return c
	}
	if c.next == nil {
		next := st
		c.next = &next
	}
	if !slices.Contains(c.next.RefusedTimers, key) {
		return c
	}
	c.next.RefusedTimers = slices.DeleteFunc(slices.Clone(c.next.RefusedTimers), func(k string) bool { return k == key })
	if len(c.next.RefusedTimers) == 0 {
		c.next.RefusedTimers = nil
	}
	return c
}

// settleRefusedLater is the refused handler (decision.refused) of timer p: settling the order
// before or after the timer's own work met a refusal of the shop's account (the report of a
// tracking number queued while the credit was under review). The order's re-check, which reports
// a queued tracking number when it comes, is scheduled again for when the shop's calls resume
// (timerRefused, noted once in the history as the re-check's, whichever timer met the refusal):
// for a due re-check, that is p itself; for another timer (inbox, retry, park deadline,
// re-authorization), its own work is done now or was done already, and is not scheduled again, so
// that nothing of it is done twice, and the state's own timer of its kind is left as it was. The
// run schedules the re-check once: a later settle of the run that meets the refusal again (after
// the timer's own work, or for each inbox entry it applies) only writes st.
func (o *Orders) settleRefusedLater(p PollRequest) func(context.Context, *run, orderstate.State, error) change {
	return func(ctx context.Context, r *run, st orderstate.State, cause error) change {
		if slices.Contains(r.refused, refusedKey(TimerPoll)) {
			return write(st, "")
		}
		if p.Kind != TimerPoll {
			p = PollRequest{Shop: p.Shop, OrderID: p.OrderID, Kind: TimerPoll}
		}
		return o.timerRefused(ctx, r, p, st, cause)
	}
}

// retryAt is when the work of a timer that failed with err, a failure a retry may mend, is tried
// again: for a refused account, when the shop's calls resume (a call before then is refused
// unsent); else after the re-check delay of its attempt (-poll-first-delay doubling to
// -poll-max-interval).
func (o *Orders) retryAt(shop string, err error, attempt int) time.Time {
	if reason, _ := DeadLetterReason(err); reason == ReasonAccountRefused {
		if at := o.Refusals.retryAt(shop); at.After(o.Now()) {
			return at
		}
	}
	return o.Now().Add(o.Poll.Delay(attempt))
}

// Snapshot returns the shops whose calls are stopped, by shop ID.
func (r *Refusals) Snapshot() []Refused {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Refused, 0, len(r.shops))
	for _, f := range r.shops {
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b Refused) int { return strings.Compare(a.Shop, b.Shop) })
	return out
}

// refusal turns an answer of ATODENE that no retry can change, and that is no outcome of the order,
// into a permanent failure: a refusal of the merchant's account (account-refused), or of a
// transaction ATODENE does not know (no-transaction). The cause is kept as text only, so that
// callers do not take it for a refusal of the order.
func refusal(shop string, err error) error {
	switch {
	case errors.Is(err, atodene.ErrAccountRefused):
		return Permanent(ReasonAccountRefused, fmt.Errorf("ATODENE refused the account of shop %s, not the order: %s", shop, err.Error()))
	case errors.Is(err, atodene.ErrUnknownTransaction):
		return Permanent(ReasonNoTransaction, fmt.Errorf("ATODENE has no such transaction: %s", err.Error()))
	}
	return err
}
