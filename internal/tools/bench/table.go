package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// Table is a titled table of text cells, printed with aligned columns: cells that read as
// numbers are right-aligned, the rest left-aligned.
type Table struct {
	Title   string
	Columns []string
	Rows    [][]string
	Notes   []string // printed under the table
}

// Add appends a row of cells, each formatted with fmt.Sprint unless it is already a string.
func (t *Table) Add(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		if s, ok := c.(string); ok {
			row[i] = s
		} else {
			row[i] = fmt.Sprint(c)
		}
	}
	t.Rows = append(t.Rows, row)
}

// Render writes the table to w.
func (t Table) Render(w io.Writer) error {
	widths := make([]int, len(t.Columns))
	numeric := make([]bool, len(t.Columns))
	for i, c := range t.Columns {
		widths[i] = width(c)
		numeric[i] = true
	}
	for _, row := range t.Rows {
		for i, c := range row {
			if i >= len(widths) {
				continue
			}
			widths[i] = max(widths[i], width(c))
			if c != "" && c != "-" && !isNumber(c) {
				numeric[i] = false
			}
		}
	}
	var out strings.Builder
	if t.Title != "" {
		out.WriteString(t.Title + "\n")
	}
	line := func(cells []string) {
		var b strings.Builder
		for i := range t.Columns {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			pad := strings.Repeat(" ", widths[i]-width(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if numeric[i] {
				b.WriteString(pad + c)
			} else if i < len(t.Columns)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(c)
			}
		}
		out.WriteString(strings.TrimRight(b.String(), " ") + "\n")
	}
	if strings.Join(t.Columns, "") != "" {
		line(t.Columns)
		rule := make([]string, len(t.Columns))
		for i := range rule {
			rule[i] = strings.Repeat("-", widths[i])
		}
		line(rule)
	}
	for _, row := range t.Rows {
		line(row)
	}
	for _, n := range t.Notes {
		out.WriteString("  " + n + "\n")
	}
	out.WriteString("\n")
	_, err := io.WriteString(w, out.String())
	return err
}

// width is the number of terminal columns s takes: East Asian wide characters take two.
func width(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x1100 && (r <= 0x115f || (r >= 0x2e80 && r <= 0xa4cf) || (r >= 0xac00 && r <= 0xd7a3) ||
			(r >= 0xf900 && r <= 0xfaff) || (r >= 0xff00 && r <= 0xff60) || (r >= 0xffe0 && r <= 0xffe6)) {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// isNumber reports whether s reads as a number, possibly with a unit or sign: 1,234, 12.5,
// -3, 0.82×, 95%, 12 MB.
func isNumber(s string) bool {
	s = strings.TrimSpace(s)
	for _, suffix := range []string{"×", "%", " MB", " ms", " s", "/s"} {
		s = strings.TrimSuffix(s, suffix)
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if s == "" {
		return false
	}
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == ',' || r == '.':
		default:
			return false
		}
	}
	return digits > 0 && utf8.ValidString(s)
}

// num formats a number for a table: thousands separated, with decimals where the number is small.
func num(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "-"
	case math.Abs(v) >= 100:
		return thousands(int64(math.Round(v)))
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// thousands formats n with commas between groups of three digits.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// ratio formats a ratio such as 0.82×.
func ratio(v float64) string {
	if v == 0 || math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v)
}
