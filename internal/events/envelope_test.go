package events_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// testShop is the shop of testdata/order.created.json.
const testShop = "rakuten-01"

// absent marks a field that an edit removes.
var absent = &struct{ absent bool }{true}

// edit sets the JSON value at path (dots and [i] indexes, such as items[0].quantity) to value;
// value absent removes the field, a json.RawMessage is written as is (12.5, "2950", [1]).
type edit struct {
	path  string
	value any
}

// loadJSON reads a testdata file into a generic JSON value, fresh for every caller.
func loadJSON(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// apply performs the edits on a generic JSON value.
func apply(t testing.TB, root map[string]any, edits []edit) {
	t.Helper()
	for _, e := range edits {
		segs := splitPath(e.path)
		var cur any = root
		for _, s := range segs[:len(segs)-1] {
			cur = step(t, cur, s, e.path)
		}
		last := segs[len(segs)-1]
		switch c := cur.(type) {
		case map[string]any:
			if e.value == absent {
				delete(c, last)
			} else {
				c[last] = e.value
			}
		case []any:
			i, err := strconv.Atoi(last)
			if err != nil || i >= len(c) {
				t.Fatalf("edit %s: no element %s", e.path, last)
			}
			c[i] = e.value
		default:
			t.Fatalf("edit %s: %T is not a container", e.path, cur)
		}
	}
}

func splitPath(path string) []string {
	path = strings.ReplaceAll(path, "[", ".")
	path = strings.ReplaceAll(path, "]", "")
	return strings.Split(path, ".")
}

func step(t testing.TB, cur any, seg, path string) any {
	t.Helper()
	switch c := cur.(type) {
	case map[string]any:
		next, ok := c[seg]
		if !ok || next == nil {
			next = map[string]any{}
			c[seg] = next
		}
		return next
	case []any:
		i, err := strconv.Atoi(seg)
		if err != nil || i >= len(c) {
			t.Fatalf("edit %s: no element %s", path, seg)
		}
		return c[i]
	}
	t.Fatalf("edit %s: %T is not a container", path, cur)
	return nil
}

func strp(s string) *string { return &s }

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// problemFields returns the fields named by an *InvalidError, sorted; it fails the test when err
// is another kind of error or a problem has no field or reason.
func problemFields(t testing.TB, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ie *events.InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T) is not an *InvalidError", err, err)
	}
	if len(ie.Problems) == 0 {
		t.Fatalf("*InvalidError without problems: %v", err)
	}
	fields := make([]string, 0, len(ie.Problems))
	for _, p := range ie.Problems {
		if p.Field == "" || p.Reason == "" {
			t.Errorf("problem without field or reason: %+v", p)
		}
		if !strings.Contains(err.Error(), p.Field+": "+p.Reason) {
			t.Errorf("Error() %q does not name %q", err, p.Field+": "+p.Reason)
		}
		fields = append(fields, p.Field)
	}
	slices.Sort(fields)
	return fields
}

func checkProblems(t testing.TB, err error, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	if got := problemFields(t, err); !slices.Equal(got, want) {
		t.Errorf("problems name %q, want %q; error: %v", got, want, err)
	}
}

func TestDecodeEnvelope(t *testing.T) {
	t.Parallel()
	subject := events.Subject(events.TypeOrderCreated, testShop)
	tests := []struct {
		name    string
		subject *string  // the order.created subject of testShop when nil
		body    []byte   // used as is when not nil
		edits   []edit   // on testdata/order.created.json otherwise
		want    []string // fields of the problems; nil means valid
		check   func(*testing.T, events.Envelope)
	}{
		{name: "design example", check: func(t *testing.T, env events.Envelope) {
			if env.SpecVersion != "1.0" || env.ID != "7f1c0a52-3c55-4c3e-9d49-1b1b6c1f0e21" ||
				env.Source != "mall-importer/rakuten" || env.Type != events.TypeOrderCreated ||
				env.Time != "2026-11-26T10:15:00+09:00" || env.DataContentType != "application/json" {
				t.Errorf("envelope attributes: %+v", env)
			}
			if !json.Valid(env.Data) || env.Data[0] != '{' {
				t.Errorf("data is not the raw object: %.40s", env.Data)
			}
		}},
		{name: "broken JSON", body: []byte(`{"specversion": "1.0", "id": `), want: []string{"body"}},
		{name: "trailing garbage", body: []byte(`{"specversion": "1.0"} x`), want: []string{"body"}},
		{name: "empty body", body: []byte{}, want: []string{"body"}},
		{name: "array body", body: []byte(`[{"specversion": "1.0"}]`), want: []string{"body"}},
		{name: "string body", body: []byte(`"order.created"`), want: []string{"body"}},
		{name: "number body", body: []byte(`42`), want: []string{"body"}},
		{name: "null body", body: []byte(`null`), want: []string{"specversion", "id", "source", "type", "data"}},
		{name: "empty object", body: []byte(`{}`), want: []string{"specversion", "id", "source", "type", "data"}},
		{name: "specversion 0.3", edits: []edit{{"specversion", "0.3"}}, want: []string{"specversion"}},
		{name: "specversion missing", edits: []edit{{"specversion", absent}}, want: []string{"specversion"}},
		{name: "specversion a number", edits: []edit{{"specversion", json.RawMessage(`1.0`)}}, want: []string{"specversion"}},
		{name: "id missing", edits: []edit{{"id", absent}}, want: []string{"id"}},
		{name: "id empty", edits: []edit{{"id", ""}}, want: []string{"id"}},
		{name: "id null", edits: []edit{{"id", nil}}, want: []string{"id"}},
		{name: "id a number", edits: []edit{{"id", 7}}, want: []string{"id"}},
		{name: "id of 256 bytes", edits: []edit{{"id", strings.Repeat("a", events.MaxIDLen)}}},
		{name: "id of 257 bytes", edits: []edit{{"id", strings.Repeat("a", events.MaxIDLen+1)}}, want: []string{"id"}},
		{name: "id of 1 MB", edits: []edit{{"id", strings.Repeat("a", 1<<20)}}, want: []string{"id"}},
		{name: "source of 512 bytes", edits: []edit{{"source", strings.Repeat("s", events.MaxSourceLen)}}},
		{name: "source of 513 bytes", edits: []edit{{"source", strings.Repeat("s", events.MaxSourceLen+1)}}, want: []string{"source"}},
		{name: "source missing", edits: []edit{{"source", absent}}, want: []string{"source"}},
		{name: "source empty", edits: []edit{{"source", ""}}, want: []string{"source"}},
		{name: "type missing", edits: []edit{{"type", absent}}, want: []string{"type"}},
		{name: "type of another inbound subject", edits: []edit{{"type", events.TypeOrderUpdated}}, want: []string{"type"}},
		{name: "type of an outcome", edits: []edit{{"type", events.TypeCreditOK}}, want: []string{"type"}},
		{name: "type unknown", edits: []edit{{"type", "order.deleted"}}, want: []string{"type"}},
		{name: "type in the wrong case", edits: []edit{{"type", "Order.Created"}}, want: []string{"type"}},
		{name: "updated on created subject", subject: strp(events.Subject(events.TypeOrderUpdated, testShop)), want: []string{"type"}},
		{name: "subject missing shop", subject: strp("orders.created"), want: []string{"subject"}},
		{name: "subject extra token", subject: strp("orders.created.rakuten-01.x"), want: []string{"subject"}},
		{name: "subject unknown event", subject: strp("orders.deleted.rakuten-01"), want: []string{"subject"}},
		{name: "subject singular kind", subject: strp("order.created.rakuten-01"), want: []string{"subject"}},
		{name: "subject bad shop", subject: strp("orders.created.rakuten 01"), want: []string{"subject"}},
		{name: "subject empty", subject: strp(""), want: []string{"subject"}},
		{name: "subject dead letter", subject: strp("dlq.orders.created.rakuten-01"), want: []string{"subject"}},
		{name: "time absent", edits: []edit{{"time", absent}}},
		{name: "time UTC with fraction", edits: []edit{{"time", "2026-11-26T01:15:00.123456Z"}}},
		{name: "time without zone", edits: []edit{{"time", "2026-11-26T10:15:00"}}, want: []string{"time"}},
		{name: "time with space", edits: []edit{{"time", "2026-11-26 10:15:00+09:00"}}, want: []string{"time"}},
		{name: "time words", edits: []edit{{"time", "yesterday"}}, want: []string{"time"}},
		{name: "time impossible date", edits: []edit{{"time", "2026-02-30T10:15:00+09:00"}}, want: []string{"time"}},
		{name: "data missing", edits: []edit{{"data", absent}}, want: []string{"data"}},
		{name: "data null", edits: []edit{{"data", nil}}, want: []string{"data"}},
		{name: "data array", edits: []edit{{"data", []any{}}}, want: []string{"data"}},
		{name: "data string", edits: []edit{{"data", `{"shop_id": "rakuten-01"}`}}, want: []string{"data"}},
		{name: "data number", edits: []edit{{"data", 1}}, want: []string{"data"}},
		{name: "data base64", edits: []edit{{"data", absent}, {"data_base64", "e30="}}, want: []string{"data"}},
		{name: "datacontenttype absent", edits: []edit{{"datacontenttype", absent}}},
		{name: "datacontenttype with charset", edits: []edit{{"datacontenttype", "application/json; charset=utf-8"}}},
		{name: "datacontenttype upper case", edits: []edit{{"datacontenttype", "Application/JSON"}}},
		{name: "datacontenttype xml", edits: []edit{{"datacontenttype", "application/xml"}}, want: []string{"datacontenttype"}},
		{name: "datacontenttype text", edits: []edit{{"datacontenttype", "text/plain"}}, want: []string{"datacontenttype"}},
		{name: "datacontenttype json lookalike", edits: []edit{{"datacontenttype", "application/jsonl"}}, want: []string{"datacontenttype"}},
		{name: "datacontenttype cloudevents", edits: []edit{{"datacontenttype", "application/cloudevents+json"}}, want: []string{"datacontenttype"}},
		// Control characters: an importer's ESC or line break in an attribute reached the operators'
		// terminals through the order's history (publisher order history).
		{name: "source with ESC", edits: []edit{{"source", "imp\x1b]0;pwned\x07"}}, want: []string{"source"}},
		{name: "source with line break", edits: []edit{{"source", "imp\nFORGED ROW"}}, want: []string{"source"}},
		{name: "source with C1 control", edits: []edit{{"source", "imp\u009b2J"}}, want: []string{"source"}},
		{name: "id with ESC", edits: []edit{{"id", "id\x1b[1A\x1b[K"}}, want: []string{"id"}},
		{name: "id with DEL", edits: []edit{{"id", "id\x7f"}}, want: []string{"id"}},
		{name: "id with tab", edits: []edit{{"id", "a\tb"}}, want: []string{"id"}},
		{name: "type with control", edits: []edit{{"type", "order.created\r"}}, want: []string{"type"}},
		{name: "time with control", edits: []edit{{"time", "2026-11-26T10:15:00+09:00\n"}}, want: []string{"time"}},
		{name: "datacontenttype with control", edits: []edit{{"datacontenttype", "application/json; charset=\"\x1b\""}}, want: []string{"datacontenttype"}},
		{name: "causationid with control", edits: []edit{{"causationid", "x\x1b"}}, want: []string{"causationid"}},
		{name: "subject attribute with control", edits: []edit{{"subject", "1000\x1b[2J"}}, want: []string{"subject"}},
		{name: "dataschema with control", edits: []edit{{"dataschema", "https://example.jp/\n"}}, want: []string{"dataschema"}},
		{name: "subject attribute not a string ignored", edits: []edit{{"subject", 7}}},
		{name: "source with non-ASCII and spaces kept", edits: []edit{{"source", "mall importer/楽天"}}},
		{name: "unknown attributes ignored", edits: []edit{
			{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			{"partitionkey", "rakuten-01"}, {"dataschema", "https://example.jp/order.json"},
			{"subject", "100000123"}, {"causationid", "x"},
		}},
		{name: "several problems", subject: strp("orders.created.rakuten-01"),
			edits: []edit{{"specversion", "0.3"}, {"id", absent}, {"source", ""}, {"time", "now"},
				{"datacontenttype", "text/csv"}, {"type", "order.updated"}, {"data", []any{1}}},
			want: []string{"specversion", "id", "source", "time", "datacontenttype", "type", "data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := tt.body
			if body == nil {
				m := loadJSON(t, "order.created.json")
				apply(t, m, tt.edits)
				body = marshal(t, m)
			}
			subj := subject
			if tt.subject != nil {
				subj = *tt.subject
			}
			env, err := events.DecodeEnvelope(subj, body)
			checkProblems(t, err, tt.want)
			if tt.check != nil && err == nil {
				tt.check(t, env)
			}
		})
	}
}

// TestDecodeEnvelopeInvalidUTF8: a body with bytes that are not UTF-8 is invalid as a whole, wherever
// they are; encoding/json alone would decode it, each bad byte turned into U+FFFD, and the order would
// reach ATODENE with an altered name. (Found by the reliability suite's bad-input corpus.)
func TestDecodeEnvelopeInvalidUTF8(t *testing.T) {
	t.Parallel()
	subject := events.Subject(events.TypeOrderCreated, testShop)
	for _, tt := range []struct {
		name, field string
	}{{"in the buyer's name", "data.buyer.name"}, {"in an attribute", "source"}, {"in an unknown field", "data.note"}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := loadJSON(t, "order.created.json")
			apply(t, m, []edit{{tt.field, "加藤 MARK"}})
			body := []byte(strings.Replace(string(marshal(t, m)), "MARK", "\xff\xfe", 1))
			_, err := events.DecodeEnvelope(subject, body)
			checkProblems(t, err, []string{"body"})
			if err == nil || !strings.Contains(err.Error(), "UTF-8") {
				t.Errorf("error %v does not say UTF-8", err)
			}
		})
	}
	// U+FFFD itself, written as a character or escaped, is valid text.
	m := loadJSON(t, "order.created.json")
	apply(t, m, []edit{{"data.buyer.name", "加藤 \ufffd"}})
	if _, err := events.DecodeEnvelope(subject, marshal(t, m)); err != nil {
		t.Errorf("U+FFFD: %v", err)
	}
}

// TestDecodeEnvelopeLarge feeds bodies of a mebibyte and more: a valid envelope still decodes,
// hostile ones fail cleanly, and no error message quotes a huge value back.
func TestDecodeEnvelopeLarge(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	subject := events.Subject(events.TypeOrderCreated, testShop)
	valid := func(t *testing.T) []byte {
		m := loadJSON(t, "order.created.json")
		apply(t, m, []edit{{"data.padding", strings.Repeat("x", mib)}, {"extension", strings.Repeat("y", mib)}})
		return marshal(t, m)
	}
	tests := []struct {
		name string
		body func(*testing.T) []byte
		want []string
	}{
		{"valid envelope with 2 MiB of unknown fields", valid, nil},
		{"1 MiB specversion", func(t *testing.T) []byte {
			m := loadJSON(t, "order.created.json")
			apply(t, m, []edit{{"specversion", strings.Repeat("9", mib)}})
			return marshal(t, m)
		}, []string{"specversion"}},
		{"1 MiB type", func(t *testing.T) []byte {
			m := loadJSON(t, "order.created.json")
			apply(t, m, []edit{{"type", strings.Repeat("t", mib)}})
			return marshal(t, m)
		}, []string{"type"}},
		{"1 MiB datacontenttype", func(t *testing.T) []byte {
			m := loadJSON(t, "order.created.json")
			apply(t, m, []edit{{"datacontenttype", strings.Repeat("a", mib)}})
			return marshal(t, m)
		}, []string{"datacontenttype"}},
		{"1 MiB of nesting", func(*testing.T) []byte { return []byte(strings.Repeat("[", mib)) }, []string{"body"}},
		{"1 MiB of whitespace", func(*testing.T) []byte { return []byte(strings.Repeat(" ", mib)) }, []string{"body"}},
		{"1 MiB string body", func(*testing.T) []byte { return []byte(`"` + strings.Repeat("s", mib) + `"`) }, []string{"body"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := tt.body(t)
			if len(body) < mib {
				t.Fatalf("body is %d bytes, want at least 1 MiB", len(body))
			}
			env, err := events.DecodeEnvelope(subject, body)
			checkProblems(t, err, tt.want)
			if err != nil {
				if n := len(err.Error()); n > 1000 {
					t.Errorf("error message is %d bytes long", n)
				}
				return
			}
			o, err := events.DecodeOrder(env, testShop)
			if err != nil {
				t.Fatalf("DecodeOrder: %v", err)
			}
			if o.OrderID != "100000123" {
				t.Errorf("order_id %q", o.OrderID)
			}
		})
	}
}

func TestSubject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		eventType, subject string
	}{
		{events.TypeOrderCreated, "orders.created.rakuten-01"},
		{events.TypeOrderUpdated, "orders.updated.rakuten-01"},
		{events.TypeOrderCancelled, "orders.cancelled.rakuten-01"},
		{events.TypeTrackingEntered, "orders.tracking_entered.rakuten-01"},
		{events.TypeInvoiceRequested, "orders.invoice_requested.rakuten-01"},
		{events.TypeRecheckRequested, "orders.recheck_requested.rakuten-01"},
		{events.TypeResolveRequested, "orders.resolve_requested.rakuten-01"},
		{events.TypeCreditOK, "credit.ok.rakuten-01"},
		{events.TypeCreditNG, "credit.ng.rakuten-01"},
		{events.TypeCreditPending, "credit.pending.rakuten-01"},
		{events.TypeCreditCancelled, "credit.cancelled.rakuten-01"},
		{events.TypeCreditInvalid, "credit.invalid.rakuten-01"},
		{events.TypeShipmentOK, "shipment.ok.rakuten-01"},
		{events.TypeShipmentNG, "shipment.ng.rakuten-01"},
		{events.TypeInvoiceOK, "invoice.ok.rakuten-01"},
		{events.TypeInvoiceNG, "invoice.ng.rakuten-01"},
	}
	shops := []string{testShop, "A", "0", "_", "-", strings.Repeat("Z", 32), "Shop_9-x"}
	for _, tt := range tests {
		t.Run(tt.eventType, func(t *testing.T) {
			t.Parallel()
			if got := events.Subject(tt.eventType, testShop); got != tt.subject {
				t.Errorf("Subject(%q) = %q, want %q", tt.eventType, got, tt.subject)
			}
			for _, shop := range shops {
				subject := events.Subject(tt.eventType, shop)
				eventType, gotShop, err := events.ParseSubject(subject)
				if err != nil || eventType != tt.eventType || gotShop != shop {
					t.Errorf("ParseSubject(%q) = %q, %q, %v; want %q, %q", subject, eventType, gotShop, err, tt.eventType, shop)
				}
			}
		})
	}
	t.Run("inbound types", func(t *testing.T) {
		t.Parallel()
		for _, typ := range events.InboundTypes {
			if !strings.HasPrefix(events.Subject(typ, testShop), "orders.") {
				t.Errorf("inbound type %q has subject %q outside orders.>", typ, events.Subject(typ, testShop))
			}
		}
		if len(events.InboundTypes) != 7 {
			t.Errorf("InboundTypes = %q, want the seven of docs/events.md#subjects", events.InboundTypes)
		}
	})
}

func TestParseSubjectRejects(t *testing.T) {
	t.Parallel()
	for _, subject := range []string{
		"",
		"orders",
		"orders.created",
		"orders.created.",
		".created.rakuten-01",
		"orders..rakuten-01",
		"orders.created.rakuten-01.extra",
		"orders.created.rakuten 01",
		"orders.created.ショップ",
		"orders.created.rakuten.01",
		"orders.created.*",
		"orders.created.>",
		"orders.created." + strings.Repeat("s", 33),
		"order.created.rakuten-01",  // singular kind
		"orders.ok.rakuten-01",      // outcome event under orders
		"credit.created.rakuten-01", // inbound event under credit
		"credit.approved.rakuten-01",
		"shipment.pending.rakuten-01",
		"invoice.cancelled.rakuten-01",
		"foo.bar.rakuten-01",
		"Orders.Created.rakuten-01",
		"dlq.orders.created.rakuten-01",
		"orders.created.rakuten-01\n",
	} {
		t.Run(subject, func(t *testing.T) {
			t.Parallel()
			if eventType, shop, err := events.ParseSubject(subject); err == nil {
				t.Errorf("ParseSubject(%q) = %q, %q, nil; want an error", subject, eventType, shop)
			}
		})
	}
}

func TestValidShopID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want bool
	}{
		{"rakuten-01", true}, {"a", true}, {"A_b-9", true}, {strings.Repeat("x", 32), true},
		{"", false}, {strings.Repeat("x", 33), false}, {"a.b", false}, {"a b", false}, {"a*", false},
		{"a>", false}, {"店舗", false}, {"a\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			t.Parallel()
			if got := events.ValidShopID(tt.id); got != tt.want {
				t.Errorf("ValidShopID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

// TestDecodedEnvelopeKeepsData checks that data stays the raw bytes of the event, so a handler
// can decode it once the type is known.
func TestDecodedEnvelopeKeepsData(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile(filepath.Join("testdata", "order.created.json"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := events.DecodeEnvelope(events.Subject(events.TypeOrderCreated, testShop), body)
	if err != nil {
		t.Fatal(err)
	}
	var whole struct{ Data json.RawMessage }
	if err := json.Unmarshal(body, &whole); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(env.Data, whole.Data) {
		t.Errorf("data %s, want %s", env.Data, whole.Data)
	}
}

// TestDecodeEnvelopeNamesControlCharacters: an attribute with a control character is refused with
// a reason naming it, which quotes nothing of the value (the Dlq-Error header, printed by dlq ls).
func TestDecodeEnvelopeNamesControlCharacters(t *testing.T) {
	t.Parallel()
	m := loadJSON(t, "order.created.json")
	apply(t, m, []edit{{"source", "imp\x1b]0;pwned\x07\nFORGED"}, {"id", "id\x1b[1A"}})
	_, err := events.DecodeEnvelope(events.Subject(events.TypeOrderCreated, testShop), marshal(t, m))
	want := "invalid event: id: contains a control character; source: contains a control character"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}
