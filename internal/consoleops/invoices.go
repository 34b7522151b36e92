package consoleops

import (
	"context"
	"fmt"
	"html/template"
	"slices"

	"github.com/atodene-worker/atodene-worker/internal/console"
	"github.com/atodene-worker/atodene-worker/internal/invoiceprint"
)

// Sheets renders the enclosed invoices of the shop's orders for printing: each order's current
// print data in the outcome stream (invoiceprint.Find: its latest invoice.ok, at most
// invoiceprint.DefaultScan of the shop's invoice.ok read back from the newest, unless a later
// credit outcome of the order superseded it; print data older than the invoiceprint.DefaultCheck
// credit outcomes of the shop the check reads is Unverified, not printed), laid out as HTML sheets, one per A4 page, in the
// order given (an order given twice is printed once), with their stylesheet
// (invoiceprint.Style). The sheets carry no style attributes and no scripts: the console serves
// the CSS as a stylesheet of its own. missing lists, in the order given, the orders without a
// sheet: those with no print data found, and those whose print data predates the order's last
// change (Stale; both are fetched by the 請求書ダウンロード action) or whose order was cancelled
// since (Cancelled: never printed); sheets is empty when every order is missing. With no orders it returns the CSS alone and reads nothing. Errors are
// the server's (a missing outcome stream included), or ctx's end.
func (o *Ops) Sheets(ctx context.Context, shop string, orders []string) (template.HTML, template.CSS, []console.MissingInvoice, error) {
	css := invoiceprint.Style()
	if len(orders) == 0 {
		return "", css, nil, nil
	}
	s, err := o.cfg.JetStream.Stream(ctx, o.cfg.Results)
	if err != nil {
		return "", "", nil, fmt.Errorf("opening stream %s: %w", o.cfg.Results, err)
	}
	found, err := invoiceprint.Find(ctx, s, shop, orders, invoiceprint.Search{})
	if err != nil {
		return "", "", nil, fmt.Errorf("finding the invoices of shop %s in stream %s: %w", shop, o.cfg.Results, err)
	}
	var (
		invoices []invoiceprint.Invoice
		missing  []console.MissingInvoice
		seen     []string
	)
	for _, order := range orders {
		if slices.Contains(seen, order) {
			continue
		}
		seen = append(seen, order)
		if inv, ok := found.Invoices[order]; ok {
			invoices = append(invoices, inv)
		} else if sup, ok := found.Superseded[order]; ok {
			missing = append(missing, console.MissingInvoice{Order: order, Stale: !sup.Cancelled(), Cancelled: sup.Cancelled(), Unverified: sup.Unverified, Reason: sup.Reason()})
		} else {
			missing = append(missing, console.MissingInvoice{Order: order})
		}
	}
	if len(invoices) == 0 {
		return "", css, missing, nil
	}
	sheets, err := invoiceprint.Sheets(invoices)
	if err != nil {
		return "", "", nil, fmt.Errorf("rendering the invoices of shop %s: %w", shop, err)
	}
	return sheets, css, missing, nil
}
