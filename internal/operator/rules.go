package operator

import (
	"fmt"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Action is an operator's action on an order.
type Action string

// The actions, as their buttons name them.
const (
	ActionRerun          Action = "rerun"   // 与信を実行: the order's latest data again, as a new order.created
	ActionRecheck        Action = "recheck" // 与信結果確認: order.recheck_requested
	ActionCancel         Action = "cancel"  // 与信キャンセル: order.cancelled
	ActionTrack          Action = "track"   // 伝票番号同期: order.tracking_entered
	ActionRequestInvoice Action = "invoice" // 請求書ダウンロード: order.invoice_requested
	ActionResolve        Action = "resolve" // settle an unknown order: order.resolve_requested
)

// Actions lists every action, in the order a user interface shows them.
var Actions = []Action{ActionRerun, ActionRecheck, ActionCancel, ActionTrack, ActionRequestInvoice, ActionResolve}

// Label is the action's name in the operators' Japanese.
func (a Action) Label() string {
	switch a {
	case ActionRerun:
		return "与信を実行"
	case ActionRecheck:
		return "与信結果確認"
	case ActionCancel:
		return "与信キャンセル"
	case ActionTrack:
		return "伝票番号同期"
	case ActionRequestInvoice:
		return "請求書ダウンロード"
	case ActionResolve:
		return "与信結果を確定"
	}
	return string(a)
}

// Order is what the rules read an order from: its state as the worker holds it
// (orderstate.State, from Store.Get) or its entry in the order index (orderstate.Summary, from
// Store.ListOrders).
type Order interface {
	orderstate.State | orderstate.Summary
}

// standing is what the rules read of an order.
type standing struct {
	known       bool // the worker holds a state for the order
	status      orderstate.Status
	review      string
	service     string // ATODENE's invoice delivery code: "2" separate, "3" enclosed
	noService   bool   // the service is not known (the order index does not hold it)
	cancelledAt time.Time
	// reauthUnknown: the order is ok, but the outcome of its re-authorization's registration is
	// unknown (docs/lifecycle.md#re-authorization).
	reauthUnknown bool
}

func standingOf[O Order](o O) standing {
	switch v := any(o).(type) {
	case orderstate.State:
		return standing{known: v.Version > 0, status: v.Status, review: v.Review, service: v.Service, cancelledAt: v.CancelledAt,
			reauthUnknown: v.Status == orderstate.StatusOK && v.Reauth != nil && v.Reauth.Failed == "unknown"}
	case orderstate.Summary:
		// An order of the index has a state; the index holds neither its invoice delivery nor
		// when it was cancelled.
		return standing{known: true, status: v.Status, review: v.Review, noService: true}
	}
	return standing{}
}

// Allowed returns the actions the order's state allows, in the order of Actions: the actions that
// WhyNot does not refuse, and that the actions themselves do not refuse for the order's status.
// Read from an orderstate.Summary, which does not hold the invoice delivery, RequestInvoice is
// allowed for every ok order; the action itself refuses one whose invoice is mailed separately.
// Rerun may still be refused when it runs, if the order's data left the inbound stream.
func Allowed[O Order](o O) []Action {
	s := standingOf(o)
	var out []Action
	for _, a := range Actions {
		if _, why := refusal("", "", s, a); why == "" {
			out = append(out, a)
		}
	}
	return out
}

// WhyNot says why the order's state does not allow the action: a sentence for people naming the
// order (shop and order) and what to do, or "" when the action is allowed. These are the checks
// the actions make before they publish.
func WhyNot[O Order](shop, order string, o O, a Action) string {
	_, why := refusal(shop, order, standingOf(o), a)
	return why
}

// refusal is the one place of the rules.
func refusal(shop, order string, s standing, a Action) (Refusal, string) {
	if !s.known {
		return RefusedNoState, fmt.Sprintf("order %s of shop %s: the worker has no credit state for it (order history %s %s shows what it did with its events)",
			order, shop, shop, order)
	}
	words := statusWords(s.status, s.review)
	status := func(format string, args ...any) (Refusal, string) {
		return RefusedStatus, fmt.Sprintf("order %s of shop %s ", order, shop) + fmt.Sprintf(format, args...)
	}
	switch a {
	case ActionRerun:
		switch s.status {
		case orderstate.StatusNG, orderstate.StatusCancelled, orderstate.StatusInvalid:
			return "", ""
		case orderstate.StatusOK, orderstate.StatusPending:
			return status("is %s: its credit is live at ATODENE; 与信を実行 is for an order whose credit is ng, cancelled or invalid (send order.updated to change it, or cancel it first)", words)
		case orderstate.StatusRegistering:
			return status("is registering: a registration is under way; wait for its outcome (order history %s %s)", shop, order)
		case orderstate.StatusUnknown:
			return status("is unknown: an earlier registration may exist at ATODENE; settle it first (docs/operations.md#what-each-reason-means-and-what-to-do)")
		}
		return status("has credit status %q: 与信を実行 is for an order whose credit is ng, cancelled or invalid", statusName(s.status))
	case ActionCancel:
		switch s.status {
		case orderstate.StatusCancelled:
			return status("is cancelled already (at %s JST)", jst.Format(s.cancelledAt))
		case orderstate.StatusUnknown:
			return status("is unknown: the worker does not know whether ATODENE holds a transaction; cancel it at ATODENE by hand, then settle it")
		case orderstate.StatusNone:
			return status("has no credit state: a cancel would wait for an order that may never come")
		}
		return "", ""
	case ActionRecheck:
		if s.status != orderstate.StatusPending {
			return status("is %s: 与信結果確認 is for an order under review (pending); its result is known already", words)
		}
		return "", ""
	case ActionResolve:
		if s.status != orderstate.StatusUnknown && !s.reauthUnknown {
			return status("is %s: resolve is for an order whose outcome is unknown, or whose re-authorization's is", words)
		}
		return "", ""
	case ActionTrack:
		switch s.status {
		case orderstate.StatusOK, orderstate.StatusPending:
			// Under review, the tracking number is queued until the credit is OK.
			return "", ""
		case orderstate.StatusRegistering:
			return status("is registering: a registration is under way; wait for its outcome (order history %s %s)", shop, order)
		case orderstate.StatusUnknown:
			return status("is unknown: the worker does not know whether ATODENE holds a transaction; settle it first")
		case orderstate.StatusNone:
			return status("has no credit state: a tracking number would wait for an order that may never come")
		}
		return status("is %s: 伝票番号同期 is for an order whose credit is ok or under review; ATODENE takes no shipment for this one (the worker answers shipment.ng)", words)
	case ActionRequestInvoice:
		switch {
		case s.status == orderstate.StatusOK && (s.noService || s.service == atodene.ServiceEnclosed):
			return "", ""
		case s.status == orderstate.StatusOK:
			return status("is ok with its invoice mailed separately (別送): 請求書ダウンロード is for an enclosed invoice (同梱)")
		}
		return status("is %s: 請求書ダウンロード is for an order whose credit is ok and whose invoice is enclosed (同梱)", words)
	}
	return RefusedInput, fmt.Sprintf("%q is not an action: want one of %v", a, Actions)
}

// statusName names a status; "none" for an order never registered.
func statusName(s orderstate.Status) string {
	if s == orderstate.StatusNone {
		return "none"
	}
	return string(s)
}

// statusWords names a status for people: pending says whether the review is on hold.
func statusWords(s orderstate.Status, review string) string {
	if s == orderstate.StatusPending && review == "hold" {
		return "pending (on hold)"
	}
	return statusName(s)
}
