// Package termtable writes tables for a terminal: each column as wide as its widest cell, measured
// as a terminal shows text, where a full-width character (kanji, kana, full-width forms) takes two
// columns. text/tabwriter counts it as one, so every column after Japanese text in a row was out of
// line with the rows above and below.
package termtable

import (
	"bufio"
	"io"
	"strings"

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

// Write writes the rows, one a line: every cell but a row's last padded with spaces to its
// column's width and the gap. An error is w's.
func (t *Table) Write(w io.Writer) error {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
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
