package reliability

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/termtable"
)

// deadLetterText lists dead letters by reason, most frequent first: "invalid 54, unknown-shop 2".
func deadLetterText(by map[string]int) string {
	if len(by) == 0 {
		return "0"
	}
	reasons := slices.Collect(maps.Keys(by))
	slices.SortFunc(reasons, func(a, b string) int {
		if by[a] != by[b] {
			return by[b] - by[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%s %d", r, by[r])
	}
	return strings.Join(parts, ", ")
}

// WriteTable prints one row per scenario, then what broke.
func WriteTable(w io.Writer, results []Result) error {
	// The notes, errors and violations quote what the worker did with hostile input (a dead
	// letter's subject and error, an order ID of the corpus, a log line): termtable shows the
	// control characters in them escaped.
	var tb termtable.Table
	tb.Row("SCENARIO", "ORDERS", "EVENTS", "FAULTS INJECTED", "OUTCOMES", "DEAD LETTERS", "BAD INPUT", "LOST", "DUP OUTCOMES", "DOUBLE REG", "FALSE OUTCOMES", "LOG HITS", "HEALTHY", "TIME", "RESULT")
	for _, r := range results {
		v := r.Verdict
		events := fmt.Sprint(v.Accepted)
		if v.Dropped > 0 {
			events += fmt.Sprintf(" (+%d dropped)", v.Dropped)
		}
		bad := "-"
		if v.BadExpected > 0 {
			bad = fmt.Sprintf("%d/%d right", v.BadRight, v.BadExpected)
		}
		healthy := "yes"
		if !v.Healthy {
			healthy = "NO"
		}
		result := passText(r.Pass())
		if r.Err != nil {
			result = "ERROR"
		}
		tb.Row(r.Scenario, fmt.Sprint(r.Orders), events, r.Faults, fmt.Sprint(v.Outcomes), deadLetterText(v.DeadByReason), bad,
			fmt.Sprint(v.Lost), fmt.Sprint(v.DupOutcomes), fmt.Sprint(v.DoubleReg), fmt.Sprint(v.FalseOutcomes), fmt.Sprint(v.LogHits),
			healthy, r.Duration.Round(time.Second).String(), result)
	}
	if err := tb.Write(w); err != nil {
		return err
	}
	for _, r := range results {
		if r.Pass() {
			if len(r.Verdict.Notes) > 0 {
				termtable.Fprintf(w, "\n%s: PASS\n", r.Scenario)
				for _, n := range r.Verdict.Notes {
					termtable.Fprintf(w, "  note: %s\n", n)
				}
			}
			continue
		}
		termtable.Fprintf(w, "\n%s: FAIL (logs and data: %s)\n", r.Scenario, r.Dir)
		for _, n := range r.Verdict.Notes {
			termtable.Fprintf(w, "  note: %s\n", n)
		}
		if r.Err != nil {
			termtable.Fprintf(w, "  error: %v\n", r.Err)
		}
		for _, v := range r.Verdict.Violations {
			termtable.Fprintf(w, "  - %s\n", v)
		}
	}
	return nil
}
