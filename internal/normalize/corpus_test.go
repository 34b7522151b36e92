package normalize

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// funcs are the string functions by the names the corpus uses.
var funcs = map[string]func(string) string{
	"Zip":            Zip,
	"Phone":          Phone,
	"Kana":           Kana,
	"TrackingNumber": TrackingNumber,
	"Date":           Date,
	"Email":          Email,
	"Text":           Text,
}

type corpusCase struct {
	line         int
	fn, in, want string
}

// readCorpus reads testdata/corpus.tsv: function<TAB>input<TAB>want, '#' comments, fields that
// start with a double quote written as Go string literals.
func readCorpus(tb testing.TB) []corpusCase {
	tb.Helper()
	f, err := os.Open("testdata/corpus.tsv")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var cases []corpusCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) != 3 {
			tb.Fatalf("corpus.tsv:%d: %d fields, want function<TAB>input<TAB>want", n, len(fields))
		}
		for i, v := range fields[1:] {
			if strings.HasPrefix(v, `"`) {
				if fields[i+1], err = strconv.Unquote(v); err != nil {
					tb.Fatalf("corpus.tsv:%d: field %d: %v", n, i+2, err)
				}
			}
		}
		if funcs[fields[0]] == nil {
			tb.Fatalf("corpus.tsv:%d: unknown function %q", n, fields[0])
		}
		cases = append(cases, corpusCase{line: n, fn: fields[0], in: fields[1], want: fields[2]})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return cases
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	cases := readCorpus(t)
	covered := map[string]int{}
	for _, c := range cases {
		covered[c.fn]++
		t.Run(fmt.Sprintf("%s/line%d", c.fn, c.line), func(t *testing.T) {
			t.Parallel()
			f := funcs[c.fn]
			if got := f(c.in); got != c.want {
				t.Errorf("%s(%q) = %q, want %q", c.fn, c.in, got, c.want)
			}
			if again := f(c.want); again != c.want {
				t.Errorf("%s(%q) = %q: the normal form is not a fixed point", c.fn, c.want, again)
			}
		})
	}
	if len(cases) < 80 {
		t.Errorf("corpus has %d cases, want at least 80", len(cases))
	}
	for name := range funcs {
		if covered[name] == 0 {
			t.Errorf("corpus has no case for %s", name)
		}
	}
}
