package termtable

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
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

func TestVisible(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"mall-importer/rakuten", "mall-importer/rakuten"},
		{"審査中 ｶﾀｶﾅ", "審査中 ｶﾀｶﾅ"},
		{`C:\path \x1b`, `C:\path \x1b`}, // a backslash is kept
		{"imp\x1b]0;pwned\x07\x1b[2J", `imp\x1b]0;pwned\a\x1b[2J`},
		{"a\nFORGED\rX\tY", `a\nFORGED\rX\tY`},
		{"\x00\x7f", `\x00\x7f`},
		{"A\u0085B\u009b", `A\u0085B\u009b`},
		{"evil\u202egpj.exe", `evil\u202egpj.exe`},
		{"\u2066\u2069\u200e\u200f\u061c", `\u2066\u2069\u200e\u200f\u061c`},
		{"bad\xff\x9bbytes", `bad\xff\x9bbytes`},
	} {
		if got := Visible(c.in); got != c.want {
			t.Errorf("Visible(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestTableCellsCannotDriveTheTerminal: a cell holding control characters is written visibly, on
// its own row, and its column lines up by the width of what is shown.
func TestTableCellsCannotDriveTheTerminal(t *testing.T) {
	t.Parallel()
	var tb Table
	tb.Row("SOURCE", "STATUS")
	tb.Row("imp\x1b[2J\nFORGED", "ok")
	var b strings.Builder
	if err := tb.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := "SOURCE              STATUS\n" +
		`imp\x1b[2J\nFORGED` + "  ok\n"
	if b.String() != want {
		t.Errorf("table:\n%q\nwant:\n%q", b.String(), want)
	}
}

// FuzzVisible: what Visible returns holds no control character, no bidirectional control and no
// invalid UTF-8, and it is s itself when s held none of them.
func FuzzVisible(f *testing.F) {
	for _, s := range []string{"", "ok", "imp\x1b]0;x\x07", "\u202e\u0085", "\xff", "審査中\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Visible(s)
		if !utf8.ValidString(got) {
			t.Fatalf("Visible(%q) = %q: not UTF-8", s, got)
		}
		clean := utf8.ValidString(s)
		for _, r := range s {
			if unicode.IsControl(r) || isBidi(r) {
				clean = false
			}
		}
		for _, r := range got {
			if unicode.IsControl(r) || isBidi(r) {
				t.Fatalf("Visible(%q) = %q holds %U", s, got, r)
			}
		}
		if clean && got != s {
			t.Fatalf("Visible(%q) = %q, want it unchanged", s, got)
		}
	})
}

type stringer string

func (s stringer) String() string { return string(s) }

func TestFprintf(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	_, err := Fprintf(&b, "seq %d (%s, %v): %v %s\n", 7, "imp\x1b[2J", errors.New("bad\nrow"), stringer("\u202e"), []string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `seq 7 (imp\x1b[2J, bad\nrow): \u202e [x]` + "\n"; b.String() != want {
		t.Errorf("Fprintf wrote %q, want %q", b.String(), want)
	}
}
