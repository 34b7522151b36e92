package atodene

import (
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/testenv/golden"
)

// The hot paths of a registration that docs/benchmarks.md measures in the worker's profiles:
// checking an order against the field rules while building the parts of its request, and
// rendering the request document from them. Each runs on the orders of the golden files, and
// first checks that it does what the golden test pins.

// benchOrders are the orders of the register_ok and register_ship_to_many_items golden files.
var benchOrders = []struct {
	name, golden string
	order        func() Order
}{
	{"one_item", "register_ok.request.xml", sampleOrder},
	{"ship_to_14_items", "register_ship_to_many_items.request.xml", shipToManyItemsOrder},
}

// renderRegister renders transaction.do from req as Register does, without checking it again.
func renderRegister(c *Client, req Request) []byte {
	return registerRequest(c.linkInfo(), req.browser, req.customer, req.ship, req.details)
}

// BenchmarkCheck checks an order against every field rule and builds the parts of its request:
// what the handler does once per registration or change (Order.Check).
func BenchmarkCheck(b *testing.B) {
	for _, bo := range benchOrders {
		b.Run(bo.name, func(b *testing.B) {
			o := bo.order()
			if _, err := o.Check(); err != nil {
				b.Fatalf("the golden order is invalid: %v", err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := o.Check(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRegisterRequest renders transaction.do from a checked request as Register does: the
// document written element by element from the request's prebuilt parts.
func BenchmarkRegisterRequest(b *testing.B) {
	c := newTestClient(b, "http://127.0.0.1:1")
	for _, bo := range benchOrders {
		b.Run(bo.name, func(b *testing.B) {
			req := mustCheck(b, bo.order())
			golden.Check(b, bo.golden, renderRegister(c, req))
			if b.Failed() {
				return
			}
			b.ReportAllocs()
			for b.Loop() {
				renderRegister(c, req)
			}
		})
	}
}

// BenchmarkRegistrationRequest is all the request work of one registration on the handler path,
// short of HTTP: the order checked and its parts built once (Order.Check, in the handler), then
// the document rendered from them (Register).
func BenchmarkRegistrationRequest(b *testing.B) {
	c := newTestClient(b, "http://127.0.0.1:1")
	for _, bo := range benchOrders {
		b.Run(bo.name, func(b *testing.B) {
			o := bo.order()
			golden.Check(b, bo.golden, renderRegister(c, mustCheck(b, o)))
			if b.Failed() {
				return
			}
			b.ReportAllocs()
			for b.Loop() {
				req, err := o.Check()
				if err != nil {
					b.Fatal(err)
				}
				renderRegister(c, req)
			}
		})
	}
}
