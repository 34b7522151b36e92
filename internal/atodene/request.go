package atodene

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Request is an order checked against ATODENE's field rules (docs/protocol.md#field-limits), with
// the parts of the request document built from it: what Register and Modify send, as they send
// it, without checking it again. Only Order.Check makes one, and nothing changes it afterwards:
// its fields are unexported and it holds its own copy of the order. The zero Request was never
// checked; the client refuses it (ErrUncheckedRequest) and sends nothing.
type Request struct {
	order    Order
	customer customerXML
	ship     shipXML
	details  detailsXML
	browser  browserInfoXML
	checked  bool
}

// ErrUncheckedRequest is returned by Register and Modify for a Request that Order.Check did not
// make (the zero Request). Nothing is sent; it is a mistake of the caller, which no retry mends.
var ErrUncheckedRequest = errors.New("atodene: request never checked (make it with Order.Check)")

// Check applies ATODENE's field rules to the order as Register and Modify would send it
// (docs/protocol.md#field-limits) and returns it as a Request ready to send. It sends nothing.
// A failure is an *InvalidRequestError listing every field at fault, with Op transaction.do: a
// change (Modify) is held to the same rules as a registration. Browser data is checked even
// though only Register sends it.
//
// This is the one place the rules are applied to an order: the Request remembers that it
// passed, and the client sends its prebuilt parts as they are.
func (o Order) Check() (Request, error) {
	r := Request{
		order:    o.clone(),
		customer: o.customerXML(),
		ship:     o.shipXML(),
		browser:  browserInfoXML{HTTPHeader: o.Browser.HTTPHeader, DeviceInfo: o.Browser.DeviceInfo},
	}
	details, fits := o.detailsXML()
	r.details = details
	var c fieldChecker
	c.customer(r.customer)
	c.ship(r.ship)
	if !fits {
		c.errs = append(c.errs, FieldError{Field: "details", Reason: fmt.Sprintf(
			"the order's amounts cannot be written in %d lines of goodsPrice -%d to %d", maxDetailLines, maxGoodsPrice, maxGoodsPrice)})
	}
	c.details(r.details)
	c.browser(r.browser)
	if err := c.err(opRegister); err != nil {
		return Request{}, err
	}
	r.checked = true
	return r, nil
}

// Order returns a copy of the order the request was made from, e.g. to hash or record it.
// Changing the copy changes neither the request nor what it sends.
func (r Request) Order() Order { return r.order.clone() }

// Sent is what a request sends that an order's state records of it, read without copying the
// order: the shopOrderId, the date ordered, the handling fee and billed amount (yen, after the
// shop's fee table) and the invoice service (ServiceSeparate or ServiceEnclosed).
type Sent struct {
	ShopOrderID       string
	OrderedAt         time.Time
	Fee, BilledAmount int64
	Service           string
}

// Sent returns what the request sends that an order's state records.
func (r *Request) Sent() Sent {
	o := &r.order
	return Sent{ShopOrderID: o.ShopOrderID, OrderedAt: o.OrderedAt, Fee: o.Fee, BilledAmount: o.BilledAmount, Service: o.Service}
}

// clone copies o with its own items and consignee, which a copy of the struct would share.
func (o Order) clone() Order {
	o.Items = slices.Clone(o.Items)
	if o.ShipTo != nil {
		to := *o.ShipTo
		o.ShipTo = &to
	}
	return o
}

// sendable returns nil for a Request that Check made, or ErrUncheckedRequest naming op.
func (r Request) sendable(op string) error {
	if !r.checked {
		return fmt.Errorf("%w: %s not sent", ErrUncheckedRequest, op)
	}
	return nil
}
