package worker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/tracing"
	"github.com/atodene-worker/atodene-worker/internal/tracing/natstrace"
)

// jsCallTimeout bounds each JetStream call the handlers make: a publish's wait for the stream's
// acknowledgement, a read of a stream. jetstream bounds a call (by 5 s) only when its context has
// no deadline, and a handler's context has one, its handler timeout (minutes): a lost PubAck held
// the try, its handling slot and the order's lease for that long. A call that fails after it is a
// failure of JetStream, tried again in place (handlers.Infrastructure); the message ID makes the
// publish of a retry a duplicate if the first one got through. jetstream's own default.
const jsCallTimeout = 5 * time.Second

// jsCall is ctx bounded for one JetStream call (jsCallTimeout).
func jsCall(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, jsCallTimeout)
}

// outcomes publishes outcome events to RESULTS and waits for the stream's acknowledgement.
type outcomes struct {
	js       jetstream.JetStream
	failures prometheus.Counter // atodene_worker_outcome_publish_failures_total
}

// Publish publishes an outcome. A message ID that the stream already holds is a retry of the same
// step, unless the outcome it holds is another: then an earlier write used the ID (Redis lost it,
// or its step failed after publishing), and the outcome would be lost as a duplicate, so that is a
// *handlers.ReusedIDError, and the handler reissues the outcome in a new epoch.
func (o outcomes) Publish(ctx context.Context, subject, msgID string, body []byte) error {
	err := o.publish(ctx, subject, msgID, body)
	if err != nil {
		o.failures.Inc()
	}
	return err
}

func (o outcomes) publish(ctx context.Context, subject, msgID string, body []byte) error {
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set("Content-Type", events.ContentType)
	// Within a traced message's span, the outcome carries the trace on: in its headers, and for
	// CloudEvents consumers in its traceparent and tracestate attributes.
	var ack *jetstream.PubAck
	publish := func(ctx context.Context) (err error) {
		msg.Data = events.WithTraceContext(body, msg.Header.Get(natstrace.HeaderTraceParent), msg.Header.Get(natstrace.HeaderTraceState))
		ctx, cancel := jsCall(ctx)
		defer cancel()
		ack, err = o.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID))
		return err
	}
	var err error
	if trace.SpanFromContext(ctx).IsRecording() {
		err = natstrace.Send(ctx, nil, msg, publish, tracing.MessageID.String(msgID))
	} else {
		err = publish(ctx) // the attribute would be built, and allocated, for nothing
	}
	if err != nil {
		return handlers.Infrastructure(fmt.Errorf("publishing %s: %w", subject, err))
	}
	if !ack.Duplicate {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*jsCallTimeout) // two calls
	defer cancel()
	s, err := o.js.Stream(ctx, ack.Stream) // rare: a retry of a step whose publish got through
	if err != nil {
		return handlers.Infrastructure(fmt.Errorf("reading stream %s to compare outcome %s with its retry: %w", ack.Stream, msgID, err))
	}
	stored, err := s.GetMsg(ctx, ack.Sequence)
	if err != nil {
		return handlers.Infrastructure(fmt.Errorf("reading outcome %s (%s seq %d) to compare with its retry: %w", msgID, ack.Stream, ack.Sequence, err))
	}
	if stored.Subject != subject || !sameOutcome(stored.Data, body) {
		return fmt.Errorf("publishing %s: %w", subject, &handlers.ReusedIDError{Stream: ack.Stream, MsgID: msgID, Seq: ack.Sequence})
	}
	return nil
}

// sameOutcome reports whether two outcome events say the same: equal but for when they were
// rendered (the envelope's time, the data's decided_at or reported_at).
func sameOutcome(a, b []byte) bool {
	strip := func(raw []byte) (map[string]any, bool) {
		var env map[string]any
		if json.Unmarshal(raw, &env) != nil {
			return nil, false
		}
		delete(env, "time")
		delete(env, "traceparent") // the trace of the publish, another for each try
		delete(env, "tracestate")
		if data, ok := env["data"].(map[string]any); ok {
			delete(data, "decided_at")
			delete(data, "reported_at")
		}
		return env, true
	}
	x, okA := strip(a)
	y, okB := strip(b)
	return okA && okB && reflect.DeepEqual(x, y)
}

// polls schedules re-checks as JetStream message schedules: a message on the order's schedule
// subject that the server publishes onto its due subject at the given time. tp (nil with tracing
// off) traces a schedule published in the context of a remote span only: a held re-check handed
// to JetStream carries on the trace of the handling that held it.
type polls struct {
	js        jetstream.JetStream
	tp        trace.TracerProvider
	dlqStream string // the dead-letter stream, where Waiting looks for a due message dead-lettered
}

// orderToken encodes a shop and order ID as subject tokens; an order ID never appears raw.
func orderToken(shop, order string) string {
	return shop + "." + base64.RawURLEncoding.EncodeToString([]byte(order))
}

// timerToken is the subject tokens of an order's timer of a kind.
func timerToken(req handlers.PollRequest) string {
	token := orderToken(req.Shop, req.OrderID)
	if req.Kind != handlers.TimerPoll {
		token += "." + req.Kind // a timer of its own: it must not replace the order's re-check
	}
	return token
}

func (p polls) Schedule(ctx context.Context, req handlers.PollRequest, at time.Time) error {
	if req.At.IsZero() {
		req.At = at
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	token := timerToken(req)
	msg := nats.NewMsg(pollSubjectBase + "sched." + token)
	msg.Data = body
	// Sub-second precision: rounding to whole seconds fired every re-check due in a second together.
	msg.Header.Set("Nats-Schedule", "@at "+at.UTC().Format(time.RFC3339Nano))
	msg.Header.Set("Nats-Schedule-Target", pollSubjectBase+"due."+token)
	// The server copies the schedule's headers onto the message it fires, trace context included:
	// a re-check hours later continues the trace of the message that scheduled it.
	var tp trace.TracerProvider // a span of the handler's own: its provider
	if sc := trace.SpanContextFromContext(ctx); sc.IsRemote() {
		tp = p.tp
	}
	if err := natstrace.Send(ctx, tp, msg, func(ctx context.Context) error {
		ctx, cancel := jsCall(ctx)
		defer cancel()
		_, err := p.js.PublishMsg(ctx, msg)
		return err
	}); err != nil {
		return handlers.Infrastructure(fmt.Errorf("scheduling the %s timer of %s/%s: %w", timerName(req.Kind), req.Shop, req.OrderID, err))
	}
	return nil
}

// Waiting reports whether an order's timer is in the timer stream: its schedule is stored, for
// after stale, or it fired after since (the state's last write) and its due message is not
// handled yet. A schedule stored for before stale is stuck, not waiting: the server did not
// store the message it fired (the store full) and does not fire it again (nats-server 2.15 keeps
// it "in flight" until a restart or a new schedule on its subject). A due
// message handled after since while the state shows no write of it means Redis lost that write
// (a rollback): the timer is not waiting, it is gone. A due message dead-lettered (its tries ran
// out: the consumer's ack floor passes it as it passes a handled one) wrote nothing: missing.
func (p polls) Waiting(ctx context.Context, req handlers.PollRequest, since, stale time.Time) (handlers.TimerState, error) {
	st, err := p.js.Stream(ctx, PollStream)
	if err != nil {
		return 0, fmt.Errorf("reading stream %s: %w", PollStream, err)
	}
	token := timerToken(req)
	if sched, err := st.GetLastMsgForSubject(ctx, pollSubjectBase+"sched."+token); !errors.Is(err, jetstream.ErrMsgNotFound) {
		if err != nil {
			return 0, err
		}
		at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(sched.Header.Get("Nats-Schedule"), "@at "))
		if err != nil || at.After(stale) {
			return handlers.TimerWaiting, nil
		}
		return handlers.TimerMissing, nil
	}
	due, err := st.GetLastMsgForSubject(ctx, pollSubjectBase+"due."+token)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return handlers.TimerMissing, nil
	case err != nil:
		return 0, err
	case !due.Time.After(since):
		return handlers.TimerMissing, nil
	}
	cons, err := p.js.Consumer(ctx, PollStream, pollConsumer)
	if err != nil {
		return 0, fmt.Errorf("reading consumer %s: %w", pollConsumer, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading consumer %s: %w", pollConsumer, err)
	}
	if info.AckFloor.Stream < due.Sequence {
		return handlers.TimerWaiting, nil
	}
	if lettered, err := p.deadLettered(ctx, due); err != nil || lettered {
		return handlers.TimerMissing, err
	}
	return handlers.TimerHandled, nil
}

// deadLettered says whether the due message is the last dead letter of its subject: one of its
// stream and sequence, stored after it fired (not the letter of a message of a timer stream since
// created again).
func (p polls) deadLettered(ctx context.Context, due *jetstream.RawStreamMsg) (bool, error) {
	if p.dlqStream == "" {
		return false, nil
	}
	s, err := p.js.Stream(ctx, p.dlqStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading stream %s: %w", p.dlqStream, err)
	}
	l, err := s.GetLastMsgForSubject(ctx, dlq.SubjectPrefix+due.Subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading stream %s: %w", p.dlqStream, err)
	}
	// Both times are the servers': a few seconds allow for a cluster's nodes' clocks.
	return !l.Time.Before(due.Time.Add(-5*time.Second)) &&
		l.Header.Get(dlq.HeaderOriginalStream) == PollStream && l.Header.Get(dlq.HeaderOriginalSequence) == strconv.FormatUint(due.Sequence, 10), nil
}

func timerName(kind string) string {
	if kind == handlers.TimerPoll {
		return "poll"
	}
	return kind
}

// decodeTimer reads a due timer message (a poll, a parked event's deadline, an inbox): its Head
// names the kind for logs and metrics (poll, park-deadline, inbox) and holds its PollRequest.
func decodeTimer(m *handlers.Message, h *handlers.Head) {
	var req handlers.PollRequest
	if !strings.HasPrefix(m.Subject, pollSubjectBase+"due.") {
		h.Err = handlers.Permanent(handlers.ReasonInvalid, fmt.Errorf("subject %q is not a poll subject", tracing.Clip(m.Subject)))
		return
	}
	if err := json.Unmarshal(m.Body, &req); err != nil || req.Shop == "" || req.OrderID == "" {
		h.Err = handlers.Permanent(handlers.ReasonInvalid, fmt.Errorf("poll message is not a poll request: %v", err))
		return
	}
	h.Kind = "poll"
	switch req.Kind {
	case handlers.TimerParked:
		h.Kind = "park-deadline"
	case handlers.TimerInbox, handlers.TimerRetry:
		h.Kind = "inbox"
	case handlers.TimerReauth:
		h.Kind = "reauthorization"
	}
	h.Shop, h.Order, h.Data = req.Shop, req.OrderID, req
}
