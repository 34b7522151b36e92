package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Provider is what the credit handlers need of ATODENE; *atodene.Client implements it.
type Provider interface {
	Register(ctx context.Context, o atodene.Order) (atodene.Registration, error)
	GetAuthori(ctx context.Context, transactionID string) (atodene.Screening, error)
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

// PollRequest is the body of a scheduled re-check of an order under review.
type PollRequest struct {
	Shop    string `json:"shop"`
	OrderID string `json:"order_id"`
	Seq     int    `json:"seq"`
}

// Polls schedules re-checks durably.
type Polls interface {
	Schedule(ctx context.Context, p PollRequest, at time.Time) error
}

// PollPolicy is the re-check schedule of orders under review (DESIGN.md §8).
type PollPolicy struct {
	First    time.Duration // first re-check after registration; default 1m
	Max      time.Duration // longest interval; default 30m
	Deadline time.Duration // give up and dead-letter after; default 14 days
}

// Delay returns the wait before re-check number attempt (0 for the first): First doubling up to
// Max, with ±10% jitter so that orders registered together spread out.
func (p PollPolicy) Delay(attempt int) time.Duration {
	b := newPollBackoff(p.withDefaults())
	d := b.NextBackOff()
	for range attempt {
		d = b.NextBackOff()
	}
	return d
}

// Credit handles the credit check: order.created and the polling of orders under review.
type Credit struct {
	Store    *orderstate.Store
	Shops    func(id string) (*Shop, bool)
	Outcomes Outcomes
	Polls    Polls
	Poll     PollPolicy
	LeaseTTL time.Duration
	Now      func() time.Time
	Logger   *zap.Logger
}

// errLeaseRetry is how long a handler waits when another one holds the order.
const errLeaseRetry = 500 * time.Millisecond

// withOrder runs fn holding the order's lease, with the order's current state, after finishing
// what an earlier, interrupted handler left undone (an unscheduled poll, an unpublished outcome).
func (c *Credit) withOrder(ctx context.Context, shop, order string, fn func(orderstate.State) (orderstate.State, error)) error {
	lease, err := c.Store.AcquireLease(ctx, shop, order, c.LeaseTTL)
	if errors.Is(err, orderstate.ErrLeaseHeld) {
		return RetryAfter(errLeaseRetry, err)
	}
	if err != nil {
		return err
	}
	defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()

	st, err := c.Store.Get(ctx, shop, order)
	if err != nil {
		return err
	}
	if st, err = c.settle(ctx, shop, order, st); err != nil {
		return err
	}
	next, err := fn(st)
	if err != nil || next.Version == st.Version {
		return err // fn failed, or wrote nothing new
	}
	_, err = c.settle(ctx, shop, order, next)
	return err
}

// settle makes the state's promises durable: the poll of a pending order is scheduled, the
// outcome the state calls for is published. Repeating it is harmless: the schedule replaces
// itself and the outcome's message ID is deterministic.
func (c *Credit) settle(ctx context.Context, shop, order string, st orderstate.State) (orderstate.State, error) {
	needPoll := st.Status == orderstate.StatusPending && !st.PollScheduled
	needPublish := st.Outcome != nil && !st.Outcome.Published
	if !needPoll && !needPublish {
		return st, nil
	}
	if needPoll {
		at := c.Now().Add(c.Poll.Delay(st.PollAttempt))
		if err := c.Polls.Schedule(ctx, PollRequest{Shop: shop, OrderID: order, Seq: st.PollSeq}, at); err != nil {
			return st, err
		}
		st.PollScheduled = true
	}
	if needPublish {
		if err := c.publish(ctx, shop, order, st); err != nil {
			return st, err
		}
		st.Outcome.Published = true
	}
	return c.Store.Put(ctx, shop, order, st, c.Now())
}

func (c *Credit) publish(ctx context.Context, shop, order string, st orderstate.State) error {
	data := events.Credit{
		ShopID: shop, OrderID: order, TransactionID: st.TransactionID,
		Result: creditResult(st.Outcome.Type), Review: st.Review,
		Fee: st.Fee, BilledAmount: st.BilledAmount, Reasons: st.Reasons,
		DecidedAt: st.UpdatedAt.In(jst).Format(time.RFC3339),
	}
	for _, e := range st.Errors {
		data.Errors = append(data.Errors, atodene.ProviderError(e))
	}
	body, err := events.NewOutcome(st.Outcome.MsgID, st.Outcome.Type, st.Outcome.CausedBy, st.UpdatedAt, data)
	if err != nil {
		return err
	}
	return c.Outcomes.Publish(ctx, events.Subject(st.Outcome.Type, shop), st.Outcome.MsgID, body)
}

var jst = time.FixedZone("JST", 9*60*60)

// creditResult is the result field of a credit.* type: credit.ok → ok.
func creditResult(eventType string) string { return eventType[len("credit."):] }

// outcomeFor records in st that the next version calls for an outcome event of eventType.
// A poll passes causedBy "" to keep the cause of the previous outcome: the event that started
// the credit check.
func outcomeFor(st *orderstate.State, shop, order, eventType, causedBy string) {
	if causedBy == "" && st.Outcome != nil {
		causedBy = st.Outcome.CausedBy
	}
	st.Outcome = &orderstate.Outcome{
		Type:     eventType,
		MsgID:    fmt.Sprintf("%s:%s:%d:%s", shop, order, st.Version+1, eventType),
		CausedBy: causedBy,
	}
}

// OrderCreated handles order.created: fee table, registration, outcome (DESIGN.md §7).
func (c *Credit) OrderCreated(ctx context.Context, ev Event[events.Order]) error {
	shop, ok := c.Shops(ev.Shop)
	if !ok {
		return Permanent(ReasonUnknownShop, fmt.Errorf("shop %q is not configured", ev.Shop))
	}
	order, hash, err := c.prepare(shop, ev.Data)
	if err != nil {
		return err
	}
	return c.withOrder(ctx, shop.ID, ev.Data.OrderID, func(st orderstate.State) (orderstate.State, error) {
		switch st.Status {
		case orderstate.StatusOK, orderstate.StatusPending:
			return st, nil // registered and live: a repeat calls nothing and publishes nothing
		case orderstate.StatusUnknown:
			return st, Permanent(ReasonOutcomeUnknown, fmt.Errorf("order %s is in the unknown state: an earlier registration may exist at ATODENE", ev.Data.OrderID))
		case orderstate.StatusNG, orderstate.StatusCancelled, orderstate.StatusInvalid:
			if st.DataHash == hash {
				return st, nil // the same data again: it would meet the same answer
			}
		}
		return c.register(ctx, shop, ev, order, hash, st)
	})
}

// prepare applies the shop's fee table and builds the request; failures are invalid input.
func (c *Credit) prepare(shop *Shop, o events.Order) (atodene.Order, string, error) {
	res, err := shop.Fees.Apply(o.Fee, *o.BilledAmount)
	if err != nil {
		return atodene.Order{}, "", Permanent(ReasonInvalid, fmt.Errorf("billed_amount: after the fee table: %w", err))
	}
	order := toProviderOrder(shop, o, res.Fee, res.BilledAmount)
	if err := order.Validate(); err != nil {
		return atodene.Order{}, "", Permanent(ReasonInvalid, err)
	}
	raw, _ := json.Marshal(order)
	sum := sha256.Sum256(raw)
	return order, hex.EncodeToString(sum[:]), nil
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
// already registered means the first call got through, which only an operator can sort out.
func (c *Credit) register(ctx context.Context, shop *Shop, ev Event[events.Order], order atodene.Order, hash string, st orderstate.State) (orderstate.State, error) {
	if st.Status != orderstate.StatusRegistering || st.DataHash != hash {
		st = orderstate.State{Version: st.Version, Status: orderstate.StatusRegistering, DataHash: hash,
			Fee: order.Fee, BilledAmount: order.BilledAmount, Service: order.Service, Shipment: st.Shipment}
		var err error
		if st, err = c.Store.Put(ctx, shop.ID, ev.Data.OrderID, st, c.Now()); err != nil {
			return st, err
		}
	}
	reg, err := shop.Provider.Register(ctx, order)
	var rejected *atodene.RejectedError
	switch {
	case errors.Is(err, atodene.ErrAlreadyRegistered):
		st.Status = orderstate.StatusUnknown
		if _, perr := c.Store.Put(ctx, shop.ID, ev.Data.OrderID, st, c.Now()); perr != nil {
			return st, perr
		}
		return st, Permanent(ReasonOutcomeUnknown, fmt.Errorf("order %s: ATODENE says it is already registered after an attempt whose outcome was unknown", ev.Data.OrderID))
	case errors.As(err, &rejected):
		st.Status = orderstate.StatusInvalid
		for _, pe := range rejected.Errors {
			st.Errors = append(st.Errors, orderstate.Error(pe))
		}
		outcomeFor(&st, shop.ID, ev.Data.OrderID, events.TypeCreditInvalid, ev.ID)
	case err != nil:
		return st, err // transient: retried with the intent kept
	default:
		st.TransactionID = reg.TransactionID
		st.Status, st.Review = decisionStatus(reg.Auto), ""
		outcomeFor(&st, shop.ID, ev.Data.OrderID, creditType(st.Status), ev.ID)
		if st.Status == orderstate.StatusPending {
			st.PollSince, st.PollSeq, st.PollAttempt, st.PollScheduled = c.Now(), st.PollSeq+1, 0, false
		}
	}
	return c.Store.Put(ctx, shop.ID, ev.Data.OrderID, st, c.Now())
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

// PollDue handles a due re-check of an order under review: it asks ATODENE for the screening
// result, publishes a change of state, and schedules the next re-check or gives up at the deadline.
func (c *Credit) PollDue(ctx context.Context, p PollRequest) error {
	shop, ok := c.Shops(p.Shop)
	if !ok {
		return Permanent(ReasonUnknownShop, fmt.Errorf("poll of shop %q, which is not configured", p.Shop))
	}
	return c.withOrder(ctx, p.Shop, p.OrderID, func(st orderstate.State) (orderstate.State, error) {
		if st.Status != orderstate.StatusPending || st.PollSeq != p.Seq {
			return st, nil // decided, cancelled or changed since this poll was scheduled
		}
		if deadline := c.Poll.withDefaults().Deadline; c.Now().Sub(st.PollSince) > deadline {
			return st, Permanent(ReasonPollDeadline, fmt.Errorf("order %s still under review after %s", p.OrderID, deadline))
		}
		scr, err := shop.Provider.GetAuthori(ctx, st.TransactionID)
		switch {
		case errors.Is(err, atodene.ErrAlreadyCancelled):
			st.Status = orderstate.StatusCancelled
			outcomeFor(&st, p.Shop, p.OrderID, events.TypeCreditCancelled, "")
			return c.Store.Put(ctx, p.Shop, p.OrderID, st, c.Now())
		case err != nil:
			return st, err
		}
		return c.Store.Put(ctx, p.Shop, p.OrderID, c.screened(st, p, scr), c.Now())
	})
}

// screened applies a screening result to a pending order's state.
func (c *Credit) screened(st orderstate.State, p PollRequest, scr atodene.Screening) orderstate.State {
	switch d := scr.Decision(); d {
	case atodene.DecisionOK, atodene.DecisionNG:
		st.Status, st.Review, st.Reasons = decisionStatus(d), "", scr.Reasons
		outcomeFor(&st, p.Shop, p.OrderID, creditType(st.Status), "")
		return st
	case atodene.DecisionHold:
		if st.Review != "hold" {
			st.Review = "hold"
			outcomeFor(&st, p.Shop, p.OrderID, events.TypeCreditPending, "")
		}
	}
	st.PollAttempt++
	st.PollScheduled = false // settle schedules the next re-check
	return st
}
