package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// resultsStream starts a JetStream server with the worker's RESULTS stream and returns its URL,
// a client and the stream.
func resultsStream(t *testing.T) (string, jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	url, js := testenv.JetStream(t)
	s, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "RESULTS", Subjects: []string{"credit.>", "shipment.>", "invoice.>"},
		Duplicates: 2 * time.Minute, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return url, js, s
}

// outcomeOf publishes an outcome of typ with data to RESULTS, as the worker does.
func outcomeOf(t *testing.T, js jetstream.JetStream, typ, shop, id string, data any) uint64 {
	t.Helper()
	body, err := events.NewOutcome(id, typ, "cause-"+id, time.Date(2026, 11, 26, 1, 15, 2, 0, time.UTC), data)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(context.Background(), events.Subject(typ, shop), body, jetstream.WithMsgID(id))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func credit(shop, order, result string) events.Credit {
	return events.Credit{ShopID: shop, OrderID: order, TransactionID: "12345678901", Result: result, Fee: 205, BilledAmount: 3155,
		DecidedAt: "2026-11-26T10:15:02+09:00"}
}

// TestResultsTail: the outcomes from -since, filtered by shop, type and order, as a table and
// as JSON lines; -n stops the tail.
func TestResultsTail(t *testing.T) {
	t.Parallel()
	url, js, _ := resultsStream(t)
	outcomeOf(t, js, events.TypeCreditOK, "demo", "o-1", credit("demo", "A-1", "ok"))
	ng := credit("demo", "A-2", "ng")
	ng.Reasons = []string{"住所不備"}
	outcomeOf(t, js, events.TypeCreditNG, "demo", "o-2", ng)
	outcomeOf(t, js, events.TypeCreditOK, "other", "o-3", credit("other", "A-1", "ok"))
	outcomeOf(t, js, events.TypeShipmentOK, "demo", "o-4", events.Shipment{ShopID: "demo", OrderID: "A-1", TransactionID: "12345678901",
		CarrierCode: "12", TrackingNumber: "1234-5678", Report: "new", ReportedAt: "2026-11-26T10:20:00+09:00"})
	outcomeOf(t, js, events.TypeInvoiceNG, "demo", "o-5", events.Invoice{ShopID: "demo", OrderID: "A-2", TransactionID: "12345678902",
		Errors: []events.ProviderError{{Point: "credit", Message: "the credit of the order is ng, not ok"}}})

	r := runPublisher(t, url, "", false, "results", "tail", "-since", "1h", "-shop", "demo", "-n", "4")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 || !regexpLine(lines[0], "TIME (JST)", "TYPE", "SHOP", "ORDER", "TRANSACTION", "DETAIL") ||
		!regexpLine(lines[1], "2026-11-26 10:15:02", "credit.ok", "demo", "A-1", "12345678901", "fee 205, billed 3155") ||
		!regexpLine(lines[2], "credit.ng", "A-2", "reason 住所不備") ||
		!regexpLine(lines[3], "shipment.ok", "A-1", "carrier 12, tracking 1234-5678, report new") ||
		!regexpLine(lines[4], "invoice.ng", "A-2", "12345678902", "error credit: the credit of the order is ng, not ok") {
		t.Errorf("results tail:\n%s", r.stdout)
	}

	r = runPublisher(t, url, "", false, "results", "watch", "-since", "2026-01-01T00:00:00Z", "-type", "credit.*", "-order", "A-1", "-n", "2", "-json")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	var got []outcome
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var o outcome
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		got = append(got, o)
	}
	if len(got) != 2 || got[0].Shop != "demo" || got[1].Shop != "other" || got[0].Type != "credit.ok" || got[0].Seq != 1 ||
		got[0].ID != "o-1" || got[0].CausationID != "cause-o-1" || !strings.Contains(string(got[0].Data), `"transaction_id":"12345678901"`) {
		t.Errorf("results tail -json:\n%s", r.stdout)
	}
}

// TestResultsTailFollowsNewOutcomes: by default the tail starts with the outcomes published after
// it, and prints each as it comes.
func TestResultsTailFollowsNewOutcomes(t *testing.T) {
	t.Parallel()
	url, js, s := resultsStream(t)
	outcomeOf(t, js, events.TypeCreditOK, "demo", "old", credit("demo", "OLD-1", "ok"))
	done := make(chan runResult, 1)
	go func() {
		done <- runPublisher(t, url, "", false, "results", "tail", "-type", "credit.ok,credit.ng", "-n", "1")
	}()
	deadline := time.Now().Add(10 * time.Second)
	for info, _ := s.Info(context.Background()); info.State.Consumers == 0; info, _ = s.Info(context.Background()) {
		if time.Now().After(deadline) {
			t.Fatal("the tail did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	outcomeOf(t, js, events.TypeCreditPending, "demo", "p", credit("demo", "P-1", "pending")) // not of the types asked
	outcomeOf(t, js, events.TypeCreditNG, "demo", "new", credit("demo", "NEW-1", "ng"))
	select {
	case r := <-done:
		if r.err != nil || strings.Contains(r.stdout, "OLD-1") || strings.Contains(r.stdout, "P-1") || !regexpLine(r.stdout, "credit.ng", "NEW-1") {
			t.Errorf("tail: %v\n%s", r.err, r.stdout)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tail did not stop after -n 1")
	}
}

// TestResultsTailFollowsARecreatedStream: RESULTS deleted and created again while a tail runs (an
// embedded worker started afresh, an operator recreating the stream). Its sequences start at 1
// again, and the ordered consumer, reset, resumed after the last one it had delivered: the new
// stream's first outcomes were skipped without a word. The tail prints every outcome of the new
// stream, once, and says on stderr that it follows the new stream.
func TestResultsTailFollowsARecreatedStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, js, s := resultsStream(t)
	done := make(chan runResult, 1)
	go func() { done <- runPublisher(t, url, "", false, "results", "tail", "-json", "-n", "7") }()
	deadline := time.Now().Add(10 * time.Second)
	for info, _ := s.Info(ctx); info.State.Consumers == 0; info, _ = s.Info(ctx) {
		if time.Now().After(deadline) {
			t.Fatal("the tail did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 3 {
		outcomeOf(t, js, events.TypeCreditOK, "demo", fmt.Sprintf("old-%d", i), credit("demo", fmt.Sprintf("OLD-%d", i), "ok"))
	}
	for delivered := uint64(0); delivered < 3; { // the tail has the old stream's three
		if time.Now().After(deadline) {
			t.Fatal("the tail did not get the old stream's outcomes")
		}
		time.Sleep(20 * time.Millisecond)
		for info := range s.ListConsumers(ctx).Info() {
			delivered = max(delivered, info.Delivered.Stream)
		}
	}
	if err := js.DeleteStream(ctx, "RESULTS"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RESULTS", Subjects: []string{"credit.>", "shipment.>", "invoice.>"},
		Duplicates: 2 * time.Minute, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		outcomeOf(t, js, events.TypeCreditOK, "demo", fmt.Sprintf("new-%d", i), credit("demo", fmt.Sprintf("NEW-%d", i), "ok"))
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("%v\n%s", r.err, r.stderr)
		}
		for _, order := range []string{"OLD-0", "OLD-1", "OLD-2", "NEW-0", "NEW-1", "NEW-2", "NEW-3"} {
			if n := strings.Count(r.stdout, `"order_id":"`+order+`"`); n != 1 {
				t.Errorf("%s printed %d times:\n%s", order, n, r.stdout)
			}
		}
		if !strings.Contains(r.stderr, "stream RESULTS was created again") {
			t.Errorf("stderr %q: no word of the new stream", r.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the tail did not print the 7 outcomes: it skipped the new stream's first")
	}
}

// TestResultsTailStopsWhileTheStreamIsGone: interrupted while RESULTS is deleted (and not yet
// created again), the tail ends: the ordered consumer's resets wait for the stream whatever the
// context says, and the interrupt stops them.
func TestResultsTailStopsWhileTheStreamIsGone(t *testing.T) {
	t.Parallel()
	url, js, s := resultsStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		a := &App{Stdin: strings.NewReader(""), Stdout: new(strings.Builder), Stderr: new(strings.Builder), Getenv: func(string) string { return "" }}
		done <- a.Run(ctx, []string{"-nats-url", url, "results", "tail"})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for info, _ := s.Info(context.Background()); info.State.Consumers == 0; info, _ = s.Info(context.Background()) {
		if time.Now().After(deadline) {
			t.Fatal("the tail did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := js.DeleteStream(context.Background(), "RESULTS"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the ordered consumer notices and waits for the stream
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("interrupted tail: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tail did not end when interrupted while the stream was gone")
	}
}

// TestResultsTailStopsWhenInterrupted: an interrupt (the context's end) is the normal end of a
// tail: exit status 0.
func TestResultsTailStopsWhenInterrupted(t *testing.T) {
	t.Parallel()
	url, _, _ := resultsStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	a := &App{Stdin: strings.NewReader(""), Stdout: new(strings.Builder), Stderr: new(strings.Builder), Getenv: func(string) string { return "" }}
	if err := a.Run(ctx, []string{"-nats-url", url, "results", "tail"}); err != nil {
		t.Errorf("interrupted tail: %v, want nil", err)
	}
}

// TestResultsTailUsage: filters that cannot match are usage errors naming what is allowed.
func TestResultsTailUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-type", "credit.maybe"}, {"-type", "order.created"}, {"-shop", "a.b"}, {"-since", "yesterday"}, {"-n", "-1"}, {"extra"},
	} {
		r := runPublisher(t, "nats://127.0.0.1:1", "", false, append([]string{"results", "tail"}, args...)...)
		if !errors.As(r.err, new(UsageError)) {
			t.Errorf("results tail %v: %v, want a usage error", args, r.err)
		}
	}
	for list, want := range map[string]string{
		"":                           "[credit.> shipment.> invoice.>]",
		"credit.ok":                  "[credit.ok.s]",
		"credit.*,credit.ok,invoice": "[credit.*.s invoice.*.s]",
		"shipment.ng, shipment.ok":   "[shipment.ng.s shipment.ok.s]",
	} {
		shop := "s"
		if list == "" {
			shop = ""
		}
		if got, err := typeFilters(list, shop); err != nil || fmt.Sprint(got) != want {
			t.Errorf("typeFilters(%q) = %v, %v; want %s", list, got, err, want)
		}
	}
}
