package events_test

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/testenv/golden"
)

func TestNewOutcome(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 26, 10, 15, 2, 987654321, jst.Zone)
	body, err := events.NewOutcome("out-1", events.TypeCreditOK, "7f1c0a52-3c55-4c3e-9d49-1b1b6c1f0e21", at,
		events.Credit{ShopID: testShop, OrderID: "100000123", Result: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	for attr, want := range map[string]string{
		"specversion":     "1.0",
		"id":              "out-1",
		"source":          "atodene-worker",
		"type":            "credit.ok",
		"time":            "2026-11-26T10:15:02+09:00",
		"datacontenttype": "application/json",
		"causationid":     "7f1c0a52-3c55-4c3e-9d49-1b1b6c1f0e21",
	} {
		if got[attr] != want {
			t.Errorf("%s = %v, want %q", attr, got[attr], want)
		}
	}
	data, ok := got["data"].(map[string]any)
	if !ok || data["order_id"] != "100000123" || data["result"] != "ok" {
		t.Errorf("data = %v", got["data"])
	}

	// An outcome is a valid envelope on its own subject: downstream consumers decode it with
	// the same code.
	env, err := events.DecodeEnvelope(events.Subject(events.TypeCreditOK, testShop), body)
	if err != nil {
		t.Fatalf("DecodeEnvelope(outcome): %v", err)
	}
	if env.CausationID != "7f1c0a52-3c55-4c3e-9d49-1b1b6c1f0e21" {
		t.Errorf("causationid = %q", env.CausationID)
	}
}

// TestWithOutcomeID: an outcome given a new id is the outcome rendered with that id, byte for byte.
func TestWithOutcomeID(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 26, 10, 15, 2, 0, jst.Zone)
	data := events.Shipment{ShopID: testShop, OrderID: "注文<&>\"1", TrackingNumber: "1234-5678-9012", Report: "new"}
	render := func(id string) []byte {
		body, err := events.NewOutcome(id, events.TypeShipmentOK, "ev-1", at, data)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	const old, id = "s:注文<&>\"1:0a1b2c3d:4:shipment.ok", "s:注文<&>\"1:9f8e7d6c:4:shipment.ok"
	got, err := events.WithOutcomeID(render(old), id)
	if err != nil {
		t.Fatal(err)
	}
	if want := render(id); string(got) != string(want) {
		t.Errorf("WithOutcomeID:\n%s\nwant\n%s", got, want)
	}
	if _, err := events.WithOutcomeID([]byte(`{"id":`), id); err == nil {
		t.Error("WithOutcomeID of a truncated body: no error")
	}
}

func TestNewOutcomeTimeZone(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 26, 1, 15, 2, 0, time.UTC)
	body, err := events.NewOutcome("out-2", events.TypeShipmentOK, "in-2", at, events.Shipment{})
	if err != nil {
		t.Fatal(err)
	}
	var env struct{ Time string }
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	if env.Time != "2026-11-26T01:15:02Z" {
		t.Errorf("time = %q, want the instant in the zone given", env.Time)
	}
}

func TestNewOutcomeMarshalError(t *testing.T) {
	t.Parallel()
	if _, err := events.NewOutcome("id", events.TypeCreditOK, "c", time.Now(), make(chan int)); err == nil {
		t.Error("NewOutcome with data that cannot be marshalled returned no error")
	}
}

// TestOutcomeEmptyLists checks that nil lists are written as [], by value and by pointer.
func TestOutcomeEmptyLists(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data any
		want map[string]string // field → its JSON
	}{
		{"credit", events.Credit{}, map[string]string{"errors": `[]`, "reasons": `[]`, "review": `""`, "fee": `0`}},
		{"credit pointer", &events.Credit{}, map[string]string{"errors": `[]`, "reasons": `[]`}},
		{"credit with lists", events.Credit{Reasons: []string{"住所不備"}, Errors: []events.ProviderError{{Point: "zip"}}},
			map[string]string{"errors": `[{"point":"zip","code":"","message":""}]`, "reasons": `["住所不備"]`}},
		{"shipment", events.Shipment{}, map[string]string{"errors": `[]`, "report": `""`}},
		{"shipment pointer", &events.Shipment{}, map[string]string{"errors": `[]`}},
		{"invoice ok", events.Invoice{Invoice: &events.InvoicePrintData{}}, map[string]string{"errors": "", "invoice": `{"details":[]}`}},
		{"invoice ng", events.Invoice{Errors: []events.ProviderError{{Point: "transactionId", Code: "er000033"}}},
			map[string]string{"invoice": "", "errors": `[{"point":"transactionId","code":"er000033","message":""}]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(marshal(t, tt.data), &fields); err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				got, ok := fields[name]
				if want == "" {
					if ok {
						t.Errorf("%s present: %s", name, got)
					}
					continue
				}
				if string(got) != want {
					t.Errorf("%s = %s, want %s", name, got, want)
				}
			}
		})
	}
}

// TestOutcomeGolden compares whole outcome events, byte for byte, with testdata/*.golden.json.
// go test ./internal/events -run TestOutcomeGolden -update rewrites them.
func TestOutcomeGolden(t *testing.T) {
	// With -update it runs before the parallel tests, which read the files it writes.
	if !golden.Updating() {
		t.Parallel()
	}
	decided := time.Date(2026, 11, 26, 10, 15, 2, 0, jst.Zone)
	const cause = "7f1c0a52-3c55-4c3e-9d49-1b1b6c1f0e21"
	tests := []struct {
		file, id, eventType string
		data                any
	}{
		{"credit.ok.golden.json", "rakuten-01:100000123:5f3a9c01:2:credit.ok", events.TypeCreditOK, events.Credit{
			ShopID: testShop, OrderID: "100000123", TransactionID: "12345678901", Result: "ok",
			Fee: 205, BilledAmount: 3155, DecidedAt: decided.Format(time.RFC3339),
		}},
		{"credit.ng.golden.json", "rakuten-01:100000124:0b1d2e3f:2:credit.ng", events.TypeCreditNG, events.Credit{
			ShopID: testShop, OrderID: "100000124", TransactionID: "12345678902", Result: "ng",
			Fee: 205, BilledAmount: 60205, Reasons: []string{"住所不備", "電話番号不備"}, DecidedAt: decided.Format(time.RFC3339),
		}},
		{"credit.invalid.golden.json", "rakuten-01:100000125:7c4e9a10:2:credit.invalid", events.TypeCreditInvalid, events.Credit{
			ShopID: testShop, OrderID: "100000125", Result: "invalid", Fee: 205, BilledAmount: 3155,
			Errors: []events.ProviderError{
				{Point: "zip", Code: "er000004", Message: "郵便番号の形式が不正です"},
				{Point: "tel", Code: "er000005", Message: "電話番号の形式が不正です"},
			},
			DecidedAt: decided.Format(time.RFC3339),
		}},
		{"shipment.ok.golden.json", "rakuten-01:100000123:5f3a9c01:4:shipment.ok", events.TypeShipmentOK, events.Shipment{
			ShopID: testShop, OrderID: "100000123", TransactionID: "12345678901", CarrierCode: "12",
			TrackingNumber: "1234-5678-9012", Report: "new", ReportedAt: decided.Format(time.RFC3339),
		}},
		{"invoice.ok.golden.json", "rakuten-01:100000123:5f3a9c01:6:invoice.ok", events.TypeInvoiceOK, events.Invoice{
			ShopID: testShop, OrderID: "100000123", TransactionID: "12345678901",
			Invoice: &events.InvoicePrintData{
				Fields: map[string]string{
					"zip": "150-0001", "address1": "東京都渋谷区神宮前1-1-1", "name": "加藤 太郎",
					"billedAmount": "3,155円", "billedFeeTax": "内消費税：286円", "billDeadlineDate": "2026年12月11日",
					"transactionId": "12345678901", "invoiceBarcode": strings.Repeat("9", 44),
				},
				Details: []map[string]string{
					{"goods": "緑茶ティーバッグ 50包", "goodsAmount": "2", "goodsPrice": "1,200", "goodsSubtotal": "2,400"},
					{"goods": "送料 & 手数料 <税込>", "goodsAmount": "1", "goodsPrice": "755", "goodsSubtotal": "755"},
				},
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			got, err := events.NewOutcome(tt.id, tt.eventType, cause, decided, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, tt.file, got)

			// The golden file decodes back into the same data.
			want := mustRead(t, filepath.Join("testdata", tt.file))
			env, err := events.DecodeEnvelope(events.Subject(tt.eventType, testShop), want)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(reflect.TypeOf(tt.data))
			if err := json.Unmarshal(env.Data, back.Interface()); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalise(back.Elem().Interface()), normalise(tt.data)) {
				t.Errorf("decoded %+v, want %+v", back.Elem().Interface(), tt.data)
			}
		})
	}
}

// normalise makes nil and empty lists compare equal, as the outcome types write nil as [].
func normalise(v any) any {
	switch x := v.(type) {
	case events.Credit:
		if len(x.Errors) == 0 {
			x.Errors = nil
		}
		if len(x.Reasons) == 0 {
			x.Reasons = nil
		}
		return x
	case events.Shipment:
		if len(x.Errors) == 0 {
			x.Errors = nil
		}
		return x
	}
	return v
}

// TestInvoicePrintDataJSON: invoice.ok's invoice holds the print fields themselves, each by its
// ATODENE element name as a string, with the detail lines under details (an array of objects of
// strings), as the contract has it; reading it gives Fields and Details back. The nested form
// the worker wrote before ({"fields": {...}, "details": [...]}, testdata/invoice.ok.nested.json),
// which invoice.ok outcomes stored in RESULTS still hold, reads the same.
func TestInvoicePrintDataJSON(t *testing.T) {
	t.Parallel()
	want := events.Invoice{ShopID: testShop, OrderID: "100000123", TransactionID: "12345678901",
		Invoice: &events.InvoicePrintData{
			Fields: map[string]string{
				"zip": "150-0001", "address1": "東京都渋谷区神宮前1-1-1", "name": "加藤 太郎",
				"billedAmount": "3,155円", "billedFeeTax": "内消費税：286円", "billDeadlineDate": "2026年12月11日",
				"transactionId": "12345678901", "invoiceBarcode": strings.Repeat("9", 44),
			},
			Details: []map[string]string{
				{"goods": "緑茶ティーバッグ 50包", "goodsAmount": "2", "goodsPrice": "1,200", "goodsSubtotal": "2,400"},
				{"goods": "送料 & 手数料 <税込>", "goodsAmount": "1", "goodsPrice": "755", "goodsSubtotal": "755"},
			},
		}}
	body, err := events.NewOutcome("id-1", events.TypeInvoiceOK, "cause-1", time.Now(), want)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Data struct {
			Invoice map[string]json.RawMessage `json:"invoice"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	inv := env.Data.Invoice
	if len(inv) != len(want.Invoice.Fields)+1 {
		t.Errorf("invoice holds %d keys, want the %d print fields and details: %s", len(inv), len(want.Invoice.Fields), body)
	}
	for name, v := range want.Invoice.Fields {
		var s string
		if err := json.Unmarshal(inv[name], &s); err != nil || s != v {
			t.Errorf("invoice.%s = %s, want the string %q", name, inv[name], v)
		}
	}
	var details []map[string]string
	if err := json.Unmarshal(inv["details"], &details); err != nil || !reflect.DeepEqual(details, want.Invoice.Details) {
		t.Errorf("invoice.details = %s, want the lines as objects of strings (%v)", inv["details"], err)
	}

	for _, f := range []string{"invoice.ok.golden.json", "invoice.ok.nested.json"} {
		var e struct {
			Data events.Invoice `json:"data"`
		}
		if err := json.Unmarshal(mustRead(t, filepath.Join("testdata", f)), &e); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if !reflect.DeepEqual(e.Data, want) {
			t.Errorf("%s reads as %+v, want %+v", f, e.Data.Invoice, want.Invoice)
		}
	}

	// No lines: details is [], and reads back as no fields and no lines.
	empty, err := json.Marshal(events.InvoicePrintData{})
	if err != nil || string(empty) != `{"details":[]}` {
		t.Errorf("no print data: %s %v", empty, err)
	}
	var back events.InvoicePrintData
	if err := json.Unmarshal(empty, &back); err != nil || len(back.Fields) != 0 || len(back.Details) != 0 {
		t.Errorf("no print data read back: %+v %v", back, err)
	}
	// What is not the contract's is refused: a print field that is not a string, a field that
	// would take the detail lines' place.
	for _, bad := range []string{`{"zip": 1500001, "details": []}`, `{"zip": "1", "details": "x"}`, `{"zip": "1", "details": [{"goods": 1}]}`, `[]`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s read as %+v", bad, back)
		}
	}
	if b, err := json.Marshal(events.InvoicePrintData{Fields: map[string]string{"details": "x"}}); err == nil {
		t.Errorf("a print field named details written as %s", b)
	}
}
