package orderstate

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestCloseStopsTheBatcher: a store's batcher goroutine ends with the store's Close, so that a
// process making a store per job (the reliability suite, tests) keeps no goroutine per store. It
// also fails the calls made after it, at once, instead of leaving them waiting.
func TestCloseStopsTheBatcher(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	before := goleak.IgnoreCurrent()
	for i := range 50 {
		s := New(rdb, prefix, time.Hour)
		l, err := s.AcquireLease(ctx, "shop", fmt.Sprint("o", i), Take{TTL: time.Minute, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s.Close() // a second Close does nothing
	}
	if err := goleak.Find(before); err != nil {
		t.Fatalf("after 50 stores were closed: %v", err)
	}

	s := New(rdb, prefix, time.Hour)
	s.Close() // never used: its batcher never started
	_, err := s.AcquireLease(ctx, "shop", "late", Take{TTL: time.Minute, Now: time.Now()})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("a call after Close: %v; want ErrClosed", err)
	}
	if err := goleak.Find(before); err != nil {
		t.Fatalf("a call after Close started a goroutine: %v", err)
	}
}

// TestCloseAnswersEveryCall: calls racing Close each get an answer, their reply or ErrClosed,
// and none waits for its context to end.
func TestCloseAnswersEveryCall(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	s := New(rdb, prefix, time.Hour)
	errs := make(chan error, 200)
	for i := range cap(errs) {
		go func() {
			l, err := s.AcquireLease(ctx, "shop", fmt.Sprint("o", i), Take{TTL: time.Minute, Now: time.Now()})
			if err == nil {
				err = l.Release(ctx)
			}
			errs <- err
		}()
	}
	time.Sleep(time.Millisecond) // some calls in a pipeline, some queued, some not yet made
	s.Close()
	timeout := time.After(10 * time.Second)
	for range cap(errs) {
		select {
		case err := <-errs:
			if err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("a call racing Close: %v; want its reply or ErrClosed", err)
			}
		case <-timeout:
			t.Fatal("a call racing Close got no answer")
		}
	}
}

// TestCloseWithRedisFrozen: Close does not hold a shutdown for a pipeline that a frozen Redis
// (SIGSTOP: connections open, no answer) will not answer; the batcher ends when the client is
// closed, as its owner does next.
func TestCloseWithRedisFrozen(t *testing.T) {
	r := testenv.StartPrivateRedis(t)
	// Client timeouts longer than the pipeline's: only pipelineTimeout, or closing the client, ends
	// a pipeline the frozen server does not answer (with the defaults a read gives up after ~5s).
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, ContextTimeoutEnabled: true,
		DialTimeout: time.Minute, ReadTimeout: time.Minute, WriteTimeout: time.Minute})
	before := goleak.IgnoreCurrent()
	s := New(rdb, "t:", time.Hour)
	ctx := context.Background()
	if _, err := s.AcquireLease(ctx, "shop", "o1", Take{TTL: time.Minute, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	t.Cleanup(r.Resume) // before the server is stopped
	answered := make(chan error, 1)
	go func() {
		_, err := s.AcquireLease(ctx, "shop", "o2", Take{TTL: time.Minute, Now: time.Now()})
		answered <- err
	}()
	time.Sleep(100 * time.Millisecond) // the call is on the wire
	// Close gives up on the last send after closeWait. Were it to wait for the loop, it would take
	// the frozen pipeline's timeout: half of that is a bound no slow machine reaches by chance.
	start := time.Now()
	s.Close()
	if took := time.Since(start); took >= pipelineTimeout/2 {
		t.Errorf("Close took %s with Redis frozen: it waited for the pipeline (timeout %s), not closeWait (%s)", took, pipelineTimeout, closeWait)
	}
	rdb.Close()
	if err := <-answered; err == nil {
		t.Error("a call to a frozen Redis succeeded")
	}
	if err := goleak.Find(before); err != nil {
		t.Errorf("after the client was closed: %v", err)
	}
}
