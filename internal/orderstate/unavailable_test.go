package orderstate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestUnavailableRedisIsMarked: a Redis that is down, frozen or out of memory fails the store's
// calls with ErrUnavailable (the event is not at fault); an error of the call itself does not.
func TestUnavailableRedisIsMarked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := testenv.StartPrivateRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	s := New(rdb, "t:", time.Hour)
	t.Cleanup(s.Close)
	if _, err := s.Put(ctx, "shop", "o1", State{Status: StatusOK}, time.Now()); err != nil {
		t.Fatal(err)
	}

	// Out of memory: Redis refuses writes with an OOM reply.
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Put(ctx, "shop", "o2", State{Status: StatusOK}, time.Now())
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("write with Redis out of memory: %v; want ErrUnavailable", err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}

	// Frozen: no answer within the call's deadline.
	r.Pause()
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = s.Get(tctx, "shop", "o1")
	cancel()
	r.Resume()
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("read with Redis frozen: %v; want ErrUnavailable", err)
	}

	// A call Redis refuses for what it is.
	bad := rdb.Eval(ctx, "return nosuchglobal.x", nil).Err()
	if bad == nil || errors.Is(unavailable(bad), ErrUnavailable) || errors.Is(unavailable(redis.Nil), ErrUnavailable) {
		t.Errorf("a script error (%v) or redis.Nil marked unavailable", bad)
	}

	// Down.
	r.Stop()
	if _, err := s.Put(ctx, "shop", "o1", State{Version: 1, Status: StatusNG}, time.Now()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("write with Redis down: %v; want ErrUnavailable", err)
	}
}
