package ordercsv

import (
	"bytes"
	"encoding/csv"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/japanese"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

var at = time.Date(2026, 11, 30, 5, 18, 55, 0, time.UTC)

var orders = []orderstate.Summary{
	{Shop: "demo", OrderID: "A-1", Status: orderstate.StatusPending, Review: "hold", Shipment: orderstate.ShipmentNone, TransactionID: "確認中－１",
		Fee: 205, BilledAmount: 3155, OrderedAt: at, ChangedAt: at.Add(time.Hour)},
	{Shop: "demo", OrderID: "A-2", Status: orderstate.StatusNone, Shipment: orderstate.ShipmentQueued, OrderedAt: at},
	{Shop: "demo", OrderID: "A,3", Status: orderstate.StatusPending, Shipment: orderstate.ShipmentNone, ChangedAt: at},
}

// TestUTF8: a byte order mark, the header, a row an order, CRLF, quotes only where needed.
func TestUTF8(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := Write(&b, UTF8, orders); err != nil {
		t.Fatal(err)
	}
	want := "\uFEFForder_id,status,review,transaction_id,fee,billed_amount,shipment,ordered_at,changed_at\r\n" +
		"A-1,pending,hold,確認中－１,205,3155,none,2026-11-30 14:18:55,2026-11-30 15:18:55\r\n" +
		"A-2,none,,,0,0,queued,2026-11-30 14:18:55,-\r\n" +
		"\"A,3\",pending,review,,0,0,none,-,2026-11-30 14:18:55\r\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(b.String(), "\uFEFF"))).ReadAll()
	if err != nil || !slices.Equal(recs[0], Header) || !slices.Equal(recs[1], Record(orders[0])) {
		t.Errorf("read back: %v %v", recs, err)
	}
}

// TestShiftJIS: the same text in CP932, no byte order mark; a character CP932 cannot hold is an
// error naming the order and the column, and nothing is written.
func TestShiftJIS(t *testing.T) {
	t.Parallel()
	var utf, sjis bytes.Buffer
	if err := Write(&utf, UTF8, orders); err != nil {
		t.Fatal(err)
	}
	if err := Write(&sjis, ShiftJIS, orders); err != nil {
		t.Fatal(err)
	}
	decoded, err := japanese.ShiftJIS.NewDecoder().Bytes(sjis.Bytes())
	if err != nil || "\uFEFF"+string(decoded) != utf.String() || bytes.Contains(sjis.Bytes(), []byte("確認中")) {
		t.Errorf("Shift_JIS: %v\n%q", err, decoded)
	}
	var out bytes.Buffer
	bad := append(slices.Clone(orders), orderstate.Summary{Shop: "emoji", OrderID: "E-1", Status: orderstate.StatusOK, TransactionID: "🙂"})
	err = Write(&out, ShiftJIS, bad)
	var ue *UnencodableError
	if !errors.As(err, &ue) || ue.Order != "E-1" || ue.Column != "transaction_id" || !strings.HasPrefix(err.Error(), "order E-1 of shop emoji: transaction_id") || out.Len() != 0 {
		t.Errorf("an emoji: %v, %d bytes written", err, out.Len())
	}
	if err := Write(&out, UTF8, bad); err != nil || !strings.Contains(out.String(), "🙂") {
		t.Errorf("an emoji in UTF-8: %v", err)
	}
	if _, err := NewWriter(&out, "latin1"); err == nil {
		t.Error("latin1 accepted")
	}
}

// TestFormulaLikeFieldsAreText: an order ID or a transaction ID that a spreadsheet would read as
// a formula ("-1-2" shows as -3, "=HYPERLINK(…)" is a link) is written behind a ', in both
// encodings; the "-" of an unknown time and an ID with a sign inside are written as they are.
func TestFormulaLikeFieldsAreText(t *testing.T) {
	t.Parallel()
	odd := []orderstate.Summary{
		{Shop: "demo", OrderID: "-1-2", TransactionID: "=1+1", Status: orderstate.StatusOK, Shipment: orderstate.ShipmentNone},
		{Shop: "demo", OrderID: "+81", TransactionID: "@SUM(A1)", Status: orderstate.StatusOK, Shipment: orderstate.ShipmentNone},
		{Shop: "demo", OrderID: "\tA", Status: orderstate.StatusOK, Shipment: orderstate.ShipmentNone},
		{Shop: "demo", OrderID: "A-1=2", Status: orderstate.StatusOK, Shipment: orderstate.ShipmentNone, OrderedAt: at},
	}
	want := [][]string{
		{"'-1-2", "'=1+1", "-"},
		{"'+81", "'@SUM(A1)", "-"},
		{"'\tA", "", "-"},
		{"A-1=2", "", "2026-11-30 14:18:55"},
	}
	for _, enc := range []Encoding{UTF8, ShiftJIS} {
		var b bytes.Buffer
		if err := Write(&b, enc, odd); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(b.String(), "\uFEFF"))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			if got := []string{recs[i+1][0], recs[i+1][3], recs[i+1][7]}; !slices.Equal(got, w) {
				t.Errorf("%s: row %d: order_id, transaction_id, ordered_at = %q, want %q", enc, i+1, got, w)
			}
		}
	}
	// Record itself is what the order index holds, for scripts (order ls -csv).
	if got := Record(odd[0])[0]; got != "-1-2" {
		t.Errorf("Record: order_id %q, want -1-2", got)
	}
}
