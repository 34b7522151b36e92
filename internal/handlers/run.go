package handlers

import (
	"context"
	"errors"
	"strings"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
)

// run is one handling of an order under its lease: the shop, whose provider records every call
// for the order's history, and whether taking the lease wrote the order's state just now.
type run struct {
	shop  *Shop
	calls []string
	// fresh says taking the lease wrote the order's first state (a new order's intent): no
	// earlier handler can have sent its registration.
	fresh bool
}

func newRun(shop *Shop) *run {
	r := &run{}
	recorded := *shop
	recorded.Provider = recorder{p: shop.Provider, r: r}
	r.shop = &recorded
	return r
}

// recorder is a Provider that notes each call and its answer in its run.
type recorder struct {
	p Provider
	r *run
}

func (c recorder) note(op, answer string, err error) {
	var rejected *atodene.RejectedError
	switch {
	case errors.As(err, &rejected):
		parts := make([]string, len(rejected.Errors))
		for i, e := range rejected.Errors {
			parts[i] = e.Point + " " + e.Code
		}
		answer = "NG: " + strings.Join(parts, ", ")
	case err != nil:
		answer = "failed"
	}
	c.r.calls = append(c.r.calls, op+": "+answer)
}

func (c recorder) Register(ctx context.Context, o atodene.Order) (atodene.Registration, error) {
	reg, err := c.p.Register(ctx, o)
	c.note("transaction.do", string(reg.Auto), err)
	return reg, err
}

func (c recorder) GetAuthori(ctx context.Context, transactionID string) (atodene.Screening, error) {
	scr, err := c.p.GetAuthori(ctx, transactionID)
	answer := string(scr.Decision())
	if answer == "" {
		answer = string(atodene.DecisionReview) // manual review not finished
	}
	c.note("getauthori.do", answer, err)
	return scr, err
}

func (c recorder) Modify(ctx context.Context, transactionID string, o atodene.Order) (atodene.Change, error) {
	ch, err := c.p.Modify(ctx, transactionID, o)
	answer := string(ch.Auto)
	if answer == "" {
		answer = "OK, not screened again"
	}
	c.note("modifytransaction.do change", answer, err)
	return ch, err
}

func (c recorder) Cancel(ctx context.Context, transactionID string) error {
	err := c.p.Cancel(ctx, transactionID)
	c.note("modifytransaction.do cancel", "OK", err)
	return err
}

func (c recorder) ReportShipment(ctx context.Context, s atodene.Shipment) error {
	err := c.p.ReportShipment(ctx, s)
	c.note("shippingrequest.do", "OK", err)
	return err
}

func (c recorder) InvoiceData(ctx context.Context, transactionID string) (atodene.Invoice, error) {
	inv, err := c.p.InvoiceData(ctx, transactionID)
	c.note("getinvoicedata.do", "OK", err)
	return inv, err
}
