// Package clienttest drives the ATODENE sandbox (package sandbox) through the real client (package
// atodene) over HTTP. Each test starts its own sandbox behind httptest.Server, with a fake clock so
// that reviews and holds advance without sleeping, and checks both what the client returns (typed
// results and errors) and what the sandbox's admin API says happened.
package clienttest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/clock"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

const (
	reviewDelay = 30 * time.Second
	holdDelay   = 60 * time.Second
	slowDelay   = 50 * time.Millisecond
	// maxRetries is the clients' MaxRetries: a retried call reaches the sandbox maxRetries+1 times.
	maxRetries = 2
)

// env is one sandbox behind a real HTTP server, and a client for its demo shop.
type env struct {
	t      *testing.T
	url    string
	clock  *clock.Fake // the sandbox's clock; tests move it instead of sleeping
	client *atodene.Client
}

// newEnv starts a sandbox for t; mods, if any, change its configuration first.
func newEnv(t *testing.T, mods ...func(*sandbox.Config)) *env {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	cfg := sandbox.Config{
		ReviewDelay: reviewDelay, HoldDelay: holdDelay, SlowDelay: slowDelay, Now: clk.Now, Seed: 1,
	}
	for _, m := range mods {
		m(&cfg)
	}
	sb, err := sandbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sb)
	t.Cleanup(ts.Close)
	t.Cleanup(sb.Close) // runs first: releases requests held by a timeout fault, so ts.Close need not wait
	e := &env{t: t, url: ts.URL, clock: clk}
	e.client = e.newClient(nil)
	return e
}

// demoCredentials are the linkInfo of sandbox.DemoShop.
func demoCredentials() atodene.Credentials {
	d := sandbox.DemoShop
	return atodene.Credentials{ShopCode: d.ShopCode, LinkID: d.LinkID, LinkPassword: d.LinkPassword}
}

// newClient builds a client for the demo shop; mod, if set, changes its configuration first.
func (e *env) newClient(mod func(*atodene.Config)) *atodene.Client {
	e.t.Helper()
	return demoClient(e.t, e.url, nil, mod)
}

// demoClient builds a client for the demo shop of the sandbox at baseURL, sending through httpClient
// (nil: the client's default); mod, if set, changes its configuration first.
func demoClient(t *testing.T, baseURL string, httpClient *http.Client, mod func(*atodene.Config)) *atodene.Client {
	t.Helper()
	cfg := atodene.Config{
		BaseURL:       baseURL + sandbox.BasePath,
		Credentials:   demoCredentials(),
		HTTPClient:    httpClient,
		Timeout:       5 * time.Second,
		MaxRetries:    maxRetries,
		RetryInterval: time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := atodene.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newOrder is a valid order of billed yen: one product line and a 500 yen shipping line.
func newOrder(shopOrderID, email string, billed int64) atodene.Order {
	return atodene.Order{
		ShopOrderID: shopOrderID,
		OrderedAt:   time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC),
		Buyer: atodene.Person{
			Name: "加藤 太郎", NameKana: "カトウ タロウ", Zip: "150-0001", Address: "東京都渋谷区神宮前1-1-1",
			Phone: "03-1234-5678", Email: email,
		},
		Items:        []atodene.Item{{Name: "緑茶 100g", UnitPrice: billed - 500, Quantity: 1}},
		ShippingFee:  500,
		BilledAmount: billed,
		Service:      atodene.ServiceSeparate,
	}
}

// request checks o as the worker's handlers do before they send it. The orders of these tests are
// valid, so a failure is a mistake of the test: it panics, which works in any goroutine.
func request(o atodene.Order) atodene.Request {
	req, err := o.Check()
	if err != nil {
		panic(fmt.Sprintf("test order %s is invalid: %v", o.ShopOrderID, err))
	}
	return req
}

// register registers o, failing the test on any error.
func (e *env) register(o atodene.Order) atodene.Registration {
	e.t.Helper()
	reg, err := e.client.Register(e.t.Context(), request(o))
	if err != nil {
		e.t.Fatalf("registering %s: %v", o.ShopOrderID, err)
	}
	return reg
}

// screening asks getauthori.do, failing the test on any error.
func (e *env) screening(txID string) atodene.Screening {
	e.t.Helper()
	s, err := e.client.GetAuthori(e.t.Context(), txID)
	if err != nil {
		e.t.Fatalf("getauthori %s: %v", txID, err)
	}
	return s
}

// jsonBody is the body of an admin API request: body in JSON, or none if body is nil.
func jsonBody(t *testing.T, body any) io.Reader {
	t.Helper()
	if body == nil {
		return http.NoBody
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

// admin sends one admin API call and decodes its JSON answer into out (unless nil).
func (e *env) admin(method, path string, body any, wantStatus int, out any) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.url+path, jsonBody(e.t, body))
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != wantStatus {
		e.t.Fatalf("%s %s: HTTP %d, want %d", method, path, res.StatusCode, wantStatus)
	}
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			e.t.Fatalf("%s %s: decoding: %v", method, path, err)
		}
	}
}

// transactions is GET /sandbox/transactions?shopOrderId=id.
func (e *env) transactions(shopOrderID string) []sandbox.TransactionView {
	e.t.Helper()
	var v []sandbox.TransactionView
	e.admin(http.MethodGet, "/sandbox/transactions?shopOrderId="+url.QueryEscape(shopOrderID), nil, http.StatusOK, &v)
	return v
}

// onlyTransaction is the single transaction of an order.
func (e *env) onlyTransaction(shopOrderID string) sandbox.TransactionView {
	e.t.Helper()
	v := e.transactions(shopOrderID)
	if len(v) != 1 {
		e.t.Fatalf("order %s has %d transactions, want 1: %+v", shopOrderID, len(v), v)
	}
	return v[0]
}

// allTransactions is GET /sandbox/transactions without a filter.
func (e *env) allTransactions() []sandbox.TransactionView {
	e.t.Helper()
	var v []sandbox.TransactionView
	e.admin(http.MethodGet, "/sandbox/transactions", nil, http.StatusOK, &v)
	return v
}

// stats is GET /sandbox/stats.
func (e *env) stats() sandbox.Stats {
	e.t.Helper()
	var st sandbox.Stats
	e.admin(http.MethodGet, "/sandbox/stats", nil, http.StatusOK, &st)
	return st
}

// statsAfter waits until the sandbox has recorded at least n calls of op, then returns the stats.
// The sandbox records a call just after answering it, so a client can see its answer a moment before
// the stats count it; once the client has returned no further call comes, so "at least" is "exactly"
// unless a test asserts otherwise.
func (e *env) statsAfter(op string, n int) sandbox.Stats {
	e.t.Helper()
	var st sandbox.Stats
	wait.For(e.t, 5*time.Second, fmt.Sprintf("%d calls of %s", n, op), func() bool {
		st = e.stats()
		return st.Operations[op].Calls >= n
	})
	return st
}

// setFaults is PUT /sandbox/faults.
func (e *env) setFaults(f sandbox.Faults) {
	e.t.Helper()
	e.admin(http.MethodPut, "/sandbox/faults", f, http.StatusOK, nil)
}

// wantRejected checks that err is a *atodene.RejectedError whose first error has point and code.
func wantRejected(t *testing.T, err error, point, code string) *atodene.RejectedError {
	t.Helper()
	var rej *atodene.RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("got %T %v, want *atodene.RejectedError", err, err)
	}
	if len(rej.Errors) == 0 || rej.Errors[0].Point != point || rej.Errors[0].Code != code {
		t.Fatalf("got rejection %+v, want errorPoint %s errorCode %s", rej.Errors, point, code)
	}
	if atodene.OutcomeUnknown(err) || atodene.IsRetrySafe(err) {
		t.Errorf("a rejection counts as outcome unknown or retry-safe: %v", err)
	}
	return rej
}
