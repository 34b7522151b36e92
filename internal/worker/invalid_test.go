package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// TestEveryInvalidKindIsDeadLettered publishes one message of every kind of invalid input of
// docs/events.md#inbound-payloads (what cannot be normalised) between valid orders: each ends as a dead letter with reason invalid and the
// field named, the body kept byte for byte, and the valid orders are all processed.
func TestEveryInvalidKindIsDeadLettered(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	type mutation func(map[string]any)
	buyer := func(field string, v any) mutation {
		return func(d map[string]any) { d["buyer"].(map[string]any)[field] = v }
	}
	del := func(field string) mutation { return func(d map[string]any) { delete(d, field) } }
	set := func(field string, v any) mutation { return func(d map[string]any) { d[field] = v } }
	item := func(field string, v any) mutation {
		return func(d map[string]any) { d["items"].([]any)[0].(map[string]any)[field] = v }
	}
	cases := []struct {
		field  string // must appear in Dlq-Error
		mutate mutation
	}{
		{"shop_id", set("shop_id", "other-shop")},
		{"order_id", set("order_id", "bad id!")},
		{"order_id", set("order_id", strings.Repeat("1", 51))},
		{"ordered_at", set("ordered_at", "yesterday")},
		{"buyer", del("buyer")},
		{"buyer.name", buyer("name", "")},
		{"buyer.name", buyer("name", strings.Repeat("名", 22))},
		{"buyer.name_kana", buyer("name_kana", "加藤")},
		{"buyer.name_kana", buyer("name_kana", "Kato")},
		{"buyer.zip", buyer("zip", "150-00")},
		{"buyer.address", buyer("address", strings.Repeat("住", 56))},
		{"buyer.phone", buyer("phone", "03-1234-ABCD")},
		{"buyer.email", buyer("email", "no-at-sign")},
		{"buyer.email", buyer("email", strings.Repeat("a", 95)+"@example.jp")},
		{"buyer.company", buyer("company", strings.Repeat("社", 31))},
		{"ship_to.zip", set("ship_to", map[string]any{"name": "山田", "name_kana": "ヤマダ", "zip": "x", "address": "大阪", "phone": "0612345678"})},
		{"items", set("items", []any{})},
		{"items[0].name", item("name", "")},
		{"items[0].quantity", item("quantity", 0)},
		{"items[0].unit_price", item("unit_price", -5)},
		{"discount", set("discount", -1)},
		{"billed_amount", set("billed_amount", 3000)},
		{"billed_amount", del("billed_amount")},
		{"billed_amount", set("billed_amount", "2950")},
		{"invoice_delivery", set("invoice_delivery", "pigeon")},
		{"billed_amount", func(d map[string]any) { // over 6 digits after the fee table
			d["items"] = []any{map[string]any{"name": "x", "unit_price": 999000, "quantity": 1}}
			d["shipping_fee"], d["billed_amount"] = 900, 999900
		}},
	}
	var bodies [][]byte
	for i, c := range cases {
		d := orderData("shop-a", fmt.Sprintf("BAD-%02d", i), "taro@example.jp")
		c.mutate(d)
		raw, _ := json.Marshal(d)
		body := []byte(fmt.Sprintf(`{"specversion":"1.0","id":"bad-%02d","source":"t","type":"order.created","data":%s}`, i, raw))
		bodies = append(bodies, body)
		h.publishRaw("orders.created.shop-a", fmt.Sprintf("bad-%02d", i), body)
		h.publish("order.created", "shop-a", fmt.Sprintf("good-%02d", i), orderData("shop-a", fmt.Sprintf("GOOD-%02d", i), "taro@example.jp"))
	}
	wait.For(t, 30*time.Second, "every dead letter and outcome", func() bool {
		return len(h.deadLetters()) == len(cases) && len(h.results()) == len(cases)
	})
	for _, m := range h.deadLetters() {
		hd := m.Headers()
		var i int
		if _, err := fmt.Sscanf(string(m.Data())[strings.Index(string(m.Data()), `"id":"bad-`)+10:], "%02d", &i); err != nil {
			t.Fatalf("dead letter body not recognised: %s", m.Data())
		}
		if hd.Get(dlq.HeaderReason) != "invalid" {
			t.Errorf("case %d (%s): reason %s", i, cases[i].field, hd.Get(dlq.HeaderReason))
		}
		if !strings.Contains(hd.Get(dlq.HeaderError), cases[i].field) {
			t.Errorf("case %d: Dlq-Error %q does not name %s", i, hd.Get(dlq.HeaderError), cases[i].field)
		}
		if string(m.Data()) != string(bodies[i]) {
			t.Errorf("case %d: body changed", i)
		}
	}
	for _, o := range h.results() {
		if o.Env.Type != "credit.ok" || !strings.HasPrefix(o.Credit.OrderID, "GOOD-") {
			t.Errorf("unexpected outcome %s for %s", o.Env.Type, o.Credit.OrderID)
		}
	}
}

// TestOversizedEventIsRefusedAtPublish: a message too large to be dead-lettered with its body
// (the body plus the dead-letter headers would pass the server's max_payload) is refused by the
// ORDERS stream at publish time, so it is never accepted and then lost; one just within the limit
// is accepted and dead-lettered byte for byte.
func TestOversizedEventIsRefusedAtPublish(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	limit := int(maxInbound(h.nc.MaxPayload()))
	body := func(size int) []byte {
		head := `{"specversion":"1.0","id":"big-` + fmt.Sprint(size) + `","source":"t","type":"order.created","data":{"pad":"`
		return []byte(head + strings.Repeat("x", size-len(head)-3) + `"}}`)
	}
	msg := nats.NewMsg("orders.created.shop-a")
	msg.Data = body(limit + 1)
	if _, err := h.js.PublishMsg(context.Background(), msg); err == nil {
		t.Fatal("the stream accepted a message too large to dead-letter")
	}
	ok := body(limit - 200)
	h.publishRaw("orders.created.shop-a", "big-ok", ok)
	wait.For(t, 10*time.Second, "its dead letter", func() bool { return len(h.deadLetters()) == 1 })
	if d := h.deadLetters()[0]; string(d.Data()) != string(ok) || d.Headers().Get(dlq.HeaderReason) != "invalid" {
		t.Errorf("dead letter: %d bytes, reason %s", len(d.Data()), d.Headers().Get(dlq.HeaderReason))
	}
}
