package console

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Login attempts are limited per client address and per operator name: loginBurst at once, then
// one every loginEvery, so that guessing a password takes months rather than minutes, and one
// client cannot lock every operator out by itself (its own address runs out first).
const (
	loginBurst = 5
	loginEvery = 12 * time.Second
	// loginTracked bounds the limiters remembered (an address or a name of at most 64 bytes
	// each: a few MB). Past it, those back at their full budget, which are as good as new, are
	// forgotten; if every one is still counting, an address or name not yet remembered is refused
	// until some are full again: forgetting a counting limiter would give its client its
	// budget back.
	loginTracked = 100000
)

// loginThrottle holds the login limiters of one console process (replicas each keep their own).
type loginThrottle struct {
	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	swept    time.Time // the last sweep of full limiters
}

// allow reports whether a login attempt from client for name may be checked now, and counts it:
// first against the client's address (an IPv6 address by its /64, which one host holds whole),
// then, if that allows it, against the name. An invalid client (the zero address: a reverse
// proxy on the same host, whose address every operator shares) is limited by name only; a name
// that cannot be an operator's (validOperator) by address only, and is never remembered.
func (t *loginThrottle) allow(client netip.Addr, name string, now time.Time) bool {
	keys := throttleKeys(client, name)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.limiters == nil {
		t.limiters = map[string]*rate.Limiter{}
	}
	for _, key := range keys {
		l := t.limiter(key, now)
		if l == nil || !l.AllowN(now, 1) {
			return false
		}
	}
	return true
}

// throttleKeys are the limiters an attempt from client for name counts against (allow).
func throttleKeys(client netip.Addr, name string) []string {
	var keys []string
	if client.IsValid() {
		if client.Is6() && !client.Is4In6() {
			client = netip.PrefixFrom(client, 64).Masked().Addr()
		}
		keys = append(keys, "addr:"+client.Unmap().String())
	}
	if validOperator(name) {
		keys = append(keys, "name:"+name)
	}
	return keys
}

// retryAfter is how long after now an attempt from client for name that allow refused may come
// again: until each of its limiters holds an attempt (at most loginEvery, 12 s, not a minute), in
// whole seconds and at least one, as a Retry-After header gives it. A client refused because no
// limiter could be remembered waits loginEvery.
func (t *loginThrottle) retryAfter(client netip.Addr, name string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	for _, key := range throttleKeys(client, name) {
		l := t.limiters[key]
		if l == nil {
			if len(t.limiters) >= loginTracked {
				wait = max(wait, loginEvery)
			}
			continue
		}
		if tokens := l.TokensAt(now); tokens < 1 {
			wait = max(wait, time.Duration((1-tokens)*float64(loginEvery)))
		}
	}
	return max((wait + time.Second - 1).Truncate(time.Second), time.Second) // whole seconds, up
}

// limiter returns key's limiter, made if need be; nil when none can be remembered.
func (t *loginThrottle) limiter(key string, now time.Time) *rate.Limiter {
	if l := t.limiters[key]; l != nil {
		return l
	}
	if len(t.limiters) >= loginTracked && now.Sub(t.swept) >= time.Second {
		t.swept = now
		for k, l := range t.limiters {
			if l.TokensAt(now) >= loginBurst {
				delete(t.limiters, k)
			}
		}
	}
	if len(t.limiters) >= loginTracked {
		return nil
	}
	l := rate.NewLimiter(rate.Every(loginEvery), loginBurst)
	t.limiters[key] = l
	return l
}
