package reliability

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestScenarioTableMatchesTheScenarios: the scenario table of docs/reliability.md has one row per
// scenario, in the order they run, with its numbers of orders at full and quick size.
func TestScenarioTableMatchesTheScenarios(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../../docs/reliability.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for l := range strings.Lines(string(doc)) {
		if strings.HasPrefix(l, "| `") {
			rows = append(rows, strings.TrimSpace(l))
		}
	}
	var names []string
	for _, sc := range scenarios() {
		names = append(names, sc.name)
		prefix := "| `" + sc.name + "` |"
		i := indexWithPrefix(rows, prefix)
		if i < 0 {
			t.Errorf("scenario %s has no row", sc.name)
			continue
		}
		if size := fmt.Sprintf("| %s / %s |", thousands(sc.full), thousands(sc.quick)); !strings.HasSuffix(rows[i], size) {
			t.Errorf("row of %s does not end with %q: %s", sc.name, size, rows[i])
		}
	}
	// The rows come in the order the scenarios run.
	last := -1
	for _, name := range names {
		if i := indexWithPrefix(rows, "| `"+name+"` |"); i >= 0 {
			if i < last {
				t.Errorf("row of %s is out of order", name)
			}
			last = i
		}
	}
}

func indexWithPrefix(rows []string, prefix string) int {
	for i, r := range rows {
		if strings.HasPrefix(r, prefix) {
			return i
		}
	}
	return -1
}

// thousands writes n with a comma every three digits, as the docs do: 5,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
