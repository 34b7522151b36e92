package sandbox_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCancelledTransactionAnswersEr000033(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.registerOK(newOrder("C-1", "taro@example.jp").set("service", "3"), "OK")
	wantOK(t, e.ship(id, "1", "11", "1234-5678-9012"))
	r := e.cancel(id)
	wantOK(t, r)
	if r.txID() != id || r.auto() != "<absent>" {
		t.Errorf("cancel answered id %s auto %s, want %s and no screening result", r.txID(), r.auto(), id)
	}
	calls := map[string]func() resp{
		"getauthori":          func() resp { return e.authori(id) },
		"shippingrequest 1":   func() resp { return e.ship(id, "1", "11", "1234-5678-9012") },
		"shippingrequest 2":   func() resp { return e.ship(id, "2", "12", "1234-5678-9013") },
		"shippingrequest 3":   func() resp { return e.ship(id, "3", "", "") },
		"modify cancel":       func() resp { return e.cancel(id) },
		"modify change":       func() resp { return e.change(id, newOrder("C-1", "taro@example.jp")) },
		"modify change, bad":  func() resp { return e.change(id, newOrder("C-1", "taro@example.jp").set("zip", "x")) },
		"getinvoicedata":      func() resp { return e.invoice(id) },
		"shipment, bad type":  func() resp { return e.ship(id, "9", "", "") },
		"modify, bad flag":    func() resp { return e.post("modifytransaction", doc(linkXML(e.shop), txRef(id))) },
		"getauthori, again":   func() resp { return e.authori(id) },
		"getinvoice, again":   func() resp { return e.invoice(id) },
		"shipment, bad slip":  func() resp { return e.ship(id, "1", "11", "x") },
		"change without data": func() resp { return e.post("modifytransaction", doc(linkXML(e.shop), txRef(id))) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			wantNG(t, call(), "transactionId:er000033")
		})
	}
	v := e.transactions("C-1")[0]
	if v.State != "cancelled" || v.Calls["modifytransaction"] != 6 || v.Calls["getauthori"] != 2 {
		t.Errorf("view %+v, want cancelled with 6 modify and 2 getauthori calls", v)
	}
}

func TestUnknownTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, id := range []string{"12345678901", "99999999999"} {
		wantNG(t, e.authori(id), "transactionId:er000002")
		wantNG(t, e.cancel(id), "transactionId:er000002")
		wantNG(t, e.ship(id, "1", "11", "12345"), "transactionId:er000002")
		wantNG(t, e.invoice(id), "transactionId:er000002")
		wantNG(t, e.change(id, newOrder("A-1", "taro@example.jp")), "transactionId:er000002")
	}
	wantNG(t, e.authori(""), "transactionId:er000001")
	wantNG(t, e.authori("12a"), "transactionId:er000001")
}

func TestShipment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.registerOK(newOrder("S-1", "taro@example.jp"), "OK")
	steps := []struct {
		name                  string
		typ, company, slip    string
		want                  []string // nil: OK
		wantType, wantCompany string   // the report afterwards; "" none
	}{
		{"change before any report", "2", "11", "1111-2222-3333", []string{"deliveryType:er000303"}, "", ""},
		{"cancel before any report", "3", "", "", []string{"deliveryType:er000303"}, "", ""},
		{"unknown carrier 17", "1", "17", "1111-2222-3333", []string{"deliveryCompanyCode:er000304"}, "", ""},
		{"carrier of three digits", "1", "111", "1111-2222-3333", []string{"deliveryCompanyCode:er000001"}, "", ""},
		{"bad slip and type", "4", "11", "abc", []string{"deliveryType:er000001", "deliverySlipNo:er000001"}, "", ""},
		{"missing company and slip", "1", "", "", []string{"deliveryCompanyCode:er000001", "deliverySlipNo:er000001"}, "", ""},
		{"report", "1", "11", "1111-2222-3333", nil, "1", "11"},
		{"second report", "1", "12", "1111-2222-3334", []string{"deliveryType:er000302"}, "1", "11"},
		{"change", "2", "32", "9999-8888-7777", nil, "2", "32"},
		{"cancel with empty company and slip", "3", "", "", nil, "", ""},
		{"cancel again", "3", "", "", []string{"deliveryType:er000303"}, "", ""},
		{"report again after cancel", "1", "16", "123456789012", nil, "1", "16"},
	}
	for _, st := range steps {
		r := e.ship(id, st.typ, st.company, st.slip)
		if st.want == nil {
			wantOK(t, r)
			if r.txID() != id {
				t.Fatalf("%s: answered id %q", st.name, r.txID())
			}
		} else {
			wantNG(t, r, st.want...)
		}
		v := e.transactions("S-1")[0]
		gotType, gotCompany := "", ""
		if v.Shipment != nil {
			gotType, gotCompany = v.Shipment.DeliveryType, v.Shipment.DeliveryCompanyCode
		}
		if gotType != st.wantType || gotCompany != st.wantCompany {
			t.Fatalf("%s: report %s/%s, want %s/%s", st.name, gotType, gotCompany, st.wantType, st.wantCompany)
		}
	}
}

func TestShipmentNeedsOKDecision(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, email := range []string{"ng@example.jp", "review-ok@example.jp", "hold@example.jp"} {
		id := e.registerOK(newOrder("S-"+email[:2], email), map[bool]string{true: "NG", false: "審査中"}[email[:2] == "ng"])
		wantNG(t, e.ship(id, "1", "11", "1111-2222-3333"), "transactionId:er000301")
	}
	// Once the review says OK, the report is accepted.
	id := e.registerOK(newOrder("S-late", "review-ok@example.jp"), "審査中")
	e.clock.Advance(reviewDelay)
	wantOK(t, e.ship(id, "1", "11", "1111-2222-3333"))
}

func TestChange(t *testing.T) {
	t.Parallel()
	t.Run("address only keeps the decision and answers an empty autoAuthoriresult", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		id := e.registerOK(newOrder("M-1", "review-ok@example.jp"), "審査中")
		e.clock.Advance(reviewDelay / 2)
		moved := newOrder("M-1-base", "review-ok@example.jp").set("zip", "1000001", "address", "東京都千代田区千代田1-1",
			"shipZip", "100-0001", "shipAddress", "東京都千代田区千代田1-1")
		r := e.change(id, moved)
		wantOK(t, r)
		if r.txID() != id || r.auto() != "" {
			t.Fatalf("change answered id %s auto %q, want %s and empty", r.txID(), r.auto(), id)
		}
		e.clock.Advance(reviewDelay / 2) // the review clock did not restart
		if r := e.authori(id); r.auto() != "審査中" || r.manual() != "OK" {
			t.Errorf("after the review delay: auto %s manual %s, want 審査中 OK", r.auto(), r.manual())
		}
		if v := e.transactions("M-1"); len(v) != 1 || v[0].ShopOrderID != "M-1" {
			t.Errorf("transaction should keep its registered shopOrderId: %+v", v)
		}
	})
	t.Run("an unchanged order is not re-screened", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		id := e.registerOK(newOrder("M-1", "taro@example.jp"), "OK")
		if r := e.change(id, newOrder("M-1", "taro@example.jp")); r.auto() != "" {
			t.Errorf("auto %q, want empty", r.auto())
		}
	})
	t.Run("re-screen", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		id := e.registerOK(newOrder("M-1", "taro@example.jp"), "OK")
		steps := []struct {
			order    *testOrder
			auto     string
			decision string
		}{
			{newOrder("M-1", "taro@example.jp").withLines(line{"品", 2000, 2}), "OK", "OK"},
			{newOrder("M-1", "taro@example.jp").withLines(line{"品", 60000, 1}), "NG", "NG"},
			{newOrder("M-1", "taro@example.jp"), "OK", "OK"},
			{newOrder("M-1", "ng@example.jp"), "NG", "NG"},
			{newOrder("M-1", "review-ok@example.jp"), "審査中", "審査中"},
		}
		for i, st := range steps {
			r := e.change(id, st.order)
			wantOK(t, r)
			if r.auto() != st.auto {
				t.Fatalf("step %d: auto %q, want %q", i, r.auto(), st.auto)
			}
			if d := e.transactions("M-1")[0].Decision; d != st.decision {
				t.Fatalf("step %d: decision %s, want %s", i, d, st.decision)
			}
		}
		// A re-screen into review restarts the review clock.
		e.clock.Advance(reviewDelay - 1)
		wantOK(t, e.change(id, newOrder("M-1", "review-ng@example.jp")))
		e.clock.Advance(reviewDelay - 1)
		if r := e.authori(id); r.manual() != "" {
			t.Fatalf("review finished early: manual %q", r.manual())
		}
		e.clock.Advance(1)
		if r := e.authori(id); r.manual() != "NG" {
			t.Fatalf("manual %q, want NG after the restarted review", r.manual())
		}
	})
	t.Run("an NG transaction whose order was registered again is not revived", func(t *testing.T) {
		// The duplicate rule holds through changes: re-screening the NG transaction A to OK while B,
		// registered since under the same shopOrderId, is live would give the order two live
		// transactions that both accept a shipment report (and bill twice).
		t.Parallel()
		e := newEnv(t)
		idA := e.registerOK(newOrder("REVIVE-1", "ng-taro@example.jp"), "NG")
		idB := e.registerOK(newOrder("REVIVE-1", "taro@example.jp"), "OK") // allowed: A is NG
		wantNG(t, e.change(idA, newOrder("REVIVE-1", "taro@example.jp")), "shopOrderId:er000101")
		live := 0
		for _, v := range e.transactions("REVIVE-1") {
			if v.State == "active" && v.Decision != "NG" {
				live++
			}
		}
		if live != 1 {
			t.Errorf("shopOrderId REVIVE-1 has %d live transactions after the change of NG %s; want 1 (%s)", live, idA, idB)
		}
		shipA, shipB := e.ship(idA, "1", "12", "1234-5678"), e.ship(idB, "1", "12", "1234-5679")
		if shipA.Result == "OK" && shipB.Result == "OK" {
			t.Errorf("both transactions %s and %s of REVIVE-1 accepted a shipment report", idA, idB)
		}
		// An address-only change is not re-screened, so it cannot revive A: it is accepted.
		moved := newOrder("REVIVE-1", "ng-taro@example.jp").set("zip", "1000001", "address", "東京都千代田区千代田1-1")
		if r := e.change(idA, moved); r.Result != "OK" || r.auto() != "" {
			t.Errorf("address-only change of NG %s: %s auto %q, want OK and empty", idA, r.Result, r.auto())
		}
		// Once B is cancelled, A may be changed (and re-screened) again.
		wantOK(t, e.cancel(idB))
		if r := e.change(idA, newOrder("REVIVE-1", "taro@example.jp")); r.Result != "OK" || r.auto() != "OK" {
			t.Errorf("change of %s after %s was cancelled: %s auto %q, want OK OK", idA, idB, r.Result, r.auto())
		}
	})
	t.Run("validated like a registration", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		id := e.registerOK(newOrder("M-1", "taro@example.jp"), "OK")
		wantNG(t, e.change(id, newOrder("M-1", "taro@example.jp").set("tel", "", "billedAmount", "1")),
			"tel:er000001", "billedAmount:er000011")
		// 16 empty rows: each row's errors, then the row count.
		want := slices.Repeat([]string{"goods:er000001", "goodsAmount:er000001"}, 16)
		wantNG(t, e.change(id, newOrder("M-1", "taro@example.jp").withLines(make([]line, 16)...)),
			append(want, "details:er000010")...)
		wantNG(t, e.post("modifytransaction", doc(linkXML(e.shop),
			"<transactionInfo><updateTypeFlag>2</updateTypeFlag><transactionId>"+id+"</transactionId></transactionInfo>")),
			"customer:er000006", "ship:er000006", "details:er000006")
		wantNG(t, e.post("modifytransaction", doc(linkXML(e.shop),
			"<transactionInfo><updateTypeFlag>3</updateTypeFlag><transactionId>"+id+"</transactionId></transactionInfo>")),
			"updateTypeFlag:er000001")
		if d := e.transactions("M-1")[0]; d.Decision != "OK" || d.BilledAmount != 3055 {
			t.Errorf("a refused change altered the transaction: %+v", d)
		}
	})
}

func TestInvoice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	separate := e.registerOK(newOrder("I-1", "taro@example.jp"), "OK")
	wantNG(t, e.invoice(separate), "service:er000201")
	review := e.registerOK(newOrder("I-2", "review-ng@example.jp").set("service", "3"), "審査中")
	wantNG(t, e.invoice(review), "transactionId:er000202")
	ngSeparate := e.registerOK(newOrder("I-3", "ng@example.jp"), "NG")
	wantNG(t, e.invoice(ngSeparate), "transactionId:er000202", "service:er000201")

	id := e.registerOK(newOrder("I-4", "taro@example.jp").set("service", "3").withLines(
		line{"<特選> 緑茶 & 煎茶", 1200, 2}, line{"送料", 550, 1}, line{"後払い手数料", 205, 1}), "OK")
	r := e.invoice(id)
	wantOK(t, r)
	inv := r.Invoice
	if inv == nil || r.Tx != nil {
		t.Fatalf("OK answer without invoiceInfo, or with transactionInfo")
	}
	want := map[string]string{
		"zip": "150-0001", "address1": "東京都渋谷区神宮前", "address2": "1-1-1", "name": "加藤 太郎",
		"shopOrderId": "I-4", "transactionId": id, "billedAmount": "3155円", "billedFeeTax": "内消費税：286円",
		"shopOrderDate": "2026年11月26日", "billSendDate": "2026年11月26日", "billDeadlineDate": "2026年12月10日",
		"billState1": "ご請求書", "bankAccountKind": "（普通）", "revenueStampRequired": "収入印紙不要",
		"docketbilledAmount": "3155円", "voucherBilledAmount": "3155円", "expand16": "*",
		"receiptName": "加藤 太郎", "docketTransactionId": id, "voucherTransactionId": id,
	}
	for name, value := range want {
		if c := inv.child(name); c == nil || c.Text != value {
			t.Errorf("%s = %v, want %q", name, c, value)
		}
	}
	if bc := inv.child("invoiceBarcode"); bc == nil || !regexp.MustCompile(`^\d{44}$`).MatchString(bc.Text) {
		t.Errorf("invoiceBarcode %v, want 44 digits", bc)
	}
	for _, name := range invoiceElements {
		if inv.child(name) == nil {
			t.Errorf("invoiceInfo lacks %s", name)
		}
	}
	details := inv.child("details")
	if details == nil || len(details.Children) != 3 {
		t.Fatalf("details %+v, want 3 lines", details)
	}
	first := details.Children[0]
	for name, value := range map[string]string{"goods": "<特選> 緑茶 & 煎茶", "goodsAmount": "2", "goodsPrice": "1,200", "goodsSubtotal": "2,400"} {
		if c := first.child(name); c == nil || c.Text != value {
			t.Errorf("first line %s = %v, want %q", name, c, value)
		}
	}
	if first.child("goodsExpand") == nil {
		t.Error("detail lacks goodsExpand")
	}
	// The shipment's invoiceDate, when given before the first call, is the send date; after it, the
	// first call's dates stand (it fixed the payment deadline).
	ship := func(id string) {
		ti := "<transactionInfo>" + elems("deliveryType", "1", "transactionId", id, "deliveryCompanyCode", "12",
			"deliverySlipNo", "1234-5678", "invoiceDate", "2026/12/01") + "</transactionInfo>"
		wantOK(t, e.post("shippingrequest", doc(linkXML(e.shop), ti)))
	}
	shippedFirst := e.registerOK(newOrder("I-5", "taro@example.jp").set("service", "3"), "OK")
	for _, tc := range []struct{ id, want string }{{shippedFirst, "2026年12月1日 2026年12月15日"}, {id, "2026年11月26日 2026年12月10日"}} {
		ship(tc.id)
		inv = e.invoice(tc.id).Invoice
		if got := inv.child("billSendDate").Text + " " + inv.child("billDeadlineDate").Text; got != tc.want {
			t.Errorf("%s: send and deadline dates %q, want %q", tc.id, got, tc.want)
		}
	}
}

// invoiceElements are the element names of docs/protocol.md#invoice-print-data.
var invoiceElements = strings.Fields(`zip address1 address2 companyName sectionName name siteNameTitle siteName
	shopOrderIdTitle shopOrderId descriptionText1 descriptionText2 descriptionText3 descriptionText4 descriptionText5
	billServiceName billServiceInfo1 billServiceInfo2 billServiceInfo3 billServiceInfo4 billState1
	billFirstGreet1 billFirstGreet2 billFirstGreet3 billFirstGreet4
	expand1 expand2 expand3 expand4 expand5 expand6 expand7 expand8 expand9 expand10
	billedAmountTitle billedAmount billedFeeTax billOrderdayTitle shopOrderDate billSendDateTitle billSendDate
	billDeadlineDateTitle billDeadlineDate transactionIdTitle transactionId billBankInfomation
	bankNameTitle bankName bankCode branchNameTitle branchName branchCode
	bankAccountNumberTitle bankAccountKind bankAccountNumber bankAccountNameTitle bankAccountName
	receiptBillDeadlineDate receiptName invoiceBarcode receiptCompanyTitle receiptCompany docketbilledAmount
	docketCompanyName docketSectionName docketName docketTransactionIdTitle docketTransactionId
	voucherCompanyName voucherSectionName voucherCustomerFullName voucherTransactionIdTitle voucherTransactionId
	voucherBilledAmount voucherBilledFeeTax revenueStampRequired goodsTitle goodsAmountTitle goodsPriceTitle
	goodsSubtotalTitle details detailInfomation expand11 expand12 expand13 expand14 expand15 expand16
	expand17 expand18 expand19 expand20`)

// TestInvoiceDatesFixedByTheFirstCall: getinvoicedata.do fixes the invoice's payment deadline
// (docs/protocol.md#invoice-print-data): a call three days later answers the dates and barcode of the
// first (an invoice may be in its parcel with them), where the sandbox computed them anew each time.
func TestInvoiceDatesFixedByTheFirstCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.registerOK(newOrder("INV-FIXED", "taro@example.jp").set("service", "3"), "OK")
	first := e.invoice(id)
	wantOK(t, first)
	e.clock.Advance(3 * 24 * time.Hour)
	second := e.invoice(id)
	wantOK(t, second)
	for _, name := range []string{"billSendDate", "billDeadlineDate", "receiptBillDeadlineDate", "invoiceBarcode"} {
		a, b := first.Invoice.child(name).Text, second.Invoice.child(name).Text
		if a != b {
			t.Errorf("%s: first call %q, a call 3 days later %q: the deadline the first call fixed has moved", name, a, b)
		}
	}
}
