// Package invoiceprint is the enclosed invoices (同梱) for printing, for the publisher command
// and the operators' console alike: Find looks up the latest print data of orders in the outcome
// stream (each order's latest invoice.ok), and the renderers lay it out, every print element of
// ATODENE's getinvoicedata.do with its Japanese label (docs/protocol.md#invoice-print-data): an
// HTML document of A4 pages, one invoice per page (WriteDocument), the same sheets as an HTML
// fragment with their own stylesheet to embed in another page (Sheets, Style), or plain text
// (WriteText). The print data holds the buyer's name and address: whatever shows it is for those
// who may see it.
package invoiceprint

import (
	"context"
	"encoding/json"
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

// Search bounds Find.
type Search struct {
	// Since is the oldest time an outcome may have been stored at; zero: the whole stream.
	Since time.Time
	// Scan is how many of the shop's invoice.ok outcomes it reads at most. Default DefaultScan.
	Scan int
}

// Found is what Find found, and how far it read.
type Found struct {
	// Invoices holds the latest invoice of each order found, by order ID.
	Invoices map[string]Invoice
	// Read is how many invoice.ok outcomes of the shop it read.
	Read int
	// Limited says it stopped at Search.Scan before reading back to Since (or the stream's start):
	// an order not found may have an older invoice.ok.
	Limited bool
}

// Find finds the latest invoice.ok of each order of the shop in the outcome stream s (RESULTS):
// it reads the shop's invoice.ok subject from the newest message back, in windows of sequences
// that double as they go, no further than search.Since and at most search.Scan messages, and
// stops once every order is found. An order with no invoice.ok among them is not in
// Found.Invoices: its print data is fetched by publishing order.invoice_requested. Errors are the
// server's, or ctx's end.
func Find(ctx context.Context, s jetstream.Stream, shop string, orders []string, search Search) (Found, error) {
	if search.Scan <= 0 {
		search.Scan = DefaultScan
	}
	var wanted []string
	for _, o := range orders {
		if !slices.Contains(wanted, o) {
			wanted = append(wanted, o)
		}
	}
	orders = wanted
	filters := []string{events.Subject(events.TypeInvoiceOK, shop)}
	found := Found{Invoices: map[string]Invoice{}}
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
	return found, err
}
