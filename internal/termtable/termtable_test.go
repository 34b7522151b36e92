package termtable

import (
	"strings"
	"testing"
)

func TestWidth(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]int{"": 0, "OK": 2, "審査中": 6, "getauthori.do: 審査中": 21, "ｶﾀｶﾅ": 4, "３１５５円": 10, "-": 1} {
		if got := Width(s); got != want {
			t.Errorf("Width(%q) = %d, want %d", s, got, want)
		}
	}
}

// TestColumnsLineUpAfterJapaneseText: the column after a cell holding full-width text starts at
// the same terminal column in every row.
func TestColumnsLineUpAfterJapaneseText(t *testing.T) {
	t.Parallel()
	var tb Table
	tb.Row("ORDER", "CALLS", "STATUS")
	tb.Row("A-1", "getauthori.do: 審査中", "pending")
	tb.Row("A-2", "transaction.do: OK", "ok")
	var b strings.Builder
	if err := tb.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := "ORDER  CALLS                  STATUS\n" +
		"A-1    getauthori.do: 審査中  pending\n" +
		"A-2    transaction.do: OK     ok\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}
