// Package consumer is the NATS JetStream adapter of the handlers: it pulls messages from durable
// consumers within a shared budget of handling slots, runs each through a handlers.Handler with
// progress heartbeats, and settles it by the handler's error: ack (also for an event the handler
// kept for its retry, handlers.KeptForRetry), dead letter then ack, or Nak with a delay. Failures
// of Redis and JetStream are tried again in place (Infra).
package consumer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/tracing"
)

// DeadLetterFunc writes a message to the dead-letter stream and returns once it is stored; m is
// the message as the handlers saw it.
type DeadLetterFunc func(ctx context.Context, msg jetstream.Msg, m *handlers.Message, reason handlers.Reason, cause error) error

// Config configures Consume.
type Config struct {
	// Share is the consumer's part of a budget of handling slots shared with other consumers
	// (Budget.Share): the messages of all of them handled at once stay within the budget's size.
	// Default nil: a budget of Concurrency slots of the consumer's own, closed when Consume returns.
	Share *Share
	// Concurrency is how many messages are handled at once when Share is nil; required then
	// (-concurrency: its default lives in internal/config).
	Concurrency int
	// AckWait is the consumer's ack wait; progress is signalled every AckWait/3 while a handler
	// runs, so a slow provider call is never redelivered elsewhere. Required.
	AckWait time.Duration
	// MaxDeliver is the consumer's delivery limit: the last delivery of a failing message
	// dead-letters it as exhausted instead of handing it back. Required.
	MaxDeliver int
	// Backoff is the redelivery delay after a transient failure at the given attempt.
	// Default: 1s doubling to 1m.
	Backoff func(attempt int) time.Duration
	// HandlerTimeout bounds one handling of a message; a handler still running then is
	// cancelled and the message retried. Default 0: no bound.
	HandlerTimeout time.Duration
	// Grace is how long in-flight handlers may finish after ctx is cancelled before they are
	// cancelled and their messages handed back. Required (-shutdown-grace).
	Grace time.Duration
	// DeadLetter stores dead letters. Required.
	DeadLetter DeadLetterFunc
	// DeadLettered, if set, is called after a dead letter was stored, with the message as the
	// handlers saw it (its order, if known), e.g. to record it in the order's history.
	DeadLettered func(ctx context.Context, m *handlers.Message, reason handlers.Reason, cause error)
	// StreamCreated is when the consumer's stream was created (Unix ns), given to each message
	// (handlers.Message.StreamCreated): it tells the stream's sequences from those of a stream of the same
	// name deleted earlier. 0 when unknown.
	StreamCreated int64
	// Rebind, if set, is called after a fetch failed. It returns the consumer to fetch from next
	// and its stream's creation time: the same ones while they exist, or new ones when the stream
	// or the consumer was deleted (and created again, by Rebind or by an administrator).
	Rebind func(ctx context.Context) (jetstream.Consumer, int64, error)
	// Logger logs acknowledgement failures. Default: no logging.
	Logger *zap.Logger
	// Infra, if set, is told of the failures of Redis and JetStream that hold messages, and of
	// the recoveries, for readiness.
	Infra *Infra
	// Tracing, if set, traces each message in a consumer span "process <subject>" that continues
	// the trace of the message's traceparent header or, without one, of its body's CloudEvents
	// traceparent attribute; the handler, the dead letter and what they call run within it.
	// Default nil: no span, no cost (package tracing).
	Tracing trace.TracerProvider
}

// withDefaults fills what is no setting of the worker's: the redelivery backoff and the logger.
func (c Config) withDefaults() Config {
	if c.Backoff == nil {
		c.Backoff = func(attempt int) time.Duration {
			return min(time.Second<<min(attempt-1, 6), time.Minute)
		}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Consume pulls messages from cons and handles as many of them at once as its share of a budget
// allows (or Concurrency) until ctx is cancelled. Then it stops fetching, lets in-flight handlers
// finish within the grace period, hands back what is left (Nak) and returns nil.
func Consume(ctx context.Context, cons jetstream.Consumer, h handlers.Handler, cfg Config) error {
	cfg = cfg.withDefaults()
	if cfg.AckWait <= 0 || cfg.MaxDeliver <= 0 || cfg.Grace <= 0 || cfg.DeadLetter == nil || (cfg.Share == nil && cfg.Concurrency <= 0) {
		return errors.New("consumer: Consume needs AckWait, MaxDeliver, Grace, DeadLetter, and Share or Concurrency")
	}
	// Handlers run under their own context, cancelled only when the grace period is over.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	share := cfg.Share
	if share == nil {
		budget := NewBudget(cfg.Concurrency)
		defer budget.Close() // deferred first, so run last: after the in-flight handlers are waited for
		share = budget.Share(0)
	}
	var inFlight sync.WaitGroup
	created := cfg.StreamCreated
	// want is how many slots to take for the next fetch: twice what the last one brought, so
	// that an idle consumer, whose fetch waits fetchWait for messages that do not come, holds one
	// slot of the shared budget meanwhile, not every free one, while a busy one doubles to what
	// is free.
	want := 1
	for ctx.Err() == nil {
		// Messages are pulled only for slots taken: a message the server delivered is handled at
		// once, with progress heartbeats, never left waiting in a buffer where its ack wait would
		// run out.
		n := share.acquire(ctx, want)
		if n == 0 {
			break
		}
		// A message goes with the creation time of the stream it was fetched from: a rebind
		// (below) changes it only between fetches.
		msgCreated := created
		got, err := fetch(cons, n, func(msg jetstream.Msg) {
			inFlight.Add(1)
			share.run(func() {
				defer inFlight.Done()
				defer share.release(1)
				handleMsg(work, msg, msgCreated, h, cfg)
			})
		})
		share.release(n - got) // the reservations the batch did not use
		want = min(max(2*got, 1), share.b.size)
		if err != nil && ctx.Err() == nil {
			cfg.Logger.Warn("pulling messages failed; retrying", zap.Error(err))
			if cfg.Rebind != nil {
				if c, cr, err := cfg.Rebind(ctx); err != nil {
					if ctx.Err() == nil {
						cfg.Logger.Warn("binding the consumer again failed; retrying", zap.Error(err))
					}
				} else {
					if cr != created && created != 0 {
						cfg.Logger.Warn("the stream was deleted and created again: fetching from its new consumer")
					}
					cons, created = c, cr
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	done := make(chan struct{})
	go func() { inFlight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.Grace):
		cancelWork()
		<-done
	}
	return nil
}

// fetchWait bounds one pull request; shutdown waits at most this long for it to end.
const fetchWait = time.Second

// fetch pulls up to n messages, passing each to handle as it arrives, and returns how many came.
func fetch(cons jetstream.Consumer, n int, handle func(jetstream.Msg)) (int, error) {
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(fetchWait))
	if err != nil {
		return 0, err
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		handle(msg)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
		return got, err
	}
	return got, nil
}

// handleMsg runs one message through h and settles it: ack on success and for an event kept for
// its retry (handlers.RetriedLater), dead letter then ack on a permanent failure or the last
// attempt, Nak with a delay otherwise. A failure of Redis or
// JetStream (IsInfrastructure), and a dead letter that cannot be written, are tried again in
// place, the message kept with progress heartbeats, for as long as they last: a redelivery would
// use up the message's deliveries for a fault that is not its own, and a message out of deliveries
// whose dead letter cannot be written either would be lost.
func handleMsg(ctx context.Context, msg jetstream.Msg, created int64, h handlers.Handler, cfg Config) {
	m := &handlers.Message{Subject: msg.Subject(), Body: msg.Data(), Attempt: 1, ReplayCount: msg.Headers().Get(dlq.HeaderReplayCount)}
	m.Replayed = m.ReplayCount != ""
	if md, err := msg.Metadata(); err == nil {
		m.Stream, m.Sequence, m.Attempt = md.Stream, md.Sequence.Stream, int(md.NumDelivered)
	}
	m.LastAttempt = m.Attempt >= cfg.MaxDeliver
	m.Published = dlq.Published(msg.Headers(), m.Sequence)
	m.StreamCreated, m.PublishedCreated = created, dlq.PublishedCreated(msg.Headers(), created)
	var outcome, reason string // how the message was settled, for its span
	var err error
	if cfg.Tracing != nil {
		var span trace.Span
		ctx, span = startProcess(ctx, cfg.Tracing, msg, m)
		defer func() { endProcess(span, m, outcome, reason, err) }()
	}
	// The lines of the message's handling name its trace when it has one (tracing.LogFields).
	log := cfg.Logger.With(tracing.LogFields(ctx, []zap.Field{zap.String("subject", tracing.Clip(m.Subject)), zap.Uint64("seq", m.Sequence)})...)
	stopBeat := heartbeat(msg, cfg.AckWait/3)
	defer stopBeat() // stopped before the message is settled: no beat follows an ack
	settle := func(settle func() error, what string) {
		stopBeat()
		if err := settle(); err != nil {
			log.Warn(what+" failed; the server redelivers the message after its ack wait", zap.Error(err))
		}
	}

	err = cfg.held(ctx, log, "handling the message", func() error {
		err := runHandler(ctx, m, h, cfg)
		m.Again = true // a run after this one is a run again in place
		return err
	})
	if err == nil {
		outcome = "ok"
		settle(msg.Ack, "ack")
		return
	}
	if handlers.RetriedLater(err) {
		outcome = "retry-kept" // the event waits first in its order's inbox: its message is done with, at shutdown too
		settle(msg.Ack, "ack")
		return
	}
	if ctx.Err() != nil {
		outcome = "handed-back"
		settle(msg.Nak, "Nak") // shutting down: hand the message back at once for another worker
		return
	}
	dlReason, permanent := handlers.DeadLetterOf(err, m)
	if !permanent {
		delay, ok := handlers.RetryDelay(err)
		outcome = "retry-after"
		if !ok {
			delay, outcome = cfg.Backoff(m.Attempt), "retry"
		}
		settle(func() error { return msg.NakWithDelay(delay) }, "Nak")
		return
	}
	write := func() error { return handlers.Infrastructure(cfg.DeadLetter(ctx, msg, m, dlReason, err)) }
	if dlErr := cfg.held(ctx, log, "writing the dead letter", write); dlErr != nil {
		outcome = "handed-back"
		settle(msg.Nak, "Nak") // shutting down before the dead letter could be written
		return
	}
	if cfg.DeadLettered != nil {
		cfg.DeadLettered(ctx, m, dlReason, err)
	}
	outcome, reason = "dead-letter", dlReason.String()
	settle(msg.Ack, "ack after dead letter")
}

// runHandler runs h once, within the handler timeout. A handler cut by its timeout fails as a
// handler timeout, whatever its last call returned (handlers.OfTry): a call to Redis or JetStream
// made with its ended context fails as if the server did not answer, and held would keep the
// message in place, without using a delivery, for ever, while the servers answer all along.
func runHandler(ctx context.Context, m *handlers.Message, h handlers.Handler, cfg Config) error {
	if cfg.HandlerTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.HandlerTimeout)
		defer cancel()
	}
	return handlers.OfTry(ctx, h(ctx, m))
}

// held runs try until it succeeds or fails otherwise than by the infrastructure, waiting between
// tries (1 s doubling to 30 s) while the message is kept; it gives up when ctx ends. Each failure
// is logged and reported to cfg.Infra, and so is the recovery. A failure once ctx has ended (the
// worker stopping) is returned as it is: the ended context made it, not the servers.
func (cfg Config) held(ctx context.Context, log *zap.Logger, what string, try func() error) error {
	err := try()
	if err != nil && ctx.Err() != nil {
		return err
	}
	if err == nil || !handlers.IsInfrastructure(err) {
		cfg.Infra.succeeded()
		return err
	}
	cfg.Infra.hold(+1)
	defer cfg.Infra.hold(-1)
	for wait := time.Second; err != nil && handlers.IsInfrastructure(err); wait = min(2*wait, 30*time.Second) {
		cfg.Infra.failed(err)
		log.Warn(what+" failed: Redis or JetStream; the message is kept and tried again in place, not counted as a delivery",
			zap.Duration("retry_in", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		if err = try(); err != nil && ctx.Err() != nil {
			return err
		}
	}
	cfg.Infra.succeeded()
	return err
}

// heartbeat tells the server the message is still being worked on, every interval, until
// stopped. A timer rather than a goroutine per message; stop waits for a beat being sent, so none
// follows the acknowledgement.
func heartbeat(msg jetstream.Msg, interval time.Duration) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock() // the first beat waits for t
	defer mu.Unlock()
	t = time.AfterFunc(interval, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			_ = msg.InProgress()
			t.Reset(interval)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}
