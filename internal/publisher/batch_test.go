package publisher

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/jst"
)

// compact puts a JSON document on one line.
func compact(t *testing.T, doc string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, v)
}

func TestBatchMixOfGoodAndBadLines(t *testing.T) {
	t.Parallel()
	url, s := ordersStream(t)
	whole := `{"specversion":"1.0","id":"cancel-1","source":"importer","type":"order.cancelled","data":{"shop_id":"demo","order_id":"B-1"}}`
	lines := []string{
		compact(t, orderData("B-1")), // 1: a data object of -type
		"",                           // 2: blank, skipped
		"{not json",                  // 3
		strings.Replace(compact(t, orderData("B-2")), "150-0001", "150", 1), // 4: bad zip
		whole,                                 // 5
		"   ",                                 // 6: blank
		whole,                                 // 7: the same event: a duplicate
		`{"shop_id":"demo","order_id":"B 3"}`, // 8: an order without most fields
		compact(t, orderData("B-4")),          // 9
	}
	path := writeFile(t, "orders.jsonl", strings.Join(lines, "\n")) // no newline after the last line
	r := runPublisher(t, url, "", false, "batch", "-file", path)
	if r.err == nil || errors.As(r.err, new(UsageError)) {
		t.Fatalf("err = %v, want a failure for the rejected lines", r.err)
	}
	if want := "published 3, duplicates 1 (reported by the server), rejected 3\n"; r.stdout != want {
		t.Errorf("summary = %q, want %q", r.stdout, want)
	}
	for _, want := range []string{"line 3: body: is not valid JSON: invalid character 'n' looking for beginning of object key string\n", "line 4: buyer.zip: ", "line 8: order_id: ", "line 8: buyer: is required\n"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "line 2:") || strings.Contains(r.stderr, "line 6:") || strings.Contains(r.stderr, "line 7:") {
		t.Errorf("stderr reports a line that is fine:\n%s", r.stderr)
	}
	msgs := storedMsgs(t, s)
	if len(msgs) != 3 {
		t.Fatalf("%d messages stored, want 3", len(msgs))
	}
	subjects := map[string]int{}
	for _, m := range msgs {
		checkStored(t, m, m.Subject)
		subjects[m.Subject]++
	}
	if subjects["orders.created.demo"] != 2 || subjects["orders.cancelled.demo"] != 1 {
		t.Errorf("stored subjects %v", subjects)
	}
}

func TestBatchAllGood(t *testing.T) {
	t.Parallel()
	url, s := ordersStream(t)
	// More lines than the window of publishes awaiting acknowledgement, from stdin.
	var lines strings.Builder
	smp := newSampler(7, "demo", time.Date(2026, 11, 26, 0, 0, 0, 0, jst.Zone))
	const n = 2*batchWindow + 10
	for i := range n {
		lines.WriteString(mustJSON(t, smp.order(i)) + "\n")
	}
	r := runPublisher(t, url, lines.String(), false, "batch", "-file", "-", "-source", "mall-importer/test")
	if r.err != nil {
		t.Fatalf("batch: %v\n%s", r.err, r.stderr)
	}
	if want := fmt.Sprintf("published %d, duplicates 0 (reported by the server), rejected 0\n", n); r.stdout != want {
		t.Errorf("summary = %q, want %q", r.stdout, want)
	}
	if got := len(storedMsgs(t, s)); got != n {
		t.Errorf("%d messages stored, want %d", got, n)
	}
}

func TestBatchWithRate(t *testing.T) {
	t.Parallel()
	url, s := ordersStream(t)
	var lines []string
	for i := range 20 {
		lines = append(lines, compact(t, orderData(fmt.Sprintf("R-%d", i))))
	}
	path := writeFile(t, "orders.jsonl", strings.Join(lines, "\n")+"\n")
	start := time.Now()
	r := runPublisher(t, url, "", true, "batch", "-file", path, "-rate", "400")
	if r.err != nil {
		t.Fatalf("batch: %v\n%s", r.err, r.stderr)
	}
	if want := "published 20, duplicates 0 (reported by the server), rejected 0\n"; r.stdout != want {
		t.Errorf("summary = %q, want %q", r.stdout, want)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("20 events at 400/s took %v", d)
	}
	if !strings.Contains(r.stderr, "publishing [") || !strings.Contains(r.stderr, "20/20") {
		t.Errorf("no progress bar on the terminal:\n%q", r.stderr)
	}
	if got := len(storedMsgs(t, s)); got != 20 {
		t.Errorf("%d messages stored, want 20", got)
	}
}

func TestBatchDryRun(t *testing.T) {
	t.Parallel()
	in := compact(t, orderData("D-1")) + "\n" + `{"shop_id":"demo"}` + "\n"
	r := runPublisher(t, "nats://127.0.0.1:1", in, false, "batch", "-file", "-", "-dry-run")
	if r.err == nil {
		t.Error("dry run with a rejected line succeeded")
	}
	if want := "valid 1, rejected 1 (dry run: nothing published)\n"; r.stdout != want {
		t.Errorf("summary = %q, want %q", r.stdout, want)
	}
}

func TestBatchUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"-file", "-", "-type", "credit.ok"}, {"-file", "-", "-rate", "-1"}, {"-file", "-", "x"}} {
		r := runPublisher(t, "nats://127.0.0.1:1", "", false, append([]string{"batch"}, args...)...)
		if !errors.As(r.err, new(UsageError)) {
			t.Errorf("batch %v: err = %v, want a usage error", args, r.err)
		}
	}
}

func TestCountLines(t *testing.T) {
	t.Parallel()
	// \v and U+00A0 are blank to the batch's bytes.TrimSpace too, so the bar's total counts only the lines published.
	path := writeFile(t, "x.jsonl", "{}\n\n  \r\n\v\n\u00a0\n{}\r\n{}")
	if n, err := countLines(path); n != 3 || err != nil {
		t.Errorf("countLines = %d, %v; want 3", n, err)
	}
}
