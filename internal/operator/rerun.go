package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/streamscan"
)

// dataGone says that the order's received data is no longer in the inbound stream, and why.
type dataGone struct{ why string }

func (e dataGone) Error() string        { return e.why }
func (e dataGone) Is(target error) bool { return target == ErrNoData }

// scanLimited says that the search for the order's data stopped at its limit, and where.
type scanLimited struct{ why string }

func (e scanLimited) Error() string        { return e.why }
func (e scanLimited) Is(target error) bool { return target == ErrNoData }

// orderEvent is an inbound event of an order read from the stream.
type orderEvent struct {
	Received
	shop, order string
	billed      *int64
}

// readOrderEvent decodes a message of the inbound stream enough to know whose event it is.
func readOrderEvent(subject string, header nats.Header, body []byte, seq uint64, stored time.Time) (orderEvent, bool) {
	typ, shop, err := events.ParseSubject(subject)
	if err != nil {
		return orderEvent{}, false
	}
	var env struct {
		ID     string          `json:"id"`
		Source string          `json:"source"`
		Data   json.RawMessage `json:"data"`
	}
	var data struct {
		OrderID      string `json:"order_id"`
		BilledAmount *int64 `json:"billed_amount"`
	}
	if json.Unmarshal(body, &env) != nil || json.Unmarshal(env.Data, &data) != nil {
		return orderEvent{}, false
	}
	ev := orderEvent{Received: Received{Sequence: seq, Type: typ, ID: env.ID, Source: env.Source, Stored: stored, Data: env.Data},
		shop: shop, order: data.OrderID, billed: data.BilledAmount}
	if header.Get(dlq.HeaderReplayCount) != "" {
		ev.Copy = true
		ev.CopyOf, _ = strconv.ParseUint(header.Get(dlq.HeaderPublishedSequence), 10, 64)
	}
	return ev, true
}

// isData says whether the event carries the order's data: an order.created or order.updated with
// something to bill (an order.updated billed 0 is a cancel).
func (e orderEvent) isData() bool {
	return (e.Type == events.TypeOrderCreated || e.Type == events.TypeOrderUpdated) && e.billed != nil && *e.billed > 0
}

// fate says what the order's history tells of the event: whether it was dead-lettered, and
// whether it was handled otherwise (applied, or found unchanged). An event the history does not
// name (a history is bounded) is neither.
func fate(history []orderstate.Entry, source, id string) (deadLettered, handled bool) {
	for _, e := range history {
		if e.Source != source || e.ID != id {
			continue
		}
		if strings.HasPrefix(e.Did, "dead-lettered") {
			deadLettered = true
		} else {
			handled = true
		}
	}
	return deadLettered, handled
}

// latestData finds the order's latest received data in the inbound stream s: the event at the
// position of the order's last credit event (State.CreditSeq); when that event was dead-lettered,
// its newest replay or edit after it; when it is a cancel, the newest order.created or
// order.updated of the order before it. scan bounds the messages read. A dataGone says the data
// is not in the stream; a scanLimited, that it was not among the scan messages read.
func latestData(ctx context.Context, s jetstream.Stream, st orderstate.State, history []orderstate.Entry, shop, orderID string, scan int) (Received, error) {
	name := s.CachedInfo().Config.Name
	info, err := s.Info(ctx)
	if err != nil {
		return Received{}, err
	}
	if st.CreditSeq == 0 {
		return Received{}, dataGone{"the order's state records no position of its credit events (a state written before positions were kept)"}
	}
	if st.CreditCreated != 0 && info.Created.UnixNano() != st.CreditCreated {
		return Received{}, dataGone{fmt.Sprintf("stream %s was created again (at %s JST) after the order's last credit event was published in it (sequence %d of the stream created %s JST)",
			name, jst.Format(info.Created), st.CreditSeq, jst.Format(time.Unix(0, st.CreditCreated)))}
	}
	m, err := s.GetMsg(ctx, st.CreditSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Received{}, dataGone{fmt.Sprintf("the order's last credit event, sequence %d of stream %s, is no longer there: %s",
			st.CreditSeq, name, retentionWords(info))}
	}
	if err != nil {
		return Received{}, fmt.Errorf("reading sequence %d of stream %s: %w", st.CreditSeq, name, err)
	}
	last, ok := readOrderEvent(m.Subject, m.Header, m.Data, m.Sequence, m.Time)
	if !ok || last.shop != shop || last.order != orderID {
		return Received{}, dataGone{fmt.Sprintf("sequence %d of stream %s is not an event of the order: the stream was created again since", st.CreditSeq, name)}
	}
	data := []string{events.Subject(events.TypeOrderCreated, shop), events.Subject(events.TypeOrderUpdated, shop)}
	if last.isData() {
		deadLettered, handled := fate(history, last.Source, last.ID)
		if !deadLettered {
			return last.Received, nil
		}
		// It failed before it was applied: what the worker applied is its replay or edit, published
		// after it with its position (Dlq-Published-Sequence).
		var found *orderEvent
		left := scan
		read, err := streamscan.Range(ctx, s, data, st.CreditSeq+1, 0, func(m jetstream.Msg, seq uint64) (bool, error) {
			md, _ := m.Metadata()
			if ev, ok := readOrderEvent(m.Subject(), m.Headers(), m.Data(), seq, md.Timestamp); ok && ev.Copy && ev.CopyOf == st.CreditSeq && ev.order == orderID {
				found = &ev
			}
			left--
			return left == 0, nil
		})
		switch {
		case err != nil:
			return Received{}, err
		case left == 0:
			// Cut short: a later copy (a second edit) may lie beyond what was read.
			return Received{}, scanLimited{fmt.Sprintf("the order's last credit event, sequence %d of stream %s, was dead-lettered; its replays and edits were looked for among %d messages after it and more remain",
				st.CreditSeq, name, read)}
		case found != nil:
			return found.Received, nil
		case handled:
			return last.Received, nil // replayed as it was, and the replay is gone: the same data
		}
		return Received{}, dataGone{fmt.Sprintf("the order's last credit event, sequence %d of stream %s, was dead-lettered, and its replay or edit is not among the %d messages of the shop after it",
			st.CreditSeq, name, read)}
	}
	// A cancel: the data is the newest order.created or order.updated of the order before it that
	// was not only dead-lettered.
	var found *orderEvent
	b := streamscan.Back{Stream: s, Filters: data, Limit: scan}
	res, err := b.Run(ctx, st.CreditSeq, func(m jetstream.Msg, seq uint64) error {
		md, _ := m.Metadata()
		ev, ok := readOrderEvent(m.Subject(), m.Headers(), m.Data(), seq, md.Timestamp)
		if !ok || ev.order != orderID || !ev.isData() {
			return nil
		}
		if deadLettered, handled := fate(history, ev.Source, ev.ID); deadLettered && !handled {
			return nil
		}
		found = &ev
		return nil
	}, func() bool { return found != nil })
	if err != nil {
		return Received{}, err
	}
	if found != nil {
		return found.Received, nil
	}
	if res.Limited {
		return Received{}, scanLimited{fmt.Sprintf("no order.created or order.updated of the order among the last %d of the shop's before its cancel (sequence %d of stream %s), and more remain",
			res.Read, st.CreditSeq, name)}
	}
	return Received{}, dataGone{fmt.Sprintf("no order.created or order.updated of the order is left in stream %s before its cancel (sequence %d): %s",
		name, st.CreditSeq, retentionWords(info))}
}

// retentionWords says why a message may have left a stream: its age limit, or a deletion.
func retentionWords(info *jetstream.StreamInfo) string {
	maxAge := info.Config.MaxAge
	switch {
	case maxAge == 0:
		return fmt.Sprintf("it was deleted (the stream has no age limit; its first message is now sequence %d)", info.State.FirstSeq)
	case maxAge%(24*time.Hour) == 0:
		return fmt.Sprintf("the stream keeps messages for %d days (its first is now sequence %d)", maxAge/(24*time.Hour), info.State.FirstSeq)
	}
	return fmt.Sprintf("the stream keeps messages for %s (its first is now sequence %d)", maxAge, info.State.FirstSeq)
}
