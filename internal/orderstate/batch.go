package orderstate

import (
	"context"
	"fmt"
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
// Its goroutine starts with the first call and lives as long as the process.
type batcher struct {
	rdb   redis.UniversalClient
	calls chan *call
	start sync.Once
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

func newBatcher(rdb redis.UniversalClient) *batcher {
	return &batcher{rdb: rdb, calls: make(chan *call, maxBatch)}
}

// run runs script and returns its reply, or ctx's error once ctx ends. A call given up that way
// may still run when its pipeline goes out: a lease it takes then expires by itself, and a write
// it makes is found by the event's retry, as after any lost reply. (Waiting for the reply instead
// held a shutdown for as long as a hung Redis took to fail every queued pipeline.)
func (b *batcher) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	if err := ctx.Err(); err != nil {
		return failed(ctx, err)
	}
	b.start.Do(func() { go b.loop() })
	c := &call{script: script, keys: keys, args: args, done: make(chan struct{})}
	select {
	case b.calls <- c:
	case <-ctx.Done():
		return failed(ctx, ctx.Err())
	}
	select {
	case <-c.done:
		if err := c.cmd.Err(); err != nil {
			c.cmd.SetErr(unavailable(err))
		}
		return c.cmd
	case <-ctx.Done():
		return failed(ctx, fmt.Errorf("waiting for Redis: %w", ctx.Err()))
	}
}

// failed is a call that ended before Redis answered: Redis is unavailable as far as it knows.
func failed(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(unavailable(err))
	return cmd
}

func (b *batcher) loop() {
	batch := make([]*call, 0, maxBatch)
	for c := range b.calls {
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
