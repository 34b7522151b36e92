package orderstate

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The state's JSON, encoded on every write and decoded on every lease, was 9% of the worker's CPU
// in the profile docs/benchmarks.md quotes. These measure it on two states a worker writes often.

// creditOK is the body of a credit.ok outcome (internal/events/testdata/credit.ok.golden.json).
const creditOK = `{"specversion":"1.0","id":"rakuten-01:100000123:5f3a9c01:2:credit.ok","source":"atodene-worker","type":"credit.ok","time":"2026-11-26T10:15:02+09:00","datacontenttype":"application/json","causationid":"7f1c0a52-3c55-4c3e-9d49-1b1b6c1f0e21","data":{"shop_id":"rakuten-01","order_id":"100000123","transaction_id":"12345678901","result":"ok","review":"","fee":205,"billed_amount":3155,"errors":[],"reasons":[],"decided_at":"2026-11-26T10:15:02+09:00"}}`

// trackingEntered is an order.tracking_entered event as received.
const trackingEntered = `{"specversion":"1.0","id":"9b2e4f7a-1c3d-4e5f-8a9b-0c1d2e3f4a5b","source":"mall-importer/rakuten","type":"order.tracking_entered","time":"2026-11-26T11:02:00+09:00","datacontenttype":"application/json","data":{"shop_id":"rakuten-01","order_id":"100000123","carrier":"yamato","tracking_number":"1234-5678-9012","invoice_date":"2026-11-26"}}`

func benchStates() []struct {
	name string
	st   State
} {
	at := time.Date(2026, 11, 26, 1, 15, 2, 0, time.UTC)
	return []struct {
		name string
		st   State
	}{
		// Registered and decided: the outcome waits in the outbox for its publish.
		{"decided", State{Version: 1, Epoch: "5f3a9c01", Status: StatusOK, TransactionID: "12345678901", Fee: 205,
			BilledAmount: 3155, Service: "2", DataHash: "v1:" + strings.Repeat("ab", 32),
			CausedBy: "7f1c0a52-3c55-4c3e-9d49-1b1b6c1f0e21", CreditSeq: 1042, CreditCreated: at.UnixNano(),
			Outbox:    []Outcome{{Subject: "credit.ok.rakuten-01", MsgID: "rakuten-01:100000123:5f3a9c01:2:credit.ok", Body: json.RawMessage(creditOK)}},
			UpdatedAt: at}},
		// Under review, re-checks scheduled, a tracking number parked until the credit is OK.
		{"under_review", State{Version: 3, Epoch: "5f3a9c01", Status: StatusPending, TransactionID: "12345678902", Fee: 205,
			BilledAmount: 11155, Service: "3", DataHash: "v1:" + strings.Repeat("cd", 32),
			Reasons: []string{"本人確認中", "住所確認中"}, CausedBy: "7f1c0a52-3c55-4c3e-9d49-1b1b6c1f0e21",
			CreditSeq: 1042, CreditCreated: at.UnixNano(), PollSince: at, PollSeq: 1, PollAttempt: 2, PollScheduled: true,
			PollAt: at.Add(2 * time.Minute),
			Parked: []Parked{{Type: "order.tracking_entered", Key: "mall-importer/rakuten:9b2e4f7a-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
				ID: "9b2e4f7a-1c3d-4e5f-8a9b-0c1d2e3f4a5b", Source: "mall-importer/rakuten", Subject: "orders.tracking_entered.rakuten-01",
				Stream: "ORDERS", Seq: 1107, Attempt: 1, Body: []byte(trackingEntered), Since: at.Add(time.Minute),
				Waits: "the credit check to end", Kind: "tracking"}},
			ParkTimer: at.Add(time.Hour), UpdatedAt: at}},
	}
}

// BenchmarkStateEncode renders a state as a write does (the next version's JSON).
func BenchmarkStateEncode(b *testing.B) {
	now := time.Date(2026, 11, 26, 1, 16, 0, 0, time.UTC)
	for _, bs := range benchStates() {
		b.Run(bs.name, func(b *testing.B) {
			enc, err := encode("rakuten-01", "100000123", bs.st, now, DefaultRetention)
			if err != nil || enc.st.Version != bs.st.Version+1 {
				b.Fatalf("encode: version %d, %v", enc.st.Version, err)
			}
			b.SetBytes(int64(len(enc.raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := encode("rakuten-01", "100000123", bs.st, now, DefaultRetention); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStateDecode reads a stored state as a lease or a Get does; the state read back
// encodes to the same bytes.
func BenchmarkStateDecode(b *testing.B) {
	for _, bs := range benchStates() {
		b.Run(bs.name, func(b *testing.B) {
			raw, err := json.Marshal(bs.st)
			if err != nil {
				b.Fatal(err)
			}
			st, err := decode("rakuten-01", "100000123", raw)
			if err != nil {
				b.Fatal(err)
			}
			if again, _ := json.Marshal(st); !bytes.Equal(again, raw) {
				b.Fatalf("decoded state encodes differently:\n%s\n%s", again, raw)
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decode("rakuten-01", "100000123", raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
