package sandbox

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestErrorCodeTableOfTheDocs: the error-code table of docs/atodene.md#error-codes lists every code
// of ErrorCodes, in its order, with the errorPoints it comes with, and no other code.
func TestErrorCodeTableOfTheDocs(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docs/atodene.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(er[0-9]{6})` \\| ([^|]+) \\|")
	point := regexp.MustCompile("`([A-Za-z]+)`")
	var codes []string
	for _, m := range row.FindAllStringSubmatch(string(raw), -1) {
		codes = append(codes, m[1])
		i := slices.IndexFunc(ErrorCodes, func(c ErrorCode) bool { return c.Code == m[1] })
		if i < 0 {
			continue
		}
		var documented []string
		for _, p := range point.FindAllStringSubmatch(m[2], -1) {
			documented = append(documented, p[1])
		}
		want := strings.Split(ErrorCodes[i].Point, " | ")
		if ErrorCodes[i].Point == "(field)" {
			want = nil // "the field": the element at fault
		}
		if !slices.Equal(documented, want) {
			t.Errorf("docs/atodene.md: %s comes with errorPoint %v, documented %v", m[1], want, documented)
		}
	}
	var want []string
	for _, c := range ErrorCodes {
		want = append(want, c.Code)
	}
	if !slices.Equal(codes, want) {
		t.Errorf("docs/atodene.md lists codes %v, ErrorCodes are %v", codes, want)
	}
}
