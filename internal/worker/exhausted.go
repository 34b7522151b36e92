package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
)

// The safety net for messages that no handler ever hands back (every delivery timed out, or the
// worker crashed on them): the server's max-deliveries advisories are kept in a stream of their
// own, and a durable consumer turns each into an exhausted dead letter. Messages whose last
// delivery was handled are dead-lettered by the handler itself; the dead letter's message ID
// makes the two paths write one letter.
const (
	AdvisoryStream     = "ATODENE_ADVISORIES"
	advisoryConsumer   = "atodene-worker-advisories"
	maxDeliveriesTopic = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
)

func advisoryStreamConfig(ordersStream string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: AdvisoryStream,
		Subjects: []string{
			maxDeliveriesTopic + "." + ordersStream + "." + ordersConsumer,
			maxDeliveriesTopic + "." + PollStream + "." + pollConsumer,
		},
		MaxAge: 7 * 24 * time.Hour,
	}
}

// maxDeliveries is the advisory the server publishes when a message ran out of deliveries.
type maxDeliveries struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries int    `json:"deliveries"`
}

// decodeAdvisory reads a max-deliveries advisory. Its Head has no kind: the metrics count it as
// undecoded, as they always have.
func decodeAdvisory(m *handlers.Message, h *handlers.Head) {
	var adv maxDeliveries
	if err := json.Unmarshal(m.Body, &adv); err != nil || adv.Stream == "" || adv.StreamSeq == 0 {
		h.Err = handlers.Permanent(handlers.ReasonInvalid, fmt.Errorf("max-deliveries advisory not understood: %v", err))
		return
	}
	h.Data = adv
}

// exhaustedHandler dead-letters the message an advisory (decoded by decodeAdvisory) names, with
// reason exhausted, through w (which counts it).
func exhaustedHandler(js jetstream.JetStream, w countedLetters, now func() time.Time) handlers.Handler {
	return func(ctx context.Context, m *handlers.Message) error {
		adv := m.Head.Data.(maxDeliveries)
		s, err := js.Stream(ctx, adv.Stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return handlers.Permanent(handlers.ReasonExhausted, fmt.Errorf("stream %s named by a max-deliveries advisory is gone (seq %d)", adv.Stream, adv.StreamSeq))
		}
		if err != nil {
			return handlers.Infrastructure(fmt.Errorf("reading stream %s named by a max-deliveries advisory: %w", adv.Stream, err))
		}
		orig, err := s.GetMsg(ctx, adv.StreamSeq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return handlers.Permanent(handlers.ReasonExhausted, fmt.Errorf("%s seq %d named by a max-deliveries advisory is gone", adv.Stream, adv.StreamSeq))
		}
		if err != nil {
			return handlers.Infrastructure(fmt.Errorf("reading %s seq %d named by a max-deliveries advisory: %w", adv.Stream, adv.StreamSeq, err))
		}
		return w.Write(ctx, dlq.Letter{
			Subject: orig.Subject, Stream: adv.Stream, Sequence: adv.StreamSeq, Body: orig.Data,
			Reason: handlers.ReasonExhausted.String(), Attempts: adv.Deliveries, FailedAt: now(),
			Err:         fmt.Errorf("no delivery of %d was acknowledged in time (handler timed out or worker crashed)", adv.Deliveries),
			ReplayCount: orig.Header.Get(dlq.HeaderReplayCount), Published: dlq.Published(orig.Header, adv.StreamSeq),
			PublishedCreated: dlq.PublishedCreated(orig.Header, s.CachedInfo().Created.UnixNano()),
		})
	}
}
