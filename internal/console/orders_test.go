package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/text/encoding/japanese"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

func okState() orderstate.State {
	return orderstate.State{Status: orderstate.StatusOK, TransactionID: "21781147782", Fee: 205, BilledAmount: 3155, Service: atodene.ServiceEnclosed}
}

func ngState() orderstate.State {
	return orderstate.State{Status: orderstate.StatusNG, TransactionID: "21781147783", Fee: 205, BilledAmount: 3155,
		Reasons: []string{"お支払い能力に懸念"}}
}

// seedOrders writes one order of each kind the list shows.
func seedOrders(h *harness) {
	h.order(testShop, "OK-1", okState())
	h.order(testShop, "NG-1", ngState())
	h.order(testShop, "REVIEW-1", orderstate.State{Status: orderstate.StatusPending, TransactionID: "21781147784", Fee: 205, BilledAmount: 3155})
	h.order(testShop, "HOLD-1", orderstate.State{Status: orderstate.StatusPending, Review: "hold", TransactionID: "21781147785", Fee: 205, BilledAmount: 3155})
	h.order(testShop, "SHIP-1", orderstate.State{Status: orderstate.StatusOK, TransactionID: "21781147786", Fee: 205, BilledAmount: 3155,
		Shipment: &orderstate.Shipment{CarrierCode: "12", TrackingNumber: "1234-5678-9012", Reported: true}})
	h.order(testShop, "INVALID-1", orderstate.State{Status: orderstate.StatusInvalid, Fee: 205, BilledAmount: 3155,
		Errors: []orderstate.Error{{Point: "zip", Code: "er000010", Message: "郵便番号が不正です"}}})
	h.order(testShop, "UNKNOWN-1", orderstate.State{Status: orderstate.StatusUnknown, Fee: 205, BilledAmount: 3155})
	h.order("other", "OTHER-1", okState())
}

// rowKeys returns the orders of a list page, in order.
func rowKeys(page string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<tr data-key="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestOrdersList: the shop's orders with their badges, the counts per status as tabs, the
// actions valid for each row, another shop's orders left out.
func TestOrdersList(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	seedOrders(h)
	page := body(t, h.get("/orders?shop=demo", "alice"), http.StatusOK)
	keys := rowKeys(page)
	if len(keys) != 7 {
		t.Fatalf("rows %v, want the 7 orders of demo", keys)
	}
	mustNotContain(t, page, "OTHER-1")
	mustContain(t, page,
		`data-testid="tab-all" data-count="7"`, `data-testid="tab-ok" data-count="2"`, `data-testid="tab-review" data-count="1"`,
		`data-testid="tab-hold" data-count="1"`, `data-testid="tab-ng" data-count="1"`, `data-testid="tab-unknown" data-count="1"`,
		`<span class="badge b-ok" data-kind="credit" data-testid="badge-credit">与信OK</span>`,
		`<span class="badge b-review" data-kind="credit" data-testid="badge-credit">審査中</span>`,
		`<span class="badge b-hold" data-kind="credit" data-testid="badge-credit">保留</span>`,
		`与信NG: <bdi class="text">お支払い能力に懸念</bdi>`,
		`登録エラー: <bdi class="text">zip er000010: 郵便番号が不正です</bdi>`,
		`<span class="badge s-reported" data-kind="shipment" data-testid="badge-shipment">伝票番号同期OK</span>`,
		`<tr data-key="demo/NG-1" data-order="NG-1" data-actions="rerun cancel"`,
		`<tr data-key="demo/REVIEW-1" data-order="REVIEW-1" data-actions="recheck cancel track"`,
		`<tr data-key="demo/OK-1" data-order="OK-1" data-actions="cancel track invoice"`,
		`<tr data-key="demo/UNKNOWN-1" data-order="UNKNOWN-1" data-actions="resolve"`,
		`id="bulk-rerun"`, `id="bulk-recheck"`, `id="bulk-cancel"`, `id="bulk-track"`, `id="bulk-invoice"`, `id="bulk-print"`,
		`<td class="num">3,155</td>`,
	)
	// The status tab selects.
	page = body(t, h.get("/orders?shop=demo&status=ok", "alice"), http.StatusOK)
	if keys := rowKeys(page); len(keys) != 2 {
		t.Errorf("status ok: rows %v, want OK-1 and SHIP-1", keys)
	}
	mustContain(t, page, `class="tab active" id="tab-ok"`)
	page = body(t, h.get("/orders?shop=demo&status=hold", "alice"), http.StatusOK)
	if keys := rowKeys(page); len(keys) != 1 || keys[0] != "demo/HOLD-1" {
		t.Errorf("status hold: rows %v", keys)
	}
	page = body(t, h.get("/orders?shop=demo&shipment=reported", "alice"), http.StatusOK)
	if keys := rowKeys(page); len(keys) != 1 || keys[0] != "demo/SHIP-1" {
		t.Errorf("shipment reported: rows %v", keys)
	}
	page = body(t, h.get("/orders?shop=demo&prefix=RE", "alice"), http.StatusOK)
	if keys := rowKeys(page); len(keys) != 1 || keys[0] != "demo/REVIEW-1" {
		t.Errorf("prefix RE: rows %v", keys)
	}
	// The first shop of the file is the default.
	if page := body(t, h.get("/orders", "alice"), http.StatusOK); len(rowKeys(page)) != 7 {
		t.Errorf("no shop given: %d rows, want demo's 7", len(rowKeys(page)))
	}
}

// TestOrdersPagesAndDates: 50 a page newest first with a cursor to the next; the date range
// filters by the day in JST; a filter that is not valid is a 400 naming the field.
func TestOrdersPagesAndDates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for i := range 55 {
		st := okState()
		st.OrderedAt = time.Date(2026, 11, 1, 0, 0, 0, 0, jst.Zone).Add(time.Duration(i) * time.Hour)
		h.order(testShop, fmt.Sprintf("P-%02d", i), st)
		h.clock.Advance(time.Second)
	}
	page := body(t, h.get("/orders?shop=demo", "alice"), http.StatusOK)
	keys := rowKeys(page)
	if len(keys) != 50 || keys[0] != "demo/P-54" || keys[49] != "demo/P-05" {
		t.Fatalf("first page: %d rows, %v…; want 50, P-54 first", len(keys), keys[:min(3, len(keys))])
	}
	m := regexp.MustCompile(`href="([^"]+)" id="page-next"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no link to the next page")
	}
	next := strings.ReplaceAll(m[1], "&amp;", "&")
	page = body(t, h.get(next, "alice"), http.StatusOK)
	if keys := rowKeys(page); len(keys) != 5 || keys[0] != "demo/P-04" {
		t.Errorf("second page: %v", keys)
	}
	mustContain(t, page, `id="page-first"`)
	mustNotContain(t, page, `id="page-next"`)

	// Ordered on 2026-11-02 (JST): hours 24 to 47.
	page = body(t, h.get("/orders?shop=demo&ordered_from=2026-11-02&ordered_to=2026-11-02", "alice"), http.StatusOK)
	if keys := rowKeys(page); len(keys) != 24 || keys[0] != "demo/P-47" || keys[23] != "demo/P-24" {
		t.Errorf("ordered 2026-11-02: %d rows %v", len(keys), keys)
	}
	w := h.get("/orders?shop=demo&ordered_from=30/11/2026", "alice")
	mustContain(t, body(t, w, http.StatusBadRequest), "受注日（から）: want a date")
	w = h.get("/orders?shop=demo&status=paid", "alice")
	mustContain(t, body(t, w, http.StatusBadRequest), "与信状態: &#34;paid&#34;")
}

// TestOrderPage: the amounts sent, the transaction, the states, the history newest first, and
// the buttons of the actions valid for the order only.
func TestOrderPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	st := orderstate.State{Status: orderstate.StatusPending, TransactionID: "21781147784", Fee: 205, BilledAmount: 3155, Service: atodene.ServiceSeparate,
		History: []orderstate.Entry{{At: testNow.Add(-time.Minute), Type: "order.created", Source: "mall-importer/rakuten", ID: "e1",
			Did: "registered", Calls: []string{"transaction.do: 審査中"}, Outcomes: []string{"credit.pending"}, Status: orderstate.StatusPending}}}
	h.order(testShop, "R-1", st)
	if err := h.store.AppendHistory(t.Context(), testShop, "R-1", orderstate.Entry{At: testNow, Type: "order.recheck_requested",
		Source: "console/operator/bob", Operator: "bob", Did: "no change: still under review (審査中)", Calls: []string{"getauthori.do: 審査中"}, Status: orderstate.StatusPending}, 0); err != nil {
		t.Fatal(err)
	}
	page := body(t, h.get("/orders/demo/R-1", "alice"), http.StatusOK)
	mustContain(t, page, "21781147784", `data-testid="fact-fee">205<`, `data-testid="fact-billed">3,155<`, "別送", "審査中",
		"transaction.do: 審査中", "credit.pending", "mall-importer/rakuten", `(<bdi class="text" data-testid="history-operator">bob</bdi>)`,
		`id="reveal-pii"`)
	if i, j := strings.Index(page, "order.recheck_requested"), strings.Index(page, "<strong class=\"text\">order.created"); i < 0 || j < 0 || i > j {
		t.Error("the history is not newest first")
	}
	enabled := func(page, id string) bool {
		m := regexp.MustCompile(`id="` + id + `"[^>]*>`).FindString(page)
		if m == "" {
			t.Fatalf("no button %s", id)
		}
		return !strings.Contains(m, "disabled")
	}
	for id, want := range map[string]bool{"do-rerun": false, "do-recheck": true, "do-cancel": true, "do-track": true, "do-invoice": false, "do-resolve": false} {
		if got := enabled(page, id); got != want {
			t.Errorf("pending order: %s enabled %v, want %v", id, got, want)
		}
	}
	h.order(testShop, "U-1", orderstate.State{Status: orderstate.StatusUnknown, Fee: 205, BilledAmount: 3155})
	page = body(t, h.get("/orders/demo/U-1", "alice"), http.StatusOK)
	for id, want := range map[string]bool{"do-rerun": false, "do-recheck": false, "do-cancel": false, "do-track": false, "do-resolve": true, "resolve-tx": true} {
		if got := enabled(page, id); got != want {
			t.Errorf("unknown order: %s enabled %v, want %v", id, got, want)
		}
	}
	h.order(testShop, "OK-1", okState())
	page = body(t, h.get("/orders/demo/OK-1", "alice"), http.StatusOK)
	mustContain(t, page, `id="print-invoice"`, "同梱")
	body(t, h.get("/orders/demo/NOPE", "alice"), http.StatusNotFound)
	body(t, h.get("/orders/demo/bad%20id", "alice"), http.StatusNotFound)
}

// TestRevealPersonalData: the order's received data is shown only after the reveal, which is
// recorded in the order's history with the operator; the log says who, never what.
func TestRevealPersonalData(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order(testShop, "P-1", okState())
	h.actions.received["demo/P-1"] = []byte(`{"shop_id":"demo","order_id":"P-1","ordered_at":"2026-11-26T10:14:03+09:00",
		"buyer":{"name":"加藤 太郎","name_kana":"カトウ タロウ","zip":"150-0001","address":"東京都渋谷区神宮前1-1-1","phone":"03-1234-5678","email":"taro@example.jp"},
		"items":[{"name":"緑茶ティーバッグ 50包","unit_price":1200,"quantity":2}],"shipping_fee":550,"fee":0,"discount":0,"billed_amount":2950}`)
	page := body(t, h.get("/orders/demo/P-1", "alice"), http.StatusOK)
	mustNotContain(t, page, "加藤", "03-1234-5678", "神宮前")
	page = body(t, h.post("/orders/demo/P-1/reveal", "alice", nil), http.StatusOK)
	mustContain(t, page, "加藤 太郎", "03-1234-5678", "東京都渋谷区神宮前1-1-1", "緑茶ティーバッグ 50包", `data-testid="pii-audited"`, AuditType)
	history, err := h.store.History(t.Context(), testShop, "P-1")
	if err != nil {
		t.Fatal(err)
	}
	last := history[len(history)-1]
	if last.Type != AuditType || last.Operator != "alice" || last.Source != "console/operator/alice" || last.Status != orderstate.StatusOK {
		t.Errorf("audit entry %+v", last)
	}
	if w := h.get("/orders/demo/P-1", "alice"); strings.Contains(body(t, w, http.StatusOK), "加藤") {
		t.Error("the personal data stays shown after the reveal")
	}
	// Data gone: said, and nothing recorded.
	h.order(testShop, "P-2", okState())
	page = body(t, h.post("/orders/demo/P-2/reveal", "alice", nil), http.StatusOK)
	mustContain(t, page, `id="pii-error"`, "its received data is gone")
	if history, _ := h.store.History(t.Context(), testShop, "P-2"); len(history) != 0 {
		t.Errorf("a reveal that showed nothing was recorded: %+v", history)
	}
	for _, e := range h.logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		for _, pii := range []string{"加藤", "03-1234-5678", "神宮前", "taro@"} {
			if strings.Contains(line, pii) {
				t.Errorf("log line %q holds personal data %q", line, pii)
			}
		}
	}
	if n := h.logs.FilterMessage("personal data revealed").Len(); n != 1 {
		t.Errorf("%d log lines of the reveal, want 1", n)
	}
}

// TestExport: the list's filter as CSV, every page: UTF-8 with a BOM, or Shift_JIS, CRLF lines.
func TestExport(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	seedOrders(h)
	w := h.get("/export?shop=demo&status=ok&encoding=utf-8", "alice")
	raw := []byte(body(t, w, http.StatusOK))
	if ct := w.Header().Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := w.Header().Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="orders-demo-20261130-`) {
		t.Errorf("Content-Disposition %q", cd)
	}
	if !bytes.HasPrefix(raw, []byte{0xEF, 0xBB, 0xBF}) {
		t.Fatalf("no BOM: % x", raw[:min(8, len(raw))])
	}
	lines := strings.Split(strings.TrimSuffix(string(raw[3:]), "\r\n"), "\r\n")
	if len(lines) != 3 || lines[0] != "order_id,status,review,transaction_id,fee,billed_amount,shipment,ordered_at,changed_at" {
		t.Fatalf("lines %q", lines)
	}
	if !strings.HasPrefix(lines[1], "SHIP-1,ok,,21781147786,205,3155,reported,2026-11-30 15:00:00,2026-11-30 16:00:00") {
		t.Errorf("row %q", lines[1])
	}
	w = h.get("/export?shop=demo&status=hold&encoding=shift_jis", "alice")
	raw = []byte(body(t, w, http.StatusOK))
	if ct := w.Header().Get("Content-Type"); ct != "text/csv; charset=Shift_JIS" || bytes.HasPrefix(raw, []byte{0xEF, 0xBB, 0xBF}) {
		t.Errorf("Shift_JIS: Content-Type %q, starts % x", ct, raw[:3])
	}
	dec, err := japanese.ShiftJIS.NewDecoder().Bytes(raw)
	if err != nil || !strings.Contains(string(dec), "HOLD-1,pending,hold,21781147785") {
		t.Errorf("Shift_JIS export %q, %v", dec, err)
	}
	body(t, h.get("/export?shop=demo&encoding=latin1", "alice"), http.StatusBadRequest)
	// The exporter given is used.
	h2 := newHarness(t, func(c *Config) {
		c.Export = func(w io.Writer, orders []orderstate.Summary, sjis bool) error {
			_, err := fmt.Fprintf(w, "%d orders sjis=%v", len(orders), sjis)
			return err
		}
	})
	h2.order(testShop, "A", okState())
	if got := body(t, h2.get("/export?shop=demo&encoding=shift_jis", "alice"), http.StatusOK); got != "1 orders sjis=true" {
		t.Errorf("custom exporter: %q", got)
	}
}

// TestStatusTabsSayWhatTheyCount: the tabs count the shop's orders per status, whatever the other
// filters: the page says so, in both languages.
func TestStatusTabsSayWhatTheyCount(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order(testShop, "A1", ngState())
	page := body(t, h.get("/orders?shop=demo&prefix=A", "alice"), http.StatusOK)
	mustContain(t, page, `data-testid="status-tabs-note"`, "このショップの全受注のステータス別の数", `id="tab-ng"`)
	page = body(t, h.get("/orders?shop=demo&lang=en", "alice"), http.StatusOK)
	mustContain(t, page, `data-testid="status-tabs-note"`, "all the shop&#39;s orders per status")
}

// TestExportOfAnOrderWrittenMeanwhile: an order written while the export runs, between its pages, is
// in the file, once, as written. Paged by time changed (the list's default sort), it moved to the
// head of the listing, past the cursor, and was left out.
func TestExportOfAnOrderWrittenMeanwhile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.NewStore(rdb, orderstate.Config{Prefix: prefix})
	t.Cleanup(store.Close)
	h := newHarness(t, func(c *Config) { c.Store = store })
	const n = orderstate.MaxLimit + 1 // two pages
	for i := range n {
		st := okState()
		st.OrderedAt = testNow.Add(time.Duration(i-n) * time.Minute)
		if _, err := store.Put(ctx, testShop, fmt.Sprintf("E-%04d", i), st, st.OrderedAt); err != nil {
			t.Fatal(err)
		}
	}
	// After the first page, E-0000 (the oldest, on the second page) turns NG.
	script := func(cmd redis.Cmder) bool { return strings.HasPrefix(cmd.Name(), "eval") } // a page of the listing
	hook := testenv.AfterCommand(rdb, script, func() {
		st, err := store.Get(ctx, testShop, "E-0000")
		if err == nil {
			st.Status = orderstate.StatusNG
			_, err = store.Put(ctx, testShop, "E-0000", st, testNow.Add(time.Hour))
		}
		if err != nil {
			t.Error(err)
		}
	})
	hook.Arm()
	raw := body(t, h.get("/export?shop=demo&encoding=utf-8", "alice"), http.StatusOK)
	lines := strings.Split(strings.TrimSuffix(raw[3:], "\r\n"), "\r\n")
	if !hook.Fired() {
		t.Fatal("the export read no page")
	}
	if len(lines) != n+1 || !strings.HasPrefix(lines[1], "E-0000,ng,") || strings.Count(raw, "E-0000,") != 1 {
		t.Errorf("%d rows, the first %q; want %d, E-0000 first (changed last) as NG, once", len(lines)-1, lines[min(1, len(lines)-1)], n)
	}
}

// errRedisDown is the error failingRedis gives the commands it fails.
var errRedisDown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

// failingRedis is a go-redis hook that fails the commands named in fail (and any pipeline that
// holds one) with errRedisDown, as a Redis that went away would, and passes the others on.
type failingRedis struct{ fail map[string]bool }

func (f failingRedis) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f failingRedis) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if f.fail[cmd.Name()] {
			cmd.SetErr(errRedisDown)
			return errRedisDown
		}
		return next(ctx, cmd)
	}
}

func (f failingRedis) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if f.fail[c.Name()] {
				for _, c := range cmds {
					c.SetErr(errRedisDown)
				}
				return errRedisDown
			}
		}
		return next(ctx, cmds)
	}
}

// storeFailing returns a store on the test's own keys whose commands named fail fail.
func storeFailing(t *testing.T, fail ...string) (*orderstate.Store, *orderstate.Store) {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	healthy := orderstate.NewStore(rdb, orderstate.Config{Prefix: prefix})
	t.Cleanup(healthy.Close)
	frdb, _ := testenv.Redis(t)
	h := failingRedis{fail: map[string]bool{}}
	for _, name := range fail {
		h.fail[name] = true
	}
	frdb.AddHook(h)
	failing := orderstate.NewStore(frdb, orderstate.Config{Prefix: prefix})
	t.Cleanup(failing.Close)
	return healthy, failing
}

// TestOrdersListRedisFailures: counts that cannot be read are said so on the tabs, never shown as
// 0; states that cannot be read answer 503 with the console's Redis message, as the list does.
func TestOrdersListRedisFailures(t *testing.T) {
	t.Parallel()
	healthy, noCounts := storeFailing(t, "zcount")
	h := newHarness(t, func(c *Config) { c.Store = noCounts })
	for _, id := range []string{"OK-1", "OK-2"} {
		if _, err := healthy.Put(context.Background(), testShop, id, okState(), testNow); err != nil {
			t.Fatal(err)
		}
	}
	page := body(t, h.get("/orders?shop=demo", "alice"), http.StatusOK)
	mustContain(t, page, `data-testid="tabs-error"`, "件数を読めませんでした（Redis）: ", "connection refused",
		`data-testid="tab-ok"`, `data-key="demo/OK-1"`)
	mustNotContain(t, page, `data-count="0"`, `<span class="count"`)

	healthy, noStates := storeFailing(t, "get")
	h = newHarness(t, func(c *Config) { c.Store = noStates })
	if _, err := healthy.Put(context.Background(), testShop, "OK-1", okState(), testNow); err != nil {
		t.Fatal(err)
	}
	page = body(t, h.get("/orders?shop=demo", "alice"), http.StatusServiceUnavailable)
	mustContain(t, page, `id="list-error"`, "Redisを読めませんでした: ", "connection refused")
	mustNotContain(t, page, `data-testid="order-row"`)
}

// TestOrdersListShopNotConfigured: the orders of a shop the shops file does not name (removed, or
// a link mistyped) are listed under a selector that names that shop, selected and marked as not
// configured, so that the filter shown is the filter applied; a configured shop is selected as
// it is.
func TestOrdersListShopNotConfigured(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.order("old-shop", "OLD-1", okState())
	h.order("other", "OTHER-1", okState())
	selector := func(page string) string {
		i := strings.Index(page, `id="f-shop"`)
		if i < 0 {
			t.Fatal("no shop selector")
		}
		return page[i : i+strings.Index(page[i:], "</select>")]
	}
	page := body(t, h.get("/orders?shop=old-shop", "alice"), http.StatusOK)
	mustContain(t, page, `data-key="old-shop/OLD-1"`, `data-testid="shop-other"`, "ショップ「old-shop」はショップ設定にありません")
	sel := selector(page)
	mustContain(t, sel, `<option value="old-shop" selected>old-shop （ショップ設定にありません）</option>`)
	if n := strings.Count(sel, " selected"); n != 1 {
		t.Errorf("%d shops selected, want 1: %s", n, sel)
	}
	page = body(t, h.get("/orders?shop=other", "alice"), http.StatusOK)
	mustContain(t, selector(page), `<option value="other" selected>other</option>`)
	mustNotContain(t, page, `data-testid="shop-other"`, "ショップ設定にありません")
}
