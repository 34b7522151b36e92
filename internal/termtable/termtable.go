// Package termtable writes tables for a terminal: each column as wide as its widest cell, measured
// as a terminal shows text, where a full-width character (kanji, kana, full-width forms) takes two
// columns. text/tabwriter counts it as one, so every column after Japanese text in a row was out of
// line with the rows above and below. What it writes is also safe to show: Visible escapes the
// characters a terminal would act on (control characters, bidirectional overrides), in every cell of
// a Table and in every text argument of Fprintf, the two ways the command-line tools print data
// they did not make.
package termtable

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// gap is the space between two columns.
const gap = 2

// Table is rows of cells, written by Write.
type Table struct {
	rows [][]string
}

// Row adds a row; rows may have different numbers of cells.
func (t *Table) Row(cells ...string) { t.rows = append(t.rows, cells) }

// Write writes the rows, one a line: every cell made Visible (a control character in a cell
// neither reaches the terminal nor starts a new row), and every cell but a row's last padded with
// spaces to its column's width and the gap. An error is w's.
func (t *Table) Write(w io.Writer) error {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			r[i] = Visible(c)
			c = r[i]
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], Width(c))
		}
	}
	b := bufio.NewWriter(w)
	for _, r := range t.rows {
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-Width(c)+gap))
			}
		}
		b.WriteByte('\n')
	}
	return b.Flush()
}

// Width is how many columns of a terminal s takes: two for each East Asian wide or full-width
// character (Unicode UAX #11), one for any other.
func Width(s string) int {
	n := 0
	for _, r := range s {
		switch width.LookupRune(r).Kind() {
		case width.EastAsianWide, width.EastAsianFullwidth:
			n += 2
		default:
			n++
		}
	}
	return n
}

// Visible returns s with every character a terminal would act on instead of showing written as an
// escape, so that text from outside (an importer's event source, a dead letter's order_id, an
// ATODENE message) can neither drive the terminal (ESC starting an ANSI or OSC sequence that sets
// the window title or clears the screen, BEL) nor forge rows (CR, LF, TAB) nor reorder the text
// around it: the control characters (Unicode category Cc: C0, DEL and the C1 controls U+0080 to
// U+009F) as \x1b, \n, \t, \x7f, \u009b; the bidirectional embeddings, overrides, isolates and
// marks (U+202A to U+202E, U+2066 to U+2069, U+200E, U+200F, U+061C) as \u202e; a byte that is not
// UTF-8 as \xff. Everything else, backslashes included, is kept as it is. Table.Write applies it to
// every cell; the publisher applies it to every value from outside it prints in a line of text.
// JSON and CSV outputs are not terminal text and do not use it.
func Visible(s string) string {
	i := 0
	for i < len(s) && ' ' <= s[i] && s[i] < utf8.RuneSelf && s[i] != 0x7f {
		i++
	}
	if i == len(s) {
		return s // the usual case: printable ASCII
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for j := i; j < len(s); {
		r, n := utf8.DecodeRuneInString(s[j:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[j])
		case r < utf8.RuneSelf && (r < ' ' || r == 0x7f):
			writeASCIIEscape(&b, byte(r))
		case unicode.IsControl(r) || isBidi(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[j : j+n])
		}
		j += n
	}
	return b.String()
}

// writeASCIIEscape writes c, a C0 control or DEL, as Go writes it in a string literal: \t, \n, \r
// and the like by name, the others as \x1b.
func writeASCIIEscape(b *strings.Builder, c byte) {
	switch c {
	case '\a':
		b.WriteString(`\a`)
	case '\b':
		b.WriteString(`\b`)
	case '\f':
		b.WriteString(`\f`)
	case '\n':
		b.WriteString(`\n`)
	case '\r':
		b.WriteString(`\r`)
	case '\t':
		b.WriteString(`\t`)
	case '\v':
		b.WriteString(`\v`)
	default:
		fmt.Fprintf(b, `\x%02x`, c)
	}
}

// isBidi reports whether r is one of Unicode's bidirectional formatting characters: the
// embeddings and overrides (U+202A to U+202E), the isolates (U+2066 to U+2069) and the marks
// (U+200E, U+200F, U+061C).
func isBidi(r rune) bool {
	return 0x202a <= r && r <= 0x202e || 0x2066 <= r && r <= 0x2069 || r == 0x200e || r == 0x200f || r == 0x061c
}

// Fprintf is fmt.Fprintf for a line of text on a terminal: every argument that is a string, an
// error or a fmt.Stringer is made Visible first (numbers and other values are formatted as they
// are). It is for lines that hold values from outside: an event's id or source, a dead letter's
// subject or headers, an order ID read from Redis. A %q argument is quoted after it is made
// Visible. An error is w's.
func Fprintf(w io.Writer, format string, args ...any) (int, error) {
	return fmt.Fprintf(w, format, visibleArgs(args)...)
}

// visibleArgs returns args with each string, error and fmt.Stringer replaced by its Visible text.
func visibleArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			out[i] = Visible(v)
		case error:
			out[i] = Visible(v.Error())
		case fmt.Stringer:
			out[i] = Visible(v.String())
		default:
			out[i] = a
		}
	}
	return out
}
