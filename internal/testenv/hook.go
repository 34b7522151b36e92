package testenv

import (
	"context"
	"errors"
	"strings"
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

// ReplyLost loses Redis's reply to a command that ran: once armed, the first pipelined command one
// of whose string arguments holds every needle fails with a read timeout after Redis has run it, as
// when the connection is cut between the two.
type ReplyLost struct {
	needles []string
	armed   atomic.Bool
}

// LoseReply adds to rdb a ReplyLost for the commands whose arguments hold every needle; armed.
func LoseReply(rdb redis.UniversalClient, needles ...string) *ReplyLost {
	h := &ReplyLost{needles: needles}
	h.armed.Store(true)
	rdb.AddHook(h)
	return h
}

// Fired reports whether a reply was lost.
func (h *ReplyLost) Fired() bool { return !h.armed.Load() }

func (*ReplyLost) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*ReplyLost) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *ReplyLost) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if h.holds(c) && h.armed.CompareAndSwap(true, false) {
				lost := errors.New("read tcp 127.0.0.1:6379: i/o timeout")
				c.SetErr(lost)
				return lost
			}
		}
		return err
	}
}

// holds reports whether one of c's string arguments holds every needle.
func (h *ReplyLost) holds(c redis.Cmder) bool {
	for _, a := range c.Args() {
		if s, ok := a.(string); ok && containsAll(s, h.needles) {
			return true
		}
	}
	return false
}

func containsAll(s string, needles []string) bool {
	for _, n := range needles {
		if !strings.Contains(s, n) {
			return false
		}
	}
	return true
}
