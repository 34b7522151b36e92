package reliability

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sampledata"
)

// rule is the sandbox behaviour an order is made for.
type rule = sampledata.Rule

// underReview says whether registration answers 審査中.
func underReview(r rule) bool {
	return r == sampledata.ReviewOK || r == sampledata.ReviewNG || r == sampledata.Hold
}

// directCredit is the credit.* type registration answers with; finalCredit the decision it ends in.
func directCredit(r rule) string {
	switch {
	case underReview(r):
		return events.TypeCreditPending
	case r == sampledata.NG || r == sampledata.OverLimit:
		return events.TypeCreditNG
	}
	return events.TypeCreditOK
}

func finalCredit(r rule) string {
	if r == sampledata.ReviewOK || r == sampledata.Ordinary || r == sampledata.Slow {
		return events.TypeCreditOK
	}
	return events.TypeCreditNG
}

// ruleMix is how many of every 100 orders follow each rule.
var ruleMix = []struct {
	rule  rule
	count int
}{{sampledata.Ordinary, 60}, {sampledata.NG, 8}, {sampledata.ReviewOK, 8}, {sampledata.ReviewNG, 6}, {sampledata.Hold, 6}, {sampledata.Slow, 4}, {sampledata.OverLimit, 8}}

// plan is what the workload does with one order: the events it sends after seeing each outcome.
type plan struct {
	Shop     string
	OrderID  string
	Rule     rule
	Enclosed bool // the invoice is enclosed in the parcel (shop rel-b's default, or asked for)
	// CancelPending cancels the order while it is under review; TrackPending enters a tracking
	// number while it is (queued until the credit is decided).
	CancelPending bool
	TrackPending  bool
	// FixNG sends order.updated with a buyer the sandbox approves after an NG: a new
	// registration (再与信).
	FixNG bool
	// Update sends order.updated with a lower quantity or a coupon after OK: a change (与信内容変更).
	Update bool
	// Cancel cancels the order after OK, before it ships.
	Cancel bool
	// Track is how many tracking numbers are entered after OK: 0, 1, or 2 (a corrected number).
	Track int
	// TrackRefused enters a tracking number although the credit ended NG or cancelled.
	TrackRefused bool
	// Invoice asks for the invoice print data after shipping.
	Invoice bool
	// ShipAfter is how long the order waits, OK, before its first tracking number: long enough
	// to be re-authorized (the reauthorization scenario). 0: at once.
	ShipAfter time.Duration
}

// generator makes the orders of one scenario, deterministically from a seed.
type generator struct {
	seed uint64
	tag  string // prefix of order IDs
	pii  *piiIndex
}

func newGenerator(seed uint64, tag string, pii *piiIndex) *generator {
	return &generator{seed: seed, tag: tag, pii: pii}
}

func (g *generator) rng(purpose, i uint64) *mrand.Rand {
	return mrand.New(mrand.NewPCG(g.seed^purpose*0x9e3779b97f4a7c15, i))
}

// plans makes n order plans.
func (g *generator) plans(n int) []*plan {
	out := make([]*plan, n)
	for i := range n {
		r := g.rng(1, uint64(i))
		var rl rule
		x := r.IntN(100)
		for _, m := range ruleMix {
			if x < m.count {
				rl = m.rule
				break
			}
			x -= m.count
		}
		p := &plan{Shop: shopA, OrderID: fmt.Sprintf("%s-%06d", g.tag, i+1), Rule: rl}
		if r.IntN(100) < 30 {
			p.Shop, p.Enclosed = shopB, true
		} else if r.IntN(100) < 15 {
			p.Enclosed = true
		}
		pct := func(n int) bool { return r.IntN(100) < n }
		p.CancelPending = underReview(rl) && pct(25)
		p.TrackPending = underReview(rl) && !p.CancelPending && pct(35)
		p.FixNG = finalCredit(rl) == events.TypeCreditNG && pct(40)
		p.Update = pct(20)
		p.Cancel = pct(10)
		if pct(90) {
			p.Track = 1
			if pct(15) {
				p.Track = 2
			}
		}
		p.TrackRefused = pct(25)
		p.Invoice = p.Enclosed || pct(5)
		out[i] = p
	}
	return out
}

// order makes the order.created data of a plan. Its buyer's e-mail selects the plan's rule.
func (g *generator) order(p *plan) events.Order {
	r := g.rng(2, hashString(p.OrderID))
	o := events.Order{ShopID: p.Shop, OrderID: p.OrderID, OrderedAt: "2026-11-26T10:14:03+09:00"}
	buyer := g.person(r, p.OrderID, p.Rule.EmailPrefix())
	o.Buyer = &buyer
	if r.IntN(100) < 20 {
		to := g.person(r, p.OrderID+"s", "")
		to.Email = ""
		o.ShipTo = &to
	}
	o.Items = items(r, p.Rule == sampledata.OverLimit)
	if sampledata.Sum(o.Items) < 5000 {
		o.ShippingFee = 550
	}
	if r.IntN(100) < 10 {
		o.Fee = 330
	}
	if r.IntN(100) < 25 {
		o.Discount = min(300, sampledata.Sum(o.Items)/2)
	}
	if p.Shop == shopA {
		o.InvoiceDelivery = events.DeliverySeparate
		if p.Enclosed {
			o.InvoiceDelivery = events.DeliveryEnclosed
		}
	}
	sampledata.Bill(&o)
	return o
}

// update changes an OK order as orders change: one fewer of an item or a coupon. The billed
// amount changes, so ATODENE screens the order again with the same rule.
func (g *generator) update(o events.Order) events.Order {
	o.Items = append([]events.Item(nil), o.Items...)
	if o.Items[0].Quantity > 1 {
		o.Items[0].Quantity--
	} else {
		o.Discount = min(o.Discount+100, sampledata.Sum(o.Items))
	}
	sampledata.Bill(&o)
	return o
}

// fix makes an order the sandbox approves out of a declined one: an ordinary buyer address and
// an amount under the limit. ATODENE sees new data, so the order is registered again.
func (g *generator) fix(p *plan, o events.Order) events.Order {
	r := g.rng(3, hashString(p.OrderID))
	b := *o.Buyer
	b.Email = g.pii.addEmail(strings.TrimPrefix(b.Email, p.Rule.EmailPrefix()))
	b.Phone = g.pii.addPhone(mobile(r))
	o.Buyer = &b
	if p.Rule == sampledata.OverLimit {
		o.Items = items(r, false)
	}
	sampledata.Bill(&o)
	return o
}

func (g *generator) person(r *mrand.Rand, orderID, emailPrefix string) events.Person {
	f, gv, pl := sampledata.Pick(r, sampledata.FamilyNames), sampledata.Pick(r, sampledata.GivenNames), sampledata.Pick(r, sampledata.Places)
	local := fmt.Sprintf("%s%s.%s.%s", emailPrefix, gv.Romaji, f.Romaji, strings.ToLower(orderID))
	p := events.Person{
		Name:     f.Kanji + " " + gv.Kanji,
		NameKana: f.Kana + " " + gv.Kana,
		Zip:      pl.Zip,
		Address:  fmt.Sprintf("%s%d-%d-%d", pl.Address(), 1+r.IntN(5), 1+r.IntN(30), 1+r.IntN(20)),
		Phone:    mobile(r),
		Email:    local + "@example.jp",
	}
	g.pii.addPerson(p, pl.Address())
	return p
}

func mobile(r *mrand.Rand) string {
	return fmt.Sprintf("%s-%04d-%04d", sampledata.Pick(r, []string{"090", "080", "070"}), 1000+r.IntN(9000), r.IntN(10000))
}

// items picks 1-3 products, at most two of each: at most 39,600 yen, well under the sandbox's
// limit, unless overLimit puts an expensive product first.
func items(r *mrand.Rand, overLimit bool) []events.Item {
	var out []events.Item
	if overLimit {
		p := sampledata.Pick(r, sampledata.ExpensiveProducts)
		out = append(out, events.Item{Name: p.Name, UnitPrice: p.Price, Quantity: 1})
	}
	for _, k := range r.Perm(len(products))[:1+r.IntN(3)] {
		p := products[k]
		out = append(out, events.Item{Name: p.Name, UnitPrice: p.Price, Quantity: int64(1 + r.IntN(2))})
	}
	return out
}

func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := range len(s) {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// products are the cheap ones: 1-3 of them, at most two of each, stay well under the sandbox's
// 55,000 yen limit (at most 39,600 yen).
var products = sampledata.ProductsUpTo(6600)
