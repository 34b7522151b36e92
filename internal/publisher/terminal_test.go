package publisher

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Terminal injection: the tables and lines of the operators' commands show texts that come from
// importers (an event's source and id, in a history or a parked event, which the envelope took as
// any string before it refused control characters, and may still be in Redis; the order_id of a
// dead-lettered, i.e. invalid, event) on the operator's terminal. A control character in them (ESC
// starting an ANSI/OSC sequence, a line break) would rewrite the screen or forge rows: they are
// shown escaped (termtable.Visible, docs/operations.md), one entry a line.

// controls returns the control characters (other than the line feeds that end rows) of s.
func controls(s string) []rune {
	var out []rune
	for _, r := range s {
		if r == '\n' {
			continue
		}
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			out = append(out, r)
		}
	}
	return out
}

const evil = "imp\x1b]0;pwned\x07\x1b[2J\x1b[31m\nFORGED ROW\rX"

// TestHistoryTableEscapesSourceControls: `order history` and `order show` show the control
// characters of an event's source and id escaped, on the entry's row.
func TestHistoryTableEscapesSourceControls(t *testing.T) {
	t.Parallel()
	e := newOrderEnv(t)
	e.put("demo", "TI-1", orderstate.State{Status: orderstate.StatusOK},
		orderstate.Entry{At: time.Date(2026, 11, 26, 1, 15, 2, 0, time.UTC), Type: "order.created", Source: evil, ID: "id\x1b[1A\x1b[Kx",
			Did: "registered", Calls: []string{"transaction.do: OK"}, Outcomes: []string{"credit.ok"}, Status: orderstate.StatusOK})
	r := e.run("", "order", "history", "demo", "TI-1")
	if r.err != nil {
		t.Fatalf("order history: %v\n%s", r.err, r.stderr)
	}
	if c := controls(r.stdout); len(c) > 0 {
		t.Errorf("order history writes control characters %q from the event's source to the terminal:\n%q", c, r.stdout)
	}
	if n := strings.Count(r.stdout, "\n"); n != 3 { // header, one entry, the count line
		t.Errorf("order history of 1 entry prints %d lines (a forged row?):\n%s", n, r.stdout)
	}
	r = e.run("", "order", "show", "demo", "TI-1")
	if r.err != nil {
		t.Fatalf("order show: %v\n%s", r.err, r.stderr)
	}
	if c := controls(r.stdout); len(c) > 0 {
		t.Errorf("order show writes control characters %q from the event's source and id to the terminal:\n%q", c, r.stdout)
	}
}

// TestDeadLetterListEscapesOrderControls: `dlq ls` shows the control characters of a dead
// letter's order_id escaped; a letter is typically there because its data is invalid, order_id
// included.
func TestDeadLetterListEscapesOrderControls(t *testing.T) {
	t.Parallel()
	l := dlq.Letter{Subject: "orders.created.demo", Stream: "ORDERS", Sequence: 1, Reason: "invalid",
		Body: []byte(`{"specversion":"1.0","id":"e-1","source":"imp","type":"order.created","data":{"shop_id":"demo","order_id":"A\u001b]0;pwned\u0007\u001b[2J\nFORGED 2 2026 invalid x"}}`),
		Err:  errors.New("order_id: must be 1-50 of A-Z, a-z, 0-9, '_' and '-'"), Attempts: 1,
		FailedAt: time.Date(2026, 11, 27, 0, 39, 49, 0, time.UTC), Published: 1}
	url, _ := deadLetters(t, l)
	r := runPublisher(t, url, "", false, "dlq", "ls")
	if r.err != nil {
		t.Fatalf("dlq ls: %v\n%s", r.err, r.stderr)
	}
	if c := controls(r.stdout); len(c) > 0 {
		t.Errorf("dlq ls writes control characters %q of a letter's order_id to the terminal:\n%q", c, r.stdout)
	}
	if n := strings.Count(r.stdout, "\n"); n != 3 { // header, one letter, the count line
		t.Errorf("dlq ls of 1 letter prints %d lines (a forged row):\n%s", n, r.stdout)
	}
}

// TestOrderShowEscapesParkedAndErrorControls: `order show` shows a parked event's id and source
// (the "waiting" row) and ATODENE's error message escaped, each on its own row.
func TestOrderShowEscapesParkedAndErrorControls(t *testing.T) {
	t.Parallel()
	e := newOrderEnv(t)
	e.put("demo", "TI-2", orderstate.State{Status: orderstate.StatusNG,
		Errors: []orderstate.Error{{Point: "buyer", Code: "E1", Message: "bad\r\x1b[2Kname"}},
		Parked: []orderstate.Parked{{Type: "order.tracking_entered", ID: "p\x1b[1A", Source: evil, Since: time.Date(2026, 11, 26, 1, 15, 2, 0, time.UTC), Waits: "the credit check"}}},
		orderstate.Entry{At: time.Date(2026, 11, 26, 1, 15, 2, 0, time.UTC), Type: "order.created", Source: "imp", ID: "e-1", Did: "registered", Status: orderstate.StatusNG})
	r := e.run("", "order", "show", "demo", "TI-2")
	if r.err != nil {
		t.Fatalf("order show: %v\n%s", r.err, r.stderr)
	}
	if c := controls(r.stdout); len(c) > 0 {
		t.Errorf("order show writes control characters %q to the terminal:\n%q", c, r.stdout)
	}
	for _, want := range []string{`bad\r\x1b[2Kname`, `p\x1b[1A (source imp\x1b]0;pwned\a\x1b[2J\x1b[31m\nFORGED ROW\rX)`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("order show does not show %s:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "\nFORGED") {
		t.Errorf("order show has a forged row:\n%s", r.stdout)
	}
}

// TestDeadLetterShowEscapesControls: `dlq show` shows the headers (Dlq-Error quotes what the
// worker refused) and the pretty-printed body with their control and bidirectional characters
// escaped; -json keeps them exact.
func TestDeadLetterShowEscapesControls(t *testing.T) {
	t.Parallel()
	l := dlq.Letter{Subject: "orders.created.demo", Stream: "ORDERS", Sequence: 1, Reason: "invalid",
		Body: []byte("{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"imp\",\"type\":\"order.created\",\"data\":{\"shop_id\":\"demo\",\"order_id\":\"A\u202eB\u0085C\x7f\"}}"),
		Err:  errors.New("buyer.name: ran\x1b]0;x\x07\nFORGED"), Attempts: 1, // the header has a space for the line break
		FailedAt: time.Date(2026, 11, 27, 0, 39, 49, 0, time.UTC), Published: 1}
	url, _ := deadLetters(t, l)
	r := runPublisher(t, url, "", false, "dlq", "show", "1")
	if r.err != nil {
		t.Fatalf("dlq show: %v\n%s", r.err, r.stderr)
	}
	if c := controls(r.stdout); len(c) > 0 || strings.ContainsRune(r.stdout, '\u202e') {
		t.Errorf("dlq show writes control characters %q (or U+202E) to the terminal:\n%q", c, r.stdout)
	}
	for _, want := range []string{`Dlq-Error: buyer.name: ran\x1b]0;x\a FORGED` + "\n", `"order_id": "A\u202eB\u0085C\x7f"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dlq show does not show %s:\n%s", want, r.stdout)
		}
	}
	r = runPublisher(t, url, "", false, "dlq", "show", "-json", "1")
	if r.err != nil || !strings.Contains(r.stdout, "A\u202eB\u0085C\x7f") {
		t.Errorf("dlq show -json does not keep the body exact (%v):\n%q", r.err, r.stdout)
	}
}

// TestOrderShowTimesInJST: `order show` writes its times in JST with their offset, as `order
// history` and `order ls` show JST; a worker's UTC time is not shown as if it were the operator's.
func TestOrderShowTimesInJST(t *testing.T) {
	t.Parallel()
	e := newOrderEnv(t)
	at := time.Date(2026, 11, 29, 21, 13, 48, 0, time.UTC) // 06:13:48 on the 30th in JST
	e.put("demo", "TJ-1", orderstate.State{Status: orderstate.StatusPending, PollSince: at, UpdatedAt: at},
		orderstate.Entry{At: at, Type: "order.created", Source: "imp", ID: "e-1", Did: "registered", Status: orderstate.StatusPending})
	r := e.run("", "order", "show", "demo", "TJ-1")
	if r.err != nil {
		t.Fatalf("order show: %v\n%s", r.err, r.stderr)
	}
	if n := strings.Count(r.stdout, "2026-11-30T06:13:48+09:00"); n != 2 {
		t.Errorf("order show writes 2026-11-30T06:13:48+09:00 %d times, want 2 (under review since, and the history):\n%s", n, r.stdout)
	}
	if strings.Contains(r.stdout, "21:13:48Z") {
		t.Errorf("order show writes a time in UTC:\n%s", r.stdout)
	}
}
