// Package dlq writes dead letters: the original body byte for byte, on dlq.<original subject>,
// with headers that say where it came from and why it failed (docs/operations-worker.md#dead-letters).
package dlq

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/tracing"
	"github.com/atodene-worker/atodene-worker/internal/tracing/natstrace"
)

// Header names of a dead letter.
const (
	HeaderOriginalSubject  = "Dlq-Original-Subject"
	HeaderOriginalStream   = "Dlq-Original-Stream"
	HeaderOriginalSequence = "Dlq-Original-Sequence"
	HeaderReason           = "Dlq-Reason"
	HeaderError            = "Dlq-Error"
	HeaderAttempts         = "Dlq-Attempts"
	HeaderFailedAt         = "Dlq-Failed-At"
	HeaderReplayCount      = "Dlq-Replay-Count"
	// HeaderPublishedSequence is the sequence the event had in its stream when it was first
	// published: the original sequence of a message, kept through its replays, so that a replayed
	// event is as old as the event it replays when the worker orders an order's events.
	HeaderPublishedSequence = "Dlq-Published-Sequence"
	// HeaderPublishedStreamCreated is when that stream was created (RFC 3339 with nanoseconds):
	// a stream deleted and created again starts its sequences at 1 again, and its creation time
	// tells its sequences from the old stream's. Absent when unknown (a poll's letter).
	HeaderPublishedStreamCreated = "Dlq-Published-Stream-Created"
	// HeaderEditedFrom is set on an event that publisher dlq edit published in place of a dead
	// letter: the letter's sequence in the dead-letter stream. The worker does not read it.
	HeaderEditedFrom = "Dlq-Edited-From"
)

// SubjectPrefix is prepended to the original subject.
const SubjectPrefix = "dlq."

// maxErrorLen bounds Dlq-Error: an error quoting a huge field must not make a huge header.
const maxErrorLen = 1024

// Letter is one dead letter to write. handlers.DeadLetter has the same fields, in the same order,
// so that the worker converts one to the other (handlers do not import dlq): a field added here is
// added there too, or the worker does not compile.
type Letter struct {
	Subject     string // the subject it was consumed from
	Stream      string
	Sequence    uint64
	Body        []byte
	Reason      string
	Err         error
	Attempts    int
	ReplayCount string // the Dlq-Replay-Count the message carried, if any; written only if a count (ParseReplayCount)
	// Published is the sequence the event had when it was first published (HeaderPublishedSequence);
	// 0 for Sequence.
	Published uint64
	// PublishedCreated is when the stream the event was first published in was created (Unix
	// ns; HeaderPublishedStreamCreated), 0 when unknown.
	PublishedCreated int64
	FailedAt         time.Time
}

// Writer publishes dead letters to JetStream.
type Writer struct {
	js jetstream.JetStream
}

// NewWriter returns a writer publishing with js.
func NewWriter(js jetstream.JetStream) *Writer { return &Writer{js: js} }

// Write stores a dead letter and returns once the DLQ stream acknowledged it. The message ID is
// derived from the original stream and sequence, so writing the same letter twice stores it once
// within the duplicate window; a letter of another message found under its ID (the original
// stream created again, its sequences started over) is stored under an ID naming its body.
func (w *Writer) Write(ctx context.Context, l Letter) error {
	_, err := w.WriteOnce(ctx, l)
	return err
}

// WriteOnce is Write that also reports whether the stream stored the letter now: false when it
// held the same letter already (written within the duplicate window by another path, or by an
// earlier try whose acknowledgement was lost), so that a count of letters counts each once.
func (w *Writer) WriteOnce(ctx context.Context, l Letter) (stored bool, err error) {
	msg := nats.NewMsg(SubjectPrefix + l.Subject)
	msg.Data = l.Body
	errText := "(no error given)"
	if l.Err != nil {
		errText = l.Err.Error()
	}
	if len(errText) > maxErrorLen {
		cut := maxErrorLen
		for cut > 0 && !utf8.RuneStart(errText[cut]) {
			cut-- // never cut a character in two: the header would not be valid UTF-8
		}
		errText = errText[:cut] + "…"
	}
	msg.Header.Set(HeaderOriginalSubject, l.Subject)
	msg.Header.Set(HeaderOriginalStream, l.Stream)
	msg.Header.Set(HeaderOriginalSequence, strconv.FormatUint(l.Sequence, 10))
	msg.Header.Set(HeaderReason, l.Reason)
	msg.Header.Set(HeaderError, errText)
	msg.Header.Set(HeaderAttempts, strconv.Itoa(l.Attempts))
	msg.Header.Set(HeaderFailedAt, l.FailedAt.UTC().Format(time.RFC3339))
	// The count comes from the message's header, which anyone who may publish an event writes: a
	// count that is none (-1000 would pass every -max-replays) is left out, as for an event that
	// was never replayed, and a count is written as the replay guard reads it.
	replays := ""
	if count, ok := ParseReplayCount(l.ReplayCount); ok && l.ReplayCount != "" {
		replays = strconv.FormatUint(count, 10)
		msg.Header.Set(HeaderReplayCount, replays)
	}
	published := l.Published
	if published == 0 {
		published = l.Sequence
	}
	msg.Header.Set(HeaderPublishedSequence, strconv.FormatUint(published, 10))
	if l.PublishedCreated != 0 {
		msg.Header.Set(HeaderPublishedStreamCreated, time.Unix(0, l.PublishedCreated).UTC().Format(time.RFC3339Nano))
	}
	id := fmt.Sprintf("dlq:%s:%d", l.Stream, l.Sequence)
	if replays != "" {
		id += ":r" + replays
	}
	ack, err := w.publish(ctx, msg, id, l.Reason)
	if err == nil && ack.Duplicate {
		// The ID may name another letter: the original stream deleted and created again within
		// the duplicate window (its sequences start at 1 again) makes two messages of one
		// sequence. The letter the stream holds under it is read: another one, or none (purged),
		// and this letter is written under an ID of its own, naming its body.
		var same bool
		if same, err = w.holds(ctx, ack, msg); err == nil && !same {
			sum := sha256.Sum256(msg.Data)
			ack, err = w.publish(ctx, msg, id+":b"+hex.EncodeToString(sum[:8]), l.Reason)
		}
	}
	if err != nil {
		return false, fmt.Errorf("dlq: writing dead letter for %s seq %d: %w", l.Subject, l.Sequence, err)
	}
	return !ack.Duplicate, nil
}

// callTimeout bounds each JetStream call of a write: a publish's wait for the stream's
// acknowledgement, the read of a letter. jetstream bounds a call (by 5 s) only when its context
// has no deadline, and the handlers write letters with theirs, their handler timeout (minutes): a
// lost acknowledgement held the handler that long. A write that fails after it is tried again,
// under the same message ID. jetstream's own default.
const callTimeout = 5 * time.Second

// publish publishes msg under the message ID id; within a traced message's span, the letter
// carries its trace on (tracing.Send).
func (w *Writer) publish(ctx context.Context, msg *nats.Msg, id, reason string) (ack *jetstream.PubAck, err error) {
	err = natstrace.Send(ctx, nil, msg, func(ctx context.Context) (err error) {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		ack, err = w.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id))
		return err
	}, tracing.MessageID.String(id), tracing.DeadLetter.String(reason))
	return ack, err
}

// holds says whether the message a duplicate acknowledgement names is the letter msg: the same
// original subject, stream, sequence and body.
func (w *Writer) holds(ctx context.Context, ack *jetstream.PubAck, msg *nats.Msg) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*callTimeout) // two calls
	defer cancel()
	s, err := w.js.Stream(ctx, ack.Stream)
	if err != nil {
		return false, err
	}
	stored, err := s.GetMsg(ctx, ack.Sequence)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, h := range []string{HeaderOriginalStream, HeaderOriginalSequence} {
		if stored.Header.Get(h) != msg.Header.Get(h) {
			return false, nil
		}
	}
	return stored.Subject == msg.Subject && bytes.Equal(stored.Data, msg.Data), nil
}

// maxReplayCount is the largest Dlq-Replay-Count read as a count: no letter is replayed so often.
const maxReplayCount = math.MaxInt32

// ParseReplayCount reads a Dlq-Replay-Count header: "" (never replayed) is 0; otherwise decimal
// digits alone, no sign, up to maxReplayCount. ok is false for anything else: a count that cannot
// be read, which the replay guard must not take as a small one.
func ParseReplayCount(h string) (count uint64, ok bool) {
	if h == "" {
		return 0, true
	}
	count, err := strconv.ParseUint(h, 10, 64)
	if err != nil || count > maxReplayCount {
		return 0, false
	}
	return count, true
}

// FromMsg builds the letter of a consumed message from a stream created at created (Unix ns, 0
// when unknown).
func FromMsg(msg jetstream.Msg, created int64, reason string, cause error, now time.Time) Letter {
	l := Letter{Subject: msg.Subject(), Body: msg.Data(), Reason: reason, Err: cause, FailedAt: now, Attempts: 1}
	if md, err := msg.Metadata(); err == nil {
		l.Stream, l.Sequence, l.Attempts = md.Stream, md.Sequence.Stream, int(md.NumDelivered)
	}
	if h := msg.Headers(); h != nil {
		if count, ok := ParseReplayCount(h.Get(HeaderReplayCount)); ok && h.Get(HeaderReplayCount) != "" {
			l.ReplayCount = strconv.FormatUint(count, 10)
		}
	}
	l.Published = Published(msg.Headers(), l.Sequence)
	l.PublishedCreated = PublishedCreated(msg.Headers(), created)
	return l
}

// Published returns the sequence an event had when it was first published: for a replayed
// message (one with Dlq-Replay-Count), the Dlq-Published-Sequence it carries; otherwise seq, the
// message's own sequence.
func Published(h nats.Header, seq uint64) uint64 {
	if h == nil || h.Get(HeaderReplayCount) == "" {
		return seq
	}
	if p, err := strconv.ParseUint(h.Get(HeaderPublishedSequence), 10, 64); err == nil && p > 0 {
		return p
	}
	return seq
}

// PublishedCreated returns when the stream an event was first published in was created (Unix
// ns): for a replayed message, the Dlq-Published-Stream-Created it carries (0 if none, for a
// letter written before the header existed); otherwise created, the creation time of the stream
// the message came from.
func PublishedCreated(h nats.Header, created int64) int64 {
	if h == nil || h.Get(HeaderReplayCount) == "" {
		return created
	}
	t, err := time.Parse(time.RFC3339Nano, h.Get(HeaderPublishedStreamCreated))
	if err != nil {
		return 0
	}
	return t.UnixNano()
}
