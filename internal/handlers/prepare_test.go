package handlers

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
)

// TestPrepareChecksOnce: on the way to Register or Modify an order meets ATODENE's field rules
// once, in prepare (the client sends the checked request as it is: internal/atodene's
// TestClientDoesNotCheckAgain). Checking allocates, so prepare's allocations tell how many
// times it checked: all of them less those of its other steps, counted one by one, are one
// Check's. A prepare that skipped the check, or checked twice, fails.
func TestPrepareChecksOnce(t *testing.T) {
	ev := hashOrder()
	req, err := prepare(hashShop, ev)
	if err != nil {
		t.Fatal(err)
	}
	order := req.checked.Order()
	var (
		sinkReq   request
		sinkOrder atodene.Order
		sinkHash  string
	)
	check := testing.AllocsPerRun(100, func() { sinkReq.checked, _ = order.Check() })
	others := testing.AllocsPerRun(100, func() {
		res, _ := hashShop.Fees.Apply(ev.Fee, *ev.BilledAmount)
		sinkOrder, sinkReq.normalized = toProviderOrder(hashShop, ev, res.Fee, res.BilledAmount)
		sinkHash = dataHash(sinkOrder)
	})
	all := testing.AllocsPerRun(100, func() { sinkReq, _ = prepare(hashShop, ev) })
	_ = sinkHash
	if check == 0 {
		t.Fatal("Order.Check allocates nothing: the allocations of prepare cannot tell how often it checks")
	}
	if checks := (all - others) / check; checks < 0.5 || checks > 1.5 {
		t.Errorf("prepare checks the order %.1f times (%.0f allocations; %.0f in its other steps, %.0f in one Check), want once",
			checks, all, others, check)
	}
}

// registeredA_H_1 is ATODENE's answer to the registration of hashOrder: shopOrderId A-H-1.
const registeredA_H_1 = `<?xml version="1.0" encoding="UTF-8"?>
<response>
  <result>OK</result>
  <transactionInfo>
    <shopOrderId>A-H-1</shopOrderId>
    <transactionId>12345678901</transactionId>
    <autoAuthoriresult>OK</autoAuthoriresult>
  </transactionInfo>
</response>
`

// answering is an HTTP transport that reads each request and answers it with body, in memory.
type answering []byte

func (a answering) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	_ = r.Body.Close()
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(a)), Request: r}, nil
}

// BenchmarkPrepare is the handler's work on an order before it takes the lease: the fee table,
// the provider's form, its one check against the field rules, and its hash.
func BenchmarkPrepare(b *testing.B) {
	ev := hashOrder()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := prepare(hashShop, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRegistration is the registration request path without Redis or a network: prepare,
// then the client's Register of the checked request (rendering, an in-memory HTTP exchange,
// parsing the answer).
func BenchmarkRegistration(b *testing.B) {
	c, err := atodene.New(atodene.Config{
		BaseURL:     "http://atodene.invalid/api/",
		Credentials: atodene.Credentials{ShopCode: "abc123456789", LinkPassword: "secret-pw1"},
		HTTPClient:  &http.Client{Transport: answering(registeredA_H_1)},
	})
	if err != nil {
		b.Fatal(err)
	}
	ev := hashOrder()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		req, err := prepare(hashShop, ev)
		if err != nil {
			b.Fatal(err)
		}
		if reg, err := c.Register(ctx, req.checked); err != nil || reg.Auto != atodene.DecisionOK {
			b.Fatalf("Register = %+v, %v", reg, err)
		}
	}
}
