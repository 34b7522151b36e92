package operator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Tracking is the shipment of 伝票番号同期: a carrier name (yamato, sagawa, …) or ATODENE's
// two-digit carrier code, a tracking number (5 to 20 of digits and -), and optionally the date
// the enclosed invoice is issued (YYYY-MM-DD). The worker's rules apply (docs/events.md).
type Tracking struct {
	Carrier     string `json:"carrier"`
	Number      string `json:"tracking_number"`
	InvoiceDate string `json:"invoice_date,omitempty"`
}

// Resolution is what ATODENE holds for an order in the unknown state: its transaction ID (1 to 20
// digits, お問い合わせ番号), or NotRegistered when it holds none. Exactly one of the two.
type Resolution struct {
	TransactionID string `json:"transaction_id,omitempty"`
	NotRegistered bool   `json:"not_registered,omitempty"`
}

// Request is one action on one order, for Do and Bulk. The fields an action does not use are
// ignored.
type Request struct {
	Action   Action
	Operator string // who asks: ValidName
	Shop     string
	Order    string
	// Reason is added to a cancel's reason, which is "operator".
	Reason string
	// Tracking is the shipment of ActionTrack.
	Tracking Tracking
	// Resolution is the answer of ActionResolve.
	Resolution Resolution
}

// Do runs the request's action; see the action's method.
func (o *Operator) Do(ctx context.Context, req Request, opts ...Option) (Result, error) {
	switch req.Action {
	case ActionRerun:
		return o.Rerun(ctx, req.Operator, req.Shop, req.Order, opts...)
	case ActionRecheck:
		return o.Recheck(ctx, req.Operator, req.Shop, req.Order, opts...)
	case ActionCancel:
		return o.Cancel(ctx, req.Operator, req.Shop, req.Order, req.Reason, opts...)
	case ActionTrack:
		return o.Track(ctx, req.Operator, req.Shop, req.Order, req.Tracking, opts...)
	case ActionRequestInvoice:
		return o.RequestInvoice(ctx, req.Operator, req.Shop, req.Order, opts...)
	case ActionResolve:
		return o.Resolve(ctx, req.Operator, req.Shop, req.Order, req.Resolution, opts...)
	}
	r := Result{Action: req.Action, Shop: req.Shop, Order: req.Order, Operator: req.Operator}
	r.refuse(RefusedInput, fmt.Sprintf("%q is not an action: want one of %v", req.Action, Actions))
	return r, nil
}

// begin starts the result of an action and checks the request's own values: the operator's name
// and the shop ID. It returns false when they refuse it.
func begin(a Action, operator, shop, order string) (Result, bool) {
	r := Result{Action: a, Shop: shop, Order: order, Operator: operator}
	switch {
	case !ValidName(operator):
		r.refuse(RefusedInput, fmt.Sprintf("operator %q: want a login name or e-mail address (1-64 of A-Z, a-z, 0-9 and . _ @ + -)", operator))
		r.Problems = []events.Problem{{Field: "operator", Reason: "must be 1-64 of A-Z, a-z, 0-9 and . _ @ + -, starting with a letter or digit"}}
	case !events.ValidShopID(shop):
		r.refuse(RefusedInput, fmt.Sprintf("%q is not a shop ID (1-32 of A-Z, a-z, 0-9, _ and -)", shop))
		r.Problems = []events.Problem{{Field: "shop_id", Reason: "must be 1-32 of A-Z, a-z, 0-9, '_' and '-'"}}
	default:
		return r, true
	}
	return r, false
}

// act runs the actions whose event depends on the request only (all but Rerun): it builds the
// event from data and validates it (a rejected event is RefusedInput, before the order is read),
// reads the order's state, applies the rules, and publishes.
func (o *Operator) act(ctx context.Context, a Action, operator, shop, order string, typ string, data any, opts []Option) (Result, error) {
	r, ok := begin(a, operator, shop, order)
	if !ok {
		return r, nil
	}
	opt := collect(opts)
	ev, err := o.event(&r, typ, data, opt)
	if err != nil {
		var ie *events.InvalidError
		if !errors.As(err, &ie) {
			return r, err
		}
		r.refuse(RefusedInput, fmt.Sprintf("%s for order %s of shop %s rejected: %s: nothing published", typ, order, shop, problemText(ie.Problems)))
		r.Problems = ie.Problems
		return r, nil
	}
	st, _, err := o.read(ctx, &r, false)
	if err != nil {
		return r, err
	}
	if kind, why := refusal(shop, order, standingOf(st), a); why != "" {
		r.refuse(kind, why)
		return r, nil
	}
	return r, o.publish(ctx, &r, ev, opt)
}

// Cancel is 与信キャンセル: it publishes order.cancelled for the order, with the reason
// "operator" (": reason" added when reason is not blank). The worker cancels a live transaction at
// ATODENE and publishes credit.cancelled; an ng or invalid order is marked cancelled; a cancel
// during a registration waits for its outcome. Refused: an order the worker holds no state for,
// one cancelled already, one whose outcome is unknown, one with no credit status.
func (o *Operator) Cancel(ctx context.Context, operator, shop, order, reason string, opts ...Option) (Result, error) {
	why := "operator"
	if r := strings.TrimSpace(reason); r != "" {
		why += ": " + r
	}
	return o.act(ctx, ActionCancel, operator, shop, order, events.TypeOrderCancelled,
		events.Cancel{ShopID: shop, OrderID: order, Reason: why}, opts)
}

// Recheck is 与信結果確認: it publishes order.recheck_requested, and the worker asks ATODENE for
// the result now, outside its re-check schedule. Refused: an order that is not pending (under
// review or on hold), and one the worker holds no state for.
func (o *Operator) Recheck(ctx context.Context, operator, shop, order string, opts ...Option) (Result, error) {
	return o.act(ctx, ActionRecheck, operator, shop, order, events.TypeRecheckRequested,
		events.RecheckRequest{ShopID: shop, OrderID: order, Operator: operator}, opts)
}

// Resolve settles an order in the unknown state: it publishes order.resolve_requested with the
// transaction ATODENE holds for it, which the worker confirms with ATODENE before adopting it, or
// saying ATODENE holds none. A resolution with both or neither, or a transaction ID the worker
// would reject, is refused (RefusedInput); so is an order that is not unknown.
func (o *Operator) Resolve(ctx context.Context, operator, shop, order string, res Resolution, opts ...Option) (Result, error) {
	if (res.TransactionID == "") == !res.NotRegistered {
		r, ok := begin(ActionResolve, operator, shop, order)
		if ok {
			r.refuse(RefusedInput, fmt.Sprintf("order %s of shop %s: a resolution gives the transaction ID ATODENE holds or says it holds none: one of the two", order, shop))
			r.Problems = []events.Problem{{Field: "transaction_id", Reason: "give it, or not_registered, not both"}}
		}
		return r, nil
	}
	return o.act(ctx, ActionResolve, operator, shop, order, events.TypeResolveRequested,
		events.ResolveRequest{ShopID: shop, OrderID: order, Operator: operator, TransactionID: res.TransactionID, NotRegistered: res.NotRegistered},
		opts)
}

// Track is 伝票番号同期: it publishes order.tracking_entered with the shipment. The worker reports
// it to ATODENE for an ok order (a change when one was reported) and queues it for an order under
// review until the credit is OK. Refused: a shipment the worker would reject (RefusedInput), an
// order whose credit is not ok or pending, and one the worker holds no state for.
func (o *Operator) Track(ctx context.Context, operator, shop, order string, t Tracking, opts ...Option) (Result, error) {
	return o.act(ctx, ActionTrack, operator, shop, order, events.TypeTrackingEntered,
		events.Tracking{ShopID: shop, OrderID: order, Carrier: t.Carrier, TrackingNumber: t.Number, InvoiceDate: t.InvoiceDate}, opts)
}

// RequestInvoice is 請求書ダウンロード: it publishes order.invoice_requested, and the worker fetches
// the enclosed invoice's print data from ATODENE and publishes it as invoice.ok (see
// internal/invoiceprint). Refused: an order whose credit is not ok, one whose invoice is mailed
// separately (別送), and one the worker holds no state for.
func (o *Operator) RequestInvoice(ctx context.Context, operator, shop, order string, opts ...Option) (Result, error) {
	return o.act(ctx, ActionRequestInvoice, operator, shop, order, events.TypeInvoiceRequested,
		events.InvoiceRequest{ShopID: shop, OrderID: order}, opts)
}

// problemText joins problems into one line.
func problemText(p []events.Problem) string {
	parts := make([]string, len(p))
	for i, pr := range p {
		parts[i] = pr.Field + ": " + pr.Reason
	}
	return strings.Join(parts, "; ")
}

// Rerun is 与信を実行: it publishes the order's latest received data again, as a new
// order.created, for an order whose credit is ng, cancelled or invalid. The data is the event the
// worker last applied, read back from the inbound stream at the position the order's state
// records (State.CreditSeq); for a cancelled order, the newest order.created or order.updated of
// the order before the cancel; for an event dead-lettered and then replayed or edited, its newest
// copy. Result.From says which. Refused: another status, an order the worker holds no state for,
// data no longer in the stream (RefusedDataGone), data not found among the messages Scan allows
// (RefusedScanLimit) and data the worker would reject today (RefusedInvalid). For an ng or invalid order, Result.Note says that the worker calls ATODENE
// again only if the request differs from the one it answered.
func (o *Operator) Rerun(ctx context.Context, operator, shop, order string, opts ...Option) (Result, error) {
	r, ok := begin(ActionRerun, operator, shop, order)
	if !ok {
		return r, nil
	}
	opt := collect(opts)
	st, history, err := o.read(ctx, &r, true)
	if err != nil {
		return r, err
	}
	if kind, why := refusal(shop, order, standingOf(st), ActionRerun); why != "" {
		r.refuse(kind, why)
		return r, nil
	}
	from, err := o.latest(ctx, st, history, shop, order, opt.scan)
	var gone dataGone
	var limited scanLimited
	switch {
	case errors.As(err, &gone):
		r.refuse(RefusedDataGone, err.Error())
		return r, nil
	case errors.As(err, &limited):
		r.refuse(RefusedScanLimit, err.Error())
		return r, nil
	case err != nil:
		return r, err
	}
	r.From = &from
	ev, err := o.event(&r, events.TypeOrderCreated, from.Data, opt)
	if err != nil {
		var ie *events.InvalidError
		if !errors.As(err, &ie) {
			return r, err
		}
		r.refuse(RefusedInvalid, fmt.Sprintf("the data of %s sequence %d is not a valid order.created today: nothing published; publish a corrected order.created", o.inbound, from.Sequence))
		r.Problems = ie.Problems
		return r, nil
	}
	if err := o.publish(ctx, &r, ev, opt); err != nil {
		return r, err
	}
	if st.Status != orderstate.StatusCancelled && !opt.dry {
		r.Note = fmt.Sprintf("the worker sends it to ATODENE only if the request differs from the one ATODENE answered %s (the shop's settings changed, say); "+
			"otherwise its history says \"no change: same data\" (order history %s %s)", st.Status, shop, order)
	}
	return r, nil
}

// ErrNoData is the error of an order whose received data is not to be found in the inbound
// stream: past its retention, the stream created again, beyond the scan's limit, or an order the
// worker holds no state for. The error's text says which, and what to do.
var ErrNoData = errors.New("the order's received data is not in the inbound stream")

// Latest returns the order's latest received data: the event Rerun would send again, read from
// the inbound stream as Rerun reads it (Received.Data holds the order's data, with the buyer's
// personal data), whatever the order's status. An order whose data is not to be found is an error
// that errors.Is ErrNoData and names the order and why; other errors are Redis's and NATS's.
// Scan bounds the messages read.
func (o *Operator) Latest(ctx context.Context, shop, order string, opts ...Option) (Received, error) {
	st, err := o.store.Get(ctx, shop, order)
	if err != nil {
		return Received{}, err
	}
	if kind, why := refusal(shop, order, standingOf(st), ActionRerun); kind == RefusedNoState {
		return Received{}, fmt.Errorf("%s: %w", why, ErrNoData)
	}
	history, err := o.store.History(ctx, shop, order)
	if err != nil {
		return Received{}, err
	}
	return o.latest(ctx, st, history, shop, order, collect(opts).scan)
}

// latest finds the order's latest received data; a dataGone or a scanLimited error names the
// order and is ErrNoData.
func (o *Operator) latest(ctx context.Context, st orderstate.State, history []orderstate.Entry, shop, order string, scan int) (Received, error) {
	s, err := o.js.Stream(ctx, o.inbound)
	if err != nil {
		return Received{}, fmt.Errorf("opening stream %s: %w", o.inbound, err)
	}
	from, err := latestData(ctx, s, st, history, shop, order, scan)
	var gone dataGone
	var limited scanLimited
	switch {
	case errors.As(err, &gone):
		return Received{}, dataGone{fmt.Sprintf("order %s of shop %s: its received data is gone: %s; publish order.created with the order's data again", order, shop, gone.why)}
	case errors.As(err, &limited):
		return Received{}, scanLimited{fmt.Sprintf("order %s of shop %s: %s", order, shop, limited.why)}
	}
	return from, err
}
