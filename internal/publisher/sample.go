package publisher

import (
	"bufio"
	"context"
	cryptorand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/sampledata"
)

// sampleMaxOrders bounds -n, so that order IDs keep their shape.
const sampleMaxOrders = 10_000_000

// sampleLine is one line of `sample`: a CloudEvent with its type and data, whose id, source and
// time `batch` fills in. The type travels with the line, so that `batch` publishes updates as
// updates without being told again.
type sampleLine struct {
	SpecVersion string `json:"specversion"`
	Type        string `json:"type"`
	Data        any    `json:"data"`
}

// sample runs `sample`: writes realistic orders, one CloudEvent per JSON line.
func (a *App) sample(ctx context.Context, args []string) error {
	fs := a.flagSet("sample")
	n := fs.Int("n", 1000, "number of `orders`")
	shop := fs.String("shop", "demo", "shop `ID` of the orders")
	seed := fs.Uint64("seed", 0, "random `seed`: the same seed writes the same orders (default: a random seed, printed on stderr)")
	typ := fs.String("type", events.TypeOrderCreated, "`type` the orders are for: order.created, or order.updated for the orders of the same seed, each changed as orders change")
	day := fs.String("date", "2026-11-26", "`day` the orders are placed on (YYYY-MM-DD, Japan time)")
	a.setUsage(fs, "sample [-n N] [-shop S] [-seed S] [-type T] [-date D]",
		`Writes N realistic orders to stdout as JSON lines, each a CloudEvent of type T with the order as its
data, for publisher batch (which fills in id, source and time, and publishes each line as its type).
Every order passes the worker's validation. The buyer's e-mail address selects the ATODENE sandbox's
decision in a fixed mix per 100 orders: 72 ordinary (auto OK), 5 ng… (NG), 5 review-ok… (審査中, then OK),
5 review-ng… (審査中, then NG), 5 hold… (保留, then NG), 3 slow… (OK, slowly) and 5 ordinary buyers
billed over 55,000 yen (NG); the first 7 orders of every hundred cover every rule.
Order IDs are <prefix from the seed>-<number>, unique within a run.
`)
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) != 0:
		return usagef("sample takes no arguments (got %q)", rest[0])
	case *n < 1 || *n > sampleMaxOrders:
		return usagef("-n must be between 1 and %d", sampleMaxOrders)
	case !events.ValidShopID(*shop):
		return usagef("-shop %q is not a shop ID (1-32 of A-Z, a-z, 0-9, '_' and '-')", *shop)
	case *typ != events.TypeOrderCreated && *typ != events.TypeOrderUpdated:
		return usagef("-type must be %s or %s", events.TypeOrderCreated, events.TypeOrderUpdated)
	}
	placed, err := time.ParseInLocation(time.DateOnly, *day, jst.Zone)
	if err != nil {
		return usagef("-date %q is not a date written YYYY-MM-DD", *day)
	}
	seeded := false
	fs.Visit(func(f *flag.Flag) { seeded = seeded || f.Name == "seed" })
	if !seeded {
		var b [8]byte
		_, _ = cryptorand.Read(b[:]) // never fails (crypto/rand)
		*seed = binary.LittleEndian.Uint64(b[:]) >> 1
		fmt.Fprintf(a.Stderr, "sample: seed %d (repeat with -seed %d)\n", *seed, *seed)
	}
	s := newSampler(*seed, *shop, placed)
	w := bufio.NewWriter(a.Stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range *n {
		if i%1000 == 0 && ctx.Err() != nil {
			return context.Cause(ctx)
		}
		o := s.order(i)
		if *typ == events.TypeOrderUpdated {
			o = s.update(o, i)
		}
		if err := enc.Encode(sampleLine{SpecVersion: "1.0", Type: *typ, Data: o}); err != nil {
			return err
		}
	}
	return w.Flush()
}

// rule is the sandbox behaviour an order is made for.
type rule = sampledata.Rule

// ruleMix is how many of every 100 orders follow each rule.
var ruleMix = []struct {
	rule  rule
	count int
}{{sampledata.Ordinary, 72}, {sampledata.NG, 5}, {sampledata.ReviewOK, 5}, {sampledata.ReviewNG, 5}, {sampledata.Hold, 5}, {sampledata.Slow, 3}, {sampledata.OverLimit, 5}}

const (
	// ordinaryMaxSubtotal keeps the orders that should pass under the sandbox's 55,000 yen limit,
	// with room for shipping and a handling fee the worker may add.
	ordinaryMaxSubtotal = 45000
	screeningLimit      = 55000
)

// sampler makes the orders of one seed. Order i depends on the seed and i only, not on -n.
type sampler struct {
	seed   uint64
	shop   string
	day    time.Time
	prefix string
	block  int    // the hundred whose rules are in rules
	rules  []rule // the rules of orders block*100 ... block*100+99
}

func newSampler(seed uint64, shop string, day time.Time) *sampler {
	prefix := strings.ToUpper(strconv.FormatUint(mix(seed)|1<<40, 36))
	return &sampler{seed: seed, shop: shop, day: day, prefix: prefix[len(prefix)-6:], block: -1}
}

// mix scrambles a seed (splitmix64), so that close seeds give unrelated order ID prefixes.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// rng returns the random source of one purpose and index.
func (s *sampler) rng(purpose, i uint64) *rand.Rand {
	return rand.New(rand.NewPCG(s.seed, mix(purpose<<56^i)))
}

const (
	purposeOrder uint64 = iota + 1
	purposeRules
	purposeUpdate
)

// ruleOf returns the rule of order i: each hundred holds the fixed mix, shuffled, with one order
// of every rule among its first seven.
func (s *sampler) ruleOf(i int) rule {
	if b := i / 100; b != s.block {
		r := s.rng(purposeRules, uint64(b))
		var first, rest []rule
		for _, m := range ruleMix {
			first = append(first, m.rule)
			for range m.count - 1 {
				rest = append(rest, m.rule)
			}
		}
		r.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })
		r.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		s.block, s.rules = b, append(first, rest...)
	}
	return s.rules[i%100]
}

// order makes order i.
func (s *sampler) order(i int) events.Order {
	r := s.rng(purposeOrder, uint64(i))
	rl := s.ruleOf(i)
	o := events.Order{
		ShopID:    s.shop,
		OrderID:   fmt.Sprintf("%s-%07d", s.prefix, i+1),
		OrderedAt: s.day.Add(time.Duration(r.IntN(24*60*60)) * time.Second).Format(time.RFC3339),
	}
	buyer, place, who := person(r)
	buyer.Email = email(r, rl, who)
	if r.IntN(100) < 8 {
		buyer.Company = sampledata.Pick(r, sampledata.Companies)
		buyer.Department = sampledata.Pick(r, sampledata.Departments)
	}
	o.Buyer = &buyer
	if r.IntN(100) < 20 { // a gift, or a parcel to the office
		to, toPlace, _ := person(r)
		o.ShipTo, place = &to, toPlace
	}
	o.Items = items(r, rl)
	subtotal := sampledata.Sum(o.Items)
	if subtotal < 5000 {
		o.ShippingFee = place.Shipping
	}
	if r.IntN(100) < 10 {
		o.Fee = 330 // the mall charged its deferred-payment fee already
	}
	if r.IntN(100) < 25 { // points or a coupon
		o.Discount = min(sampledata.Pick(r, []int64{100, 300, 500, 1000, int64(1 + r.IntN(800))}), subtotal/2)
	}
	switch x := r.IntN(100); {
	case x < 15:
		o.InvoiceDelivery = events.DeliveryEnclosed
	case x < 75:
		o.InvoiceDelivery = events.DeliverySeparate
	}
	sampledata.Bill(&o)
	return o
}

// update changes order i the way orders change after they are placed: a quantity lowered, an item
// removed, a coupon applied, the parcel sent elsewhere, or the buyer's phone number corrected. The
// change keeps the order on the same side of the sandbox's 55,000 yen limit.
func (s *sampler) update(o events.Order, i int) events.Order {
	r := s.rng(purposeUpdate, uint64(i))
	o.Items = append([]events.Item(nil), o.Items...)
	var changes []func()
	for j, it := range o.Items {
		if it.Quantity > 1 {
			changes = append(changes, func() { o.Items[j].Quantity-- })
		}
	}
	if len(o.Items) > 1 { // never the first: an order over the limit keeps its expensive item
		changes = append(changes, func() { o.Items = o.Items[:len(o.Items)-1] })
	}
	if sampledata.Sum(o.Items)+o.ShippingFee+o.Fee-o.Discount-300 > screeningLimit || s.ruleOf(i) != sampledata.OverLimit {
		changes = append(changes, func() { o.Discount = min(o.Discount+300, sampledata.Sum(o.Items)) })
	}
	changes = append(changes,
		func() { to, _, _ := person(r); o.ShipTo = &to },
		func() { b := *o.Buyer; b.Phone = mobile(r); o.Buyer = &b },
	)
	sampledata.Pick(r, changes)()
	sampledata.Bill(&o)
	return o
}

// items picks 1-5 different sampledata.Products. Orders over the limit start with an expensive one; the others
// stay under ordinaryMaxSubtotal.
func items(r *rand.Rand, rl rule) []events.Item {
	count := sampledata.Pick(r, []int{1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5})
	var out []events.Item
	var subtotal int64
	if rl == sampledata.OverLimit {
		p := sampledata.Pick(r, sampledata.ExpensiveProducts)
		out, subtotal = append(out, events.Item{Name: p.Name, UnitPrice: p.Price, Quantity: 1}), p.Price
	}
	for _, k := range r.Perm(len(sampledata.Products)) {
		if len(out) == count {
			break
		}
		p := sampledata.Products[k]
		qty := sampledata.Pick(r, []int64{1, 1, 1, 1, 1, 1, 1, 2, 2, 3})
		if rl != sampledata.OverLimit {
			if subtotal+p.Price*qty > ordinaryMaxSubtotal {
				qty = 1
			}
			if subtotal+p.Price > ordinaryMaxSubtotal {
				continue
			}
		}
		out, subtotal = append(out, events.Item{Name: p.Name, UnitPrice: p.Price, Quantity: qty}), subtotal+p.Price*qty
	}
	return out
}

// person makes a name with its reading, an address and a phone number; it returns the place and
// the names too.
func person(r *rand.Rand) (events.Person, sampledata.Place, [2]sampledata.Name) {
	f, g, pl := sampledata.Pick(r, sampledata.FamilyNames), sampledata.Pick(r, sampledata.GivenNames), sampledata.Pick(r, sampledata.Places)
	addr := fmt.Sprintf("%s%s%s%d-%d-%d", pl.Pref, pl.City, pl.Town, 1+r.IntN(5), 1+r.IntN(30), 1+r.IntN(20))
	if r.IntN(100) < 40 {
		withRoom := fmt.Sprintf("%s %s %d%02d号室", addr, sampledata.Pick(r, sampledata.Buildings), 1+r.IntN(9), 1+r.IntN(8))
		if utf8.RuneCountInString(withRoom) <= 55 {
			addr = withRoom
		}
	}
	return events.Person{
		Name:     f.Kanji + " " + g.Kanji,
		NameKana: f.Kana + " " + g.Kana,
		Zip:      pl.Zip,
		Address:  addr,
		Phone:    phone(r, pl),
	}, pl, [2]sampledata.Name{f, g}
}

// phone is a mobile number, or a land line in the place's area code.
func phone(r *rand.Rand, pl sampledata.Place) string {
	if r.IntN(100) < 60 {
		return mobile(r)
	}
	digits := 6 - len(pl.Area) // area code and exchange have six digits together
	low := pow10(digits - 1)   // exchanges do not start with 0
	return fmt.Sprintf("%s-%d-%04d", pl.Area, low+r.IntN(9*low), r.IntN(10000))
}

func mobile(r *rand.Rand) string {
	return fmt.Sprintf("%s-%d-%04d", sampledata.Pick(r, []string{"090", "080", "070"}), 1000+r.IntN(9000), r.IntN(10000))
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

// email makes the buyer's address from their names, its local part starting with the rule's prefix.
func email(r *rand.Rand, rl rule, who [2]sampledata.Name) string {
	f, g := who[0], who[1]
	var local string
	switch r.IntN(3) {
	case 0:
		local = g.Romaji + "." + f.Romaji
	case 1:
		local = f.Romaji + g.Romaji[:1] + strconv.Itoa(10+r.IntN(90))
	default:
		local = g.Romaji + "_" + strconv.Itoa(1970+r.IntN(40))
	}
	return rl.EmailPrefix() + local + "@" + sampledata.Pick(r, []string{"example.jp", "example.com", "example.ne.jp", "example.co.jp"})
}
