package orderstate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// batcher runs the store's scripts in pipelines, one at a time. Calls queue while a pipeline is
// on the wire and go out together in the next, so that under load many handlers share one round
// trip (a write and a read system call on each side) instead of taking one each; an idle store
// sends a call at once. The scripts were 24% of the worker's CPU, mostly in those system calls,
// one round trip per call. One pipeline at a time batched best: the benchmark's throughput with
// two or four on the wire was 4% and 6% lower.
//
// Its goroutine starts with the first call and ends with the store's Close.
type batcher struct {
	rdb     redis.UniversalClient
	calls   chan *call
	start   sync.Once
	quit    chan struct{} // closed by close: the loop sends what is queued and ends
	stopped chan struct{} // closed when the loop ended, or by close if it never started
	closing sync.Once
}

type call struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
	done   chan struct{}
}

// maxBatch bounds a pipeline.
const maxBatch = 128

// batchers gives each shop a batcher of its own on a Redis Cluster: a pipeline waits for its
// slowest node, so one pipeline for all shops would make the failover of one master (seconds until
// the client learns of the promotion) stall the shops of every other. A shop's keys are in one slot
// (its hash tag), so its pipelines go to one node. On one server, one batcher serves every shop.
type batchers struct {
	rdb     redis.UniversalClient
	one     *batcher // not on a Cluster
	mu      sync.Mutex
	byShop  map[string]*batcher
	closing bool
}

func newBatchers(rdb redis.UniversalClient) *batchers {
	if _, ok := rdb.(*redis.ClusterClient); ok {
		return &batchers{rdb: rdb, byShop: map[string]*batcher{}}
	}
	return &batchers{rdb: rdb, one: newBatcher(rdb)}
}

// run runs script in the pipelines of the shop whose hash tag keys[0] carries (batcher.run).
func (bs *batchers) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	if bs.one != nil {
		return bs.one.run(ctx, script, keys, args...)
	}
	_, rest, _ := strings.Cut(keys[0], "{")
	shop, _, _ := strings.Cut(rest, "}")
	bs.mu.Lock()
	if bs.closing {
		bs.mu.Unlock()
		return closed(ctx)
	}
	b, ok := bs.byShop[shop]
	if !ok {
		b = newBatcher(bs.rdb)
		bs.byShop[shop] = b
	}
	bs.mu.Unlock()
	return b.run(ctx, script, keys, args...)
}

// close closes every batcher, at once (each waits at most closeWait).
func (bs *batchers) close() {
	if bs.one != nil {
		bs.one.close()
		return
	}
	bs.mu.Lock()
	bs.closing = true
	all := slices.Collect(maps.Values(bs.byShop))
	bs.mu.Unlock()
	var wg sync.WaitGroup
	for _, b := range all {
		wg.Go(b.close)
	}
	wg.Wait()
}

func newBatcher(rdb redis.UniversalClient) *batcher {
	return &batcher{rdb: rdb, calls: make(chan *call, maxBatch), quit: make(chan struct{}), stopped: make(chan struct{})}
}

// ErrClosed is the error of a script call (a lease, a write) made after the store's Close. Plain
// reads (Get, History, PendingCount) go to Redis directly and work for as long as the client does.
var ErrClosed = errors.New("orderstate: the store is closed")

// Close stops the store's batcher. The calls already queued still go out, as calls given up by
// their handlers do (a write that lands is found by the event's retry, which then has less to
// redo); script calls made later fail with ErrClosed. Close waits for that last send for at most
// closeWait: against a Redis that stopped answering it ends with its timeout (pipelineTimeout) or
// when the client is closed, which the client's owner does after Close, and a shutdown is not held
// for it. Call it once the store's users have stopped; a second Close does nothing more.
func (s *Store) Close() { s.batch.close() }

// closeWait bounds how long Close waits for the last send.
const closeWait = time.Second

func (b *batcher) close() {
	b.closing.Do(func() {
		// A batcher never started has no loop to stop: mark it stopped, and start none after.
		b.start.Do(func() { close(b.stopped) })
		close(b.quit)
	})
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-b.stopped:
	case <-t.C:
	}
}

// run runs script and returns its reply, or ctx's error once ctx ends. A call given up that way
// may still run when its pipeline goes out: a lease it takes then expires by itself, and a write
// it makes is found by the event's retry, as after any lost reply. (Waiting for the reply instead
// held a shutdown for as long as a hung Redis took to fail every queued pipeline.)
func (b *batcher) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	if err := ctx.Err(); err != nil {
		return failed(ctx, err)
	}
	select {
	case <-b.quit:
		return closed(ctx)
	default:
	}
	b.start.Do(func() { go b.loop() })
	c := &call{script: script, keys: keys, args: args, done: make(chan struct{})}
	select {
	case b.calls <- c:
	case <-b.quit:
		return closed(ctx)
	case <-ctx.Done():
		return failed(ctx, ctx.Err())
	}
	reply := func() *redis.Cmd {
		if err := c.cmd.Err(); err != nil && !errors.Is(err, ErrClosed) {
			c.cmd.SetErr(unavailable(err))
		}
		return c.cmd
	}
	select {
	case <-c.done:
		return reply()
	case <-b.stopped:
		// The call was queued as the loop ended: the loop answered it, or never saw it.
		select {
		case <-c.done:
			return reply()
		default:
			return closed(ctx)
		}
	case <-ctx.Done():
		return failed(ctx, fmt.Errorf("waiting for Redis: %w", ctx.Err()))
	}
}

// closed is a call made after the store's Close.
func closed(ctx context.Context) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(ErrClosed)
	return cmd
}

// failed is a call that ended before Redis answered: Redis is unavailable as far as it knows.
func failed(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(unavailable(err))
	return cmd
}

func (b *batcher) loop() {
	defer close(b.stopped)
	batch := make([]*call, 0, maxBatch)
	for {
		var c *call
		select {
		case c = <-b.calls:
		case <-b.quit:
			// Closed: send what is queued, then end. A call queued later finds the loop stopped.
			select {
			case c = <-b.calls:
			default:
				return
			}
		}
		batch = append(batch[:0], c)
	collect:
		for len(batch) < maxBatch {
			select {
			case c := <-b.calls:
				batch = append(batch, c)
			default:
				break collect
			}
		}
		b.send(batch)
		if missing := noScript(batch); len(missing) > 0 {
			// Redis lost its scripts (a restart): load each once and send those calls again.
			ctx, cancel := context.WithTimeout(context.Background(), pipelineTimeout)
			for script := range missing {
				_ = script.Load(ctx, b.rdb).Err() // a failure shows in the calls sent again
			}
			cancel()
			var again []*call
			for _, c := range batch {
				if missing[c.script] {
					again = append(again, c)
				}
			}
			b.send(again)
		}
		for _, c := range batch {
			close(c.done)
		}
	}
}

// pipelineTimeout bounds one pipeline, so that a Redis that stopped answering fails the calls
// (their handlers retry) instead of holding every handler behind it.
const pipelineTimeout = 10 * time.Second

func (b *batcher) send(calls []*call) {
	ctx, cancel := context.WithTimeout(context.Background(), pipelineTimeout)
	defer cancel()
	pipe := b.rdb.Pipeline()
	for _, c := range calls {
		c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
}

// noScript returns the scripts Redis did not know.
func noScript(calls []*call) map[*redis.Script]bool {
	missing := map[*redis.Script]bool{}
	for _, c := range calls {
		if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			missing[c.script] = true
		}
	}
	return missing
}
