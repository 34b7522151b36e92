package handlers

import (
	"context"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// An event the worker acknowledges while holding it only in Redis (parked in its order's state, or
// queued in its order's inbox) would be lost with Redis's recent writes (a failover to a replica
// behind, a restart from an older snapshot, a flush). So a copy of it is kept in JetStream first,
// and the reconciler compares the copies with Redis: a copy of an event Redis still holds stays,
// one of an event applied is dropped, and one of an event Redis lost goes back to its subject, to
// be handled again as it was first published (DESIGN.md §14: an accepted event is never lost).

// Kept keeps the copies; the worker's implementation is a JetStream stream with one message per
// event.
type Kept interface {
	// Keep stores a copy of p, an event of the order as received, in place of an earlier copy of
	// the same event. An error is an Infrastructure one: the event must not be acknowledged.
	Keep(ctx context.Context, shop, order string, p orderstate.Parked) error
	// Drop removes the copy of the event with this identity (events.EventKey), if there is one.
	Drop(ctx context.Context, shop, order, key string) error
}

// keepCopy stores a copy of p unless no Kept is configured (the handlers' own tests).
func (o *Orders) keepCopy(ctx context.Context, shop, order string, p orderstate.Parked) error {
	if o.Kept == nil {
		return nil
	}
	return o.Kept.Keep(ctx, shop, order, p)
}

// dropCopy removes the copy of an event that leaves Redis without being applied (its dead letter
// is written): the reconciler would otherwise take it for one Redis lost.
func (o *Orders) dropCopy(ctx context.Context, shop, order, key string) error {
	if o.Kept == nil {
		return nil
	}
	return o.Kept.Drop(ctx, shop, order, key)
}

// droppedFromInbox drops the copy of an inbox entry that was applied or dead-lettered, and whose
// step is committed, unless the entry parked (its copy is the parked event's now). Copies are
// dropped at once because a burst for one order queues many; one that fails to go is dropped by
// the reconciler.
func (o *Orders) droppedFromInbox(ctx context.Context, shop, order, key string, st orderstate.State) {
	for _, p := range st.Parked {
		if p.Key == key {
			return
		}
	}
	if err := o.dropCopy(ctx, shop, order, key); err != nil {
		o.logger().Debug("dropping the copy of an applied event failed; the reconciler drops it", zap.Error(err))
	}
}

// KeptFate is what becomes of a kept copy.
type KeptFate int

const (
	KeptHeld    KeptFate = iota // Redis holds the event (parked or queued): the copy stays
	KeptApplied                 // the event is recorded as processed: the copy is dropped
	KeptLost                    // Redis lost the event: the copy is published again
)

// KeptFate says what becomes of the copy of the event with this identity, kept for the order of
// the shop. The inbox is read before the state: an event applied from the inbox and parked is
// written into the state before it leaves the inbox, so it is seen in one or the other. The copy
// must be older than the reconciler's grace: an event is copied just before Redis holds it.
func (r *Reconciler) KeptFate(ctx context.Context, shop, order, key string) (KeptFate, error) {
	queued, err := r.Store.InboxHolds(ctx, shop, order, key)
	if err != nil || queued {
		return KeptHeld, err
	}
	st, err := r.Store.Get(ctx, shop, order)
	if err != nil {
		return KeptHeld, err
	}
	for _, p := range st.Parked {
		if p.Key == key {
			return KeptHeld, nil
		}
	}
	done, err := r.Store.EventDone(ctx, key)
	switch {
	case err != nil:
		return KeptHeld, err
	case done:
		return KeptApplied, nil
	}
	return KeptLost, nil
}
