package handlers

import (
	"context"
	"errors"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// InvoiceRequested handles order.invoice_requested (請求書ダウンロード): for an OK order whose
// invoice is enclosed it fetches the print data and publishes invoice.ok; otherwise invoice.ng
// says why. A request for an order whose transaction the worker does not know yet (a registration
// under way, or no record of the order) waits for it, parked; for an order under review, ATODENE
// is asked first whether it decided since the last re-check (or since a state Redis lost).
func (o *Orders) InvoiceRequested(ctx context.Context, ev Event[events.InvoiceRequest]) error {
	return o.onOrder(ctx, ev.Shop, ev.Data.OrderID, decided(o.invoice(ev)))
}

func (o *Orders) invoice(ev Event[events.InvoiceRequest]) decision {
	order := ev.Data.OrderID
	key := ev.Key()
	return decision{ev: ev.Meta, parkAs: parkInvoice, waits: waitsForResolution, apply: func(ctx context.Context, r *run, st orderstate.State) change {
		if st.InvoiceEvent == key {
			return keep("no change: answered already") // a retry after the answer was written
		}
		if st.Status == orderstate.StatusPending {
			scr, err := r.shop.Provider.GetAuthori(ctx, st.TransactionID)
			switch {
			case errors.Is(err, atodene.ErrAlreadyCancelled):
				st = o.cancelled(st, r.shop.ID, order, st.CausedBy, o.Now())
			case err != nil:
				return fail(err)
			case scr.Decision() == atodene.DecisionOK || scr.Decision() == atodene.DecisionNG:
				st, _ = o.screened(st, r.shop.ID, order, st.CausedBy, scr)
			}
		}
		st.InvoiceEvent = key
		var problem *events.ProviderError
		switch {
		case st.Status != orderstate.StatusOK:
			problem = &events.ProviderError{Point: "credit", Message: "the credit of the order is " + statusWord(st.Status) + ", not ok"}
		case st.Service != atodene.ServiceEnclosed:
			problem = &events.ProviderError{Point: "invoice_delivery", Message: "the invoice of the order is mailed separately by ATODENE, not enclosed"}
		}
		data := events.Invoice{ShopID: r.shop.ID, OrderID: order, TransactionID: st.TransactionID}
		if problem != nil {
			data.Errors = []events.ProviderError{*problem}
			o.emit(&st, r.shop.ID, order, events.TypeInvoiceNG, ev.ID, data)
			return write(st, "not fetched: "+problem.Message)
		}
		inv, err := r.shop.Provider.InvoiceData(ctx, st.TransactionID)
		rejected, isRejected := errors.AsType[*atodene.RejectedError](err)
		switch {
		case isRejected:
			data.Errors = outcomeErrors(rejected.Errors)
			o.emit(&st, r.shop.ID, order, events.TypeInvoiceNG, ev.ID, data)
			return write(st, "invoice refused by ATODENE")
		case err != nil:
			return fail(err)
		}
		data.Invoice = invoicePrintData(inv)
		o.emit(&st, r.shop.ID, order, events.TypeInvoiceOK, ev.ID, data)
		return write(st, "invoice print data fetched")
	}}
}
