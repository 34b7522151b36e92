package handlers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Events that must wait for their order to get somewhere (a tracking number before the order is
// registered, a cancel while its registration is under way) are parked in the order's state and
// acknowledged at once, never handed back with a delay: a message handed back holds one of the
// consumer's MaxAckPending slots while it waits, and enough of them stall every other order
// (docs/lifecycle.md#parked-events). The handler that moves the order on applies them, in the
// order the shop published them (their stream positions), as part of settling its state; one that waits longer than Orders.ParkLimit is dead-lettered with reason
// no-transaction, its body byte for byte, by a timer of its order.

// maxParkedBody bounds the message a parked event keeps in the order's state. The events that
// park (tracking numbers, cancels) are a few hundred bytes.
const maxParkedBody = 64 << 10

// park keeps the event d in st until the order gets where it applies. An order keeps one waiting
// event of each kind: of tracking numbers and cancels, the latest in the stream (a later tracking
// number would correct an earlier one anyway, and the later cancel is the shop's last word, which
// the credit events handled meanwhile are compared with); an older one handled later is stale. Of
// invoice requests, the first: a second adds nothing. A later cancel takes the place of the one it
// replaces: the stream position it applies at among the parked events (Place), so that a cancel
// parked before a tracking number still applies before it when a later cancel replaces it
// (cancelling earlier is what the shop asked for twice). A tracking number's correction waits at
// its own position: an event published between the two (a cancel, parked already or handled
// later, or in the order's inbox) applies before it, and the correction then finds the order
// cancelled, as in stream order. The event is copied to Kept before it is written: once its
// message is acknowledged, Redis alone holds it.
func (o *Orders) park(ctx context.Context, shop, order string, d decision, st orderstate.State, waits string) change {
	if len(d.ev.Body) > maxParkedBody {
		return fail(Permanent(ReasonNoTransaction, fmt.Errorf("order %s has no transaction yet (waiting for %s), and the event is too large to wait (%d bytes, at most %d)",
			order, waits, len(d.ev.Body), maxParkedBody)))
	}
	kept := st.Parked[:0:0]
	pos := d.ev.position()
	slot := -1 // of the event it replaces, which keeps its place among those without a position
	for _, p := range st.Parked {
		switch {
		case p.Kind != d.parkAs:
			kept = append(kept, p)
		case d.parkAs == parkInvoice:
			return keep("no change: an invoice request of the order is waiting already (event " + p.ID + ")")
		case pos.seq != 0 && !pos.after(parkedPosition(p)):
			return keep("no change: older in the stream than the " + parkedKind[p.Kind] + " waiting (event " + p.ID + ")")
		default:
			slot = len(kept)
			kept = append(kept, p)
			st.History = append(st.History, orderstate.Entry{At: o.Now().UTC(), Type: p.Type, Source: p.Source, ID: p.ID,
				Did: "superseded while waiting: a later " + parkedKind[p.Kind] + " (event " + d.ev.ID + ") replaces it", Status: st.Status})
		}
	}
	p := o.parked(d.ev, waits, d.parkAs)
	if err := o.keepCopy(ctx, shop, order, p, KeptParked); err != nil {
		return fail(err)
	}
	if slot >= 0 {
		if d.parkAs == parkCancel { // a correction of a tracking number waits at its own position
			place := parkedPlace(kept[slot])
			p.PlaceCreated, p.PlaceSeq = place.created, place.seq
		}
		kept[slot] = p
	} else {
		kept = append(kept, p)
	}
	st.Parked = kept
	return write(st, "parked: waiting for "+waits)
}

// The kinds of events that park, of which an order keeps one each.
const (
	parkTracking = "tracking" // order.tracking_entered: the latest waits
	parkCancel   = "cancel"   // order.cancelled, and order.updated to 0: the latest waits
	parkInvoice  = "invoice"  // order.invoice_requested: the first waits
)

// parkedKind names the kinds of which the latest waits, for the history.
var parkedKind = map[string]string{parkTracking: "tracking number", parkCancel: "cancel"}

// parked is the event ev kept as received, waiting for what waits says.
func (o *Orders) parked(ev Meta, waits, kind string) orderstate.Parked {
	return orderstate.Parked{Type: ev.Type, Key: ev.Key(), ID: ev.ID, Source: ev.Source,
		Subject: ev.Subject, Stream: ev.Stream, Seq: ev.Seq, Published: ev.Published, PublishedCreated: ev.PublishedCreated, Attempt: ev.Attempt, ReplayCount: ev.ReplayCount,
		Body: ev.Body, Since: o.Now().UTC(), Waits: waits, Kind: kind}
}

// parkTimer is when the parked events of st next need their order's timer: the retry of the first
// in stream order, when it waits for one, else the time it has waited too long; zero if nothing is
// parked. Only the first counts: those after it wait for it (applyParked) and are tried when it is
// applied or dead-lettered, when the first of them is the one that counts (expireParked dead-letters
// at once one that then waits for its order and has waited too long). A deadline of one of them,
// earlier than the first's (a correction that replaced the first is newer than the events held
// behind it), would be due while nothing can be dead-lettered.
// A retry is not bounded by the deadline, which is for waiting for the order (expireParked), but
// by MaxAttempts: an event whose order came a moment before its deadline retries a call that
// failed transiently as any event does. A retry whose time has passed counts for nothing: settle
// has just tried an event whose retry was due, so the first event still waiting with such a retry
// waits for its order again (a registration under way once more), and only its deadline is due;
// the past time would hide that deadline (equal to the timer set for the retry, nothing is
// scheduled) or, scheduled, fire at once. One waiting for its retry and, meanwhile, for its order
// again has its deadline checked at the retry, at most a minute (retryDelay) late.
func (o *Orders) parkTimer(st orderstate.State) time.Time {
	if len(st.Parked) == 0 {
		return time.Time{}
	}
	first := inStreamOrder(st.Parked)[0]
	if first.RetryAt.After(o.Now()) {
		return first.RetryAt
	}
	return first.Since.Add(o.ParkLimit)
}

// applyParked applies the parked events of st that can apply now, in the order the shop published
// them (inStreamOrder), each with its own history entry, and reports whether st changed. An event whose decision is a
// permanent failure is dead-lettered; one that fails transiently stays parked with its try counted
// and is tried again at its retry time (by the order's parked-event timer), and dead-lettered as exhausted
// out of tries: it never holds up the settling of the state (an outcome waiting to be published).
// No event is applied while one before it in the stream still waits (for its retry, or for its
// order to get somewhere): the first that stays parked keeps those after it parked too, untried,
// so that a tracking number entered after a cancel whose call failed is not reported before the
// cancel is done; they are tried when it is applied.
func (o *Orders) applyParked(ctx context.Context, r *run, order string, st orderstate.State) (orderstate.State, bool, error) {
	parked := inStreamOrder(st.Parked)
	queued, err := o.firstQueued(ctx, r, order)
	if err != nil {
		return st, false, err
	}
	var still []orderstate.Parked
	changed := false
	for i, p := range parked {
		if len(still) > 0 || (queued.seq != 0 && parkedPlace(p).after(queued)) {
			// An earlier one waits, parked or in the inbox: the rest wait behind it, in stream order.
			still = append(still, parked[i:]...)
			break
		}
		d, err := o.storedDecision(r.shop, p)
		if err == nil && d.waits != nil {
			if w := d.waits(st); w != "" {
				p.Waits = w // what it waits for now, which its dead letter names (not an event it was held behind)
				still = append(still, p)
				continue
			}
		}
		if err == nil && p.RetryAt.After(o.Now()) {
			still = append(still, p)
			continue
		}
		var c change
		if err != nil {
			c = fail(err)
		} else {
			if p.Tries >= o.MaxAttempts-1 {
				d.apply = exhaustedAfter(d.apply)
			}
			// Those before it are applied or dead-lettered, and it applies at its place, which
			// may be before its own position (a later event of its kind that replaced one): it is
			// not held behind the parked events (waitingBefore), which this loop keeps in order.
			d.placed = true
			c = o.decide(ctx, r, order, d, st)
		}
		changed = true
		reason, permanent := DeadLetterReason(c.err)
		switch {
		case permanent:
			if err := o.deadLetterParked(ctx, r.shop.ID, order, p, reason, c.err); err != nil {
				return st, false, err
			}
			c.did = "dead-lettered: " + reason.String() + ": " + c.err.Error()
		case c.err != nil:
			p.Tries += tried(c.err)
			p.LastError, p.RetryAt = c.err.Error(), o.Now().Add(retryDelay(max(p.Tries, 1))).UTC()
			p.Waits = "its retry after a failed try"
			still = append(still, p)
			continue
		}
		entry := o.entry(Meta{Type: p.Type, Source: p.Source, ID: p.ID}, c, r, st)
		entry.Did = "applied after waiting since " + p.Since.Format(time.RFC3339) + ": " + c.did
		if c.next != nil {
			st = *c.next
		}
		st.History = append(st.History, entry)
	}
	st.Parked = still // the settle step sets the order's parked-event timer for the retries
	return st, changed, nil
}

// firstQueued is the stream position of the first event, in stream order, that the order's inbox
// holds of those the stream orders (order.created, order.updated, order.cancelled,
// order.tracking_entered), other than an entry already decided (run.decided); zero when it holds
// none. A parked event published after it waits behind it (applyParked): the inbox's events are
// applied after the parked ones the settle step applies, and a cancel queued behind a creation
// waiting for its retry must not find the tracking number entered after it reported already.
func (o *Orders) firstQueued(ctx context.Context, r *run, order string) (position, error) {
	inbox, err := o.Store.Inbox(ctx, r.shop.ID, order)
	if err != nil {
		return position{}, err
	}
	var first position
	for _, q := range inbox {
		if q.Key == r.decided || !streamOrdered[q.Type] {
			continue
		}
		if at := (Meta{Seq: q.Seq, Published: q.Published, PublishedCreated: q.PublishedCreated}).position(); at.seq != 0 && (first.seq == 0 || first.after(at)) {
			first = at
		}
	}
	return first, nil
}

// streamOrdered are the event types whose order of publication the state records (decision.ordered).
var streamOrdered = map[string]bool{events.TypeOrderCreated: true, events.TypeOrderUpdated: true,
	events.TypeOrderCancelled: true, events.TypeTrackingEntered: true}

// waitingBefore says what the event d waits for when an event of its order published before it
// still waits, parked ("" when none does): a tracking number or a cancel (order.cancelled,
// order.updated billed 0: the events ordered by the stream that park) is not applied before it,
// whatever it waits for (its retry, its order, an operator's resolution), but parked behind it,
// and applied after it in stream order (applyParked), as the parked events after it are. Before
// it means before the first parked event in stream order (inStreamOrder: by its place, a
// replayed dead letter's by the position it was first published at); an event before that one is
// not held, nor is one without a stream position, nor a parked event being applied at its place
// (decision.placed). An order.created or order.updated that registers or changes the order is not
// held: its registration cannot be made while the parked events are applied (it writes its
// intent, which replaces the state being settled).
func waitingBefore(d decision, st orderstate.State) string {
	pos := d.ev.position()
	if d.ordered == nil || d.parkAs == "" || d.placed || pos.seq == 0 || len(st.Parked) == 0 {
		return ""
	}
	first := inStreamOrder(st.Parked)[0]
	place := parkedPlace(first)
	if place.seq == 0 || !pos.after(place) {
		return ""
	}
	what := "the event"
	if k, ok := parkedKind[first.Kind]; ok {
		what = "the " + k
	} else if first.Kind == parkInvoice {
		what = "the invoice request"
	}
	why := "to be applied"
	if !first.RetryAt.IsZero() {
		why = "to be retried and applied"
	}
	return what + " published before it (event " + first.ID + ") " + why
}

// inStreamOrder returns the parked events ps in the order the shop published them, by their place
// (parkedPlace), compared as decide compares an event with the order's last of its kind (position:
// the sequence it was first published at, a stream created again as newer). Handled out of order,
// a cancel and the tracking number entered after it may both wait for the registration: the
// tracking number must then find the order cancelled (shipment.ng, no call), not be reported to
// the transaction the cancel then ends. Events without a sequence (none come from the stream, but
// a state may hold one) follow those with one, in the order they came, as do events of one place.
func inStreamOrder(ps []orderstate.Parked) []orderstate.Parked {
	sorted := slices.Clone(ps)
	slices.SortStableFunc(sorted, func(a, b orderstate.Parked) int {
		pa, pb := parkedPlace(a), parkedPlace(b)
		switch {
		case pa.seq == 0 || pb.seq == 0: // those without a sequence after those with one
			return cmp.Compare(unsequenced(pa), unsequenced(pb))
		case pb.after(pa):
			return -1
		case pa.after(pb):
			return 1
		}
		return 0
	})
	return sorted
}

// unsequenced is 1 for a position without a sequence, 0 for one with a sequence.
func unsequenced(p position) int {
	if p.seq == 0 {
		return 1
	}
	return 0
}

// parkedPlace is where the parked event p applies among its order's parked events: the position
// of the first event of its kind it replaced while parked, else its own.
func parkedPlace(p orderstate.Parked) position {
	if p.PlaceSeq != 0 {
		return position{p.PlaceCreated, p.PlaceSeq}
	}
	return parkedPosition(p)
}

// parkedPosition is the stream position the parked event p was consumed with.
func parkedPosition(p orderstate.Parked) position {
	return Meta{Seq: p.Seq, Published: p.Published, PublishedCreated: p.PublishedCreated}.position()
}

// storedDecision decodes an event kept as received (parked, or queued in the inbox) and returns
// its decision, as its handler would have made it.
func (o *Orders) storedDecision(shop *Shop, p orderstate.Parked) (decision, error) {
	env, err := events.DecodeEnvelope(p.Subject, p.Body)
	if err != nil {
		return decision{}, Permanent(ReasonInvalid, err)
	}
	at, _ := time.Parse(time.RFC3339, env.Time)
	meta := Meta{ID: env.ID, Source: env.Source, Type: env.Type, Shop: shop.ID, Time: at, Attempt: p.Attempt, Seq: p.Seq, Published: p.Published, PublishedCreated: p.PublishedCreated,
		Stream: p.Stream, Subject: p.Subject, Body: p.Body, ReplayCount: p.ReplayCount}
	invalid := func(err error) (decision, error) { return decision{}, Permanent(ReasonInvalid, err) }
	switch env.Type {
	case events.TypeOrderCreated:
		data, err := events.DecodeCreated(env, shop.ID)
		if err != nil {
			return invalid(err)
		}
		return o.created(shop, Event[events.Order]{Meta: meta, Data: data})
	case events.TypeOrderUpdated:
		data, err := events.DecodeOrder(env, shop.ID)
		if err != nil {
			return invalid(err)
		}
		return o.updated(shop, Event[events.Order]{Meta: meta, Data: data})
	case events.TypeOrderCancelled:
		data, err := events.DecodeCancel(env, shop.ID)
		if err != nil {
			return invalid(err)
		}
		return o.cancelling(meta, data.OrderID, ""), nil
	case events.TypeTrackingEntered:
		data, err := events.DecodeTracking(env, shop.ID)
		if err != nil {
			return invalid(err)
		}
		return o.tracking(Event[events.Tracking]{Meta: meta, Data: data}), nil
	case events.TypeInvoiceRequested:
		data, err := events.DecodeInvoiceRequest(env, shop.ID)
		if err != nil {
			return invalid(err)
		}
		return o.invoice(Event[events.InvoiceRequest]{Meta: meta, Data: data}), nil
	case events.TypeRecheckRequested:
		data, err := events.DecodeRecheckRequest(env, shop.ID)
		if err != nil {
			return invalid(err)
		}
		return o.recheck(Event[events.RecheckRequest]{Meta: meta, Data: data}), nil
	case events.TypeResolveRequested:
		data, err := events.DecodeResolveRequest(env, shop.ID)
		if err != nil {
			return invalid(err)
		}
		return o.resolve(Event[events.ResolveRequest]{Meta: meta, Data: data}), nil
	}
	return invalid(fmt.Errorf("a stored %s cannot be applied", env.Type))
}

// expireParked is the decision of an order's parked-event deadline: in stream order, each parked
// event that has waited longer than the limit for its order (waitsForOrder) is dead-lettered with
// reason no-transaction, up to the first that has not; the settle step then tries those held only
// behind them (applyParked). While the order's inbox holds events (its creation waiting for the
// retry of a call that failed, say), nothing is dead-lettered: they may bring the order the parked
// events wait for, and the timer comes again a minute later.
func (o *Orders) expireParked(order string) func(context.Context, *run, orderstate.State) change {
	return func(ctx context.Context, r *run, st orderstate.State) change {
		limit := o.ParkLimit
		parked := inStreamOrder(st.Parked)
		n := 0 // the first n, in stream order, have waited too long for their order
		for _, p := range parked {
			waits, ok := o.waitsForOrder(r, p, st)
			if o.Now().Before(p.Since.Add(limit)) || !ok {
				break // it, and those held behind it, stay; one held only by those before it is applied by settle
			}
			if n == 0 {
				if queued, err := o.Store.InboxLen(ctx, r.shop.ID, order); err != nil || queued > 0 {
					return o.putOff(ctx, r, order, p, err)
				}
			}
			cause := fmt.Errorf("order %s: waited %s for %s", order, limit, waits)
			if err := o.deadLetterParked(ctx, r.shop.ID, order, p, ReasonNoTransaction, cause); err != nil {
				return fail(err)
			}
			st.History = append(st.History, orderstate.Entry{At: o.Now().UTC(), Type: p.Type, Source: p.Source, ID: p.ID,
				Did: "dead-lettered: " + ReasonNoTransaction.String() + ": " + cause.Error(), Status: st.Status})
			n++
		}
		if n == 0 {
			if at := st.ParkTimer; !at.IsZero() && o.Now().Before(at) {
				// Handled a moment early (the NATS server's clock ahead of the worker's): nothing
				// is due yet, and settle leaves the timer as it is, so it is scheduled again for
				// its time, or nothing would come then.
				if err := o.Polls.Schedule(ctx, PollRequest{Shop: r.shop.ID, OrderID: order, Kind: TimerParked}, o.earlyAgain(at)); err != nil {
					return fail(err)
				}
			}
			return keep("") // early, a retry (settle has tried it), or a timer left from an earlier deadline
		}
		st.Parked = parked[n:]
		return write(st, "")
	}
}

// putOff is expireParked's decision while the order's inbox holds events (or could not be read:
// err): nothing is dead-lettered, and the park timer comes again a minute later, or at p's retry
// if that is sooner (the timer of the retry is the one it replaces).
func (o *Orders) putOff(ctx context.Context, r *run, order string, p orderstate.Parked, err error) change {
	if err != nil {
		return fail(err)
	}
	at := o.Now().Add(time.Minute)
	if p.RetryAt.After(o.Now()) && p.RetryAt.Before(at) {
		at = p.RetryAt
	}
	if err := o.Polls.Schedule(ctx, PollRequest{Shop: r.shop.ID, OrderID: order, Kind: TimerParked}, at); err != nil {
		return fail(err)
	}
	return keep("")
}

// waitsForOrder says what the parked event p waits for in st, and whether the park deadline
// applies to it: it waits for its order (its decision's wait: the order, its registration's
// outcome, an operator's resolution), or it cannot be decided at all. The deadline does not apply
// to an event held only behind an earlier parked event (waitingBefore), which is tried, once that
// event is gone, as at once (a cancel of an order whose outcome is unknown is dead-lettered
// outcome-unknown then, naming what the operator must do, not as having waited for a
// transaction); nor to one waiting for the retry of a call that failed transiently, which runs
// out as exhausted after MaxAttempts tries, as any event's retries do.
func (o *Orders) waitsForOrder(r *run, p orderstate.Parked, st orderstate.State) (string, bool) {
	d, err := o.storedDecision(r.shop, p)
	if err != nil {
		return p.Waits, true
	}
	if d.waits != nil {
		if w := d.waits(st); w != "" {
			return w, true
		}
	}
	return p.Waits, false
}

// attempts is the Dlq-Attempts of the event kept as p: its tries, the last one included (the
// deliveries of its message before it was kept count as tries), at least its delivery count.
func attempts(p orderstate.Parked) int {
	return max(p.Attempt, p.Tries+1)
}

// deadLetterParked writes the dead letter of an event kept as received (parked, or queued in the
// inbox): its message, from where it was received. The event was recorded as processed when it
// was parked, so that copies of it were dropped; the record is removed once its letter is
// stored (and its kept copy dropped), so that replaying the letter applies it.
func (o *Orders) deadLetterParked(ctx context.Context, shop, order string, p orderstate.Parked, reason Reason, cause error) error {
	err := o.DeadLetters.Write(ctx, DeadLetter{Subject: p.Subject, Stream: p.Stream, Sequence: p.Seq, Body: p.Body,
		Reason: reason.String(), Err: cause, Attempts: attempts(p), ReplayCount: p.ReplayCount, Published: p.Published, PublishedCreated: p.PublishedCreated, FailedAt: o.Now()})
	if err != nil {
		return err
	}
	if err := o.dropCopy(ctx, shop, order, p.Key); err != nil {
		return err
	}
	return o.Store.ForgetEvent(ctx, shop, p.Key)
}
