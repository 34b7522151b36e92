package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// The operator events (docs/lifecycle.md#operator-events) are published by the operators'
// console and commands. Each names the operator who asked, whom the order's history records.

// RecheckRequested handles order.recheck_requested (与信結果確認): for an order under review it asks
// ATODENE for the screening result now, outside the re-check schedule, and applies the answer as a
// due re-check does (with the request as the cause of the outcomes). For an order in any other
// status it publishes nothing and records the decision that stands. A request for an order the
// worker has no record of at all is dead-lettered no-transaction at once, as a due re-check of a
// lost state is: there is nothing to ask ATODENE about, and nothing worth waiting for.
func (o *Orders) RecheckRequested(ctx context.Context, ev Event[events.RecheckRequest]) error {
	return o.onOrder(ctx, ev.Shop, ev.Data.OrderID, decided(o.recheck(ev)))
}

func (o *Orders) recheck(ev Event[events.RecheckRequest]) decision {
	order := ev.Data.OrderID
	return decision{ev: ev.Meta, operator: ev.Data.Operator, apply: func(ctx context.Context, r *run, st orderstate.State) change {
		switch st.Status {
		case orderstate.StatusPending:
		case orderstate.StatusNone:
			if st.Version == 0 {
				return fail(Permanent(ReasonNoTransaction, fmt.Errorf("order %s: a re-check was asked, but the worker has no record of the order (not imported yet, or its state lost with Redis)", order)))
			}
			return keep("no change: the order is not registered (none); there is nothing to re-check")
		case orderstate.StatusRegistering:
			return keep("no change: the order's registration is under way; its answer is the result")
		case orderstate.StatusUnknown:
			return keep("no change: the outcome of the order's registration is unknown, with no transaction to re-check; settle it with order.resolve_requested")
		default:
			return keep("no change: the credit is " + string(st.Status) + " already")
		}
		scr, err := r.shop.Provider.GetAuthori(ctx, st.TransactionID)
		switch {
		case errors.Is(err, atodene.ErrAlreadyCancelled):
			return write(o.cancelled(st, r.shop.ID, order, ev.ID, o.Now()), "cancelled: ATODENE holds the transaction as cancelled")
		case noTransaction(err):
			return transactionLost(st, order) // as a due re-check: no retry changes the answer
		case err != nil:
			return fail(err)
		}
		next, did := o.screened(st, r.shop.ID, order, ev.ID, scr)
		if did == "" {
			// The review goes on as it was: nothing is written, and the re-check schedule stands.
			if scr.Decision() == atodene.DecisionHold {
				return keep("no change: still on hold (保留)")
			}
			return keep("no change: still under review (審査中)")
		}
		return write(next, did)
	}}
}

// ResolveRequested handles order.resolve_requested: it settles an order in the unknown state (a
// registration may exist at ATODENE that the worker cannot tell). With a transaction ID, found by
// the operator in ATODENE's own screen, the transaction is confirmed with getauthori.do and
// adopted: the order takes its decision and publishes the credit outcome a registration would (a
// cancelled transaction makes the order cancelled). A transaction ATODENE does not know is not
// adopted: the order stays unknown and the request is dead-lettered no-transaction. With
// not_registered the order returns to none, so that its next order.created or order.updated
// registers it. An order in any other status changes nothing, recorded in its history.
func (o *Orders) ResolveRequested(ctx context.Context, ev Event[events.ResolveRequest]) error {
	return o.onOrder(ctx, ev.Shop, ev.Data.OrderID, decided(o.resolve(ev)))
}

func (o *Orders) resolve(ev Event[events.ResolveRequest]) decision {
	order, tx := ev.Data.OrderID, ev.Data.TransactionID
	return decision{ev: ev.Meta, operator: ev.Data.Operator, apply: func(ctx context.Context, r *run, st orderstate.State) change {
		switch {
		case st.Status == orderstate.StatusNone && st.Version == 0:
			return fail(Permanent(ReasonNoTransaction, fmt.Errorf("order %s: a resolution was asked, but the worker has no record of the order", order)))
		case st.Status == orderstate.StatusOK && st.Reauth != nil && st.Reauth.Failed == ReauthUnknown:
			return o.resolveReauth(ctx, r, ev, st)
		case st.Status != orderstate.StatusUnknown:
			return keep("no change: the order is " + statusWord(st.Status) + ", not unknown; there is nothing to resolve")
		case ev.Data.NotRegistered:
			return write(notRegistered(st), "resolved: not registered at ATODENE; the order is none again, and its next order.created registers it")
		}
		scr, err := r.shop.Provider.GetAuthori(ctx, tx)
		rejected, isRejected := errors.AsType[*atodene.RejectedError](err)
		reason, permanent := DeadLetterReason(err)
		switch {
		case permanent && reason == ReasonNoTransaction:
			// er000002: not adopted. The operator learns it from the dead letter and the history.
			return fail(Permanent(ReasonNoTransaction, fmt.Errorf("order %s: ATODENE has no transaction %s: not adopted; the order stays unknown", order, tx)))
		case permanent:
			return fail(err) // the account refused: replayed once it is fixed
		case errors.Is(err, atodene.ErrAlreadyCancelled):
			st.TransactionID = tx
			at := ev.Time
			if at.IsZero() {
				at = o.Now()
			}
			return write(o.cancelled(st, r.shop.ID, order, ev.ID, at), "resolved: transaction "+tx+" adopted; ATODENE holds it as cancelled")
		case isRejected:
			return fail(Permanent(ReasonInvalid, fmt.Errorf("transaction_id: ATODENE refused getauthori.do for transaction %s (%s): not adopted; the order stays unknown", tx, rejected.Points(", "))))
		case err != nil:
			return fail(err)
		}
		// Adopted as a registration's answer is recorded. The fee, billed amount and data hash are
		// those of the worker's last request, which the unknown state holds (getauthori.do answers
		// with the decision alone).
		st.TransactionID, st.Errors = tx, nil
		standing(&st, scr)
		if st.Status == orderstate.StatusOK && st.AuthorizedAt.IsZero() && r.shop.ReauthorizeAfter > 0 && st.HasData {
			// The re-authorization counts from the approval, whose time ATODENE's answer does not
			// give: the time the order turned unknown stands for it (ChangedAt, which that write set:
			// later only if the order index changed since or the state was refreshed, and never
			// after this resolution), so that the re-authorization comes no later than it would
			// have. One adopted under review counts from the re-check that approves it (screened).
			at := st.ChangedAt
			if at.IsZero() || at.After(o.Now()) {
				at = o.Now()
			}
			authorized(&st, at)
		}
		if st.Status == orderstate.StatusPending {
			o.startPolling(&st)
		}
		o.emitCredit(&st, r.shop.ID, order, creditType(st.Status), ev.ID)
		o.dropQueuedShipment(&st, r.shop.ID, order, ev.ID)
		return write(st, "resolved: transaction "+tx+" adopted")
	}}
}

// notRegistered is the state of an unknown order that ATODENE holds no transaction for: none
// again, with no transaction, request, fee or decision, so that its next order.created or
// order.updated registers it (the first attempt of a new intent). What waits for the order
// carries over (parked events, a tracking number, the order of tracking numbers), and so does when
// it was ordered. The order's kept data (HasData) goes with the write: the order keeps none.
//
// The event that made the order unknown is the last credit event applied (CreditSeq: later ones
// were dead-lettered without a write), and it registered nothing: the order's position goes back
// to just before it, so that it, replayed from its dead letter, or any later one registers the
// order, while the credit events published before it stay stale.
func notRegistered(st orderstate.State) orderstate.State {
	next := orderstate.State{Version: st.Version, Epoch: st.Epoch, Shipment: requeued(st.Shipment), Outbox: st.Outbox,
		PollSeq: st.PollSeq, CreditSeq: st.CreditSeq, CreditCreated: st.CreditCreated,
		TrackingSeq: st.TrackingSeq, TrackingCreated: st.TrackingCreated, InvoiceEvent: st.InvoiceEvent,
		Parked: st.Parked, ParkTimer: st.ParkTimer, OrderedAt: st.OrderedAt, HasData: st.HasData}
	if next.CreditSeq > 0 {
		next.CreditSeq--
	}
	return next
}

// resolveReauth settles a re-authorization whose registration's outcome is unknown (ATODENE
// answered that the derived shopOrderId is registered, after an attempt whose answer was lost).
// With the transaction the operator found under that shopOrderId, the transaction is confirmed
// with getauthori.do and taken as the re-authorization's answer: OK moves the order onto it and
// cancels the old one, under review re-checks it, NG leaves the order on the old one. With
// not_registered, or a transaction ATODENE holds as cancelled, the next re-authorization is
// scheduled (under the next derived shopOrderId). An order that shipped or changed since keeps its
// old transaction: the one found is cancelled instead (stalePending).
func (o *Orders) resolveReauth(ctx context.Context, r *run, ev Event[events.ResolveRequest], st orderstate.State) change {
	order, tx := ev.Data.OrderID, ev.Data.TransactionID
	derived := ReauthShopOrderID(r.shop.OrderIDPrefix+order, st.Reauth.N)
	again := func(why string) change {
		rs := reauthOf(&st)
		rs.Failed, rs.Scheduled = "", false
		return write(st, "resolved: "+why+"; the next re-authorization is scheduled")
	}
	if ev.Data.NotRegistered {
		return again("the re-authorization registered nothing under " + derived)
	}
	if tx == st.TransactionID {
		// The order's own, live transaction (the other row of ATODENE's screen): taken as the
		// re-authorization's, it would be cancelled as the old one, the order left on it.
		return fail(Permanent(ReasonInvalid, fmt.Errorf("transaction_id: %s is the transaction order %s is on, not its re-authorization's: not adopted; "+
			"the re-authorization's is the one under shopOrderId %s in ATODENE's screen", tx, order, derived)))
	}
	scr, err := r.shop.Provider.GetAuthori(ctx, tx)
	reason, permanent := DeadLetterReason(err)
	switch {
	case permanent && reason == ReasonNoTransaction:
		return fail(Permanent(ReasonNoTransaction, fmt.Errorf("order %s: ATODENE has no transaction %s: not adopted as the re-authorization under %s", order, tx, derived)))
	case permanent:
		return fail(err)
	case errors.Is(err, atodene.ErrAlreadyCancelled):
		return again("the re-authorization's transaction " + tx + " is cancelled at ATODENE")
	case err != nil:
		return fail(err)
	}
	if why := stalePending(st); why != "" {
		// The order shipped on its old transaction, or changed, while the re-authorization waited
		// for the operator: the new transaction no longer fits it, as one under review would not
		// (settleReauth). It is cancelled, not adopted; a changed order is re-authorized again, a
		// shipped one never.
		if scr.Decision() != atodene.DecisionNG {
			if err := r.shop.Provider.Cancel(ctx, tx); err != nil && !errors.Is(err, atodene.ErrAlreadyCancelled) {
				return fail(err)
			}
		}
		rs := reauthOf(&st)
		rs.Failed, rs.Scheduled = "", false
		return write(st, "resolved: the re-authorization's transaction "+tx+" under "+derived+" cancelled, not adopted ("+why+"); the order stays on its transaction "+st.TransactionID)
	}
	rs := reauthOf(&st)
	rs.Failed, rs.ShopOrderID = "", derived
	return o.reauthDecided(st, r.shop.ID, order, tx, scr, ev.ID, "resolved: transaction "+tx+" adopted as the re-authorization under "+derived)
}
