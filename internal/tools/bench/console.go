package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/console"
	"github.com/atodene-worker/atodene-worker/internal/consoleops"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// consoleStates is how many orders of the loaded index get a state written through the store
// before the console's pages are measured: they become the newest of the index, so the first
// pages show orders with states to read and decode, as a real shop's do.
const consoleStates = 2000

// consolePages measures the console's order list (GET /orders, rendered server-side, timed
// around the handler: the index listing, the counts per status, the page's states and the
// template) against the index the scenario loaded. calls pages of each kind.
func consolePages(ctx context.Context, store *orderstate.Store, plan indexPlan, calls int) ([]IndexQuery, error) {
	now := time.Now()
	for i := range consoleStates {
		st := orderstate.State{Status: orderstate.StatusOK, TransactionID: fmt.Sprint(30000000000 + i), Fee: 330, BilledAmount: 3300,
			Service: "3", OrderedAt: now.Add(-time.Duration(i) * time.Minute)}
		switch i % 10 {
		case 0:
			st.Status, st.TransactionID = orderstate.StatusNG, ""
			st.Errors = []orderstate.Error{{Point: "customer", Code: "er000201", Message: "与信審査の結果、ご利用いただけません"}}
		case 1:
			st.Status, st.Review = orderstate.StatusPending, "hold"
		}
		if _, err := store.Put(ctx, indexShop, fmt.Sprintf("C%06d", i), st, now); err != nil {
			return nil, err
		}
	}
	key := make([]byte, console.MinSessionKey)
	_, _ = rand.Read(key)
	srv, err := console.New(console.Config{Store: store, Auth: console.Auth{AutoLogin: "bench", SessionKey: key, InsecureCookie: true}})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	day := func(i int) string { return plan.days[i%len(plan.days)] }
	kinds := []struct {
		name  string
		query func(i int) url.Values
	}{
		{"all orders, newest first", func(int) url.Values { return url.Values{} }},
		{"status ok", func(int) url.Values { return url.Values{"status": {"ok"}} }},
		{"status ng (with error texts)", func(int) url.Values { return url.Values{"status": {"ng"}} }},
		{"on hold", func(int) url.Values { return url.Values{"status": {"hold"}} }},
		{"order-id prefix of a day", func(i int) url.Values { return url.Values{"prefix": {day(i)}} }},
		{"ordered on a day", func(i int) url.Values {
			d, _ := time.Parse("20060102", day(i))
			return url.Values{"ordered_from": {d.Format("2006-01-02")}, "ordered_to": {d.Format("2006-01-02")}}
		}},
	}
	var out []IndexQuery
	for _, k := range kinds {
		q := IndexQuery{Name: k.name, Calls: calls}
		lat := make([]time.Duration, 0, calls)
		for i := range calls {
			v := k.query(i * 7)
			v.Set("shop", indexShop)
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/orders?"+v.Encode(), nil)
			req.RemoteAddr, req.Host = "127.0.0.1:40000", "127.0.0.1" // the automatic login is for loopback clients and names
			rec := httptest.NewRecorder()
			start := time.Now()
			srv.ServeHTTP(rec, req)
			lat = append(lat, time.Since(start))
			if rec.Code != http.StatusOK {
				return nil, fmt.Errorf("console GET /orders?%s: status %d: %.300s", v.Encode(), rec.Code, rec.Body.String())
			}
			q.Orders += float64(bytes.Count(rec.Body.Bytes(), []byte(`data-testid="order-row"`))) / float64(calls)
		}
		q.Latency = Summarize(lat)
		out = append(out, q)
	}
	return out, nil
}

// The console's bulk action: bulkRounds times 与信キャンセル on bulkOrders orders.
const (
	bulkOrders = 500
	bulkRounds = 5
)

// consoleBulk measures the console's bulk action as its confirmation runs it
// (consoleops.Ops.Do, the console's Actions): 与信キャンセル on bulkOrders OK orders, each order's
// state read and checked, each event published to ORDERS, timed until JetStream acknowledged
// every one. The states are written into store; ORDERS is a stack's own.
func (r *runner) consoleBulk(ctx context.Context, store *orderstate.Store) (Dist, error) {
	s, err := r.newStack(ctx, "console", sandboxOpts{})
	if err != nil {
		return Dist{}, err
	}
	defer s.Close()
	if err := s.createStreams(ctx); err != nil {
		return Dist{}, err
	}
	ops, err := consoleops.New(consoleops.Config{JetStream: s.JS, Store: store})
	if err != nil {
		return Dist{}, err
	}
	now := time.Now()
	lat := make([]time.Duration, 0, bulkRounds)
	for round := range bulkRounds {
		targets := make([]console.Target, bulkOrders)
		for i := range targets {
			targets[i] = console.Target{Shop: indexShop, Order: fmt.Sprintf("K%d-%04d", round, i)}
			st := orderstate.State{Status: orderstate.StatusOK, TransactionID: fmt.Sprint(40000000000 + round*bulkOrders + i), Fee: 330, BilledAmount: 3300}
			if _, err := store.Put(ctx, indexShop, targets[i].Order, st, now); err != nil {
				return Dist{}, err
			}
		}
		start := time.Now()
		out, err := ops.Do(ctx, "bench", "", console.ActionCancel, targets)
		lat = append(lat, time.Since(start))
		if err != nil {
			return Dist{}, fmt.Errorf("bulk cancel: %w", err)
		}
		for _, o := range out {
			if !o.Published {
				return Dist{}, fmt.Errorf("bulk cancel: order %s refused: %s", o.Order, o.Reason)
			}
		}
	}
	return Summarize(lat), nil
}
