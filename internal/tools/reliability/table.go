package reliability

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
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
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tORDERS\tEVENTS\tFAULTS INJECTED\tOUTCOMES\tDEAD LETTERS\tBAD INPUT\tLOST\tDUP OUTCOMES\tDOUBLE REG\tFALSE OUTCOMES\tLOG HITS\tHEALTHY\tTIME\tRESULT")
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
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n",
			r.Scenario, r.Orders, events, r.Faults, v.Outcomes, deadLetterText(v.DeadByReason), bad,
			v.Lost, v.DupOutcomes, v.DoubleReg, v.FalseOutcomes, v.LogHits, healthy, r.Duration.Round(time.Second), result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if r.Pass() {
			if len(r.Verdict.Notes) > 0 {
				fmt.Fprintf(w, "\n%s: PASS\n", r.Scenario)
				for _, n := range r.Verdict.Notes {
					fmt.Fprintf(w, "  note: %s\n", n)
				}
			}
			continue
		}
		fmt.Fprintf(w, "\n%s: FAIL (logs and data: %s)\n", r.Scenario, r.Dir)
		for _, n := range r.Verdict.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		if r.Err != nil {
			fmt.Fprintf(w, "  error: %v\n", r.Err)
		}
		for _, v := range r.Verdict.Violations {
			fmt.Fprintf(w, "  - %s\n", v)
		}
	}
	return nil
}
