package publisher

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a progress bar on a terminal, at most ten times a second; elsewhere it draws
// nothing, so logs and pipes stay clean.
type progress struct {
	w     io.Writer
	on    bool
	label string
	total int
	done  int
	drawn int // the done count last drawn
	last  time.Time
}

// progress returns the bar of total items; with nothing to count (0 items, or a total not known)
// it draws nothing.
func (a *App) progress(label string, total int) *progress {
	return &progress{w: a.Stderr, on: a.Terminal && total > 0, label: label, total: total}
}

// add counts n more items done.
func (p *progress) add(n int) {
	p.done += n
	if !p.on || time.Since(p.last) < 100*time.Millisecond && p.done < p.total {
		return
	}
	p.draw()
}

// draw draws the bar over the line it is on.
func (p *progress) draw() {
	p.last, p.drawn = time.Now(), p.done
	const width = 30
	filled := width
	if p.total > 0 {
		filled = min(width, width*p.done/p.total)
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d", p.label, strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.done, p.total)
}

// finish draws the bar as the run ends, however soon after its last drawing (a run that stops
// early shows where it stopped), and ends its line.
func (p *progress) finish() {
	if !p.on {
		return
	}
	if p.last.IsZero() || p.drawn != p.done {
		p.draw()
	}
	fmt.Fprintln(p.w)
}

// limiter paces a loop at rate per second; zero or less means no limit.
type limiter struct {
	every time.Duration
	next  time.Time
}

func newLimiter(rate float64) *limiter {
	if rate <= 0 {
		return &limiter{}
	}
	return &limiter{every: time.Duration(float64(time.Second) / rate), next: time.Now()}
}

// wait sleeps until the next item may go.
func (l *limiter) wait() {
	if l.every == 0 {
		return
	}
	if d := time.Until(l.next); d > 0 {
		time.Sleep(d)
	}
	l.next = l.next.Add(l.every)
	if now := time.Now(); l.next.Before(now.Add(-time.Second)) {
		l.next = now // after a stall, do not burst to catch up
	}
}
