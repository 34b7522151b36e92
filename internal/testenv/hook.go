package testenv

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Hook changes Redis between two steps of the code under test: once armed, it runs its function
// once, in the calling goroutine, right after the first command it matches has run (a page of a
// listing, say), before the code goes on.
type Hook struct {
	match func(redis.Cmder) bool
	then  func()
	armed atomic.Bool
}

// AfterCommand adds to rdb a Hook running then after the first command match accepts, once armed
// (Arm). Pipelines pass through it untouched.
func AfterCommand(rdb redis.UniversalClient, match func(redis.Cmder) bool, then func()) *Hook {
	h := &Hook{match: match, then: then}
	rdb.AddHook(h)
	return h
}

// Arm makes the hook run after the next command it matches.
func (h *Hook) Arm() { h.armed.Store(true) }

// Fired reports whether the hook ran since it was armed.
func (h *Hook) Fired() bool { return !h.armed.Load() }

func (*Hook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (*Hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *Hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if h.armed.Load() && h.match(cmd) && h.armed.CompareAndSwap(true, false) {
			h.then()
		}
		return err
	}
}
