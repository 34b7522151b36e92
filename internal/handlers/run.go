package handlers

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// run is one handling of an order under its lease: the shop, whose provider records every call
// for the order's history and is stopped while ATODENE refuses the shop's account, and whether
// taking the lease wrote the order's state just now.
type run struct {
	shop  *Shop
	calls []string
	// fresh says taking the lease wrote the order's first state (a new order's intent): no
	// earlier handler can have sent its registration.
	fresh bool
	// refused names the timers of the run (refusedKey) that met a refusal of the shop's account
	// and were scheduled again (timerRefused).
	refused []string
	// refusedLater is the refused handler (decision.refused) of the timer whose handling this
	// run is, nil for an event's: the inbox entries it applies take it.
	refusedLater func(ctx context.Context, r *run, st orderstate.State, cause error) change
	// keep is the message being handled as an inbox entry, which a transient failure of its try
	// puts first in the order's inbox for its retry (Orders.keptForRetry); nil for a timer, a message
	// the inbox does not take (over 64 KiB with no Kept to hold its body), and a message on its
	// last delivery, whose failure dead-letters it.
	keep *orderstate.Parked
	// decided is the identity of the inbox entry whose decision the step has made, which the
	// inbox holds until the step's commit: it no longer holds parked events back (firstQueued).
	decided string
}

func (o *Orders) newRun(shop *Shop) *run {
	r := &run{}
	recorded := *shop
	recorded.Provider = recorder{p: shop.Provider, r: r, shop: shop.ID, refusals: &o.Refusals, now: o.Now, log: o.Logger}
	r.shop = &recorded
	return r
}

// recorder is a Provider that notes each call and its answer in its run, makes no call while the
// shop's account is refused, and turns the answers that are no outcome of the order (the account
// refused, an unknown transaction) into permanent failures.
type recorder struct {
	p        Provider
	r        *run
	shop     string
	refusals *Refusals
	now      func() time.Time
	log      *zap.Logger
}

// before returns an error instead of calling while the shop's calls are stopped, and otherwise
// the call's ticket, for after.
func (c recorder) before(op string) (ticket, error) {
	t, err := c.refusals.check(c.shop, c.now())
	if err != nil {
		c.r.calls = append(c.r.calls, op+": not called (the account is refused)")
	}
	return t, err
}

// after notes the call and classifies its error.
func (c recorder) after(t ticket, op, answer string, err error) error {
	c.note(op, answer, err)
	switch stop, ended := c.refusals.record(c.shop, t, err, c.now()); {
	case stop != nil:
		c.log.Error("ATODENE refuses the shop's account: its calls are stopped", zap.String("shop", c.shop),
			zap.String("errors", stop.Detail), zap.Time("retry_at", stop.RetryAt), zap.Stringer("reason", ReasonAccountRefused))
	case ended:
		c.log.Info("ATODENE accepts the shop's account again: its calls resume", zap.String("shop", c.shop))
	}
	return refusal(c.shop, err)
}

func (c recorder) note(op, answer string, err error) {
	rejected, isRejected := errors.AsType[*atodene.RejectedError](err)
	switch {
	case isRejected:
		answer = "NG: " + rejected.Points(", ")
	case err != nil:
		answer = "failed"
	}
	c.r.calls = append(c.r.calls, op+": "+answer)
}

func (c recorder) Register(ctx context.Context, req atodene.Request) (atodene.Registration, error) {
	t, err := c.before("transaction.do")
	if err != nil {
		return atodene.Registration{}, err
	}
	reg, err := c.p.Register(ctx, req)
	return reg, c.after(t, "transaction.do", string(reg.Auto), err)
}

func (c recorder) GetAuthori(ctx context.Context, transactionID string) (atodene.Screening, error) {
	t, err := c.before("getauthori.do")
	if err != nil {
		return atodene.Screening{}, err
	}
	scr, err := c.p.GetAuthori(ctx, transactionID)
	answer := string(scr.Decision())
	if answer == "" {
		answer = string(atodene.DecisionReview) // manual review not finished
	}
	return scr, c.after(t, "getauthori.do", answer, err)
}

func (c recorder) Modify(ctx context.Context, transactionID string, req atodene.Request) (atodene.Change, error) {
	t, err := c.before("modifytransaction.do change")
	if err != nil {
		return atodene.Change{}, err
	}
	ch, err := c.p.Modify(ctx, transactionID, req)
	answer := string(ch.Auto)
	if answer == "" {
		answer = "OK, not screened again"
	}
	return ch, c.after(t, "modifytransaction.do change", answer, err)
}

func (c recorder) Cancel(ctx context.Context, transactionID string) error {
	t, err := c.before("modifytransaction.do cancel")
	if err != nil {
		return err
	}
	return c.after(t, "modifytransaction.do cancel", "OK", c.p.Cancel(ctx, transactionID))
}

func (c recorder) ReportShipment(ctx context.Context, s atodene.Shipment) error {
	t, err := c.before("shippingrequest.do")
	if err != nil {
		return err
	}
	return c.after(t, "shippingrequest.do", "OK", c.p.ReportShipment(ctx, s))
}

func (c recorder) InvoiceData(ctx context.Context, transactionID string) (atodene.Invoice, error) {
	t, err := c.before("getinvoicedata.do")
	if err != nil {
		return atodene.Invoice{}, err
	}
	inv, err := c.p.InvoiceData(ctx, transactionID)
	return inv, c.after(t, "getinvoicedata.do", "OK", err)
}
