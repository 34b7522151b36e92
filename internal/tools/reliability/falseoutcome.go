package reliability

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// The sandbox's merchants, one per shop of the suite (run.writeShops).
const (
	codeA = "relshop00001"
	codeB = "relshop00002"
)

// shopOfCode maps a sandbox merchant code to the suite's shop ID.
var shopOfCode = map[string]string{codeA: shopA, codeB: shopB}

// txLive reports whether ATODENE holds a transaction as live: neither cancelled nor declined
// (the sandbox's own rule for refusing a second registration, er000101).
func txLive(t sandbox.TransactionView) bool { return t.State != "cancelled" && t.Decision != "NG" }

// txsByOrder groups the sandbox's transactions by order (shop/order, the suite's shop IDs), each
// group in the order they were registered; a re-authorization's transaction (shopOrderId
// <id>_R<n>) goes with its order's.
func txsByOrder(txs []sandbox.TransactionView) map[string][]sandbox.TransactionView {
	by := map[string][]sandbox.TransactionView{}
	for _, t := range txs {
		key := shopOfCode[t.ShopCode] + "/" + orderOfShopOrderID(t.ShopOrderID)
		by[key] = append(by[key], t)
	}
	for _, ts := range by {
		slices.SortFunc(ts, func(a, b sandbox.TransactionView) int { return a.RegisteredAt.Compare(b.RegisteredAt) })
	}
	return by
}

// atodeneNow is ATODENE's own state at the end of a run, as the sandbox shows it, against which
// outcomes are judged; it counts and lists the false ones.
type atodeneNow struct {
	byID    map[string]sandbox.TransactionView
	byOrder map[string][]sandbox.TransactionView
	vs      *violations
	n       int
}

// held returns the transaction an outcome names, if the sandbox holds it for the outcome's order.
func (a *atodeneNow) held(o Outcome) (sandbox.TransactionView, bool) {
	t, ok := a.byID[o.TxID]
	return t, ok && shopOfCode[t.ShopCode] == o.Shop && orderOfShopOrderID(t.ShopOrderID) == o.Order
}

// derivedShopOrderID reports whether a shopOrderId is a re-authorization's, <id>_R<n>
// (handlers.ReauthShopOrderID; the suite's order IDs are short enough never to be cut).
func derivedShopOrderID(id string) bool {
	i := strings.LastIndex(id, "_R")
	if i < 0 || i+2 == len(id) {
		return false
	}
	return strings.Trim(id[i+2:], "0123456789") == ""
}

// orderOfShopOrderID returns the order ID a shopOrderId was sent for: the order's own, or the one
// a re-authorization's was derived from.
func orderOfShopOrderID(id string) string {
	if !derivedShopOrderID(id) {
		return id
	}
	return id[:strings.LastIndex(id, "_R")]
}

func (a *atodeneNow) bad(o Outcome, format string, args ...any) {
	a.n++
	a.vs.add("false outcome", "%s of %s/%s (seq %d, transaction %q): "+format,
		append([]any{o.Type, o.Shop, o.Order, o.Seq, o.TxID}, args...)...)
}

// checkFalseOutcomes compares the outcomes (in stream order) with ATODENE's own state at the end of
// the run, read from the sandbox, and returns how many contradict it (docs/reliability.md, "false
// outcomes"):
//   - a credit.ok, credit.ng or credit.pending must name a transaction the sandbox holds for the
//     order, and a shipment.ok one that holds a shipment report;
//   - the order's last credit outcome (credit.invalid aside: it names no transaction; and a
//     re-authorization's that left the order on its old transaction, pending or ng) must agree
//     with that transaction now: credit.ok an active transaction decided OK, credit.ng one decided
//     NG, credit.pending one not cancelled, each with the billed amount the outcome states;
//     credit.cancelled no live transaction of the order at all. Not for the orders an operator
//     settles, one of whose credit events was dead-lettered (outcome-unknown: a change that reached
//     ATODENE without its answer): what ATODENE did with it is unknown by design, so their
//     disagreements are only counted (withOperator);
//   - the order's last shipment.ok must carry the slip number ATODENE holds, unless a later tracking
//     number of the order was dead-lettered for an operator (its report may have reached ATODENE
//     and its record been lost with Redis's state): then the disagreement is only counted;
//   - the order's last invoice outcome, unless a credit outcome came after it: invoice.ok must
//     name an active transaction decided OK whose invoice is enclosed; an invoice.ng saying the
//     credit is not ok must not name one ATODENE holds active and decided OK, nor one saying the
//     invoice is mailed a transaction whose invoice is enclosed.
//
// Earlier outcomes are not compared with the end state: a later outcome superseded them.
func checkFalseOutcomes(outs []Outcome, txs []sandbox.TransactionView, operatorSettles, operatorShips map[string]bool, vs *violations) (n, withOperator int) {
	a := &atodeneNow{byID: map[string]sandbox.TransactionView{}, byOrder: txsByOrder(txs), vs: vs}
	for _, t := range txs {
		a.byID[t.TransactionID] = t
	}
	lastCredit, lastShip, lastInvoice := map[string]Outcome{}, map[string]Outcome{}, map[string]Outcome{}
	creditSeq := map[string]uint64{} // the order's last credit outcome of any kind
	for _, o := range outs {
		key := o.Shop + "/" + o.Order
		switch {
		case strings.HasPrefix(o.Type, "credit."):
			creditSeq[key] = o.Seq
			// A re-authorization's credit.pending or credit.ng leaves the order on its old
			// transaction (docs/lifecycle.md#re-authorization): the order's standing is still its
			// last credit.ok, and the new transaction may be cancelled since without an outcome
			// (the order shipped or changed meanwhile).
			if a.creditNamesHeld(o) && (!o.Reauthorized || o.Type == events.TypeCreditOK) {
				lastCredit[key] = o
			}
		case o.Type == events.TypeShipmentOK:
			if a.shipmentHeld(o) {
				lastShip[key] = o
			}
		case strings.HasPrefix(o.Type, "invoice."):
			lastInvoice[key] = o
		}
	}
	for _, key := range slices.Sorted(maps.Keys(lastCredit)) {
		o := lastCredit[key]
		switch problem := a.lastCredit(key, o); {
		case problem == "":
		case operatorSettles[key]:
			withOperator++
		default:
			a.bad(o, "%s", problem)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(lastShip)) {
		o := lastShip[key]
		switch t, _ := a.held(o); {
		case t.Shipment.DeliverySlipNo == o.Tracking:
		case operatorShips[key]:
			withOperator++
		default:
			a.bad(o, "the order's last shipment, but ATODENE holds slip number %s", t.Shipment.DeliverySlipNo)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(lastInvoice)) {
		if o := lastInvoice[key]; o.Seq > creditSeq[key] {
			a.invoice(o)
		}
	}
	return a.n, withOperator
}

// creditNamesHeld checks that a credit outcome that names a transaction names one ATODENE holds
// for the order, and reports whether the outcome is to be compared as the order's last.
func (a *atodeneNow) creditNamesHeld(o Outcome) bool {
	switch o.Type {
	case events.TypeCreditOK, events.TypeCreditNG, events.TypeCreditPending:
		if _, ok := a.held(o); !ok {
			a.bad(o, "ATODENE holds no such transaction for the order")
			return false
		}
		return true
	case events.TypeCreditCancelled:
		return true
	}
	return false // credit.invalid: a change refused leaves the transaction as it was
}

// shipmentHeld checks that a shipment.ok names a transaction ATODENE holds with a shipment report.
func (a *atodeneNow) shipmentHeld(o Outcome) bool {
	t, ok := a.held(o)
	switch {
	case !ok:
		a.bad(o, "ATODENE holds no such transaction for the order")
	case t.Shipment == nil:
		a.bad(o, "ATODENE holds no shipment report for it")
	default:
		return true
	}
	return false
}

// lastCredit compares the order's last credit outcome with what ATODENE holds now, and says how
// they disagree ("" when they agree).
func (a *atodeneNow) lastCredit(key string, o Outcome) string {
	if o.Type == events.TypeCreditCancelled {
		for _, t := range a.byOrder[key] {
			if txLive(t) {
				return fmt.Sprintf("the order's last credit outcome, but ATODENE holds transaction %s live (%s, %s)", t.TransactionID, t.State, t.Decision)
			}
		}
		return ""
	}
	t, _ := a.held(o)
	switch {
	case o.Billed != 0 && t.BilledAmount != o.Billed:
		return fmt.Sprintf("the order's last credit outcome states billed amount %d, but ATODENE holds %d", o.Billed, t.BilledAmount)
	case o.Type == events.TypeCreditOK && (t.State == "cancelled" || t.Decision != "OK"):
		return fmt.Sprintf("the order's last credit outcome, but ATODENE holds the transaction %s, decided %s", t.State, t.Decision)
	case o.Type == events.TypeCreditNG && t.Decision != "NG":
		return fmt.Sprintf("the order's last credit outcome, but ATODENE holds the transaction decided %s", t.Decision)
	case o.Type == events.TypeCreditPending && t.State == "cancelled":
		return "the order's last credit outcome, but ATODENE holds the transaction cancelled"
	}
	return ""
}

// invoice compares the order's last invoice outcome with the transaction it names. An invoice.ng
// naming no transaction ATODENE holds (the worker had no record) says nothing to compare.
func (a *atodeneNow) invoice(o Outcome) {
	t, ok := a.held(o)
	approved := ok && t.State != "cancelled" && t.Decision == "OK"
	enclosed := ok && t.Service == atodene.ServiceEnclosed
	switch {
	case o.Type == events.TypeInvoiceOK && !(approved && enclosed):
		a.bad(o, "ATODENE holds the transaction %s, decided %s, invoice service %q (held: %v)", t.State, t.Decision, t.Service, ok)
	case o.Type == events.TypeInvoiceNG && o.Problem == "credit" && approved:
		a.bad(o, "it says the credit is not ok, but ATODENE holds the transaction active, decided OK")
	case o.Type == events.TypeInvoiceNG && o.Problem == "invoice_delivery" && enclosed:
		a.bad(o, "it says the invoice is mailed, but ATODENE holds it enclosed")
	}
}

// sortBySeq returns the outcomes in stream order.
func sortBySeq(outs []Outcome) []Outcome {
	out := slices.Clone(outs)
	slices.SortFunc(out, func(a, b Outcome) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}
