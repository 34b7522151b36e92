// Package invoiceprint is the enclosed invoices (同梱) for printing, for the publisher command
// and the operators' console alike: Find looks up the current print data of orders in the outcome
// stream (each order's latest invoice.ok, unless a later credit outcome of the order superseded
// it), and the renderers lay it out, every print element of
// ATODENE's getinvoicedata.do with its Japanese label (docs/protocol.md#invoice-print-data): an
// HTML document of A4 pages, one invoice per page (WriteDocument), the same sheets as an HTML
// fragment with their own stylesheet to embed in another page (Sheets, Style), or plain text
// (WriteText). The print data holds the buyer's name and address: whatever shows it is for those
// who may see it.
package invoiceprint

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/streamscan"
)

// Invoice is the print data of one order's invoice, as its latest invoice.ok carried it, with
// where the outcome stream holds that event. Its JSON is what `publisher invoice print -json`
// prints.
type Invoice struct {
	Shop          string                   `json:"shop"`
	Order         string                   `json:"order"`
	TransactionID string                   `json:"transaction_id"`
	Seq           uint64                   `json:"seq"`
	Published     time.Time                `json:"published_at"`
	EventID       string                   `json:"event_id"`
	Invoice       *events.InvoicePrintData `json:"invoice"`
}

// DefaultScan is how many invoice.ok outcomes of a shop Find reads at most by default.
const DefaultScan = 20000

// DefaultCheck is how many credit outcomes of a shop Find reads at most by default to tell
// whether a later one superseded an invoice found: the newest of them, back to the oldest invoice
// found (docs/operations.md#invoice-print-shop-order). The outcome subjects name the shop,
// not the order, so there is no look-up of an order's last outcome: they are read.
const DefaultCheck = 20000

// Search bounds Find.
type Search struct {
	// Since is the oldest time an outcome may have been stored at; zero: the whole stream.
	Since time.Time
	// Scan is how many of the shop's invoice.ok outcomes it reads at most. Default DefaultScan.
	Scan int
	// Check is how many of the shop's credit outcomes, newest first, it reads at most to tell
	// whether an invoice found is still current. Default DefaultCheck. An invoice older than
	// those read is not reported current: it is in Found.Superseded, Unverified.
	Check int
}

// Superseded is an order's latest invoice.ok that is not printed as current: a later credit
// outcome of the order made it stale (its print data: amount, lines, addressee, お問合せ番号,
// barcode, predates the order's last change), or, Unverified, Find could not tell whether one
// did, for it stopped at Search.Check before reading back to it.
type Superseded struct {
	// Invoice is the stale (or unverified) print data, as found.
	Invoice Invoice
	// Type, EventID, Seq and TransactionID are those of the order's latest credit outcome after it
	// (credit.ok, credit.ng, credit.pending, credit.cancelled, or credit.invalid of another
	// transaction); empty when Unverified.
	Type          string
	EventID       string
	Seq           uint64
	TransactionID string
	// Unverified: the credit outcomes after the invoice were not all read. Checked is how many
	// were (the cap, Search.Check), CheckedFrom the oldest sequence read: the invoice is older.
	Unverified  bool
	Checked     int
	CheckedFrom uint64
}

// Cancelled reports whether the order's latest credit outcome cancelled it: its invoice is not
// to be printed at all (a new request is answered invoice.ng).
func (s Superseded) Cancelled() bool { return s.Type == events.TypeCreditCancelled }

// Reason says, for an operator, why the print data is not printed and what to do.
func (s Superseded) Reason() string {
	if s.Unverified {
		return fmt.Sprintf("its print data (invoice.ok, sequence %d) could not be checked against the order's later credit outcomes: the check read the shop's newest %d (back to sequence %d) and stopped at its cap; it may bill another amount or transaction; fetch it again",
			s.Invoice.Seq, s.Checked, s.CheckedFrom)
	}
	if s.Cancelled() {
		return fmt.Sprintf("the order was cancelled (credit.cancelled %s, sequence %d) after its print data was fetched (invoice.ok, sequence %d): the invoice of a cancelled order is not printed",
			s.EventID, s.Seq, s.Invoice.Seq)
	}
	return fmt.Sprintf("its print data (invoice.ok, sequence %d) predates the order's last change (%s %s, sequence %d, transaction %s): it may bill another amount or transaction; fetch it again",
		s.Invoice.Seq, s.Type, s.EventID, s.Seq, s.TransactionID)
}

// Found is what Find found, and how far it read.
type Found struct {
	// Invoices holds the current invoice of each order found, by order ID: its latest invoice.ok,
	// with no later credit outcome of the order that supersedes it.
	Invoices map[string]Invoice
	// Superseded holds, by order ID, the orders whose latest invoice.ok a later credit outcome
	// made stale (not in Invoices): their print data is fetched again by publishing
	// order.invoice_requested, unless the order was cancelled.
	Superseded map[string]Superseded
	// Read is how many invoice.ok outcomes of the shop it read.
	Read int
	// Checked is how many credit outcomes of the shop it read after the invoices found: at most
	// Search.Check.
	Checked int
	// CheckLimited says it stopped at Search.Check before reading back to the oldest invoice
	// found: the invoices older than the outcomes read are in Superseded, Unverified.
	CheckLimited bool
	// Limited says it stopped at Search.Scan before reading back to Since (or the stream's start):
	// an order not found may have an older invoice.ok.
	Limited bool
}

// Find finds the current print data of each order of the shop in the outcome stream s (RESULTS).
// It reads the shop's invoice.ok subject from the newest message back, in windows of sequences
// that double as they go, no further than search.Since and at most search.Scan messages, and
// stops once every order is found. Then it reads the shop's credit outcomes stored after the
// oldest invoice.ok found, newest first: an invoice.ok followed by a credit outcome
// of its order is superseded (Found.Superseded, not Found.Invoices), since the worker publishes
// one after an order's invoice only when what ATODENE holds changed: a change (credit.ok,
// credit.ng or credit.pending: the amount, the lines, the addressee), a cancel
// (credit.cancelled), a new registration or re-authorization (another transaction). The one
// exception is credit.invalid of the invoice's own transaction: ATODENE refused the change and
// the transaction stands as it was, so the print data is still the transaction's. The credit
// outcomes are read from the newest back, at most search.Check of them: an invoice older than the
// oldest read is in Found.Superseded as Unverified, not printed (a busy shop's print data weeks
// old costs at most search.Check messages, not every outcome since). An order with
// no invoice.ok found is in neither map: its print data is fetched by publishing
// order.invoice_requested. Errors are the server's, or ctx's end.
func Find(ctx context.Context, s jetstream.Stream, shop string, orders []string, search Search) (Found, error) {
	if search.Scan <= 0 {
		search.Scan = DefaultScan
	}
	if search.Check <= 0 {
		search.Check = DefaultCheck
	}
	var wanted []string
	for _, o := range orders {
		if !slices.Contains(wanted, o) {
			wanted = append(wanted, o)
		}
	}
	orders = wanted
	filters := []string{events.Subject(events.TypeInvoiceOK, shop)}
	found := Found{Invoices: map[string]Invoice{}, Superseded: map[string]Superseded{}}
	b := streamscan.Back{Stream: s, Filters: filters, Limit: search.Scan}
	if !search.Since.IsZero() {
		first, err := streamscan.FirstSince(ctx, s, filters, search.Since)
		if err != nil || first == 0 {
			return found, err
		}
		b.Floor = first
	}
	window := map[string]Invoice{}
	res, err := b.Run(ctx, 0, func(m jetstream.Msg, seq uint64) error {
		var env events.Envelope
		var data events.Invoice
		if json.Unmarshal(m.Data(), &env) != nil || json.Unmarshal(env.Data, &data) != nil || data.Invoice == nil {
			return nil
		}
		if _, done := found.Invoices[data.OrderID]; done || !slices.Contains(orders, data.OrderID) {
			return nil
		}
		md, _ := m.Metadata()
		// Within a window the messages come oldest first: a later one replaces an earlier.
		window[data.OrderID] = Invoice{Shop: shop, Order: data.OrderID, TransactionID: data.TransactionID, Seq: seq,
			Published: md.Timestamp, EventID: env.ID, Invoice: data.Invoice}
		return nil
	}, func() bool {
		for o, inv := range window {
			found.Invoices[o] = inv
		}
		clear(window)
		return len(found.Invoices) == len(orders)
	})
	found.Read, found.Limited = res.Read, res.Limited
	if err != nil || len(found.Invoices) == 0 {
		return found, err
	}
	err = supersede(ctx, s, shop, search.Check, &found)
	return found, err
}

// supersede moves from found.Invoices to found.Superseded the invoices that a later credit outcome
// of their order made stale (Find's rule). It reads the shop's credit outcomes from the newest
// back to the one after the oldest invoice found, at most check of them (streamscan.Back: windows
// read whole, oldest first within each): the newest outcome of an order after its invoice is
// met first, so it is the one kept. Once every invoice left is superseded it stops. When it stops
// at check, an invoice older than the outcomes read cannot be told current: it is moved to
// found.Superseded too, Unverified, never left in found.Invoices.
func supersede(ctx context.Context, s jetstream.Stream, shop string, check int, found *Found) error {
	from := uint64(0)
	for _, inv := range found.Invoices {
		if from == 0 || inv.Seq < from {
			from = inv.Seq
		}
	}
	later, window := map[string]Superseded{}, map[string]Superseded{}
	lowest := uint64(0) // the oldest sequence read
	b := streamscan.Back{Stream: s, Filters: []string{events.Subject("credit.*", shop)}, Floor: from + 1, Limit: check}
	res, err := b.Run(ctx, 0, func(m jetstream.Msg, seq uint64) error {
		if lowest == 0 || seq < lowest {
			lowest = seq
		}
		var env events.Envelope
		var data events.Credit
		if json.Unmarshal(m.Data(), &env) != nil || json.Unmarshal(env.Data, &data) != nil {
			return nil
		}
		inv, ok := found.Invoices[data.OrderID]
		switch {
		case !ok || seq <= inv.Seq:
		case env.Type == events.TypeCreditInvalid && data.TransactionID == inv.TransactionID:
			// A change ATODENE refused: the transaction stands with the data the invoice shows.
		default:
			// Oldest first within a window: the order's latest credit outcome is the last one kept.
			window[data.OrderID] = Superseded{Invoice: inv, Type: env.Type, EventID: env.ID, Seq: seq, TransactionID: data.TransactionID}
		}
		return nil
	}, func() bool {
		for o, sup := range window {
			if _, newer := later[o]; !newer { // a newer window's outcome is the later one
				later[o] = sup
			}
		}
		clear(window)
		return len(later) == len(found.Invoices)
	})
	found.Checked = res.Read
	for order, sup := range later {
		delete(found.Invoices, order)
		found.Superseded[order] = sup
	}
	if err != nil {
		return err
	}
	if res.Limited {
		found.CheckLimited = true
		for order, inv := range found.Invoices {
			// Every credit outcome from lowest on was read: an invoice at lowest-1 or after is checked.
			if inv.Seq+1 >= lowest {
				continue
			}
			delete(found.Invoices, order)
			found.Superseded[order] = Superseded{Invoice: inv, Unverified: true, Checked: res.Read, CheckedFrom: lowest}
		}
	}
	return nil
}
