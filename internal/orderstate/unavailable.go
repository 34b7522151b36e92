package orderstate

import (
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable is matched (errors.Is) by the errors of a Redis that cannot serve a call now: it
// is unreachable or does not answer in time, or answers that it is loading, read-only (a failover
// under way), out of memory, or unable to persist (a full disk). Such a failure is Redis's, not
// the event's: it lasts as long as the outage, and retrying the event later is all it needs.
var ErrUnavailable = errors.New("orderstate: Redis unavailable")

type unavailableError struct{ err error }

func (e *unavailableError) Error() string   { return e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{e.err, ErrUnavailable} }

// availabilityReplies are the prefixes of Redis error replies that say the server cannot serve
// now rather than that the call is wrong.
var availabilityReplies = []string{"LOADING", "READONLY", "MASTERDOWN", "BUSY", "TRYAGAIN", "OOM", "MISCONF", "NOREPLICAS", "CLUSTERDOWN"}

// unavailable marks err as ErrUnavailable unless it is nil, redis.Nil or an error reply about the
// call itself (a script error, for instance).
func unavailable(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		return err
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		if hasAnyPrefix(reply.Error(), availabilityReplies) {
			return &unavailableError{err}
		}
		return err
	}
	return &unavailableError{err} // the connection, a timeout or the context
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
