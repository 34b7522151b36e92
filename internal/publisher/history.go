package publisher

import (
	"context"
	"fmt"
	"strings"

	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/termtable"
)

// historyLine is one entry of `order history -json`: the entry as the worker stores it, with the
// order it belongs to.
type historyLine struct {
	Shop  string `json:"shop"`
	Order string `json:"order"`
	orderstate.Entry
}

// orderHistory runs `order history SHOP ORDER`: the order's history, oldest first.
func (a *App) orderHistory(ctx context.Context, args []string) error {
	fs := a.flagSet("order history")
	ro := a.bindRedis(fs)
	asJSON := fs.Bool("json", false, "print JSON lines, one entry a line, as the worker stores them (times in UTC, texts whole)")
	a.setUsage(fs, "order history [flags] SHOP ORDER", fmt.Sprintf(`Prints the order's history as the worker keeps it in Redis (the last %d entries), oldest first: for
every event handled, when (JST), its type, its source (and operator), what it did, the ATODENE calls
made with their answers, the outcomes published, and the credit status after it (what it did is cut at
100 characters; -json has it whole). No personal data.
An order with no history is an error (exit status 1).
`, orderstate.HistoryLimit))
	o, err := a.openOrder(fs, ro, args, nil)
	if err != nil {
		return err
	}
	defer o.close()
	shop, orderID := o.shop, o.order
	history, err := o.store.History(ctx, shop, orderID)
	if err != nil {
		return err
	}
	if len(history) == 0 {
		return fmt.Errorf("order %s of shop %s: no history: the worker has handled no event for it (or its history expired)", orderID, shop)
	}
	if *asJSON {
		for _, e := range history {
			if err := a.printJSON(historyLine{Shop: shop, Order: orderID, Entry: e}); err != nil {
				return err
			}
		}
		return nil
	}
	var tb termtable.Table // its entries hold Japanese text (審査中, 保留)
	tb.Row("TIME (JST)", "TYPE", "SOURCE", "DID", "CALLS", "OUTCOMES", "STATUS")
	for _, e := range history {
		source := orDash(e.Source)
		if e.Operator != "" {
			source += " (" + e.Operator + ")"
		}
		tb.Row(jst.Format(e.At), e.Type, source, clipText(oneLine(e.Did), 100),
			orDash(strings.Join(e.Calls, ", ")), orDash(strings.Join(e.Outcomes, ", ")), statusName(e.Status))
	}
	if err := tb.Write(a.Stdout); err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.Stdout, "%d entries (at most %d are kept)\n", len(history), orderstate.HistoryLimit)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a text on its table row: tabs and line breaks would break the columns.
func oneLine(s string) string {
	return strings.NewReplacer("\t", " ", "\r", " ", "\n", " ").Replace(s)
}
