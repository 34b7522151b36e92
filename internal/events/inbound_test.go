package events_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// inbound builds the body of an inbound event of eventType for testShop: the envelope of
// testdata/order.created.json around data, with the edits applied to data.
func inbound(t testing.TB, eventType string, data map[string]any, edits []edit) []byte {
	t.Helper()
	env := loadJSON(t, "order.created.json")
	env["type"] = eventType
	if data != nil {
		env["data"] = data
	}
	for i := range edits {
		edits[i].path = "data." + edits[i].path
	}
	apply(t, env, edits)
	return marshal(t, env)
}

// decode runs DecodeEnvelope on the event's subject, which must succeed, then the data decoder.
func decode[T any](t testing.TB, eventType string, body []byte, decodeData func(events.Envelope, string) (T, error)) (T, error) {
	t.Helper()
	env, err := events.DecodeEnvelope(events.Subject(eventType, testShop), body)
	if err != nil {
		t.Fatalf("DecodeEnvelope: %v", err)
	}
	return decodeData(env, testShop)
}

func decodeOrder(t testing.TB, edits ...edit) (events.Order, error) {
	t.Helper()
	return decode(t, events.TypeOrderCreated, inbound(t, events.TypeOrderCreated, nil, edits), events.DecodeOrder)
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// TestDecodeOrderDesignExample decodes the order.created example of docs/events.md as it is
// written (docs/events.md#ordercreated-and-orderupdated-eventsdecodeorder-ordervalidate).
func TestDecodeOrderDesignExample(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile(filepath.Join("testdata", "order.created.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, eventType := range []string{events.TypeOrderCreated, events.TypeOrderUpdated} {
		t.Run(eventType, func(t *testing.T) {
			t.Parallel()
			b := body
			if eventType != events.TypeOrderCreated {
				b = inbound(t, eventType, nil, nil)
			}
			got, err := decode(t, eventType, b, events.DecodeOrder)
			if err != nil {
				t.Fatal(err)
			}
			billed := int64(2950)
			want := events.Order{
				ShopID: "rakuten-01", OrderID: "100000123", OrderedAt: "2026-11-26T10:14:03+09:00",
				Buyer: &events.Person{
					Name: "加藤 太郎", NameKana: "カトウ タロウ", Zip: "150-0001", Address: "東京都渋谷区神宮前1-1-1",
					Phone: "03-1234-5678", Email: "taro@example.jp",
				},
				Items:           []events.Item{{Name: "緑茶ティーバッグ 50包", UnitPrice: 1200, Quantity: 2}},
				ShippingFee:     550,
				BilledAmount:    &billed,
				InvoiceDelivery: events.DeliverySeparate,
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
			}
			if err := got.Validate(testShop); err != nil {
				t.Errorf("Validate after decoding: %v", err)
			}
		})
	}
}

func TestDecodeOrder(t *testing.T) {
	t.Parallel()
	type tc struct {
		name  string
		edits []edit
		want  []string // fields of the problems; nil means valid
	}
	var tests []tc
	// Every required field, missing, empty and null.
	for _, f := range []string{"shop_id", "order_id", "ordered_at", "buyer", "items", "billed_amount",
		"buyer.name", "buyer.name_kana", "buyer.zip", "buyer.address", "buyer.phone", "buyer.email"} {
		tests = append(tests, tc{"missing " + f, []edit{{f, absent}}, []string{f}}, tc{"null " + f, []edit{{f, nil}}, []string{f}})
		switch f {
		case "buyer", "items", "billed_amount":
		default:
			tests = append(tests, tc{"empty " + f, []edit{{f, ""}}, []string{f}})
		}
	}
	tests = append(tests, []tc{
		// Valid variants.
		{name: "order_id of 50", edits: []edit{{"order_id", strings.Repeat("A", 50)}}},
		{name: "Rakuten order number", edits: []edit{{"order_id", "274555-20170615-0823997264"}}},
		{name: "Yahoo! order number", edits: []edit{{"order_id", "kitchen-goods-store-10000003"}}},
		{name: "order_id of every allowed character", edits: []edit{{"order_id", "aZ09_-"}}},
		{name: "ordered_at UTC", edits: []edit{{"ordered_at", "2026-11-26T01:14:03Z"}}},
		{name: "ordered_at with fraction", edits: []edit{{"ordered_at", "2026-11-26T10:14:03.5+09:00"}}},
		{name: "name of 21", edits: []edit{{"buyer.name", strings.Repeat("加", 21)}}},
		{name: "kana of 25 with marks and spaces", edits: []edit{{"buyer.name_kana", "ヴァー・ヶ　カトウ " + strings.Repeat("ア", 15)}}},
		{name: "zip of 7 digits", edits: []edit{{"buyer.zip", "1500001"}}},
		{name: "address of 55", edits: []edit{{"buyer.address", strings.Repeat("東", 55)}}},
		{name: "phone of 11 digits", edits: []edit{{"buyer.phone", "09012345678"}}},
		{name: "phone of 15", edits: []edit{{"buyer.phone", "090--1234--5678"}}},
		{name: "email of 100", edits: []edit{{"buyer.email", strings.Repeat("a", 89) + "@example.jp"}}},
		{name: "company and department of 30", edits: []edit{{"buyer.company", strings.Repeat("株", 30)}, {"buyer.department", strings.Repeat("部", 30)}}},
		{name: "item name of 150", edits: []edit{{"items[0].name", strings.Repeat("茶", 150)}}},
		{name: "quantity 99999 price 0", edits: []edit{{"items[0].quantity", 99999}, {"items[0].unit_price", 0}, {"billed_amount", 550}}},
		{name: "discount and fee", edits: []edit{{"discount", 100}, {"fee", 205}, {"billed_amount", 2950 + 205 - 100}}},
		{name: "several items", edits: []edit{{"items", []any{
			map[string]any{"name": "a", "unit_price": 1200, "quantity": 2},
			map[string]any{"name": "b", "unit_price": 1, "quantity": 3},
		}}, {"billed_amount", 2953}}},
		{name: "billed 999999", edits: []edit{{"items[0].unit_price", 999999}, {"items[0].quantity", 1}, {"shipping_fee", 0}, {"billed_amount", 999999}}},
		{name: "billed 0", edits: []edit{{"items[0].unit_price", 0}, {"shipping_fee", 0}, {"billed_amount", 0}}},
		{name: "optional amounts absent", edits: []edit{{"shipping_fee", absent}, {"fee", absent}, {"discount", absent}, {"billed_amount", 2400}}},
		{name: "optional amounts null", edits: []edit{{"shipping_fee", nil}, {"fee", nil}, {"discount", nil}, {"billed_amount", 2400}}},
		{name: "invoice_delivery enclosed", edits: []edit{{"invoice_delivery", "enclosed"}}},
		{name: "invoice_delivery absent", edits: []edit{{"invoice_delivery", absent}}},
		{name: "browser absent", edits: []edit{{"browser", absent}}},
		{name: "browser filled", edits: []edit{{"browser.http_header", "User-Agent: test;:Accept: */*"}, {"browser.device_info", strings.Repeat("d", 1000)}}},
		{name: "unknown fields ignored", edits: []edit{
			{"coupon_code", "WINTER"}, {"points", map[string]any{"used": 100}}, {"buyer.gender", "f"},
			{"items[0].sku", "TEA-50"}, {"browser.ip", "192.0.2.1"}, {"ship_to", absent},
		}},
		{name: "ship_to null", edits: []edit{{"ship_to", nil}}},
		{name: "ship_to absent", edits: []edit{{"ship_to", absent}}},
		{name: "ship_to without email", edits: []edit{{"ship_to", map[string]any{
			"name": "山田 花子", "name_kana": "ヤマダ ハナコ", "zip": "5300001", "address": "大阪府大阪市北区梅田1-1",
			"phone": "0612345678", "company": "株式会社テスト", "department": "総務部",
		}}}},
		{name: "ship_to with email", edits: []edit{{"ship_to", map[string]any{
			"name": "山田 花子", "name_kana": "ヤマダ ハナコ", "zip": "530-0001", "address": "大阪府大阪市北区梅田1-1",
			"phone": "06-1234-5678", "email": "hanako@example.jp",
		}}}},

		// Identifiers and time.
		{name: "order_id with #", edits: []edit{{"order_id", "100000123#"}}, want: []string{"order_id"}},
		{name: "order_id with dot", edits: []edit{{"order_id", "1000.123"}}, want: []string{"order_id"}},
		{name: "order_id with space", edits: []edit{{"order_id", "100 123"}}, want: []string{"order_id"}},
		{name: "order_id with kanji", edits: []edit{{"order_id", "注文123"}}, want: []string{"order_id"}},
		{name: "order_id with full-width digits", edits: []edit{{"order_id", "１２３"}}, want: []string{"order_id"}},
		{name: "order_id with newline", edits: []edit{{"order_id", "123\n"}}, want: []string{"order_id"}},
		{name: "order_id of 51", edits: []edit{{"order_id", strings.Repeat("1", 51)}}, want: []string{"order_id"}},
		{name: "shop_id of another shop", edits: []edit{{"shop_id", "yahoo-01"}}, want: []string{"shop_id"}},
		{name: "shop_id in another case", edits: []edit{{"shop_id", "Rakuten-01"}}, want: []string{"shop_id"}},
		{name: "ordered_at without zone", edits: []edit{{"ordered_at", "2026-11-26T10:14:03"}}, want: []string{"ordered_at"}},
		{name: "ordered_at date only", edits: []edit{{"ordered_at", "2026-11-26"}}, want: []string{"ordered_at"}},
		{name: "ordered_at with slashes", edits: []edit{{"ordered_at", "2026/11/26 10:14:03"}}, want: []string{"ordered_at"}},
		{name: "ordered_at impossible", edits: []edit{{"ordered_at", "2026-13-01T10:14:03+09:00"}}, want: []string{"ordered_at"}},

		// Field limits: one over each.
		{name: "name of 22", edits: []edit{{"buyer.name", strings.Repeat("加", 22)}}, want: []string{"buyer.name"}},
		{name: "kana of 26", edits: []edit{{"buyer.name_kana", strings.Repeat("カ", 26)}}, want: []string{"buyer.name_kana"}},
		{name: "zip of 9", edits: []edit{{"buyer.zip", "150-00011"}}, want: []string{"buyer.zip"}},
		{name: "address of 56", edits: []edit{{"buyer.address", strings.Repeat("東", 56)}}, want: []string{"buyer.address"}},
		{name: "phone of 12 digits", edits: []edit{{"buyer.phone", "090-1234-56789"}}, want: []string{"buyer.phone"}},
		{name: "phone outside Japan", edits: []edit{{"buyer.phone", "+1-415-555-0123"}}, want: []string{"buyer.phone"}},
		{name: "phone with an extension", edits: []edit{{"buyer.phone", "03-1234-5678 内線12"}}, want: []string{"buyer.phone"}},
		{name: "email of 101", edits: []edit{{"buyer.email", strings.Repeat("a", 90) + "@example.jp"}}, want: []string{"buyer.email"}},
		{name: "company of 31", edits: []edit{{"buyer.company", strings.Repeat("株", 31)}}, want: []string{"buyer.company"}},
		{name: "department of 31", edits: []edit{{"buyer.department", strings.Repeat("部", 31)}}, want: []string{"buyer.department"}},
		{name: "ship_to name of 22", edits: []edit{{"ship_to", map[string]any{
			"name": strings.Repeat("山", 22), "name_kana": "ヤマダ", "zip": "5300001", "address": "大阪", "phone": "0612345678",
		}}}, want: []string{"ship_to.name"}},

		// Malformed fields.
		{name: "kana latin", edits: []edit{{"buyer.name_kana", "Kato Taro"}}, want: []string{"buyer.name_kana"}},
		{name: "kana kanji", edits: []edit{{"buyer.name_kana", "加藤 太郎"}}, want: []string{"buyer.name_kana"}},
		{name: "zip of 6 digits", edits: []edit{{"buyer.zip", "150001"}}, want: []string{"buyer.zip"}},
		{name: "zip hyphen misplaced", edits: []edit{{"buyer.zip", "1500-001"}}, want: []string{"buyer.zip"}},
		{name: "zip with letter", edits: []edit{{"buyer.zip", "150-000A"}}, want: []string{"buyer.zip"}},
		{name: "phone with letters", edits: []edit{{"buyer.phone", "03-1234-ABCD"}}, want: []string{"buyer.phone"}},
		{name: "phone of 9 digits", edits: []edit{{"buyer.phone", "03-123-4567"}}, want: []string{"buyer.phone"}},
		{name: "email without @", edits: []edit{{"buyer.email", "taro.example.jp"}}, want: []string{"buyer.email"}},
		{name: "email without local part", edits: []edit{{"buyer.email", "@example.jp"}}, want: []string{"buyer.email"}},
		{name: "email with two @", edits: []edit{{"buyer.email", "taro@ex@ample.jp"}}, want: []string{"buyer.email"}},
		{name: "email with space", edits: []edit{{"buyer.email", "taro @example.jp"}}, want: []string{"buyer.email"}},
		{name: "ship_to kana kanji", edits: []edit{{"ship_to", map[string]any{
			"name": "山田", "name_kana": "山田", "zip": "5300001", "address": "大阪", "phone": "0612345678",
		}}}, want: []string{"ship_to.name_kana"}},
		{name: "ship_to bad email", edits: []edit{{"ship_to", map[string]any{
			"name": "山田", "name_kana": "ヤマダ", "zip": "5300001", "address": "大阪", "phone": "0612345678", "email": "hanako",
		}}}, want: []string{"ship_to.email"}},
		{name: "ship_to empty object", edits: []edit{{"ship_to", map[string]any{}}},
			want: []string{"ship_to.name", "ship_to.name_kana", "ship_to.zip", "ship_to.address", "ship_to.phone"}},
		{name: "buyer empty object", edits: []edit{{"buyer", map[string]any{}}},
			want: []string{"buyer.name", "buyer.name_kana", "buyer.zip", "buyer.address", "buyer.phone", "buyer.email"}},

		// Control characters.
		{name: "name with BEL", edits: []edit{{"buyer.name", "加藤\a太郎"}}, want: []string{"buyer.name"}},
		{name: "address with newline", edits: []edit{{"buyer.address", "東京都\n渋谷区"}}, want: []string{"buyer.address"}},
		{name: "company with NUL", edits: []edit{{"buyer.company", "株式会社\x00"}}, want: []string{"buyer.company"}},
		{name: "item name with tab", edits: []edit{{"items[0].name", "緑茶\t50包"}}, want: []string{"items[0].name"}},
		{name: "department with DEL", edits: []edit{{"buyer.department", "総務\x7f"}}, want: []string{"buyer.department"}},
		{name: "ship_to address with C1 control", edits: []edit{{"ship_to", map[string]any{
			"name": "山田", "name_kana": "ヤマダ", "zip": "5300001", "address": "大阪\u0085梅田", "phone": "0612345678",
		}}}, want: []string{"ship_to.address"}},
		{name: "http_header with CRLF", edits: []edit{{"browser.http_header", "Host: a\r\nUser-Agent: b"}}, want: []string{"browser.http_header"}},

		// Items and amounts.
		{name: "items empty", edits: []edit{{"items", []any{}}}, want: []string{"items"}},
		{name: "quantity 0", edits: []edit{{"items[0].quantity", 0}}, want: []string{"items[0].quantity"}},
		{name: "quantity missing", edits: []edit{{"items[0].quantity", absent}}, want: []string{"items[0].quantity"}},
		{name: "quantity negative", edits: []edit{{"items[0].quantity", -2}, {"billed_amount", -1850}}, want: []string{"items[0].quantity", "billed_amount"}},
		{name: "quantity 100000", edits: []edit{{"items[0].quantity", 100000}}, want: []string{"items[0].quantity"}},
		{name: "second item quantity 0", edits: []edit{{"items", []any{
			map[string]any{"name": "a", "unit_price": 1200, "quantity": 2},
			map[string]any{"name": "b", "unit_price": 1, "quantity": 0},
		}}}, want: []string{"items[1].quantity"}},
		{name: "item name missing", edits: []edit{{"items[0].name", absent}}, want: []string{"items[0].name"}},
		{name: "item null", edits: []edit{{"items", []any{nil}}}, want: []string{"items[0].name", "items[0].quantity"}},
		{name: "unit_price negative", edits: []edit{{"items[0].unit_price", -1200}}, want: []string{"items[0].unit_price"}},
		{name: "unit_price 1000000", edits: []edit{{"items[0].unit_price", 1000000}}, want: []string{"items[0].unit_price"}},
		{name: "discount negative", edits: []edit{{"discount", -100}, {"billed_amount", 3050}}, want: []string{"discount"}},
		{name: "fee negative", edits: []edit{{"fee", -205}, {"billed_amount", 2745}}, want: []string{"fee"}},
		{name: "shipping_fee negative", edits: []edit{{"shipping_fee", -550}, {"billed_amount", 1850}}, want: []string{"shipping_fee"}},
		{name: "fee over 999999", edits: []edit{{"fee", 1000000}}, want: []string{"fee"}},
		{name: "amounts do not add up", edits: []edit{{"billed_amount", 2951}}, want: []string{"billed_amount"}},
		{name: "fee left out of billed", edits: []edit{{"fee", 205}}, want: []string{"billed_amount"}},
		{name: "discount left out of billed", edits: []edit{{"discount", 100}}, want: []string{"billed_amount"}},
		{name: "discount above the total", edits: []edit{{"discount", 3000}, {"billed_amount", -50}}, want: []string{"billed_amount"}},
		{name: "billed 1000000", edits: []edit{{"billed_amount", 1000000}}, want: []string{"billed_amount"}},
		{name: "billed over 999999 and adding up", edits: []edit{{"items[0].unit_price", 999999}, {"billed_amount", 2*999999 + 550}}, want: []string{"billed_amount"}},
		{name: "billed negative", edits: []edit{{"billed_amount", -1}}, want: []string{"billed_amount"}},
		{name: "invoice_delivery mail", edits: []edit{{"invoice_delivery", "mail"}}, want: []string{"invoice_delivery"}},
		{name: "invoice_delivery capitalised", edits: []edit{{"invoice_delivery", "Separate"}}, want: []string{"invoice_delivery"}},
		{name: "invoice_delivery as ATODENE code", edits: []edit{{"invoice_delivery", "2"}}, want: []string{"invoice_delivery"}},

		// Wrong JSON types name the field.
		{name: "billed_amount a string", edits: []edit{{"billed_amount", "2950"}}, want: []string{"billed_amount"}},
		{name: "billed_amount fractional", edits: []edit{{"billed_amount", raw("12.5")}}, want: []string{"billed_amount"}},
		{name: "billed_amount with exponent", edits: []edit{{"billed_amount", raw("2.95e3")}}, want: []string{"billed_amount"}},
		{name: "billed_amount overflowing int64", edits: []edit{{"billed_amount", raw("99999999999999999999")}}, want: []string{"billed_amount"}},
		{name: "billed_amount boolean", edits: []edit{{"billed_amount", true}}, want: []string{"billed_amount"}},
		{name: "shipping_fee a string", edits: []edit{{"shipping_fee", "550"}}, want: []string{"shipping_fee"}},
		{name: "discount fractional", edits: []edit{{"discount", raw("0.5")}}, want: []string{"discount"}},
		{name: "order_id a number", edits: []edit{{"order_id", 100000123}}, want: []string{"order_id"}},
		{name: "ordered_at a number", edits: []edit{{"ordered_at", 1795914843}}, want: []string{"ordered_at"}},
		{name: "buyer a string", edits: []edit{{"buyer", "加藤 太郎"}}, want: []string{"buyer"}},
		{name: "buyer an array", edits: []edit{{"buyer", []any{}}}, want: []string{"buyer"}},
		{name: "zip a number", edits: []edit{{"buyer.zip", 1500001}}, want: []string{"buyer.zip"}},
		{name: "ship_to phone a number", edits: []edit{{"ship_to", map[string]any{"phone": 612345678}}}, want: []string{"ship_to.phone"}},
		{name: "items an object", edits: []edit{{"items", map[string]any{"name": "a"}}}, want: []string{"items"}},
		{name: "item a number", edits: []edit{{"items", []any{1}}}, want: []string{"items[0]"}},
		{name: "quantity a string", edits: []edit{{"items[0].quantity", "2"}}, want: []string{"items[0].quantity"}},
		{name: "unit_price fractional", edits: []edit{{"items[0].unit_price", raw("12.5")}}, want: []string{"items[0].unit_price"}},
		{name: "second item unit_price a string", edits: []edit{{"items", []any{
			map[string]any{"name": "a", "unit_price": 1200, "quantity": 2},
			map[string]any{"name": "b", "unit_price": "1", "quantity": 3},
		}}}, want: []string{"items[1].unit_price"}},
		{name: "third item not an object", edits: []edit{{"items", []any{
			map[string]any{"name": "a", "unit_price": 1200, "quantity": 2},
			map[string]any{"name": "b", "unit_price": 1, "quantity": 3},
			"c",
		}}}, want: []string{"items[2]"}},
		{name: "browser a string", edits: []edit{{"browser", "Mozilla"}}, want: []string{"browser"}},
		{name: "invoice_delivery a number", edits: []edit{{"invoice_delivery", 2}}, want: []string{"invoice_delivery"}},

		// Several problems at once.
		{name: "several problems", edits: []edit{
			{"order_id", "#1"}, {"ordered_at", "today"}, {"buyer.zip", absent}, {"buyer.name_kana", "加藤"},
			{"buyer.email", "taro"}, {"items[0].quantity", 0}, {"discount", -1}, {"invoice_delivery", "post"},
			{"ship_to", map[string]any{"name": "山田"}}, {"shop_id", "other"},
		}, want: []string{
			"shop_id", "order_id", "ordered_at", "buyer.zip", "buyer.name_kana", "buyer.email", "items[0].quantity",
			"discount", "invoice_delivery", "ship_to.name_kana", "ship_to.zip", "ship_to.address", "ship_to.phone",
		}},
		{name: "every item reported", edits: []edit{{"items", []any{
			map[string]any{"name": "", "unit_price": 1, "quantity": 1},
			map[string]any{"name": "b", "unit_price": -1, "quantity": 1},
			map[string]any{"name": "c", "unit_price": 1, "quantity": 0},
		}}}, want: []string{"items[0].name", "items[1].unit_price", "items[2].quantity"}},
	}...)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := decodeOrder(t, tt.edits...)
			checkProblems(t, err, tt.want)
			if err == nil {
				checkOrderInvariant(t, o, testShop)
			}
		})
	}
}

// TestDecodeOrderShipTo checks what the three shapes of ship_to decode to.
func TestDecodeOrderShipTo(t *testing.T) {
	t.Parallel()
	consignee := map[string]any{"name": "山田 花子", "name_kana": "ヤマダ ハナコ", "zip": "5300001", "address": "大阪府", "phone": "0612345678"}
	tests := []struct {
		name  string
		edit  edit
		want  *events.Person
		empty bool // ship to the buyer
	}{
		{"null", edit{"ship_to", nil}, nil, true},
		{"absent", edit{"ship_to", absent}, nil, true},
		{"present without email", edit{"ship_to", consignee}, &events.Person{
			Name: "山田 花子", NameKana: "ヤマダ ハナコ", Zip: "5300001", Address: "大阪府", Phone: "0612345678",
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := decodeOrder(t, tt.edit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o.ShipTo, tt.want) {
				t.Errorf("ship_to = %+v, want %+v", o.ShipTo, tt.want)
			}
			if o.Buyer == nil || o.Buyer.Email != "taro@example.jp" {
				t.Errorf("buyer = %+v", o.Buyer)
			}
		})
	}
}

// TestOrderValidate calls Validate on orders built in Go, as the publisher does before sending.
func TestOrderValidate(t *testing.T) {
	t.Parallel()
	billed := int64(2950)
	valid := func() events.Order {
		b := billed
		return events.Order{
			ShopID: testShop, OrderID: "100000123", OrderedAt: "2026-11-26T10:14:03+09:00",
			Buyer: &events.Person{Name: "加藤 太郎", NameKana: "カトウ タロウ", Zip: "150-0001", Address: "東京都渋谷区神宮前1-1-1",
				Phone: "03-1234-5678", Email: "taro@example.jp"},
			Items:       []events.Item{{Name: "緑茶ティーバッグ 50包", UnitPrice: 1200, Quantity: 2}},
			ShippingFee: 550, BilledAmount: &b,
		}
	}
	tests := []struct {
		name   string
		change func(*events.Order)
		shop   string
		want   []string
	}{
		{"valid", func(*events.Order) {}, testShop, nil},
		{"another shop", func(*events.Order) {}, "yahoo-01", []string{"shop_id"}},
		{"no buyer", func(o *events.Order) { o.Buyer = nil }, testShop, []string{"buyer"}},
		{"no billed amount", func(o *events.Order) { o.BilledAmount = nil }, testShop, []string{"billed_amount"}},
		{"huge quantities do not overflow", func(o *events.Order) {
			o.Items[0].Quantity = 1 << 62
			o.Items[0].UnitPrice = 4
		}, testShop, []string{"items[0].quantity"}},
		{"invalid UTF-8", func(o *events.Order) { o.Buyer.Name = "\xff\xfe" }, testShop, []string{"buyer.name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := valid()
			tt.change(&o)
			checkProblems(t, o.Validate(tt.shop), tt.want)
		})
	}
}

var orderIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,50}$`)

// checkOrderInvariant checks what every accepted order satisfies (docs/events.md#ordercreated-and-orderupdated-eventsdecodeorder-ordervalidate).
func checkOrderInvariant(t testing.TB, o events.Order, shop string) {
	t.Helper()
	if o.ShopID != shop {
		t.Errorf("accepted shop_id %q for shop %q", o.ShopID, shop)
	}
	if !orderIDPattern.MatchString(o.OrderID) {
		t.Errorf("accepted order_id %q", o.OrderID)
	}
	if o.Buyer == nil || len(o.Items) == 0 || o.BilledAmount == nil {
		t.Fatalf("accepted an order without buyer, items or billed_amount: %+v", o)
	}
	var sum int64
	for _, it := range o.Items {
		if it.Quantity < 1 || it.UnitPrice < 0 {
			t.Errorf("accepted item %+v", it)
		}
		sum += it.UnitPrice * it.Quantity
	}
	if o.ShippingFee < 0 || o.Fee < 0 || o.Discount < 0 {
		t.Errorf("accepted negative amounts: shipping_fee %d, fee %d, discount %d", o.ShippingFee, o.Fee, o.Discount)
	}
	if b := *o.BilledAmount; b != sum+o.ShippingFee+o.Fee-o.Discount || b < 0 || b > 999999 {
		t.Errorf("accepted billed_amount %d: items %d + shipping_fee %d + fee %d - discount %d",
			b, sum, o.ShippingFee, o.Fee, o.Discount)
	}
}

func TestDecodeTracking(t *testing.T) {
	t.Parallel()
	base := func() map[string]any {
		return map[string]any{"shop_id": testShop, "order_id": "100000123", "carrier": "yamato",
			"tracking_number": "1234-5678-9012", "invoice_date": "2026-11-27"}
	}
	type tc struct {
		name     string
		edits    []edit
		want     []string
		wantCode string // the carrier code CarrierCode gives, for valid events
		// The tracking number and invoice date sent, when they are not the base's.
		wantNumber, wantDate string
	}
	var tests []tc
	for name, code := range events.Carriers {
		tests = append(tests, tc{name: "carrier " + name, edits: []edit{{"carrier", name}}, wantCode: code})
	}
	for _, code := range []string{"11", "12", "13", "14", "15", "16", "18", "20", "21", "23", "26", "27", "28", "29", "30", "31", "32"} {
		tests = append(tests, tc{name: "carrier code " + code, edits: []edit{{"carrier", code}}, wantCode: code})
	}
	tests = append(tests, []tc{
		{name: "design example", wantCode: "12"},
		{name: "unknown carrier name", edits: []edit{{"carrier", "ups"}}, want: []string{"carrier"}},
		{name: "carrier name capitalised", edits: []edit{{"carrier", "Yamato"}}, wantCode: "12"},
		{name: "carrier name full-width with spaces", edits: []edit{{"carrier", " ＳＡＧＡＷＡ "}}, wantCode: "11"},
		{name: "carrier japanpost", edits: []edit{{"carrier", "japanpost"}}, want: []string{"carrier"}},
		{name: "unknown carrier code 17", edits: []edit{{"carrier", "17"}}, want: []string{"carrier"}},
		{name: "unknown carrier code 99", edits: []edit{{"carrier", "99"}}, want: []string{"carrier"}},
		{name: "carrier code of one digit", edits: []edit{{"carrier", "2"}}, want: []string{"carrier"}},
		{name: "carrier code a number", edits: []edit{{"carrier", 12}}, want: []string{"carrier"}},
		{name: "carrier missing", edits: []edit{{"carrier", absent}}, want: []string{"carrier"}},
		{name: "tracking number of 4", edits: []edit{{"tracking_number", "1234"}}, want: []string{"tracking_number"}},
		{name: "tracking number of 5", edits: []edit{{"tracking_number", "12345"}}, wantCode: "12"},
		{name: "tracking number of 20", edits: []edit{{"tracking_number", "1234-5678-9012-3456-"}}, wantCode: "12"},
		{name: "tracking number of 21", edits: []edit{{"tracking_number", "123456789012345678901"}}, want: []string{"tracking_number"}},
		{name: "tracking number with letters", edits: []edit{{"tracking_number", "ABC-5678-9012"}}, want: []string{"tracking_number"}},
		{name: "tracking number with spaces", edits: []edit{{"tracking_number", "1234 5678 9012"}}, wantCode: "12", wantNumber: "1234-5678-9012"},
		{name: "tracking number full-width", edits: []edit{{"tracking_number", "１２３４５６"}}, wantCode: "12", wantNumber: "123456"},
		{name: "tracking number full-width with dashes", edits: []edit{{"tracking_number", "１２３４－５６７８－９０１２"}}, wantCode: "12", wantNumber: "1234-5678-9012"},
		{name: "tracking number with a minus sign", edits: []edit{{"tracking_number", "1234−5678−9012"}}, wantCode: "12", wantNumber: "1234-5678-9012"},
		{name: "tracking number a number", edits: []edit{{"tracking_number", 123456789012}}, want: []string{"tracking_number"}},
		{name: "tracking number missing", edits: []edit{{"tracking_number", absent}}, want: []string{"tracking_number"}},
		{name: "invoice_date absent", edits: []edit{{"invoice_date", absent}}, wantCode: "12"},
		{name: "invoice_date empty", edits: []edit{{"invoice_date", ""}}, wantCode: "12"},
		{name: "invoice_date leap day", edits: []edit{{"invoice_date", "2028-02-29"}}, wantCode: "12"},
		{name: "invoice_date with slashes (ATODENE's form)", edits: []edit{{"invoice_date", "2026/11/27"}}, wantCode: "12", wantDate: "2026-11-27"},
		{name: "invoice_date full-width", edits: []edit{{"invoice_date", "２０２６／１１／２７"}}, wantCode: "12", wantDate: "2026-11-27"},
		{name: "invoice_date with slashes, impossible", edits: []edit{{"invoice_date", "2026/02/30"}}, want: []string{"invoice_date"}},
		{name: "invoice_date not zero-padded", edits: []edit{{"invoice_date", "2026/1/7"}}, want: []string{"invoice_date"}},
		{name: "invoice_date impossible", edits: []edit{{"invoice_date", "2026-02-30"}}, want: []string{"invoice_date"}},
		{name: "invoice_date day first", edits: []edit{{"invoice_date", "27-11-2026"}}, want: []string{"invoice_date"}},
		{name: "invoice_date with time", edits: []edit{{"invoice_date", "2026-11-27T00:00:00+09:00"}}, want: []string{"invoice_date"}},
		{name: "shop_id missing", edits: []edit{{"shop_id", absent}}, want: []string{"shop_id"}},
		{name: "shop_id of another shop", edits: []edit{{"shop_id", "yahoo-01"}}, want: []string{"shop_id"}},
		{name: "order_id missing", edits: []edit{{"order_id", absent}}, want: []string{"order_id"}},
		{name: "order_id of 51", edits: []edit{{"order_id", strings.Repeat("9", 51)}}, want: []string{"order_id"}},
		{name: "unknown fields ignored", edits: []edit{{"shipped_at", "2026-11-27T09:00:00+09:00"}, {"parcels", 2}}, wantCode: "12"},
		{name: "several problems", edits: []edit{{"shop_id", ""}, {"order_id", "a/b"}, {"carrier", "dhl"},
			{"tracking_number", "12"}, {"invoice_date", "tomorrow"}},
			want: []string{"shop_id", "order_id", "carrier", "tracking_number", "invoice_date"}},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := inbound(t, events.TypeTrackingEntered, base(), tt.edits)
			tr, err := decode(t, events.TypeTrackingEntered, body, events.DecodeTracking)
			checkProblems(t, err, tt.want)
			if err != nil {
				return
			}
			code, ok := events.CarrierCode(tr.Carrier)
			if !ok || code != tt.wantCode {
				t.Errorf("CarrierCode(%q) = %q, %v; want %q", tr.Carrier, code, ok, tt.wantCode)
			}
			if tt.wantNumber != "" && tr.TrackingNumber != tt.wantNumber {
				t.Errorf("tracking_number %q, want %q", tr.TrackingNumber, tt.wantNumber)
			}
			if tt.wantDate != "" && tr.InvoiceDate != tt.wantDate {
				t.Errorf("invoice_date %q, want %q", tr.InvoiceDate, tt.wantDate)
			}
		})
	}
}

func TestCarrierCode(t *testing.T) {
	t.Parallel()
	// The carrier table of docs/events.md#ordertracking_entered-eventsdecodetracking.
	want := map[string]string{
		"sagawa": "11", "yamato": "12", "nittsu": "13", "seino": "14", "japanpost_registered": "15", "yupack": "16",
		"fukuyama": "18", "seino_super_express": "30", "tonami": "29", "ecohai": "27", "meitetsu": "21", "toll_express": "26",
	}
	if !reflect.DeepEqual(events.Carriers, want) {
		t.Errorf("Carriers = %v, want %v", events.Carriers, want)
	}
	for name, code := range want {
		if !events.CarrierCodes[code] {
			t.Errorf("the code %s of %s is not in CarrierCodes", code, name)
		}
	}
	if len(events.CarrierCodes) != 17 {
		t.Errorf("CarrierCodes has %d codes, want the 17 of docs/protocol.md#carrier-codes", len(events.CarrierCodes))
	}
	for _, bad := range []string{"", "0", "00", "17", "19", "22", "24", "25", "33", "yamato ", "YAMATO"} {
		if code, ok := events.CarrierCode(bad); ok {
			t.Errorf("CarrierCode(%q) = %q, true", bad, code)
		}
	}
}

func TestDecodeCancel(t *testing.T) {
	t.Parallel()
	base := func() map[string]any {
		return map[string]any{"shop_id": testShop, "order_id": "100000123", "reason": "購入者都合"}
	}
	tests := []struct {
		name  string
		edits []edit
		want  []string
		check func(*testing.T, events.Cancel)
	}{
		{name: "with reason", check: func(t *testing.T, c events.Cancel) {
			if c != (events.Cancel{ShopID: testShop, OrderID: "100000123", Reason: "購入者都合"}) {
				t.Errorf("decoded %+v", c)
			}
		}},
		{name: "without reason", edits: []edit{{"reason", absent}}},
		{name: "reason null", edits: []edit{{"reason", nil}}},
		{name: "unknown fields ignored", edits: []edit{{"cancelled_at", "2026-11-27T09:00:00+09:00"}}},
		{name: "reason a number", edits: []edit{{"reason", 3}}, want: []string{"reason"}},
		{name: "shop_id missing", edits: []edit{{"shop_id", absent}}, want: []string{"shop_id"}},
		{name: "shop_id of another shop", edits: []edit{{"shop_id", "yahoo-01"}}, want: []string{"shop_id"}},
		{name: "order_id missing", edits: []edit{{"order_id", absent}}, want: []string{"order_id"}},
		{name: "order_id empty", edits: []edit{{"order_id", ""}}, want: []string{"order_id"}},
		{name: "order_id of 50", edits: []edit{{"order_id", strings.Repeat("x", 50)}}},
		{name: "order_id of 51", edits: []edit{{"order_id", strings.Repeat("x", 51)}}, want: []string{"order_id"}},
		{name: "order_id with bad characters", edits: []edit{{"order_id", "100000123/1"}}, want: []string{"order_id"}},
		{name: "order_id a number", edits: []edit{{"order_id", 100000123}}, want: []string{"order_id"}},
		{name: "both ids wrong", edits: []edit{{"shop_id", "x"}, {"order_id", "#"}}, want: []string{"shop_id", "order_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := inbound(t, events.TypeOrderCancelled, base(), tt.edits)
			c, err := decode(t, events.TypeOrderCancelled, body, events.DecodeCancel)
			checkProblems(t, err, tt.want)
			if err == nil && tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestDecodeInvoiceRequest(t *testing.T) {
	t.Parallel()
	base := func() map[string]any { return map[string]any{"shop_id": testShop, "order_id": "100000123"} }
	tests := []struct {
		name  string
		edits []edit
		want  []string
	}{
		{name: "valid"},
		{name: "unknown fields ignored", edits: []edit{{"copies", 2}}},
		{name: "shop_id missing", edits: []edit{{"shop_id", absent}}, want: []string{"shop_id"}},
		{name: "shop_id of another shop", edits: []edit{{"shop_id", "yahoo-01"}}, want: []string{"shop_id"}},
		{name: "shop_id a number", edits: []edit{{"shop_id", 1}}, want: []string{"shop_id"}},
		{name: "order_id missing", edits: []edit{{"order_id", absent}}, want: []string{"order_id"}},
		{name: "order_id of 51", edits: []edit{{"order_id", strings.Repeat("7", 51)}}, want: []string{"order_id"}},
		{name: "order_id with bad characters", edits: []edit{{"order_id", "order 1"}}, want: []string{"order_id"}},
		{name: "both ids missing", edits: []edit{{"shop_id", absent}, {"order_id", absent}}, want: []string{"shop_id", "order_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := inbound(t, events.TypeInvoiceRequested, base(), tt.edits)
			r, err := decode(t, events.TypeInvoiceRequested, body, events.DecodeInvoiceRequest)
			checkProblems(t, err, tt.want)
			if err == nil && r.OrderID == "" {
				t.Errorf("decoded %+v", r)
			}
		})
	}
}

func TestDecodeRecheckRequest(t *testing.T) {
	t.Parallel()
	base := func() map[string]any {
		return map[string]any{"shop_id": testShop, "order_id": "100000123", "operator": "ops-tanaka"}
	}
	tests := []struct {
		name  string
		edits []edit
		want  []string
	}{
		{name: "valid"},
		{name: "unknown fields ignored", edits: []edit{{"note", "buyer called"}}},
		{name: "operator in Japanese", edits: []edit{{"operator", "田中"}}},
		{name: "operator of 64", edits: []edit{{"operator", strings.Repeat("営", 64)}}},
		{name: "operator of 65", edits: []edit{{"operator", strings.Repeat("o", 65)}}, want: []string{"operator"}},
		{name: "operator missing", edits: []edit{{"operator", absent}}, want: []string{"operator"}},
		{name: "operator empty", edits: []edit{{"operator", ""}}, want: []string{"operator"}},
		{name: "operator of spaces", edits: []edit{{"operator", " \u3000"}}, want: []string{"operator"}},
		{name: "operator null", edits: []edit{{"operator", nil}}, want: []string{"operator"}},
		{name: "operator with a newline", edits: []edit{{"operator", "ops\nroot"}}, want: []string{"operator"}},
		{name: "operator with an escape", edits: []edit{{"operator", "ops\u001b[31m"}}, want: []string{"operator"}},
		{name: "operator with a C1 control", edits: []edit{{"operator", "ops\u0085"}}, want: []string{"operator"}},
		{name: "operator a number", edits: []edit{{"operator", 7}}, want: []string{"operator"}},
		{name: "shop_id of another shop", edits: []edit{{"shop_id", "yahoo-01"}}, want: []string{"shop_id"}},
		{name: "order_id of 51", edits: []edit{{"order_id", strings.Repeat("7", 51)}}, want: []string{"order_id"}},
		{name: "everything missing", edits: []edit{{"shop_id", absent}, {"order_id", absent}, {"operator", absent}}, want: []string{"shop_id", "order_id", "operator"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := inbound(t, events.TypeRecheckRequested, base(), tt.edits)
			r, err := decode(t, events.TypeRecheckRequested, body, events.DecodeRecheckRequest)
			checkProblems(t, err, tt.want)
			if err == nil && (r.OrderID == "" || r.Operator == "" || r.RequestedBy() != r.Operator || r.OrderRef() != r.OrderID) {
				t.Errorf("decoded %+v", r)
			}
		})
	}
}

func TestDecodeResolveRequest(t *testing.T) {
	t.Parallel()
	base := func() map[string]any {
		return map[string]any{"shop_id": testShop, "order_id": "100000123", "operator": "ops-tanaka"}
	}
	tests := []struct {
		name  string
		edits []edit
		want  []string
		check func(*testing.T, events.ResolveRequest)
	}{
		{name: "transaction", edits: []edit{{"transaction_id", "12345678901"}}, check: func(t *testing.T, r events.ResolveRequest) {
			if r != (events.ResolveRequest{ShopID: testShop, OrderID: "100000123", Operator: "ops-tanaka", TransactionID: "12345678901"}) {
				t.Errorf("decoded %+v", r)
			}
		}},
		{name: "not registered", edits: []edit{{"not_registered", true}}, check: func(t *testing.T, r events.ResolveRequest) {
			if !r.NotRegistered || r.TransactionID != "" {
				t.Errorf("decoded %+v", r)
			}
		}},
		{name: "transaction in full-width, spaced", edits: []edit{{"transaction_id", " １２３４５６７８９０１　"}}, check: func(t *testing.T, r events.ResolveRequest) {
			if r.TransactionID != "12345678901" {
				t.Errorf("transaction_id %q, want 12345678901", r.TransactionID)
			}
		}},
		{name: "transaction with not_registered false", edits: []edit{{"transaction_id", "1"}, {"not_registered", false}}},
		{name: "transaction of 20", edits: []edit{{"transaction_id", strings.Repeat("9", 20)}}},
		{name: "transaction of 21", edits: []edit{{"transaction_id", strings.Repeat("9", 21)}}, want: []string{"transaction_id"}},
		{name: "transaction with letters", edits: []edit{{"transaction_id", "TX-1"}}, want: []string{"transaction_id"}},
		{name: "transaction a number", edits: []edit{{"transaction_id", 12345678901}}, want: []string{"transaction_id"}},
		{name: "neither", want: []string{"transaction_id"}},
		{name: "not_registered false alone", edits: []edit{{"not_registered", false}}, want: []string{"transaction_id"}},
		{name: "empty transaction alone", edits: []edit{{"transaction_id", ""}}, want: []string{"transaction_id"}},
		{name: "both", edits: []edit{{"transaction_id", "12345678901"}, {"not_registered", true}}, want: []string{"not_registered"}},
		{name: "not_registered a string", edits: []edit{{"not_registered", "true"}}, want: []string{"not_registered"}},
		{name: "operator missing", edits: []edit{{"not_registered", true}, {"operator", absent}}, want: []string{"operator"}},
		{name: "operator of 65", edits: []edit{{"not_registered", true}, {"operator", strings.Repeat("o", 65)}}, want: []string{"operator"}},
		{name: "order_id and operator wrong, no choice", edits: []edit{{"order_id", "a b"}, {"operator", ""}}, want: []string{"order_id", "operator", "transaction_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := inbound(t, events.TypeResolveRequested, base(), tt.edits)
			r, err := decode(t, events.TypeResolveRequested, body, events.DecodeResolveRequest)
			checkProblems(t, err, tt.want)
			if err == nil && tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

// TestDecodeDataNotObject calls each data decoder directly with data that DecodeEnvelope would
// refuse: the decoders fail cleanly too.
func TestDecodeDataNotObject(t *testing.T) {
	t.Parallel()
	decoders := map[string]func(events.Envelope, string) error{
		"order":   func(e events.Envelope, s string) error { _, err := events.DecodeOrder(e, s); return err },
		"cancel":  func(e events.Envelope, s string) error { _, err := events.DecodeCancel(e, s); return err },
		"track":   func(e events.Envelope, s string) error { _, err := events.DecodeTracking(e, s); return err },
		"invoice": func(e events.Envelope, s string) error { _, err := events.DecodeInvoiceRequest(e, s); return err },
		"recheck": func(e events.Envelope, s string) error { _, err := events.DecodeRecheckRequest(e, s); return err },
		"resolve": func(e events.Envelope, s string) error { _, err := events.DecodeResolveRequest(e, s); return err },
	}
	for name, dec := range decoders {
		for _, data := range []string{`[]`, `"x"`, `1`, `{`, ``} {
			t.Run(name+" "+data, func(t *testing.T) {
				t.Parallel()
				checkProblems(t, dec(events.Envelope{Data: json.RawMessage(data)}, testShop), []string{"data"})
			})
		}
	}
}

// FuzzDecodeOrder feeds arbitrary subject suffixes and bodies to DecodeEnvelope and DecodeOrder:
// they never panic, fail only with an *InvalidError naming fields, and whatever they accept
// satisfies docs/events.md#inbound-payloads (a valid order_id, the subject's shop, billed_amount
// adding up).
func FuzzDecodeOrder(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("testdata", "order.created.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(testShop, example)
	f.Add(testShop, inbound(f, events.TypeOrderCreated, nil, []edit{{"discount", 100}, {"fee", 205}, {"billed_amount", 3055}}))
	f.Add(testShop, inbound(f, events.TypeOrderCreated, nil, []edit{{"items[0].quantity", raw("1.5")}}))
	f.Add(testShop, inbound(f, events.TypeOrderCreated, nil, []edit{{"items", []any{1, "x"}}}))
	f.Add(testShop, inbound(f, events.TypeOrderCreated, nil, []edit{{"ship_to", map[string]any{"name": "山田"}}}))
	f.Add(testShop, inbound(f, events.TypeOrderCreated, nil, []edit{{"billed_amount", -1}, {"discount", 2951}}))
	f.Add("yahoo-01", example)
	f.Add("", []byte(`{}`))
	f.Add("a.b", []byte(`{"data":{"items":[{}]}}`))
	f.Add(testShop, []byte(`{"specversion":"1.0","id":"x","source":"s","type":"order.created","data":{"shop_id":"rakuten-01","order_id":"1","ordered_at":"2026-01-01T00:00:00Z","items":[{"name":"a","unit_price":1,"quantity":1}],"billed_amount":1}}`))
	f.Fuzz(func(t *testing.T, shop string, body []byte) {
		subject := events.Subject(events.TypeOrderCreated, shop)
		if env, err := events.DecodeEnvelope(subject, body); err != nil {
			problemFields(t, err)
		} else {
			if !events.ValidShopID(shop) {
				t.Fatalf("DecodeEnvelope accepted subject %q", subject)
			}
			o, err := events.DecodeOrder(env, shop)
			if err != nil {
				problemFields(t, err)
			} else {
				checkOrderInvariant(t, o, shop)
			}
		}
		// The data decoder on its own, as if body were the data of a valid envelope.
		o, err := events.DecodeOrder(events.Envelope{Data: body}, shop)
		if err != nil {
			problemFields(t, err)
			return
		}
		checkOrderInvariant(t, o, shop)
	})
}

// DecodeData knows every inbound type: a tool validating any inbound event (publisher publish,
// dlq edit) checks its data as the worker will.
func TestDecodeDataKnowsEveryInboundType(t *testing.T) {
	t.Parallel()
	for _, typ := range events.InboundTypes {
		env := events.Envelope{Type: typ, Data: []byte(`{}`)}
		_, err := events.DecodeData(typ, env, "shop-a")
		var inv *events.InvalidError
		if !errors.As(err, &inv) {
			t.Errorf("DecodeData(%s, {}) = %v, want the type's own *InvalidError", typ, err)
		}
	}
	if _, err := events.DecodeData(events.TypeCreditOK, events.Envelope{Data: []byte(`{}`)}, "shop-a"); err == nil {
		t.Error("DecodeData accepted an outcome type")
	}
}

// docs/events.md#ordercreated-and-orderupdated-eventsdecodeorder-ordervalidate: Order.IsGift
// compares "width-folded and without spaces". A buyer whose address holds half-width katakana
// with a voiced mark (ｶﾞｰﾃﾞﾝ, as Rakuten/Yahoo! member profiles often keep it) and the same
// address in full-width in ship_to is one address, not a gift: the shop's enclosed invoice must
// stay enclosed. Width folding alone gives カ and a combining mark, never ガ.
func TestIsGiftHalfWidthVoicedKana(t *testing.T) {
	t.Parallel()
	buyer := &events.Person{Name: "加藤 太郎", NameKana: "カトウ タロウ", Zip: "150-0001",
		Address: "東京都渋谷区神宮前1-1-1 ｶﾞｰﾃﾞﾝﾋﾙｽﾞ101", Phone: "03-1234-5678", Email: "taro@example.jp"}
	ship := *buyer
	ship.Address = "東京都渋谷区神宮前１－１－１　ガーデンヒルズ101"
	ship.Email = ""
	o := events.Order{Buyer: buyer, ShipTo: &ship}
	o.Normalize()
	if o.IsGift() {
		t.Errorf("IsGift() = true for the buyer's own address written once in half-width and once in full-width katakana (%q vs %q): an enclosed invoice would be switched to separate", o.Buyer.Address, o.ShipTo.Address)
	}
	// The same holds for the name (buyer name typed in half-width kana by the importer), and for
	// a semi-voiced mark.
	for _, names := range [][2]string{{"ﾀﾞｲｽｹ", "ダイスケ"}, {"ﾍﾟﾝｷﾞﾝ", "ペンギン"}} {
		buyer2 := *buyer
		buyer2.Name = names[0]
		ship2 := buyer2
		ship2.Name = names[1]
		o2 := events.Order{Buyer: &buyer2, ShipTo: &ship2}
		o2.Normalize()
		if o2.IsGift() {
			t.Errorf("IsGift() = true for names %q and %q, equal once width-folded", o2.Buyer.Name, o2.ShipTo.Name)
		}
	}
	// Another voiced kana is still another name.
	buyer3 := *buyer
	buyer3.Name = "ﾀﾞｲｽｹ"
	ship3 := buyer3
	ship3.Name = "タイスケ"
	if o3 := (events.Order{Buyer: &buyer3, ShipTo: &ship3}); !o3.IsGift() {
		t.Errorf("IsGift() = false for names %q and %q, which differ by a voiced mark", buyer3.Name, ship3.Name)
	}
}

// docs/events.md#envelope and #ordercreated-and-orderupdated-eventsdecodeorder-ordervalidate:
// times are RFC 3339, and RFC 3339 §5.6 says "the 'T' and 'Z' characters in this syntax may
// alternatively be lower case 't' or 'z'". The decoders take them and hand on the upper-case
// form, which every later reader (the handlers) parses.
func TestOrderedAtLowercaseRFC3339(t *testing.T) {
	t.Parallel()
	for at, want := range map[string]string{
		"2026-11-26t10:14:03+09:00": "2026-11-26T10:14:03+09:00",
		"2026-11-26T01:14:03z":      "2026-11-26T01:14:03Z",
	} {
		o, err := decodeOrder(t, edit{path: "ordered_at", value: at})
		if err != nil {
			t.Errorf("ordered_at %q (RFC 3339 §5.6 allows lower case t and z) refused: %v", at, err)
		} else if o.OrderedAt != want {
			t.Errorf("ordered_at %q decoded as %q, want %q", at, o.OrderedAt, want)
		}
	}
	env := loadJSON(t, "order.created.json")
	env["time"] = "2026-11-26t10:15:00+09:00"
	e, err := events.DecodeEnvelope(events.Subject(events.TypeOrderCreated, testShop), marshal(t, env))
	if err != nil {
		t.Errorf("envelope time with lower case t refused: %v", err)
	} else if e.Time != "2026-11-26T10:15:00+09:00" {
		t.Errorf("envelope time decoded as %q, want the upper-case form", e.Time)
	}
	if _, err := events.ParseTime("2026-11-26x10:15:00+09:00"); err == nil {
		t.Error("ParseTime took a time without T")
	}
}

// docs/events.md#inbound-payloads: text fields refuse "the characters XML 1.0 cannot carry ...,
// which the request would hold as U+FFFD", and DecodeEnvelope refuses invalid UTF-8 because
// "encoding/json would replace every invalid byte with U+FFFD: a buyer's name or address would
// reach ATODENE altered, without anyone being told". A lone surrogate written as a JSON escape
// (what JavaScript's JSON.stringify emits for a string cut inside an emoji's surrogate pair) is
// the same case: encoding/json turns it into U+FFFD, so U+FFFD is refused, naming the field.
func TestLoneSurrogateEscapeNotSentAltered(t *testing.T) {
	t.Parallel()
	env := loadJSON(t, "order.created.json")
	body := string(marshal(t, env))
	const addr = `東京都渋谷区神宮前1-1-1`
	if !strings.Contains(body, addr) {
		t.Fatal("example address not found")
	}
	body = strings.Replace(body, addr, addr+`\ud83d`, 1) // an emoji cut after its high surrogate
	if !json.Valid([]byte(body)) {
		t.Fatal("body is not valid JSON")
	}
	e, err := events.DecodeEnvelope(events.Subject(events.TypeOrderCreated, testShop), []byte(body))
	if err != nil {
		return // refused at the envelope: fine
	}
	o, err := events.DecodeOrder(e, testShop)
	if err == nil {
		t.Fatalf("order accepted with buyer.address %q: the lone surrogate became U+FFFD and would be sent to ATODENE altered; want the event refused naming buyer.address", o.Buyer.Address)
	}
	if !strings.Contains(err.Error(), "buyer.address: contains U+FFFD") {
		t.Errorf("error %q does not name buyer.address and U+FFFD", err)
	}
	// Every text field, not only the address.
	for _, path := range []string{"buyer.name", "buyer.company", "ship_to.address", "items[0].name", "browser.device_info"} {
		value := "ab\uFFFD"
		edits := []edit{{path: path, value: value}}
		if strings.HasPrefix(path, "ship_to.") {
			edits = []edit{{path: "ship_to", value: map[string]any{"name": "加藤 花子", "name_kana": "カトウ ハナコ",
				"zip": "150-0001", "address": value, "phone": "03-1234-5678"}}}
		}
		if _, err := decodeOrder(t, edits...); err == nil || !strings.Contains(err.Error(), path+": contains U+FFFD") {
			t.Errorf("%s holding U+FFFD: got %v, want it refused naming the field", path, err)
		}
	}
}

// docs/events.md#normalisation: kana are full-width katakana and spaces. A no-break space (U+00A0,
// what a web form or an HTML export leaves for &nbsp;) between family and given name is a space,
// and is sent as the space the request uses.
func TestKanaNoBreakSpace(t *testing.T) {
	t.Parallel()
	for _, sp := range []string{"\u00a0", "\u2002", "\u3000", "\u00a0\u3000"} {
		o, err := decodeOrder(t, edit{path: "buyer.name_kana", value: "\u00a0ヤマダ" + sp + "ハナコ\u202f"})
		if err != nil {
			t.Fatalf("kana with %U between the names refused: %v", []rune(sp), err)
		}
		if want := "ヤマダ " + strings.Repeat(" ", len([]rune(sp))-1) + "ハナコ"; o.Buyer.NameKana != want {
			t.Errorf("kana sent as %q, want %q", o.Buyer.NameKana, want)
		}
	}
}

// docs/events.md#inbound-payloads: "An empty string is the same as an absent field", and every
// other required field (kana, zip, phone, e-mail) is trimmed before the check, so that "　" is
// "is required". A name or address of nothing but spaces (an importer joining an empty family and
// given name with U+3000) is refused, as is every other required text field of spaces.
func TestBlankNameAndAddressRequired(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ path, value string }{
		{"buyer.name", "\u3000"},
		{"buyer.address", "  \u3000 "},
		{"buyer.name", "\u00a0"},
		{"items[0].name", "\u3000\u3000"},
	} {
		o, err := decodeOrder(t, edit{path: tc.path, value: tc.value})
		if err == nil {
			t.Errorf("%s %q accepted (sent as name %q, address %q): want \"is required\"", tc.path, tc.value, o.Buyer.Name, o.Buyer.Address)
		} else if !strings.Contains(err.Error(), tc.path+": is required") {
			t.Errorf("%s %q: %v, want \"is required\"", tc.path, tc.value, err)
		}
	}
	for _, field := range []string{"name", "address"} {
		ship := map[string]any{"name": "加藤 花子", "name_kana": "カトウ ハナコ", "zip": "150-0001",
			"address": "東京都渋谷区神宮前1-1-1", "phone": "03-1234-5678"}
		ship[field] = " \u3000"
		if _, err := decodeOrder(t, edit{path: "ship_to", value: ship}); err == nil || !strings.Contains(err.Error(), "ship_to."+field+": is required") {
			t.Errorf("ship_to.%s of spaces: got %v, want \"is required\"", field, err)
		}
	}
}
