package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// OrderCancelled handles order.cancelled (与信キャンセル): a live transaction is cancelled (an
// er000033 answer counts as done), polling stops, and credit.cancelled is published. An order
// without a live transaction is marked cancelled and credit.cancelled published without calling
// ATODENE.
func (o *Orders) OrderCancelled(ctx context.Context, ev Event[events.Cancel]) error {
	shop, err := o.shop(ev.Shop)
	if err != nil {
		return err
	}
	order := ev.Data.OrderID
	return o.withOrder(ctx, shop, order, ev.ID, nil, inOrder(ev.Seq, func(st orderstate.State) change {
		switch st.Status {
		case orderstate.StatusCancelled:
			return keep()
		case orderstate.StatusUnknown:
			return fail(Permanent(ReasonOutcomeUnknown, fmt.Errorf("order %s is in the unknown state: cancel it at ATODENE by hand", order)))
		case orderstate.StatusRegistering:
			// An earlier registration's outcome is not recorded yet; its redelivery will settle it.
			// It comes back after the ack wait; waiting half the lease lifetime (which exceeds the
			// ack wait) between tries leaves room for it within the delivery limit.
			return fail(RetryAfter(o.LeaseTTL/2, fmt.Errorf("order %s: registration in progress", order)))
		case orderstate.StatusOK, orderstate.StatusPending:
			if err := shop.Provider.Cancel(ctx, st.TransactionID); err != nil && !errors.Is(err, atodene.ErrAlreadyCancelled) {
				return fail(err)
			}
		}
		return write(o.cancelled(st, shop.ID, order, ev.ID))
	}))
}

// cancelled marks st cancelled, stops its polling, drops a queued shipment and emits
// credit.cancelled.
func (o *Orders) cancelled(st orderstate.State, shop, order, causedBy string) orderstate.State {
	st.Status, st.Review, st.Errors, st.Reasons = orderstate.StatusCancelled, "", nil, nil
	st.PollSeq++ // a poll already scheduled finds another number and is dropped
	st.PollScheduled = false
	o.emitCredit(&st, shop, order, events.TypeCreditCancelled, causedBy)
	o.dropQueuedShipment(&st, shop, order, causedBy)
	return st
}
