package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atodene-worker/atodene-worker/internal/deadletter"
)

// The gauges read from JetStream at scrape time: the age of the ORDERS backlog and the depth of
// the dead-letter stream. A read costs the server a few API requests, so that one serves every
// scrape within readEvery of it (two Prometheus servers, a curl; each replica is scraped too).

// readEvery is how long a read at scrape time serves later scrapes.
const readEvery = time.Second

// cached runs read (bounded by 1 s) at most once per every; the scrapes in between get its result
// again.
type cached[T any] struct {
	read  func(context.Context) (T, error)
	every time.Duration // readEvery; 0 reads at every scrape

	mu  sync.Mutex
	at  time.Time // of the last read; zero before the first
	val T
	err error
}

// get returns the last read's result, reading again if it is older than every. fresh says
// whether this call read, so that a failed read is counted once, by the scrape that made it.
func (c *cached[T]) get() (val T, fresh bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || time.Since(c.at) >= c.every {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c.val, c.err = c.read(ctx)
		c.at = time.Now()
		return c.val, true, c.err
	}
	return c.val, false, c.err
}

// backlogCollector is atodene_worker_orders_backlog_age_seconds: how long the oldest message of
// the ORDERS stream that the worker's consumer has not acknowledged has been in the stream (0 when
// none waits), and the count of failed reads, during which the gauge has no sample.
type backlogCollector struct {
	now    func() time.Time
	oldest *cached[time.Time] // zero: nothing waits
	errors prometheus.Counter
}

var backlogDesc = prometheus.NewDesc("atodene_worker_orders_backlog_age_seconds",
	"Age of the oldest inbound message the worker's consumer has not acknowledged (waiting or in flight), by its time in the ORDERS stream; 0 when none waits; no sample when JetStream could not be read.", nil, nil)

// backlogGauge reads the oldest unacknowledged message of stream for the durable consumer
// (whose filter is filter) from JetStream at scrape time (readEvery).
func backlogGauge(js jetstream.JetStream, stream, durable, filter string, now func() time.Time) *backlogCollector {
	return &backlogCollector{now: now, oldest: &cached[time.Time]{every: readEvery, read: func(ctx context.Context) (time.Time, error) {
		return oldestUnacked(ctx, js, stream, durable, filter)
	}}, errors: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "atodene_worker_orders_backlog_read_errors_total",
		Help: "Reads of atodene_worker_orders_backlog_age_seconds from JetStream that failed: the gauge has no sample then.",
	})}
}

// oldestUnacked returns the time the stream stored the oldest message the consumer has not
// acknowledged: the first message of its filter after the consumer's ack floor (messages past
// the floor may be acknowledged already, the one right after it is not). Zero when none is
// pending or unacknowledged.
func oldestUnacked(ctx context.Context, js jetstream.JetStream, stream, durable, filter string) (time.Time, error) {
	c, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading consumer %s of stream %s: %w", durable, stream, err)
	}
	info := c.CachedInfo()
	if info.NumPending == 0 && info.NumAckPending == 0 {
		return time.Time{}, nil
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading stream %s: %w", stream, err)
	}
	// The next message of the filter from there: the one right after the floor may be deleted.
	m, err := s.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(filter))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return time.Time{}, nil // acknowledged (or removed) since the consumer was read
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading stream %s after seq %d: %w", stream, info.AckFloor.Stream, err)
	}
	return m.Time, nil
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogDesc
	c.errors.Describe(ch)
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	oldest, fresh, err := c.oldest.get()
	switch {
	case err != nil && fresh:
		c.errors.Inc()
	case err != nil:
	case oldest.IsZero():
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, 0)
	default:
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, max(c.now().Sub(oldest).Seconds(), 0))
	}
	c.errors.Collect(ch) // after the read, so that this scrape shows its own failure
}

// dlqCollector is atodene_worker_dead_letter_stream_messages: the letters the dead-letter stream
// holds by reason (every reason at 0 included), and the count of failed reads, during which it has
// no sample. The reasons are in the letters' headers (their subject is the original's), so a
// count reads letters' headers: when the stream's state (message count, first and last sequence)
// changed by appends only, those of the letters appended since the last count; after a removal
// (a replay, a purge), every letter's again.
type dlqCollector struct {
	counts *cached[map[string]int]
	errors prometheus.Counter
}

var dlqDesc = prometheus.NewDesc("atodene_worker_dead_letter_stream_messages",
	"Dead letters the dead-letter stream holds now, by reason, across all workers (replayed and purged ones gone); no sample when JetStream could not be read.",
	[]string{"reason"}, nil)

// dlqGauge reads the dead-letter stream named stream at scrape time (readEvery).
func dlqGauge(js jetstream.JetStream, stream string) *dlqCollector {
	q := deadletter.New(js, stream)
	type state struct{ msgs, first, last uint64 }
	var last state
	var counts map[string]int // of last; nil before a count
	read := func(ctx context.Context) (map[string]int, error) {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return nil, fmt.Errorf("reading stream %s: %w", stream, err)
		}
		st := s.CachedInfo().State
		now := state{st.Msgs, st.FirstSeq, st.LastSeq}
		appended := counts != nil && now.first == last.first && now.last > last.last && now.msgs-last.msgs == now.last-last.last
		switch {
		case counts != nil && now == last:
			return counts, nil
		case st.Msgs == 0:
			counts = deadletter.CountReasons(nil)
		case appended:
			added, err := q.ReasonCountsBetween(ctx, last.last+1, now.last)
			if err != nil {
				return nil, err // counts and last stay: the next read counts the same letters
			}
			next := maps.Clone(counts)
			for reason, n := range added {
				next[reason] += n
			}
			counts = next
		default:
			c, err := q.ReasonCountsBetween(ctx, 1, now.last)
			if err != nil {
				counts = nil
				return nil, err
			}
			// Letters removed during the count make the next state differ: counted again then.
			counts = c
		}
		last = now
		return counts, nil
	}
	return &dlqCollector{counts: &cached[map[string]int]{every: readEvery, read: read}, errors: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "atodene_worker_dead_letter_stream_read_errors_total",
		Help: "Reads of atodene_worker_dead_letter_stream_messages from JetStream that failed: the gauge has no sample then.",
	})}
}

func (c *dlqCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- dlqDesc
	c.errors.Describe(ch)
}

func (c *dlqCollector) Collect(ch chan<- prometheus.Metric) {
	counts, fresh, err := c.counts.get()
	if err != nil && fresh {
		c.errors.Inc()
	}
	if err == nil {
		for _, reason := range slices.Sorted(maps.Keys(counts)) {
			ch <- prometheus.MustNewConstMetric(dlqDesc, prometheus.GaugeValue, float64(counts[reason]), reason)
		}
	}
	c.errors.Collect(ch)
}
