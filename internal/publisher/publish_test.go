package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// ordersStream starts an in-process JetStream server with an ORDERS stream on orders.> (with a
// duplicate window, as the worker creates it) and returns the server's URL and the stream.
func ordersStream(t *testing.T) (string, jetstream.Stream) {
	t.Helper()
	url, js := testenv.JetStream(t)
	s, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"},
		Duplicates: 2 * time.Minute, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return url, s
}

type runResult struct {
	stdout, stderr string
	err            error
}

// runPublisher runs the tool against the server at url, with stdin as its input.
func runPublisher(t *testing.T, url, stdin string, terminal bool, args ...string) runResult {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &App{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }, Terminal: terminal}
	err := a.Run(context.Background(), append([]string{"-nats-url", url}, args...))
	return runResult{out.String(), errOut.String(), err}
}

// storedMsgs returns the messages of the stream, in order.
func storedMsgs(t *testing.T, s jetstream.Stream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// orderData is a valid order.created data object of shop demo.
func orderData(orderID string) string {
	return `{"shop_id": "demo", "order_id": "` + orderID + `", "ordered_at": "2026-11-26T10:14:03+09:00",
 "buyer": {"name": "加藤 太郎", "name_kana": "カトウ タロウ", "zip": "150-0001", "address": "東京都渋谷区神宮前1-1-1",
  "phone": "03-1234-5678", "email": "taro@example.jp"},
 "items": [{"name": "緑茶ティーバッグ 50包", "unit_price": 1200, "quantity": 2}],
 "shipping_fee": 550, "billed_amount": 2950, "invoice_delivery": "separate"}`
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// checkStored checks a stored message as the worker would see it: the subject, the headers and
// an envelope that DecodeEnvelope accepts.
func checkStored(t *testing.T, m *jetstream.RawStreamMsg, subject string) events.Envelope {
	t.Helper()
	if m.Subject != subject {
		t.Errorf("subject = %s, want %s", m.Subject, subject)
	}
	env, err := events.DecodeEnvelope(m.Subject, m.Data)
	if err != nil {
		t.Fatalf("stored event does not decode: %v\n%s", err, m.Data)
	}
	if got := m.Header.Get(jetstream.MsgIDHeader); got != events.MsgID(env.Source, env.ID) || got == "" {
		t.Errorf("Nats-Msg-Id = %q, want %q, from source %q and id %q", got, events.MsgID(env.Source, env.ID), env.Source, env.ID)
	}
	if got := m.Header.Get("Content-Type"); got != events.ContentType {
		t.Errorf("Content-Type = %q", got)
	}
	return env
}

func TestPublishWholeEventFromFile(t *testing.T) {
	t.Parallel()
	url, s := ordersStream(t)
	r := runPublisher(t, url, "", false, "publish", "-file", "../events/testdata/order.created.json")
	if r.err != nil {
		t.Fatalf("publish: %v\n%s", r.err, r.stderr)
	}
	want := "published 7f1c0a52-3c55-4c3e-9d49-1b1b6c1f0e21 to orders.created.rakuten-01: stream ORDERS, sequence 1\n"
	if r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	msgs := storedMsgs(t, s)
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(msgs))
	}
	env := checkStored(t, msgs[0], "orders.created.rakuten-01")
	if env.Source != "mall-importer/rakuten" || env.Time != "2026-11-26T10:15:00+09:00" {
		t.Errorf("the event's own attributes were not kept: %+v", env)
	}
}

func TestPublishDataFromStdin(t *testing.T) {
	t.Parallel()
	url, s := ordersStream(t)
	before := time.Now().Truncate(time.Second) // the envelope's time has whole seconds
	r := runPublisher(t, url, orderData("A-1"), false, "publish", "-type", "order.created", "-file", "-", "-source", "mall-importer/test")
	after := time.Now()
	if r.err != nil {
		t.Fatalf("publish: %v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.stdout, "to orders.created.demo: stream ORDERS, sequence 1") {
		t.Errorf("stdout = %q", r.stdout)
	}
	msgs := storedMsgs(t, s)
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(msgs))
	}
	env := checkStored(t, msgs[0], "orders.created.demo")
	if !uuidPattern.MatchString(env.ID) {
		t.Errorf("id %q is not a random UUID", env.ID)
	}
	if env.SpecVersion != "1.0" || env.Source != "mall-importer/test" || env.Type != "order.created" || env.DataContentType != "application/json" {
		t.Errorf("envelope not filled in: %+v", env)
	}
	if at, err := time.Parse(time.RFC3339, env.Time); err != nil || at.Before(before) || at.After(after) {
		t.Errorf("time %q is not the time of publishing, between %s and %s (%v)", env.Time,
			before.Format(time.RFC3339), after.Format(time.RFC3339), err)
	}
	if o, err := events.DecodeOrder(env, "demo"); err != nil || o.OrderID != "A-1" {
		t.Errorf("data = %+v, %v", o, err)
	}
}

func TestPublishFromFlags(t *testing.T) {
	t.Parallel()
	url, s := ordersStream(t)
	tests := []struct {
		args    []string
		subject string
		data    string
	}{
		{[]string{"-type", "order.cancelled", "-shop", "demo", "-order", "A-1", "-reason", "お客様都合"},
			"orders.cancelled.demo", `{"shop_id":"demo","order_id":"A-1","reason":"お客様都合"}`},
		{[]string{"-type", "order.tracking_entered", "-shop", "demo", "-order", "A-1", "-carrier", "yamato", "-tracking", "1234-5678", "-invoice-date", "2026-11-27"},
			"orders.tracking_entered.demo", `{"shop_id":"demo","order_id":"A-1","carrier":"yamato","tracking_number":"1234-5678","invoice_date":"2026-11-27"}`},
		{[]string{"-type", "order.invoice_requested", "-shop", "demo", "-order", "A-1"},
			"orders.invoice_requested.demo", `{"shop_id":"demo","order_id":"A-1"}`},
	}
	// One after the other: they share the stream, and each checks the message it adds.
	for i, tt := range tests {
		r := runPublisher(t, url, "", false, append([]string{"publish"}, tt.args...)...)
		if r.err != nil {
			t.Fatalf("publish %v: %v\n%s", tt.args, r.err, r.stderr)
		}
		msgs := storedMsgs(t, s)
		if len(msgs) != i+1 {
			t.Fatalf("%d messages stored, want %d", len(msgs), i+1)
		}
		env := checkStored(t, msgs[i], tt.subject)
		if string(env.Data) != tt.data {
			t.Errorf("data = %s, want %s", env.Data, tt.data)
		}
		if env.Source != "publisher" {
			t.Errorf("source = %q, want the default", env.Source)
		}
	}
}

func TestPublishDataWithoutTypeIsUsageError(t *testing.T) {
	t.Parallel()
	url, s := ordersStream(t)
	path := writeFile(t, "order.json", orderData("A-1"))
	r := runPublisher(t, url, "", false, "publish", "-file", path)
	if !errors.As(r.err, new(UsageError)) || !strings.Contains(r.err.Error(), "-type") {
		t.Fatalf("err = %v, want a usage error asking for -type", r.err)
	}
	if n := len(storedMsgs(t, s)); n != 0 {
		t.Errorf("%d messages stored, want none", n)
	}
}

func TestPublishInvalidEventListsFields(t *testing.T) {
	t.Parallel()
	url, s := ordersStream(t)
	bad := strings.NewReplacer(`"zip": "150-0001"`, `"zip": "15O-0001"`, `"name_kana": "カトウ タロウ"`, `"name_kana": "加藤 太郎"`,
		`"billed_amount": 2950`, `"billed_amount": 3000`).Replace(orderData("A-1"))
	tests := []struct {
		name, stdin string
		args        []string
		fields      []string
	}{
		{"order data", bad, []string{"-type", "order.created", "-file", "-"}, []string{"buyer.zip: ", "buyer.name_kana: "}},
		{"billed amount", strings.Replace(orderData("A-1"), `"billed_amount": 2950`, `"billed_amount": 3000`, 1),
			[]string{"-type", "order.created", "-file", "-"}, []string{"billed_amount: 3000 does not equal"}},
		{"envelope", `{"specversion": "0.3", "type": "order.shipped", "data": {"shop_id": "demo", "order_id": "A-1"}}`,
			[]string{"-file", "-"}, []string{"specversion: ", "type: \"order.shipped\" is not an inbound event type"}},
		{"shop", `{"shop_id": "de mo", "order_id": "A 1"}`, []string{"-type", "order.invoice_requested", "-file", "-"},
			[]string{"shop_id: must be", "order_id: must be"}},
		{"type contradicts -type", `{"specversion": "1.0", "type": "order.cancelled", "data": {"shop_id": "demo", "order_id": "A-1"}}`,
			[]string{"-type", "order.invoice_requested", "-file", "-"}, []string{`type: "order.cancelled" contradicts -type`}},
		{"tracking from flags", "", []string{"-type", "order.tracking_entered", "-shop", "demo", "-order", "A-1", "-carrier", "pigeon", "-tracking", "12", "-invoice-date", "27/11/2026"},
			[]string{"carrier: ", "tracking_number: ", "invoice_date: "}},
		{"not JSON", "{", []string{"-type", "order.created", "-file", "-"}, []string{"body: is not valid JSON: unexpected end of JSON input"}},
		{"a trailing comma", `{"shop_id": "demo", "order_id": "A-1",}`, []string{"-type", "order.created", "-file", "-"},
			[]string{"body: is not valid JSON: invalid character '}' looking for beginning of object key string"}},
		{"an array", "[1]", []string{"-type", "order.created", "-file", "-"}, []string{"body: must be a JSON object, got array"}},
		{"null", "null", []string{"-type", "order.created", "-file", "-"}, []string{"body: must be a JSON object, got null"}},
		{"not UTF-8", "{\"shop_id\": \"\xff\"}", []string{"-type", "order.created", "-file", "-"}, []string{"body: is not valid UTF-8"}},
	}
	for _, tt := range tests {
		r := runPublisher(t, url, tt.stdin, false, append([]string{"publish"}, tt.args...)...)
		if r.err == nil || errors.As(r.err, new(UsageError)) || !strings.Contains(r.err.Error(), "nothing published") {
			t.Errorf("%s: err = %v, want a rejection", tt.name, r.err)
		}
		for _, f := range tt.fields {
			if !strings.Contains(r.stderr, f) {
				t.Errorf("%s: stderr does not name %q:\n%s", tt.name, f, r.stderr)
			}
		}
	}
	if n := len(storedMsgs(t, s)); n != 0 {
		t.Errorf("%d messages stored, want none", n)
	}
}

func TestPublishTwiceIsDuplicate(t *testing.T) {
	t.Parallel()
	url, s := ordersStream(t)
	first := runPublisher(t, url, "", false, "publish", "-file", "../events/testdata/order.created.json")
	second := runPublisher(t, url, "", false, "publish", "-file", "../events/testdata/order.created.json")
	if first.err != nil || second.err != nil {
		t.Fatalf("publish: %v, %v", first.err, second.err)
	}
	if strings.Contains(first.stdout, "duplicate") {
		t.Errorf("first publish reported as a duplicate: %s", first.stdout)
	}
	want := "duplicate: stream ORDERS already holds id 7f1c0a52-3c55-4c3e-9d49-1b1b6c1f0e21 (sequence 1)"
	if !strings.HasPrefix(second.stdout, want) {
		t.Errorf("second stdout = %q, want %q…", second.stdout, want)
	}
	// The same with -id from flags.
	for range 2 {
		if r := runPublisher(t, url, "", false, "publish", "-type", "order.cancelled", "-shop", "demo", "-order", "A-1", "-id", "cancel-A-1"); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if n := len(storedMsgs(t, s)); n != 2 {
		t.Errorf("%d messages stored, want 2", n)
	}
}

func TestPublishUsageErrors(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "order.json", orderData("A-1"))
	tests := [][]string{
		{},
		{"-type", "order.shipped", "-file", path},
		{"-type", "order.created", "-shop", "demo", "-order", "A-1"},
		{"-type", "order.cancelled", "-shop", "demo"},
		{"-type", "order.cancelled", "-shop", "demo", "-order", "A-1", "-carrier", "yamato"},
		{"-type", "order.tracking_entered", "-shop", "demo", "-order", "A-1"},
		{"-type", "order.created", "-file", path, "-shop", "demo"},
		{"-file", path, "extra"},
		{"-nonsense"},
	}
	for _, args := range tests {
		r := runPublisher(t, "nats://127.0.0.1:1", "", false, append([]string{"publish"}, args...)...)
		if !errors.As(r.err, new(UsageError)) {
			t.Errorf("publish %v: err = %v, want a usage error", args, r.err)
		}
	}
}

func TestPublishDryRun(t *testing.T) {
	t.Parallel()
	r := runPublisher(t, "nats://127.0.0.1:1", orderData("A-1"), false, "publish", "-type", "order.created", "-file", "-", "-id", "e-1", "-dry-run")
	if r.err != nil {
		t.Fatalf("dry run: %v\n%s", r.err, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "subject orders.created.demo, id e-1 (dry run: not published)\n{") {
		t.Errorf("stdout = %q", r.stdout)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"publish", "batch", "sample"} {
		r := runPublisher(t, "nats://127.0.0.1:1", "", false, cmd, "-h")
		if !errors.Is(r.err, flag.ErrHelp) {
			t.Errorf("%s -h: err = %v, want flag.ErrHelp", cmd, r.err)
		}
		if !strings.HasPrefix(r.stdout, "Usage: publisher "+cmd) || !strings.Contains(r.stdout, "Flags:\n  -") {
			t.Errorf("%s -h printed:\n%s", cmd, r.stdout)
		}
	}
	r := runPublisher(t, "nats://127.0.0.1:1", "", false, "-h")
	for _, cmd := range []string{"publish", "batch", "sample", "dlq", "order", "results", "invoice"} {
		if !strings.Contains(r.stdout, "  "+cmd+" ") {
			t.Errorf("publisher -h does not list %s:\n%s", cmd, r.stdout)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Two importers that both number their events 0001 publish two events: CloudEvents makes source
// and id unique together (docs/events.md#event-identity). The same source and id again is one event, dropped by
// the stream's duplicate window.
func TestPublishSameIDFromTwoSources(t *testing.T) {
	t.Parallel()
	url, s := ordersStream(t)
	for _, source := range []string{"mall-importer/rakuten", "mall-importer/yahoo", "mall-importer/rakuten"} {
		r := runPublisher(t, url, orderData("A-1"), false, "publish", "-type", "order.created", "-file", "-", "-id", "0001", "-source", source)
		if r.err != nil {
			t.Fatalf("publish from %s: %v\n%s", source, r.err, r.stderr)
		}
	}
	msgs := storedMsgs(t, s)
	if len(msgs) != 2 {
		t.Fatalf("stored %d events, want 2 (one per source)", len(msgs))
	}
	sources := map[string]bool{}
	for _, m := range msgs {
		sources[checkStored(t, m, "orders.created.demo").Source] = true
	}
	if !sources["mall-importer/rakuten"] || !sources["mall-importer/yahoo"] {
		t.Errorf("stored sources %v, want both importers", sources)
	}
}
