package console

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// maxTargets bounds the orders of one action: a page of the list holds 50, a bulk action more
// than a few pages' worth is a mistake.
const maxTargets = 1000

// targetRow is an order of an action's confirmation or result.
type targetRow struct {
	Index       int
	Key         string
	Shop, Order string
	URL         string
	Status      string
	// Allowed says the action is valid for the order's state; Skip says why not.
	Allowed bool
	Skip    string
	Carrier string
	Number  string
	// Outcome is what became of it, once done.
	Outcome *Outcome
}

type actionData struct {
	Action        Action
	Label         string
	Targets       []targetRow
	Count         int // the orders the action runs on
	Skipped       int
	TransactionID string
	NotRegistered bool
	Carriers      []carrier
	Problems      []string
	Error         string
	NotWired      bool
	Done          bool
	Published     int
	Refused       int
	// Keys lists the orders acted on (shop/order, space-separated), whose outcomes the page
	// follows live.
	Keys string
	Shop string
	// Key is the form's idempotency key: made for the confirmation, sent back with it, so that
	// the same confirmation sent twice publishes nothing twice (Actions.Do).
	Key string
}

// formKey is the pattern of a form's idempotency key: 32 hexadecimal digits.
var formKey = regexp.MustCompile(`^[0-9a-f]{32}$`)

// newFormKey returns a random idempotency key for a confirmation form.
func newFormKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// trackingPattern is what a tracking number may hold before the worker normalises it (full-width
// digits and dashes are accepted too).
var trackingPattern = regexp.MustCompile(`^[0-9０-９\-－ー‐]{5,40}$`)

// txPattern is a transaction ID of ATODENE (お問合せ番号).
var txPattern = regexp.MustCompile(`^[0-9]{1,20}$`)

// actions runs an action on the checked orders (or the one of an order's page): the first POST
// shows the confirmation, with the count and the orders the action does not apply to; the POST of
// the confirmation (confirm=yes) publishes through Actions and shows each order's result, then the
// outcomes as they arrive.
func (s *Server) actions(w http.ResponseWriter, r *http.Request) {
	l := langOf(r)
	a := Action(r.PostFormValue("action"))
	if !a.valid() {
		s.problem(w, r, http.StatusBadRequest, "action.unknown", string(a))
		return
	}
	keys := r.PostForm["o"]
	switch {
	case len(keys) == 0:
		s.problem(w, r, http.StatusBadRequest, "action.none", "")
		return
	case len(keys) > maxTargets:
		s.problem(w, r, http.StatusBadRequest, "action.toomany", strconv.Itoa(maxTargets))
		return
	}
	d := actionData{Action: a, Label: actionLabel(l, a), Carriers: carriers(l),
		TransactionID: strings.TrimSpace(r.PostFormValue("transaction_id")), NotRegistered: r.PostFormValue("not_registered") == "1"}
	seen := map[string]bool{}
	for i, k := range keys {
		shop, order, ok := strings.Cut(k, "/")
		if !ok || !events.ValidShopID(shop) || !events.ValidOrderID(order) {
			s.problem(w, r, http.StatusBadRequest, "action.badorder", k)
			return
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		idx := strconv.Itoa(i)
		d.Targets = append(d.Targets, targetRow{Index: len(d.Targets), Key: k, Shop: shop, Order: order, URL: orderURL(shop, order),
			Carrier: r.PostFormValue("carrier_" + idx), Number: strings.TrimSpace(r.PostFormValue("number_" + idx))})
	}
	if a == ActionResolve && len(d.Targets) != 1 {
		s.problem(w, r, http.StatusBadRequest, "action.resolveone", "")
		return
	}
	// The state of each order says whether the action applies.
	byShop := map[string][]int{}
	for i, t := range d.Targets {
		byShop[t.Shop] = append(byShop[t.Shop], i)
	}
	for shop, idx := range byShop {
		ids := make([]string, len(idx))
		for j, i := range idx {
			ids[j] = d.Targets[i].Order
		}
		states, err := s.states(r.Context(), shop, ids)
		if err != nil {
			s.problem(w, r, http.StatusServiceUnavailable, "error.redis", err.Error())
			return
		}
		for j, st := range states {
			t := &d.Targets[idx[j]]
			t.Status = statusLabel(l, st)
			t.Allowed = slices.Contains(s.cfg.Actions.Allowed(st), a)
			if !t.Allowed {
				t.Skip = l.F("action.skip", t.Status)
				d.Skipped++
			} else {
				d.Count++
			}
		}
		d.Shop = shop
	}
	if len(byShop) > 1 {
		d.Shop = ""
	}
	if d.Key = r.PostFormValue("key"); !formKey.MatchString(d.Key) {
		d.Key = newFormKey()
	}
	if r.PostFormValue("confirm") != "yes" {
		s.render(w, r, http.StatusOK, "action.html", "action.confirm", d)
		return
	}
	// What the action needs besides the orders.
	if a == ActionTrack {
		for _, t := range d.Targets {
			if !t.Allowed {
				continue
			}
			if _, ok := events.CarrierCode(t.Carrier); !ok {
				d.Problems = append(d.Problems, l.F("action.badcarrier", t.Order))
			}
			if !trackingPattern.MatchString(t.Number) {
				d.Problems = append(d.Problems, l.F("action.badnumber", t.Order))
			}
		}
	}
	if a == ActionResolve {
		switch {
		case d.TransactionID == "" && !d.NotRegistered, d.TransactionID != "" && d.NotRegistered:
			d.Problems = append(d.Problems, l.T("action.resolvewhich"))
		case d.TransactionID != "" && !txPattern.MatchString(d.TransactionID):
			d.Problems = append(d.Problems, l.T("action.badtx"))
		}
	}
	if len(d.Problems) > 0 {
		s.render(w, r, http.StatusBadRequest, "action.html", "action.confirm", d)
		return
	}
	var targets []Target
	var at []int
	for i, t := range d.Targets {
		if !t.Allowed {
			continue
		}
		targets = append(targets, Target{Shop: t.Shop, Order: t.Order, Carrier: t.Carrier, Number: t.Number,
			TransactionID: d.TransactionID, NotRegistered: d.NotRegistered})
		at = append(at, i)
	}
	ss := sessionOf(r)
	d.Done = true
	if len(targets) == 0 {
		s.render(w, r, http.StatusOK, "action.html", "action.result", d)
		return
	}
	r = s.markSince(r)
	outcomes, err := s.cfg.Actions.Do(r.Context(), ss.Operator, d.Key, a, targets)
	// The outcomes say what was done, also those returned with an error (the action stopped
	// part-way): every order published is listed as such, with its message ID, beside the error.
	var live []string
	for j, i := range at {
		if j >= len(outcomes) {
			break
		}
		o := outcomes[j]
		d.Targets[i].Outcome = &o
		if o.Published {
			d.Published++
			live = append(live, d.Targets[i].Key)
		} else {
			d.Refused++
		}
	}
	d.Keys = strings.Join(live, " ")
	if err != nil {
		s.log.Error("operator action failed", zap.String("operator", ss.Operator), zap.String("action", string(a)),
			zap.Int("orders", len(targets)), zap.Int("published", d.Published), zap.Int("refused", d.Refused), zap.Error(err))
		d.Error, d.NotWired = err.Error(), errors.Is(err, ErrNotWired)
		s.render(w, r, http.StatusServiceUnavailable, "action.html", "action.result", d)
		return
	}
	s.log.Info("operator action", zap.String("operator", ss.Operator), zap.String("action", string(a)),
		zap.Int("published", d.Published), zap.Int("refused", d.Refused), zap.Int("skipped", d.Skipped))
	s.render(w, r, http.StatusOK, "action.html", "action.result", d)
}
