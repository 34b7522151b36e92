package reliability

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDeadLetterText(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   map[string]int
		want string
	}{
		{nil, "0"},
		{map[string]int{"invalid": 3}, "invalid 3"},
		{map[string]int{"unknown-shop": 2, "invalid": 54, "exhausted": 2}, "invalid 54, exhausted 2, unknown-shop 2"},
	} {
		if got := deadLetterText(tt.in); got != tt.want {
			t.Errorf("deadLetterText(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	t.Parallel()
	results := []Result{
		{Scenario: "worker-kill", Orders: 400, Faults: "3 worker SIGKILLs", Duration: 61 * time.Second,
			Verdict: Verdict{Accepted: 950, Outcomes: 1010, DeadByReason: map[string]int{"outcome-unknown": 2}, Healthy: true,
				Notes: []string{"2 outcome-unknown dead letters"}}},
		{Scenario: "duplicates", Orders: 300, Faults: "900 copies", Duration: 30 * time.Second, Dir: "/tmp/x/duplicates",
			Verdict: Verdict{Accepted: 1400, Dropped: 700, Outcomes: 720, DupOutcomes: 3, DeadByReason: map[string]int{}, Healthy: true,
				Violations: []string{"duplicate outcome: shipment.ok of A published twice",
					"unexpected dead letter: orders.created.a reason invalid: buyer.name: 佐藤\a太郎\x1b[2J\nX"}}},
		{Scenario: "bad-input", Orders: 200, Err: errors.New("NATS did not start"),
			Verdict: Verdict{BadExpected: 73, BadRight: 70, DeadByReason: map[string]int{}}},
	}
	var b strings.Builder
	if err := WriteTable(&b, results); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	lines := strings.Split(got, "\n")
	if !strings.HasPrefix(lines[0], "SCENARIO") || !strings.Contains(lines[0], "DUP OUTCOMES") {
		t.Errorf("header: %q", lines[0])
	}
	for _, want := range []string{
		"worker-kill  400", "outcome-unknown 2", "1m1s", "PASS",
		"1400 (+700 dropped)", "FAIL",
		"70/73 right", "ERROR", "NO",
		"duplicates: FAIL (logs and data: /tmp/x/duplicates)", "  - duplicate outcome: shipment.ok of A published twice",
		// a violation quoting the corpus's hostile input shows its control characters escaped
		`  - unexpected dead letter: orders.created.a reason invalid: buyer.name: 佐藤\a太郎\x1b[2J\nX` + "\n",
		"bad-input: FAIL", "  error: NATS did not start",
		"worker-kill: PASS", "  note: 2 outcome-unknown dead letters",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	// Columns line up: every row has the RESULT column at the same offset.
	col := strings.Index(lines[0], "RESULT")
	for _, l := range lines[1:4] {
		if len(l) < col || !strings.ContainsAny(l[col:col+1], "PFE") {
			t.Errorf("row not aligned with RESULT at %d: %q", col, l)
		}
	}
}
