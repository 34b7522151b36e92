package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// OrderCancelled handles order.cancelled (与信キャンセル): a live transaction is cancelled (an
// er000033 answer counts as done), polling stops, and credit.cancelled is published. An order
// without a live transaction is marked cancelled and credit.cancelled published without calling
// ATODENE. A cancel that arrives while the order's registration is under way waits for its
// outcome, parked.
func (o *Orders) OrderCancelled(ctx context.Context, ev Event[events.Cancel]) error {
	return o.onOrder(ctx, ev.Shop, ev.Data.OrderID, decided(o.cancelling(ev.Meta, ev.Data.OrderID, "")))
}

// cancelling is the decision of an event that ends the order's credit: order.cancelled, or
// order.updated with nothing left to bill (why says so), which is a cancel in every status (as w2
// treats it, docs/protocol.md#changes-and-cancels). One for an order the worker has no record of waits for the order (parked):
// a credit.cancelled without a cancel at ATODENE would be made up.
func (o *Orders) cancelling(ev Meta, order, why string) decision {
	did := "cancelled"
	if why != "" {
		did += ": " + why
	}
	return decision{ev: ev, ordered: creditOrder, parkAs: parkCancel, waits: waitsForTransaction, apply: func(ctx context.Context, r *run, st orderstate.State) change {
		at := ev.Time
		if at.IsZero() {
			at = o.Now()
		}
		if beforeRepeat(st, ev.position(), at) {
			return keep("no change: older in the stream than the order's creation run again after it")
		}
		switch st.Status {
		case orderstate.StatusCancelled:
			return same("no change: cancelled already")
		case orderstate.StatusUnknown:
			return fail(Permanent(ReasonOutcomeUnknown, fmt.Errorf("order %s is in the unknown state: cancel it at ATODENE by hand", order)))
		case orderstate.StatusOK, orderstate.StatusPending:
			if err := r.shop.Provider.Cancel(ctx, st.TransactionID); err != nil && !errors.Is(err, atodene.ErrAlreadyCancelled) {
				return fail(err)
			}
		}
		// A re-authorization's new transaction under review goes too.
		if rs := st.Reauth; rs != nil && rs.Phase == orderstate.ReauthPending {
			if err := dropNew(ctx, r, &st); err != nil {
				return fail(err)
			}
			did += " (and the new transaction of its re-authorization, under review)"
		}
		// A re-authorization whose outcome is unknown may have left a live transaction that the
		// worker cannot name: only ATODENE's screen can find and cancel it.
		if rs := st.Reauth; rs != nil && rs.Failed == ReauthUnknown {
			derived := ReauthShopOrderID(r.shop.OrderIDPrefix+order, rs.N)
			did += "; ATODENE may still hold a live transaction under " + derived + " (a re-authorization whose outcome is unknown): cancel it in ATODENE's screen"
			o.Logger.Warn("order cancelled while its re-authorization's outcome is unknown: ATODENE may still hold a live transaction under the derived shopOrderId",
				zap.String("shop", r.shop.ID), zap.String("order", order), zap.String("shop_order_id", derived))
		}
		return write(o.cancelled(st, r.shop.ID, order, ev.ID, at), did)
	}}
}

// beforeRepeat reports whether a cancel published at pos and written at at is older both ways than
// the order's latest repeated creation (State.RepeatSeq): earlier in the stream (compared as the
// credit position is: a replay by the position it was first published at, a stream created again as
// newer) and not written after it (the creation's time not before the cancel's, or none). That
// creation, handled first, found the order live (or refused with the same data) and did nothing; in
// stream order it comes after the cancel and registers the cancelled order again (与信を実行 after
// 与信キャンセル, the rule of registerIfNew), so the cancel is stale. One written after the creation (an
// importer's late retry of the original creation) applies, as in stream order.
func beforeRepeat(st orderstate.State, pos position, at time.Time) bool {
	if st.RepeatSeq == 0 || pos.seq == 0 || !repeatOrder.get(&st).after(pos) {
		return false
	}
	return st.RepeatTime.IsZero() || !at.After(st.RepeatTime)
}

// waitsForTransaction keeps an event that needs the order's transaction until the worker knows
// it: the outcome of a registration under way (an earlier handler wrote the intent, and its answer
// is not recorded yet), or the order itself when the worker has no record of it. The absence of a
// state is no evidence that ATODENE holds no transaction (the order may not be imported yet, or its
// state lost with Redis): the event waits, and goes to an operator if the order never comes.
func waitsForTransaction(st orderstate.State) string {
	switch st.Status {
	case orderstate.StatusRegistering:
		return "the outcome of the order's registration"
	case orderstate.StatusNone:
		return "the order's credit check (the worker has no record of the order)"
	}
	return ""
}

// waitsForResolution is waitsForTransaction, and also keeps an event that reports on the order's
// transaction (a tracking number, an invoice request) while the outcome of its registration is
// unknown: ATODENE may hold a live transaction, so a refusal "the credit is not ok" would be made
// up. The operator's order.resolve_requested settles the order, and the event applies then, or goes
// to an operator as no-transaction after -park-limit.
func waitsForResolution(st orderstate.State) string {
	if st.Status == orderstate.StatusUnknown {
		return "the operator's resolution of the order (its registration's outcome is unknown)"
	}
	return waitsForTransaction(st)
}

// cancelled marks st cancelled at the time at, stops its polling, drops a queued shipment and
// emits credit.cancelled.
func (o *Orders) cancelled(st orderstate.State, shop, order, causedBy string, at time.Time) orderstate.State {
	st.Status, st.Review, st.Errors, st.Reasons = orderstate.StatusCancelled, "", nil, nil
	st.CancelledAt = at
	st.PollSeq++ // a poll already scheduled finds another number and is dropped
	st.PollScheduled = false
	o.emitCredit(&st, shop, order, events.TypeCreditCancelled, causedBy)
	o.dropQueuedShipment(&st, shop, order, causedBy)
	return st
}
