package clienttest

import (
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// TestCallsOnCancelledTransaction checks that after a cancel every operation on the transaction is
// refused with er000033, which errors.Is matches as ErrAlreadyCancelled, and that none is retried.
func TestCallsOnCancelledTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := newOrder("C-1", "taro@example.jp", 3000)
	o.Service = atodene.ServiceEnclosed
	reg := e.register(o)
	if err := e.client.Cancel(t.Context(), reg.TransactionID); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if v := e.onlyTransaction("C-1"); v.State != "cancelled" {
		t.Fatalf("admin view after Cancel: %+v, want state cancelled", v)
	}

	ctx, id := t.Context(), reg.TransactionID
	calls := []struct {
		name string
		call func() error
	}{
		{"GetAuthori", func() error { _, err := e.client.GetAuthori(ctx, id); return err }},
		{"Modify", func() error {
			_, err := e.client.Modify(ctx, id, request(newOrder("C-1", "taro@example.jp", 4000)))
			return err
		}},
		{"ReportShipment", func() error {
			return e.client.ReportShipment(ctx, atodene.Shipment{Type: atodene.DeliveryNew, TransactionID: id, CarrierCode: "12", SlipNo: "1234-5678-9012"})
		}},
		{"InvoiceData", func() error { _, err := e.client.InvoiceData(ctx, id); return err }},
		{"Cancel again", func() error { return e.client.Cancel(ctx, id) }},
	}
	for _, c := range calls {
		err := c.call()
		if !errors.Is(err, atodene.ErrAlreadyCancelled) || errors.Is(err, atodene.ErrAlreadyRegistered) {
			t.Errorf("%s on a cancelled transaction: %v, want ErrAlreadyCancelled", c.name, err)
			continue
		}
		wantRejected(t, err, "transactionId", atodene.CodeAlreadyCancelled)
	}

	v := e.onlyTransaction("C-1")
	want := map[string]int{"transaction": 1, "getauthori": 1, "modifytransaction": 3, "shippingrequest": 1, "getinvoicedata": 1}
	for op, n := range want {
		if v.Calls[op] != n {
			t.Errorf("admin counts %d %s calls, want %d (calls %v)", v.Calls[op], op, n, v.Calls)
		}
	}
	if v.State != "cancelled" || v.BilledAmount != 3000 || v.Shipment != nil {
		t.Errorf("a refused call changed the cancelled transaction: %+v", v)
	}
}

// TestShipmentReport walks a shipment report through new, a refused second new, change and cancel,
// checking the admin API after each, and checks that a transaction that is not OK cannot be reported.
func TestShipmentReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	reg := e.register(newOrder("SH-1", "taro@example.jp", 3000))
	report := atodene.Shipment{
		Type: atodene.DeliveryNew, TransactionID: reg.TransactionID, CarrierCode: "12", SlipNo: "1234-5678-9012",
		InvoiceDate: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
	}
	if err := e.client.ReportShipment(ctx, report); err != nil {
		t.Fatalf("new report: %v", err)
	}
	want := sandbox.ShipmentView{DeliveryType: "1", DeliveryCompanyCode: "12", DeliverySlipNo: "1234-5678-9012", InvoiceDate: "2026/11/27"}
	if v := e.onlyTransaction("SH-1"); v.Shipment == nil || *v.Shipment != want {
		t.Fatalf("admin shipment %+v, want %+v", v.Shipment, want)
	}

	second := report
	second.SlipNo = "9999-0000-1111"
	err := e.client.ReportShipment(ctx, second)
	wantRejected(t, err, "deliveryType", sandbox.CodeAlreadyShipped)
	if v := e.onlyTransaction("SH-1"); v.Shipment == nil || *v.Shipment != want {
		t.Fatalf("a refused second report changed the shipment: %+v", v.Shipment)
	}

	change := atodene.Shipment{Type: atodene.DeliveryChange, TransactionID: reg.TransactionID, CarrierCode: "11", SlipNo: "4000-1111-2222"}
	if err := e.client.ReportShipment(ctx, change); err != nil {
		t.Fatalf("change: %v", err)
	}
	want = sandbox.ShipmentView{DeliveryType: "2", DeliveryCompanyCode: "11", DeliverySlipNo: "4000-1111-2222"}
	if v := e.onlyTransaction("SH-1"); v.Shipment == nil || *v.Shipment != want {
		t.Fatalf("admin shipment after change %+v, want %+v", v.Shipment, want)
	}

	if err := e.client.ReportShipment(ctx, atodene.Shipment{Type: atodene.DeliveryCancel, TransactionID: reg.TransactionID}); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	v := e.onlyTransaction("SH-1")
	if v.Shipment != nil {
		t.Fatalf("admin shipment after cancel %+v, want none", v.Shipment)
	}
	if v.Calls["shippingrequest"] != 4 {
		t.Errorf("admin counts %d shippingrequest calls, want 4", v.Calls["shippingrequest"])
	}
	// With the report cancelled, a change has nothing to change, and a new report is accepted again.
	wantRejected(t, e.client.ReportShipment(ctx, change), "deliveryType", sandbox.CodeNoShipment)
	if err := e.client.ReportShipment(ctx, report); err != nil {
		t.Fatalf("new report after cancel: %v", err)
	}

	// A transaction under review, or declined, is refused.
	for _, email := range []string{"review-ok@example.jp", "ng@example.jp"} {
		id := "SH-" + email[:2]
		r := e.register(newOrder(id, email, 3000))
		err := e.client.ReportShipment(ctx, atodene.Shipment{Type: atodene.DeliveryNew, TransactionID: r.TransactionID, CarrierCode: "12", SlipNo: "1234-5678-9012"})
		wantRejected(t, err, "transactionId", sandbox.CodeShipNotOK)
		if v := e.onlyTransaction(id); v.Shipment != nil {
			t.Errorf("%s: a refused report was kept: %+v", email, v.Shipment)
		}
	}
	// An unknown carrier is refused by the sandbox (the client only checks the two digits).
	bad := atodene.Shipment{Type: atodene.DeliveryNew, TransactionID: reg.TransactionID, CarrierCode: "17", SlipNo: "1234-5678-9012"}
	wantRejected(t, e.client.ReportShipment(ctx, bad), "deliveryCompanyCode", sandbox.CodeUnknownCarrier)
}

// TestModify checks that a change that touches only the addresses keeps the decision (an empty
// autoAuthoriresult, DecisionNone), and that any other change screens the order again.
func TestModify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		change   func(o *atodene.Order)
		auto     atodene.Decision
		decision string // the admin API's decision afterwards
	}{
		{"address only", func(o *atodene.Order) {
			o.Buyer.Zip, o.Buyer.Address = "5300001", "大阪府大阪市北区梅田1-1-1"
		}, atodene.DecisionNone, "OK"},
		{"consignee address only", func(o *atodene.Order) {
			to := o.Buyer
			to.Address = "東京都港区芝公園4-2-8"
			o.ShipTo = &to
		}, atodene.DecisionNone, "OK"},
		{"amount within the limit", func(o *atodene.Order) { *o = newOrder(o.ShopOrderID, o.Buyer.Email, 5000) }, atodene.DecisionOK, "OK"},
		{"amount above the limit", func(o *atodene.Order) { *o = newOrder(o.ShopOrderID, o.Buyer.Email, 60000) }, atodene.DecisionNG, "NG"},
		{"buyer sent to review", func(o *atodene.Order) { o.Buyer.Email = "review-ng@example.jp" }, atodene.DecisionReview, "審査中"},
		{"name", func(o *atodene.Order) { o.Buyer.Name = "加藤 花子" }, atodene.DecisionOK, "OK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			o := newOrder("M-1", "taro@example.jp", 3000)
			reg := e.register(o)
			tt.change(&o)
			ch, err := e.client.Modify(t.Context(), reg.TransactionID, request(o))
			if err != nil {
				t.Fatalf("Modify: %v", err)
			}
			if ch.TransactionID != reg.TransactionID || ch.Auto != tt.auto {
				t.Fatalf("Modify = %+v, want transaction %s and auto %q", ch, reg.TransactionID, tt.auto)
			}
			v := e.onlyTransaction("M-1")
			if v.Decision != tt.decision || v.BilledAmount != o.BilledAmount || v.Calls["modifytransaction"] != 1 {
				t.Errorf("admin view %+v, want decision %s and billed amount %d", v, tt.decision, o.BilledAmount)
			}
			if s := e.screening(reg.TransactionID); string(s.Decision()) != tt.decision {
				t.Errorf("GetAuthori after the change: %+v, want decision %s", s, tt.decision)
			}
		})
	}

	t.Run("lower billed amount", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		o := newOrder("M-2", "taro@example.jp", 3000)
		reg := e.register(o)
		// BuildDetails balances any difference with a 割引等 line, so the sum always matches; the
		// sandbox accepts the change and re-screens.
		o.BilledAmount = 2000
		ch, err := e.client.Modify(t.Context(), reg.TransactionID, request(o))
		if err != nil || ch.Auto != atodene.DecisionOK {
			t.Fatalf("Modify = %+v, %v, want OK", ch, err)
		}
		if v := e.onlyTransaction("M-2"); v.BilledAmount != 2000 {
			t.Errorf("admin billed amount %d, want 2000", v.BilledAmount)
		}
	})
}

// TestInvoiceData checks the print data of an enclosed invoice through the client, and that the
// sandbox refuses it for a separately mailed invoice or a transaction that is not OK.
func TestInvoiceData(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := atodene.Order{
		ShopOrderID: "INV-1",
		OrderedAt:   time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC),
		Buyer: atodene.Person{
			Name: "加藤 太郎", NameKana: "カトウ タロウ", Zip: "1500001", Address: "東京都渋谷区神宮前1-1-1",
			Phone: "0312345678", Email: "taro@example.jp",
		},
		Items:       []atodene.Item{{Name: "りんご", UnitPrice: 1200, Quantity: 2}, {Name: "みかん", UnitPrice: 800, Quantity: 1}},
		ShippingFee: 500, Fee: 205, Discount: 300,
		BilledAmount: 3605, // 2400 + 800 + 500 + 205 - 300
		Service:      atodene.ServiceEnclosed,
	}
	reg := e.register(o)
	inv, err := e.client.InvoiceData(t.Context(), reg.TransactionID)
	if err != nil {
		t.Fatalf("InvoiceData: %v", err)
	}
	want := map[string]string{
		"billedAmount":        "3605円",
		"transactionId":       reg.TransactionID,
		"docketTransactionId": reg.TransactionID,
		"shopOrderId":         "INV-1",
		"name":                "加藤 太郎",
		"zip":                 "150-0001",
		"billState1":          "ご請求書",
		"billSendDate":        "2026年11月26日",
		"billDeadlineDate":    "2026年12月10日",
		"expand1":             "",
	}
	for k, w := range want {
		if got, ok := inv.Fields[k]; !ok || got != w {
			t.Errorf("invoice field %s = %q (present %v), want %q", k, got, ok, w)
		}
	}
	if bc := inv.Fields["invoiceBarcode"]; !regexp.MustCompile(`^[0-9]{44}$`).MatchString(bc) {
		t.Errorf("invoiceBarcode %q, want 44 digits", bc)
	}
	wantLines := [][2]string{{"りんご", "2,400"}, {"みかん", "800"}, {atodene.LabelShipping, "500"}, {atodene.LabelFee, "205"}, {atodene.LabelDiscount, "-300"}}
	if len(inv.Details) != len(wantLines) {
		t.Fatalf("invoice details %v, want %d lines", inv.Details, len(wantLines))
	}
	for i, w := range wantLines {
		if d := inv.Details[i]; d["goods"] != w[0] || d["goodsSubtotal"] != w[1] {
			t.Errorf("invoice line %d = %v, want goods %s, subtotal %s", i+1, d, w[0], w[1])
		}
	}
	// Later calls return the same data.
	if again, err := e.client.InvoiceData(t.Context(), reg.TransactionID); err != nil || again.Fields["invoiceBarcode"] != inv.Fields["invoiceBarcode"] {
		t.Errorf("second InvoiceData: %v, barcode %q, want %q", err, again.Fields["invoiceBarcode"], inv.Fields["invoiceBarcode"])
	}

	separate := newOrder("INV-2", "taro@example.jp", 3000)
	r := e.register(separate)
	_, err = e.client.InvoiceData(t.Context(), r.TransactionID)
	wantRejected(t, err, "service", sandbox.CodeNotEnclosed)

	review := newOrder("INV-3", "review-ok@example.jp", 3000)
	review.Service = atodene.ServiceEnclosed
	r = e.register(review)
	_, err = e.client.InvoiceData(t.Context(), r.TransactionID)
	wantRejected(t, err, "transactionId", sandbox.CodeInvoiceNotOK)
	e.clock.Advance(reviewDelay)
	if _, err := e.client.InvoiceData(t.Context(), r.TransactionID); err != nil {
		t.Errorf("InvoiceData once the review is OK: %v", err)
	}

	if v := e.onlyTransaction("INV-1"); v.Calls["getinvoicedata"] != 2 || v.Service != atodene.ServiceEnclosed {
		t.Errorf("admin view %+v, want 2 getinvoicedata calls and service 3", v)
	}
}

// TestExpiredAuthorization checks that once the sandbox's authorization lifetime has passed, the
// client's shipment report and change are refused with er000102, which errors.Is matches as
// ErrAuthorizationExpired, and that the re-authorization w2 does still works: register the order
// again under a new shopOrderId, then cancel the old transaction.
func TestExpiredAuthorization(t *testing.T) {
	t.Parallel()
	const lifetime = 88 * 24 * time.Hour
	e := newEnv(t, func(c *sandbox.Config) { c.AuthorizationLifetime = lifetime })
	ctx := t.Context()
	old := e.register(newOrder("E-1", "taro@example.jp", 3000))
	e.clock.Advance(lifetime)

	ship := atodene.Shipment{Type: atodene.DeliveryNew, TransactionID: old.TransactionID, CarrierCode: "12", SlipNo: "1234-5678-9012"}
	_, changeErr := e.client.Modify(ctx, old.TransactionID, request(newOrder("E-1", "taro@example.jp", 4000)))
	for name, err := range map[string]error{"ReportShipment": e.client.ReportShipment(ctx, ship), "Modify": changeErr} {
		if !errors.Is(err, atodene.ErrAuthorizationExpired) || errors.Is(err, atodene.ErrAlreadyCancelled) {
			t.Errorf("%s after expiry: %v, want ErrAuthorizationExpired", name, err)
			continue
		}
		wantRejected(t, err, "transactionId", atodene.CodeAuthorizationExpired)
	}
	if s, err := e.client.GetAuthori(ctx, old.TransactionID); err != nil || s.Decision() != atodene.DecisionOK {
		t.Errorf("GetAuthori after expiry: %+v %v, want OK", s, err)
	}

	renewed := e.register(newOrder("E-1-R1", "taro@example.jp", 3000))
	if err := e.client.Cancel(ctx, old.TransactionID); err != nil {
		t.Fatalf("Cancel of the expired transaction: %v", err)
	}
	ship.TransactionID = renewed.TransactionID
	if err := e.client.ReportShipment(ctx, ship); err != nil {
		t.Errorf("ReportShipment on the new transaction: %v", err)
	}
}
