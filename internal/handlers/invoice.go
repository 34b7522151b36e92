package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// InvoiceRequested handles order.invoice_requested (請求書ダウンロード): for an OK order whose
// invoice is enclosed it fetches the print data and publishes invoice.ok; otherwise invoice.ng
// says why.
func (o *Orders) InvoiceRequested(ctx context.Context, ev Event[events.InvoiceRequest]) error {
	shop, err := o.shop(ev.Shop)
	if err != nil {
		return err
	}
	return o.withOrder(ctx, shop, ev.Data.OrderID, o.invoice(ev))
}

func (o *Orders) invoice(ev Event[events.InvoiceRequest]) decision {
	order := ev.Data.OrderID
	key := ev.Key()
	return decision{ev: ev.Meta, apply: func(ctx context.Context, r *run, st orderstate.State) change {
		if st.InvoiceEvent == key {
			return keep("no change: answered already") // a retry after the answer was written
		}
		if st.Status == orderstate.StatusNone {
			// No record is no evidence that ATODENE holds no transaction: an operator looks.
			return fail(Permanent(ReasonNoTransaction, fmt.Errorf("order %s: the worker has no record of it (not registered here, or its state was lost), so no invoice data can be fetched", order)))
		}
		st.InvoiceEvent = key
		var problem *atodene.ProviderError
		switch {
		case st.Status != orderstate.StatusOK:
			problem = &atodene.ProviderError{Point: "credit", Message: "the credit of the order is " + statusWord(st.Status) + ", not ok"}
		case st.Service != atodene.ServiceEnclosed:
			problem = &atodene.ProviderError{Point: "invoice_delivery", Message: "the invoice of the order is mailed separately by ATODENE, not enclosed"}
		}
		data := events.Invoice{ShopID: r.shop.ID, OrderID: order, TransactionID: st.TransactionID}
		if problem != nil {
			data.Errors = []atodene.ProviderError{*problem}
			o.emit(&st, r.shop.ID, order, events.TypeInvoiceNG, ev.ID, data)
			return write(st, "not fetched: "+problem.Message)
		}
		inv, err := r.shop.Provider.InvoiceData(ctx, st.TransactionID)
		var rejected *atodene.RejectedError
		switch {
		case errors.As(err, &rejected):
			data.Errors = rejected.Errors
			o.emit(&st, r.shop.ID, order, events.TypeInvoiceNG, ev.ID, data)
			return write(st, "invoice refused by ATODENE")
		case err != nil:
			return fail(err)
		}
		data.Invoice = &inv
		o.emit(&st, r.shop.ID, order, events.TypeInvoiceOK, ev.ID, data)
		return write(st, "invoice print data fetched")
	}}
}
