package orderstate

import (
	"context"
	"sync"

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

// run runs script and returns its reply. It waits for the reply even if ctx ends first (the
// client's read and write timeouts bound the wait): a script that took a lease must not be
// abandoned holding it.
func (b *batcher) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	if err := ctx.Err(); err != nil {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	b.start.Do(func() { go b.loop() })
	c := &call{script: script, keys: keys, args: args, done: make(chan struct{})}
	b.calls <- c
	<-c.done
	return c.cmd
}

func (b *batcher) loop() {
	ctx := context.Background()
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
		if len(batch) == 1 {
			c.cmd = c.script.Run(ctx, b.rdb, c.keys, c.args...)
			close(c.done)
			continue
		}
		pipe := b.rdb.Pipeline()
		for _, c := range batch {
			c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		_, _ = pipe.Exec(ctx) // each command carries its own error
		for _, c := range batch {
			if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") { // Redis restarted: Run loads the script
				c.cmd = c.script.Run(ctx, b.rdb, c.keys, c.args...)
			}
			close(c.done)
		}
	}
}
