package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// request is an order ready to send: the fee table applied, the provider's form built and checked
// against ATODENE's field rules (once: the client sends it without checking it again), its hash
// to store (dataHash), the hash of the order as received (received: the same request with the fee
// and billed amount before the fee table), and the values sent in another form than received.
type request struct {
	checked    atodene.Request
	hash       string
	received   string
	normalized []events.Normalized
}

// sameAs reports whether st records this request's data as the data last sent, whichever version
// of the hash it holds (a state written before an upgrade holds an older one), or the order as
// received as the order last received: an edited fee table does not make an unchanged order new
// data (docs/lifecycle.md#what-each-event-does). A state written before received hashes existed
// is compared by the request alone.
func (r request) sameAs(st orderstate.State) bool {
	return r.sentAs(st) || (st.ReceivedHash != "" && st.ReceivedHash == r.received)
}

// sentAs reports whether st records this very request, fee and billed amount included, as the
// request last sent (or about to be: an intent).
func (r request) sentAs(st orderstate.State) bool {
	return st.DataHash == r.hash || sameData(st.DataHash, r.checked.Order())
}

// OrderCreated handles order.created (decoded by events.DecodeCreated): fee table, registration,
// outcome (docs/lifecycle.md#ordercreated). A repeat for an order that is OK or pending calls nothing and publishes
// nothing.
func (o *Orders) OrderCreated(ctx context.Context, ev Event[events.Order]) error {
	return o.onOrder(ctx, ev.Shop, ev.Data.OrderID, func(shop *Shop) (decision, error) { return o.created(shop, ev) })
}

// created is the decision of order.created data decoded by events.DecodeCreated: a repeat for a
// live order changes nothing, and so does one for an NG or invalid order with the data refused.
// Either is no word on the order's data (repeated): unlike an order.updated with the refused data,
// it does not make an update published before it stale.
func (o *Orders) created(shop *Shop, ev Event[events.Order]) (decision, error) {
	return o.crediting(shop, ev, func(_ context.Context, _ *run, _ request, st orderstate.State) change {
		return repeated("no change: the credit is " + string(st.Status) + " already")
	})
}

// OrderUpdated handles order.updated: for a live order a change (与信内容変更) with the full new
// order, for any other a fresh registration (再与信). Identical data calls nothing. An update
// that brings the billed amount to 0 cancels the live transaction (as w2 does, docs/protocol.md#changes-and-cancels).
func (o *Orders) OrderUpdated(ctx context.Context, ev Event[events.Order]) error {
	return o.onOrder(ctx, ev.Shop, ev.Data.OrderID, func(shop *Shop) (decision, error) { return o.updated(shop, ev) })
}

// updated is the decision of order.updated: a live order with other data is changed at ATODENE.
// An update with nothing to bill, as received or after the fee table (what ATODENE would be
// sent), is a cancel.
func (o *Orders) updated(shop *Shop, ev Event[events.Order]) (decision, error) {
	if *ev.Data.BilledAmount == 0 {
		return o.cancelling(ev.Meta, ev.Data.OrderID, "billed_amount 0"), nil
	}
	d, err := o.crediting(shop, ev, func(ctx context.Context, r *run, req request, st orderstate.State) change {
		if req.sameAs(st) {
			return same("no change: same data")
		}
		return o.modify(ctx, r, ev, req, st)
	})
	if errors.Is(err, errNothingToBill) {
		return o.cancelling(ev.Meta, ev.Data.OrderID, "billed_amount 0 after the fee table"), nil
	}
	return d, err
}

// errNothingToBill is prepare's error for an order the fee table brings to 0 yen: invalid for a
// new order, a cancel for an update.
var errNothingToBill = errors.New("an order with nothing to bill is not registered")

// crediting is the decision order.created and order.updated share: prepare the request, write its
// intent first, and register an order without a live transaction. They differ only in what they
// do to a live one, which live says.
func (o *Orders) crediting(shop *Shop, ev Event[events.Order], live func(context.Context, *run, request, orderstate.State) change) (decision, error) {
	req, err := prepare(shop, ev.Data)
	if err != nil {
		return decision{}, err
	}
	first := intent(ev.Meta, req, orderstate.State{})
	return decision{ev: ev.Meta, ordered: creditOrder, first: &first, apply: func(ctx context.Context, r *run, st orderstate.State) change {
		if st.Status.Live() {
			return live(ctx, r, req, st)
		}
		return o.registerIfNew(ctx, r, ev, req, st)
	}}, nil
}

// registerIfNew registers an order that has no live transaction, unless its data is what was
// already refused (it would meet the same answer). A cancelled order is registered again even
// with the same data (与信を実行 after 与信キャンセル), unless the event is older than the cancel.
func (o *Orders) registerIfNew(ctx context.Context, r *run, ev Event[events.Order], req request, st orderstate.State) change {
	switch st.Status {
	case orderstate.StatusUnknown:
		return fail(Permanent(ReasonOutcomeUnknown, fmt.Errorf("order %s is in the unknown state: an earlier registration may exist at ATODENE", ev.Data.OrderID)))
	case orderstate.StatusCancelled:
		if !ev.Time.IsZero() && ev.Time.Before(st.CancelledAt) {
			return keep("no change: the event's time is before the order's cancel")
		}
	case orderstate.StatusNG, orderstate.StatusInvalid:
		if req.sameAs(st) {
			did := "no change: same data as the request ATODENE answered " + string(st.Status)
			if ev.Type == events.TypeOrderCreated {
				return repeated(did) // a repeated creation (created)
			}
			return same(did)
		}
	}
	return o.register(ctx, r, ev, req, st)
}

// prepare applies the shop's fee table and builds the request, checked against ATODENE's field
// rules: the one check of the order on its way to Register or Modify. Failures are invalid input.
func prepare(shop *Shop, ev events.Order) (request, error) {
	if n := len(shop.OrderIDPrefix) + len(ev.OrderID); n > atodene.MaxShopOrderID {
		return request{}, Permanent(ReasonInvalid, fmt.Errorf("order_id: with the shop's order_id_prefix %q, shopOrderId would be %d characters, more than ATODENE's %d",
			shop.OrderIDPrefix, n, atodene.MaxShopOrderID))
	}
	if shop.ReauthorizeAfter > 0 && reservedOrderID(ev.OrderID) {
		return request{}, Permanent(ReasonInvalid, fmt.Errorf("order_id: ends in %q and digits, the form of the shopOrderIds of re-authorizations, which the shop's reauthorize_after turns on (docs/lifecycle.md#re-authorization)", reauthMark))
	}
	res, err := shop.Fees.Apply(ev.Fee, *ev.BilledAmount)
	if err != nil {
		return request{}, Permanent(ReasonInvalid, fmt.Errorf("billed_amount: after the fee table: %w", err))
	}
	if res.BilledAmount == 0 { // what is sent is what counts (an order received at 0 is refused when decoded)
		return request{}, Permanent(ReasonInvalid, fmt.Errorf("billed_amount: is 0 after the fee table (received %d with fee %d, sent fee %d): %w",
			*ev.BilledAmount, ev.Fee, res.Fee, errNothingToBill))
	}
	order, normalized := toProviderOrder(shop, ev, res.Fee, res.BilledAmount)
	checked, err := order.Check()
	if err != nil {
		return request{}, Permanent(ReasonInvalid, err)
	}
	req := request{checked: checked, hash: dataHash(order), normalized: normalized}
	req.received = req.hash
	if res.Fee != ev.Fee || res.BilledAmount != *ev.BilledAmount {
		received := order // the slices shared, not changed
		received.Fee, received.BilledAmount = ev.Fee, *ev.BilledAmount
		req.received = dataHash(received)
	}
	return req, nil
}

// toProviderOrder builds what ATODENE is sent, and lists the values sent in another form than
// received: those the decoder normalised and, for a gift, the invoice delivery.
func toProviderOrder(shop *Shop, o events.Order, fee, billed int64) (atodene.Order, []events.Normalized) {
	orderedAt, _ := time.Parse(time.RFC3339, o.OrderedAt) // validated already
	out := atodene.Order{
		ShopOrderID: shop.OrderIDPrefix + o.OrderID, OrderedAt: orderedAt, Buyer: toPerson(*o.Buyer),
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
	normalized := o.Normalized
	if o.ShipTo != nil {
		p := toPerson(*o.ShipTo)
		out.ShipTo = &p
		// An invoice is never enclosed in a parcel addressed to someone else: a gift's invoice is
		// mailed to the buyer (docs/protocol.md#business-rules).
		if out.Service == atodene.ServiceEnclosed && o.IsGift() {
			out.Service = atodene.ServiceSeparate
			normalized = append(normalized[:len(normalized):len(normalized)], events.Normalized{Field: "invoice_delivery", Value: events.DeliverySeparate})
		}
	}
	for _, it := range o.Items {
		out.Items = append(out.Items, atodene.Item{Name: it.Name, UnitPrice: it.UnitPrice, Quantity: it.Quantity})
	}
	return out, normalized
}

func toPerson(p events.Person) atodene.Person {
	return atodene.Person{Name: p.Name, NameKana: p.NameKana, Zip: p.Zip, Address: p.Address,
		Company: p.Company, Department: p.Department, Phone: p.Phone, Email: p.Email}
}

// register writes the intent, calls ATODENE and records the answer. A transient failure leaves
// the intent in place: the retry sends the same shopOrderId again, and an answer that it is
// already registered means an earlier call got through, which only an operator can sort out. The
// same answer to the first attempt of an intent is as unknown: ATODENE holds a live transaction
// for the shopOrderId that the worker has no record of (another system registered it, or Redis
// lost the worker's record of registering it), and neither credit.invalid nor any other outcome
// would be true of both.
func (o *Orders) register(ctx context.Context, r *run, ev Event[events.Order], req request, st orderstate.State) change {
	resent := st.Status == orderstate.StatusRegistering && !r.fresh
	// With replicas to wait for, the intent is written (again) here even when the lease wrote it
	// or an earlier attempt did: this write waits until replicas hold it (orderstate.Replication).
	if st.Status != orderstate.StatusRegistering || !req.sentAs(st) || o.Store.WaitsForReplicas() {
		var err error
		if st, err = o.Store.PutIntent(ctx, r.shop.ID, ev.Data.OrderID, intent(ev.Meta, req, st), o.Now()); err != nil {
			return fail(err)
		}
	}
	reg, err := r.shop.Provider.Register(ctx, req.checked)
	rejected, isRejected := errors.AsType[*atodene.RejectedError](err)
	did := "registered"
	switch {
	case errors.Is(err, atodene.ErrAlreadyRegistered) && resent:
		st.Status = orderstate.StatusUnknown
		st.OrderData = keptData(r.shop, ev.Data) // the data sent, for a resolution that adopts the transaction
		return writeThen(st, Permanent(ReasonOutcomeUnknown, fmt.Errorf("order %s: ATODENE says it is already registered after an attempt whose outcome was unknown", ev.Data.OrderID)))
	case errors.Is(err, atodene.ErrAlreadyRegistered):
		st.Status = orderstate.StatusUnknown
		st.OrderData = keptData(r.shop, ev.Data)
		return writeThen(st, Permanent(ReasonOutcomeUnknown, fmt.Errorf("order %s: ATODENE already holds a live transaction for shopOrderId %s that the worker has no record of (registered by another system on the account, or the worker's record of it lost)", ev.Data.OrderID, req.checked.Sent().ShopOrderID)))
	case isRejected:
		st.Status, st.Errors = orderstate.StatusInvalid, providerErrors(rejected.Errors)
		did = "refused by ATODENE"
	case err != nil:
		return fail(err) // transient: retried with the intent kept
	default:
		st.TransactionID, st.Status = reg.TransactionID, decisionStatus(reg.Auto)
		switch st.Status {
		case orderstate.StatusPending:
			o.startPolling(&st)
		case orderstate.StatusOK:
			authorized(&st, o.Now())
		}
		st.OrderData = keptData(r.shop, ev.Data) // stored only while the order keeps it
	}
	o.emitCredit(&st, r.shop.ID, ev.Data.OrderID, creditType(st.Status), ev.ID, req.normalized...)
	o.dropQueuedShipment(&st, r.shop.ID, ev.Data.OrderID, ev.ID)
	return write(st, withNormalized(did, req.normalized))
}

// withNormalized adds the names of the fields sent in another form than received to what an
// event did (the values are in the outcome; the history holds no personal data).
func withNormalized(did string, normalized []events.Normalized) string {
	for i, n := range normalized {
		sep := ", "
		if i == 0 {
			sep = "; sent normalized: "
		}
		did += sep + n.Field
	}
	return did
}

// intent is the state that records a registration about to be sent, replacing st. A new order's
// intent is written with its lease (decision.first), saving a round trip. What waits for the order
// (parked events, a tracking number) carries over. It holds the order's ordered_at, which the order
// index lists and sorts it by.
func intent(ev Meta, req request, st orderstate.State) orderstate.State {
	sent := req.checked.Sent()
	return orderstate.State{Version: st.Version, Status: orderstate.StatusRegistering, DataHash: req.hash, ReceivedHash: req.received,
		Fee: sent.Fee, BilledAmount: sent.BilledAmount, Service: sent.Service,
		Shipment: requeued(st.Shipment), PollSeq: st.PollSeq, CausedBy: ev.ID, CreditSeq: st.CreditSeq, CreditCreated: st.CreditCreated,
		TrackingSeq: st.TrackingSeq, TrackingCreated: st.TrackingCreated, RepeatSeq: st.RepeatSeq, RepeatCreated: st.RepeatCreated, RepeatTime: st.RepeatTime,
		Parked: st.Parked, ParkTimer: st.ParkTimer, OrderedAt: sent.OrderedAt, Reauth: renewed(st.Reauth), HasData: st.HasData}
}

// renewed is the re-authorization a new registration starts with: none under way, none scheduled
// (a timer scheduled for the previous transaction is stale), its count kept so that a later one
// derives a shopOrderId not used before.
func renewed(rs *orderstate.Reauth) *orderstate.Reauth {
	if rs == nil {
		return nil
	}
	return &orderstate.Reauth{N: rs.N, Seq: rs.Seq + 1}
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
func (o *Orders) modify(ctx context.Context, r *run, ev Event[events.Order], req request, st orderstate.State) change {
	order := ev.Data.OrderID
	if st.ShopOrderID != "" { // a re-authorized transaction: its shopOrderId is the derived one
		ord := req.checked.Order()
		ord.ShopOrderID = st.ShopOrderID
		checked, err := ord.Check()
		if err != nil {
			return fail(Permanent(ReasonInvalid, err))
		}
		req.checked = checked
	}
	ch, err := r.shop.Provider.Modify(ctx, st.TransactionID, req.checked)
	rejected, isRejected := errors.AsType[*atodene.RejectedError](err)
	switch {
	case errors.Is(err, atodene.ErrAlreadyCancelled):
		return write(o.cancelled(st, r.shop.ID, order, ev.ID, o.Now()), "cancelled: ATODENE holds the transaction as cancelled")
	case isRejected:
		// The transaction stands with its earlier data (the state keeps its amounts); a corrected
		// order.updated tries again. The outcome is the answer to the change, so it carries the
		// amounts the change sent, as a refused registration's does.
		sent := req.checked.Sent()
		fee, billed := st.Fee, st.BilledAmount
		st.Errors, st.Fee, st.BilledAmount = providerErrors(rejected.Errors), sent.Fee, sent.BilledAmount
		o.emitCredit(&st, r.shop.ID, order, events.TypeCreditInvalid, ev.ID, req.normalized...)
		st.Errors, st.Fee, st.BilledAmount = nil, fee, billed
		return write(st, "change refused by ATODENE; the transaction stands as it was")
	case err != nil:
		return fail(err)
	}
	wasOK := st.Status == orderstate.StatusOK
	sent := req.checked.Sent()
	st.DataHash, st.ReceivedHash, st.Fee, st.BilledAmount, st.Service = req.hash, req.received, sent.Fee, sent.BilledAmount, sent.Service
	st.Errors, st.Reasons, st.CausedBy = nil, nil, ev.ID
	st.OrderData = keptData(r.shop, ev.Data)
	if ch.Auto != atodene.DecisionNone {
		st.Status, st.Review = decisionStatus(ch.Auto), ""
	} else {
		// None: no new screening, the decision that stands at ATODENE holds. That is not always the
		// one the state records: when an earlier attempt of this change reached ATODENE and its
		// answer was lost, ATODENE screened it then, and this identical retry is a change of
		// nothing. So ask ATODENE which decision stands.
		scr, err := r.shop.Provider.GetAuthori(ctx, st.TransactionID)
		switch {
		case errors.Is(err, atodene.ErrAlreadyCancelled):
			return write(o.cancelled(st, r.shop.ID, order, ev.ID, o.Now()), "cancelled: ATODENE holds the transaction as cancelled")
		case err != nil:
			return fail(err) // retried: sending the same change again is harmless
		}
		standing(&st, scr)
	}
	if st.Status == orderstate.StatusPending {
		o.startPolling(&st)
	}
	if st.Status == orderstate.StatusOK && !wasOK && st.AuthorizedAt.IsZero() {
		authorized(&st, o.Now()) // the first approval of a transaction under review; a later one does not count
	}
	o.emitCredit(&st, r.shop.ID, order, creditType(st.Status), ev.ID, req.normalized...)
	o.dropQueuedShipment(&st, r.shop.ID, order, ev.ID)
	return write(st, withNormalized("changed", req.normalized))
}
