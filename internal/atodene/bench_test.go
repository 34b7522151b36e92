package atodene

import "testing"

// The hot paths of a registration that docs/benchmarks.md measures in the worker's profiles:
// rendering the request document and checking the order against the field rules. Each runs on
// the orders of the golden files, and first checks that it does what the golden test pins.

// benchOrders are the orders of the register_ok and register_ship_to_many_items golden files.
var benchOrders = []struct {
	name, golden string
	order        func() Order
}{
	{"one_item", "register_ok.request.xml", sampleOrder},
	{"ship_to_14_items", "register_ship_to_many_items.request.xml", shipToManyItemsOrder},
}

// BenchmarkRegisterRequest renders transaction.do as Register does: the order's parts, then the
// document written element by element.
func BenchmarkRegisterRequest(b *testing.B) {
	c := newTestClient(b, "http://127.0.0.1:1")
	render := func(o Order) []byte {
		return registerRequest(c.linkInfo(), browserInfoXML{HTTPHeader: o.Browser.HTTPHeader, DeviceInfo: o.Browser.DeviceInfo},
			o.customerXML(), o.shipXML(), o.detailsXML())
	}
	for _, bo := range benchOrders {
		b.Run(bo.name, func(b *testing.B) {
			o := bo.order()
			checkGolden(b, bo.golden, render(o))
			if b.Failed() {
				return
			}
			b.ReportAllocs()
			for b.Loop() {
				render(o)
			}
		})
	}
}

// BenchmarkValidate checks an order against every field rule, as Register does before sending.
func BenchmarkValidate(b *testing.B) {
	for _, bo := range benchOrders {
		b.Run(bo.name, func(b *testing.B) {
			o := bo.order()
			if err := o.Validate(); err != nil {
				b.Fatalf("the golden order is invalid: %v", err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := o.Validate(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
