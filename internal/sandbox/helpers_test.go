package sandbox_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/clock"
)

const (
	reviewDelay = 30 * time.Second
	holdDelay   = 60 * time.Second
	slowDelay   = 50 * time.Millisecond
)

// env is a sandbox behind a real HTTP server, spoken to in raw XML.
type env struct {
	t     *testing.T
	srv   *sandbox.Server
	url   string
	clock *clock.Fake // tests move it forward instead of sleeping
	shop  sandbox.Shop
}

func newEnv(t *testing.T, mods ...func(*sandbox.Config)) *env {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	cfg := sandbox.Config{Now: clk.Now, Seed: 1, ReviewDelay: reviewDelay, HoldDelay: holdDelay, SlowDelay: slowDelay}
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := sandbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	t.Cleanup(srv.Close) // runs first, releasing held requests so that ts.Close does not wait on them
	return &env{t: t, srv: srv, url: ts.URL, clock: clk, shop: sandbox.DemoShop}
}

// resp is the test's own reading of a <response>.
type resp struct {
	Result string `xml:"result"`
	Tx     *struct {
		ShopOrderID   string   `xml:"shopOrderId"`
		TransactionID string   `xml:"transactionId"`
		Auto          *string  `xml:"autoAuthoriresult"`
		Manual        *string  `xml:"manualAuthoriresult"`
		Reasons       []string `xml:"manualAuthorireasons>manualAuthorireason"`
	} `xml:"transactionInfo"`
	Invoice *node `xml:"invoiceInfo"`
	Errors  []struct {
		Point   string `xml:"errorPoint"`
		Code    string `xml:"errorCode"`
		Message string `xml:"errorMessage"`
	} `xml:"errors>error"`
}

type node struct {
	XMLName  xml.Name
	Text     string `xml:",chardata"`
	Children []node `xml:",any"`
}

func (n *node) child(name string) *node {
	for i := range n.Children {
		if n.Children[i].XMLName.Local == name {
			return &n.Children[i]
		}
	}
	return nil
}

func (r resp) txID() string {
	if r.Tx == nil {
		return ""
	}
	return r.Tx.TransactionID
}

func (r resp) auto() string {
	if r.Tx == nil || r.Tx.Auto == nil {
		return "<absent>"
	}
	return *r.Tx.Auto
}

func (r resp) manual() string {
	if r.Tx == nil || r.Tx.Manual == nil {
		return "<absent>"
	}
	return *r.Tx.Manual
}

// errs lists the errors as point:code.
func (r resp) errs() []string {
	var out []string
	for _, e := range r.Errors {
		out = append(out, e.Point+":"+e.Code)
	}
	return out
}

// postRaw sends body to an operation and returns the HTTP answer.
func (e *env) postRaw(client *http.Client, op, body string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, e.url+"/api/"+op+".do", strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

// call sends body to an operation and decodes the answer, which must be HTTP 200 XML. It is safe to
// use from any goroutine.
func (e *env) call(op, body string) (resp, error) {
	var r resp
	res, b, err := e.postRaw(http.DefaultClient, op, body)
	if err != nil {
		return r, fmt.Errorf("%s: %w", op, err)
	}
	if res.StatusCode != http.StatusOK {
		return r, fmt.Errorf("%s: HTTP %d: %s", op, res.StatusCode, b)
	}
	if !bytes.HasPrefix(b, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		return r, fmt.Errorf("%s: no XML declaration: %s", op, b)
	}
	if err := xml.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: decoding %s: %w", op, b, err)
	}
	if (r.Result == "NG") != (len(r.Errors) > 0) {
		return r, fmt.Errorf("%s: result %s with %d errors: %s", op, r.Result, len(r.Errors), b)
	}
	return r, nil
}

// post is call for the test's own goroutine: it fails the test on a transport or envelope error.
func (e *env) post(op, body string) resp {
	e.t.Helper()
	r, err := e.call(op, body)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func linkXML(s sandbox.Shop) string {
	return fmt.Sprintf("<linkInfo><shopCode>%s</shopCode><linkId>%s</linkId><linkPassword>%s</linkPassword></linkInfo>",
		esc(s.ShopCode), esc(s.LinkID), esc(s.LinkPassword))
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func doc(blocks ...string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>` + "\n<request>" + strings.Join(blocks, "") + "</request>"
}

func elems(pairs ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&b, "<%s>%s</%s>", pairs[i], esc(pairs[i+1]), pairs[i])
	}
	return b.String()
}

// line is one detail row.
type line struct {
	goods         string
	price, amount int
}

var defaultLines = []line{{"<特選> 緑茶 & 煎茶", 1200, 2}, {"送料", 550, 1}, {"後払い手数料", 205, 1}, {"割引等", -100, 1}}

// testOrder builds the customer, ship and details blocks. billedAmount is Σ of the lines unless set.
type testOrder struct {
	fields map[string]string
	lines  []line
}

var customerFields = []string{"shopOrderId", "shopOrderDate", "name", "kanaName", "zip", "address", "companyName",
	"sectionName", "tel", "email", "billedAmount", "expand1", "service"}

var shipFields = []string{"shipName", "shipKananame", "shipZip", "shipAddress", "shipCompanyName", "shipSectionName", "shipTel"}

func newOrder(shopOrderID, email string) *testOrder {
	return &testOrder{
		fields: map[string]string{
			"shopOrderId": shopOrderID, "shopOrderDate": "2026/11/26", "name": "加藤 太郎", "kanaName": "カトウ タロウ",
			"zip": "150-0001", "address": "東京都渋谷区神宮前1-1-1", "tel": "03-1234-5678", "email": email,
			"service": "2", "shipName": "加藤 太郎", "shipKananame": "カトウ タロウ", "shipZip": "150-0001",
			"shipAddress": "東京都渋谷区神宮前1-1-1", "shipTel": "03-1234-5678",
		},
		lines: slices.Clone(defaultLines),
	}
}

func (o *testOrder) set(pairs ...string) *testOrder {
	for i := 0; i+1 < len(pairs); i += 2 {
		o.fields[pairs[i]] = pairs[i+1]
	}
	return o
}

func (o *testOrder) withLines(ls ...line) *testOrder {
	o.lines = ls
	return o
}

func (o *testOrder) blocks() string {
	f := o.fields
	if _, ok := f["billedAmount"]; !ok {
		sum := 0
		for _, l := range o.lines {
			sum += l.price * l.amount
		}
		f = withField(f, "billedAmount", strconv.Itoa(sum))
	}
	var b strings.Builder
	b.WriteString("<customer>")
	for _, k := range customerFields {
		b.WriteString(elems(k, f[k]))
	}
	b.WriteString("</customer><ship>")
	for _, k := range shipFields {
		b.WriteString(elems(k, f[k]))
	}
	b.WriteString("</ship><details>")
	for i, l := range o.lines {
		b.WriteString("<detail>" + elems("goods", l.goods, "goodsPrice", strconv.Itoa(l.price),
			"goodsAmount", strconv.Itoa(l.amount), "expand2", strconv.Itoa(i+1)) + "<expand3/><expand4></expand4></detail>")
	}
	b.WriteString("</details>")
	return b.String()
}

func withField(m map[string]string, k, v string) map[string]string {
	c := make(map[string]string, len(m)+1)
	for kk, vv := range m {
		c[kk] = vv
	}
	c[k] = v
	return c
}

func (e *env) registerXML(o *testOrder) string {
	return doc(linkXML(e.shop), "<browserInfo><httpHeader>User-Agent: test</httpHeader><deviceInfo/></browserInfo>", o.blocks())
}

func (e *env) register(o *testOrder) resp {
	e.t.Helper()
	return e.post("transaction", e.registerXML(o))
}

// registerOK registers o and fails unless the answer is OK with the given automatic result.
func (e *env) registerOK(o *testOrder, wantAuto string) string {
	e.t.Helper()
	r := e.register(o)
	if r.Result != "OK" || r.auto() != wantAuto {
		e.t.Fatalf("register: result %s auto %s errors %v; want OK %s", r.Result, r.auto(), r.errs(), wantAuto)
	}
	if len(r.txID()) != 11 || strings.Trim(r.txID(), "0123456789") != "" {
		e.t.Fatalf("transactionId %q is not 11 digits", r.txID())
	}
	if r.Tx.ShopOrderID != o.fields["shopOrderId"] {
		e.t.Fatalf("shopOrderId echoed %q, want %q", r.Tx.ShopOrderID, o.fields["shopOrderId"])
	}
	return r.txID()
}

func txRef(id string) string {
	return "<transactionInfo>" + elems("transactionId", id) + "</transactionInfo>"
}

func (e *env) authori(id string) resp {
	e.t.Helper()
	return e.post("getauthori", e.authoriXML(id))
}

func (e *env) authoriXML(id string) string { return doc(linkXML(e.shop), txRef(id)) }

func (e *env) invoice(id string) resp {
	e.t.Helper()
	return e.post("getinvoicedata", doc(linkXML(e.shop), txRef(id)))
}

func (e *env) ship(id, deliveryType, company, slip string) resp {
	e.t.Helper()
	return e.post("shippingrequest", e.shipXML(id, deliveryType, company, slip))
}

func (e *env) shipXML(id, deliveryType, company, slip string) string {
	ti := "<transactionInfo>" + elems("deliveryType", deliveryType, "transactionId", id,
		"deliveryCompanyCode", company, "deliverySlipNo", slip, "invoiceDate", "") + "</transactionInfo>"
	return doc(linkXML(e.shop), ti)
}

func (e *env) cancel(id string) resp {
	e.t.Helper()
	return e.post("modifytransaction", e.cancelXML(id))
}

func (e *env) cancelXML(id string) string {
	ti := "<transactionInfo>" + elems("updateTypeFlag", "1", "transactionId", id) + "</transactionInfo>"
	return doc(linkXML(e.shop), ti)
}

func (e *env) change(id string, o *testOrder) resp {
	e.t.Helper()
	ti := "<transactionInfo>" + elems("updateTypeFlag", "2", "transactionId", id) + "</transactionInfo>"
	return e.post("modifytransaction", doc(linkXML(e.shop), ti, o.blocks()))
}

// admin calls the admin API and decodes a JSON answer into out (when not nil).
func (e *env) admin(method, path, body string, out any) int {
	e.t.Helper()
	code, b, err := e.adminRaw(method, path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if out != nil && code < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return code
}

// adminStatus calls the admin API from any goroutine.
func (e *env) adminStatus(method, path, body string) (int, error) {
	code, _, err := e.adminRaw(method, path, body)
	return code, err
}

func (e *env) adminRaw(method, path, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

func (e *env) transactions(shopOrderID string) []sandbox.TransactionView {
	e.t.Helper()
	var views []sandbox.TransactionView
	if code := e.admin("GET", "/sandbox/transactions?shopOrderId="+shopOrderID, "", &views); code != 200 {
		e.t.Fatalf("GET transactions: HTTP %d", code)
	}
	return views
}

func (e *env) stats() sandbox.Stats {
	e.t.Helper()
	var st sandbox.Stats
	if code := e.admin("GET", "/sandbox/stats", "", &st); code != 200 {
		e.t.Fatalf("GET stats: HTTP %d", code)
	}
	return st
}

func (e *env) setFaults(f sandbox.Faults) {
	e.t.Helper()
	b, _ := json.Marshal(f)
	if code := e.admin("PUT", "/sandbox/faults", string(b), nil); code != 200 {
		e.t.Fatalf("PUT faults: HTTP %d", code)
	}
}

// wantNG fails unless r is NG with exactly the errors given as point:code.
func wantNG(t *testing.T, r resp, want ...string) {
	t.Helper()
	if r.Result != "NG" || !slices.Equal(r.errs(), want) {
		t.Fatalf("got %s %v, want NG %v", r.Result, r.errs(), want)
	}
	for _, e := range r.Errors {
		if e.Message == "" || !hasJapanese(e.Message) {
			t.Errorf("error %s has message %q, want Japanese text", e.Point, e.Message)
		}
	}
}

func wantOK(t *testing.T, r resp) {
	t.Helper()
	if r.Result != "OK" {
		t.Fatalf("got %s %v, want OK", r.Result, r.errs())
	}
}

func hasJapanese(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r >= 0x3040 && r <= 0x9FFF })
}

func httpClient() *http.Client { return &http.Client{Timeout: 5 * time.Second} }

func newPost(t *testing.T, url, body, contentType string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

func do(t *testing.T, req *http.Request) []byte {
	t.Helper()
	res, err := httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", res.StatusCode, b)
	}
	return b
}

func decode(t *testing.T, body []byte) resp {
	t.Helper()
	var r resp
	if err := xml.Unmarshal(body, &r); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return r
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// serve sends body to an operation by calling srv in this goroutine, without a network, and decodes
// the answer, which must be HTTP 200 XML. In a synctest bubble, time measured around it is the
// sandbox's own delays on the bubble's clock.
func serve(t *testing.T, srv *sandbox.Server, op, body string) resp {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, sandbox.BasePath+op+".do", strings.NewReader(body)))
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: HTTP %d: %s", op, rec.Code, rec.Body)
	}
	return decode(t, rec.Body.Bytes())
}
