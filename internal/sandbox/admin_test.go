package sandbox_test

import (
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

func TestAdminTransactions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if v := e.transactions("none"); v == nil || len(v) != 0 {
		t.Fatalf("unknown order: %v, want an empty array", v)
	}
	id := e.registerOK(newOrder("T-1", "taro@example.jp"), "OK")
	e.registerOK(newOrder("T-2", "taro@example.jp"), "OK")
	e.authori(id)
	e.authori(id)
	wantOK(t, e.ship(id, "1", "12", "1234-5678"))
	v := e.transactions("T-1")
	if len(v) != 1 {
		t.Fatalf("%d transactions, want 1", len(v))
	}
	got := v[0]
	if got.TransactionID != id || got.ShopCode != sandbox.DemoShop.ShopCode || got.ShopOrderID != "T-1" ||
		got.State != "active" || got.Decision != "OK" || got.Registrations != 1 || got.BilledAmount != 3055 || got.Service != "2" {
		t.Errorf("view %+v", got)
	}
	if got.Shipment == nil || *got.Shipment != (sandbox.ShipmentView{DeliveryType: "1", DeliveryCompanyCode: "12", DeliverySlipNo: "1234-5678"}) {
		t.Errorf("shipment %+v", got.Shipment)
	}
	if c := got.Calls; c["transaction"] != 1 || c["getauthori"] != 2 || c["shippingrequest"] != 1 || len(c) != 3 {
		t.Errorf("calls %v", c)
	}
	var all []sandbox.TransactionView
	e.admin("GET", "/sandbox/transactions", "", &all)
	if len(all) != 2 || all[0].ShopOrderID != "T-1" || all[1].ShopOrderID != "T-2" {
		t.Errorf("all transactions: %+v", all)
	}
}

func TestAdminDecision(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	okID := e.registerOK(newOrder("D-0", "taro@example.jp"), "OK")
	review := e.registerOK(newOrder("D-1", "review-ok@example.jp"), "審査中")
	cancelled := e.registerOK(newOrder("D-2", "hold@example.jp"), "審査中")
	wantOK(t, e.cancel(cancelled))
	path := func(id string) string { return "/sandbox/transactions/" + id + "/decision" }
	errors := []struct {
		name, id, body string
		want           int
	}{
		{"bad JSON", review, "{", 400},
		{"bad result", review, `{"result": "審査中"}`, 400},
		{"unknown transaction", "12345678901", `{"result": "OK"}`, 404},
		{"not under review", okID, `{"result": "NG"}`, 409},
		{"cancelled", cancelled, `{"result": "OK"}`, 409},
	}
	for _, tt := range errors {
		if got := e.admin("POST", path(tt.id), tt.body, nil); got != tt.want {
			t.Errorf("%s: HTTP %d, want %d", tt.name, got, tt.want)
		}
	}

	var v sandbox.TransactionView
	if code := e.admin("POST", path(review), `{"result": "NG"}`, &v); code != 200 || v.Decision != "NG" {
		t.Fatalf("decide NG: HTTP %d, view %+v", code, v)
	}
	if r := e.authori(review); r.auto() != "審査中" || r.manual() != "NG" || len(r.Tx.Reasons) == 0 {
		t.Errorf("after NG: auto %s manual %s reasons %v", r.auto(), r.manual(), r.Tx.Reasons)
	}
	e.admin("POST", path(review), `{"result": "保留"}`, nil)
	if r := e.authori(review); r.manual() != "保留" {
		t.Errorf("after 保留: manual %s", r.manual())
	}
	e.clock.Advance(holdDelay) // a hold set by hand still turns NG
	if r := e.authori(review); r.manual() != "NG" {
		t.Errorf("after the hold delay: manual %s, want NG", r.manual())
	}
	e.admin("POST", path(review), `{"result": "OK"}`, nil)
	if r := e.authori(review); r.manual() != "OK" {
		t.Errorf("after OK: manual %s", r.manual())
	}
	wantOK(t, e.ship(review, "1", "11", "12345"))
}

func TestAdminStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.registerOK(newOrder("S-1", "taro@example.jp"), "OK")
	wantNG(t, e.register(newOrder("S-1", "taro@example.jp")), "shopOrderId:er000101")
	e.authori(id)
	e.setFaults(sandbox.Faults{ErrorRate: 1})
	if res, _, err := e.postRaw(httpClient(), "getauthori", doc(linkXML(e.shop), txRef(id))); err != nil || res.StatusCode != 500 {
		t.Fatalf("error fault: %v %v", res, err)
	}
	st := e.stats()
	reg, auth := st.Operations["transaction"], st.Operations["getauthori"]
	if reg.Calls != 2 || reg.Statuses["200"] != 2 || reg.Results["OK"] != 1 || reg.Results["NG"] != 1 {
		t.Errorf("transaction stats %+v", reg)
	}
	if auth.Calls != 2 || auth.Statuses["200"] != 1 || auth.Statuses["500"] != 1 || auth.Faults["error"] != 1 {
		t.Errorf("getauthori stats %+v", auth)
	}
	if st.Statuses["200"] != 3 || st.Statuses["500"] != 1 || st.Unanswered != 0 {
		t.Errorf("totals %+v %d", st.Statuses, st.Unanswered)
	}
	for _, op := range []string{"shippingrequest", "modifytransaction", "getinvoicedata"} {
		if o := st.Operations[op]; o == nil || o.Calls != 0 {
			t.Errorf("%s: %+v, want listed with no calls", op, o)
		}
	}
}

func TestAdminFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var f sandbox.Faults
	if code := e.admin("GET", "/sandbox/faults", "", &f); code != 200 || f != (sandbox.Faults{}) {
		t.Fatalf("initial faults: HTTP %d %+v", code, f)
	}
	want := sandbox.Faults{LatencyMS: 5, JitterMS: 2, ErrorRate: 0.1, TimeoutRate: 0.2, GarbageRate: 0.3}
	e.setFaults(want)
	if e.admin("GET", "/sandbox/faults", "", &f); f != want {
		t.Errorf("faults %+v, want %+v", f, want)
	}
	for _, bad := range []string{
		`{"error_rate": 1.5}`, `{"timeout_rate": -0.1}`, `{"latency_ms": -1}`, `{"jitter_ms": -1}`,
		`{"error_rate": 0.5, "timeout_rate": 0.3, "garbage_rate": 0.3}`, `{"eror_rate": 0.1}`, `[]`,
		`{"latency_ms": 600001}`, `{"jitter_ms": 600001}`, // above sandbox.MaxFaultMS (10 minutes)
		`{"jitter_ms": 4611686018427387904}`, `{"latency_ms": 9223372036854775807}`, `{"latency_ms": 1e30}`,
	} {
		if code := e.admin("PUT", "/sandbox/faults", bad, nil); code != 400 {
			t.Errorf("PUT %s: HTTP %d, want 400", bad, code)
		}
	}
	if e.admin("GET", "/sandbox/faults", "", &f); f != want {
		t.Errorf("a refused PUT changed the faults to %+v", f)
	}
}

func TestAdminReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := e.registerOK(newOrder("R-1", "taro@example.jp"), "OK")
	e.setFaults(sandbox.Faults{LatencyMS: 1})
	if code := e.admin("POST", "/sandbox/reset", "", nil); code != 204 {
		t.Fatalf("reset: HTTP %d", code)
	}
	if v := e.transactions("R-1"); len(v) != 0 {
		t.Errorf("transactions survived the reset: %+v", v)
	}
	var f sandbox.Faults
	if e.admin("GET", "/sandbox/faults", "", &f); f != (sandbox.Faults{}) {
		t.Errorf("faults survived the reset: %+v", f)
	}
	if st := e.stats(); st.Operations["transaction"].Calls != 0 {
		t.Errorf("stats survived the reset: %+v", st.Operations["transaction"])
	}
	wantNG(t, e.authori(old), "transactionId:er000002")
	if id := e.registerOK(newOrder("R-1", "taro@example.jp"), "OK"); id == old {
		t.Errorf("a transaction ID was reused after reset: %s", id)
	}
}
