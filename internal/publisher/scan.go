package publisher

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Reading a stream by sequence: the commands that look up an event the worker received or
// published (invoice print, order rerun) read a stream between two sequences, newest first, and
// stop as soon as they found it or read as many messages as they may.

// scanBatch is how many messages one request of a range read asks for.
const scanBatch = 256

// readRange reads the messages of s on the filter subjects (all of them when none) from sequence
// from up to, not including, sequence to (0: the end of the stream), oldest first, and gives each
// to visit with its stream sequence until visit says stop. It returns how many it read.
func readRange(ctx context.Context, s jetstream.Stream, filters []string, from, to uint64, visit func(m jetstream.Msg, seq uint64) (stop bool, err error)) (int, error) {
	if from == 0 {
		from = 1
	}
	if to != 0 && from >= to {
		return 0, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: filters,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from, InactiveThreshold: 30 * time.Second})
	if err != nil {
		return 0, fmt.Errorf("reading stream %s: %w", s.CachedInfo().Config.Name, err)
	}
	read := 0
	for {
		if err := ctx.Err(); err != nil {
			return read, err
		}
		// The messages are stored already: a request that waited for more would only wait.
		batch, err := c.FetchNoWait(scanBatch)
		if err != nil {
			return read, fmt.Errorf("reading stream %s: %w", s.CachedInfo().Config.Name, err)
		}
		n, last := 0, false
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return read, err
			}
			seq := md.Sequence.Stream
			if last || to != 0 && seq >= to {
				last = true
				continue // drain the batch
			}
			read++
			stop, err := visit(m, seq)
			if err != nil {
				return read, err
			}
			last = stop || md.NumPending == 0
		}
		if err := batch.Error(); err != nil {
			return read, fmt.Errorf("reading stream %s: %w", s.CachedInfo().Config.Name, err)
		}
		if n == 0 || last {
			return read, nil
		}
	}
}

// backScan reads a stream backwards from a sequence, in windows of sequences that double as they
// go (so that a sparse subject costs few requests), each window read oldest first.
type backScan struct {
	stream  jetstream.Stream
	filters []string
	// floor is the first sequence it may read (0: the stream's first).
	floor uint64
	// limit is how many messages it may read in all.
	limit int
}

// scanResult says how a backward scan ended.
type scanResult struct {
	Read int `json:"read"`
	// Limited says it stopped at its limit of messages, before the floor.
	Limited bool `json:"limited"`
}

// run reads the messages below sequence before (0: the whole stream), giving each to visit; after
// each window, done says whether it found what it looked for. Within a window, visit sees the
// messages oldest first: what it keeps of a later message replaces what it kept of an earlier one,
// and once done says so, no older window is read.
func (b backScan) run(ctx context.Context, before uint64, visit func(m jetstream.Msg, seq uint64) error, done func() bool) (scanResult, error) {
	var res scanResult
	info, err := b.stream.Info(ctx)
	if err != nil {
		return res, err
	}
	floor := max(b.floor, info.State.FirstSeq, 1)
	hi := info.State.LastSeq + 1
	if before != 0 && before < hi {
		hi = before
	}
	window := uint64(1024)
	for hi > floor {
		if res.Read >= b.limit {
			res.Limited = true
			return res, nil
		}
		// A window of w sequences holds at most w messages: capped at what the limit leaves, it
		// is always read whole, so a message kept from it is never older than one left unread.
		w := min(window, uint64(b.limit-res.Read))
		lo := floor
		if hi-floor > w {
			lo = hi - w
		}
		read, err := readRange(ctx, b.stream, b.filters, lo, hi, func(m jetstream.Msg, seq uint64) (bool, error) {
			return false, visit(m, seq)
		})
		res.Read += read
		if err != nil || done() {
			return res, err
		}
		hi = lo
		window = min(2*window, 1<<20)
	}
	return res, nil
}

// firstSeqSince returns the sequence of the first message on the filter subjects stored at or
// after t, or 0 when there is none.
func firstSeqSince(ctx context.Context, s jetstream.Stream, filters []string, t time.Time) (uint64, error) {
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: filters,
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t, InactiveThreshold: 30 * time.Second})
	if err != nil {
		return 0, err
	}
	batch, err := c.FetchNoWait(1)
	if err != nil {
		return 0, err
	}
	var seq uint64
	for m := range batch.Messages() {
		if md, err := m.Metadata(); err == nil {
			seq = md.Sequence.Stream
		}
	}
	return seq, batch.Error()
}
