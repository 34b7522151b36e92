package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// TrackingEntered handles order.tracking_entered (伝票番号同期). For an OK order the shipment is
// reported (a later different carrier or number changes the report; the same values again are a
// duplicate). For an order under review the tracking number is kept and reported as soon as the
// credit turns OK. For an NG or cancelled order shipment.ng names the credit, and the number
// kept before is forgotten (a new registration reports neither). An event for an
// order not registered yet (not imported, or its registration under way) is parked until it is.
func (o *Orders) TrackingEntered(ctx context.Context, ev Event[events.Tracking]) error {
	return o.onOrder(ctx, ev.Shop, ev.Data.OrderID, decided(o.tracking(ev)))
}

func (o *Orders) tracking(ev Event[events.Tracking]) decision {
	order := ev.Data.OrderID
	code, _ := events.CarrierCode(ev.Data.Carrier) // validated
	wanted := orderstate.Shipment{CarrierCode: code, TrackingNumber: ev.Data.TrackingNumber, InvoiceDate: ev.Data.InvoiceDate}
	return decision{ev: ev.Meta, ordered: trackingOrder, parkAs: parkTracking, waits: waitsForResolution, apply: func(ctx context.Context, r *run, st orderstate.State) change {
		switch st.Status {
		case orderstate.StatusPending, orderstate.StatusOK:
			if cur := st.Shipment; cur != nil && cur.CarrierCode == wanted.CarrierCode && cur.TrackingNumber == wanted.TrackingNumber && cur.InvoiceDate == wanted.InvoiceDate {
				return same("no change: same carrier, tracking number and invoice date")
			}
			prev := st.Shipment
			next := wanted
			next.Filed = prev != nil && prev.Filed
			st.Shipment = &next
			if st.Status == orderstate.StatusPending {
				// Only Redis holds the tracking number once the event is acknowledged.
				next.Event = ev.Key()
				if err := o.keepCopy(ctx, r.shop.ID, order, o.parked(ev.Meta, "the credit", ""), KeptShipment); err != nil {
					return fail(err)
				}
				return write(st, "queued: reported when the credit is OK")
			}
			var err error
			if st, err = o.reportShipment(ctx, r.shop, order, st, prev, ev.ID); err != nil {
				return fail(err)
			}
			if st.Outbox[len(st.Outbox)-1].Type() == events.TypeShipmentNG {
				return write(st, "shipment refused by ATODENE")
			}
			return write(st, "shipment reported ("+st.Shipment.Report+")")
		}
		o.emitShipment(&st, r.shop.ID, order, ev.ID, events.TypeShipmentNG, wanted, "new",
			[]events.ProviderError{{Point: "credit", Message: fmt.Sprintf("the credit of the order is %s, not ok", statusWord(st.Status))}})
		// Refused because of the credit: the number it corrects is no longer the parcel's, so the
		// state forgets it and a new registration (与信を実行 after a cancel, new data after NG)
		// queues nothing it would report against the wrong slip. Nor does it queue this number: its
		// event has had its outcome, shipment.ng, and one event has one; the shop sends it again.
		st.Shipment = nil
		return write(st, "not reported: the credit is "+statusWord(st.Status))
	}}
}

// reportShipment sends the report st.Shipment calls for: new if ATODENE holds none, change if it
// does. A new report refused as already reported (a crash between the report and its record) is
// taken as done. A refused report restores prev, what ATODENE still holds. It emits shipment.ok
// or shipment.ng into st.
func (o *Orders) reportShipment(ctx context.Context, shop *Shop, order string, st orderstate.State, prev *orderstate.Shipment, causedBy string) (orderstate.State, error) {
	sh := *st.Shipment
	report, typ := "new", atodene.DeliveryNew
	if sh.Filed {
		report, typ = "change", atodene.DeliveryChange
	}
	var invoiceDate time.Time
	if sh.InvoiceDate != "" {
		invoiceDate, _ = time.ParseInLocation(time.DateOnly, sh.InvoiceDate, jst.Zone)
	}
	err := shop.Provider.ReportShipment(ctx, atodene.Shipment{Type: typ, TransactionID: st.TransactionID,
		CarrierCode: sh.CarrierCode, SlipNo: sh.TrackingNumber, InvoiceDate: invoiceDate})
	rejected, isRejected := errors.AsType[*atodene.RejectedError](err)
	switch {
	case err == nil, typ == atodene.DeliveryNew && isRejected && onlyPoint(rejected, "deliveryType"):
		sh.Reported, sh.Filed, sh.Report = true, true, report
		st.Shipment = &sh
		o.emitShipment(&st, shop.ID, order, causedBy, events.TypeShipmentOK, sh, report, nil)
	case isRejected:
		st.Shipment = prev
		o.emitShipment(&st, shop.ID, order, causedBy, events.TypeShipmentNG, sh, report, outcomeErrors(rejected.Errors))
	default:
		return st, err
	}
	return st, nil
}

func onlyPoint(r *atodene.RejectedError, point string) bool {
	for _, e := range r.Errors {
		if e.Point != point {
			return false
		}
	}
	return len(r.Errors) > 0
}

func (o *Orders) emitShipment(st *orderstate.State, shop, order, causedBy, eventType string, sh orderstate.Shipment, report string, errs []events.ProviderError) {
	o.emit(st, shop, order, eventType, causedBy, events.Shipment{
		ShopID: shop, OrderID: order, TransactionID: st.TransactionID,
		CarrierCode: sh.CarrierCode, TrackingNumber: sh.TrackingNumber, Report: report,
		Errors: errs, ReportedAt: o.Now().In(jst.Zone).Format(time.RFC3339),
	})
}

// dropQueuedShipment ends a tracking number queued while the credit was under review, once the
// credit ends NG or cancelled: it is never reported, and shipment.ng says why.
func (o *Orders) dropQueuedShipment(st *orderstate.State, shop, order, causedBy string) {
	if st.Shipment == nil || st.Shipment.Reported || st.Status.Live() {
		return
	}
	sh := *st.Shipment
	st.Shipment = nil
	o.emitShipment(st, shop, order, causedBy, events.TypeShipmentNG, sh, "new",
		[]events.ProviderError{{Point: "credit", Message: fmt.Sprintf("the credit of the order ended %s; the queued shipment is not reported", statusWord(st.Status))}})
}
