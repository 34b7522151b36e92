package atodene

import (
	"encoding/xml"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sumDetails(lines []Detail) int64 {
	var s int64
	for _, l := range lines {
		s += l.Price * l.Amount
	}
	return s
}

func TestBuildDetails(t *testing.T) {
	items := func(n int) []Item {
		out := make([]Item, n)
		for i := range out {
			out[i] = Item{Name: "item", UnitPrice: int64(100 + i), Quantity: int64(1 + i%3)}
		}
		return out
	}
	tests := []struct {
		name      string
		order     Order
		wantLines int
		wantLast  Detail
	}{
		{"one item only", Order{Items: items(1), BilledAmount: 100}, 1, Detail{"item", 100, 1}},
		{"shipping and fee", Order{Items: items(1), ShippingFee: 550, Fee: 205, BilledAmount: 855}, 3, Detail{LabelFee, 205, 1}},
		{"discount", Order{Items: items(1), Discount: 30, BilledAmount: 70}, 2, Detail{LabelDiscount, -30, 1}},
		{"balance without discount", Order{Items: items(1), BilledAmount: 120}, 2, Detail{LabelDiscount, 20, 1}},
		{"twelve items stay", Order{Items: items(12), BilledAmount: sumDetails(BuildDetails(Order{Items: items(12)}))}, 12, Detail{"item", 111, 3}},
		{"thirteen items roll up", Order{Items: items(13), ShippingFee: 1, Fee: 1, Discount: 1}, 0, Detail{}},
		{"fifty items", Order{Items: items(50), ShippingFee: 500, Fee: 205, Discount: 300}, 0, Detail{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.order
			if o.BilledAmount == 0 {
				for _, it := range o.Items {
					o.BilledAmount += it.UnitPrice * it.Quantity
				}
				o.BilledAmount += o.ShippingFee + o.Fee - o.Discount
			}
			lines := BuildDetails(o)
			if got := sumDetails(lines); got != o.BilledAmount {
				t.Errorf("Σ lines = %d, want billed amount %d", got, o.BilledAmount)
			}
			if len(lines) > 15 {
				t.Errorf("%d lines, more than 15", len(lines))
			}
			if tt.wantLines > 0 {
				if len(lines) != tt.wantLines {
					t.Fatalf("%d lines, want %d: %v", len(lines), tt.wantLines, lines)
				}
				if last := lines[len(lines)-1]; last != tt.wantLast {
					t.Errorf("last line %v, want %v", last, tt.wantLast)
				}
			}
			if len(o.Items) > 12 {
				if lines[11].Goods != LabelOtherItems || lines[11].Amount != 1 {
					t.Errorf("line 12 = %v, want the %s roll-up", lines[11], LabelOtherItems)
				}
				if len(lines) != 15 {
					t.Errorf("%d lines, want 12 products + shipping + fee + discount = 15", len(lines))
				}
			}
		})
	}
}

// FuzzBuildDetails proves the line builder's invariants for any order: Σ(price × amount) equals
// the billed amount, at most 15 lines, at most 12 of them products, the price of every
// roll-up and amount line within goodsPrice's range when the builder says the lines fit.
func FuzzBuildDetails(f *testing.F) {
	f.Add(uint8(1), int64(1200), int64(2), int64(550), int64(205), int64(0), int64(0))
	f.Add(uint8(30), int64(999), int64(7), int64(0), int64(0), int64(500), int64(13))
	f.Add(uint8(13), int64(-50), int64(1), int64(10), int64(-5), int64(0), int64(-999))
	f.Fuzz(func(t *testing.T, n uint8, price, qty, shipping, fee, discount, extra int64) {
		const lim = 1 << 20 // keeps products of fuzzed values far from overflow
		if n == 0 || abs(price) > lim || abs(qty) > lim || abs(shipping) > lim || abs(fee) > lim || abs(discount) > lim || abs(extra) > lim {
			return // outside the range where products cannot overflow
		}
		o := Order{ShippingFee: shipping, Fee: fee, Discount: discount}
		for i := range int64(n) {
			it := Item{Name: "x", UnitPrice: price + i, Quantity: qty + i%5}
			o.Items = append(o.Items, it)
			o.BilledAmount += it.UnitPrice * it.Quantity
		}
		o.BilledAmount += shipping + fee - discount + extra
		lines, fits := buildDetails(o)
		if got := sumDetails(lines); got != o.BilledAmount {
			t.Fatalf("Σ lines = %d, billed amount %d", got, o.BilledAmount)
		}
		for _, l := range lines {
			if l.Goods == "x" {
				continue // a product's own line is the product as it is
			}
			if fits && (l.Price < -maxGoodsPrice || l.Price > maxGoodsPrice) {
				t.Fatalf("line %v outside goodsPrice's range, reported as fitting", l)
			}
		}
		if len(lines) > 15 {
			t.Fatalf("%d lines", len(lines))
		}
		products := 0
		for _, l := range lines {
			if l.Goods != LabelShipping && l.Goods != LabelFee && l.Goods != LabelDiscount {
				products++
			}
		}
		if products > 12 || products > int(n) {
			t.Fatalf("%d product lines for %d items", products, n)
		}
	})
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func TestOrderCheck(t *testing.T) {
	mutate := func(f func(*Order)) Order { o := sampleOrder(); f(&o); return o }
	tests := []struct {
		name   string
		order  Order
		fields []string
	}{
		{"valid", sampleOrder(), nil},
		{"everything wrong", mutate(func(o *Order) {
			o.ShopOrderID = "bad id!"
			o.Buyer = Person{Name: strings.Repeat("名", 22), NameKana: "かとう", Zip: "150-00011", Address: strings.Repeat("住", 56),
				Company: strings.Repeat("社", 31), Phone: "03-1234-567X", Email: "no-at-sign"}
			o.BilledAmount = 1000000
			o.Service = "1"
		}), []string{"shopOrderId", "name", "kanaName", "zip", "address", "companyName", "tel", "email", "billedAmount", "service",
			"shipName", "shipKananame", "shipZip", "shipAddress", "shipCompanyName", "shipTel"}},
		{"ship to checked separately", mutate(func(o *Order) {
			o.ShipTo = &Person{Name: "山田", NameKana: "ヤマダ", Zip: "1", Address: "大阪", Phone: "0612345678"}
		}),
			[]string{"shipZip"}},
		{"long goods name and zero quantity", mutate(func(o *Order) { o.Items[0].Name = strings.Repeat("茶", 151); o.Items[0].Quantity = 0 }),
			[]string{"detail[1].goods", "detail[1].goodsAmount"}},
		{"browser info over 1000", mutate(func(o *Order) { o.Browser.HTTPHeader = strings.Repeat("h", 1001) }), []string{"httpHeader"}},
		{"control character", mutate(func(o *Order) { o.Buyer.Address = "東京都\x00渋谷区" }), []string{"address", "shipAddress"}},
		// Valid UTF-8 that XML 1.0 cannot carry: the request's writer would send U+FFFD in its place.
		{"a character XML cannot carry", mutate(func(o *Order) { o.Buyer.Name = "加藤\uFFFF太郎" }), []string{"name", "shipName"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.order.Check()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var ie *InvalidRequestError
			if !errors.As(err, &ie) {
				t.Fatalf("error = %v, want *InvalidRequestError", err)
			}
			var got []string
			for _, f := range ie.Fields {
				got = append(got, f.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("fields at fault:\n got %v\nwant %v\n(%v)", got, tt.fields, err)
			}
		})
	}
}

func TestCheckField(t *testing.T) {
	tests := []struct {
		field, value string
		ok           bool
	}{
		{"kanaName", "カトウ タロウ", true},
		{"kanaName", "カトウ　タロウー", true},
		{"kanaName", "ｶﾄｳ", false},
		{"kanaName", "かとう", false},
		{"kanaName", "Kato", false},
		{"zip", "1500001", true},
		{"zip", "150-0001", true},
		{"zip", "150-001", false},
		{"zip", "１５００００１", false},
		{"tel", "0312345678", true},
		{"tel", "090-1234-5678", true},
		{"tel", "03-1234-56", false},
		{"tel", "+81-3-1234-5678", false},
		{"email", "a@b.jp", true},
		{"email", "a b@c.jp", false},
		{"email", "@c.jp", false},
		{"email", strings.Repeat("a", 95) + "@b.jp", true},
		{"email", strings.Repeat("a", 96) + "@b.jp", false},
		{"billedAmount", "999999", true},
		{"billedAmount", "1000000", false},
		{"billedAmount", "-1", false},
		{"billedAmount", "12.5", false},
		{"billedAmount", "+3055", false}, // digits only: no sign (docs/protocol.md#field-limits)
		{"billedAmount", "-0", false},
		{"billedAmount", " 3055", false},
		{"billedAmount", "3,055", false},
		{"goodsPrice", "-999999", true},
		{"goodsPrice", "-1000000", false},
		{"goodsPrice", "+1000", false},
		{"goodsPrice", "-", false},
		{"goodsPrice", "--1", false},
		{"goodsAmount", "99999", true},
		{"goodsAmount", "100000", false},
		{"goodsAmount", "+1", false},
		{"goodsAmount", "１", false},
		{"shopOrderDate", "2026/11/26", true},
		{"shopOrderDate", "2026-11-26", false},
		{"name", strings.Repeat("名", 21), true},
		{"name", strings.Repeat("名", 22), false},
		{"name", "", false},
		{"companyName", "", true},
		{"deliveryCompanyCode", "12", true},
		{"deliveryCompanyCode", "1", false},
		{"deliverySlipNo", "1234-5678-9012", true},
		{"deliverySlipNo", "1234", false},
		{"deliverySlipNo", "ABCDE", false},
		{"transactionId", "12345678901", true},
		{"transactionId", "12a", false},
		{"expand1", "01", true},
		{"expand1", "03", false},
		{"unknownElement", "anything", true},
	}
	for _, tt := range tests {
		err := CheckField(tt.field, tt.value)
		if (err == nil) != tt.ok {
			t.Errorf("CheckField(%q, %q) = %v, want ok=%v", tt.field, tt.value, err, tt.ok)
		}
		var fe *FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != tt.field) {
			t.Errorf("CheckField(%q): error %v does not name the field", tt.field, err)
		}
		if reason := FieldReason(tt.field, tt.value); (reason == "") != tt.ok || err != nil && reason != fe.Reason {
			t.Errorf("FieldReason(%q, %q) = %q, want CheckField's reason (%v)", tt.field, tt.value, reason, err)
		}
		if tt.ok {
			if n := testing.AllocsPerRun(10, func() { FieldReason(tt.field, tt.value) }); n != 0 {
				t.Errorf("FieldReason(%q, %q) of a valid value made %v allocations, want 0", tt.field, tt.value, n)
			}
		}
	}
}

// The hand-written field patterns accept exactly what the regular expressions of the forms of
// docs/protocol.md#field-limits do.
func FuzzFieldPatterns(f *testing.F) {
	for _, s := range []string{"150-0001", "1500001", "150-00011", "15a0001", "１５０-0001", "A_b-9", "123456789012345678901", "12-3456", "0000"} {
		f.Add(s)
	}
	patterns := []struct {
		re    *regexp.Regexp
		match func(string) bool
	}{
		{regexp.MustCompile(`^(?:[0-9]{3}-[0-9]{4}|[0-9]{7})$`), zip},
		{regexp.MustCompile(`^[A-Za-z0-9_-]{1,50}$`), func(v string) bool { return all(v, 1, 50, orderID) }},
		{regexp.MustCompile(`^[0-9-]{5,20}$`), func(v string) bool { return all(v, 5, 20, slip) }},
		{regexp.MustCompile(`^[0-9]{2}$`), func(v string) bool { return all(v, 2, 2, digit) }},
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, p := range patterns {
			if want := p.re.MatchString(v); p.match(v) != want {
				t.Fatalf("%q: %s matches %v, the hand-written check says %v", v, p.re, want, !want)
			}
		}
	})
}

func detailBuyer() Person {
	return Person{Name: "加藤 太郎", NameKana: "カトウ タロウ", Zip: "150-0001", Address: "東京都渋谷区神宮前1-1-1",
		Phone: "03-1234-5678", Email: "taro@example.jp"}
}

// docs/events.md accepts any order whose items have unit_price 0..999999 and quantity 1..99999,
// discount 0..999999 and billed_amount 0..999999 with billed == Σ items + shipping + fee − discount.
// docs/atodene.md#detail-lines-builddetails promises that BuildDetails always yields at most 15
// rows adding up to BilledAmount, and the rows must pass goodsPrice's −999999..999999. With 13
// items, the 12th and 13th priced 500,000 each and a 100,000 yen coupon, the order is valid
// (billed 900,011): the roll-up of 1,000,000 is split over two その他ご購入商品 rows.
func TestRollupRowOverSixDigits(t *testing.T) {
	t.Parallel()
	var items []Item
	for range 11 {
		items = append(items, Item{Name: "おまけ", UnitPrice: 1, Quantity: 1})
	}
	items = append(items, Item{Name: "ダイヤの指輪", UnitPrice: 500000, Quantity: 1}, Item{Name: "金の時計", UnitPrice: 500000, Quantity: 1})
	for _, tc := range []struct {
		name          string
		shipping, fee int64
	}{{"discount only", 0, 0}, {"shipping, fee and discount", 550, 205}} {
		o := Order{ShopOrderID: "274555-20170615-0823997264", OrderedAt: time.Date(2026, 11, 26, 10, 14, 3, 0, time.UTC),
			Buyer: detailBuyer(), Items: items, ShippingFee: tc.shipping, Fee: tc.fee, Discount: 100000,
			BilledAmount: 11 + 1000000 + tc.shipping + tc.fee - 100000, Service: ServiceSeparate}
		lines := BuildDetails(o)
		var sum int64
		products := 0
		for i, l := range lines {
			sum += l.Price * l.Amount
			if l.Price < -999999 || l.Price > 999999 {
				t.Errorf("%s: detail[%d] %q goodsPrice %d is outside ATODENE's 6 digits", tc.name, i+1, l.Goods, l.Price)
			}
			if l.Goods != LabelShipping && l.Goods != LabelFee && l.Goods != LabelDiscount {
				products++
			}
		}
		if sum != o.BilledAmount || len(lines) > 15 || products > 12 {
			t.Errorf("%s: Σ lines %d (billed %d), %d lines, %d products", tc.name, sum, o.BilledAmount, len(lines), products)
		}
		if _, err := o.Check(); err != nil {
			t.Errorf("%s: a valid order is refused: %v", tc.name, err)
		}
	}
}

// An order whose amounts need more than 15 lines of goodsPrice's range (no order of the event
// contract does) is refused as invalid, saying so, with Σ and the 15 lines still holding.
func TestDetailsThatCannotFitAreRefused(t *testing.T) {
	t.Parallel()
	var items []Item
	for range 20 {
		items = append(items, Item{Name: "金塊", UnitPrice: 999999, Quantity: 99})
	}
	o := Order{ShopOrderID: "A1", OrderedAt: time.Now(), Buyer: detailBuyer(), Items: items, BilledAmount: 999999,
		Service: ServiceSeparate}
	lines := BuildDetails(o)
	if got := sumDetails(lines); got != o.BilledAmount || len(lines) > 15 {
		t.Errorf("Σ lines %d (billed %d), %d lines", got, o.BilledAmount, len(lines))
	}
	_, err := o.Check()
	var ire *InvalidRequestError
	if !errors.As(err, &ire) || !strings.Contains(err.Error(), "details: the order's amounts cannot be written in 15 lines") {
		t.Errorf("Check() = %v, want an invalid request naming details", err)
	}
}

// Hostile free text (XML markup, "]]>", quotes, emoji, U+2028, characters outside JIS X 0208 and
// a CJK compatibility ideograph) is escaped so that the provider reads back exactly what was
// checked.
func TestXMLRoundTripHostileText(t *testing.T) {
	t.Parallel()
	b := detailBuyer()
	b.Name = `A&B<c>]]>"'😀` + "\u2028髙﨑"
	b.Address = "東京都 &amp; ]]> <![CDATA[x]]> ①㈱\uFA19田 𠮷"
	b.Company = "&#x41; &lt;"
	o := Order{ShopOrderID: "A1", OrderedAt: time.Now(), Buyer: b,
		Items: []Item{{Name: "</goods><goodsPrice>1</goodsPrice>", UnitPrice: 100, Quantity: 1}}, BilledAmount: 100, Service: ServiceSeparate}
	r, err := o.Check()
	if err != nil {
		t.Fatal(err)
	}
	body := registerRequest(linkInfoXML{"abc123456789", "original00", "pw"}, r.browser, r.customer, r.ship, r.details)
	var got struct {
		Name    string   `xml:"customer>name"`
		Address string   `xml:"customer>address"`
		Company string   `xml:"customer>companyName"`
		Ship    string   `xml:"ship>shipName"`
		Goods   []string `xml:"details>detail>goods"`
		Prices  []string `xml:"details>detail>goodsPrice"`
	}
	if err := xml.Unmarshal(body, &got); err != nil {
		t.Fatalf("request is not well-formed XML: %v\n%s", err, body)
	}
	if got.Name != b.Name || got.Address != b.Address || got.Company != b.Company || got.Ship != b.Name {
		t.Errorf("read back %q %q %q %q, sent %q %q %q", got.Name, got.Address, got.Company, got.Ship, b.Name, b.Address, b.Company)
	}
	if len(got.Goods) != 1 || got.Goods[0] != o.Items[0].Name || got.Prices[0] != strconv.Itoa(100) {
		t.Errorf("detail lines read back as %q %q", got.Goods, got.Prices)
	}
}
