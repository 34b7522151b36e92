package console

import (
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Login attempts are limited per client address and per operator name: loginBurst at once, then
// one every loginEvery, so that guessing a password takes months rather than minutes, and one
// client cannot lock every operator out by itself (its own address runs out first).
const (
	loginBurst   = 5
	loginEvery   = 12 * time.Second
	loginTracked = 10000 // the most addresses and names remembered; past it, all are forgotten
)

// loginThrottle holds the login limiters of one console process (replicas each keep their own).
type loginThrottle struct {
	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// allow reports whether a login attempt from remote (host:port) for name may be checked now; it
// counts the attempt against both. A loopback client is a reverse proxy on the same host, whose
// address every operator shares: only the name's limit applies to it.
func (t *loginThrottle) allow(remote, name string, now time.Time) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	keys := []string{"name:" + name}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		keys = append(keys, "addr:"+host)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.limiters == nil || len(t.limiters) > loginTracked {
		t.limiters = map[string]*rate.Limiter{}
	}
	ok := true
	for _, key := range keys {
		l := t.limiters[key]
		if l == nil {
			l = rate.NewLimiter(rate.Every(loginEvery), loginBurst)
			t.limiters[key] = l
		}
		if !l.AllowN(now, 1) {
			ok = false
		}
	}
	return ok
}
