// Package clock is a clock that a test moves by hand, for code that takes the time from a
// func() time.Time: the test advances it instead of sleeping. It imports nothing but the standard
// library.
package clock

import (
	"sync"
	"time"
)

// Fake is a clock that stands still until Advance moves it. It is safe for concurrent use.
type Fake struct {
	mu  sync.Mutex
	now time.Time
}

// NewFake returns a clock that reads start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the clock's time; pass the method value (clk.Now) as the code's clock.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
