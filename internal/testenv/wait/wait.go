// Package wait polls a condition until it holds or a time limit passes, for tests that wait on
// another goroutine, a server or a child process. It imports nothing but the standard library, so
// a package too light for testenv's servers can use it.
package wait

import (
	"testing"
	"time"
)

// The first pause between two polls, doubled after each poll up to maxPause.
const (
	firstPause = 10 * time.Millisecond
	maxPause   = 100 * time.Millisecond
)

// For polls cond until it returns true and fails the test, saying "timed out after <within>
// waiting for <what>", if it has not by the time within has passed. cond runs on the calling
// goroutine, so it may itself fail the test.
func For(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(within, cond) {
		t.Fatalf("timed out after %s waiting for %s", within, what)
	}
}

// Until polls cond until it returns true, or until within has passed, and reports whether cond
// held: for a test that says itself what went wrong, or goes on either way. cond is asked once
// more after the time is up, so a condition met during the last pause counts.
func Until(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	pause := firstPause
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(min(pause, max(time.Until(deadline), time.Millisecond)))
		pause = min(2*pause, maxPause)
	}
	return true
}
