package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sampledata"
)

// badCase is one kind of message in the bad-input corpus: what to publish, and how it must end.
type badCase struct {
	name    string
	subject string // default: orders.created.<shopA>
	// body makes the message from a valid envelope and data (as generic JSON), or returns raw
	// bytes of its own.
	body func(env, data map[string]any) []byte
	// reason and field: the dead letter it must end as (field: a text Dlq-Error must contain);
	// outcome: else, the outcome type it must get.
	reason, field string
	outcome       string
	// refused: the ORDERS stream must refuse it at publish time (too large to dead-letter with
	// its body), so it is never accepted.
	refused bool
}

// envelope/data helpers for the corpus.

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain maps always encode
	}
	return b
}

func withData(env, data map[string]any) []byte {
	env["data"] = data
	return encode(env)
}

func setData(f func(data map[string]any)) func(env, data map[string]any) []byte {
	return func(env, data map[string]any) []byte { f(data); return withData(env, data) }
}

func setEnv(f func(env map[string]any)) func(env, data map[string]any) []byte {
	return func(env, data map[string]any) []byte { f(env); return withData(env, data) }
}

func buyer(data map[string]any) map[string]any { return data["buyer"].(map[string]any) }

func item0(data map[string]any) map[string]any { return data["items"].([]any)[0].(map[string]any) }

// rebill sets billed_amount so that the amounts add up again.
func rebill(data map[string]any) {
	var total float64
	for _, it := range data["items"].([]any) {
		m := it.(map[string]any)
		total += m["unit_price"].(float64) * m["quantity"].(float64)
	}
	for _, k := range []string{"shipping_fee", "fee"} {
		if v, ok := data[k].(float64); ok {
			total += v
		}
	}
	if v, ok := data["discount"].(float64); ok {
		total -= v
	}
	data["billed_amount"] = total
}

const (
	invalid       = "invalid"
	unknownShop   = "unknown-shop"
	noTransaction = "no-transaction"
)

// corpus is the bad-input corpus: kinds of bad messages, and odd but valid ones.
func corpus() []badCase {
	created := func(shop string) string { return events.Subject(events.TypeOrderCreated, shop) }
	return []badCase{
		// The body and the envelope.
		{name: "not JSON", body: func(_, _ map[string]any) []byte { return []byte("this is not json {") }, reason: invalid, field: "body"},
		{name: "truncated JSON", body: func(env, data map[string]any) []byte { b := withData(env, data); return b[:len(b)/2] }, reason: invalid, field: "body"},
		{name: "empty body", body: func(_, _ map[string]any) []byte { return []byte{} }, reason: invalid, field: "body"},
		{name: "JSON array", body: func(_, _ map[string]any) []byte { return []byte(`[{"specversion":"1.0"}]`) }, reason: invalid, field: "body"},
		{name: "JSON null", body: func(_, _ map[string]any) []byte { return []byte(`null`) }, reason: invalid, field: "specversion"},
		{name: "wrong specversion", body: setEnv(func(env map[string]any) { env["specversion"] = "0.3" }), reason: invalid, field: "specversion"},
		{name: "specversion as a number", body: setEnv(func(env map[string]any) { env["specversion"] = 1.0 }), reason: invalid, field: "specversion"},
		{name: "no specversion", body: setEnv(func(env map[string]any) { delete(env, "specversion") }), reason: invalid, field: "specversion"},
		{name: "no id", body: setEnv(func(env map[string]any) { delete(env, "id") }), reason: invalid, field: "id"},
		{name: "no source", body: setEnv(func(env map[string]any) { delete(env, "source") }), reason: invalid, field: "source"},
		{name: "no type", body: setEnv(func(env map[string]any) { delete(env, "type") }), reason: invalid, field: "type"},
		{name: "type contradicts subject", body: setEnv(func(env map[string]any) { env["type"] = events.TypeOrderUpdated }), reason: invalid, field: "type"},
		{name: "subject of no event type", subject: "orders.shipped." + shopA, body: setEnv(func(env map[string]any) { env["type"] = "order.shipped" }), reason: invalid, field: "subject"},
		{name: "subject with an extra token", subject: created(shopA) + ".x", reason: invalid, field: "subject"},
		{name: "time not RFC 3339", body: setEnv(func(env map[string]any) { env["time"] = "26/11/2026 10:15" }), reason: invalid, field: "time"},
		{name: "datacontenttype XML", body: setEnv(func(env map[string]any) { env["datacontenttype"] = "text/xml" }), reason: invalid, field: "datacontenttype"},
		{name: "data a string", body: func(env, data map[string]any) []byte { env["data"] = string(encode(data)); return encode(env) }, reason: invalid, field: "data"},
		{name: "no data", body: func(env, _ map[string]any) []byte { delete(env, "data"); return encode(env) }, reason: invalid, field: "data"},
		{name: "unknown shop", subject: created(ghostShop), body: setData(func(d map[string]any) { d["shop_id"] = ghostShop }), reason: unknownShop, field: ghostShop},
		{name: "invalid UTF-8 in a name", body: func(env, data map[string]any) []byte {
			buyer(data)["name"] = "佐藤 MARK"
			return []byte(strings.Replace(string(withData(env, data)), "MARK", "\xff\xfe", 1))
		}, reason: invalid, field: "UTF-8"},
		// The data of order.created.
		{name: "shop_id contradicts subject", body: setData(func(d map[string]any) { d["shop_id"] = shopB }), reason: invalid, field: "shop_id"},
		{name: "no order_id", body: setData(func(d map[string]any) { delete(d, "order_id") }), reason: invalid, field: "order_id"},
		{name: "order_id too long", body: setData(func(d map[string]any) { d["order_id"] = strings.Repeat("A", 51) }), reason: invalid, field: "order_id"},
		{name: "order_id with a slash", body: setData(func(d map[string]any) { d["order_id"] = "A/B" }), reason: invalid, field: "order_id"},
		{name: "ordered_at not a time", body: setData(func(d map[string]any) { d["ordered_at"] = "yesterday" }), reason: invalid, field: "ordered_at"},
		{name: "no buyer", body: setData(func(d map[string]any) { delete(d, "buyer") }), reason: invalid, field: "buyer"},
		{name: "buyer a string", body: setData(func(d map[string]any) { d["buyer"] = "佐藤 太郎" }), reason: invalid, field: "buyer"},
		{name: "no buyer e-mail", body: setData(func(d map[string]any) { delete(buyer(d), "email") }), reason: invalid, field: "buyer.email"},
		{name: "e-mail without @", body: setData(func(d map[string]any) { buyer(d)["email"] = "taro.example.jp" }), reason: invalid, field: "buyer.email"},
		{name: "kana in kanji", body: setData(func(d map[string]any) { buyer(d)["name_kana"] = "佐藤 太郎" }), reason: invalid, field: "buyer.name_kana: must be full-width katakana and spaces, but holds kanji"},
		{name: "zip with letters", body: setData(func(d map[string]any) { buyer(d)["zip"] = "150-OOO1" }), reason: invalid, field: "buyer.zip"},
		{name: "zip too short", body: setData(func(d map[string]any) { buyer(d)["zip"] = "150-001" }), reason: invalid, field: "buyer.zip"},
		{name: "zip of 6 full-width digits", body: setData(func(d map[string]any) { buyer(d)["zip"] = "〒１５０－００１" }), reason: invalid, field: "buyer.zip: must be a postal code of 7 digits, written 123-4567 or 1234567, but has 6 digits"},
		{name: "phone outside Japan", body: setData(func(d map[string]any) { buyer(d)["phone"] = "+1-415-555-0123-4567" }), reason: invalid, field: "buyer.phone: must be a Japanese phone number"},
		{name: "billed_amount 0 on a new order", body: setData(func(d map[string]any) {
			d["items"] = []any{map[string]any{"name": "試供品", "unit_price": 0.0, "quantity": 1.0}}
			d["shipping_fee"], d["fee"], d["discount"] = 0.0, 0.0, 0.0
			rebill(d)
		}), reason: invalid, field: "billed_amount: is 0"},
		{name: "phone with letters", body: setData(func(d map[string]any) { buyer(d)["phone"] = "090-1234-ABCD" }), reason: invalid, field: "buyer.phone"},
		{name: "phone too short", body: setData(func(d map[string]any) { buyer(d)["phone"] = "03-123-456" }), reason: invalid, field: "buyer.phone"},
		{name: "phone as a number", body: setData(func(d map[string]any) { buyer(d)["phone"] = 9012345678 }), reason: invalid, field: "buyer.phone"},
		{name: "name too long", body: setData(func(d map[string]any) { buyer(d)["name"] = strings.Repeat("佐", 22) }), reason: invalid, field: "buyer.name"},
		{name: "address too long", body: setData(func(d map[string]any) { buyer(d)["address"] = strings.Repeat("東", 56) }), reason: invalid, field: "buyer.address"},
		{name: "control character in a name", body: setData(func(d map[string]any) { buyer(d)["name"] = "佐藤\u0007太郎" }), reason: invalid, field: "buyer.name"},
		{name: "newline in an address", body: setData(func(d map[string]any) { buyer(d)["address"] = "東京都渋谷区\n神宮前1-1-1" }), reason: invalid, field: "buyer.address"},
		{name: "ship_to without phone", body: setData(func(d map[string]any) {
			to := map[string]any{}
			for k, v := range buyer(d) {
				to[k] = v
			}
			delete(to, "phone")
			d["ship_to"] = to
		}), reason: invalid, field: "ship_to.phone"},
		{name: "no items", body: setData(func(d map[string]any) { d["items"] = []any{} }), reason: invalid, field: "items"},
		{name: "items an object", body: setData(func(d map[string]any) { d["items"] = item0(d) }), reason: invalid, field: "items"},
		{name: "quantity zero", body: setData(func(d map[string]any) { item0(d)["quantity"] = 0.0; rebill(d) }), reason: invalid, field: "items[0].quantity"},
		{name: "quantity as a string", body: setData(func(d map[string]any) { item0(d)["quantity"] = "2" }), reason: invalid, field: "items[0].quantity"},
		{name: "negative unit price", body: setData(func(d map[string]any) { item0(d)["unit_price"] = -100.0; rebill(d) }), reason: invalid, field: "items[0].unit_price"},
		{name: "amounts do not add up", body: setData(func(d map[string]any) { d["billed_amount"] = d["billed_amount"].(float64) + 1 }), reason: invalid, field: "billed_amount"},
		{name: "no billed_amount", body: setData(func(d map[string]any) { delete(d, "billed_amount") }), reason: invalid, field: "billed_amount"},
		{name: "billed_amount as a string", body: setData(func(d map[string]any) { d["billed_amount"] = fmt.Sprint(d["billed_amount"]) }), reason: invalid, field: "billed_amount"},
		{name: "shipping_fee a fraction", body: setData(func(d map[string]any) { d["shipping_fee"] = 550.5 }), reason: invalid, field: "shipping_fee"},
		{name: "negative discount", body: setData(func(d map[string]any) { d["discount"] = -100.0; rebill(d) }), reason: invalid, field: "discount"},
		{name: "billed past 999,999 after the fee", body: setData(func(d map[string]any) {
			d["items"] = []any{map[string]any{"name": "業務用冷蔵庫", "unit_price": 999900.0, "quantity": 1.0}}
			d["shipping_fee"], d["fee"], d["discount"] = 0.0, 0.0, 0.0
			rebill(d)
		}), reason: invalid, field: "billed_amount"},
		{name: "unknown invoice_delivery", body: setData(func(d map[string]any) { d["invoice_delivery"] = "email" }), reason: invalid, field: "invoice_delivery"},
		{name: "1 MiB body (a 1 MiB name)", body: setData(func(d map[string]any) { buyer(d)["name"] = strings.Repeat("x", 1<<20) }), reason: invalid, field: "buyer.name"},
		{name: "body just under the server's max_payload", body: func(env, data map[string]any) []byte {
			buyer(data)["name"] = "FILL"
			b := withData(env, data)
			fill := maxPayload - 160 - len(b)
			return []byte(strings.Replace(string(b), "FILL", strings.Repeat("x", fill+4), 1))
		}, refused: true},
		// The other inbound types.
		{name: "cancel without order_id", subject: events.Subject(events.TypeOrderCancelled, shopA),
			body: typed(events.TypeOrderCancelled, map[string]any{"shop_id": shopA}), reason: invalid, field: "order_id"},
		{name: "tracking with an unknown carrier", subject: events.Subject(events.TypeTrackingEntered, shopA),
			body: typed(events.TypeTrackingEntered, map[string]any{"shop_id": shopA, "order_id": "ORDER", "carrier": "pigeon", "tracking_number": "123456789012"}), reason: invalid, field: "carrier"},
		{name: "tracking number with letters", subject: events.Subject(events.TypeTrackingEntered, shopA),
			body: typed(events.TypeTrackingEntered, map[string]any{"shop_id": shopA, "order_id": "ORDER", "carrier": "yamato", "tracking_number": "ABC-123"}), reason: invalid, field: "tracking_number"},
		{name: "tracking invoice_date not a date", subject: events.Subject(events.TypeTrackingEntered, shopA),
			body: typed(events.TypeTrackingEntered, map[string]any{"shop_id": shopA, "order_id": "ORDER", "carrier": "yamato", "tracking_number": "123456789012", "invoice_date": "27.11.2026"}), reason: invalid, field: "invoice_date"},
		{name: "invoice request without shop_id", subject: events.Subject(events.TypeInvoiceRequested, shopA),
			body: typed(events.TypeInvoiceRequested, map[string]any{"order_id": "ORDER"}), reason: invalid, field: "shop_id"},
		{name: "cancel for an unknown shop", subject: events.Subject(events.TypeOrderCancelled, ghostShop),
			body: typed(events.TypeOrderCancelled, map[string]any{"shop_id": ghostShop, "order_id": "ORDER"}), reason: unknownShop, field: ghostShop},

		// Odd but valid: these must succeed.
		{name: "XML-special characters in names", body: setData(func(d map[string]any) {
			b := buyer(d)
			b["name"], b["company"], b["department"] = `<佐藤&"太郎">'`, `A&B <商事> "株"`, `]]> & '営業'`
			b["address"] = b["address"].(string) + " <棟>&"
			item0(d)["name"] = `Tom & Jerry <DVD> "限定版" ]]>`
		}), outcome: events.TypeCreditOK},
		{name: "unknown extra attributes and fields", body: func(env, data map[string]any) []byte {
			env["traceparent"], env["partitionkey"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "x"
			data["loyalty_tier"], data["gift_wrap"] = "gold", map[string]any{"paper": "和紙", "ribbon": true}
			item0(data)["sku"] = "SKU-1"
			buyer(data)["birthday"] = "1990-01-01"
			return withData(env, data)
		}, outcome: events.TypeCreditOK},
		{name: "1 MiB of unknown extra data", body: setData(func(d map[string]any) { d["attachment"] = strings.Repeat("z", 1<<20) }), outcome: events.TypeCreditOK},
		{name: "ship_to null", body: setData(func(d map[string]any) { d["ship_to"] = nil }), outcome: events.TypeCreditOK},
		{name: "datacontenttype with charset", body: setEnv(func(env map[string]any) { env["datacontenttype"] = "application/json; charset=utf-8" }), outcome: events.TypeCreditOK},
		{name: "no time attribute", body: setEnv(func(env map[string]any) { delete(env, "time") }), outcome: events.TypeCreditOK},
		{name: "kana with ideographic space and ー", body: setData(func(d map[string]any) { buyer(d)["name_kana"] = "サトウ　ユーコ" }), outcome: events.TypeCreditOK},
		{name: "50-character order ID with _ and -", body: nil, outcome: events.TypeCreditOK},
		{name: "Rakuten-shaped 26-character order number", body: nil, outcome: events.TypeCreditOK},
		// Real mall data that the worker normalises (docs/events.md#normalisation).
		{name: "kana in hiragana", body: setData(func(d map[string]any) { buyer(d)["name_kana"] = "さとう たろう" }), outcome: events.TypeCreditOK},
		{name: "half-width kana", body: setData(func(d map[string]any) { buyer(d)["name_kana"] = "ｻﾄｳ ﾀﾛｳ" }), outcome: events.TypeCreditOK},
		{name: "full-width zip with 〒 and an E.164 phone", body: setData(func(d map[string]any) {
			buyer(d)["zip"], buyer(d)["phone"] = "〒１５０－０００１", "+81-90-1234-5678"
		}), outcome: events.TypeCreditOK},
		{name: "item name over 150 characters (cut)", body: setData(func(d map[string]any) { item0(d)["name"] = strings.Repeat("茶", 151) }), outcome: events.TypeCreditOK},
		{name: "browser header over 1000 characters (cut)", body: setData(func(d map[string]any) {
			d["browser"] = map[string]any{"http_header": strings.Repeat("x", 1001), "device_info": ""}
		}), outcome: events.TypeCreditOK},
		// Events that need a transaction the worker has no record of: never a made-up outcome.
		{name: "cancel of an order never seen", subject: events.Subject(events.TypeOrderCancelled, shopA),
			body: typed(events.TypeOrderCancelled, map[string]any{"shop_id": shopA, "order_id": "ORDER"}), reason: noTransaction, field: "waited"},
		{name: "invoice request for an order never seen", subject: events.Subject(events.TypeInvoiceRequested, shopA),
			body: typed(events.TypeInvoiceRequested, map[string]any{"shop_id": shopA, "order_id": "ORDER"}), reason: noTransaction, field: "no record"},
		// Waits for an order that never comes: parked, then dead-lettered after -park-limit.
		{name: "tracking number for an order never imported", subject: events.Subject(events.TypeTrackingEntered, shopA),
			body:   typed(events.TypeTrackingEntered, map[string]any{"shop_id": shopA, "order_id": "ORDER", "carrier": "yamato", "tracking_number": "１２３４－５６７８－９０１２"}),
			reason: noTransaction, field: "waited"},
	}
}

// typed makes a body of another inbound type; "ORDER" in the data is replaced by the case's
// order ID.
func typed(typ string, data map[string]any) func(env, _ map[string]any) []byte {
	return func(env, base map[string]any) []byte {
		env["type"] = typ
		if data["order_id"] == "ORDER" {
			data["order_id"] = base["order_id"]
		}
		return withData(env, data)
	}
}

// sendCorpus publishes every case of the corpus once, each about an order of its own, and
// records how each must end.
func (d *driver) sendCorpus(ctx context.Context) error {
	_, err := d.sendCases(ctx, corpus(), "X")
	return err
}

// sendCases publishes each case once, about an order of its own (<tag>-<letter><n>), records how
// each must end, and returns the events accepted.
func (d *driver) sendCases(ctx context.Context, cases []badCase, letter string) ([]*Event, error) {
	var sent []*Event
	for i, c := range cases {
		orderID := fmt.Sprintf("%s-%s%03d", d.tag, letter, i+1)
		switch c.name {
		case "50-character order ID with _ and -":
			orderID = (d.tag + "-X_" + strings.Repeat("9", 50))[:50]
		case "Rakuten-shaped 26-character order number":
			orderID = (d.tag + "-20170615-0823997264" + strings.Repeat("0", 26))[:26]
		}
		p := &plan{Shop: shopA, OrderID: orderID, Rule: sampledata.Ordinary}
		o := d.gen.order(p)
		var data map[string]any
		_ = json.Unmarshal(encode(o), &data)
		id := newEventID()
		env := map[string]any{"specversion": "1.0", "id": id, "source": "reliability/corpus", "type": events.TypeOrderCreated,
			"time": time.Now().Format(time.RFC3339), "datacontenttype": "application/json"}
		var body []byte
		if c.body != nil {
			body = c.body(env, data)
		} else {
			body = withData(env, data)
		}
		subject := c.subject
		if subject == "" {
			subject = events.Subject(events.TypeOrderCreated, shopA)
		}
		typ, shop, err := events.ParseSubject(subject)
		if err != nil {
			typ, shop = "", shopA
		}
		for _, s := range []string{`<佐藤&"太郎">'`, `A&B <商事> "株"`, `]]> & '営業'`} {
			d.gen.pii.addLiteral(s, "name")
		}
		// Keyed by the CloudEvent id the case started from, so that an outcome that names it as its
		// cause is attributed to it, even where the body lost it; or by the id the case gave it, if
		// that is of a sensible length.
		key := id
		if given, ok := env["id"].(string); ok && len(given) <= 1024 {
			key = given
		}
		e := &Event{Key: key, Type: typ, Subject: subject, Shop: shop, Order: orderID,
			Want: Want{Reason: c.reason, Field: c.field, Corpus: c.name}}
		if c.outcome != "" {
			e.Want.Direct = []string{c.outcome}
		}
		if c.refused {
			// Never accepted, so no outcome is owed: the stream must say no.
			msg := nats.NewMsg(subject)
			msg.Data = body
			if _, err := d.s.JS.PublishMsg(ctx, msg); err == nil {
				return sent, fmt.Errorf("corpus case %q: the stream accepted a message too large to dead-letter", c.name)
			}
			continue
		}
		d.register(e, body, id)
		if err := d.publishRaw(ctx, e, subject, body, id); err != nil {
			return sent, fmt.Errorf("corpus case %q: %w", c.name, err)
		}
		sent = append(sent, e)
	}
	return sent, nil
}
