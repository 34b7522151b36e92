package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Provider is what the handlers need of ATODENE; *atodene.Client implements it.
type Provider interface {
	Register(ctx context.Context, o atodene.Order) (atodene.Registration, error)
	GetAuthori(ctx context.Context, transactionID string) (atodene.Screening, error)
	Modify(ctx context.Context, transactionID string, o atodene.Order) (atodene.Change, error)
	Cancel(ctx context.Context, transactionID string) error
	ReportShipment(ctx context.Context, s atodene.Shipment) error
	InvoiceData(ctx context.Context, transactionID string) (atodene.Invoice, error)
}

// Shop is one configured shop as the handlers use it.
type Shop struct {
	ID       string
	Provider Provider
	Fees     fees.Table
	Service  string // default invoice delivery, atodene.ServiceSeparate or ServiceEnclosed
}

// Outcomes publishes outcome events and returns once the stream stored them.
type Outcomes interface {
	Publish(ctx context.Context, subject, msgID string, body []byte) error
}

// Orders handles the events of an order's life (DESIGN.md §5–§8): the credit check, its changes
// and cancellation, polling under review, shipment reports and invoice data. The handlers of one
// order are serialized across all workers by a lease; different orders run in parallel.
type Orders struct {
	Store    *orderstate.Store
	Shops    func(id string) (*Shop, bool)
	Outcomes Outcomes
	Polls    Polls
	Poll     PollPolicy
	LeaseTTL time.Duration
	Now      func() time.Time
	Logger   *zap.Logger
}

// lease takes the order's lease, waiting while another handler holds it. Waiting here, rather
// than handing the message back, keeps a burst of events for one order from using up their
// deliveries; the wait is bounded by the lease's lifetime (a crashed holder's lease expires).
func (o *Orders) lease(ctx context.Context, shop, order, eventID string, first *orderstate.State) (*orderstate.Lease, error) {
	wait := 20 * time.Millisecond
	deadline := o.Now().Add(o.LeaseTTL)
	for {
		lease, err := o.Store.AcquireLease(ctx, shop, order, orderstate.Take{EventID: eventID, TTL: o.LeaseTTL, First: first, Now: o.Now()})
		if !errors.Is(err, orderstate.ErrLeaseHeld) {
			return lease, err
		}
		if o.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// change is what a handler decided: the next state (nil: nothing to write) and the error to
// return after writing it.
type change struct {
	next *orderstate.State
	err  error
}

func keep() change                                    { return change{} }
func write(st orderstate.State) change                { return change{next: &st} }
func fail(err error) change                           { return change{err: err} }
func writeThen(st orderstate.State, err error) change { return change{next: &st, err: err} }

// withOrder runs fn holding the order's lease, with the order's current state, after finishing
// what an earlier, interrupted handler left undone. It writes the state fn returns and then
// settles it: schedules the poll, reports a queued shipment, publishes the outbox.
//
// eventID is the inbound event being handled ("" for a poll). It is recorded as processed before
// the lease is released, once fn succeeded and its effects are durable, and an event already
// recorded changes nothing: a copy of an event that got past the idempotency check while another
// delivery of it was still running waits here for the lease, and must not apply it a second time
// after a later event of the order (a tracking number entered again after its correction).
//
// first, if not nil, is the state of an order seen for the first time, written with the lease.
// Taking the lease reads the state and the event record, and the last write records the event
// and releases the lease: a new order registered with ATODENE costs three Redis round trips
// (lease with the intent, answer with its outbox, commit).
func (o *Orders) withOrder(ctx context.Context, shop *Shop, order, eventID string, first *orderstate.State, fn func(orderstate.State) change) error {
	lease, err := o.lease(ctx, shop.ID, order, eventID, first)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			_ = lease.Release(context.WithoutCancel(ctx))
		}
	}()

	st, err := o.settleAndPut(ctx, shop, order, lease.State)
	if err != nil || lease.EventDone {
		return err
	}
	c := fn(st)
	var last *orderstate.State
	if c.next != nil {
		next, err := o.Store.Put(ctx, shop.ID, order, *c.next, o.Now())
		if err != nil {
			return err
		}
		next, dirty, err := o.settle(ctx, shop, order, next)
		if err != nil {
			return err
		}
		if dirty {
			last = &next
		}
	}
	_, err = lease.Commit(ctx, last, c.err == nil, o.Now())
	committed = err == nil || errors.Is(err, orderstate.ErrConflict) // a conflict released it too
	if err != nil {
		return err
	}
	return c.err
}

// settleAndPut settles st and writes what settling changed.
func (o *Orders) settleAndPut(ctx context.Context, shop *Shop, order string, st orderstate.State) (orderstate.State, error) {
	next, dirty, err := o.settle(ctx, shop, order, st)
	if err != nil || !dirty {
		return st, err
	}
	return o.Store.Put(ctx, shop.ID, order, next, o.Now())
}

// settle makes the state's promises durable: the poll of a pending order is scheduled, a queued
// shipment of an OK order is reported, and the outbox is published. It returns the state with
// these done, and whether that differs from st. Repeating it is harmless: a schedule replaces
// the earlier one, and outcome message IDs are deterministic.
func (o *Orders) settle(ctx context.Context, shop *Shop, order string, st orderstate.State) (orderstate.State, bool, error) {
	dirty := false
	if st.Status == orderstate.StatusPending && !st.PollScheduled {
		at := o.Now().Add(o.Poll.Delay(st.PollAttempt))
		if err := o.Polls.Schedule(ctx, PollRequest{Shop: shop.ID, OrderID: order, Seq: st.PollSeq}, at); err != nil {
			return st, false, err
		}
		st.PollScheduled, dirty = true, true
	}
	if st.Status == orderstate.StatusOK && st.Shipment != nil && !st.Shipment.Reported {
		next, err := o.reportShipment(ctx, shop, order, st, nil, st.CausedBy)
		if err != nil {
			return st, false, err
		}
		st, dirty = next, true
	}
	for _, out := range st.Outbox {
		if err := o.Outcomes.Publish(ctx, out.Subject, out.MsgID, out.Body); err != nil {
			return st, false, err
		}
		dirty = true
	}
	st.Outbox = nil
	return st, dirty, nil
}

var jst = time.FixedZone("JST", 9*60*60)

// emit renders an outcome event into the state's outbox. Its message ID is derived from the
// order, the version of the state that records it and its type, so a retry of the same step
// repeats it and a later decision gets a new one.
func (o *Orders) emit(st *orderstate.State, shop, order, eventType, causedBy string, data any) {
	msgID := fmt.Sprintf("%s:%s:%d:%s", shop, order, st.Version+1, eventType)
	body, err := events.NewOutcome(msgID, eventType, causedBy, o.Now(), data)
	if err != nil {
		panic(fmt.Sprintf("handlers: encoding %s: %v", eventType, err)) // plain structs always encode
	}
	st.Outbox = append(st.Outbox, orderstate.Outcome{Subject: events.Subject(eventType, shop), MsgID: msgID, Body: body})
}

// emitCredit emits the credit.* event that st's status calls for.
func (o *Orders) emitCredit(st *orderstate.State, shop, order, eventType, causedBy string) {
	data := events.Credit{
		ShopID: shop, OrderID: order, TransactionID: st.TransactionID,
		Result: eventType[len("credit."):], Review: st.Review,
		Fee: st.Fee, BilledAmount: st.BilledAmount, Reasons: st.Reasons,
		DecidedAt: o.Now().In(jst).Format(time.RFC3339),
	}
	for _, e := range st.Errors {
		data.Errors = append(data.Errors, atodene.ProviderError(e))
	}
	o.emit(st, shop, order, eventType, causedBy, data)
}

func (o *Orders) shop(id string) (*Shop, error) {
	shop, ok := o.Shops(id)
	if !ok {
		return nil, Permanent(ReasonUnknownShop, fmt.Errorf("shop %q is not configured", id))
	}
	return shop, nil
}

func decisionStatus(d atodene.Decision) orderstate.Status {
	switch d {
	case atodene.DecisionOK:
		return orderstate.StatusOK
	case atodene.DecisionNG:
		return orderstate.StatusNG
	}
	return orderstate.StatusPending
}

func creditType(s orderstate.Status) string {
	switch s {
	case orderstate.StatusOK:
		return events.TypeCreditOK
	case orderstate.StatusNG:
		return events.TypeCreditNG
	case orderstate.StatusCancelled:
		return events.TypeCreditCancelled
	case orderstate.StatusInvalid:
		return events.TypeCreditInvalid
	}
	return events.TypeCreditPending
}

// startPolling makes the next write schedule a fresh series of re-checks.
func (o *Orders) startPolling(st *orderstate.State) {
	st.PollSince, st.PollSeq, st.PollAttempt, st.PollScheduled = o.Now(), st.PollSeq+1, 0, false
}

func providerErrors(errs []atodene.ProviderError) []orderstate.Error {
	out := make([]orderstate.Error, len(errs))
	for i, e := range errs {
		out[i] = orderstate.Error(e)
	}
	return out
}

// inOrder guards a handler of a credit event (created, updated, cancelled): an event older in the
// stream than one already applied to the order changes nothing, and a change records the event's
// sequence.
func inOrder(seq uint64, fn func(orderstate.State) change) func(orderstate.State) change {
	return func(st orderstate.State) change {
		if seq != 0 && seq <= st.CreditSeq {
			return keep()
		}
		c := fn(st)
		if c.next != nil && seq > c.next.CreditSeq {
			c.next.CreditSeq = seq
		}
		return c
	}
}
