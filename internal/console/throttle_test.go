package console

import (
	"net/netip"
	"testing"
	"time"
)

// TestLoginRetryAfter: a refused login is told the true wait, until each of its limiters (the
// address's and the name's) holds an attempt again: one attempt frees every 12 s, not a minute.
func TestLoginRetryAfter(t *testing.T) {
	t.Parallel()
	var th loginThrottle
	at := testNow
	a, b := netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("198.51.100.7")
	for i := range loginBurst {
		if !th.allow(a, "alice", at) {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if th.allow(a, "alice", at) {
		t.Fatal("a sixth attempt at once allowed")
	}
	for _, c := range []struct {
		client netip.Addr
		name   string
		after  time.Duration
		want   time.Duration
	}{
		{a, "alice", 0, 12 * time.Second},
		{b, "carol", 0, time.Second},                              // nothing to wait for
		{netip.Addr{}, "alice", 3 * time.Second, 9 * time.Second}, // behind a proxy: the name's limit
		{a, "bob", 5 * time.Second, 7 * time.Second},              // the address's limit
		{b, "alice", 11500 * time.Millisecond, time.Second},       // the name's, 0.5 s rounded up
	} {
		if got := th.retryAfter(c.client, c.name, at.Add(c.after)); got != c.want {
			t.Errorf("%v %s after %v: retry after %v, want %v", c.client, c.name, c.after, got, c.want)
		}
	}
	if !th.allow(a, "alice", at.Add(12*time.Second)) {
		t.Error("refused once the wait said has passed")
	}
}
