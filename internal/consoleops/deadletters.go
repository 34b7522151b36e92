package consoleops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/console"
	"github.com/atodene-worker/atodene-worker/internal/deadletter"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/operator"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/streamscan"
)

// letterOf is the console's view of a dead letter.
func letterOf(l deadletter.Letter, body bool) console.Letter {
	out := console.Letter{Seq: l.Seq, Reason: l.Reason, Shop: l.Shop, Order: l.Order, Subject: l.Subject, Error: l.Error, At: l.FailedAt}
	if body {
		out.Body = l.Body
	}
	return out
}

// List returns the dead letters that match f, oldest first, without their bodies (the newest
// MaxListed of them when more match: the page says "the newest N of M", M its reason's count),
// and how many letters each reason holds among those that match f but its reason (the tabs of
// the list): every reason of the worker, 0 included, and any other a letter carries. It reads the
// letters' headers, and the bodies of those it returns only (all of them with a shop filter: the
// shop is read from the body), holding at most MaxListed (deadletter.Queue.List). A filter no
// letter can match (a reason that is none, Until not after Since) is a *deadletter.FilterError; a
// missing stream wraps jetstream.ErrStreamNotFound; other errors are the server's, or ctx's end.
func (o *Ops) List(ctx context.Context, f console.LetterFilter) ([]console.Letter, map[string]int, error) {
	filter := deadletter.Filter{Reason: f.Reason, Shop: f.Shop, Since: f.Since, Until: f.Until, Limit: MaxListed, Newest: true}
	page, err := o.letters.List(ctx, filter)
	if err != nil {
		return nil, nil, err
	}
	out := make([]console.Letter, 0, len(page.Letters))
	for _, l := range page.Letters {
		out = append(out, letterOf(l, false))
	}
	return out, page.Counts, nil
}

// MaxListed bounds the letters List returns, and reads with their bodies: the newest of those
// that match (the counts count them all).
const MaxListed = 1000

// Get returns the dead letter of sequence seq with its body, byte for byte (it holds the buyer's
// personal data). A sequence that holds none is an error that errors.Is deadletter.ErrNotFound
// and says "no dead letter SEQ in stream DLQ"; other errors are the server's, or ctx's end.
func (o *Ops) Get(ctx context.Context, seq uint64) (console.Letter, error) {
	shown, err := o.letters.Get(ctx, seq)
	if err != nil {
		return console.Letter{}, err
	}
	return letterOf(shown.Letter, true), nil
}

// missing is the outcome of a sequence that holds no dead letter (replayed or purged meanwhile).
func (o *Ops) missing(seq uint64) console.Outcome {
	return console.Outcome{Reason: fmt.Sprintf("no dead letter %d in stream %s", seq, o.letters.Stream())}
}

// lookUp reads the letters of seqs, each once, and returns them with the outcomes of seqs (one
// per sequence, in the order given) filled in for the sequences that hold none, and the index of
// each sequence's letter among those read.
func (o *Ops) lookUp(ctx context.Context, seqs []uint64) ([]deadletter.Letter, []console.Outcome, map[uint64]int, error) {
	var unique []uint64
	seen := map[uint64]bool{}
	for _, seq := range seqs {
		if !seen[seq] {
			seen[seq] = true
			unique = append(unique, seq)
		}
	}
	found, gone, err := o.letters.Letters(ctx, unique)
	if err != nil {
		return nil, nil, nil, err
	}
	at := make(map[uint64]int, len(found))
	for i, l := range found {
		at[l.Seq] = i
	}
	isGone := map[uint64]bool{}
	for _, seq := range gone {
		isGone[seq] = true
	}
	out := make([]console.Outcome, len(seqs))
	for i, seq := range seqs {
		if isGone[seq] {
			out[i] = o.missing(seq)
		}
	}
	return found, out, at, nil
}

// Replay re-publishes the dead letters of seqs to their original subjects and removes each once
// the server acknowledged it (deadletter.Queue.Replay), or, when dryRun, says which it would
// replay and changes nothing. It returns one Outcome per sequence, in the order given: published
// (in a dry run: would be), or refused with the reason: no dead letter of the sequence ("no dead
// letter N in stream DLQ"), a letter replayed Config.MaxReplays times already or that cannot be
// replayed as it is (deadletter.Letter.Refusal), or one gone meanwhile (purged, or replayed, by
// someone else since it was looked up: not published). A letter gone because it was replayed
// (the same replay sent twice: a double click, the browser's resend) is a duplicate: published,
// with the message ID of the replay the inbound stream holds, and nothing published again
// ("duplicate: dead letter N was replayed already and removed; …"), when that replay is within
// the stream's duplicate window (replayedBefore). The operator is
// who asks (the console logs it); a replay publishes the letter's body as it is.
//
// Each letter replayed that names an order gets an entry of type ReplayedType in the order's
// history, with the operator and no personal data; an entry that cannot be written is said in the
// letter's Reason.
//
// The error is the server's, or ctx's end: the replay stops at it, and the outcomes returned with
// it say what was done (a letter not reached is refused with "not replayed: …").
func (o *Ops) Replay(ctx context.Context, operatorName string, seqs []uint64, dryRun bool) ([]console.Outcome, error) {
	found, out, at, err := o.lookUp(ctx, seqs)
	if err != nil {
		return nil, err
	}
	res, err := o.letters.Replay(ctx, found, deadletter.ReplayOptions{MaxReplays: o.cfg.MaxReplays, DryRun: dryRun})
	noted := map[int]string{}
	replays := map[uint64]replayCopy{} // the replays found of the letters gone, by sequence
	for i, seq := range seqs {
		j, ok := at[seq]
		if !ok || j < len(res.Letters) && res.Letters[j].Gone {
			// A letter gone (before the look-up, or since): the same replay sent twice (a double
			// click, the browser's resend) finds it removed by the first; nothing is published.
			gone, subject := out[i], ""
			if ok {
				l := found[j]
				gone = console.Outcome{Shop: l.Shop, Order: l.Order, Reason: res.Letters[j].Reason}
				subject = l.Subject // its replay went there: the scan reads that subject only
			}
			hit, seen := replays[seq]
			if !seen {
				var rerr error
				if hit, rerr = o.replayedBefore(ctx, seq, subject); rerr != nil {
					gone.Reason += fmt.Sprintf("; whether it was replayed before could not be read: %v", rerr)
				}
				replays[seq] = hit
			}
			out[i] = o.replayGone(seq, gone, hit, dryRun)
			continue
		}
		l := found[j]
		oc := console.Outcome{Shop: l.Shop, Order: l.Order}
		var r deadletter.Outcome
		if j < len(res.Letters) {
			r = res.Letters[j]
		}
		switch {
		case r.Replayed && dryRun:
			oc.Published, oc.Reason = true, fmt.Sprintf("would be replayed to %s (dry run: nothing published)", l.Subject)
		case r.Replayed:
			oc.Published, oc.Reason = true, fmt.Sprintf("replayed to %s; dead letter %d removed", l.Subject, l.Seq)
			if _, ok := noted[j]; !ok { // a sequence given twice is one letter, recorded once
				noted[j] = o.record(ctx, operatorName, ReplayedType, l, fmt.Sprintf("dead letter %d (%s) replayed to %s in the console", l.Seq, l.Reason, l.Subject))
			}
			oc.Reason += noted[j]
		case r.Refused, r.Gone:
			oc.Reason = r.Reason
		default:
			oc.Reason = fmt.Sprintf("not replayed: the replay stopped at a failure before dead letter %d, which is kept", l.Seq)
		}
		out[i] = oc
	}
	return out, err
}

// Purge deletes the dead letters of seqs for good and returns one Outcome per sequence, in the
// order given: published (deleted), or refused for a sequence that holds no dead letter ("no dead
// letter N in stream DLQ"). The operator is who asks (the console logs it).
//
// Each letter purged that names an order gets an entry of type PurgedType in the order's history,
// as Replay's.
//
// The error is the server's, or ctx's end: the purge stops at it, and the outcomes returned with
// it say what was done (a letter not reached is refused with "not purged: …").
func (o *Ops) Purge(ctx context.Context, operatorName string, seqs []uint64) ([]console.Outcome, error) {
	found, out, at, err := o.lookUp(ctx, seqs)
	if err != nil {
		return nil, err
	}
	deleted, err := o.letters.Purge(ctx, found, nil)
	noted := map[int]string{}
	for i, seq := range seqs {
		j, ok := at[seq]
		if !ok {
			continue
		}
		l := found[j]
		oc := console.Outcome{Shop: l.Shop, Order: l.Order}
		if j < deleted {
			oc.Published, oc.Reason = true, fmt.Sprintf("dead letter %d purged", l.Seq)
			if _, ok := noted[j]; !ok {
				noted[j] = o.record(ctx, operatorName, PurgedType, l, fmt.Sprintf("dead letter %d (%s) purged in the console", l.Seq, l.Reason))
			}
			oc.Reason += noted[j]
		} else {
			oc.Reason = fmt.Sprintf("not purged: the purge stopped at a failure before dead letter %d, which is kept", l.Seq)
		}
		out[i] = oc
	}
	return out, err
}

// replayCopy is a replay of a dead letter found in the inbound stream.
type replayCopy struct {
	stream      string
	seq         uint64
	msgID       string
	shop, order string
}

// replayGone is the Outcome of the replay of dead letter seq, which is gone (gone: the outcome
// said so far): when the inbound stream holds a replay of it (hit, from replayedBefore), it was
// replayed already: a duplicate, published (in a dry run: not, nothing would be), with that
// event's message ID, and nothing published again. Otherwise gone, as it is.
func (o *Ops) replayGone(seq uint64, gone console.Outcome, hit replayCopy, dryRun bool) console.Outcome {
	if hit.msgID == "" {
		return gone
	}
	out := console.Outcome{Shop: hit.shop, Order: hit.order, MsgID: hit.msgID}
	if dryRun {
		out.Reason = fmt.Sprintf("dead letter %d was replayed already and removed (stream %s, sequence %d): nothing would be published", seq, hit.stream, hit.seq)
		return out
	}
	out.Published = true
	out.Reason = fmt.Sprintf("duplicate: dead letter %d was replayed already and removed; its replay stands: stream %s, sequence %d (nothing published again)",
		seq, hit.stream, hit.seq)
	return out
}

// replayedBefore looks in the inbound stream, newest first, among the messages stored within the
// stream's duplicate window (at most editScanLimit of them) on subject, the letter's original
// subject, where its replay went ("": unknown, the letter gone before it was looked up: every
// subject), for the replay of dead letter seq: its message ID replay:DLQ:SEQ:N
// (deadletter.Queue.Replay). A subject the inbound stream does not take (a due re-check's: its
// replay went to the poll stream) holds no replay there: none is looked for. The letter's
// sequence is the DLQ stream's own: a replay stored before the DLQ stream was created (again) is
// of another letter, and is no such replay. A replay older than the duplicate window is not
// looked for: the letter is then said gone, as before. The window is the server's clock (the
// stream's times).
func (o *Ops) replayedBefore(ctx context.Context, seq uint64, subject string) (replayCopy, error) {
	var hit replayCopy
	letters, err := o.cfg.JetStream.Stream(ctx, o.letters.Stream())
	if err != nil {
		return hit, fmt.Errorf("opening stream %s: %w", o.letters.Stream(), err)
	}
	created := letters.CachedInfo().Created
	s, window, err := o.inbound(ctx)
	if err != nil {
		return hit, err
	}
	var filters []string
	if subject != "" {
		if subjects := s.CachedInfo().Config.Subjects; len(subjects) > 0 && !takes(subjects, subject) {
			return hit, nil
		}
		filters = []string{subject}
	}
	since := time.Now().Add(-window)
	if created.After(since) {
		since = created
	}
	floor, err := streamscan.FirstSince(ctx, s, filters, since)
	if err != nil || floor == 0 {
		return hit, err
	}
	prefix := fmt.Sprintf("replay:%s:%d:", o.letters.Stream(), seq)
	_, err = streamscan.Back{Stream: s, Filters: filters, Floor: floor, Limit: editScanLimit}.Run(ctx, 0,
		func(m jetstream.Msg, at uint64) error {
			id := m.Headers().Get(jetstream.MsgIDHeader)
			if !strings.HasPrefix(id, prefix) {
				return nil
			}
			if md, err := m.Metadata(); err != nil || md.Timestamp.Before(created) {
				return nil
			}
			shop, order := orderOf(m.Data())
			hit = replayCopy{stream: s.CachedInfo().Config.Name, seq: at, msgID: id, shop: shop, order: order}
			return nil
		}, func() bool { return hit.msgID != "" })
	return hit, err
}

// takes says whether a stream of the subjects patterns (NATS wildcards * and >) stores subject, a
// subject with no wildcard.
func takes(patterns []string, subject string) bool {
	tokens := strings.Split(subject, ".")
	for _, p := range patterns {
		pt := strings.Split(p, ".")
		match := len(pt) == len(tokens)
		for i, tok := range pt {
			if tok == ">" {
				match = i < len(tokens)
				break
			}
			if i >= len(tokens) || tok != "*" && tok != tokens[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// The types of the history entries of the dead letters an operator replayed or purged.
const (
	ReplayedType = "console.dlq_replayed"
	PurgedType   = "console.dlq_purged"
)

// record appends to the history of the order letter l names the entry of type typ saying did,
// by operatorName, as the console's audit entries are kept: as long as the order's state, or,
// for an order without one, as long as the records of events. It returns "" when written or
// there is no order, else what to add to the letter's outcome.
func (o *Ops) record(ctx context.Context, operatorName, typ string, l deadletter.Letter, did string) string {
	if !events.ValidShopID(l.Shop) || !events.ValidOrderID(l.Order) {
		return ""
	}
	st, err := o.cfg.Store.Get(ctx, l.Shop, l.Order)
	if err == nil {
		e := orderstate.Entry{At: o.cfg.Now().UTC(), Type: typ, Source: Source(operatorName), Operator: operatorName, Did: did, Status: st.Status}
		ttl := config.EventRecordTTL
		if st.Version > 0 {
			ttl = 0
		}
		err = o.cfg.Store.AppendHistory(ctx, l.Shop, l.Order, e, ttl)
	}
	if err != nil {
		return fmt.Sprintf("; the entry in the history of order %s of shop %s could not be written: %v", l.Order, l.Shop, err)
	}
	return ""
}

// EditReplay publishes body, the event of dead letter seq as the operator corrected it (a whole
// CloudEvent, or its data object alone), in place of the letter (deadletter.Queue.Edit): validated
// as the worker validates it, published to the subject of its type and shop as a replay of the
// letter, and the letter removed. An event without a source gets console/operator/NAME; one
// without a time, Config.Now.
//
// The Outcome is published (with the Nats-Msg-Id edit:DLQ:SEQ:N; a duplicate of an edit published
// before counts as published, and its Reason says so: also when the letter is gone because the
// first copy of a form sent twice removed it, editGone), or refused with the reason, the letter
// kept: an operator name that is not one, a letter that is not an inbound event (a replay
// re-publishes it), a blank body, an event the worker would reject (every problem named), one
// larger than the server takes. No dead letter of the sequence, and no edit of it found, is
// refused too, the letter said gone. The error is the server's, or ctx's end; one
// after the publish (the letter not removed) comes with the published Outcome.
func (o *Ops) EditReplay(ctx context.Context, operatorName string, seq uint64, body []byte) (console.Outcome, error) {
	shop, order := orderOf(body)
	if !operator.ValidName(operatorName) {
		return console.Outcome{Shop: shop, Order: order, Reason: fmt.Sprintf("operator %q: want a login name or e-mail address (1-64 of A-Z, a-z, 0-9 and . _ @ + -): nothing published; dead letter %d is kept",
			operatorName, seq)}, nil
	}
	res, err := o.letters.Edit(ctx, seq, body, deadletter.EditOptions{Source: Source(operatorName), Now: o.cfg.Now})
	if errors.Is(err, deadletter.ErrNotFound) {
		return o.editGone(ctx, seq, shop, order, err)
	}
	if why := editRefusal(err); why != "" {
		if !strings.Contains(why, "nothing published") {
			why += ": nothing published"
		}
		return console.Outcome{Shop: shop, Order: order, Reason: why + fmt.Sprintf("; dead letter %d is kept", seq)}, nil
	}
	if _, s, perr := events.ParseSubject(res.Subject); perr == nil {
		shop = s // the corrected event's shop, which may differ from the letter's
	}
	out := console.Outcome{Shop: shop, Order: order, MsgID: res.MsgID}
	if res.Stream == "" { // not published
		return out, err
	}
	out.Published = true
	switch {
	case res.Duplicate:
		out.Reason = fmt.Sprintf("duplicate: stream %s holds an edit of dead letter %d already (sequence %d), published before; it stands", res.Stream, seq, res.Sequence)
	default:
		out.Reason = fmt.Sprintf("published %s %s to %s in place of dead letter %d: stream %s, sequence %d", res.Type, res.ID, res.Subject, seq, res.Stream, res.Sequence)
	}
	if res.Removed {
		out.Reason += fmt.Sprintf("; dead letter %d removed", seq)
	}
	return out, err
}

// editGone is the Outcome of an edit of dead letter seq, which is gone (gone is Edit's error): a
// copy of the same edit sent twice (a double click, the browser's resend) finds the letter removed
// by the first. When the inbound stream holds, within its duplicate window, an edit published in
// place of the letter for the same order, the edit is a duplicate: published, with that event's
// message ID. Otherwise nothing is published and the letter is gone (replayed, edited or purged
// before); never "kept". The error is the server's, when the stream cannot be read.
func (o *Ops) editGone(ctx context.Context, seq uint64, shop, order string, gone error) (console.Outcome, error) {
	out := console.Outcome{Shop: shop, Order: order}
	hit, err := o.editedBefore(ctx, seq, shop, order)
	switch {
	case err != nil:
		out.Reason = fmt.Sprintf("%v: nothing published; whether an edit of it was published before could not be read", gone)
		return out, err
	case hit.msgID != "":
		out.Published, out.MsgID = true, hit.msgID
		out.Reason = fmt.Sprintf("duplicate: dead letter %d was edited already and removed; its edit stands: stream %s, sequence %d (nothing published again)",
			seq, hit.stream, hit.seq)
	default:
		out.Reason = fmt.Sprintf("%v: nothing published; the letter is gone (replayed, edited or purged before)", gone)
	}
	return out, nil
}

// editScanLimit bounds the messages editedBefore reads.
const editScanLimit = 100000

// editCopy is an edit found in the inbound stream.
type editCopy struct {
	stream string
	seq    uint64
	msgID  string
}

// editedBefore looks in the inbound stream, newest first, among the messages of shop (all when it
// is not a shop ID) stored within the stream's duplicate window (at most editScanLimit of them),
// for an edit published in place of dead letter seq (its message ID edit:DLQ:SEQ:N and its
// Dlq-Edited-From header) for the order shop/order. The letter's sequence alone decides nothing
// (the DLQ stream created again starts at 1 again): the order must be the same. The window is
// the server's clock (the stream's times), not Config.Now.
func (o *Ops) editedBefore(ctx context.Context, seq uint64, shop, order string) (editCopy, error) {
	var hit editCopy
	if !events.ValidShopID(shop) || !events.ValidOrderID(order) {
		return hit, nil
	}
	s, window, err := o.inbound(ctx)
	if err != nil {
		return hit, err
	}
	filters := []string{"*.*." + shop}
	floor, err := streamscan.FirstSince(ctx, s, filters, time.Now().Add(-window))
	if err != nil || floor == 0 {
		return hit, err
	}
	prefix := fmt.Sprintf("edit:%s:%d:", o.letters.Stream(), seq)
	from := strconv.FormatUint(seq, 10)
	_, err = streamscan.Back{Stream: s, Filters: filters, Floor: floor, Limit: editScanLimit}.Run(ctx, 0,
		func(m jetstream.Msg, at uint64) error {
			h := m.Headers()
			id := h.Get(jetstream.MsgIDHeader)
			if !strings.HasPrefix(id, prefix) || h.Get(dlq.HeaderEditedFrom) != from {
				return nil
			}
			if sh, or := orderOf(m.Data()); sh == shop && or == order {
				hit = editCopy{stream: s.CachedInfo().Config.Name, seq: at, msgID: id}
			}
			return nil
		}, func() bool { return hit.msgID != "" })
	return hit, err
}

// editRefusal says why Edit refused, for the refusals that keep the letter and are no failure of
// the server; "" for none.
func editRefusal(err error) string {
	var ie *events.InvalidError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ie):
		return "event rejected: " + problemText(ie.Problems)
	case errors.Is(err, deadletter.ErrNotFound), errors.Is(err, deadletter.ErrNotEditable),
		errors.Is(err, deadletter.ErrEmpty), errors.Is(err, deadletter.ErrTooLarge):
		return err.Error()
	}
	return ""
}

// problemText joins the problems of a rejected event into one line.
func problemText(problems []events.Problem) string {
	parts := make([]string, len(problems))
	for i, p := range problems {
		parts[i] = p.Field + ": " + p.Reason
	}
	return strings.Join(parts, "; ")
}

// orderOf reads the shop and order of an event as an operator gave it: a whole CloudEvent, or its
// data object alone; empty where it names none.
func orderOf(body []byte) (shop, order string) {
	var ids struct {
		ShopID  string `json:"shop_id"`
		OrderID string `json:"order_id"`
		Data    *struct {
			ShopID  string `json:"shop_id"`
			OrderID string `json:"order_id"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &ids) != nil {
		return "", ""
	}
	if ids.Data != nil {
		return ids.Data.ShopID, ids.Data.OrderID
	}
	return ids.ShopID, ids.OrderID
}

// inbound opens the inbound stream and returns it with its duplicate window (the server's default,
// 2 minutes, when the stream sets none): the window within which a copy of what the console
// published can still be found there.
func (o *Ops) inbound(ctx context.Context) (jetstream.Stream, time.Duration, error) {
	s, err := o.cfg.JetStream.Stream(ctx, o.cfg.Inbound)
	if err != nil {
		return nil, 0, fmt.Errorf("opening stream %s: %w", o.cfg.Inbound, err)
	}
	window := s.CachedInfo().Config.Duplicates
	if window <= 0 {
		window = 2 * time.Minute // the server's default
	}
	return s, window, nil
}
