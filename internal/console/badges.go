package console

import (
	"sort"
	"strings"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// badge is one of an order's ATODENE badges: [与信OK], [与信NG: error text], [審査中], [保留],
// [伝票番号同期OK]… Class picks its colour; Text (the provider's words, hostile text) follows the
// label.
type badge struct {
	Kind  string // credit, shipment or invoice
	Class string
	Label string
	Text  string
}

// creditBadge is the badge of a credit bucket, with the reasons or errors of an NG or invalid order.
func creditBadge(l locale, b orderstate.Bucket, text string) badge {
	return badge{Kind: "credit", Class: "b-" + string(b), Label: l.T("badge.credit." + string(b)), Text: text}
}

// shipmentBadge is the badge of a shipment status; an order with no tracking number has none.
func shipmentBadge(l locale, sh orderstate.ShipmentStatus) *badge {
	if sh == orderstate.ShipmentNone || sh == "" {
		return nil
	}
	return &badge{Kind: "shipment", Class: "s-" + string(sh), Label: l.T("badge.shipment." + string(sh))}
}

// stateText is what follows an NG or invalid order's badge: ATODENE's reasons or errors.
func stateText(st orderstate.State) string {
	var parts []string
	parts = append(parts, st.Reasons...)
	for _, e := range st.Errors {
		parts = append(parts, errorText(e.Point, e.Code, e.Message))
	}
	return strings.Join(parts, "; ")
}

func errorText(point, code, msg string) string {
	var b strings.Builder
	b.WriteString(point)
	if code != "" {
		b.WriteString(" " + code)
	}
	if msg != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(msg)
	}
	return b.String()
}

// statusLabel names an order's credit status for people, pending by its side.
func statusLabel(l locale, st orderstate.State) string {
	if st.Version == 0 {
		return l.T("status.unknown-order")
	}
	return l.T("badge.credit." + string(orderstate.BucketOf(st.Status, st.Review)))
}

// actionLabel is the button label of an action.
func actionLabel(l locale, a Action) string { return l.T("action." + string(a)) }

// carrier is an entry of the carrier selector of 伝票番号同期.
type carrier struct {
	Name, Label string
}

// carriers lists the carriers of the event contract by their ATODENE code.
func carriers(l locale) []carrier {
	var out []carrier
	for name := range events.Carriers {
		out = append(out, carrier{Name: name, Label: l.T("carrier." + name)})
	}
	sort.Slice(out, func(i, j int) bool { return events.Carriers[out[i].Name] < events.Carriers[out[j].Name] })
	return out
}

// carrierLabel names a carrier code for people: its name, or the code.
func carrierLabel(l locale, code string) string {
	for name, c := range events.Carriers {
		if c == code {
			return l.T("carrier." + name)
		}
	}
	return code
}
