package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/atodene-worker/atodene-worker/internal/consumer"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

const (
	testStream   = "ORDERS"
	testConsumer = "worker"
	testSubject  = "orders.created.shop-a"
)

// jsEnv is a JetStream server of the test's own with a stream on orders.>.
type jsEnv struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func newJSEnv(t *testing.T) *jsEnv {
	t.Helper()
	_, js := testenv.JetStream(t)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: testStream, Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	return &jsEnv{nc: js.Conn(), js: js}
}

// consumer creates the durable consumer the test consumes from.
func (e *jsEnv) consumer(t *testing.T, ackWait time.Duration, maxDeliver int) jetstream.Consumer {
	t.Helper()
	c, err := e.js.CreateOrUpdateConsumer(t.Context(), testStream, jetstream.ConsumerConfig{
		Durable: testConsumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxDeliver: maxDeliver,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// publish publishes bodies m-0 … m-(n-1) and returns them.
func (e *jsEnv) publish(t *testing.T, n int) []string {
	t.Helper()
	var bodies []string
	for i := range n {
		body := fmt.Sprintf("m-%d", i)
		if _, err := e.js.Publish(t.Context(), testSubject, []byte(body)); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	return bodies
}

// newConsumer starts a JetStream server of the test's own, publishes n messages to it (m-0 …
// m-(n-1)) and creates the durable consumer the test consumes them from.
func newConsumer(t *testing.T, ackWait time.Duration, maxDeliver, n int) jetstream.Consumer {
	t.Helper()
	e := newJSEnv(t)
	c := e.consumer(t, ackWait, maxDeliver)
	e.publish(t, n)
	return c
}

// info returns the consumer's state.
func info(t *testing.T, c jetstream.Consumer) *jetstream.ConsumerInfo {
	t.Helper()
	ci, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ci
}

// wantAckedOnce checks that the consumer has acknowledged the first n messages of the stream and
// has none delivered again or waiting for an ack.
func wantAckedOnce(t *testing.T, c jetstream.Consumer, n uint64) {
	t.Helper()
	if ci := info(t, c); ci.NumAckPending != 0 || ci.NumRedelivered != 0 || ci.AckFloor.Stream != n {
		t.Errorf("ack pending %d, redelivered %d, ack floor %d; want 0, 0, %d", ci.NumAckPending, ci.NumRedelivered, ci.AckFloor.Stream, n)
	}
}

// settled waits until the consumer has nothing pending nor unacknowledged and its ack floor has
// reached the stream's last message, sequence last. Nothing pending alone is not enough: the server
// counts a message pending for a consumer only once the stream has signalled it, asynchronously, so
// right after a publish a consumer can show nothing pending and nothing unacknowledged.
func settled(t *testing.T, c jetstream.Consumer, last uint64) *jetstream.ConsumerInfo {
	t.Helper()
	var ci *jetstream.ConsumerInfo
	wait.For(t, 5*time.Second, "the consumer to settle", func() bool {
		ci = info(t, c)
		return ci.NumAckPending == 0 && ci.NumPending == 0 && ci.AckFloor.Stream >= last
	})
	return ci
}

// run starts Consume and returns a function that cancels it and returns its error. It fails the
// test if Consume does not return within wait after the cancellation.
func run(t *testing.T, c jetstream.Consumer, h handlers.Handler, cfg consumer.Config) (stop func(wait time.Duration) error) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	// The worker's defaults of -concurrency and -shutdown-grace, where the test sets neither.
	if cfg.Share == nil && cfg.Concurrency == 0 {
		cfg.Concurrency = 512
	}
	if cfg.Grace == 0 {
		cfg.Grace = 30 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumer.Consume(ctx, c, h, cfg) }()
	var once sync.Once
	var err error
	stop = func(wait time.Duration) error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(wait):
				err = fmt.Errorf("Consume did not return within %s of the cancellation", wait)
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop(10 * time.Second) })
	return stop
}

// delivery is one call of a handler.
type delivery struct {
	body    string
	attempt int
	at      time.Time
}

// recorder records deliveries and answers each with a function of the delivery.
type recorder struct {
	mu    sync.Mutex
	calls []delivery
	reply func(ctx context.Context, m *handlers.Message) error
}

func (r *recorder) handle(ctx context.Context, m *handlers.Message) error {
	r.mu.Lock()
	r.calls = append(r.calls, delivery{body: string(m.Body), attempt: m.Attempt, at: time.Now()})
	r.mu.Unlock()
	if r.reply == nil {
		return nil
	}
	return r.reply(ctx, m)
}

func (r *recorder) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recorder) count() int { return len(r.deliveries()) }

// letter is one call of a DeadLetterFunc.
type letter struct {
	subject, body string
	reason        handlers.Reason
	attempts      uint64
	cause         error
}

// deadLetters records dead letters; fail, when set, decides whether a call fails.
type deadLetters struct {
	mu      sync.Mutex
	letters []letter
	fail    func(call int) bool
}

func (d *deadLetters) write(_ context.Context, msg jetstream.Msg, _ *handlers.Message, reason handlers.Reason, cause error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := letter{subject: msg.Subject(), body: string(msg.Data()), reason: reason, cause: cause}
	if md, err := msg.Metadata(); err == nil {
		l.attempts = md.NumDelivered
	}
	d.letters = append(d.letters, l)
	if d.fail != nil && d.fail(len(d.letters)) {
		return errors.New("DLQ stream unavailable")
	}
	return nil
}

func (d *deadLetters) all() []letter {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.letters)
}

var errTransient = errors.New("ATODENE did not answer")

func nop(context.Context, *handlers.Message) error { return nil }

func TestConsumeNeedsItsSettings(t *testing.T) {
	t.Parallel()
	e := newJSEnv(t)
	c := e.consumer(t, time.Second, 3)
	dl := (&deadLetters{}).write
	for _, cfg := range []consumer.Config{
		{MaxDeliver: 3, DeadLetter: dl, Concurrency: 1, Grace: time.Second},
		{AckWait: time.Second, DeadLetter: dl, Concurrency: 1, Grace: time.Second},
		{AckWait: time.Second, MaxDeliver: 3, Concurrency: 1, Grace: time.Second},
		{AckWait: time.Second, MaxDeliver: 3, DeadLetter: dl, Grace: time.Second}, // neither Share nor Concurrency
		{AckWait: time.Second, MaxDeliver: 3, DeadLetter: dl, Concurrency: 1},     // no Grace
	} {
		if err := consumer.Consume(t.Context(), c, nop, cfg); err == nil {
			t.Errorf("Consume(%+v) accepted an incomplete config", cfg)
		}
	}
}

func TestConsumeAcksSuccess(t *testing.T) {
	t.Parallel()
	e := newJSEnv(t)
	c := e.consumer(t, time.Second, 3)
	bodies := e.publish(t, 3)
	var msgs []handlers.Message
	var mu sync.Mutex
	h := func(_ context.Context, m *handlers.Message) error {
		mu.Lock()
		defer mu.Unlock()
		msgs = append(msgs, *m)
		return nil
	}
	dl := &deadLetters{}
	stop := run(t, c, h, consumer.Config{AckWait: time.Second, MaxDeliver: 3, DeadLetter: dl.write})
	settled(t, c, 3)
	time.Sleep(1300 * time.Millisecond) // past AckWait: an unacknowledged message would be back
	if err := stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(msgs) != 3 {
		t.Fatalf("%d deliveries of 3 messages, want 3", len(msgs))
	}
	slices.SortFunc(msgs, func(a, b handlers.Message) int { return int(a.Sequence) - int(b.Sequence) })
	for i, m := range msgs {
		want := handlers.Message{Subject: testSubject, Body: []byte(bodies[i]), Stream: testStream, Sequence: uint64(i + 1), Attempt: 1}
		if m.Subject != want.Subject || string(m.Body) != string(want.Body) || m.Stream != want.Stream ||
			m.Sequence != want.Sequence || m.Attempt != want.Attempt {
			t.Errorf("message %d = %+v, want %+v", i, m, want)
		}
	}
	wantAckedOnce(t, c, 3)
	if n := len(dl.all()); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}

func TestConsumePermanentIsDeadLetteredOnceThenAcked(t *testing.T) {
	t.Parallel()
	c := newConsumer(t, time.Second, 5, 1)
	cause := errors.New("no such shop")
	rec := &recorder{reply: func(context.Context, *handlers.Message) error {
		return fmt.Errorf("handling: %w", handlers.Permanent(handlers.ReasonUnknownShop, cause))
	}}
	dl := &deadLetters{}
	stop := run(t, c, rec.handle, consumer.Config{AckWait: time.Second, MaxDeliver: 5, DeadLetter: dl.write,
		Backoff: func(int) time.Duration { return 50 * time.Millisecond }})
	settled(t, c, 1)
	time.Sleep(1300 * time.Millisecond) // past AckWait: were the dead-lettered message not acked, the server would send it again
	if err := stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	letters := dl.all()
	if len(letters) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(letters), letters)
	}
	l := letters[0]
	if l.reason != handlers.ReasonUnknownShop || !errors.Is(l.cause, cause) || l.subject != testSubject || l.body != "m-0" || l.attempts != 1 {
		t.Errorf("dead letter %+v", l)
	}
	if n := rec.count(); n != 1 {
		t.Errorf("handled %d times, want 1", n)
	}
	wantAckedOnce(t, c, 1)
}

func TestConsumeRetryAfterRedeliversAfterTheDelay(t *testing.T) {
	t.Parallel()
	c := newConsumer(t, 5*time.Second, 5, 1)
	const delay = 400 * time.Millisecond
	rec := &recorder{reply: func(_ context.Context, m *handlers.Message) error {
		if m.Attempt == 1 {
			return handlers.RetryAfter(delay, errors.New("order leased by another handler"))
		}
		return nil
	}}
	dl := &deadLetters{}
	run(t, c, rec.handle, consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 5, DeadLetter: dl.write,
		Backoff: func(int) time.Duration { return time.Minute }}) // must not be used
	wait.For(t, 3*time.Second, "the redelivery", func() bool { return rec.count() == 2 })
	settled(t, c, 1)

	d := rec.deliveries()
	if d[0].attempt != 1 || d[1].attempt != 2 {
		t.Errorf("attempts %d, %d; want 1, 2", d[0].attempt, d[1].attempt)
	}
	// Not sooner than the delay; not after the minute of Backoff either, or the 3s wait above
	// would have failed.
	if gap := d[1].at.Sub(d[0].at); gap < delay-50*time.Millisecond {
		t.Errorf("redelivered after %s, want the RetryAfter delay %s", gap, delay)
	}
	if n := len(dl.all()); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}

func TestConsumeTransientFailureBacksOffUntilExhausted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		reply error
	}{
		{"plain error", fmt.Errorf("registering: %w", errTransient)},
		{"retry after on every attempt", handlers.RetryAfter(50*time.Millisecond, errTransient)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const maxDeliver = 4
			c := newConsumer(t, 5*time.Second, maxDeliver, 1)
			rec := &recorder{reply: func(context.Context, *handlers.Message) error { return tc.reply }}
			dl := &deadLetters{}
			var mu sync.Mutex
			var backoffs []int
			run(t, c, rec.handle, consumer.Config{AckWait: 5 * time.Second, MaxDeliver: maxDeliver, DeadLetter: dl.write,
				Backoff: func(attempt int) time.Duration {
					mu.Lock()
					defer mu.Unlock()
					backoffs = append(backoffs, attempt)
					return 100 * time.Millisecond
				}})
			wait.For(t, 4*time.Second, "the dead letter", func() bool { return len(dl.all()) > 0 })
			settled(t, c, 1)

			d := rec.deliveries()
			var attempts []int
			for i, x := range d {
				attempts = append(attempts, x.attempt)
				if i > 0 && x.at.Sub(d[i-1].at) < 40*time.Millisecond {
					t.Errorf("attempt %d came %s after the previous one: no backoff", x.attempt, x.at.Sub(d[i-1].at))
				}
			}
			if !slices.Equal(attempts, []int{1, 2, 3, 4}) {
				t.Errorf("attempts %v, want [1 2 3 4]", attempts)
			}
			letters := dl.all()
			if len(letters) != 1 || letters[0].reason != handlers.ReasonExhausted || letters[0].attempts != maxDeliver ||
				!errors.Is(letters[0].cause, errTransient) || letters[0].body != "m-0" {
				t.Errorf("dead letters %+v, want one exhausted after %d attempts", letters, maxDeliver)
			}
			mu.Lock()
			defer mu.Unlock()
			if _, retryAfter := handlers.RetryDelay(tc.reply); !retryAfter && !slices.Equal(backoffs, []int{1, 2, 3}) {
				t.Errorf("Backoff called with %v, want [1 2 3]", backoffs)
			}
		})
	}
}

func TestConsumeSlowHandlerIsNotRedelivered(t *testing.T) {
	t.Parallel()
	c := newConsumer(t, time.Second, 5, 1)
	rec := &recorder{reply: func(ctx context.Context, _ *handlers.Message) error {
		select {
		case <-time.After(2500 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	dl := &deadLetters{}
	run(t, c, rec.handle, consumer.Config{AckWait: time.Second, MaxDeliver: 5, DeadLetter: dl.write})
	// A redelivery would come after 1s (AckWait) and be handled at once, in another slot, long
	// before the first handler acks at 2.5s.
	wait.For(t, 10*time.Second, "the ack", func() bool { return info(t, c).AckFloor.Stream == 1 })
	if n := rec.count(); n != 1 {
		t.Errorf("a handler slower than AckWait ran %d times, want 1", n)
	}
	wantAckedOnce(t, c, 1)
}

func TestConsumeHandlerTimeoutIsTransient(t *testing.T) {
	t.Parallel()
	c := newConsumer(t, 5*time.Second, 2, 1)
	var mu sync.Mutex
	var ran []time.Duration
	rec := &recorder{reply: func(ctx context.Context, _ *handlers.Message) error {
		start := time.Now()
		<-ctx.Done()
		mu.Lock()
		ran = append(ran, time.Since(start))
		mu.Unlock()
		return fmt.Errorf("calling ATODENE: %w", ctx.Err())
	}}
	dl := &deadLetters{}
	run(t, c, rec.handle, consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 2, HandlerTimeout: 200 * time.Millisecond,
		DeadLetter: dl.write, Backoff: func(int) time.Duration { return 50 * time.Millisecond }})
	wait.For(t, 4*time.Second, "the dead letter", func() bool { return len(dl.all()) == 1 })
	settled(t, c, 1)

	letters := dl.all()
	if l := letters[0]; l.reason != handlers.ReasonExhausted || l.attempts != 2 || !errors.Is(l.cause, context.DeadlineExceeded) {
		t.Errorf("dead letter %+v, want exhausted after 2 timed-out attempts", l)
	}
	mu.Lock()
	defer mu.Unlock()
	// Not before the timeout. Without one the handlers would run until the shutdown's grace
	// period, and the 4s wait for the dead letter would have failed.
	for _, d := range ran {
		if d < 150*time.Millisecond {
			t.Errorf("a handler was cancelled after %s, want the HandlerTimeout of 200ms", d)
		}
	}
}

// TestConsumeHandlerTimeoutEndingInAStoreCallIsExhausted: a handler hangs (in anything but Redis)
// until the handler timeout cancels it and then, as the order handlers do on their way out, calls
// the order store with its ended context, which fails at once with the context's error marked
// orderstate.ErrUnavailable. That is a handler timeout, not a Redis outage: each try uses a
// delivery and the message is dead-lettered exhausted after the last (docs/architecture.md), and
// readiness is not told Redis fails. Taken for an outage, the message was kept in place and its
// handler run again for ever, without using a delivery, with /readyz answering 503.
func TestConsumeHandlerTimeoutEndingInAStoreCallIsExhausted(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	t.Cleanup(store.Close)

	c := newConsumer(t, 5*time.Second, 2, 1)
	var storeErrs []error
	var mu sync.Mutex
	rec := &recorder{reply: func(ctx context.Context, _ *handlers.Message) error {
		<-ctx.Done() // hung, not on Redis: Redis answers all along
		_, err := store.AcquireLease(ctx, "shop-a", "HUNG-1", orderstate.Take{})
		mu.Lock()
		storeErrs = append(storeErrs, err)
		mu.Unlock()
		return fmt.Errorf("handler timed out, then: %w", err)
	}}
	dl := &deadLetters{}
	infra := &consumer.Infra{}
	run(t, c, rec.handle, consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 2, HandlerTimeout: 200 * time.Millisecond,
		DeadLetter: dl.write, Backoff: func(int) time.Duration { return 50 * time.Millisecond }, Infra: infra})
	wait.For(t, 8*time.Second, "the dead letter", func() bool { return len(dl.all()) == 1 })
	settled(t, c, 1)

	if l := dl.all()[0]; l.reason != handlers.ReasonExhausted || l.attempts != 2 || handlers.IsInfrastructure(l.cause) ||
		!errors.Is(l.cause, context.DeadlineExceeded) {
		t.Errorf("dead letter %+v, want exhausted after 2 timed-out attempts, its cause a handler timeout", l)
	}
	if n := rec.count(); n != 2 {
		t.Errorf("the handler ran %d times, want once per delivery, 2", n)
	}
	mu.Lock()
	for _, err := range storeErrs {
		if !errors.Is(err, orderstate.ErrUnavailable) {
			t.Errorf("the store call with an ended context returned %v, want orderstate.ErrUnavailable (what the test is about)", err)
		}
	}
	mu.Unlock()
	if _, err, failing := infra.Failing(); failing || infra.Waiting() != 0 {
		t.Errorf("readiness told of a failing Redis (%v) or messages kept (%d) for a handler timeout", err, infra.Waiting())
	}
}

// TestConsumeQueuedMessagesAreNotRedelivered: messages fetched while every slot is busy wait for
// a slot; they must not be redelivered meanwhile (they get no heartbeat while they wait).
func TestConsumeQueuedMessagesAreNotRedelivered(t *testing.T) {
	t.Parallel()
	c := newConsumer(t, time.Second, 5, 3)
	rec := &recorder{reply: func(context.Context, *handlers.Message) error {
		time.Sleep(1500 * time.Millisecond)
		return nil
	}}
	dl := &deadLetters{}
	stop := run(t, c, rec.handle, consumer.Config{Concurrency: 1, AckWait: time.Second, MaxDeliver: 5, DeadLetter: dl.write})
	wait.For(t, 8*time.Second, "3 acks", func() bool { return info(t, c).AckFloor.Stream == 3 })
	// Once Consume has returned, every message it fetched has been handled: a redelivery fetched
	// beside the acked messages is counted below.
	if err := stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, d := range rec.deliveries() {
		if d.attempt != 1 {
			t.Errorf("%s was delivered again (attempt %d) while it waited for a slot", d.body, d.attempt)
		}
	}
	if n := rec.count(); n != 3 {
		t.Errorf("3 messages handled %d times", n)
	}
}

func TestConsumeBoundsConcurrency(t *testing.T) {
	t.Parallel()
	e := newJSEnv(t)
	c := e.consumer(t, 5*time.Second, 3)
	bodies := e.publish(t, 20)
	var inFlight, most atomic.Int32
	rec := &recorder{reply: func(context.Context, *handlers.Message) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		return nil
	}}
	dl := &deadLetters{}
	run(t, c, rec.handle, consumer.Config{Concurrency: 3, AckWait: 5 * time.Second, MaxDeliver: 3, DeadLetter: dl.write})
	wait.For(t, 5*time.Second, "20 acks", func() bool { return info(t, c).AckFloor.Stream == 20 })

	if m := most.Load(); m != 3 {
		t.Errorf("at most %d handlers ran at once, want exactly 3", m)
	}
	var got []string
	for _, d := range rec.deliveries() {
		got = append(got, d.body)
	}
	slices.Sort(got)
	slices.Sort(bodies)
	if !slices.Equal(got, bodies) {
		t.Errorf("handled %v, want each of %v once", got, bodies)
	}
}

func TestConsumeShutdown(t *testing.T) {
	t.Parallel()

	t.Run("a running handler finishes within the grace period", func(t *testing.T) {
		t.Parallel()
		e := newJSEnv(t)
		c := e.consumer(t, 5*time.Second, 3)
		e.publish(t, 1)
		started, finish := make(chan struct{}), make(chan struct{})
		var ctxErr atomic.Value
		rec := &recorder{reply: func(ctx context.Context, _ *handlers.Message) error {
			close(started)
			<-finish
			ctxErr.Store(fmt.Sprint(ctx.Err()))
			return nil
		}}
		// A grace period far longer than the wait below: Consume must return when the handler
		// is done, not when the grace period is.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- consumer.Consume(ctx, c, rec.handle, consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 3, Concurrency: 512,
				Grace: time.Hour, DeadLetter: (&deadLetters{}).write, Logger: zaptest.NewLogger(t)})
		}()
		<-started
		cancel() // the handler is still running: it waits for finish
		close(finish)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Consume: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Consume did not return once its one handler was done: it waits for the grace period")
		}
		if got := ctxErr.Load(); got != "<nil>" {
			t.Errorf("the handler's context was cancelled during the grace period: %v", got)
		}
		wait.For(t, 2*time.Second, "the finished message's ack", func() bool { return info(t, c).AckFloor.Stream == 1 })

		// Consume fetches nothing more: a message published now waits for the next consumer. The
		// sleep gives the server time to deliver it to a pull request Consume would have left
		// open; there is no event to wait for when nothing happens.
		e.publish(t, 1)
		time.Sleep(200 * time.Millisecond)
		if n := rec.count(); n != 1 {
			t.Errorf("%d messages handled after the shutdown", n-1)
		}
		if ci := info(t, c); ci.NumPending != 1 {
			t.Errorf("pending %d, want 1", ci.NumPending)
		}
	})

	t.Run("a handler still running after the grace period is cancelled and handed back", func(t *testing.T) {
		t.Parallel()
		c := newConsumer(t, 5*time.Second, 3, 1)
		started := make(chan struct{})
		stuck := &recorder{reply: func(ctx context.Context, _ *handlers.Message) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}}
		dl := &deadLetters{}
		cfg := consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 3, Grace: 300 * time.Millisecond, DeadLetter: dl.write}
		stop := run(t, c, stuck.handle, cfg)
		<-started
		// The stuck handler ends only when its context is cancelled: stop returning at all shows
		// the grace period's end cancelled it.
		begin := time.Now()
		if err := stop(3 * time.Second); err != nil {
			t.Fatalf("Consume: %v", err)
		}
		if took := time.Since(begin); took < 250*time.Millisecond {
			t.Errorf("shutdown took %s: the handler was cancelled before the grace period of 300ms", took)
		}

		// A second worker gets it at once (a Nak, not after the 5s AckWait: the 3s wait would
		// fail) and finishes it.
		next := &recorder{}
		run(t, c, next.handle, cfg)
		wait.For(t, 3*time.Second, "the redelivery to a second Consume", func() bool { return next.count() == 1 })
		if d := next.deliveries()[0]; d.attempt != 2 || d.body != "m-0" {
			t.Errorf("redelivery %+v, want m-0's second attempt", d)
		}
		settled(t, c, 1)
		if n := len(dl.all()); n != 0 {
			t.Errorf("%d dead letters", n)
		}
	})

	t.Run("an event kept for its retry as the grace period ends is acknowledged, not handed back", func(t *testing.T) {
		t.Parallel()
		c := newConsumer(t, 5*time.Second, 3, 1)
		started := make(chan struct{})
		kept := &recorder{reply: func(ctx context.Context, _ *handlers.Message) error {
			close(started)
			<-ctx.Done() // its call cut by the shutdown, the event is kept first in its order's inbox
			return handlers.KeptForRetry(ctx.Err())
		}}
		cfg := consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 3, Grace: 300 * time.Millisecond, DeadLetter: (&deadLetters{}).write}
		stop := run(t, c, kept.handle, cfg)
		<-started
		if err := stop(3 * time.Second); err != nil {
			t.Fatalf("Consume: %v", err)
		}
		// Handed back, a second worker would get it at once and apply it a second time, beside
		// the inbox's retry (the wait below covers a Nak's redelivery, not the 5s AckWait's).
		next := &recorder{}
		stopNext := run(t, c, next.handle, cfg)
		settled(t, c, 1)
		time.Sleep(500 * time.Millisecond)
		if err := stopNext(3 * time.Second); err != nil {
			t.Fatalf("second Consume: %v", err)
		}
		if n := next.count(); n != 0 {
			t.Errorf("%d redeliveries of the kept event to a second worker; want none", n)
		}
		wantAckedOnce(t, c, 1)
	})

	t.Run("a message waiting for a slot does not hold up the shutdown", func(t *testing.T) {
		t.Parallel()
		c := newConsumer(t, 5*time.Second, 3, 3)
		started := make(chan struct{}, 3)
		stuck := &recorder{reply: func(ctx context.Context, _ *handlers.Message) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}}
		budget := newBudget(t, 1)
		cfg := consumer.Config{Share: budget.Share(0), AckWait: 5 * time.Second, MaxDeliver: 3, Grace: 300 * time.Millisecond,
			DeadLetter: (&deadLetters{}).write}
		stop := run(t, c, stuck.handle, cfg)
		<-started
		wait.For(t, 5*time.Second, "the loop to wait for the slot", func() bool { return budget.Waiters() == 1 })
		if err := stop(3 * time.Second); err != nil {
			t.Fatalf("Consume with every slot busy: %v", err)
		}
	})
}

// TestConsumeDeadLetterFailureIsRetriedInPlace: a dead letter that cannot be written (the DLQ
// stream refuses it) is written again, the message kept meanwhile: redelivering it would use up
// its deliveries, and a message out of deliveries whose dead letter cannot be written is lost.
func TestConsumeDeadLetterFailureIsRetriedInPlace(t *testing.T) {
	t.Parallel()
	c := newConsumer(t, 5*time.Second, 1, 1)
	rec := &recorder{reply: func(context.Context, *handlers.Message) error {
		return handlers.Permanent(handlers.ReasonInvalid, errors.New("bad zip"))
	}}
	dl := &deadLetters{fail: func(call int) bool { return call <= 2 }}
	infra := &consumer.Infra{}
	run(t, c, rec.handle, consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 1, DeadLetter: dl.write, Infra: infra})
	wait.For(t, 2*time.Second, "the message to be kept", func() bool { return infra.Waiting() == 1 })
	if _, err, failing := infra.Failing(); !failing || !strings.Contains(err.Error(), "DLQ stream unavailable") {
		t.Errorf("infra failing %v (%v); want the dead letter's failure", failing, err)
	}
	wait.For(t, 6*time.Second, "the third dead-letter attempt", func() bool { return len(dl.all()) == 3 })
	settled(t, c, 1)
	if n := rec.count(); n != 1 {
		t.Errorf("handled %d times, want once: the dead letter is what failed", n)
	}
	for i, l := range dl.all() {
		if l.reason != handlers.ReasonInvalid || l.attempts != 1 {
			t.Errorf("dead letter %d: %+v", i, l)
		}
	}
	if _, _, failing := infra.Failing(); failing || infra.Waiting() != 0 {
		t.Errorf("after the dead letter was written: failing %v, %d waiting", failing, infra.Waiting())
	}
}

// TestConsumeInfrastructureFailureUsesNoDelivery: a handler that fails because Redis or JetStream
// does is tried again in place, with the same attempt number, more times than the consumer's
// delivery limit: the message is neither redelivered nor dead-lettered as exhausted.
func TestConsumeInfrastructureFailureUsesNoDelivery(t *testing.T) {
	t.Parallel()
	c := newConsumer(t, 5*time.Second, 2, 1)
	var calls atomic.Int32
	rec := &recorder{reply: func(_ context.Context, m *handlers.Message) error {
		n := calls.Add(1)
		if m.Again != (n > 1) {
			t.Errorf("run %d: Again %v; want it on each run again in place only", n, m.Again)
		}
		if n <= 3 {
			return handlers.Infrastructure(errors.New("nats: insufficient resources"))
		}
		return nil
	}}
	dl := &deadLetters{}
	run(t, c, rec.handle, consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 2, DeadLetter: dl.write})
	wait.For(t, 12*time.Second, "the fourth try", func() bool { return rec.count() == 4 })
	settled(t, c, 1)
	for _, d := range rec.deliveries() {
		if d.attempt != 1 {
			t.Errorf("try with attempt %d, want every try on the first delivery", d.attempt)
		}
	}
	if n := len(dl.all()); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// maxDeliveriesAdvisories subscribes to the server's advisories of messages that ran out of
// deliveries on the test consumer: the worker turns each into an exhausted dead letter.
func maxDeliveriesAdvisories(t *testing.T, e *jsEnv) <-chan uint64 {
	t.Helper()
	ch := make(chan uint64, 10)
	sub, err := e.nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."+testStream+"."+testConsumer, func(m *nats.Msg) {
		var adv struct {
			StreamSeq uint64 `json:"stream_seq"`
		}
		if json.Unmarshal(m.Data, &adv) == nil {
			ch <- adv.StreamSeq
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

// TestConsumeLastAttemptHandBackIsNotLost: the last delivery of a failing message is not lost when
// its dead letter cannot be written at once (it is written again, the message kept), nor when the
// worker shuts down (the server announces it in a max-deliveries advisory, which the worker
// dead-letters).
func TestConsumeLastAttemptHandBackIsNotLost(t *testing.T) {
	t.Parallel()

	t.Run("dead letter fails on the last attempt", func(t *testing.T) {
		t.Parallel()
		c := newConsumer(t, 5*time.Second, 2, 1)
		rec := &recorder{reply: func(context.Context, *handlers.Message) error { return errTransient }}
		dl := &deadLetters{fail: func(call int) bool { return call <= 2 }}
		run(t, c, rec.handle, consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 2, DeadLetter: dl.write,
			Backoff: func(int) time.Duration { return 50 * time.Millisecond }})
		wait.For(t, 6*time.Second, "the exhausted dead letter, written on its third try", func() bool { return len(dl.all()) == 3 })
		settled(t, c, 1)
		if l := dl.all()[2]; l.reason != handlers.ReasonExhausted || rec.count() != 2 {
			t.Errorf("dead letter %+v after %d deliveries; want exhausted after 2", l, rec.count())
		}
	})

	t.Run("shutdown on the last attempt", func(t *testing.T) {
		t.Parallel()
		e := newJSEnv(t)
		adv := maxDeliveriesAdvisories(t, e)
		c := e.consumer(t, 5*time.Second, 1)
		e.publish(t, 1)
		started := make(chan struct{})
		rec := &recorder{reply: func(ctx context.Context, _ *handlers.Message) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}}
		stop := run(t, c, rec.handle, consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 1, Grace: 100 * time.Millisecond,
			DeadLetter: (&deadLetters{}).write})
		<-started
		if err := stop(3 * time.Second); err != nil {
			t.Fatal(err)
		}
		run(t, c, nop, consumer.Config{AckWait: 5 * time.Second, MaxDeliver: 1, DeadLetter: (&deadLetters{}).write}) // another worker pulls
		select {
		case <-adv:
		case <-time.After(3 * time.Second):
			t.Fatal("the message handed back on its last delivery is lost: no max-deliveries advisory")
		}
	})
}

// TestConsumeEventKeptForRetryIsAcked: a handler that kept its event for a retry in the order's
// inbox (handlers.KeptForRetry) is done with the message, on its last delivery too: acknowledged
// once, not redelivered, not dead-lettered (the inbox dead-letters the event if its tries run out).
func TestConsumeEventKeptForRetryIsAcked(t *testing.T) {
	t.Parallel()
	c := newConsumer(t, time.Second, 1, 1)
	rec := &recorder{reply: func(context.Context, *handlers.Message) error { return handlers.KeptForRetry(errTransient) }}
	dl := &deadLetters{}
	stop := run(t, c, rec.handle, consumer.Config{AckWait: time.Second, MaxDeliver: 1, DeadLetter: dl.write})
	settled(t, c, 1)
	time.Sleep(1300 * time.Millisecond) // past AckWait: an unacknowledged message would be back
	if err := stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	wantAckedOnce(t, c, 1)
	if n, letters := len(rec.deliveries()), dl.all(); n != 1 || len(letters) != 0 {
		t.Errorf("%d deliveries, dead letters %+v; want one delivery, none", n, letters)
	}
}
