package events

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkDecodeCreated decodes and checks the order.created event of testdata, as the worker
// does with every order it receives (docs/benchmarks.md#how-to-reproduce).
func BenchmarkDecodeCreated(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("testdata", "order.created.json"))
	if err != nil {
		b.Fatal(err)
	}
	const subject = "orders.created.rakuten-01"
	decode := func() error {
		env, shop, err := DecodeEvent(subject, body)
		if err == nil {
			_, err = DecodeCreated(env, shop)
		}
		return err
	}
	if err := decode(); err != nil {
		b.Fatalf("the testdata event does not decode: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := decode(); err != nil {
			b.Fatal(err)
		}
	}
}
