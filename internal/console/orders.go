package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// listForm is the order list's filter as the page's form sends it.
type listForm struct {
	Shop, Status, Shipment string
	OrderedFrom, OrderedTo string // dates, JST (2026-11-30)
	ChangedFrom, ChangedTo string
	Prefix, Sort, Cursor   string
}

func parseListForm(q url.Values) listForm {
	return listForm{Shop: q.Get("shop"), Status: q.Get("status"), Shipment: q.Get("shipment"),
		OrderedFrom: q.Get("ordered_from"), OrderedTo: q.Get("ordered_to"), ChangedFrom: q.Get("changed_from"),
		ChangedTo: q.Get("changed_to"), Prefix: strings.TrimSpace(q.Get("prefix")), Sort: q.Get("sort"), Cursor: q.Get("cursor")}
}

// values are the form's filter as query values, without the cursor (and without the status when
// noStatus).
func (f listForm) values(noStatus bool) url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("shop", f.Shop)
	if !noStatus {
		set("status", f.Status)
	}
	set("shipment", f.Shipment)
	set("ordered_from", f.OrderedFrom)
	set("ordered_to", f.OrderedTo)
	set("changed_from", f.ChangedFrom)
	set("changed_to", f.ChangedTo)
	set("prefix", f.Prefix)
	set("sort", f.Sort)
	return q
}

// filterProblem is a field of the form that is not valid, as the page shows it.
type filterProblem struct{ Field, Problem string }

// filter turns the form into the index's Filter, or lists its problems.
func (f *listForm) filter() (orderstate.Filter, []filterProblem) {
	var probs []filterProblem
	out := orderstate.Filter{Shop: f.Shop, Shipment: orderstate.ShipmentStatus(f.Shipment), OrderIDPrefix: f.Prefix,
		Sort: orderstate.SortKey(f.Sort), Cursor: f.Cursor}
	switch f.Status {
	case "":
	case "review":
		out.Status, out.Hold = orderstate.StatusPending, orderstate.HoldReview
	case "hold":
		out.Status, out.Hold = orderstate.StatusPending, orderstate.HoldOnHold
	case "none":
		out.Status = orderstate.StatusNoneFilter
	default:
		out.Status = orderstate.Status(f.Status)
	}
	for _, d := range []struct {
		field, v string
		end      bool
		to       *time.Time
	}{{"ordered_from", f.OrderedFrom, false, &out.OrderedFrom}, {"ordered_to", f.OrderedTo, true, &out.OrderedTo},
		{"changed_from", f.ChangedFrom, false, &out.ChangedFrom}, {"changed_to", f.ChangedTo, true, &out.ChangedTo}} {
		if d.v == "" {
			continue
		}
		t, err := time.ParseInLocation(time.DateOnly, d.v, jst.Zone)
		if err != nil {
			probs = append(probs, filterProblem{d.field, "want a date such as 2026-11-30"})
			continue
		}
		if d.end {
			t = t.AddDate(0, 0, 1) // the whole day
		}
		*d.to = t
	}
	if out.Sort == "" {
		out.Sort = orderstate.SortChanged
		if (f.OrderedFrom != "" || f.OrderedTo != "") && f.ChangedFrom == "" && f.ChangedTo == "" {
			out.Sort = orderstate.SortOrdered
		}
	}
	return out, probs
}

// filterProblems lists the fields of an orderstate.FilterError (joined).
func filterProblems(err error) []filterProblem {
	var out []filterProblem
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *orderstate.FilterError
		if errors.As(e, &fe) {
			out = append(out, filterProblem{fe.Field, fe.Problem})
		}
	}
	walk(err)
	return out
}

// tab is a status tab of the order list, with its count.
type tab struct {
	Status, Label, URL string
	Count              int64
	Active             bool
}

// orderRow is an order of the list.
type orderRow struct {
	Key     string // shop/order: the value of its check box
	URL     string
	Summary orderstate.Summary
	Credit  badge
	Ship    *badge
	// Actions lists the actions valid for it, space-separated (the buttons are enabled from it).
	Actions string
}

// actionButton is a button of an action.
type actionButton struct {
	Action  Action
	Label   string
	Enabled bool
}

type ordersData struct {
	Shops      []string
	Form       listForm
	Tabs       []tab
	Rows       []orderRow
	Next       string // the next page's address, "" on the last
	First      string // the first page's address, on a later page
	ExportUTF8 string
	ExportSJIS string
	Problems   []filterProblem
	Error      string
	Bulk       []actionButton
	Statuses   []string
	Shipments  []string

	// CountsError says the counts of the tabs could not be read: the tabs show none.
	CountsError string
	// OtherShop says the shop listed is not one of the shops file's.
	OtherShop bool
}

// listStatuses are the status filters of the list, as its tabs show them.
var listStatuses = []string{"ok", "ng", "review", "hold", "registering", "cancelled", "invalid", "unknown", "none"}

// shopIDs lists the configured shops.
func (s *Server) shopIDs() []string {
	if s.cfg.Shops == nil {
		return nil
	}
	var out []string
	for _, sh := range s.cfg.Shops.All() {
		out = append(out, sh.ID)
	}
	return out
}

// ordersPage is the order list (受注一覧): a shop's orders from the order index, filtered, 50 a
// page newest first, with the counts per status as tabs and each order's badges.
func (s *Server) ordersPage(w http.ResponseWriter, r *http.Request) {
	l := langOf(r)
	f := parseListForm(r.URL.Query())
	shops := s.shopIDs()
	if f.Shop == "" && len(shops) > 0 {
		f.Shop = shops[0]
	}
	d := ordersData{Shops: shops, Form: f, Statuses: listStatuses, Shipments: []string{"none", "queued", "reported", "refused"}}
	// A shop the shops file does not name (removed, its orders still kept; a link mistyped) is
	// listed as asked, and the selector shows it, marked: the filter shown is the filter applied.
	d.OtherShop = len(shops) > 0 && f.Shop != "" && !slices.Contains(shops, f.Shop)
	for _, a := range bulkActions {
		d.Bulk = append(d.Bulk, actionButton{Action: a, Label: actionLabel(l, a), Enabled: true})
	}
	if f.Shop == "" {
		s.render(w, r, http.StatusOK, "orders.html", "orders.title", d)
		return
	}
	filter, probs := f.filter()
	if len(probs) > 0 {
		d.Problems = probs
		s.render(w, r, http.StatusBadRequest, "orders.html", "orders.title", d)
		return
	}
	// The live stream starts after the outcome stream's last sequence taken before the orders are
	// read: an outcome published between the read and the page is delivered live, not lost.
	r = s.markSince(r)
	ctx := r.Context()
	page, err := s.cfg.Store.ListOrders(ctx, filter)
	if errors.Is(err, orderstate.ErrFilter) {
		d.Problems = filterProblems(err)
		s.render(w, r, http.StatusBadRequest, "orders.html", "orders.title", d)
		return
	}
	if err != nil {
		s.log.Error("listing orders failed", zap.String("shop", f.Shop), zap.Error(err))
		d.Error = err.Error()
		s.render(w, r, http.StatusServiceUnavailable, "orders.html", "orders.title", d)
		return
	}
	counts, err := s.cfg.Store.CountOrders(ctx, f.Shop)
	if err != nil {
		// The tabs stay, without counts: the page says the counts could not be read, not 0.
		s.log.Warn("counting orders failed", zap.String("shop", f.Shop), zap.Error(err))
		d.CountsError = err.Error()
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	base := f.values(true)
	d.Tabs = append(d.Tabs, tab{Status: "", Label: l.T("tab.all"), Count: total, URL: pathWith("/orders", base), Active: f.Status == ""})
	for _, st := range listStatuses {
		q := f.values(true)
		q.Set("status", st)
		d.Tabs = append(d.Tabs, tab{Status: st, Label: l.T("badge.credit." + st), Count: counts[orderstate.Bucket(st)],
			URL: pathWith("/orders", q), Active: f.Status == st})
	}
	ids := make([]string, len(page.Orders))
	for i, o := range page.Orders {
		ids[i] = o.OrderID
	}
	states, err := s.states(ctx, f.Shop, ids)
	if err != nil {
		d.Error = err.Error()
		s.render(w, r, http.StatusServiceUnavailable, "orders.html", "orders.title", d)
		return
	}
	for i, o := range page.Orders {
		st := states[i]
		text := ""
		if b := o.Bucket(); b == orderstate.BucketNG || b == orderstate.BucketInvalid {
			text = stateText(st)
		}
		var allowed []string
		for _, a := range s.cfg.Actions.Allowed(st) {
			allowed = append(allowed, string(a))
		}
		d.Rows = append(d.Rows, orderRow{Key: o.Shop + "/" + o.OrderID, URL: orderURL(o.Shop, o.OrderID), Summary: o,
			Credit: creditBadge(l, o.Bucket(), text), Ship: shipmentBadge(l, o.Shipment), Actions: strings.Join(allowed, " ")})
	}
	q := f.values(false)
	if page.Next != "" {
		nq := f.values(false)
		nq.Set("cursor", page.Next)
		d.Next = pathWith("/orders", nq)
	}
	if f.Cursor != "" {
		d.First = pathWith("/orders", q)
	}
	eq := f.values(false)
	eq.Set("encoding", "utf-8")
	d.ExportUTF8 = pathWith("/export", eq)
	eq.Set("encoding", "shift_jis")
	d.ExportSJIS = pathWith("/export", eq)
	s.render(w, r, http.StatusOK, "orders.html", "orders.title", d)
}

// orderURL is the address of an order's page.
func orderURL(shop, order string) string {
	return "/orders/" + url.PathEscape(shop) + "/" + url.PathEscape(order)
}

// states reads the states of a shop's orders in one round trip. The error is Redis's (logged):
// the caller says Redis could not be read, never that the orders have no state.
func (s *Server) states(ctx context.Context, shop string, ids []string) ([]orderstate.State, error) {
	out, err := s.cfg.Store.GetMany(ctx, shop, ids)
	if err != nil {
		s.log.Error("reading the states of orders failed", zap.String("shop", shop), zap.Int("orders", len(ids)), zap.Error(err))
		return nil, err
	}
	return out, nil
}
