// Package streamscan reads a JetStream stream by sequence: the messages between two sequences,
// oldest first (Range), or backwards from a sequence in windows that double as they go (Back), so
// that a tool looking for an event the worker received or published (an order's data, an invoice's
// print data) stops as soon as it found it or read as many messages as it may. Each read uses an
// ordered consumer of its own, deleted by the server once idle. Follow reads a stream as it grows,
// across the stream created again.
package streamscan

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// batch is how many messages one request of a range read asks for.
const batch = 256

// inactive is how long the server keeps a reader's consumer once nothing reads it.
const inactive = 30 * time.Second

// Range reads the messages of s on the filter subjects (all of them when none) from sequence from
// up to, not including, sequence to (0: the end of the stream), oldest first, and gives each to
// visit with its stream sequence until visit says stop. It returns how many it read. An error of
// visit ends the read and is returned; so is a failure of the server, wrapped with the stream's
// name, and ctx's error when it ends first.
func Range(ctx context.Context, s jetstream.Stream, filters []string, from, to uint64, visit func(m jetstream.Msg, seq uint64) (stop bool, err error)) (int, error) {
	if from == 0 {
		from = 1
	}
	if to != 0 && from >= to {
		return 0, nil
	}
	name := s.CachedInfo().Config.Name
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: filters,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from, InactiveThreshold: inactive})
	if err != nil {
		return 0, fmt.Errorf("reading stream %s: %w", name, err)
	}
	read := 0
	for {
		if err := ctx.Err(); err != nil {
			return read, err
		}
		// The messages are stored already: a request that waited for more would only wait.
		msgs, err := c.FetchNoWait(batch)
		if err != nil {
			return read, fmt.Errorf("reading stream %s: %w", name, err)
		}
		n, last := 0, false
		for m := range msgs.Messages() {
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
		if err := msgs.Error(); err != nil {
			return read, fmt.Errorf("reading stream %s: %w", name, err)
		}
		if n == 0 || last {
			return read, nil
		}
	}
}

// Back reads a stream backwards from a sequence, in windows of sequences that double as they go
// (1,024 at first, at most 1,048,576), so that a sparse subject costs few requests; each window is
// read oldest first.
type Back struct {
	Stream  jetstream.Stream
	Filters []string // the subjects read; none for all
	// Floor is the first sequence it may read (0: the stream's first).
	Floor uint64
	// Limit is how many messages it may read in all; it must be positive.
	Limit int
}

// Result says how a backward read ended.
type Result struct {
	Read int `json:"read"`
	// Limited says it stopped at its limit of messages, before the floor.
	Limited bool `json:"limited"`
}

// Run reads the messages below sequence before (0: the whole stream), giving each to visit; after
// each window, done says whether it found what it looked for. Within a window, visit sees the
// messages oldest first: what it keeps of a later message replaces what it kept of an earlier one,
// and once done says so, no older window is read. A window is never read in part: capped at what
// the limit leaves, so what visit keeps is never older than a message left unread. Errors are
// those of Range.
func (b Back) Run(ctx context.Context, before uint64, visit func(m jetstream.Msg, seq uint64) error, done func() bool) (Result, error) {
	var res Result
	info, err := b.Stream.Info(ctx)
	if err != nil {
		return res, err
	}
	floor := max(b.Floor, info.State.FirstSeq, 1)
	hi := info.State.LastSeq + 1
	if before != 0 && before < hi {
		hi = before
	}
	window := uint64(1024)
	for hi > floor {
		if res.Read >= b.Limit {
			res.Limited = true
			return res, nil
		}
		// A window of w sequences holds at most w messages: capped at what the limit leaves, it
		// is always read whole, so a message kept from it is never older than one left unread.
		w := min(window, uint64(b.Limit-res.Read))
		lo := floor
		if hi-floor > w {
			lo = hi - w
		}
		read, err := Range(ctx, b.Stream, b.Filters, lo, hi, func(m jetstream.Msg, seq uint64) (bool, error) {
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

// FirstSince returns the sequence of the first message on the filter subjects stored at or after
// t, or 0 when there is none.
func FirstSince(ctx context.Context, s jetstream.Stream, filters []string, t time.Time) (uint64, error) {
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: filters,
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t, InactiveThreshold: inactive})
	if err != nil {
		return 0, err
	}
	msgs, err := c.FetchNoWait(1)
	if err != nil {
		return 0, err
	}
	var seq uint64
	for m := range msgs.Messages() {
		if md, err := m.Metadata(); err == nil {
			seq = md.Sequence.Stream
		}
	}
	return seq, msgs.Error()
}
