package publisher

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// orderRecheck runs `order recheck SHOP ORDER` (与信結果確認): order.recheck_requested for an
// order under review (docs/events.md#operator-events).
func (a *App) orderRecheck(ctx context.Context, args []string) error {
	fs := a.flagSet("order recheck")
	o := a.bindOperator(fs)
	a.setUsage(fs, "order recheck -operator NAME [flags] SHOP ORDER", `与信結果確認: publishes order.recheck_requested for the order (new id, source publisher/operator/NAME,
time now): the worker asks ATODENE now for the result of an order under review, outside its re-check
schedule. An order the worker has no state for, and one that is not pending (under review or on hold), are
refused (exit status 1).
`)
	shop, orderID, err := a.parseOperator(fs, "order recheck", o, args)
	if err != nil {
		return err
	}
	ev, err := a.operatorRequest(events.TypeRecheckRequested, events.RecheckRequest{ShopID: shop, OrderID: orderID, Operator: o.operator})
	if err != nil {
		return err
	}
	st, _, err := orderState(ctx, o.redis, shop, orderID)
	if err != nil {
		return err
	}
	if st.Status != orderstate.StatusPending {
		return fmt.Errorf("order %s of shop %s is %s: 与信結果確認 is for an order under review (pending); its result is known already", orderID, shop, statusWords(st))
	}
	return a.publishOperatorRequest(ctx, o, ev, shop, orderID, statusWords(st))
}

// orderResolve runs `order resolve SHOP ORDER`: order.resolve_requested for an order in the
// unknown state, with the transaction ATODENE holds or none.
func (a *App) orderResolve(ctx context.Context, args []string) error {
	fs := a.flagSet("order resolve")
	o := a.bindOperator(fs)
	tx := fs.String("transaction-id", "", "ATODENE's transaction `ID` (お問い合わせ番号) for the order, found in ATODENE's screen")
	notRegistered := fs.Bool("not-registered", false, "ATODENE holds no transaction for the order")
	a.setUsage(fs, "order resolve -operator NAME (-transaction-id ID | -not-registered) [flags] SHOP ORDER", `Settles an order in the unknown state: publishes order.resolve_requested (new id, source
publisher/operator/NAME, time now) with the transaction ATODENE holds for it (-transaction-id) or saying
ATODENE holds none (-not-registered): exactly one of the two. An order the worker has no state for, and
one that is not unknown, are refused (exit status 1).
`)
	shop, orderID, err := a.parseOperator(fs, "order resolve", o, args)
	if err != nil {
		return err
	}
	switch {
	case *tx == "" && !*notRegistered:
		return usagef("order resolve needs -transaction-id ID or -not-registered: what ATODENE holds for the order")
	case *tx != "" && *notRegistered:
		return usagef("-transaction-id and -not-registered: give one of them")
	}
	ev, err := a.operatorRequest(events.TypeResolveRequested,
		events.ResolveRequest{ShopID: shop, OrderID: orderID, Operator: o.operator, TransactionID: *tx, NotRegistered: *notRegistered})
	if err != nil {
		return err
	}
	st, _, err := orderState(ctx, o.redis, shop, orderID)
	if err != nil {
		return err
	}
	if st.Status != orderstate.StatusUnknown {
		return fmt.Errorf("order %s of shop %s is %s: resolve is for an order whose outcome is unknown", orderID, shop, statusWords(st))
	}
	return a.publishOperatorRequest(ctx, o, ev, shop, orderID, statusWords(st))
}

// operatorRequest makes the operator event of typ with data, validated as the worker validates it
// (events.DecodeData). Data the flags made invalid (a -transaction-id that is not one) is a mistake
// in the command line: its problems go to Stderr.
func (a *App) operatorRequest(typ string, data any) (event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return event{}, err
	}
	operator, _ := data.(interface{ RequestedBy() string })
	ev, err := operatorEvent(typ, raw, operator.RequestedBy())
	if err != nil {
		problemLines(a.Stderr, "", err)
		return event{}, usagef("%s rejected: nothing published", typ)
	}
	return ev, nil
}

// publishOperatorRequest publishes an operator event, as order cancel publishes its cancel.
func (a *App) publishOperatorRequest(ctx context.Context, o *operatorOpts, ev event, shop, orderID, status string) error {
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	res := actionResult{Shop: shop, Order: orderID, Status: status, Operator: o.operator}
	return a.publishAction(ctx, js, o, ev, &res)
}
