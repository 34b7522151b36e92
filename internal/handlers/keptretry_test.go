package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// An event whose own call fails transiently is kept first in its order's inbox for its retry,
// its message acknowledged (docs/architecture.md#order-state-in-redis): one copy of it, one fate,
// whatever is lost or delivered again meanwhile.

// retryTimer fires the order's inbox retry timer after advancing the clock by d.
func (e *env) retryTimer(t *testing.T, order string, d time.Duration) {
	t.Helper()
	e.clock.Advance(d)
	if err := e.o.PollDue(context.Background(), handlers.PollRequest{Shop: "shop-a", OrderID: order, Kind: handlers.TimerRetry}); err != nil {
		t.Fatalf("retry timer: %v", err)
	}
}

// TestLostAckOfAKeptEventSucceedsOnce: a cancel kept for its retry; its ack is lost and
// JetStream delivers it again while it waits in the inbox (a second copy queued behind it). The
// retry succeeds: the copy is a duplicate. One cancel at ATODENE, one credit.cancelled.
func TestLostAckOfAKeptEventSucceedsOnce(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsTimes{n: 1}
	e, ctx := newEnv(t, prov), context.Background()
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
	if err := e.o.OrderCancelled(ctx, x); !handlers.RetriedLater(err) {
		t.Fatalf("cancel: %v; want kept for its retry", err)
	}
	x.Attempt = 2 // the ack lost: redelivered after AckWait
	if err := e.o.OrderCancelled(ctx, x); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	for range 3 {
		e.retryTimer(t, "o-1", time.Minute)
	}
	if prov.calls["cancel"] != 2 || e.outcomes("o-1", events.TypeCreditCancelled) != 1 || len(e.letters.letters) != 0 {
		t.Errorf("cancel calls %d, outcomes %v, letters %+v; want 2 calls (one failed), credit.cancelled once, no letter",
			prov.calls["cancel"], e.outs.ids, e.letters.letters)
	}
}

// TestLostAckOfAKeptEventHasOneFate: as above, but the cancel's tries run
// out (MaxAttempts 3): it is dead-lettered exhausted, deadLetterParked forgets its event record
// (so a replay applies it), and the second copy queued behind it by the redelivery is then
// applied as a new event at once: a fourth ATODENE call (beyond -max-deliveries), which succeeds,
// so credit.cancelled is published for an event that also sits in the DLQ as exhausted (or, with
// ATODENE still failing, MaxAttempts more calls and a second exhausted letter). Now the copy is
// not queued twice: one fate, at most MaxAttempts calls.
func TestLostAckOfAKeptEventHasOneFate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fails int
	}{{"ATODENE back after the letter", 3}, {"ATODENE still failing", 100}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prov := &cancelFailsTimes{n: tc.fails}
			e, ctx := newEnv(t, prov), context.Background()
			e.o.MaxAttempts = 3
			e.okOrder(t)
			x := parkableCancel("x-1", "o-1", 5)
			if err := e.o.OrderCancelled(ctx, x); !handlers.RetriedLater(err) {
				t.Fatalf("cancel: %v; want kept for its retry", err)
			}
			x.Attempt = 2 // the ack lost: redelivered after AckWait while the cancel waits
			if err := e.o.OrderCancelled(ctx, x); err != nil {
				t.Fatalf("redelivery: %v", err)
			}
			for range 8 {
				e.retryTimer(t, "o-1", time.Minute)
			}
			st, _ := e.store.Get(ctx, "shop-a", "o-1")
			letters := len(e.letters.letters)
			cancelled := e.outcomes("o-1", events.TypeCreditCancelled)
			if prov.calls["cancel"] > 3 || letters+cancelled != 1 {
				t.Errorf("cancel calls %d, %d dead letters (reasons %v), %d credit.cancelled, status %q; want at most 3 calls and one fate: dead-lettered or cancelled",
					prov.calls["cancel"], letters, reasons(e.letters), cancelled, st.Status)
			}
		})
	}
}

// TestKeptOnLastDeliveryIsNotTriedBeyondMaxAttempts: a cancel's message on its last
// delivery (Attempt = MaxAttempts = 3: its earlier deliveries were cut by the handler timeout or
// handed back by a shutdown) fails transiently. Its deliveries count as tries (3 now), so it is out
// of tries. Kept, it was tried a fourth time from the inbox. It is not kept on its last delivery:
// the consumer dead-letters it exhausted, with no fourth ATODENE call,
// Dlq-Attempts 3.
func TestKeptOnLastDeliveryIsNotTriedBeyondMaxAttempts(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsTimes{n: 100}
	e, ctx := newEnv(t, prov), context.Background()
	e.o.MaxAttempts = 3
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
	x.Attempt = 3
	err := e.o.OrderCancelled(ctx, x)
	m := &handlers.Message{Attempt: 3, LastAttempt: true}
	if reason, dead := handlers.DeadLetterOf(err, m); dead {
		// the consumer dead-letters it: right
		if reason != handlers.ReasonExhausted || prov.calls["cancel"] != 1 {
			t.Errorf("reason %v, %d calls", reason, prov.calls["cancel"])
		}
		return
	}
	for range 4 {
		e.retryTimer(t, "o-1", time.Minute)
	}
	attempts := -1
	if len(e.letters.letters) == 1 {
		attempts = e.letters.letters[0].Attempts
	}
	if prov.calls["cancel"] != 1 || attempts != 3 {
		t.Errorf("cancel calls %d (on delivery 3 of 3), dead letter attempts %d (%d letters); want 1 call (its last try), Dlq-Attempts 3",
			prov.calls["cancel"], attempts, len(e.letters.letters))
	}
}

// TestRetryCommitReplyLostKeepsOneCopy: the commit that keeps a failed cancel first in the
// inbox (retryLater) runs, and its reply is lost. The handler returns the failure joined with
// Redis's (infrastructure: the consumer runs it again in place, same delivery), and the second
// run queues the cancel again behind its own retry entry: two copies in the inbox. With ATODENE
// failing through the cancel's tries, the first copy is dead-lettered exhausted (its record
// forgotten) and the second is then tried again as a new event: more than MaxAttempts calls and a
// second letter, or the cancel applied after its dead letter. Now one write keeps it and ends its
// try, and a copy of an event the inbox holds is not queued again: one copy, one fate.
func TestRetryCommitReplyLostKeepsOneCopy(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	t.Cleanup(store.Close)
	prov := &cancelFailsTimes{n: 3}
	e, ctx := newEnvOn(t, store, prov, nil), context.Background()
	e.o.MaxAttempts = 3
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
	hook := testenv.LoseReply(rdb, `"id":"x-1"`, `"retry_at"`)
	err := e.o.OrderCancelled(ctx, x)
	if !hook.Fired() {
		t.Fatalf("the hook did not run: %v", err)
	}
	if !handlers.IsInfrastructure(err) {
		t.Fatalf("cancel: %v; want an infrastructure failure (tried again in place)", err)
	}
	// The consumer runs the handler again in place, with the same delivery, marked so.
	x.Again = true
	err = e.o.OrderCancelled(ctx, x)
	if err != nil && !handlers.RetriedLater(err) {
		t.Fatalf("in place: %v", err)
	}
	held, _ := e.store.HeldEvents(ctx, "shop-a", "o-1")
	inbox, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
	for range 8 {
		e.retryTimer(t, "o-1", time.Minute)
	}
	letters, cancelled := len(e.letters.letters), e.outcomes("o-1", events.TypeCreditCancelled)
	if inbox != 1 || prov.calls["cancel"] > 3 || letters+cancelled != 1 {
		t.Errorf("inbox length %d after the run in place (held %v); cancel calls %d, %d letters, %d credit.cancelled; want one copy, at most 3 calls, one fate",
			inbox, held.Keys, prov.calls["cancel"], letters, cancelled)
	}
}

// reasons lists the reason and Dlq-Attempts of each dead letter.
func reasons(l *recordedLetters) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, x := range l.letters {
		out = append(out, fmt.Sprintf("%s(seq %d, attempts %d)", x.Reason, x.Sequence, x.Attempts))
	}
	return out
}

// failRetrySchedule fails the first schedule of an inbox retry timer (JetStream not answering),
// as the worker's Polls marks it: Infrastructure.
type failRetrySchedule struct {
	*recordedPolls
	failed atomic.Bool
}

func (p *failRetrySchedule) Schedule(ctx context.Context, r handlers.PollRequest, at time.Time) error {
	if r.Kind == handlers.TimerRetry && p.failed.CompareAndSwap(false, true) {
		return handlers.Infrastructure(errors.New("nats: timeout"))
	}
	return p.recordedPolls.Schedule(ctx, r, at)
}

// TestRetryScheduleFailsKeepsOneCopy: retryLater's commit puts the failed cancel first in
// the inbox, then scheduling its retry timer fails (JetStream down a moment). The handler returns
// the failure joined with JetStream's (infrastructure: run again in place, same delivery), and
// the run in place queues the cancel again behind its retry entry. Two copies: the first
// dead-lettered exhausted, the second then applied as new (a 4th call, credit.cancelled after the
// letter). Now the event, once kept, is done with (the reconciler sets the inbox's missing
// timer): one copy, one fate.
func TestRetryScheduleFailsKeepsOneCopy(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsTimes{n: 3}
	e, ctx := newEnv(t, prov), context.Background()
	polls := &failRetrySchedule{recordedPolls: e.polls}
	e.o.Polls = polls
	e.o.MaxAttempts = 3
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
	switch err := e.o.OrderCancelled(ctx, x); {
	case handlers.RetriedLater(err):
		// Its message is done with (acked): the reconciler sets the inbox's missing timer.
		handled(t, e.o.PollDue(ctx, handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: handlers.TimerInbox}))
	case handlers.IsInfrastructure(err):
		// The consumer runs the handler again in place, with the same delivery, marked so.
		x.Again = true
		if err := e.o.OrderCancelled(ctx, x); err != nil && !handlers.RetriedLater(err) {
			t.Fatalf("in place: %v", err)
		}
	default:
		t.Fatalf("cancel: %v", err)
	}
	inbox, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
	for range 8 {
		e.retryTimer(t, "o-1", time.Minute)
	}
	letters, cancelled := len(e.letters.letters), e.outcomes("o-1", events.TypeCreditCancelled)
	if inbox != 1 || prov.calls["cancel"] > 3 || letters+cancelled != 1 {
		t.Errorf("inbox length %d after the run in place; cancel calls %d, letters %v, %d credit.cancelled; want one copy, at most 3 calls, one fate",
			inbox, prov.calls["cancel"], reasons(e.letters), cancelled)
	}
}

// TestRetryTimerTwiceMakesNoExtraCall: the inbox retry timer of a kept cancel is delivered
// twice at its time (its ack lost), and once a moment early. The early one calls nothing; of the
// two, the first tries the cancel (it fails again) and the second finds its next retry ahead and
// calls nothing.
func TestRetryTimerTwiceMakesNoExtraCall(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsTimes{n: 2}
	e, ctx := newEnv(t, prov), context.Background()
	e.okOrder(t)
	if err := e.o.OrderCancelled(ctx, parkableCancel("x-1", "o-1", 5)); !handlers.RetriedLater(err) {
		t.Fatalf("cancel: %v", err)
	}
	timer := handlers.PollRequest{Shop: "shop-a", OrderID: "o-1", Kind: handlers.TimerRetry}
	e.clock.Advance(500 * time.Millisecond) // early: retry due at 1 s
	handled(t, e.o.PollDue(ctx, timer))
	if prov.calls["cancel"] != 1 {
		t.Fatalf("an early retry timer called: %d cancels", prov.calls["cancel"])
	}
	e.clock.Advance(time.Second)
	handled(t, e.o.PollDue(ctx, timer), e.o.PollDue(ctx, timer))
	if prov.calls["cancel"] != 2 {
		t.Fatalf("the retry timer delivered twice: %d cancels, want 2 (one per due retry)", prov.calls["cancel"])
	}
	e.retryTimer(t, "o-1", time.Minute)
	e.retryTimer(t, "o-1", time.Minute)
	if prov.calls["cancel"] != 3 || e.outcomes("o-1", events.TypeCreditCancelled) != 1 {
		t.Errorf("%d cancels, outcomes %v; want 3, credit.cancelled once", prov.calls["cancel"], e.outs.ids)
	}
}

// TestReusedIdentityIsQueuedBehindAKeptEvent: a cancel x-1 waits in the inbox for its retry, and
// another event of the order comes under the same source and id, with other content (the importer
// reused the id). It is no copy: it is queued, not dropped as one, and dead-lettered invalid when
// its turn comes, after the cancel is applied.
func TestReusedIdentityIsQueuedBehindAKeptEvent(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsOnce{}
	e, ctx := newEnv(t, prov), context.Background()
	e.okOrder(t)
	if err := e.o.OrderCancelled(ctx, parkableCancel("x-1", "o-1", 5)); !handlers.RetriedLater(err) {
		t.Fatalf("cancel: %v; want kept for its retry", err)
	}
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("x-1", "o-1", 6, "1111-2222-3333")))
	if n, _ := e.store.InboxLen(ctx, "shop-a", "o-1"); n != 2 {
		t.Fatalf("inbox of %d; want the cancel and the event under its reused id", n)
	}
	e.retryTimer(t, "o-1", time.Minute)
	st, _ := e.store.Get(ctx, "shop-a", "o-1")
	if st.Status != orderstate.StatusCancelled || e.letterOf(6) != handlers.ReasonInvalid.String() || len(e.letters.letters) != 1 {
		t.Errorf("status %q, letters %v; want cancelled, the event under the reused id dead-lettered invalid", st.Status, reasons(e.letters))
	}
}

// cancelCopiedMidTry runs during, once, inside the first cancel call: another delivery of the
// event comes while its try is at ATODENE.
type cancelCopiedMidTry struct {
	cancelFailsTimes
	during func()
	once   sync.Once
}

func (p *cancelCopiedMidTry) Cancel(ctx context.Context, tx string) error {
	p.once.Do(p.during)
	return p.cancelFailsTimes.Cancel(ctx, tx)
}

// TestCopyDuringItsTryHasOneFate: a cancel's message is delivered again (its AckWait passed)
// while its first try is at ATODENE: the copy finds the lease held and is queued. The try fails
// and the cancel is kept first in the inbox for its retry, the copy behind it. With ATODENE
// failing through the cancel's tries (MaxAttempts 3), the cancel was dead-lettered exhausted and
// the copy then tried as a new event: more than 3 calls, and credit.cancelled for an event also
// dead-lettered, or a second letter. The write that keeps an event drops its copies: one entry,
// one fate.
func TestCopyDuringItsTryHasOneFate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fails int
	}{{"ATODENE back after the letter", 3}, {"ATODENE still failing", 100}, {"ATODENE back at the retry", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prov := &cancelCopiedMidTry{cancelFailsTimes: cancelFailsTimes{n: tc.fails}}
			e, ctx := newEnv(t, prov), context.Background()
			e.o.MaxAttempts = 3
			e.okOrder(t)
			x := parkableCancel("x-1", "o-1", 5)
			prov.during = func() {
				copy := x
				copy.Attempt = 2
				if err := e.o.OrderCancelled(ctx, copy); err != nil {
					t.Errorf("the copy, during the try: %v; want queued", err)
				}
			}
			if err := e.o.OrderCancelled(ctx, x); !handlers.RetriedLater(err) {
				t.Fatalf("cancel: %v; want kept for its retry", err)
			}
			inbox, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
			for range 8 {
				e.retryTimer(t, "o-1", time.Minute)
			}
			letters, cancelled := len(e.letters.letters), e.outcomes("o-1", events.TypeCreditCancelled)
			if inbox != 1 || prov.calls["cancel"] > 3 || letters+cancelled != 1 {
				t.Errorf("inbox length %d after the try; cancel calls %d, letters %v, %d credit.cancelled; want one entry, at most 3 calls, one fate",
					inbox, prov.calls["cancel"], reasons(e.letters), cancelled)
			}
		})
	}
}

// TestRepublishedWhileKeptHasOneFate: a cancel waits first in the inbox for its retry, and the
// importer publishes it again (same id and content, past JetStream's duplicate window: a first
// delivery, not searched for as a copy), queued behind it. ATODENE fails through the cancel's
// tries: the cancel was dead-lettered exhausted, then its copy tried as a new event. The write
// that dead-letters an entry drops its copies: one letter, at most 3 calls.
func TestRepublishedWhileKeptHasOneFate(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsTimes{n: 100}
	e, ctx := newEnv(t, prov), context.Background()
	e.o.MaxAttempts = 3
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
	if err := e.o.OrderCancelled(ctx, x); !handlers.RetriedLater(err) {
		t.Fatalf("cancel: %v; want kept for its retry", err)
	}
	again := parkableCancel("x-1", "o-1", 9)
	handled(t, e.o.OrderCancelled(ctx, again))
	if n, _ := e.store.InboxLen(ctx, "shop-a", "o-1"); n != 2 {
		t.Fatalf("inbox of %d; want the kept cancel and its copy, a first delivery", n)
	}
	for range 8 {
		e.retryTimer(t, "o-1", time.Minute)
	}
	if prov.calls["cancel"] > 3 || len(e.letters.letters) != 1 {
		t.Errorf("cancel calls %d, letters %v; want at most 3 calls, one letter", prov.calls["cancel"], reasons(e.letters))
	}
}

// TestLargeEventKeptForRetryIsNotOvertaken: a cancel over 64 KiB (an importer padding its JSON, or
// an order.updated of many lines) fails transiently at ATODENE. The inbox took no message that
// large: it was handed back to JetStream, and a tracking number handled before its redelivery was
// reported (billing started) on an order the shop had cancelled. It waits first in the inbox now,
// as a smaller one does, the inbox holding it without its body (read back from its kept copy):
// the tracking number waits behind it and finds the order cancelled.
func TestLargeEventKeptForRetryIsNotOvertaken(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	t.Cleanup(store.Close)
	prov := &cancelFailsTimes{n: 1}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, store, prov, kept), context.Background()
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
	x.Body = append(x.Body, strings.Repeat(" ", 70<<10)...)
	if err := e.o.OrderCancelled(ctx, x); !handlers.RetriedLater(err) {
		t.Fatalf("cancel: %v; want kept for its retry", err)
	}
	handled(t, e.o.TrackingEntered(ctx, trackingEvent("t-1", "o-1", 6, "1234-5678-9012")))
	entries, err := rdb.LRange(ctx, prefix+"inbox:{shop-a}:o-1", 0, -1).Result()
	if err != nil || len(entries) != 2 || len(entries[0]) > 4<<10 {
		t.Fatalf("inbox %d entries (first %d bytes), %v; want the cancel without its body, then the tracking number", len(entries), len(entries[0]), err)
	}
	e.retryTimer(t, "o-1", time.Minute)
	st, _ := e.store.Get(ctx, "shop-a", "o-1")
	if st.Status != orderstate.StatusCancelled || prov.calls["cancel"] != 2 || prov.calls["shipment"] != 0 || len(e.letters.letters) != 0 {
		t.Errorf("status %q, %d cancel calls, %d shipment reports, letters %v; want cancelled by the retry, no report", st.Status,
			prov.calls["cancel"], prov.calls["shipment"], reasons(e.letters))
	}
	if _, ok := kept.has(x.Key()); ok {
		t.Error("the cancel's kept copy is left once it is applied")
	}
}

// TestLargeEventWhoseKeptCopyIsGoneIsDeadLettered: as above, but the kept copy holding the cancel's
// body is gone when its retry comes (its stream deleted), and so is its message (ORDERS created
// again): it cannot be applied. It is dead-lettered invalid, naming the message it was, and the
// inbox goes on.
func TestLargeEventWhoseKeptCopyIsGoneIsDeadLettered(t *testing.T) {
	t.Parallel()
	prov := &cancelFailsTimes{n: 1}
	kept := &recordedKept{}
	e, ctx := newEnvOn(t, newStore(t), prov, kept), context.Background()
	e.okOrder(t)
	x := parkableCancel("x-1", "o-1", 5)
	x.Body = append(x.Body, strings.Repeat(" ", 70<<10)...)
	if err := e.o.OrderCancelled(ctx, x); !handlers.RetriedLater(err) {
		t.Fatalf("cancel: %v; want kept for its retry", err)
	}
	handled(t, kept.Drop(ctx, "shop-a", "o-1", x.Key()))
	kept.forgetMessages()
	e.retryTimer(t, "o-1", time.Minute)
	n, _ := e.store.InboxLen(ctx, "shop-a", "o-1")
	if e.letterOf(5) != handlers.ReasonInvalid.String() || prov.calls["cancel"] != 1 || n != 0 {
		t.Errorf("letters %v, %d cancel calls, inbox %d; want the cancel dead-lettered invalid, not tried again, the inbox empty",
			reasons(e.letters), prov.calls["cancel"], n)
	}
}
