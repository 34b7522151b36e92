package deadletter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/inbound"
)

// ErrNotEditable is the error of a letter that is not an inbound event (a due poll, the worker's
// own message): it has no event to correct, and a replay re-publishes it.
var ErrNotEditable = errors.New("not an inbound event: it cannot be edited")

// ErrEmpty is the error of a corrected event that is empty.
var ErrEmpty = errors.New("the corrected event is empty")

// ErrTooLarge is the error of a corrected event larger than the server's maximum payload.
var ErrTooLarge = errors.New("the event is larger than the server's maximum payload")

// tooLarge says how large an event is, and how large the server takes.
type tooLarge struct {
	size int
	max  int64
}

func (e tooLarge) Error() string {
	return fmt.Sprintf("event rejected: it is %d bytes, more than the server's maximum payload of %d: nothing published", e.size, e.max)
}
func (e tooLarge) Is(target error) bool { return target == ErrTooLarge }

// Editable reports whether the letter holds an inbound event that Edit can correct.
func (l Letter) Editable() bool {
	typ, _, err := events.ParseSubject(l.Subject)
	return err == nil && inbound.IsInbound(typ)
}

// EditOptions are the knobs of Edit.
type EditOptions struct {
	// NewID gives the corrected event a new id (a UUID) instead of the id it has, when it should
	// count as another event.
	NewID bool
	// DryRun validates the corrected event and returns it (Edited.Event); nothing is published and
	// the letter is kept.
	DryRun bool
	// Source is the CloudEvents source given to a corrected event that has none (a letter's event
	// always has one); without it, such an event is rejected.
	Source string
	// Now is the time given to a corrected event that has none. Default time.Now.
	Now func() time.Time
}

// Edited is what Edit did, as `publisher dlq edit -json` prints it.
type Edited struct {
	Letter      uint64          `json:"seq"`
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"-"`
	Subject     string          `json:"subject"`
	Original    string          `json:"original_subject"`
	MsgID       string          `json:"msg_id,omitempty"`
	Stream      string          `json:"stream,omitempty"`
	Sequence    uint64          `json:"sequence,omitempty"`
	Duplicate   bool            `json:"duplicate"`
	ReplayCount int             `json:"replay_count"`
	Removed     bool            `json:"removed"`
	DryRun      bool            `json:"dry_run"`
	Event       json.RawMessage `json:"event,omitempty"`
}

// Edit publishes corrected, the event of dead letter seq as an operator corrected it (a whole
// CloudEvent, or its data object alone), in place of the letter: validated as the worker validates
// it, published to the subject of its type and shop (which may differ from the original's: a shop
// corrected) as a replay of the letter (Dlq-Replay-Count incremented, the original's position
// kept, so that the worker orders it as the event it corrects), with the header Dlq-Edited-From:
// seq and the message ID edit:<stream>:<seq>:<count> (an edit published again after a crash is a
// duplicate, and the first one stands). The letter is removed once the server acknowledged the
// publish. The event keeps its id and source unless opts.NewID.
//
// Nothing is published and the letter is kept when: no letter has the sequence (errors.Is
// ErrNotFound), the letter is not an inbound event (ErrNotEditable), corrected is blank (ErrEmpty),
// the event is invalid (an *events.InvalidError listing every problem), or larger than the server
// takes (ErrTooLarge). A failure of the server is returned as it is; one after the publish (the
// letter not removed) comes with the Edited that says where the event went.
func (q *Queue) Edit(ctx context.Context, seq uint64, corrected []byte, opts EditOptions) (Edited, error) {
	s, err := q.open(ctx)
	if err != nil {
		return Edited{}, err
	}
	m, err := get(ctx, s, q.stream, seq)
	if err != nil {
		return Edited{}, err
	}
	l := letterOf(m.Sequence, m.Subject, m.Time, m.Header, m.Data)
	if !l.Editable() {
		return Edited{}, fmt.Errorf("dead letter %d (of %q) is %w; a replay re-publishes it", seq, l.Subject, ErrNotEditable)
	}
	if len(bytes.TrimSpace(corrected)) == 0 {
		return Edited{}, fmt.Errorf("dead letter %d: %w", seq, ErrEmpty)
	}
	if opts.NewID {
		corrected = withNewID(corrected)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	origType, _, _ := events.ParseSubject(l.Subject)
	ev, err := inbound.Wrap(corrected, inbound.Fill{Type: origType, Source: opts.Source, Now: now()})
	if err != nil {
		return Edited{}, err
	}
	if max := q.js.Conn().MaxPayload(); int64(len(ev.Body)) > max {
		return Edited{}, tooLarge{len(ev.Body), max}
	}
	var env events.Envelope
	_ = json.Unmarshal(ev.Body, &env) // Wrap validated it
	res := Edited{Letter: seq, ID: ev.ID, Source: env.Source, Type: env.Type, Subject: ev.Subject, Original: l.Subject, ReplayCount: l.ReplayCount + 1, DryRun: opts.DryRun}
	if opts.DryRun {
		res.Event = ev.Body
		return res, nil
	}
	msg := ev.Msg()
	msg.Header.Set(dlq.HeaderEditedFrom, strconv.FormatUint(seq, 10))
	ack, err := republish(ctx, q.js, s, l, msg, "edit")
	if ack != nil {
		res.Stream, res.Sequence, res.Duplicate, res.MsgID = ack.Stream, ack.Sequence, ack.Duplicate, msg.Header.Get(jetstream.MsgIDHeader)
	}
	if err != nil {
		return res, err
	}
	res.Removed = true
	return res, nil
}

// withNewID gives a whole CloudEvent a new id; anything else is left for Wrap to judge.
func withNewID(raw []byte) []byte {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		return raw
	}
	obj["id"], _ = json.Marshal(inbound.NewID())
	out, err := json.Marshal(obj)
	if err != nil {
		return raw
	}
	return out
}
