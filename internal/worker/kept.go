package worker

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/tracing/natstrace"
)

// The kept copies (handlers.Kept): one message per event, on atodene.kept.<shop>.<order>.<event
// key> (the order ID base64url-encoded, the key the event's 32-hex identity), its body the event's
// byte for byte, its headers where it came from.
const (
	KeptStream      = "ATODENE_KEPT"
	keptSubjectBase = "atodene.kept."
	// headerKeptSubject is the subject the event was consumed from, where it goes back to.
	headerKeptSubject = "Atodene-Kept-Subject"
	// headerKeptWhy is why it was copied: handlers.KeptParked, KeptQueued or KeptGoingRound.
	headerKeptWhy = "Atodene-Kept-Why"
)

// keptStreamConfig: a copy lives as long as the longest wait that holds one without a write of
// its own (keptMaxAge); the copies hold personal data (the events' bodies), as ORDERS and DLQ do.
func keptStreamConfig(s config.Settings) jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: KeptStream, Subjects: []string{keptSubjectBase + ">"}, MaxMsgsPerSubject: 1,
		MaxAge: keptMaxAge(s)}
}

// keptMaxAge is ATODENE_KEPT's max age: the longer of -park-limit (a parked event) and
// -poll-deadline (a tracking number queued while its order is under review, reported when the
// credit turns OK), and a day more. Some waits last longer still: a review goes on past its
// deadline until an operator replays the poll-deadline letter (up to -dlq-retention later), and
// the replay starts a new deadline. So the reconciler also renews every copy still needed once it
// is older than keptRenewAge (kept.reconcile), and a copy outlives what it protects however long
// that waits, as long as the reconciler runs once in half the max age.
func keptMaxAge(s config.Settings) time.Duration {
	return max(s.ParkLimit, s.PollDeadline) + 24*time.Hour
}

// keptRenewAge is the age past which the reconciler renews a copy still needed: half the stream's
// max age, which leaves the other half for reconciliations that fail (Redis or NATS down).
func keptRenewAge(s config.Settings) time.Duration { return keptMaxAge(s) / 2 }

type kept struct {
	js     jetstream.JetStream
	stream jetstream.Stream // its API calls name the stream: it holds also once the stream is created again
}

// newKept binds the copies' stream; it fails when the stream does not exist (-skip-stream-setup,
// and an administrator did not create it).
func newKept(ctx context.Context, js jetstream.JetStream) (kept, error) {
	stream, err := js.Stream(ctx, KeptStream)
	if err != nil {
		return kept{}, fmt.Errorf("binding stream %s: %w", KeptStream, err)
	}
	return kept{js: js, stream: stream}, nil
}

func keptSubject(shop, order, key string) string {
	return keptSubjectBase + orderToken(shop, order) + "." + key
}

// Keep stores the copy of p. Its headers make the copy, published again, a replay of the event as
// it was first published (dlq.Published): its position among the order's events is kept.
func (k kept) Keep(ctx context.Context, shop, order string, p orderstate.Parked, why string) error {
	msg := nats.NewMsg(keptSubject(shop, order, p.Key))
	msg.Data = p.Body
	msg.Header.Set(headerKeptSubject, p.Subject)
	msg.Header.Set(headerKeptWhy, why)
	replays := p.ReplayCount
	if replays == "" {
		replays = "0"
	}
	published := p.Published
	if published == 0 {
		published = p.Seq
	}
	msg.Header.Set(dlq.HeaderReplayCount, replays)
	msg.Header.Set(dlq.HeaderPublishedSequence, strconv.FormatUint(published, 10))
	if p.PublishedCreated != 0 {
		msg.Header.Set(dlq.HeaderPublishedStreamCreated, time.Unix(0, p.PublishedCreated).UTC().Format(time.RFC3339Nano))
	}
	if err := natstrace.Send(ctx, nil, msg, func(ctx context.Context) error {
		ctx, cancel := jsCall(ctx)
		defer cancel()
		_, err := k.js.PublishMsg(ctx, msg)
		return err
	}); err != nil {
		return handlers.Infrastructure(fmt.Errorf("keeping a copy of event %s of %s/%s in %s: %w", p.Key, shop, order, KeptStream, err))
	}
	return nil
}

// Drop removes the copy of an event.
func (k kept) Drop(ctx context.Context, shop, order, key string) error {
	ctx, cancel := jsCall(ctx)
	defer cancel()
	err := k.stream.Purge(ctx, jetstream.WithPurgeSubject(keptSubject(shop, order, key)))
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return handlers.Infrastructure(fmt.Errorf("dropping the copy of event %s of %s/%s from %s: %w", key, shop, order, KeptStream, err))
	}
	return nil
}

// Body reads the body of p, an inbox entry that holds none: its copy's, or, when the copy is gone
// or another event's (an identity reused: its body's sum differs), the message's in the stream it
// was consumed from, which holds it for -orders-retention.
func (k kept) Body(ctx context.Context, shop, order string, p orderstate.Parked) ([]byte, error) {
	ctx, cancel := jsCall(ctx)
	defer cancel()
	body, err := k.copyBody(ctx, shop, order, p)
	if err != nil || body != nil {
		return body, err
	}
	where := fmt.Sprintf("message %d of %s", p.Seq, p.Stream)
	if p.Stream == "" || p.Seq == 0 {
		return nil, fmt.Errorf("reading the body of event %s of %s/%s: no copy in %s, and no message named: %w", p.Key, shop, order, KeptStream, handlers.ErrNoCopy)
	}
	stream, err := k.js.Stream(ctx, p.Stream)
	var msg *jetstream.RawStreamMsg
	if err == nil {
		msg, err = stream.GetMsg(ctx, p.Seq)
	}
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("reading the body of event %s of %s/%s: no copy in %s, no %s: %w", p.Key, shop, order, KeptStream, where, handlers.ErrNoCopy)
	case err != nil:
		return nil, handlers.Infrastructure(fmt.Errorf("reading the body of event %s of %s/%s from %s: %w", p.Key, shop, order, where, err))
	case orderstate.BodySum(msg.Data) != p.BodySum:
		return nil, fmt.Errorf("reading the body of event %s of %s/%s: no copy in %s, and %s is another (its stream created again): %w", p.Key, shop, order, KeptStream, where, handlers.ErrNoCopy)
	}
	return msg.Data, nil
}

// copyBody is the body of p's copy, or nil when there is none or it is another event's.
func (k kept) copyBody(ctx context.Context, shop, order string, p orderstate.Parked) ([]byte, error) {
	msg, err := k.stream.GetLastMsgForSubject(ctx, keptSubject(shop, order, p.Key))
	if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, handlers.Infrastructure(fmt.Errorf("reading the copy of event %s of %s/%s from %s: %w", p.Key, shop, order, KeptStream, err))
	}
	if orderstate.BodySum(msg.Data) != p.BodySum {
		return nil, nil
	}
	return msg.Data, nil
}

// keptFate says what becomes of a copy (handlers.Reconciler.KeptFates).
type keptFate = func(ctx context.Context, shop, order, key string) (handlers.KeptFate, error)

// reconcile goes through the copies older than grace, oldest first: it drops those of events
// applied and publishes again, to the subject they came from, those of events neither applied
// nor held in Redis (fate says which), then drops them. A copy of an event Redis still holds that
// is older than renew (when positive) is kept anew (renew), so that the stream's max age never
// removes a copy still needed. A copy that fails is logged and left for the next pass; the pass
// ends when Redis or JetStream fails. It returns how many it published.
func (k kept) reconcile(ctx context.Context, fate keptFate, grace, renew time.Duration, now time.Time, log *zap.Logger) (int, error) {
	info, err := k.stream.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return 0, err
	}
	cons, err := k.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		return 0, fmt.Errorf("reading stream %s: %w", KeptStream, err)
	}
	restored := 0
	for {
		batch, err := cons.Fetch(1024, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return restored, fmt.Errorf("reading stream %s: %w", KeptStream, err)
		}
		last := true
		for msg := range batch.Messages() {
			meta, err := msg.Metadata()
			if err != nil {
				return restored, err
			}
			if now.Sub(meta.Timestamp) < grace {
				return restored, nil // this one's event may be on its way into Redis, and all after it
			}
			last = meta.NumPending == 0
			old := renew > 0 && now.Sub(meta.Timestamp) >= renew
			n, err := k.settle(ctx, msg, meta.Sequence.Stream, old, fate, log)
			restored += n
			if errors.Is(err, orderstate.ErrUnavailable) || ctx.Err() != nil {
				return restored, err
			}
			if err != nil {
				log.Warn("a kept copy of an event could not be settled; tried at the next reconciliation", zap.Uint64("seq", meta.Sequence.Stream), zap.Error(err))
			}
		}
		if err := batch.Error(); err != nil || last {
			return restored, err
		}
	}
}

// settle drops or publishes again the copy msg, at seq; one still held that is old is renewed.
func (k kept) settle(ctx context.Context, msg jetstream.Msg, seq uint64, old bool, fate keptFate, log *zap.Logger) (int, error) {
	shop, order, key, ok := parseKeptSubject(msg.Subject())
	if !ok {
		return 0, k.delete(ctx, seq) // not a copy of this worker's: nothing to give it back to
	}
	f, err := fate(ctx, shop, order, key)
	switch {
	case err != nil:
		return 0, err
	case f == handlers.KeptHeld && old:
		renewed, err := k.renew(ctx, seq)
		if renewed {
			log.Debug("a kept copy of an event still waiting was kept anew before the stream's max age", zap.String("shop", shop),
				zap.String("order", order), zap.String("event_key", key), zap.Uint64("old_seq", seq))
		}
		return 0, err
	case f == handlers.KeptHeld:
		return 0, nil
	case f == handlers.KeptLost:
		published, err := k.restore(ctx, seq)
		if err != nil || !published {
			return 0, err
		}
		fields := []zap.Field{zap.String("shop", shop), zap.String("order", order), zap.String("event_key", key)}
		if msg.Headers().Get(headerKeptWhy) == handlers.KeptGoingRound {
			log.Debug("an event that went round its order's full inbox was published again", fields...)
		} else {
			log.Warn("an event Redis lost (parked or queued for its order) was published again from its copy", fields...)
		}
		return 1, k.delete(ctx, seq)
	}
	return 0, k.delete(ctx, seq)
}

// restore publishes the copy at seq to the subject its event came from, and says whether it did
// (the copy may have been replaced or dropped since it was read). The message ID makes a second
// try (after a crash before the copy was dropped) a duplicate.
func (k kept) restore(ctx context.Context, seq uint64) (bool, error) {
	raw, err := k.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading copy %d of %s: %w", seq, KeptStream, err)
	}
	msg := nats.NewMsg(raw.Header.Get(headerKeptSubject))
	msg.Data = raw.Data
	for _, h := range []string{dlq.HeaderReplayCount, dlq.HeaderPublishedSequence, dlq.HeaderPublishedStreamCreated} {
		if v := raw.Header.Get(h); v != "" {
			msg.Header.Set(h, v)
		}
	}
	id := fmt.Sprintf("kept:%d:%s", seq, strings.TrimPrefix(raw.Subject, keptSubjectBase))
	if _, err := k.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
		return false, fmt.Errorf("publishing copy %d of %s again to %s: %w", seq, KeptStream, msg.Subject, err)
	}
	return true, nil
}

// renew publishes the copy at seq anew, on its subject, with its body and headers, and removes the
// old one (the stream keeps one message per subject, which removes it already): the new one's age
// starts now. The publish expects the copy at seq to be its subject's last, so that a copy the
// handler replaced or dropped since it was read is neither renewed nor brought back; it says
// whether it renewed.
func (k kept) renew(ctx context.Context, seq uint64) (bool, error) {
	raw, err := k.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading copy %d of %s: %w", seq, KeptStream, err)
	}
	msg := nats.NewMsg(raw.Subject)
	msg.Data = raw.Data
	for h, vs := range raw.Header {
		if !strings.HasPrefix(h, "Nats-") { // the server's own (Nats-Expected-*, Nats-Msg-Id...)
			msg.Header[h] = vs
		}
	}
	ctx, cancel := jsCall(ctx)
	defer cancel()
	if _, err := k.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(seq)); err != nil {
		if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok &&
			(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return false, nil // replaced or dropped since it was read
		}
		return false, fmt.Errorf("keeping copy %d of %s anew: %w", seq, KeptStream, err)
	}
	return true, k.delete(ctx, seq)
}

// delete removes the copy at seq; one gone already (dropped by another worker, or replaced on its
// subject, the stream keeping one message a subject) is no failure. The server answers the
// deletion of a missing message with "no message found" (err_code 10057) or "sequence not found",
// which the client reports as ErrMsgDeleteUnsuccessful, not ErrMsgNotFound: on a failure the copy
// is looked up, and one missing counts as deleted.
func (k kept) delete(ctx context.Context, seq uint64) error {
	err := k.stream.DeleteMsg(ctx, seq)
	if err == nil || errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if _, gerr := k.stream.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return fmt.Errorf("dropping copy %d of %s: %w", seq, KeptStream, err)
}

// parseKeptSubject reads the shop, order ID and event key of a copy's subject.
func parseKeptSubject(subject string) (shop, order, key string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(subject, keptSubjectBase), ".")
	if len(parts) != 3 || !strings.HasPrefix(subject, keptSubjectBase) {
		return "", "", "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", "", "", false
	}
	return parts[0], string(raw), parts[2], true
}
