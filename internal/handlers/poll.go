package handlers

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

func newPollBackoff(p PollPolicy) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.First),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(p.Max),
		backoff.WithRandomizationFactor(0.1),
		backoff.WithMaxElapsedTime(0),
	)
}

// withDefaults fills the DESIGN.md §8 defaults.
func (p PollPolicy) withDefaults() PollPolicy {
	if p.First <= 0 {
		p.First = time.Minute
	}
	if p.Max <= 0 {
		p.Max = 30 * time.Minute
	}
	if p.Deadline <= 0 {
		p.Deadline = 14 * 24 * time.Hour
	}
	return p
}
