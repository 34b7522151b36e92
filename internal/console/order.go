package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// historyRow is an entry of the order's timeline.
type historyRow struct {
	Entry  orderstate.Entry
	Status string
	// Console says the entry is the console's own (an operator's event or an audit entry).
	Console bool
}

// piiView is the order's received data as the page shows it once revealed.
type piiView struct {
	Buyer, ShipTo *events.Person
	Items         []events.Item
	OrderedAt     string
	ShippingFee   int64
	Fee           int64
	Discount      int64
	Billed        *int64
	Delivery      string
	// Raw is the data as received when it does not read as an order.
	Raw string
}

type orderData struct {
	Shop, Order string
	State       orderstate.State
	Exists      bool
	Credit      badge
	Ship        *badge
	Delivery    string
	Carrier     string
	History     []historyRow
	Buttons     []actionButton
	Allowed     map[string]bool
	Carriers    []carrier
	PII         *piiView
	PIIError    string
	InvoiceURL  string
	Parked      int
	Outbox      int
}

// orderPage is the order's page (受注詳細): its state, the amounts sent to ATODENE, its history as
// a timeline, the buttons of the actions valid for it, and its personal data behind an audited
// reveal.
func (s *Server) orderPage(w http.ResponseWriter, r *http.Request) {
	r = s.markSince(r) // before the order is read: an outcome published meanwhile comes live
	d, status := s.orderData(w, r)
	if d == nil {
		return
	}
	s.render(w, r, status, "order.html", "order.title", d)
}

// orderData reads what the order's page shows; nil when it answered the request itself (no such
// order, Redis failing).
func (s *Server) orderData(w http.ResponseWriter, r *http.Request) (*orderData, int) {
	l := langOf(r)
	shop, order := r.PathValue("shop"), r.PathValue("order")
	if !events.ValidShopID(shop) || !events.ValidOrderID(order) {
		s.problem(w, r, http.StatusNotFound, "order.missing", "")
		return nil, 0
	}
	ctx := r.Context()
	st, err := s.cfg.Store.Get(ctx, shop, order)
	if err != nil {
		s.log.Error("reading an order's state failed", zap.String("shop", shop), zap.String("order", order), zap.Error(err))
		s.problem(w, r, http.StatusServiceUnavailable, "error.redis", err.Error())
		return nil, 0
	}
	history, err := s.cfg.Store.History(ctx, shop, order)
	if err != nil {
		s.log.Error("reading an order's history failed", zap.String("shop", shop), zap.String("order", order), zap.Error(err))
		s.problem(w, r, http.StatusServiceUnavailable, "error.redis", err.Error())
		return nil, 0
	}
	if st.Version == 0 && len(history) == 0 {
		s.problem(w, r, http.StatusNotFound, "order.missing", shop+" / "+order)
		return nil, 0
	}
	b := orderstate.BucketOf(st.Status, st.Review)
	text := ""
	if b == orderstate.BucketNG || b == orderstate.BucketInvalid {
		text = stateText(st)
	}
	d := &orderData{Shop: shop, Order: order, State: st, Exists: st.Version > 0, Credit: creditBadge(l, b, text),
		Ship: shipmentBadge(l, st.ShipmentStatus()), Carriers: carriers(l), Allowed: map[string]bool{},
		Parked: len(st.Parked), Outbox: len(st.Outbox)}
	if st.Version == 0 {
		d.Credit = badge{Kind: "credit", Class: "b-none", Label: l.T("status.unknown-order")}
	}
	switch st.Service {
	case atodene.ServiceSeparate:
		d.Delivery = l.T("delivery.separate")
	case atodene.ServiceEnclosed:
		d.Delivery = l.T("delivery.enclosed")
	}
	if st.Shipment != nil {
		d.Carrier = carrierLabel(l, st.Shipment.CarrierCode)
	}
	allowed := s.cfg.Actions.Allowed(st)
	for _, a := range AllActions {
		ok := slices.Contains(allowed, a)
		d.Allowed[string(a)] = ok
		d.Buttons = append(d.Buttons, actionButton{Action: a, Label: actionLabel(l, a), Enabled: ok})
	}
	if st.Status == orderstate.StatusOK && st.Service == atodene.ServiceEnclosed {
		d.InvoiceURL = pathWith("/invoices", url.Values{"shop": {shop}, "order": {order}})
	}
	d.History = historyRows(l, history)
	return d, http.StatusOK
}

// historyRows are the entries of a history, newest first.
func historyRows(l locale, history []orderstate.Entry) []historyRow {
	out := make([]historyRow, 0, len(history))
	for i := len(history) - 1; i >= 0; i-- {
		e := history[i]
		out = append(out, historyRow{Entry: e, Status: l.T("badge.credit." + string(orderstate.BucketOf(e.Status, ""))),
			Console: strings.HasPrefix(e.Source, SourcePrefix) || strings.HasPrefix(e.Type, "console.")})
	}
	return out
}

// AuditType is the type of the history entry that records an operator's look at an order's
// personal data in the console.
const AuditType = "console.pii_revealed"

// revealOrder shows the order's page with its personal data (the received data: buyer, address,
// phone) after recording, in the order's history, who looked. Nothing is shown if the record
// cannot be written.
func (s *Server) revealOrder(w http.ResponseWriter, r *http.Request) {
	r = s.markSince(r)
	d, status := s.orderData(w, r)
	if d == nil {
		return
	}
	ss := sessionOf(r)
	ctx := r.Context()
	raw, err := s.cfg.Actions.Received(ctx, d.Shop, d.Order)
	if err != nil {
		d.PIIError = err.Error()
		s.render(w, r, status, "order.html", "order.title", d)
		return
	}
	if err := s.audit(r, d.Shop, d.Order, d.State, "personal data of the order revealed in the console"); err != nil {
		s.problem(w, r, http.StatusServiceUnavailable, "error.audit", err.Error())
		return
	}
	s.log.Info("personal data revealed", zap.String("operator", ss.Operator), zap.String("shop", d.Shop), zap.String("order", d.Order))
	d.PII = readPII(langOf(r), raw)
	if h, err := s.cfg.Store.History(ctx, d.Shop, d.Order); err == nil {
		d.History = historyRows(langOf(r), h) // with the entry just written
	}
	s.render(w, r, status, "order.html", "order.title", d)
}

// audit appends the record of an operator's look at personal data to the order's history. The
// history of an order the worker has a state of lasts as long as the state; one of an order it
// has none of (known only by dead letters), as long as the records of events.
func (s *Server) audit(r *http.Request, shop, order string, st orderstate.State, did string) error {
	return s.auditAs(r, AuditType, shop, order, st, did)
}

// auditAs appends an audit entry of type typ to the order's history, as audit does.
// auditRepeatWindow is how long a look repeating the newest entry of an order's history (the same
// operator and kind of look, nothing between) counts as the same look: a reload, or a tab that
// reloads itself, is not a new entry.
const auditRepeatWindow = time.Hour

func (s *Server) auditAs(r *http.Request, typ, shop, order string, st orderstate.State, did string) error {
	ss := sessionOf(r)
	e := orderstate.Entry{At: s.cfg.Now().UTC(), Type: typ, Source: SourcePrefix + ss.Operator, Operator: ss.Operator,
		Did: did, Status: st.Status}
	// The history is bounded (orderstate.HistoryLimit): a page reloaded in a loop must not push
	// the worker's entries, or an earlier look, out of it. A look repeating the newest entry (the
	// same operator, the same kind of look, within auditRepeatWindow) is that entry.
	last, ok, err := s.cfg.Store.LastHistory(r.Context(), shop, order)
	if err != nil {
		return err
	}
	if ok && last.Type == typ && last.Operator == ss.Operator && last.Did == did && e.At.Sub(last.At) < auditRepeatWindow {
		return nil
	}
	ttl := config.EventRecordTTL
	if st.Version > 0 {
		ttl = 0
	}
	return s.cfg.Store.AppendHistory(r.Context(), shop, order, e, ttl)
}

// readPII reads the received data of an order for the page.
func readPII(l locale, raw json.RawMessage) *piiView {
	var o events.Order
	if err := json.Unmarshal(raw, &o); err != nil || o.Buyer == nil {
		return &piiView{Raw: string(raw)}
	}
	v := &piiView{Buyer: o.Buyer, ShipTo: o.ShipTo, Items: o.Items, OrderedAt: o.OrderedAt, ShippingFee: o.ShippingFee,
		Fee: o.Fee, Discount: o.Discount, Billed: o.BilledAmount}
	switch o.InvoiceDelivery {
	case events.DeliverySeparate:
		v.Delivery = l.T("delivery.separate")
	case events.DeliveryEnclosed:
		v.Delivery = l.T("delivery.enclosed")
	}
	return v
}
