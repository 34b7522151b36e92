package console

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/japanese"

	"github.com/atodene-worker/atodene-worker/internal/ordercsv"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// TestCSVExport: UTF-8 with a byte order mark, and Shift_JIS (CP932) that decodes back to the same
// text; an order Shift_JIS cannot hold writes nothing.
func TestCSVExport(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 30, 5, 18, 55, 0, time.UTC)
	orders := []orderstate.Summary{
		{Shop: "demo", OrderID: "A-1", Status: orderstate.StatusOK, TransactionID: "10000000001", Fee: 205, BilledAmount: 3155,
			Shipment: orderstate.ShipmentReported, OrderedAt: at, ChangedAt: at.Add(time.Minute)},
		{Shop: "demo", OrderID: "注文-2", Status: orderstate.StatusPending, Review: "hold", Fee: 205, BilledAmount: 2950, OrderedAt: at},
		{Shop: "demo", OrderID: "N-3"},
	}
	want := "order_id,status,review,transaction_id,fee,billed_amount,shipment,ordered_at,changed_at\r\n" +
		"A-1,ok,,10000000001,205,3155,reported,2026-11-30 14:18:55,2026-11-30 14:19:55\r\n" +
		"注文-2,pending,hold,,205,2950,,2026-11-30 14:18:55,-\r\n" +
		"N-3,none,,,0,0,,-,-\r\n"

	var utf8 bytes.Buffer
	if err := CSVExport(&utf8, orders, false); err != nil {
		t.Fatal(err)
	}
	if b := utf8.Bytes(); !bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}) || string(b[3:]) != want {
		t.Errorf("UTF-8:\n% x\n%s", b[:min(len(b), 8)], b)
	}

	var sjis bytes.Buffer
	if err := CSVExport(&sjis, orders, true); err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(sjis.Bytes(), []byte{0xEF, 0xBB, 0xBF}) || !bytes.Contains(sjis.Bytes(), []byte{0x92, 0x8D, 0x95, 0xB6}) { // 注文 in CP932
		t.Errorf("Shift_JIS: % x", sjis.Bytes())
	}
	decoded, err := japanese.ShiftJIS.NewDecoder().Bytes(sjis.Bytes())
	if err != nil || string(decoded) != want {
		t.Errorf("Shift_JIS decoded: %v\n%s", err, decoded)
	}

	var none bytes.Buffer
	err = CSVExport(&none, append(orders, orderstate.Summary{Shop: "demo", OrderID: "E-1", TransactionID: "🙂"}), true)
	var ue *ordercsv.UnencodableError
	if !errors.As(err, &ue) || ue.Order != "E-1" || ue.Column != "transaction_id" || none.Len() != 0 {
		t.Errorf("an order Shift_JIS cannot hold: %v, %d bytes written", err, none.Len())
	}
	if !strings.Contains(err.Error(), "Shift_JIS (CP932) cannot hold") {
		t.Errorf("its error: %v", err)
	}
}
