package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/invoiceprint"
	"github.com/atodene-worker/atodene-worker/internal/jst"
)

// invoiceUsage is the usage of the invoice commands as a group.
const invoiceUsage = `Usage: publisher invoice <command> [flags]

Commands:
  print   the enclosed-invoice print data of orders as a printable document (invoice print SHOP ORDER...)

publisher invoice print -h lists the flags.
`

// invoiceCommands are the invoice commands.
var invoiceCommands = group{name: "invoice", usage: invoiceUsage, subs: []sub{
	{"print", nil, (*App).invoicePrint},
}}

// invoicePrint runs `invoice print SHOP ORDER...`: the print data found by invoiceprint.Find,
// laid out by invoiceprint.
func (a *App) invoicePrint(ctx context.Context, args []string) error {
	fs := a.flagSet("invoice print")
	stream := fs.String("stream", "RESULTS", "`name` of the outcome stream")
	out := fs.String("o", "", "write the document to `file` (created with mode 0600: it holds the buyers' names and addresses) instead of standard output")
	text := fs.Bool("text", false, "plain text, one invoice per page (form feeds), instead of HTML")
	asJSON := fs.Bool("json", false, "print the print data as JSON lines, one invoice a line, instead of a document")
	scan := fs.Int("scan", invoiceprint.DefaultScan, "read at most `N` invoice.ok outcomes of the shop, newest first, looking for the orders")
	since := fs.String("since", "", "look no further back than `time` (RFC 3339, or a duration ago such as 720h); default: the whole stream")
	a.bindConnection(fs)
	a.setUsage(fs, "invoice print [flags] SHOP ORDER...", `Prints the enclosed-invoice (同梱) print data of the orders as a printable document: HTML for A4 paper,
one invoice per page, every print element of ATODENE's getinvoicedata.do with its Japanese label; or
plain text (-text) or JSON lines (-json). The print data is the one the latest invoice.ok of each order
carried, found by reading the shop's invoice.ok outcomes in RESULTS from the newest back (-scan, -since).
An order with none is reported on standard error, with the way to fetch it (publish
order.invoice_requested), and the exit status is 1 after the others are printed. So is an order whose
latest invoice.ok predates a later credit outcome of the order (a change, a cancel, a new registration):
its print data may bill another amount or transaction and is not printed; fetch it again (a cancelled
order's is never printed).
`)
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) < 2:
		return usagef("invoice print needs SHOP and at least one ORDER (got %d arguments)", len(rest))
	case !events.ValidShopID(rest[0]):
		return usagef("invoice print: %q is not a shop ID (1-32 of A-Z, a-z, 0-9, _ and -)", rest[0])
	case *text && *asJSON:
		return usagef("-text and -json: give one of them")
	case *scan < 1:
		return usagef("-scan must be at least 1")
	}
	from, err := parseWhen(*since, time.Now())
	if err != nil {
		return usagef("-since: %v", err)
	}
	shop := rest[0]
	var orders []string
	for _, o := range rest[1:] {
		if !slices.Contains(orders, o) {
			orders = append(orders, o)
		}
	}
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	s, err := js.Stream(ctx, *stream)
	if err != nil {
		return a.where(fmt.Errorf("opening stream %s: %w", *stream, err))
	}
	found, err := invoiceprint.Find(ctx, s, shop, orders, invoiceprint.Search{Since: from, Scan: *scan})
	if err != nil {
		return err
	}
	var printed []invoiceprint.Invoice
	var missing, stale []string
	for _, o := range orders {
		if inv, ok := found.Invoices[o]; ok {
			printed = append(printed, inv)
		} else if _, ok := found.Superseded[o]; ok {
			stale = append(stale, o)
		} else {
			missing = append(missing, o)
		}
	}
	if len(printed) > 0 {
		var doc bytes.Buffer
		switch {
		case *asJSON:
			enc := json.NewEncoder(&doc)
			enc.SetEscapeHTML(false)
			for _, p := range printed {
				if err := enc.Encode(p); err != nil {
					return err
				}
			}
		case *text:
			err = invoiceprint.WriteText(&doc, printed)
		default:
			err = invoiceprint.WriteDocument(&doc, printed)
		}
		if err != nil {
			return err
		}
		if *out == "" {
			if _, err := a.Stdout.Write(doc.Bytes()); err != nil {
				return err
			}
		} else {
			if err := os.WriteFile(*out, doc.Bytes(), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(a.Stderr, "wrote %d invoices to %s\n", len(printed), *out)
		}
	}
	for _, o := range stale {
		sup := found.Superseded[o]
		if sup.Cancelled() {
			fmt.Fprintf(a.Stderr, "order %s: not printed: %s\n", o, sup.Reason())
			continue
		}
		fmt.Fprintf(a.Stderr, "order %s: not printed: %s with: publisher publish -type order.invoice_requested -shop %s -order %s (publisher order show %s %s shows the order as it is now)\n",
			o, sup.Reason(), shop, o, shop, o)
	}
	if len(missing) == 0 && len(stale) == 0 {
		return nil
	}
	if len(missing) == 0 {
		return fmt.Errorf("%d of %d orders have no current invoice print data: %s", len(stale), len(orders), strings.Join(stale, ", "))
	}
	where := fmt.Sprintf("the last %d invoice.ok outcomes of shop %s in %s", found.Read, shop, *stream)
	if !found.Limited {
		where = fmt.Sprintf("the %d invoice.ok outcomes of shop %s in %s", found.Read, shop, *stream)
		if !from.IsZero() {
			where += " since " + jst.Format(from) + " JST"
		}
	}
	for _, o := range missing {
		fmt.Fprintf(a.Stderr, "order %s: no invoice.ok among %s; fetch the print data with: publisher publish -type order.invoice_requested -shop %s -order %s (for an order whose credit is ok and whose invoice is enclosed: an order ng, cancelled or under review, or one ATODENE mails separately, 別送, has no print data; publisher order show %s %s says which)\n",
			o, where, shop, o, shop, o)
	}
	if found.Limited {
		fmt.Fprintf(a.Stderr, "(the search stopped at -scan %d; a larger -scan, or -since, looks further back)\n", *scan)
	}
	if len(stale) > 0 {
		return fmt.Errorf("%d of %d orders have no invoice print data: %s; %d no current one: %s", len(missing), len(orders), strings.Join(missing, ", "),
			len(stale), strings.Join(stale, ", "))
	}
	return fmt.Errorf("%d of %d orders have no invoice print data: %s", len(missing), len(orders), strings.Join(missing, ", "))
}
