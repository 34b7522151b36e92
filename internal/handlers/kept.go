package handlers

import (
	"context"
	"errors"
	"slices"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// An event the worker acknowledges while holding it only in Redis (parked in its order's state,
// queued in its order's inbox, or a tracking number waiting in the state for the credit) would be
// lost with Redis's recent writes (a failover to a replica behind, a restart from an older
// snapshot, a flush). So a copy of it is kept in JetStream first, and the reconciler compares the
// copies with Redis: a copy of an event Redis still holds stays, one of an event applied is
// dropped, and one of an event Redis lost goes back to its subject, to be handled again as it was
// first published (docs/architecture.md#promises: an accepted event is never lost).

// Kept keeps the copies; the worker's implementation is a JetStream stream with one message per
// event.
type Kept interface {
	// Keep stores a copy of p, an event of the order as received, in place of an earlier copy of
	// the same event; why is KeptParked, KeptQueued, KeptShipment or KeptGoingRound. An error is an
	// Infrastructure one: the event must not be acknowledged.
	Keep(ctx context.Context, shop, order string, p orderstate.Parked, why string) error
	// Drop removes the copy of the event with this identity (events.EventKey), if there is one.
	Drop(ctx context.Context, shop, order, key string) error
	// Body returns the body of p, an inbox entry of a message too large for the inbox, which holds
	// none (orderstate.Parked.BodyKept): its copy's, or else the message's at p.Stream and p.Seq,
	// whichever is p's (p.BodySum; the copy of an identity reused is another event's). It returns
	// an error wrapping ErrNoCopy when neither is, an Infrastructure one when it cannot tell.
	Body(ctx context.Context, shop, order string, p orderstate.Parked) ([]byte, error)
}

// ErrNoCopy means Kept holds no copy of the event (Body: nor its stream its message).
var ErrNoCopy = errors.New("no kept copy of the event")

// Why an event is copied.
const (
	KeptParked     = "parked"      // parked in its order's state
	KeptQueued     = "queued"      // queued in its order's inbox
	KeptShipment   = "shipment"    // a tracking number kept in the state until the credit is OK
	KeptGoingRound = "going-round" // none of these: its order's inbox is full
)

// keepCopy stores a copy of p unless no Kept is configured (the handlers' own tests).
func (o *Orders) keepCopy(ctx context.Context, shop, order string, p orderstate.Parked, why string) error {
	if o.Kept == nil {
		return nil
	}
	return o.Kept.Keep(ctx, shop, order, p, why)
}

// dropCopy removes the copy of an event that leaves Redis without being applied (its dead letter
// is written): the reconciler would otherwise take it for one Redis lost.
func (o *Orders) dropCopy(ctx context.Context, shop, order, key string) error {
	if o.Kept == nil {
		return nil
	}
	return o.Kept.Drop(ctx, shop, order, key)
}

// droppedFromInbox drops the copy of an event kept for the inbox that was applied or
// dead-lettered, and whose step is committed, unless st holds the event now (parked, or a tracking
// number queued for the credit: the copy is that one's). Copies are dropped at once because a burst
// for one order queues many, and because a loss of Redis's recent writes would make an applied
// event whose copy is left look lost; one that fails to go is dropped by the reconciler.
func (o *Orders) droppedFromInbox(ctx context.Context, shop, order, key string, st orderstate.State) {
	if slices.Contains(st.HeldKeys(), key) {
		return
	}
	if err := o.dropCopy(ctx, shop, order, key); err != nil {
		o.Logger.Debug("dropping the copy of an applied event failed; the reconciler drops it", zap.Error(err))
	}
}

// droppedUnlessHeld drops the copy of an event handled as its message unless Redis holds an event
// under its identity (Store.HeldEvents: the inbox or the state): the message's own later delivery
// queued while it was tried, or another event under a reused identity, whose copy it is now (one
// is kept per identity). It reads the inbox: for the rare ends that need it.
func (o *Orders) droppedUnlessHeld(ctx context.Context, shop, order, key string) {
	if o.Kept == nil {
		return
	}
	held, err := o.Store.HeldEvents(ctx, shop, order)
	if err != nil {
		o.Logger.Debug("reading what Redis holds of an order's events failed; the reconciler settles its copy", zap.Error(err))
		return
	}
	if held.Keys[key] {
		return
	}
	if err := o.dropCopy(ctx, shop, order, key); err != nil {
		o.Logger.Warn("dropping the copy of an event failed; the reconciler settles it", zap.Error(err))
	}
}

// droppedFromState drops the copies of the events before held and after, committed with its
// outbox published, no longer holds (applied, or dead-lettered). The reconciler would drop them
// too, but only after its grace: until then a loss of Redis's recent writes (a flush, a failover
// to a replica behind) would lose the record that they were applied, and the reconciler would
// take them for lost and publish them again, to be answered a second time.
func (o *Orders) droppedFromState(ctx context.Context, shop, order string, before, after orderstate.State) {
	held := before.HeldKeys()
	if held == nil {
		return
	}
	still := after.HeldKeys()
	for _, key := range held {
		if slices.Contains(still, key) {
			continue
		}
		if err := o.dropCopy(ctx, shop, order, key); err != nil {
			o.Logger.Debug("dropping the copy of an applied event failed; the reconciler drops it", zap.Error(err))
		}
	}
}

// KeptFate is what becomes of a kept copy.
type KeptFate int

const (
	KeptHeld    KeptFate = iota // Redis holds the event (parked or queued), or its order is busy: the copy stays
	KeptApplied                 // the event is recorded as processed: the copy is dropped
	KeptLost                    // neither (Redis lost it, or it went round a full inbox): the copy is published again
)

// KeptFates returns the fate of copies for one pass over them: what Redis holds of each order is
// read once per pass. A copy must be older than the reconciler's grace: an event is copied just
// before Redis holds it. An event of an order whose lease is held or whose inbox is full stays,
// so that one that went round does not go round again at once.
func (r *Reconciler) KeptFates() func(ctx context.Context, shop, order, key string) (KeptFate, error) {
	held := map[[2]string]orderstate.Held{}
	return func(ctx context.Context, shop, order, key string) (KeptFate, error) {
		h, ok := held[[2]string{shop, order}]
		if !ok {
			var err error
			if h, err = r.Store.HeldEvents(ctx, shop, order); err != nil {
				return KeptHeld, err
			}
			held[[2]string{shop, order}] = h
		}
		if h.Keys[key] || h.Busy {
			return KeptHeld, nil
		}
		done, err := r.Store.EventDone(ctx, shop, key)
		switch {
		case err != nil:
			return KeptHeld, err
		case done:
			return KeptApplied, nil
		}
		return KeptLost, nil
	}
}
