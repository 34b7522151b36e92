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
)

// sampleMaxOrders bounds -n, so that order IDs keep their shape.
const sampleMaxOrders = 10_000_000

// sample runs `sample`: writes realistic orders, as data objects, one JSON line each.
func (a *App) sample(ctx context.Context, args []string) error {
	fs := a.flagSet("sample")
	n := fs.Int("n", 1000, "number of `orders`")
	shop := fs.String("shop", "demo", "shop `ID` of the orders")
	seed := fs.Uint64("seed", 0, "random `seed`: the same seed writes the same orders (default: a random seed, printed on stderr)")
	typ := fs.String("type", events.TypeOrderCreated, "`type` the orders are for: order.created, or order.updated for the orders of the same seed, each changed as orders change")
	day := fs.String("date", "2026-11-26", "`day` the orders are placed on (YYYY-MM-DD, Japan time)")
	a.setUsage(fs, "sample [-n N] [-shop S] [-seed S] [-type T] [-date D]",
		`Writes N realistic orders to stdout as JSON lines (data objects, for publisher batch -type T).
Every order passes the worker's validation. The buyer's e-mail address selects the ATODENE sandbox's
decision in a fixed mix per 100 orders: 72 ordinary (auto OK), 5 ng… (NG), 5 review-ok… (審査中, then OK),
5 review-ng… (審査中, then NG), 5 hold… (保留, then NG), 3 slow… (OK, slowly) and 5 ordinary buyers
billed over 55,000 yen (NG); the first 7 orders of every hundred cover every rule.
Order IDs are <prefix from the seed>-<number>, unique within a run.
`)
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		return usagef("sample takes no arguments (got %q)", fs.Arg(0))
	case *n < 1 || *n > sampleMaxOrders:
		return usagef("-n must be between 1 and %d", sampleMaxOrders)
	case !events.ValidShopID(*shop):
		return usagef("-shop %q is not a shop ID (1-32 of A-Z, a-z, 0-9, '_' and '-')", *shop)
	case *typ != events.TypeOrderCreated && *typ != events.TypeOrderUpdated:
		return usagef("-type must be %s or %s", events.TypeOrderCreated, events.TypeOrderUpdated)
	}
	placed, err := time.ParseInLocation(time.DateOnly, *day, jst)
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
		if err := enc.Encode(o); err != nil {
			return err
		}
	}
	return w.Flush()
}

var jst = time.FixedZone("JST", 9*60*60)

// rule is the sandbox behaviour an order is made for (DESIGN.md §11).
type rule int

const (
	ruleOrdinary  rule = iota // auto OK
	ruleNG                    // ng…: auto NG
	ruleReviewOK              // review-ok…: 審査中, then OK
	ruleReviewNG              // review-ng…: 審査中, then NG
	ruleHold                  // hold…: 審査中, 保留, then NG
	ruleSlow                  // slow…: like ordinary, slowly
	ruleOverLimit             // an ordinary buyer billed over 55,000: NG
)

// rulePrefixes are the e-mail local part prefixes of the rules.
var rulePrefixes = map[rule]string{ruleNG: "ng-", ruleReviewOK: "review-ok-", ruleReviewNG: "review-ng-", ruleHold: "hold-", ruleSlow: "slow-"}

// ruleMix is how many of every 100 orders follow each rule.
var ruleMix = []struct {
	rule  rule
	count int
}{{ruleOrdinary, 72}, {ruleNG, 5}, {ruleReviewOK, 5}, {ruleReviewNG, 5}, {ruleHold, 5}, {ruleSlow, 3}, {ruleOverLimit, 5}}

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
		buyer.Company = pick(r, companies)
		buyer.Department = pick(r, departments)
	}
	o.Buyer = &buyer
	if r.IntN(100) < 20 { // a gift, or a parcel to the office
		to, toPlace, _ := person(r)
		o.ShipTo, place = &to, toPlace
	}
	o.Items = items(r, rl)
	subtotal := sum(o.Items)
	if subtotal < 5000 {
		o.ShippingFee = place.shipping
	}
	if r.IntN(100) < 10 {
		o.Fee = 330 // the mall charged its deferred-payment fee already
	}
	if r.IntN(100) < 25 { // points or a coupon
		o.Discount = min(pick(r, []int64{100, 300, 500, 1000, int64(1 + r.IntN(800))}), subtotal/2)
	}
	switch x := r.IntN(100); {
	case x < 15:
		o.InvoiceDelivery = events.DeliveryEnclosed
	case x < 75:
		o.InvoiceDelivery = events.DeliverySeparate
	}
	bill(&o)
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
	if sum(o.Items)+o.ShippingFee+o.Fee-o.Discount-300 > screeningLimit || s.ruleOf(i) != ruleOverLimit {
		changes = append(changes, func() { o.Discount = min(o.Discount+300, sum(o.Items)) })
	}
	changes = append(changes,
		func() { to, _, _ := person(r); o.ShipTo = &to },
		func() { b := *o.Buyer; b.Phone = mobile(r); o.Buyer = &b },
	)
	pick(r, changes)()
	bill(&o)
	return o
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

// items picks 1-5 different products. Orders over the limit start with an expensive one; the others
// stay under ordinaryMaxSubtotal.
func items(r *rand.Rand, rl rule) []events.Item {
	count := pick(r, []int{1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5})
	var out []events.Item
	var subtotal int64
	if rl == ruleOverLimit {
		p := pick(r, expensiveProducts)
		out, subtotal = append(out, events.Item{Name: p.name, UnitPrice: p.price, Quantity: 1}), p.price
	}
	for _, k := range r.Perm(len(products)) {
		if len(out) == count {
			break
		}
		p := products[k]
		qty := pick(r, []int64{1, 1, 1, 1, 1, 1, 1, 2, 2, 3})
		if rl != ruleOverLimit {
			if subtotal+p.price*qty > ordinaryMaxSubtotal {
				qty = 1
			}
			if subtotal+p.price > ordinaryMaxSubtotal {
				continue
			}
		}
		out, subtotal = append(out, events.Item{Name: p.name, UnitPrice: p.price, Quantity: qty}), subtotal+p.price*qty
	}
	return out
}

// person makes a name with its reading, an address and a phone number; it returns the place and
// the names too.
func person(r *rand.Rand) (events.Person, place, [2]name) {
	f, g, pl := pick(r, familyNames), pick(r, givenNames), pick(r, places)
	addr := fmt.Sprintf("%s%s%s%d-%d-%d", pl.pref, pl.city, pl.town, 1+r.IntN(5), 1+r.IntN(30), 1+r.IntN(20))
	if r.IntN(100) < 40 {
		withRoom := fmt.Sprintf("%s %s %d%02d号室", addr, pick(r, buildings), 1+r.IntN(9), 1+r.IntN(8))
		if utf8.RuneCountInString(withRoom) <= 55 {
			addr = withRoom
		}
	}
	return events.Person{
		Name:     f.kanji + " " + g.kanji,
		NameKana: f.kana + " " + g.kana,
		Zip:      pl.zip,
		Address:  addr,
		Phone:    phone(r, pl),
	}, pl, [2]name{f, g}
}

// phone is a mobile number, or a land line in the place's area code.
func phone(r *rand.Rand, pl place) string {
	if r.IntN(100) < 60 {
		return mobile(r)
	}
	digits := 6 - len(pl.area) // area code and exchange have six digits together
	low := pow10(digits - 1)   // exchanges do not start with 0
	return fmt.Sprintf("%s-%d-%04d", pl.area, low+r.IntN(9*low), r.IntN(10000))
}

func mobile(r *rand.Rand) string {
	return fmt.Sprintf("%s-%d-%04d", pick(r, []string{"090", "080", "070"}), 1000+r.IntN(9000), r.IntN(10000))
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

// email makes the buyer's address from their names, its local part starting with the rule's prefix.
func email(r *rand.Rand, rl rule, who [2]name) string {
	f, g := who[0], who[1]
	var local string
	switch r.IntN(3) {
	case 0:
		local = g.romaji + "." + f.romaji
	case 1:
		local = f.romaji + g.romaji[:1] + strconv.Itoa(10+r.IntN(90))
	default:
		local = g.romaji + "_" + strconv.Itoa(1970+r.IntN(40))
	}
	return rulePrefixes[rl] + local + "@" + pick(r, []string{"example.jp", "example.com", "example.ne.jp", "example.co.jp"})
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

type name struct{ kanji, kana, romaji string }

var familyNames = []name{
	{"佐藤", "サトウ", "sato"}, {"鈴木", "スズキ", "suzuki"}, {"高橋", "タカハシ", "takahashi"}, {"田中", "タナカ", "tanaka"},
	{"伊藤", "イトウ", "ito"}, {"渡辺", "ワタナベ", "watanabe"}, {"山本", "ヤマモト", "yamamoto"}, {"中村", "ナカムラ", "nakamura"},
	{"小林", "コバヤシ", "kobayashi"}, {"加藤", "カトウ", "kato"}, {"吉田", "ヨシダ", "yoshida"}, {"山田", "ヤマダ", "yamada"},
	{"佐々木", "ササキ", "sasaki"}, {"山口", "ヤマグチ", "yamaguchi"}, {"松本", "マツモト", "matsumoto"}, {"井上", "イノウエ", "inoue"},
	{"木村", "キムラ", "kimura"}, {"林", "ハヤシ", "hayashi"}, {"斎藤", "サイトウ", "saito"}, {"清水", "シミズ", "shimizu"},
	{"山崎", "ヤマザキ", "yamazaki"}, {"森", "モリ", "mori"}, {"池田", "イケダ", "ikeda"}, {"橋本", "ハシモト", "hashimoto"},
	{"阿部", "アベ", "abe"}, {"石川", "イシカワ", "ishikawa"}, {"山下", "ヤマシタ", "yamashita"}, {"中島", "ナカジマ", "nakajima"},
	{"前田", "マエダ", "maeda"}, {"藤田", "フジタ", "fujita"}, {"小川", "オガワ", "ogawa"}, {"後藤", "ゴトウ", "goto"},
	{"岡田", "オカダ", "okada"}, {"長谷川", "ハセガワ", "hasegawa"}, {"村上", "ムラカミ", "murakami"}, {"近藤", "コンドウ", "kondo"},
	{"石井", "イシイ", "ishii"}, {"坂本", "サカモト", "sakamoto"}, {"遠藤", "エンドウ", "endo"}, {"青木", "アオキ", "aoki"},
}

var givenNames = []name{
	{"太郎", "タロウ", "taro"}, {"花子", "ハナコ", "hanako"}, {"翔太", "ショウタ", "shota"}, {"陽菜", "ヒナ", "hina"},
	{"大輔", "ダイスケ", "daisuke"}, {"美咲", "ミサキ", "misaki"}, {"健太", "ケンタ", "kenta"}, {"結衣", "ユイ", "yui"},
	{"拓也", "タクヤ", "takuya"}, {"さくら", "サクラ", "sakura"}, {"蓮", "レン", "ren"}, {"葵", "アオイ", "aoi"},
	{"悠斗", "ユウト", "yuto"}, {"陽子", "ヨウコ", "yoko"}, {"誠", "マコト", "makoto"}, {"直美", "ナオミ", "naomi"},
	{"和也", "カズヤ", "kazuya"}, {"恵子", "ケイコ", "keiko"}, {"隆", "タカシ", "takashi"}, {"由美", "ユミ", "yumi"},
	{"浩二", "コウジ", "koji"}, {"真由美", "マユミ", "mayumi"}, {"修", "オサム", "osamu"}, {"愛", "アイ", "ai"},
	{"大翔", "ヒロト", "hiroto"}, {"芽依", "メイ", "mei"}, {"湊", "ミナト", "minato"}, {"凛", "リン", "rin"},
	{"一郎", "イチロウ", "ichiro"}, {"智子", "トモコ", "tomoko"},
}

// place is a town with its postal code, telephone area code and the shop's shipping fee there.
type place struct {
	pref, city, town, zip, area string
	shipping                    int64
}

var places = []place{
	{"東京都", "渋谷区", "神宮前", "150-0001", "03", 550},
	{"東京都", "新宿区", "西新宿", "160-0023", "03", 550},
	{"東京都", "世田谷区", "三軒茶屋", "154-0024", "03", 550},
	{"東京都", "杉並区", "阿佐谷南", "166-0004", "03", 550},
	{"東京都", "練馬区", "豊玉北", "176-0012", "03", 550},
	{"東京都", "品川区", "大崎", "141-0032", "03", 550},
	{"神奈川県", "横浜市西区", "みなとみらい", "220-0012", "045", 550},
	{"神奈川県", "川崎市中原区", "小杉町", "211-0063", "044", 550},
	{"神奈川県", "藤沢市", "鵠沼海岸", "251-0037", "0466", 550},
	{"埼玉県", "さいたま市大宮区", "桜木町", "330-0854", "048", 550},
	{"千葉県", "千葉市中央区", "富士見", "260-0015", "043", 550},
	{"千葉県", "船橋市", "本町", "273-0005", "047", 550},
	{"長野県", "松本市", "中央", "390-0811", "0263", 660},
	{"新潟県", "新潟市中央区", "万代", "950-0088", "025", 660},
	{"石川県", "金沢市", "広坂", "920-0962", "076", 660},
	{"静岡県", "静岡市葵区", "追手町", "420-0853", "054", 550},
	{"愛知県", "名古屋市中村区", "名駅", "450-0002", "052", 550},
	{"愛知県", "名古屋市中区", "栄", "460-0008", "052", 550},
	{"京都府", "京都市下京区", "東塩小路町", "600-8216", "075", 660},
	{"大阪府", "大阪市北区", "梅田", "530-0001", "06", 660},
	{"大阪府", "大阪市中央区", "難波", "542-0076", "06", 660},
	{"大阪府", "堺市堺区", "南瓦町", "590-0078", "072", 660},
	{"兵庫県", "神戸市中央区", "三宮町", "650-0021", "078", 660},
	{"岡山県", "岡山市北区", "駅元町", "700-0024", "086", 660},
	{"広島県", "広島市中区", "紙屋町", "730-0031", "082", 660},
	{"宮城県", "仙台市青葉区", "中央", "980-0021", "022", 660},
	{"福岡県", "福岡市博多区", "博多駅前", "812-0011", "092", 770},
	{"福岡県", "福岡市中央区", "天神", "810-0001", "092", 770},
	{"熊本県", "熊本市中央区", "手取本町", "860-0806", "096", 770},
	{"北海道", "札幌市中央区", "大通西", "060-0042", "011", 1100},
	{"沖縄県", "那覇市", "久茂地", "900-0015", "098", 1320},
}

var buildings = []string{"パークハイツ", "グランメゾン", "コーポ若葉", "サンライズ", "メゾン桜", "レジデンス緑ヶ丘", "ハイム白樺"}

var companies = []string{"株式会社さくら物産", "有限会社山田商店", "合同会社ミナト企画", "株式会社青葉システム", "東和工業株式会社"}

var departments = []string{"総務部", "経理課", "営業部", "人事部", "情報システム課"}

type product struct {
	name  string
	price int64
}

// products cost at most ordinaryMaxSubtotal each.
var products = []product{
	{"緑茶ティーバッグ 50包", 1200}, {"静岡県産 深蒸し茶 100g×3袋", 2700}, {"有機ほうじ茶 100g", 864},
	{"魚沼産コシヒカリ 5kg", 3980}, {"北海道産 じゃがいも 5kg", 2480}, {"讃岐うどん 10人前", 1980},
	{"博多明太子 300g", 3240}, {"信州りんごジュース 1L×6本", 3600}, {"鹿児島県産 黒豚しゃぶしゃぶセット", 5400},
	{"京都 抹茶ロールケーキ", 2160}, {"天然水 2L×6本", 1080}, {"純米吟醸酒 720ml", 2640},
	{"今治タオル フェイスタオル 3枚組", 2750}, {"南部鉄器 急須 0.6L", 6600}, {"有田焼 小皿 5枚セット", 4400},
	{"備前焼 マグカップ", 3300}, {"国産ひのき まな板", 3520}, {"土鍋 8号", 4180},
	{"真空断熱タンブラー 450ml", 2178}, {"綿100% パジャマ Mサイズ", 4980}, {"撥水 折りたたみ傘", 2970},
	{"防災リュック 18点セット", 8800}, {"LEDデスクライト", 5480}, {"ワイヤレスイヤホン", 7980},
	{"モバイルバッテリー 10000mAh", 3280}, {"電動歯ブラシ 替えブラシ 4本", 1650}, {"超音波式 加湿器", 6980},
	{"羽毛布団 シングル", 19800}, {"ドリップコーヒー 30袋", 1580}, {"入浴剤 詰め合わせ 12包", 1320},
}

// expensiveProducts cost more than the sandbox's limit on their own.
var expensiveProducts = []product{
	{"ロボット掃除機", 59800}, {"4K液晶テレビ 43型", 64800}, {"ドラム式洗濯乾燥機", 168000},
	{"一眼レフカメラ レンズキット", 84800}, {"電動アシスト自転車 26インチ", 98000}, {"ノートパソコン 14インチ", 128000},
	{"冷蔵庫 300L", 89800}, {"マッサージチェア", 148000},
}
