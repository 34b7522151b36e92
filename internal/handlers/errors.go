package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Reason is why a message was dead-lettered: one of the Reason values below and no other, the
// values Dlq-Reason can hold (docs/events.md#dead-letters). The zero Reason is none.
type Reason struct{ name string }

// String is the reason as Dlq-Reason and the metrics' reason label write it.
func (r Reason) String() string { return r.name }

// The dead-letter reasons. Read-only: they are variables only because a struct cannot be a
// constant.
var (
	ReasonInvalid        = Reason{"invalid"}
	ReasonUnknownShop    = Reason{"unknown-shop"}
	ReasonOutcomeUnknown = Reason{"outcome-unknown"}
	ReasonPollDeadline   = Reason{"poll-deadline"}
	ReasonExhausted      = Reason{"exhausted"}
	// ReasonNoTransaction: the event needs a transaction the worker has no record of, and waited
	// for it longer than the park limit (a tracking number for an order never registered).
	ReasonNoTransaction = Reason{"no-transaction"}
	// ReasonAccountRefused: ATODENE refused the merchant's account (its link password, shop code
	// or link ID), not the order; replay the letter once the account is fixed.
	ReasonAccountRefused = Reason{"account-refused"}
)

// Reasons returns every dead-letter reason, by name: the values Dlq-Reason can hold, which the
// publisher's -reason filter accepts (a test there checks it against these).
func Reasons() []string {
	var names []string
	for _, r := range []Reason{ReasonInvalid, ReasonUnknownShop, ReasonOutcomeUnknown, ReasonPollDeadline, ReasonExhausted,
		ReasonNoTransaction, ReasonAccountRefused} {
		names = append(names, r.name)
	}
	return names
}

// deadLetterError marks a failure that retrying cannot fix: the message goes to the dead-letter
// stream with a reason.
type deadLetterError struct {
	reason Reason
	err    error
}

// Error is the cause alone: the reason travels separately (Dlq-Reason, the outcome label).
func (e *deadLetterError) Error() string { return e.err.Error() }
func (e *deadLetterError) Unwrap() error { return e.err }

// Permanent marks err as a failure that retrying cannot fix; the message is dead-lettered with
// the reason. The zero Reason is no reason: it panics, a mistake of the caller.
func Permanent(reason Reason, err error) error {
	if reason == (Reason{}) {
		panic("handlers: Permanent without a reason")
	}
	return &deadLetterError{reason: reason, err: err}
}

// DeadLetterReason returns the dead-letter reason of a permanent error.
func DeadLetterReason(err error) (Reason, bool) {
	if dl, ok := errors.AsType[*deadLetterError](err); ok {
		return dl.reason, true
	}
	return Reason{}, false
}

// retryAfterError asks for the message to be delivered again after a delay.
type retryAfterError struct {
	delay time.Duration
	err   error
}

func (e *retryAfterError) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.delay, e.err)
}
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter asks for the message to be redelivered after d. It still counts as a delivery attempt,
// and the message holds a MaxAckPending slot while it waits, so no handler uses it for a wait: an
// event that finds its order's lease held is queued in the order's inbox, and one that waits for
// another event is parked (docs/architecture.md#acknowledgements).
func RetryAfter(d time.Duration, err error) error { return &retryAfterError{delay: d, err: err} }

// RetryDelay returns the delay requested by RetryAfter.
func RetryDelay(err error) (time.Duration, bool) {
	if ra, ok := errors.AsType[*retryAfterError](err); ok {
		return ra.delay, true
	}
	return 0, false
}

// retriedLaterError is the transient failure of an event that its handler kept, first in its
// order's inbox, for a retry at its time (Orders.keptForRetry): the event's message is done with.
// It does not unwrap: whatever the cause (a failure of Redis or JetStream, which is otherwise tried
// in place; a handler timeout, see OfTry), the message must not be tried again, or the event would
// wait twice in the inbox.
type retriedLaterError struct{ err error }

func (e *retriedLaterError) Error() string {
	return e.err.Error() + " (kept first in the order's inbox, retried at its time)"
}

// KeptForRetry marks err, the transient failure of an event, as kept for a retry in its order's
// inbox (RetriedLater).
func KeptForRetry(err error) error { return &retriedLaterError{err} }

// RetriedLater reports whether err is the failure of an event kept for a retry in its order's
// inbox: the consumer acknowledges its message, counting the delivery as a retry, and neither
// hands it back nor dead-letters it (the inbox does, when its tries run out).
func RetriedLater(err error) bool {
	_, ok := errors.AsType[*retriedLaterError](err)
	return ok
}

// infraError marks a failure of the worker's own servers.
type infraError struct{ err error }

func (e *infraError) Error() string { return e.err.Error() }
func (e *infraError) Unwrap() error { return e.err }

// Infrastructure marks err as a failure of the worker's own servers (a JetStream publish refused,
// its store full, NATS unreachable), not of the event nor of ATODENE. nil stays nil.
func Infrastructure(err error) error {
	if err == nil {
		return nil
	}
	return &infraError{err}
}

// IsInfrastructure reports whether err is a failure of Redis (orderstate.ErrUnavailable) or of
// JetStream (marked with Infrastructure). Such a failure never uses up a message's deliveries or
// an event's tries: the message is kept and tried again for as long as it lasts.
func IsInfrastructure(err error) bool {
	_, infra := errors.AsType[*infraError](err)
	return infra || errors.Is(err, orderstate.ErrUnavailable)
}

// ReusedIDError is the error of publishing an outcome under a message ID that the stream holds
// for another outcome (docs/lifecycle.md#message-ids): the ID was derived from a state version
// written before, by a write Redis lost or by a step that failed after publishing. Orders reissues
// the outcome in a new epoch.
type ReusedIDError struct {
	Stream string // where the other outcome is, e.g. RESULTS
	MsgID  string
	Seq    uint64 // the other outcome's sequence in Stream
}

func (e *ReusedIDError) Error() string {
	return fmt.Sprintf("%s already holds another outcome under message ID %s (seq %d)", e.Stream, e.MsgID, e.Seq)
}

// endedTryError is a failure of Redis or JetStream that a try's own context caused: see OfTry.
type endedTryError struct {
	err   error // the failure as the call returned it
	ended error // the try's context's error
}

func (e *endedTryError) Error() string {
	return fmt.Sprintf("the handler's context ended (%v), then: %v", e.ended, e.err)
}
func (e *endedTryError) Unwrap() error { return e.ended }

// OfTry returns err, the failure of a handler run with ctx, as the try's own failure rather than
// the infrastructure's once ctx has ended (its handler timeout, or the worker's shutdown): a call
// to Redis or JetStream made with an ended context fails at once with the context's error, which
// the store marks orderstate.ErrUnavailable and the publishers mark Infrastructure, as they do
// when the server does not answer. The server did not fail then: the handler ran out of time,
// and the message must use a delivery as any handler timeout does (docs/architecture.md: exhausted after
// its last), not be kept in place for a Redis outage. A permanent failure, a RetryAfter, a
// failure that is not the infrastructure's, and any failure while ctx is live, are returned as
// they are; the cause stays in the message, not in the chain.
func OfTry(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || !IsInfrastructure(err) {
		return err
	}
	if _, ok := DeadLetterReason(err); ok {
		return err
	}
	if _, ok := RetryDelay(err); ok {
		return err
	}
	return &endedTryError{err: err, ended: ctx.Err()}
}
