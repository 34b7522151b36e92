package reliability

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"strings"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// rule is the sandbox behaviour an order is made for (DESIGN.md §11), chosen by the buyer's
// e-mail address and the billed amount.
type rule int

const (
	ruleOrdinary  rule = iota // auto OK
	ruleNG                    // ng…: auto NG
	ruleReviewOK              // review-ok…: 審査中, then OK
	ruleReviewNG              // review-ng…: 審査中, then NG
	ruleHold                  // hold…: 審査中, 保留, then NG
	ruleSlow                  // slow…: OK, answered slowly
	ruleOverLimit             // ordinary buyer billed over 55,000 yen: NG
)

var ruleNames = map[rule]string{ruleOrdinary: "ordinary", ruleNG: "ng", ruleReviewOK: "review-ok",
	ruleReviewNG: "review-ng", ruleHold: "hold", ruleSlow: "slow", ruleOverLimit: "over-limit"}

func (r rule) String() string { return ruleNames[r] }

// emailPrefix is the local-part prefix that selects the rule in the sandbox.
func (r rule) emailPrefix() string {
	switch r {
	case ruleNG:
		return "ng-"
	case ruleReviewOK:
		return "review-ok-"
	case ruleReviewNG:
		return "review-ng-"
	case ruleHold:
		return "hold-"
	case ruleSlow:
		return "slow-"
	}
	return ""
}

// underReview says whether registration answers 審査中.
func (r rule) underReview() bool { return r == ruleReviewOK || r == ruleReviewNG || r == ruleHold }

// directCredit is the credit.* type registration answers with; finalCredit the decision it ends in.
func (r rule) directCredit() string {
	switch {
	case r.underReview():
		return events.TypeCreditPending
	case r == ruleNG || r == ruleOverLimit:
		return events.TypeCreditNG
	}
	return events.TypeCreditOK
}

func (r rule) finalCredit() string {
	if r == ruleReviewOK || r == ruleOrdinary || r == ruleSlow {
		return events.TypeCreditOK
	}
	return events.TypeCreditNG
}

// ruleMix is how many of every 100 orders follow each rule.
var ruleMix = []struct {
	rule  rule
	count int
}{{ruleOrdinary, 60}, {ruleNG, 8}, {ruleReviewOK, 8}, {ruleReviewNG, 6}, {ruleHold, 6}, {ruleSlow, 4}, {ruleOverLimit, 8}}

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
		p.CancelPending = rl.underReview() && pct(25)
		p.TrackPending = rl.underReview() && !p.CancelPending && pct(35)
		p.FixNG = rl.finalCredit() == events.TypeCreditNG && pct(40)
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
	buyer := g.person(r, p.OrderID, p.Rule.emailPrefix())
	o.Buyer = &buyer
	if r.IntN(100) < 20 {
		to := g.person(r, p.OrderID+"s", "")
		to.Email = ""
		o.ShipTo = &to
	}
	o.Items = items(r, p.Rule == ruleOverLimit)
	if sum(o.Items) < 5000 {
		o.ShippingFee = 550
	}
	if r.IntN(100) < 10 {
		o.Fee = 330
	}
	if r.IntN(100) < 25 {
		o.Discount = min(300, sum(o.Items)/2)
	}
	if p.Shop == shopA {
		o.InvoiceDelivery = events.DeliverySeparate
		if p.Enclosed {
			o.InvoiceDelivery = events.DeliveryEnclosed
		}
	}
	bill(&o)
	return o
}

// update changes an OK order as orders change: one fewer of an item or a coupon. The billed
// amount changes, so ATODENE screens the order again with the same rule.
func (g *generator) update(o events.Order) events.Order {
	o.Items = append([]events.Item(nil), o.Items...)
	if o.Items[0].Quantity > 1 {
		o.Items[0].Quantity--
	} else {
		o.Discount = min(o.Discount+100, sum(o.Items))
	}
	bill(&o)
	return o
}

// fix makes an order the sandbox approves out of a declined one: an ordinary buyer address and
// an amount under the limit. ATODENE sees new data, so the order is registered again.
func (g *generator) fix(p *plan, o events.Order) events.Order {
	r := g.rng(3, hashString(p.OrderID))
	b := *o.Buyer
	b.Email = g.pii.addEmail(strings.TrimPrefix(b.Email, p.Rule.emailPrefix()))
	b.Phone = g.pii.addPhone(mobile(r))
	o.Buyer = &b
	if p.Rule == ruleOverLimit {
		o.Items = items(r, false)
	}
	bill(&o)
	return o
}

func (g *generator) person(r *mrand.Rand, orderID, emailPrefix string) events.Person {
	f, gv, pl := pick(r, familyNames), pick(r, givenNames), pick(r, places)
	local := fmt.Sprintf("%s%s.%s.%s", emailPrefix, gv.romaji, f.romaji, strings.ToLower(orderID))
	p := events.Person{
		Name:     f.kanji + " " + gv.kanji,
		NameKana: f.kana + " " + gv.kana,
		Zip:      pl.zip,
		Address:  fmt.Sprintf("%s%d-%d-%d", pl.addr, 1+r.IntN(5), 1+r.IntN(30), 1+r.IntN(20)),
		Phone:    mobile(r),
		Email:    local + "@example.jp",
	}
	g.pii.addPerson(p, pl.addr)
	return p
}

func mobile(r *mrand.Rand) string {
	return fmt.Sprintf("%s-%04d-%04d", pick(r, []string{"090", "080", "070"}), 1000+r.IntN(9000), r.IntN(10000))
}

// items picks 1-3 products, at most two of each: at most 39,600 yen, well under the sandbox's
// limit, unless overLimit puts an expensive product first.
func items(r *mrand.Rand, overLimit bool) []events.Item {
	var out []events.Item
	if overLimit {
		p := pick(r, expensiveProducts)
		out = append(out, events.Item{Name: p.name, UnitPrice: p.price, Quantity: 1})
	}
	for _, k := range r.Perm(len(products))[:1+r.IntN(3)] {
		p := products[k]
		out = append(out, events.Item{Name: p.name, UnitPrice: p.price, Quantity: int64(1 + r.IntN(2))})
	}
	return out
}

// bill sets billed_amount from the invariant of DESIGN.md §5.
func bill(o *events.Order) {
	billed := sum(o.Items) + o.ShippingFee + o.Fee - o.Discount
	o.BilledAmount = &billed
}

func sum(items []events.Item) int64 {
	var t int64
	for _, it := range items {
		t += it.UnitPrice * it.Quantity
	}
	return t
}

func pick[T any](r *mrand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

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

type name struct{ kanji, kana, romaji string }

var familyNames = []name{
	{"佐藤", "サトウ", "sato"}, {"鈴木", "スズキ", "suzuki"}, {"高橋", "タカハシ", "takahashi"}, {"田中", "タナカ", "tanaka"},
	{"伊藤", "イトウ", "ito"}, {"渡辺", "ワタナベ", "watanabe"}, {"山本", "ヤマモト", "yamamoto"}, {"中村", "ナカムラ", "nakamura"},
	{"小林", "コバヤシ", "kobayashi"}, {"加藤", "カトウ", "kato"}, {"吉田", "ヨシダ", "yoshida"}, {"山田", "ヤマダ", "yamada"},
	{"佐々木", "ササキ", "sasaki"}, {"山口", "ヤマグチ", "yamaguchi"}, {"松本", "マツモト", "matsumoto"}, {"井上", "イノウエ", "inoue"},
}

var givenNames = []name{
	{"太郎", "タロウ", "taro"}, {"花子", "ハナコ", "hanako"}, {"翔太", "ショウタ", "shota"}, {"陽菜", "ヒナ", "hina"},
	{"大輔", "ダイスケ", "daisuke"}, {"美咲", "ミサキ", "misaki"}, {"健太", "ケンタ", "kenta"}, {"結衣", "ユイ", "yui"},
	{"拓也", "タクヤ", "takuya"}, {"さくら", "サクラ", "sakura"}, {"誠", "マコト", "makoto"}, {"直美", "ナオミ", "naomi"},
}

type place struct{ zip, addr string }

var places = []place{
	{"150-0001", "東京都渋谷区神宮前"}, {"160-0023", "東京都新宿区西新宿"}, {"154-0024", "東京都世田谷区三軒茶屋"},
	{"220-0012", "神奈川県横浜市西区みなとみらい"}, {"330-0854", "埼玉県さいたま市大宮区桜木町"}, {"260-0015", "千葉県千葉市中央区富士見"},
	{"390-0811", "長野県松本市中央"}, {"920-0962", "石川県金沢市広坂"}, {"450-0002", "愛知県名古屋市中村区名駅"},
	{"600-8216", "京都府京都市下京区東塩小路町"}, {"530-0001", "大阪府大阪市北区梅田"}, {"650-0021", "兵庫県神戸市中央区三宮町"},
	{"730-0031", "広島県広島市中区紙屋町"}, {"980-0021", "宮城県仙台市青葉区中央"}, {"812-0011", "福岡県福岡市博多区博多駅前"},
	{"060-0042", "北海道札幌市中央区大通西"}, {"900-0015", "沖縄県那覇市久茂地"},
}

type product struct {
	name  string
	price int64
}

var products = []product{
	{"緑茶ティーバッグ 50包", 1200}, {"静岡県産 深蒸し茶 100g×3袋", 2700}, {"魚沼産コシヒカリ 5kg", 3980},
	{"讃岐うどん 10人前", 1980}, {"博多明太子 300g", 3240}, {"信州りんごジュース 1L×6本", 3600},
	{"今治タオル フェイスタオル 3枚組", 2750}, {"南部鉄器 急須 0.6L", 6600}, {"有田焼 小皿 5枚セット", 4400},
	{"真空断熱タンブラー 450ml", 2178}, {"LEDデスクライト", 5480}, {"ドリップコーヒー 30袋", 1580},
}

// expensiveProducts cost more than the sandbox's 55,000 yen limit on their own.
var expensiveProducts = []product{{"ロボット掃除機", 59800}, {"4K液晶テレビ 43型", 64800}, {"ノートパソコン 14インチ", 128000}}
