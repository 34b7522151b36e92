package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// request is an order ready to send: the fee table applied, the provider's form built, and a hash
// of it to recognise identical data.
type request struct {
	order atodene.Order
	hash  string
}

// OrderCreated handles order.created: fee table, registration, outcome (DESIGN.md §7). A repeat
// for an order that is OK or pending calls nothing and publishes nothing.
func (o *Orders) OrderCreated(ctx context.Context, ev Event[events.Order]) error {
	shop, err := o.shop(ev.Shop)
	if err != nil {
		return err
	}
	req, err := prepare(shop, ev.Data)
	if err != nil {
		return err
	}
	first := intent(ev, req, orderstate.State{})
	return o.withOrder(ctx, shop, ev.Data.OrderID, ev.ID, &first, inOrder(ev.Seq, func(st orderstate.State) change {
		if st.Status.Live() {
			return keep()
		}
		return o.registerIfNew(ctx, shop, ev, req, st)
	}))
}

// OrderUpdated handles order.updated: for a live order a change (与信内容変更) with the full new
// order, for any other a fresh registration (再与信). Identical data calls nothing.
func (o *Orders) OrderUpdated(ctx context.Context, ev Event[events.Order]) error {
	shop, err := o.shop(ev.Shop)
	if err != nil {
		return err
	}
	req, err := prepare(shop, ev.Data)
	if err != nil {
		return err
	}
	first := intent(ev, req, orderstate.State{})
	return o.withOrder(ctx, shop, ev.Data.OrderID, ev.ID, &first, inOrder(ev.Seq, func(st orderstate.State) change {
		if st.Status.Live() {
			if st.DataHash == req.hash {
				return keep()
			}
			return o.modify(ctx, shop, ev, req, st)
		}
		return o.registerIfNew(ctx, shop, ev, req, st)
	}))
}

// registerIfNew registers an order that has no live transaction, unless its data is what was
// already refused or cancelled (it would meet the same answer).
func (o *Orders) registerIfNew(ctx context.Context, shop *Shop, ev Event[events.Order], req request, st orderstate.State) change {
	switch st.Status {
	case orderstate.StatusUnknown:
		return fail(Permanent(ReasonOutcomeUnknown, fmt.Errorf("order %s is in the unknown state: an earlier registration may exist at ATODENE", ev.Data.OrderID)))
	case orderstate.StatusNG, orderstate.StatusCancelled, orderstate.StatusInvalid:
		if st.DataHash == req.hash {
			return keep()
		}
	}
	return o.register(ctx, shop, ev, req, st)
}

// prepare applies the shop's fee table and builds the request; failures are invalid input.
func prepare(shop *Shop, ev events.Order) (request, error) {
	res, err := shop.Fees.Apply(ev.Fee, *ev.BilledAmount)
	if err != nil {
		return request{}, Permanent(ReasonInvalid, fmt.Errorf("billed_amount: after the fee table: %w", err))
	}
	order := toProviderOrder(shop, ev, res.Fee, res.BilledAmount)
	if err := order.Validate(); err != nil {
		return request{}, Permanent(ReasonInvalid, err)
	}
	forHash := order
	forHash.Browser = atodene.Browser{} // browser data changes between events of the same order
	raw, _ := json.Marshal(forHash)
	sum := sha256.Sum256(raw)
	return request{order: order, hash: hex.EncodeToString(sum[:])}, nil
}

func toProviderOrder(shop *Shop, o events.Order, fee, billed int64) atodene.Order {
	orderedAt, _ := time.Parse(time.RFC3339, o.OrderedAt) // validated already
	out := atodene.Order{
		ShopOrderID: o.OrderID, OrderedAt: orderedAt, Buyer: toPerson(*o.Buyer),
		ShippingFee: o.ShippingFee, Fee: fee, Discount: o.Discount, BilledAmount: billed,
		Service: shop.Service,
		Browser: atodene.Browser{HTTPHeader: o.Browser.HTTPHeader, DeviceInfo: o.Browser.DeviceInfo},
	}
	switch o.InvoiceDelivery {
	case events.DeliverySeparate:
		out.Service = atodene.ServiceSeparate
	case events.DeliveryEnclosed:
		out.Service = atodene.ServiceEnclosed
	}
	if o.ShipTo != nil {
		p := toPerson(*o.ShipTo)
		out.ShipTo = &p
	}
	for _, it := range o.Items {
		out.Items = append(out.Items, atodene.Item{Name: it.Name, UnitPrice: it.UnitPrice, Quantity: it.Quantity})
	}
	return out
}

func toPerson(p events.Person) atodene.Person {
	return atodene.Person{Name: p.Name, NameKana: p.NameKana, Zip: p.Zip, Address: p.Address,
		Company: p.Company, Department: p.Department, Phone: p.Phone, Email: p.Email}
}

// register writes the intent, calls ATODENE and records the answer. A transient failure leaves
// the intent in place: the retry sends the same shopOrderId again, and an answer that it is
// already registered means an earlier call got through, which only an operator can sort out.
func (o *Orders) register(ctx context.Context, shop *Shop, ev Event[events.Order], req request, st orderstate.State) change {
	if st.Status != orderstate.StatusRegistering || st.DataHash != req.hash {
		var err error
		if st, err = o.Store.Put(ctx, shop.ID, ev.Data.OrderID, intent(ev, req, st), o.Now()); err != nil {
			return fail(err)
		}
	}
	reg, err := shop.Provider.Register(ctx, req.order)
	var rejected *atodene.RejectedError
	switch {
	case errors.Is(err, atodene.ErrAlreadyRegistered):
		st.Status = orderstate.StatusUnknown
		return writeThen(st, Permanent(ReasonOutcomeUnknown, fmt.Errorf("order %s: ATODENE says it is already registered after an attempt whose outcome was unknown", ev.Data.OrderID)))
	case errors.As(err, &rejected):
		st.Status, st.Errors = orderstate.StatusInvalid, providerErrors(rejected.Errors)
	case err != nil:
		return fail(err) // transient: retried with the intent kept
	default:
		st.TransactionID, st.Status = reg.TransactionID, decisionStatus(reg.Auto)
		if st.Status == orderstate.StatusPending {
			o.startPolling(&st)
		}
	}
	o.emitCredit(&st, shop.ID, ev.Data.OrderID, creditType(st.Status), ev.ID)
	o.dropQueuedShipment(&st, shop.ID, ev.Data.OrderID, ev.ID)
	return write(st)
}

// intent is the state that records a registration about to be sent, replacing st. A new order's
// intent is written with its lease (withOrder's first), saving a round trip.
func intent(ev Event[events.Order], req request, st orderstate.State) orderstate.State {
	return orderstate.State{Version: st.Version, Status: orderstate.StatusRegistering, DataHash: req.hash,
		Fee: req.order.Fee, BilledAmount: req.order.BilledAmount, Service: req.order.Service,
		Shipment: requeued(st.Shipment), PollSeq: st.PollSeq, CausedBy: ev.ID}
}

// requeued is the shipment a new registration starts with: the tracking number the order has,
// queued, since the new transaction holds no report whatever the previous one held. It is
// reported once the new credit is OK (a change would be refused: nothing is on file).
func requeued(sh *orderstate.Shipment) *orderstate.Shipment {
	if sh == nil {
		return nil
	}
	return &orderstate.Shipment{CarrierCode: sh.CarrierCode, TrackingNumber: sh.TrackingNumber, InvoiceDate: sh.InvoiceDate}
}

// modify sends a change of a live transaction with the full new order. Sending the same change
// twice is harmless (it is a full replacement), so no intent is needed.
func (o *Orders) modify(ctx context.Context, shop *Shop, ev Event[events.Order], req request, st orderstate.State) change {
	ch, err := shop.Provider.Modify(ctx, st.TransactionID, req.order)
	var rejected *atodene.RejectedError
	switch {
	case errors.Is(err, atodene.ErrAlreadyCancelled):
		return write(o.cancelled(st, shop.ID, ev.Data.OrderID, ev.ID))
	case errors.As(err, &rejected):
		// The transaction stands with its earlier data; a corrected order.updated tries again.
		st.Errors = providerErrors(rejected.Errors)
		o.emitCredit(&st, shop.ID, ev.Data.OrderID, events.TypeCreditInvalid, ev.ID)
		st.Errors = nil
		return write(st)
	case err != nil:
		return fail(err)
	}
	st.DataHash, st.Fee, st.BilledAmount, st.Service = req.hash, req.order.Fee, req.order.BilledAmount, req.order.Service
	st.Errors, st.Reasons, st.CausedBy = nil, nil, ev.ID
	if ch.Auto != atodene.DecisionNone {
		st.Status, st.Review = decisionStatus(ch.Auto), ""
	} else {
		// None: no new screening, the decision that stands at ATODENE holds. That is not always the
		// one the state records: when an earlier attempt of this change reached ATODENE and its
		// answer was lost, ATODENE screened it then, and this identical retry is a change of
		// nothing. So ask ATODENE which decision stands.
		scr, err := shop.Provider.GetAuthori(ctx, st.TransactionID)
		switch {
		case errors.Is(err, atodene.ErrAlreadyCancelled):
			return write(o.cancelled(st, shop.ID, ev.Data.OrderID, ev.ID))
		case err != nil:
			return fail(err) // retried: sending the same change again is harmless
		}
		switch d := scr.Decision(); d {
		case atodene.DecisionOK, atodene.DecisionNG:
			st.Status, st.Review, st.Reasons = decisionStatus(d), "", scr.Reasons
		case atodene.DecisionHold:
			st.Status, st.Review = orderstate.StatusPending, "hold"
		default:
			st.Status, st.Review = orderstate.StatusPending, ""
		}
	}
	if st.Status == orderstate.StatusPending {
		o.startPolling(&st)
	}
	o.emitCredit(&st, shop.ID, ev.Data.OrderID, creditType(st.Status), ev.ID)
	o.dropQueuedShipment(&st, shop.ID, ev.Data.OrderID, ev.ID)
	return write(st)
}
