package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/config"
)

// Names of the worker's internal stream and durable consumers.
const (
	PollStream       = "ATODENE_POLLS"
	pollSubjectBase  = "atodene.poll."
	ordersConsumer   = "atodene-worker"
	ordersFilter     = "orders.>" // the orders consumer's: every inbound event
	pollConsumer     = "atodene-worker-polls"
	pollDueFilter    = pollSubjectBase + "due.>"
	pollStreamFilter = pollSubjectBase + ">"
)

// streamConfigs are the streams of docs/architecture.md#streams-subjects-and-consumers with the
// configured names and retention.
// maxInbound is the ORDERS stream's message size limit for a server whose max_payload is
// maxPayload: room is kept for the dead-letter headers, so that every message the stream accepts
// can also be dead-lettered with its body byte for byte. A larger one is refused at publish time,
// so it is never accepted and then lost.
func maxInbound(maxPayload int64) int32 {
	const deadLetterHeadroom = 16 << 10 // Dlq-* headers; Dlq-Error is cut at 1 KiB
	return int32(max(maxPayload-deadLetterHeadroom, 1024))
}

// streamShares are the percentages of -stream-bytes of the streams of streamConfigs, in order.
var streamShares = []int64{40, 36, 10, 6, 6, 2}

func streamConfigs(s config.Settings, maxPayload int64) []jetstream.StreamConfig {
	// A handler that dies after publishing an outcome but before recording it comes back after
	// the ack wait and publishes again with the same message ID: the outcome streams' duplicate
	// window must outlast that.
	outDup := max(2*time.Minute, 3*s.AckWait)
	configs := []jetstream.StreamConfig{
		{Name: s.OrdersStream, Subjects: []string{"orders.>"}, MaxAge: s.OrdersRetention, Duplicates: s.DuplicateWindow,
			MaxMsgSize: maxInbound(maxPayload)},
		{Name: s.ResultsStream, Subjects: []string{"credit.>", "shipment.>", "invoice.>"}, MaxAge: s.ResultsRetention, Duplicates: outDup},
		{Name: s.DLQStream, Subjects: []string{"dlq.>"}, MaxAge: s.DLQRetention, Duplicates: outDup},
		// Poll schedules: one schedule message per order (the latest replaces the earlier), fired
		// by the server onto the due subject. Waiting schedules hold no consumer slot.
		{Name: PollStream, Subjects: []string{pollStreamFilter}, MaxMsgsPerSubject: 1, AllowMsgSchedules: true,
			MaxAge: pollStreamMaxAge(s)},
		keptStreamConfig(s),
		advisoryStreamConfig(s.OrdersStream),
	}
	for i := range configs {
		c := &configs[i]
		c.Retention, c.Storage, c.Replicas = jetstream.LimitsPolicy, jetstream.FileStorage, s.StreamReplicas
		// Each stream reserves its share of the store and, once it is full, refuses new messages
		// rather than discarding old ones: a full ORDERS refuses input, while RESULTS, DLQ and
		// the timers still have their room for the worker's own writes. The server allows no
		// discard-new for message schedules: a full ATODENE_POLLS drops its oldest messages
		// (mostly due polls already handled), and the timer reconciler re-creates a timer lost.
		c.MaxBytes, c.Discard = int64(s.StreamBytes)*streamShares[i]/100, jetstream.DiscardNew
		if c.AllowMsgSchedules {
			c.Discard = jetstream.DiscardOld
		}
	}
	return configs
}

// pollStreamMaxAge is ATODENE_POLLS's max age: longer than any timer is scheduled ahead (the poll
// deadline, the park limit, the longest re-check interval with its +10% jitter, which the settings
// keep within the deadline), and a day more, so that no schedule is removed before it fires.
func pollStreamMaxAge(s config.Settings) time.Duration {
	jittered := s.PollMaxInterval + s.PollMaxInterval/10
	if jittered < s.PollMaxInterval { // wrapped: refused by the settings anyway
		jittered = s.PollMaxInterval
	}
	return max(s.PollDeadline, s.ParkLimit, jittered) + 24*time.Hour
}

// consumers are the worker's durable consumers, and when the ORDERS stream was created (Unix ns).
type consumers struct {
	orders, polls, advisories jetstream.Consumer
	ordersCreated             int64
}

// setup creates or updates the streams and durable consumers, idempotently.
func setup(ctx context.Context, js jetstream.JetStream, s config.Settings) (cs consumers, err error) {
	if !s.SkipStreamSetup {
		for _, sc := range streamConfigs(s, js.Conn().MaxPayload()) {
			if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
				return cs, fmt.Errorf("creating or updating stream %s: %w", sc.Name, err)
			}
		}
	}
	consumer := func(stream, name, filter string) (jetstream.Consumer, error) {
		// A worker holds at most -concurrency messages of a consumer (the budget the three share,
		// less what is guaranteed to the others), so MaxAckPending lets four replicas each hold
		// their fill, with what waits a NAK delay.
		cc := jetstream.ConsumerConfig{
			Durable: name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: s.AckWait, MaxDeliver: s.MaxDeliveries, MaxAckPending: 4 * s.Concurrency,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		}
		if s.SkipStreamSetup {
			return js.Consumer(ctx, stream, name)
		}
		c, err := js.CreateOrUpdateConsumer(ctx, stream, cc)
		if err != nil {
			return nil, fmt.Errorf("creating or updating consumer %s on %s: %w", name, stream, err)
		}
		return c, nil
	}
	if cs.orders, err = consumer(s.OrdersStream, ordersConsumer, ordersFilter); err != nil {
		return cs, err
	}
	if cs.polls, err = consumer(PollStream, pollConsumer, pollDueFilter); err != nil {
		return cs, err
	}
	if cs.advisories, err = consumer(AdvisoryStream, advisoryConsumer, ""); err != nil {
		return cs, err
	}
	cs.ordersCreated, err = streamCreated(ctx, js, s.OrdersStream)
	return cs, err
}

// streamCreated returns when a stream was created (Unix ns).
func streamCreated(ctx context.Context, js jetstream.JetStream, name string) (int64, error) {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("reading stream %s: %w", name, err)
	}
	return st.CachedInfo().Created.UnixNano(), nil
}

// streamSetup runs setup one at a time, among the workers sharing a Redis and within a worker
// (whose three consumers may each find a stream missing at once, and its reconciliation too):
// two creations of one stream at once can leave it broken on a single nats-server, both passing
// its existence check and opening the same store, publishes to the stream then going unanswered
// (nats-server 2.15 stream.go addStreamWithAssignment; nats-io/nats.go#949, nats-server#3677). A
// NATS cluster's meta leader orders creations; an operator's are not ordered with the workers',
// hence streamRecreateDelay.
type streamSetup struct {
	js  jetstream.JetStream
	s   config.Settings
	rdb redis.UniversalClient
	log *zap.Logger
	key string        // the Redis lock, <prefix>lock:stream-setup
	ttl time.Duration // the lock's, setupLockTTL; renewed while held
	mu  sync.Mutex
}

const (
	// setupLockTTL is the stream setup lock's time to live, renewed every third of it while a
	// setup runs: a worker that died holding it delays the others' setup this long at most.
	setupLockTTL = 10 * time.Second
	// streamRecreateDelay is how long after a stream or consumer is found missing while the
	// worker runs that the worker sets it up again: an operator who deletes a stream and
	// creates it again at once (a rename, a move to three replicas) creates it alone.
	streamRecreateDelay = 5 * time.Second
)

func newStreamSetup(js jetstream.JetStream, s config.Settings, rdb redis.UniversalClient, prefix string, log *zap.Logger) *streamSetup {
	return &streamSetup{js: js, s: s, rdb: rdb, log: log, key: prefix + "lock:stream-setup", ttl: setupLockTTL}
}

// run creates or updates the streams and consumers (setup) under the lock. It returns the
// error of setup, or ctx's while it waits for the lock.
func (ss *streamSetup) run(ctx context.Context) (consumers, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.s.SkipStreamSetup { // setup creates nothing
		return setup(ctx, ss.js, ss.s)
	}
	unlock, err := ss.lock(ctx)
	if err != nil {
		return consumers{}, err
	}
	defer unlock()
	return setup(ctx, ss.js, ss.s)
}

// again runs setup streamRecreateDelay after a stream or consumer was found missing while the
// worker runs.
func (ss *streamSetup) again(ctx context.Context) (consumers, error) {
	select {
	case <-ctx.Done():
		return consumers{}, ctx.Err()
	case <-time.After(streamRecreateDelay):
	}
	return ss.run(ctx)
}

// lock takes the Redis lock, waiting while another worker holds it, and returns its release.
// A Redis that refuses the write (full, read-only in a failover) or does not answer is logged
// and the setup goes on without the lock: the lock narrows a rare race, and a worker that can
// reach NATS must not stop (or fail to start) for it.
func (ss *streamSetup) lock(ctx context.Context) (func(), error) {
	token := strconv.FormatUint(rand.Uint64(), 36)
	for {
		ok, err := ss.rdb.SetNX(ctx, ss.key, token, ss.ttl).Result()
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("waiting for the stream setup lock %s: %w", ss.key, ctx.Err())
		case err != nil:
			ss.log.Warn("the stream setup lock cannot be taken in Redis; setting the streams up without it", zap.String("key", ss.key), zap.Error(err))
			return func() {}, nil
		case ok:
			return ss.hold(token), nil
		}
		select { // an end of ctx is returned by the next turn
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// hold renews the lock of token every third of its TTL, so that a setup slower than the TTL
// keeps it, and returns its release.
func (ss *streamSetup) hold(token string) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(ss.ttl / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = renewLock.Run(context.Background(), ss.rdb, []string{ss.key}, token, ss.ttl.Milliseconds()).Err()
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		// Only this worker's lock: one that ran out may be another's now.
		_ = releaseLock.Run(context.Background(), ss.rdb, []string{ss.key}, token).Err()
	}
}

var (
	renewLock   = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	releaseLock = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

// rebind returns the Rebind of a durable consumer (consumer.Config): the consumer as it is,
// or, when it or its stream is gone (deleted, created again, or the NATS store lost), the one
// setup makes again (unless -skip-stream-setup: then an administrator must), with the creation
// time of its stream.
func (ss *streamSetup) rebind(stream, name string) func(context.Context) (jetstream.Consumer, int64, error) {
	return func(ctx context.Context) (jetstream.Consumer, int64, error) {
		c, err := ss.js.Consumer(ctx, stream, name)
		if (errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)) && !ss.s.SkipStreamSetup {
			if _, err := ss.again(ctx); err != nil {
				return nil, 0, err
			}
			c, err = ss.js.Consumer(ctx, stream, name)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("binding consumer %s of stream %s: %w", name, stream, err)
		}
		created, err := streamCreated(ctx, ss.js, stream)
		return c, created, err
	}
}

// ensure creates the streams and consumers again (setup) if any stream is missing: a stream the
// worker only writes to (RESULTS, DLQ) is not noticed by a consumer. It says whether it did.
func (ss *streamSetup) ensure(ctx context.Context) (bool, error) {
	for _, sc := range streamConfigs(ss.s, ss.js.Conn().MaxPayload()) {
		_, err := ss.js.Stream(ctx, sc.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) && !ss.s.SkipStreamSetup {
			_, err = ss.again(ctx)
			return err == nil, err
		}
		if err != nil {
			return false, fmt.Errorf("reading stream %s: %w", sc.Name, err)
		}
	}
	return false, nil
}

// Unhandled returns how many inbound events of the ORDERS stream the worker has not handled yet:
// the pending and unacknowledged messages of its durable consumer.
func Unhandled(ctx context.Context, js jetstream.JetStream, s config.Settings) (int64, error) {
	c, err := js.Consumer(ctx, s.OrdersStream, ordersConsumer)
	if err != nil {
		return 0, fmt.Errorf("reading consumer %s of stream %s: %w", ordersConsumer, s.OrdersStream, err)
	}
	info := c.CachedInfo()
	return int64(info.NumPending) + int64(info.NumAckPending), nil
}
