package sandbox_test

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// poll is one getauthori.do expectation at a time after registration.
type poll struct {
	after          time.Duration
	manual         string
	reasonsPresent bool
}

func TestDecisionsByEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		email string
		lines []line
		auto  string
		polls []poll
	}{
		{name: "default OK", email: "taro@example.jp", auto: "OK", polls: []poll{{0, "", false}}},
		{name: "ng", email: "ng-taro@example.jp", auto: "NG", polls: []poll{{0, "", true}}},
		{name: "ng is case-insensitive", email: "NG.Taro@example.jp", auto: "NG"},
		{name: "review-ok", email: "review-ok+1@example.jp", auto: "審査中", polls: []poll{
			{0, "", false}, {reviewDelay - time.Second, "", false}, {reviewDelay, "OK", false},
		}},
		{name: "review-ng", email: "review-ng@example.jp", auto: "審査中", polls: []poll{
			{reviewDelay - time.Second, "", false}, {reviewDelay, "NG", true},
		}},
		{name: "hold", email: "hold-me@example.jp", auto: "審査中", polls: []poll{
			{reviewDelay - time.Second, "", false}, {reviewDelay, "保留", true},
			{reviewDelay + holdDelay - time.Second, "保留", true}, {reviewDelay + holdDelay, "NG", true},
		}},
		{name: "slow is like the default", email: "slow1@example.jp", auto: "OK"},
		{name: "only the local part counts", email: "taro@ng.example.jp", auto: "OK"},
		{name: "55000 is within the ceiling", email: "taro@example.jp", lines: []line{{"品", 55000, 1}}, auto: "OK"},
		{name: "55001 is over the ceiling", email: "taro@example.jp", lines: []line{{"品", 55001, 1}}, auto: "NG", polls: []poll{{0, "", true}}},
		{name: "review ignores the ceiling", email: "review-ok@example.jp", lines: []line{{"品", 60000, 1}}, auto: "審査中"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			o := newOrder("A-1", tt.email)
			if tt.lines != nil {
				o.withLines(tt.lines...)
			}
			id := e.registerOK(o, tt.auto)
			var elapsed time.Duration
			for _, p := range tt.polls {
				e.clock.Advance(p.after - elapsed)
				elapsed = p.after
				r := e.authori(id)
				wantOK(t, r)
				if r.txID() != id || r.auto() != tt.auto || r.manual() != p.manual {
					t.Fatalf("at +%v: id %s auto %s manual %q; want %s %s %q", p.after, r.txID(), r.auto(), r.manual(), id, tt.auto, p.manual)
				}
				if got := len(r.Tx.Reasons) > 0; got != p.reasonsPresent {
					t.Errorf("at +%v: reasons %q, want present=%v", p.after, r.Tx.Reasons, p.reasonsPresent)
				}
			}
		})
	}
}

func TestGetAuthoriAnswersEveryElement(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.registerOK(newOrder("A-1", "review-ok@example.jp"), "審査中")
	_, body, err := e.postRaw(httpClient(), "getauthori", doc(linkXML(e.shop), txRef(id)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<autoAuthoriresult>審査中</autoAuthoriresult>", "<manualAuthoriresult></manualAuthoriresult>", "<manualAuthorireasons></manualAuthorireasons>"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("answer lacks %s (empty elements in long form):\n%s", want, body)
		}
	}
}

// TestSlowDelay: every answer about a slow buyer waits SlowDelay, and no other does. The sandbox is
// called in process inside a synctest bubble, so the delays are measured on the bubble's clock: exact,
// whatever the load of the machine.
func TestSlowDelay(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv, err := sandbox.New(sandbox.Config{Seed: 1, SlowDelay: slowDelay})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		e := &env{t: t, shop: sandbox.DemoShop} // for the request bodies
		timed := func(op, body string) (resp, time.Duration) {
			start := time.Now()
			r := serve(t, srv, op, body)
			return r, time.Since(start)
		}
		slow, d := timed("transaction", e.registerXML(newOrder("S-1", "slow@example.jp")))
		wantOK(t, slow)
		if d != slowDelay {
			t.Errorf("slow registration took %v, want %v", d, slowDelay)
		}
		if _, d := timed("getauthori", e.authoriXML(slow.txID())); d != slowDelay {
			t.Errorf("getauthori of a slow buyer took %v, want %v", d, slowDelay)
		}
		fast, d := timed("transaction", e.registerXML(newOrder("F-1", "taro@example.jp")))
		wantOK(t, fast)
		if d != 0 {
			t.Errorf("registration of an ordinary buyer took %v, want no delay", d)
		}
		if _, d := timed("getauthori", e.authoriXML(fast.txID())); d != 0 {
			t.Errorf("getauthori of an ordinary buyer took %v, want no delay", d)
		}
	})
}

func TestLinkInfoErrors(t *testing.T) {
	t.Parallel()
	other := sandbox.Shop{ShopCode: "abc123456789", LinkID: "original00", LinkPassword: "secret-pw1"}
	e := newEnv(t, func(c *sandbox.Config) { c.Shops = []sandbox.Shop{sandbox.DemoShop, other} })
	id := e.registerOK(newOrder("A-1", "taro@example.jp"), "OK")
	tests := []struct {
		name string
		shop sandbox.Shop
		want string
	}{
		{"unknown shopCode", sandbox.Shop{ShopCode: "zzz000000000", LinkID: "original00", LinkPassword: "demopass01"}, "shopCode:er000003"},
		{"wrong linkId", sandbox.Shop{ShopCode: "demo00000001", LinkID: "eccubeid01", LinkPassword: "demopass01"}, "linkId:er000003"},
		{"wrong password", sandbox.Shop{ShopCode: "demo00000001", LinkID: "original00", LinkPassword: "secret-pw1"}, "linkPassword:er000003"},
		{"empty linkInfo", sandbox.Shop{}, "shopCode:er000003"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantNG(t, e.post("transaction", doc(linkXML(tt.shop), newOrder("B-1", "taro@example.jp").blocks())), tt.want)
			wantNG(t, e.post("getauthori", doc(linkXML(tt.shop), txRef(id))), tt.want)
		})
	}
	t.Run("another configured shop sees none of this shop's transactions", func(t *testing.T) {
		wantNG(t, e.post("getauthori", doc(linkXML(other), txRef(id))), "transactionId:er000002")
	})
	if n := len(e.transactions("B-1")); n != 0 {
		t.Errorf("%d transactions registered with bad linkInfo", n)
	}
}

func TestRequestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := map[string]string{
		"empty body":       "",
		"not XML":          "shopCode=demo00000001",
		"wrong root":       `<?xml version="1.0" encoding="UTF-8"?><response><result>OK</result></response>`,
		"unclosed element": `<request><linkInfo><shopCode>demo00000001</shopCode>`,
		"Shift_JIS":        `<?xml version="1.0" encoding="Shift_JIS"?><request></request>`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			for _, op := range []string{"transaction", "getauthori", "shippingrequest", "modifytransaction", "getinvoicedata"} {
				wantNG(t, e.post(op, body), "request:er000004")
			}
		})
	}
}

func TestRequestFormsAccepted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Self-closing empty elements, no XML declaration, any Content-Type.
	body := strings.ReplaceAll(e.registerXML(newOrder("A-1", "taro@example.jp")), "<companyName></companyName>", "<companyName/>")
	body = strings.TrimPrefix(body, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	for i, ct := range []string{"application/xml", "application/x-www-form-urlencoded", ""} {
		req := newPost(t, e.url+"/api/transaction.do", strings.Replace(body, "A-1", "A-1"+string(rune('a'+i)), 1), ct)
		r := decode(t, do(t, req))
		wantOK(t, r)
	}
	if code := e.admin("GET", "/api/transaction.do", "", nil); code != 405 {
		t.Errorf("GET transaction.do: HTTP %d, want 405", code)
	}
}

func TestFieldValidationReportsEveryError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := newOrder("A-1", "").set("zip", "150-00001", "kanaName", "かとう", "service", "1", "shipTel", "12")
	o.withLines(line{"緑茶", 1200, 0}, line{strings.Repeat("長", 151), 100, 1})
	r := e.register(o)
	wantNG(t, r, "kanaName:er000001", "zip:er000001", "email:er000001", "service:er000001",
		"shipTel:er000001", "goodsAmount:er000001", "goods:er000001")
	if msg := r.Errors[2].Message; !strings.Contains(msg, "入力されていません") {
		t.Errorf("missing email message %q, want it to say the value is missing", msg)
	}
	if msg := r.Errors[5].Message; !strings.HasPrefix(msg, "明細1行目") {
		t.Errorf("detail error message %q, want it to name the row", msg)
	}
}

func TestMissingBlocks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	wantNG(t, e.post("transaction", doc(linkXML(e.shop))), "customer:er000006", "ship:er000006", "details:er000006")
	// browserInfo is optional.
	wantOK(t, e.post("transaction", doc(linkXML(e.shop), newOrder("A-1", "taro@example.jp").blocks())))
}

func TestDetailRules(t *testing.T) {
	t.Parallel()
	sixteen := slices.Repeat([]line{{"品", 100, 1}}, 16)
	tests := []struct {
		name  string
		order *testOrder
		want  []string
	}{
		{"15 rows are accepted", newOrder("A-1", "taro@example.jp").withLines(slices.Repeat([]line{{"品", 100, 1}}, 15)...), nil},
		{"16 rows", newOrder("A-1", "taro@example.jp").withLines(sixteen...), []string{"details:er000010"}},
		{"no rows", newOrder("A-1", "taro@example.jp").withLines(), []string{"details:er000010"}},
		{"sum differs", newOrder("A-1", "taro@example.jp").set("billedAmount", "3056"), []string{"billedAmount:er000011"}},
		{"sum differs, reported with other errors", newOrder("A-1", "taro@example.jp").set("billedAmount", "3056", "tel", "x"),
			[]string{"tel:er000001", "billedAmount:er000011"}},
		{"negative discount lines count", newOrder("A-1", "taro@example.jp").withLines(line{"品", 1000, 3}, line{"割引", -500, 1}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := e.register(tt.order)
			if tt.want == nil {
				wantOK(t, r)
				return
			}
			wantNG(t, r, tt.want...)
		})
	}
}

func TestDuplicateRegistration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.registerOK(newOrder("D-1", "taro@example.jp"), "OK")
	wantNG(t, e.register(newOrder("D-1", "taro@example.jp")), "shopOrderId:er000101")
	// Reported together with field errors.
	wantNG(t, e.register(newOrder("D-1", "taro@example.jp").set("zip", "x")), "zip:er000001", "shopOrderId:er000101")

	wantOK(t, e.cancel(first))
	second := e.registerOK(newOrder("D-1", "ng@example.jp"), "NG")
	third := e.registerOK(newOrder("D-1", "review-ng@example.jp"), "審査中")
	wantNG(t, e.register(newOrder("D-1", "taro@example.jp")), "shopOrderId:er000101") // under review is live
	e.clock.Advance(reviewDelay)                                                      // review-ng declines
	fourth := e.registerOK(newOrder("D-1", "taro@example.jp"), "OK")

	ids := []string{first, second, third, fourth}
	if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 4 {
		t.Fatalf("transaction IDs are not unique: %v", ids)
	}
	views := e.transactions("D-1")
	if len(views) != 4 {
		t.Fatalf("%d transactions for D-1, want 4", len(views))
	}
	for i, v := range views {
		if v.TransactionID != ids[i] || v.Registrations != 4 || v.RejectedRegistrations != 3 {
			t.Errorf("view %d: %+v, want id %s, 4 registrations, 3 rejected", i, v, ids[i])
		}
	}
	if views[0].State != "cancelled" || views[1].Decision != "NG" || views[2].Decision != "NG" || views[3].State != "active" {
		t.Errorf("states/decisions: %+v", views)
	}
	// The same shopOrderId in another shop is another order.
	other := sandbox.Shop{ShopCode: "abc123456789", LinkID: "original00", LinkPassword: "secret-pw1"}
	e2 := newEnv(t, func(c *sandbox.Config) { c.Shops = []sandbox.Shop{sandbox.DemoShop, other} })
	e2.registerOK(newOrder("D-1", "taro@example.jp"), "OK")
	e2.shop = other
	e2.registerOK(newOrder("D-1", "taro@example.jp"), "OK")
}

// TestSignedAmountsRefused: billedAmount, goodsPrice and goodsAmount are integers with no sign or
// separators (docs/protocol.md#field-limits); strconv.ParseInt alone would take a leading '+'.
func TestSignedAmountsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	wantNG(t, e.register(newOrder("SIGN-1", "taro@example.jp").set("billedAmount", "+3055")), "billedAmount:er000001")
	// goodsPrice and goodsAmount with '+' (the helper writes integers, so build the details by hand).
	blocks := newOrder("SIGN-2", "taro@example.jp").set("billedAmount", "1000").blocks()
	x := doc(linkXML(e.shop), blocks[:strings.Index(blocks, "<details>")]+
		"<details><detail><goods>品</goods><goodsPrice>+1000</goodsPrice><goodsAmount>+1</goodsAmount><expand2>1</expand2><expand3></expand3><expand4></expand4></detail></details>")
	wantNG(t, e.post("transaction", x), "goodsPrice:er000001", "goodsAmount:er000001")
}
