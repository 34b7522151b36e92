package bench

import (
	"strings"
)

// Bar is one bar of a chart: a label on the left, a value that sets its length, and the text
// printed after it.
type Bar struct {
	Label string
	Value float64
	Text  string
}

// BarChart draws bars horizontally, scaled so that the largest value fills width characters.
// Labels are right-aligned to the longest one. A bar with a positive value is at least one
// character long.
func BarChart(title string, bars []Bar, width int) string {
	var b strings.Builder
	if title != "" {
		b.WriteString(title + "\n")
	}
	top, labelW := 0.0, 0
	for _, bar := range bars {
		top = max(top, bar.Value)
		labelW = max(labelW, len(bar.Label))
	}
	for _, bar := range bars {
		n := 0
		if top > 0 && bar.Value > 0 {
			n = max(1, int(bar.Value/top*float64(width)+0.5))
		}
		b.WriteString(strings.Repeat(" ", labelW-len(bar.Label)) + bar.Label + " │" +
			strings.Repeat("█", n) + strings.Repeat(" ", width-n) + " " + bar.Text + "\n")
	}
	return b.String()
}
