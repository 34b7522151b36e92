package sandbox

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// MaxFaultMS bounds LatencyMS and JitterMS: 10 minutes, far beyond any client's timeout, and small
// enough that the latency and its jitter never overflow a time.Duration.
const MaxFaultMS = 10 * 60 * 1000

// Faults are the failures injected into the five operations (not into the admin API). Each request
// gets at most one of error, timeout and garbage, so the three rates must add up to at most 1.
type Faults struct {
	// LatencyMS is added before every operation is handled. 0 to MaxFaultMS.
	LatencyMS int `json:"latency_ms"`
	// JitterMS widens the latency by a uniform ±JitterMS (never below zero). 0 to MaxFaultMS.
	JitterMS int `json:"jitter_ms"`
	// ErrorRate is the share of requests answered HTTP 500 without being processed.
	ErrorRate float64 `json:"error_rate"`
	// TimeoutRate is the share of requests that are processed but never answered.
	TimeoutRate float64 `json:"timeout_rate"`
	// GarbageRate is the share of requests that are processed and answered with malformed XML.
	GarbageRate float64 `json:"garbage_rate"`
}

func (f Faults) validate() error {
	if f.LatencyMS < 0 || f.JitterMS < 0 {
		return errors.New("latency_ms and jitter_ms must not be negative")
	}
	if f.LatencyMS > MaxFaultMS || f.JitterMS > MaxFaultMS {
		return fmt.Errorf("latency_ms and jitter_ms must be at most %d (10 minutes)", MaxFaultMS)
	}
	for _, r := range []float64{f.ErrorRate, f.TimeoutRate, f.GarbageRate} {
		if !(r >= 0 && r <= 1) { // also rejects NaN
			return errors.New("rates must be between 0 and 1")
		}
	}
	if f.ErrorRate+f.TimeoutRate+f.GarbageRate > 1 {
		return errors.New("error_rate + timeout_rate + garbage_rate must not exceed 1")
	}
	return nil
}

// fault is what happens to one request.
type fault string

const (
	faultNone    fault = ""
	faultError   fault = "error"
	faultTimeout fault = "timeout"
	faultGarbage fault = "garbage"
)

// draw picks one request's fault and added latency.
func (f Faults) draw(r *lockedRand) (fault, time.Duration) {
	ms := int64(f.LatencyMS)
	if f.JitterMS > 0 {
		ms += r.Int64N(2*int64(f.JitterMS)+1) - int64(f.JitterMS)
	}
	delay := time.Duration(max(ms, 0)) * time.Millisecond
	u := r.Float64()
	switch {
	case u < f.ErrorRate:
		return faultError, delay
	case u < f.ErrorRate+f.TimeoutRate:
		return faultTimeout, delay
	case u < f.ErrorRate+f.TimeoutRate+f.GarbageRate:
		return faultGarbage, delay
	}
	return faultNone, delay
}

// garble makes a response body that is not well-formed XML: the real answer cut in half, so a client
// sees a plausible start and a broken end.
func garble(body []byte) []byte {
	return append(body[:len(body)/2:len(body)/2], "<<\x00"...)
}

// lockedRand is a seeded random source safe for concurrent use.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newLockedRand(seed int64) *lockedRand {
	return &lockedRand{r: rand.New(rand.NewPCG(uint64(seed), 0x5eed))}
}

func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

func (l *lockedRand) Int64N(n int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Int64N(n)
}

// sleep waits for d, or until ctx is done or the server closes; it reports whether d passed in full.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.closing:
	}
	return false
}
