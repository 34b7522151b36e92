package console

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// invoiceGroup is the invoices of one shop on the print page, and the orders without a sheet:
// with no print data (Missing), with print data older than the order's last change (Stale), or
// older than the credit outcomes the check read (Unverified), or cancelled since it was fetched
// (Cancelled).
type invoiceGroup struct {
	Shop       string
	Sheets     template.HTML
	CSSURL     string
	Missing    []string
	Stale      []MissingInvoice
	Unverified []MissingInvoice
	Cancelled  []MissingInvoice
}

type invoicesData struct {
	Groups  []invoiceGroup
	Count   int
	Missing int
	Error   string
	Back    string
}

// invoicesPage is the print page of enclosed invoices (請求書): the sheets of the orders given
// (shop=S&order=O…, or o=S/O… from the order list's check boxes), one per A4 page, printed with
// the browser's print dialog (print to PDF included).
func (s *Server) invoicesPage(w http.ResponseWriter, r *http.Request) {
	var q url.Values
	if r.Method == http.MethodPost {
		q = r.PostForm
	} else {
		q = r.URL.Query()
	}
	var shops []string
	orders, named := map[string][]string{}, map[string]bool{}
	add := func(shop, order string) bool {
		if !events.ValidShopID(shop) || !events.ValidOrderID(order) {
			return false
		}
		if named[shop+"/"+order] {
			return true // named twice (order= and o=, or a link repeated): one sheet, counted once
		}
		named[shop+"/"+order] = true
		if orders[shop] == nil {
			shops = append(shops, shop)
		}
		orders[shop] = append(orders[shop], order)
		return true
	}
	for _, o := range q["order"] {
		if !add(q.Get("shop"), o) {
			s.problem(w, r, http.StatusBadRequest, "action.badorder", q.Get("shop")+"/"+o)
			return
		}
	}
	for _, k := range q["o"] {
		shop, order, _ := strings.Cut(k, "/")
		if !add(shop, order) {
			s.problem(w, r, http.StatusBadRequest, "action.badorder", k)
			return
		}
	}
	if len(shops) == 0 {
		s.problem(w, r, http.StatusBadRequest, "action.none", "")
		return
	}
	if n := len(q["order"]) + len(q["o"]); n > maxTargets {
		s.problem(w, r, http.StatusBadRequest, "action.toomany", strconv.Itoa(maxTargets))
		return
	}
	d := invoicesData{Back: "/orders?shop=" + url.QueryEscape(shops[0])}
	var printed []string
	ss := sessionOf(r)
	for _, shop := range shops {
		sheets, _, unprinted, err := s.cfg.Invoices.Sheets(r.Context(), shop, orders[shop])
		if err != nil {
			s.log.Error("rendering invoices failed", zap.String("shop", shop), zap.Int("orders", len(orders[shop])), zap.Error(err))
			d.Error = err.Error()
			s.render(w, r, http.StatusServiceUnavailable, "print-invoices.html", "invoices.title", d)
			return
		}
		g := invoiceGroup{Shop: shop, Sheets: sheets, CSSURL: "/invoices/sheets.css?shop=" + url.QueryEscape(shop)}
		var missing []string
		for _, m := range unprinted {
			missing = append(missing, m.Order)
			switch {
			case m.Cancelled:
				g.Cancelled = append(g.Cancelled, m)
			case m.Unverified:
				g.Unverified = append(g.Unverified, m)
			case m.Stale:
				g.Stale = append(g.Stale, m)
			default:
				g.Missing = append(g.Missing, m.Order)
			}
		}
		// The sheets show the buyer's name and address: who printed them is recorded in each
		// order's history first, and nothing is shown if it cannot be.
		if err := s.auditInvoices(r, shop, orders[shop], missing); err != nil {
			s.log.Error("recording printed invoices failed", zap.String("operator", ss.Operator), zap.String("shop", shop), zap.Error(err))
			s.problem(w, r, http.StatusServiceUnavailable, "error.audit", err.Error())
			return
		}
		d.Groups = append(d.Groups, g)
		d.Count += len(orders[shop]) - len(missing)
		for _, o := range orders[shop] {
			if !slices.Contains(missing, o) {
				printed = append(printed, shop+"/"+o)
			}
		}
		d.Missing += len(missing)
	}
	s.log.Info("invoices shown for printing", zap.String("operator", ss.Operator), zap.Int("invoices", d.Count), zap.Int("missing", d.Missing),
		zap.Strings("orders", printed))
	s.render(w, r, http.StatusOK, "print-invoices.html", "invoices.title", d)
}

// invoicesCSS serves the stylesheet of a shop's invoice sheets (Invoices.Sheets with no orders):
// the console's Content-Security-Policy allows no inline style.
func (s *Server) invoicesCSS(w http.ResponseWriter, r *http.Request) {
	shop := r.URL.Query().Get("shop")
	if !events.ValidShopID(shop) {
		http.Error(w, "shop: not a shop ID", http.StatusBadRequest)
		return
	}
	_, css, _, err := s.cfg.Invoices.Sheets(r.Context(), shop, nil)
	if err != nil {
		http.Error(w, "/* "+strings.ReplaceAll(err.Error(), "*/", "* /")+" */", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "private, max-age=300")
	_, _ = w.Write([]byte(css))
}

// InvoiceAuditType is the type of the history entry that records an operator's printing of an
// order's invoice (its buyer's name and address) in the console.
const InvoiceAuditType = "console.invoice_printed"

// auditInvoices appends to the history of each order of shop whose sheet is shown (orders but
// those missing) the record of who printed it.
func (s *Server) auditInvoices(r *http.Request, shop string, orders, missing []string) error {
	skip := map[string]bool{}
	for _, o := range missing {
		skip[o] = true
	}
	for _, o := range orders {
		if skip[o] {
			continue
		}
		skip[o] = true
		st, err := s.cfg.Store.Get(r.Context(), shop, o)
		if err != nil {
			return err
		}
		if err := s.auditAs(r, InvoiceAuditType, shop, o, st, "invoice printed in the console"); err != nil {
			return err
		}
	}
	return nil
}
