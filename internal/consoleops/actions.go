package consoleops

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/atodene-worker/atodene-worker/internal/console"
	"github.com/atodene-worker/atodene-worker/internal/operator"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// toOperator maps the console's action to the operator's; false for a value that is no action.
func toOperator(a console.Action) (operator.Action, bool) {
	switch a {
	case console.ActionRerun:
		return operator.ActionRerun, true
	case console.ActionRecheck:
		return operator.ActionRecheck, true
	case console.ActionCancel:
		return operator.ActionCancel, true
	case console.ActionTrack:
		return operator.ActionTrack, true
	case console.ActionInvoice:
		return operator.ActionRequestInvoice, true
	case console.ActionResolve:
		return operator.ActionResolve, true
	}
	return "", false
}

// toConsole maps the operator's action to the console's; false for one the console does not have.
func toConsole(a operator.Action) (console.Action, bool) {
	switch a {
	case operator.ActionRerun:
		return console.ActionRerun, true
	case operator.ActionRecheck:
		return console.ActionRecheck, true
	case operator.ActionCancel:
		return console.ActionCancel, true
	case operator.ActionTrack:
		return console.ActionTrack, true
	case operator.ActionRequestInvoice:
		return console.ActionInvoice, true
	case operator.ActionResolve:
		return console.ActionResolve, true
	}
	return "", false
}

// Allowed lists the actions the order's state allows, by the operator's rules (operator.Allowed),
// in the order of the panel's buttons. An order the worker holds no state for (Version 0) gets
// none. Rerun may still be refused when it runs, if the order's data left the inbound stream.
func (o *Ops) Allowed(st orderstate.State) []console.Action {
	var out []console.Action
	for _, a := range operator.Allowed(st) {
		if ca, ok := toConsole(a); ok {
			out = append(out, ca)
		}
	}
	return out
}

// Do runs the action a on each target as the named operator, at most Config.Concurrency at once,
// and returns one Outcome per target in the order given: published (a duplicate of an event the
// stream holds already counts as published, and its Reason says so), or refused with the reason
// (the order's state, a tracking number or transaction ID the worker would reject, an operator
// name that is not one). The events carry the source console/operator/NAME.
//
// key is the form's idempotency key: each event's id (and Nats-Msg-Id) derives from it, the
// action, the operator, the shop and the order (operator.Key), so that the same call again (a form
// sent twice, a retry after a failure) publishes nothing twice within the inbound stream's
// duplicate window. "" gives each event a random id.
//
// The error is a failure of Redis or NATS, or the end of ctx: it stops the targets not yet
// started, and the outcomes returned with it say what was done (a target not reached is refused
// with "not done: …").
func (o *Ops) Do(ctx context.Context, operatorName, key string, a console.Action, targets []console.Target) ([]console.Outcome, error) {
	var opts []operator.Option
	if key != "" {
		opts = append(opts, operator.Key(key))
	}
	return o.do(ctx, operatorName, a, targets, opts...)
}

func (o *Ops) do(ctx context.Context, operatorName string, a console.Action, targets []console.Target, opts ...operator.Option) ([]console.Outcome, error) {
	out := make([]console.Outcome, len(targets))
	oa, ok := toOperator(a)
	if !ok {
		for i, t := range targets {
			out[i] = console.Outcome{Shop: t.Shop, Order: t.Order, Action: a,
				Reason: fmt.Sprintf("%q is not an action: want one of %v: nothing published", a, console.AllActions)}
		}
		return out, nil
	}
	reqs := make([]operator.Request, len(targets))
	for i, t := range targets {
		reqs[i] = operator.Request{Action: oa, Operator: operatorName, Shop: t.Shop, Order: t.Order,
			Tracking:   operator.Tracking{Carrier: t.Carrier, Number: t.Number},
			Resolution: operator.Resolution{TransactionID: t.TransactionID, NotRegistered: t.NotRegistered}}
	}
	results, err := o.op.Bulk(ctx, reqs, opts...)
	for i, t := range targets {
		out[i] = console.Outcome{Shop: t.Shop, Order: t.Order, Action: a}
		if i < len(results) {
			out[i] = outcome(a, results[i])
		}
		if out[i].Reason == "" && !out[i].Published {
			out[i].Reason = "not done: the action stopped at a failure before this order (nothing published for it)"
		}
	}
	return out, err
}

// outcome says what became of one order of an action.
func outcome(a console.Action, r operator.Result) console.Outcome {
	out := console.Outcome{Shop: r.Shop, Order: r.Order, Action: a, MsgID: r.MsgID}
	switch r.Outcome {
	case operator.Published:
		out.Published = true
		switch {
		case r.Duplicate:
			out.Reason = fmt.Sprintf("duplicate: stream %s holds this event already (sequence %d), published before: nothing published again", r.Stream, r.Sequence)
		default:
			out.Reason = r.Note
		}
	case operator.Refused:
		out.Reason = r.Reason
	}
	return out
}

// Received returns the order's latest received event data (operator.Latest): the order.created
// or order.updated the worker last applied, read back from the inbound stream, with the buyer's
// personal data. An order whose data is not to be found (no state, past the stream's retention,
// the stream created again) is an error that errors.Is operator.ErrNoData and says why; other
// errors are Redis's and NATS's, or ctx's end.
func (o *Ops) Received(ctx context.Context, shop, order string) (json.RawMessage, error) {
	rec, err := o.op.Latest(ctx, shop, order)
	if err != nil {
		return nil, err
	}
	return rec.Data, nil
}
