package streamscan

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// CheckEvery is how often a Follower asks whether its stream was created again.
const CheckEvery = time.Second

// Follower reads a stream as it grows with an ordered consumer, and survives the stream being
// deleted and created again (an operator recreating RESULTS, an embedded worker starting afresh):
// the ordered consumer, reset, resumes after the last sequence it delivered, so the first
// messages of the new stream, whose sequences start at 1 again, would be skipped without a word.
// Every CheckEvery the Follower reads the stream's creation time; when it changed, it follows the
// new stream from its first message (or the start time asked for), passing over those delivered
// already.
//
// Next is called from one goroutine; Stop from any.
type Follower struct {
	s       jetstream.Stream
	cfg     jetstream.OrderedConsumerConfig
	created time.Time
	checked time.Time
	// since holds the sequences delivered since the last check found the stream as it was, with
	// when they were stored: those of the new stream are passed over when it is read from the start.
	since map[uint64]time.Time
	skip  map[uint64]bool
	// recreated is called when the stream was found created again.
	recreated func(created time.Time)

	mu          sync.Mutex
	it          jetstream.MessagesContext // replaced when the stream is created again
	stopped     bool
	stopOnClose func() bool // ends Follow's context.AfterFunc
}

// Follow starts following s from where cfg says, until Stop or ctx's end; recreated is called
// (from Next) when s was found created again, with its new creation time. An error is the
// consumer's creation's, naming s.
func Follow(ctx context.Context, s jetstream.Stream, cfg jetstream.OrderedConsumerConfig, recreated func(created time.Time)) (*Follower, error) {
	f := &Follower{s: s, cfg: cfg, created: s.CachedInfo().Created, checked: time.Now(), since: map[uint64]time.Time{}, recreated: recreated}
	if err := f.open(ctx); err != nil {
		return nil, err
	}
	// While the stream is gone, the ordered consumer's resets wait for it whatever ctx says: Stop
	// ends them.
	f.mu.Lock()
	f.stopOnClose = context.AfterFunc(ctx, f.Stop)
	f.mu.Unlock()
	return f, nil
}

func (f *Follower) open(ctx context.Context) error {
	c, err := f.s.OrderedConsumer(ctx, f.cfg)
	var it jetstream.MessagesContext
	if err == nil {
		it, err = c.Messages()
	}
	if err != nil {
		return fmt.Errorf("following stream %s: %w", f.s.CachedInfo().Config.Name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		it.Stop()
		return jetstream.ErrMsgIteratorClosed
	}
	f.it = it
	return nil
}

// Stop stops the reads; a Next waiting returns jetstream.ErrMsgIteratorClosed. While the ordered
// consumer is being reset (its stream gone), Stop waits for the reset's step under way: up to about
// 10 s each for its backoff and for a consumer's creation in flight.
func (f *Follower) Stop() {
	f.mu.Lock()
	f.stopped = true
	it, stopOnClose := f.it, f.stopOnClose
	f.mu.Unlock()
	if stopOnClose != nil {
		stopOnClose()
	}
	it.Stop()
}

func (f *Follower) iterator() jetstream.MessagesContext {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.it
}

// Next returns the next message; errors are the iterator's (ctx's end, ErrMsgIteratorClosed) or
// the stream's.
func (f *Follower) Next(ctx context.Context) (jetstream.Msg, error) {
	for {
		if time.Since(f.checked) >= CheckEvery {
			if err := f.check(ctx); err != nil {
				return nil, err
			}
		}
		wait, cancel := context.WithTimeout(ctx, CheckEvery)
		m, err := f.iterator().Next(jetstream.NextContext(wait))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return nil, err
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		if f.skip[md.Sequence.Stream] {
			delete(f.skip, md.Sequence.Stream)
			continue
		}
		f.since[md.Sequence.Stream] = md.Timestamp
		return m, nil
	}
}

// check reads the stream's creation time and, when it changed, follows the new stream.
func (f *Follower) check(ctx context.Context) error {
	info, err := f.s.Info(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	f.checked = time.Now()
	if err != nil {
		return nil // gone, or NATS not answering: the ordered consumer waits for it, and so do we
	}
	if info.Created.Equal(f.created) {
		clear(f.since)
		return nil
	}
	f.created = info.Created
	f.skip = map[uint64]bool{}
	for seq, stored := range f.since {
		if !stored.Before(info.Created) {
			f.skip[seq] = true // of the new stream, delivered already
		}
	}
	clear(f.since)
	f.iterator().Stop()
	// From the new stream's first message, or the start time asked for. (Not from its creation
	// time: in a cluster, the stream's leader may stamp its first messages before the time the
	// meta leader gave its creation.)
	f.cfg.DeliverPolicy, f.cfg.OptStartSeq = jetstream.DeliverAllPolicy, 0
	if f.cfg.OptStartTime != nil {
		f.cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
	}
	f.recreated(info.Created)
	return f.open(ctx)
}
