package worker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
)

// outcomes publishes outcome events to RESULTS and waits for the stream's acknowledgement.
type outcomes struct{ js jetstream.JetStream }

func (o outcomes) Publish(ctx context.Context, subject, msgID string, body []byte) error {
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set("Content-Type", events.ContentType)
	if _, err := o.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publishing %s: %w", subject, err)
	}
	return nil
}

// polls schedules re-checks as JetStream message schedules: a message on the order's schedule
// subject that the server publishes onto its due subject at the given time.
type polls struct{ js jetstream.JetStream }

// orderToken encodes a shop and order ID as subject tokens; an order ID never appears raw.
func orderToken(shop, order string) string {
	return shop + "." + base64.RawURLEncoding.EncodeToString([]byte(order))
}

func (p polls) Schedule(ctx context.Context, req handlers.PollRequest, at time.Time) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	token := orderToken(req.Shop, req.OrderID)
	if req.Kind != handlers.TimerPoll {
		token += "." + req.Kind // a timer of its own: it must not replace the order's re-check
	}
	msg := nats.NewMsg(pollSubjectBase + "sched." + token)
	msg.Data = body
	// Sub-second precision: rounding to whole seconds fired every re-check due in a second together.
	msg.Header.Set("Nats-Schedule", "@at "+at.UTC().Format(time.RFC3339Nano))
	msg.Header.Set("Nats-Schedule-Target", pollSubjectBase+"due."+token)
	if _, err := p.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("scheduling the %s timer of %s/%s: %w", timerName(req.Kind), req.Shop, req.OrderID, err)
	}
	return nil
}

func timerName(kind string) string {
	if kind == handlers.TimerPoll {
		return "poll"
	}
	return kind
}

// decodePoll reads a due poll message.
func decodePoll(m *handlers.Message) (handlers.PollRequest, error) {
	var req handlers.PollRequest
	if !strings.HasPrefix(m.Subject, pollSubjectBase+"due.") {
		return req, fmt.Errorf("subject %q is not a poll subject", m.Subject)
	}
	if err := json.Unmarshal(m.Body, &req); err != nil || req.Shop == "" || req.OrderID == "" {
		return req, fmt.Errorf("poll message is not a poll request: %v", err)
	}
	return req, nil
}
