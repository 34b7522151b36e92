// Package deadletter is the operators' dead-letter operations on the worker's dead-letter stream
// (DLQ), for the publisher command and the operators' console alike: list the letters that match
// a filter, with counts per reason; show one; replay letters to their original subjects (or plan
// the replay, in a dry run), refusing those replayed too often; purge letters; and publish a
// corrected event in place of a letter (edit). internal/dlq writes the letters; this package reads
// and acts on them (docs/operations.md#dead-letters).
package deadletter

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/tracing"
	"github.com/atodene-worker/atodene-worker/internal/tracing/natstrace"
)

// DefaultStream is the name of the worker's dead-letter stream.
const DefaultStream = "DLQ"

// Queue is the dead-letter stream of a NATS server. It is safe for concurrent use.
type Queue struct {
	js     jetstream.JetStream
	stream string
}

// New returns the dead-letter stream named stream ("": DefaultStream) of the server js talks to.
func New(js jetstream.JetStream, stream string) *Queue {
	if stream == "" {
		stream = DefaultStream
	}
	return &Queue{js: js, stream: stream}
}

// Stream returns the stream's name.
func (q *Queue) Stream() string { return q.stream }

// Letter is a dead letter as the operators see it, read from its Dlq-* headers: counts and
// sequences are 0 where the header is missing or unreadable. The headers are checked against the
// message as the stream stored it (letterOf): Subject is the subject it is stored on without its
// "dlq." prefix where Dlq-Original-Subject is missing, FailedAt the time it was stored where
// Dlq-Failed-At is missing or unreadable, and Unreplayable says why a replay must refuse it. Its
// JSON is what `publisher dlq ls -json` prints (times RFC 3339); Body, the original event, holds the
// buyer's personal data and is left out of it.
type Letter struct {
	Seq         uint64    `json:"seq"` // its sequence in the dead-letter stream
	Subject     string    `json:"original_subject"`
	Stream      string    `json:"original_stream"`
	OrigSeq     uint64    `json:"original_sequence"`
	Reason      string    `json:"reason"`
	Error       string    `json:"error"`
	Attempts    int       `json:"attempts"`
	FailedAt    time.Time `json:"failed_at"`
	ReplayCount int       `json:"replay_count"`
	// Published is the sequence the event had when it was first published (Dlq-Published-Sequence).
	Published uint64 `json:"published_sequence,omitempty"`
	// PublishedCreated is when the stream of Published was created (Dlq-Published-Stream-Created).
	PublishedCreated string `json:"published_stream_created,omitempty"`
	Shop             string `json:"shop"`
	Order            string `json:"order"`
	// Unreplayable says why the letter cannot be replayed as it is, "" when it can: its
	// Dlq-Original-Subject disagrees with the subject it is stored on, its original subject is
	// none the worker consumes (replayable), or its Dlq-Replay-Count is no count. A replay refuses
	// it (Refusal); an edit (dlq edit) or a purge are left.
	Unreplayable string `json:"unreplayable,omitempty"`
	// Refused is why a replay refused the letter (Refusal), in ReplayResult.RefusedLetters only.
	Refused string `json:"refused,omitempty"`
	Body    []byte `json:"-"`
	// traceParent and traceState are the letter's trace context (its headers' traceparent and
	// tracestate, set by a worker that traces): its replay carries them on, so that the worker's
	// handling of the replay joins the event's trace.
	traceParent, traceState string
	// storedAt is when the stream stored the letter; bodiless says it was read without its Body
	// (AllHeaders): a replay reads the body back from the stream just before its publish.
	storedAt time.Time
	bodiless bool
}

// letterOf reads a message of the dead-letter stream, stored on subject at stored. Its headers are
// written by the worker, but anyone who may publish to the stream may write them: where they
// disagree with what the server says of the message, the server wins, and a letter whose headers
// would send a replay elsewhere than the letter's subject, or past the max-replays guard, is
// Unreplayable.
func letterOf(seq uint64, subject string, stored time.Time, h nats.Header, body []byte) Letter {
	l := Letter{Seq: seq, Subject: h.Get(dlq.HeaderOriginalSubject), Stream: h.Get(dlq.HeaderOriginalStream),
		Reason: h.Get(dlq.HeaderReason), Error: h.Get(dlq.HeaderError), Body: body,
		traceParent: h.Get(natstrace.HeaderTraceParent), traceState: h.Get(natstrace.HeaderTraceState), storedAt: stored}
	var problems []string
	original, ok := strings.CutPrefix(subject, dlq.SubjectPrefix)
	switch {
	case !ok:
		problems = append(problems, fmt.Sprintf("it is stored on %s, outside %s>", tracing.Clip(subject), dlq.SubjectPrefix))
	case l.Subject == "": // a letter of another writer, or its header lost: its subject says where it came from
		l.Subject = original
	case l.Subject != original:
		problems = append(problems, fmt.Sprintf("its %s %s disagrees with the subject it is stored on, %s", dlq.HeaderOriginalSubject, tracing.Clip(l.Subject), tracing.Clip(subject)))
		l.Subject = original
	}
	if len(problems) == 0 && !replayable(l.Subject) {
		problems = append(problems, fmt.Sprintf("its original subject %s is none the worker consumes (%s)", tracing.Clip(l.Subject), strings.Join(replayableSubjects, ", ")))
	}
	l.OrigSeq, _ = strconv.ParseUint(h.Get(dlq.HeaderOriginalSequence), 10, 64)
	l.Attempts, _ = strconv.Atoi(h.Get(dlq.HeaderAttempts))
	var err error
	if l.FailedAt, err = time.Parse(time.RFC3339, h.Get(dlq.HeaderFailedAt)); err != nil {
		l.FailedAt = stored.UTC() // a letter is stored when it fails
	}
	if count, ok := dlq.ParseReplayCount(h.Get(dlq.HeaderReplayCount)); ok {
		l.ReplayCount = int(count)
	} else {
		problems = append(problems, fmt.Sprintf("its %s %q is no count of replays", dlq.HeaderReplayCount, h.Get(dlq.HeaderReplayCount)))
	}
	l.Unreplayable = strings.Join(problems, "; ")
	l.Published, _ = strconv.ParseUint(h.Get(dlq.HeaderPublishedSequence), 10, 64)
	l.PublishedCreated = h.Get(dlq.HeaderPublishedStreamCreated)
	l.Shop, l.Order = subjectOrder(l.Subject)
	l.Shop, l.Order = orderOf(body, l.Shop, l.Order)
	return l
}

// pollDuePrefix is the subject prefix of the worker's due re-checks and timers.
const pollDuePrefix = "atodene.poll.due."

// subjectOrder is the shop and order that a letter's original subject names: an inbound event's
// (orders.<kind>.<shop>) names its shop only, its order being its body's; a due re-check's or
// timer's (atodene.poll.due.<shop>.<order, unpadded base64url>[.<kind>]) names both. Another
// subject's third token is taken for its shop.
func subjectOrder(subject string) (shop, order string) {
	if rest, ok := strings.CutPrefix(subject, pollDuePrefix); ok {
		tokens := strings.Split(rest, ".")
		if len(tokens) >= 2 {
			if raw, err := base64.RawURLEncoding.DecodeString(tokens[1]); err == nil && events.ValidOrderID(string(raw)) {
				order = string(raw)
			}
		}
		return tokens[0], order
	}
	if parts := strings.Split(subject, "."); len(parts) >= 3 {
		shop = parts[2]
	}
	return shop, ""
}

// replayableSubjects are the subjects a letter can hold, the only ones a replay publishes to: the
// inbound events (orders.>) and the worker's own due re-checks (atodene.poll.due.>). The worker
// dead-letters nothing else that a replay could help: a letter naming another subject (credit.ok.…,
// say: an outcome) was not written by it, and its replay would forge that subject's messages.
var replayableSubjects = []string{"orders.>", "atodene.poll.due.>"}

// replayable says whether subject is a subject of replayableSubjects, with no empty token, no
// wildcard and no white space.
func replayable(subject string) bool {
	if !strings.HasPrefix(subject, "orders.") && !strings.HasPrefix(subject, "atodene.poll.due.") {
		return false
	}
	for tok := range strings.SplitSeq(subject, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			return false
		}
	}
	return true
}

// orderOf finds the shop and order of a dead letter: from its event data (the order; the shop is
// the subject's), or from a poll body (both); shop and order, from its subject (subjectOrder), where
// the body names none (a letter read without its body, say).
func orderOf(body []byte, shop, order string) (string, string) {
	var env struct {
		Data struct {
			ShopID  string `json:"shop_id"`
			OrderID string `json:"order_id"`
		} `json:"data"`
		Shop    string `json:"shop"`
		OrderID string `json:"order_id"`
	}
	if json.Unmarshal(body, &env) != nil {
		return shop, order
	}
	if env.Data.OrderID != "" {
		return shop, env.Data.OrderID
	}
	if env.OrderID != "" { // a poll request
		return env.Shop, env.OrderID
	}
	return shop, order
}

// Filter selects dead letters; every condition given must match.
type Filter struct {
	// Subject is the original subject, NATS wildcards * and > allowed, without the "dlq." prefix.
	Subject string
	// Reason is a dead-letter reason (handlers.Reasons).
	Reason string
	// Shop and Order are the letter's (Letter.Shop, Letter.Order): an inbound event's shop is its
	// subject's and its order its body's; a due re-check's (a poll letter's) are its body's, or its
	// subject's where the body names none. Either filter reads each letter's body.
	Shop, Order string
	// Since and Until bound the time the letter failed: Since inclusive, Until exclusive. Zero
	// leaves a bound open.
	Since, Until time.Time
	// Limit is the most letters List returns (0: DefaultLimit; less than 0: all). All, Counts and
	// the filter's matching ignore it.
	Limit int
	// Newest makes List keep the newest Limit letters that match rather than the oldest.
	Newest bool
}

// FilterError is a filter that no dead letter can match: a reason that is none, a subject that
// is no original subject, a time window that is empty. Field is "reason", "subject" or "until".
type FilterError struct {
	Field   string
	Problem string
}

func (e *FilterError) Error() string { return "dead-letter filter: " + e.Field + " " + e.Problem }

// Check reports a filter that no dead letter can match as a *FilterError: an empty list would
// look like good news.
func (f Filter) Check() error {
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return &FilterError{"until", fmt.Sprintf("%s is not after since %s: no dead letter can match", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))}
	}
	if f.Reason != "" && !slices.Contains(handlers.Reasons(), f.Reason) {
		return &FilterError{"reason", fmt.Sprintf("is not a dead-letter reason: want one of %s", strings.Join(handlers.Reasons(), ", "))}
	}
	if problem := subjectProblem(f.Subject); problem != "" {
		return &FilterError{"subject", problem}
	}
	return nil
}

// subjectProblem says what keeps an original-subject filter from matching any dead letter, or ""
// when nothing does. The server would refuse some of these with an error that names the
// "dlq."-prefixed subject the operator never typed, and match nothing for the others.
func subjectProblem(subject string) string {
	if subject == "" {
		return ""
	}
	if rest, ok := strings.CutPrefix(subject, dlq.SubjectPrefix); ok {
		return fmt.Sprintf("is the original subject, without %q: -subject %s", dlq.SubjectPrefix, rest)
	}
	tokens := strings.Split(subject, ".")
	for i, tok := range tokens {
		switch {
		case tok == "":
			return "has an empty token (two dots, or a dot at an end)"
		case strings.ContainsAny(tok, " \t\r\n"):
			return "holds white space"
		case tok == ">" && i < len(tokens)-1:
			return "has > before its last token (> matches the rest of a subject)"
		}
	}
	return ""
}

// streamSubject narrows the read to the subject filter, so the server does the filtering.
func (f Filter) streamSubject() string {
	if f.Subject == "" {
		return dlq.SubjectPrefix + ">"
	}
	return dlq.SubjectPrefix + f.Subject
}

func (f Filter) match(l Letter) bool {
	return (f.Reason == "" || l.Reason == f.Reason) && (f.Shop == "" || l.Shop == f.Shop) &&
		(f.Order == "" || l.Order == f.Order) &&
		(f.Since.IsZero() || !l.FailedAt.Before(f.Since)) && (f.Until.IsZero() || l.FailedAt.Before(f.Until))
}

// open opens the dead-letter stream; a missing stream is an error wrapping
// jetstream.ErrStreamNotFound.
func (q *Queue) open(ctx context.Context) (jetstream.Stream, error) {
	s, err := q.js.Stream(ctx, q.stream)
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", q.stream, err)
	}
	return s, nil
}

// DefaultLimit is the most letters List returns when Filter.Limit is 0: a page an operator reads.
const DefaultLimit = 1000

// Listing is what List read: at most the filter's limit of the letters that match it, oldest
// first, and how many match in all.
type Listing struct {
	// Letters are the letters that match, bodies included: the oldest Limit of them, or the newest
	// with Filter.Newest, oldest first either way. A letter removed between List's two reads (replayed
	// or purged meanwhile) is left out, though Matching counts it.
	Letters []Letter
	// Matching is how many letters matched the filter when the stream was read.
	Matching int
	// Truncated says the limit left letters out: Letters shows Limit of Matching.
	Truncated bool
	// Counts is how many letters each reason holds among those that match the filter but its
	// Reason (CountReasons: every reason, 0 included).
	Counts map[string]int
}

// List returns the dead letters that match f, at most f.Limit of them (0: DefaultLimit; less
// than 0: all, as All), oldest first, bodies included, and how many match in all (Listing). It
// holds no more than the limit of bodies at once, and reads no bodies but those it returns when
// f has no Shop nor Order (which take the letters' bodies: Filter.Shop): it reads the matching
// letters' headers first, then the bodies of those it keeps, one by one. A filter no letter can match is a
// *FilterError, before the server is asked; a missing stream wraps jetstream.ErrStreamNotFound;
// other errors are the server's, or ctx's end.
func (q *Queue) List(ctx context.Context, f Filter) (Listing, error) {
	limit := f.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	return q.list(ctx, f, limit, true)
}

// All returns every dead letter that matches f, oldest first, bodies included, holding them all
// at once: a read for tests and small streams only, which check the letters whole (their bodies,
// a replay given its letters with their bodies). Nothing of the publisher or the console uses it:
// dlq replay and dlq purge select by AllHeaders (Replay reads each body back), and the listings
// read through List, bounded.
func (q *Queue) All(ctx context.Context, f Filter) ([]Letter, error) {
	res, err := q.list(ctx, f, -1, true)
	return res.Letters, err
}

// AllHeaders returns every dead letter that matches f, oldest first, without its Body: the
// selection of a purge, which needs the sequences only, and of a replay by filter (Replay reads
// each body back just before its publish, holding no more than its window of them). It reads the
// letters' headers only, or, when f has a Shop or an Order (which take the letters' bodies:
// Filter.Shop), each body in turn, holding none.
func (q *Queue) AllHeaders(ctx context.Context, f Filter) ([]Letter, error) {
	res, err := q.list(ctx, f, -1, false)
	return res.Letters, err
}

// list is List with limit (less than 0: none), and the bodies of the letters returned when
// bodies; a limit of 0 reads the counts only.
func (q *Queue) list(ctx context.Context, f Filter, limit int, bodies bool) (Listing, error) {
	if err := f.Check(); err != nil {
		return Listing{}, err
	}
	s, err := q.open(ctx)
	if err != nil {
		return Listing{}, err
	}
	// The order of a letter, and a poll letter's shop, are read from its body (Filter.Shop): a filter
	// of the shop or order reads the bodies, the others the headers only.
	// All (no limit, bodies) reads the bodies at once, rather than one by one after.
	headersOnly := f.Shop == "" && f.Order == "" && (limit >= 0 || !bodies)
	reason := f.Reason
	f.Reason = ""
	res := Listing{Counts: CountReasons(nil)}
	var kept []Letter
	err = q.scan(ctx, s, f.streamSubject(), headersOnly, func(l Letter) {
		if !f.match(l) {
			return
		}
		res.Counts[l.Reason]++
		if reason != "" && l.Reason != reason {
			return
		}
		res.Matching++
		if !bodies {
			l.Body, l.bodiless = nil, true // its Shop and Order are read
		}
		switch {
		case limit < 0 || len(kept) < limit:
			kept = append(kept, l)
		case limit > 0 && f.Newest:
			kept = append(kept[1:], l)
		}
	})
	if err != nil {
		return Listing{}, err
	}
	res.Truncated = limit >= 0 && res.Matching > limit
	if !headersOnly || !bodies {
		res.Letters = kept
		return res, nil
	}
	res.Letters = make([]Letter, 0, len(kept))
	for _, l := range kept {
		m, err := get(ctx, s, q.stream, l.Seq)
		if errors.Is(err, ErrNotFound) {
			continue // replayed or purged since its headers were read
		}
		if err != nil {
			return Listing{}, err
		}
		res.Letters = append(res.Letters, letterOf(m.Sequence, m.Subject, m.Time, m.Header, m.Data))
	}
	return res, nil
}

// scan reads the letters stored on subject, oldest first, and hands each to visit; with
// headersOnly, without its body (its Shop and Order are then those its subject names, subjectOrder:
// an inbound event's Order is ""). Nothing is held but the batch being read.
func (q *Queue) scan(ctx context.Context, s jetstream.Stream, subject string, headersOnly bool, visit func(Letter)) error {
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, HeadersOnly: headersOnly, InactiveThreshold: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("reading stream %s: %w", q.stream, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		msgs, err := c.Fetch(500, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			return fmt.Errorf("reading stream %s: %w", q.stream, err)
		}
		n, left := 0, uint64(0)
		for m := range msgs.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			left = md.NumPending
			var body []byte
			if !headersOnly {
				body = m.Data()
			}
			visit(letterOf(md.Sequence.Stream, m.Subject(), md.Timestamp, m.Headers(), body))
		}
		if err := msgs.Error(); err != nil {
			return fmt.Errorf("reading stream %s: %w", q.stream, err)
		}
		if n == 0 || left == 0 {
			return nil
		}
	}
}

// CountReasons counts letters by reason: every reason of handlers.Reasons, 0 included, and any
// other reason a letter carries (a letter of a newer worker).
func CountReasons(letters []Letter) map[string]int {
	counts := map[string]int{}
	for _, r := range handlers.Reasons() {
		counts[r] = 0
	}
	for _, l := range letters {
		counts[l.Reason]++
	}
	return counts
}

// Counts returns how many letters matching f each reason holds (f.Reason is not applied: the
// counts are the tabs of a list by reason), every reason included. It holds no letter: it reads
// the letters' headers only, or, when f has a Shop or an Order (which take the letters' bodies:
// Filter.Shop), each body in turn. Errors are List's.
func (q *Queue) Counts(ctx context.Context, f Filter) (map[string]int, error) {
	f.Reason = ""
	res, err := q.list(ctx, f, 0, false)
	if err != nil {
		return nil, err
	}
	return res.Counts, nil
}

// ReasonCounts returns how many letters the stream holds by reason, as CountReasons counts them,
// reading the letters' headers only (not their bodies, nor their personal data). A missing stream
// wraps jetstream.ErrStreamNotFound; other errors are the server's, or ctx's end.
func (q *Queue) ReasonCounts(ctx context.Context) (map[string]int, error) {
	return q.ReasonCountsBetween(ctx, 1, math.MaxUint64)
}

// ReasonCountsBetween is ReasonCounts of the letters whose stream sequence is from to to
// (inclusive), so that a caller that counted up to a sequence counts only the letters after it.
func (q *Queue) ReasonCountsBetween(ctx context.Context, from, to uint64) (map[string]int, error) {
	counts := CountReasons(nil)
	s, err := q.open(ctx)
	if err != nil {
		return nil, err
	}
	// The server removes the consumer 5 s after the last fetch: the reads at scrape time would
	// otherwise leave one behind per count.
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true, InactiveThreshold: 5 * time.Second,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: max(from, 1)})
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: %w", q.stream, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		msgs, err := c.FetchNoWait(500)
		if err != nil {
			return nil, fmt.Errorf("reading stream %s: %w", q.stream, err)
		}
		n, left, past := 0, uint64(0), false
		for m := range msgs.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("reading stream %s: a letter without metadata: %w", q.stream, err)
			}
			left = md.NumPending
			if md.Sequence.Stream > to {
				past = true
				continue
			}
			counts[m.Headers().Get(dlq.HeaderReason)]++
		}
		if err := msgs.Error(); err != nil {
			return nil, fmt.Errorf("reading stream %s: %w", q.stream, err)
		}
		if n == 0 || left == 0 || past {
			return counts, nil
		}
	}
}

// ErrNotFound is the error of a sequence that holds no dead letter.
var ErrNotFound = errors.New("no such dead letter")

// notFound says which letter is missing where.
type notFound struct {
	seq    uint64
	stream string
}

func (e notFound) Error() string {
	return fmt.Sprintf("no dead letter %d in stream %s", e.seq, e.stream)
}
func (e notFound) Is(target error) bool { return target == ErrNotFound }

// Shown is one dead letter in full, as `publisher dlq show -json` prints it: the letter, the
// message's own subject (dlq.<original subject>), when the stream stored it, every header, and the
// body: JSON as it is, anything else as a JSON string.
type Shown struct {
	Letter
	StoredSubject string              `json:"subject"`
	Stored        time.Time           `json:"stored_at"`
	Headers       map[string][]string `json:"headers"`
	JSONBody      json.RawMessage     `json:"body"`
}

// Get returns the dead letter of sequence seq. A sequence that holds none is an error that
// errors.Is ErrNotFound and says "no dead letter SEQ in stream DLQ".
func (q *Queue) Get(ctx context.Context, seq uint64) (Shown, error) {
	s, err := q.open(ctx)
	if err != nil {
		return Shown{}, err
	}
	m, err := get(ctx, s, q.stream, seq)
	if err != nil {
		return Shown{}, err
	}
	body := json.RawMessage(m.Data)
	if !json.Valid(m.Data) {
		body, _ = json.Marshal(string(m.Data)) // a string cannot fail to marshal
	}
	headers := map[string][]string(m.Header)
	if headers == nil {
		headers = map[string][]string{}
	}
	return Shown{Letter: letterOf(m.Sequence, m.Subject, m.Time, m.Header, m.Data), StoredSubject: m.Subject, Stored: m.Time, Headers: headers, JSONBody: body}, nil
}

func get(ctx context.Context, s jetstream.Stream, stream string, seq uint64) (*jetstream.RawStreamMsg, error) {
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, notFound{seq, stream}
	}
	if err != nil {
		return nil, fmt.Errorf("reading dead letter %d of stream %s: %w", seq, stream, err)
	}
	return m, nil
}

// Letters returns the dead letters of the sequences, in the order given, and the sequences that
// hold none (replayed or purged meanwhile, say). Errors are the server's, or ctx's end.
func (q *Queue) Letters(ctx context.Context, seqs []uint64) (found []Letter, missing []uint64, err error) {
	s, err := q.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, seq := range seqs {
		m, err := get(ctx, s, q.stream, seq)
		switch {
		case errors.Is(err, ErrNotFound):
			missing = append(missing, seq)
		case err != nil:
			return found, missing, err
		default:
			found = append(found, letterOf(m.Sequence, m.Subject, m.Time, m.Header, m.Data))
		}
	}
	return found, missing, nil
}

// Purge deletes the letters for good, calling done (when not nil) after each, and returns how
// many it deleted; a letter gone already counts as deleted. It stops at the first failure.
func (q *Queue) Purge(ctx context.Context, letters []Letter, done func()) (int, error) {
	s, err := q.open(ctx)
	if err != nil {
		return 0, err
	}
	for i, l := range letters {
		if err := deleteLetter(ctx, ctx, s, l.Seq); err != nil {
			return i, fmt.Errorf("after %d deleted: deleting %d: %w", i, l.Seq, err)
		}
		if done != nil {
			done()
		}
	}
	return len(letters), nil
}

// ReplayOptions are the knobs of Replay.
type ReplayOptions struct {
	// MaxReplays refuses the letters replayed this many times already (Letter.ReplayCount): a
	// letter that fails at every replay comes back each time. The publisher's default is 3.
	MaxReplays int
	// DryRun plans the replay (Planned, Groups, the refusals) and changes nothing.
	DryRun bool
	// Pace, when not nil, is called before each replay (a rate limit); an error stops the replay.
	Pace func(ctx context.Context) error
	// Done, when not nil, is called after each replay (a progress bar).
	Done func()
}

// ReplayResult is what a replay did, as `publisher dlq replay -json` prints it. Planned counts the
// matching letters that are not refused (Letter.Refusal), which a run replays (Replayed) and a dry
// run only counts (Groups, by reason and original subject). Gone counts the planned letters that
// were no longer stored when their turn came (purged, or replayed, by someone else meanwhile):
// they are not published.
type ReplayResult struct {
	DryRun     bool    `json:"dry_run"`
	Planned    int     `json:"planned"`
	Replayed   int     `json:"replayed"`
	Refused    int     `json:"refused"`
	Gone       int     `json:"gone"`
	MaxReplays int     `json:"max_replays"`
	Groups     []Group `json:"groups"`
	// RefusedLetters are the letters refused, each with its Refusal set, and its Shop and Order: a
	// letter given without its body whose subject names no order is read back for them.
	RefusedLetters []Letter `json:"refused_letters"`
	// GoneLetters are the sequences of the letters gone meanwhile.
	GoneLetters []uint64 `json:"gone_letters"`
	// Letters says what became of each letter, in the order given.
	Letters []Outcome `json:"-"`
}

// Outcome is what a replay did with one letter: replayed (or, in a dry run, to be replayed),
// refused and why, gone meanwhile (not replayed), or none of these when a failure stopped the
// replay before it.
type Outcome struct {
	Seq      uint64
	Replayed bool
	Refused  bool
	Gone     bool
	Reason   string // why it was refused, or that it was gone: a sentence for people
}

// Refusal says why a replay that allows maxReplays replays refuses the letter, or "" when it
// replays it: the letter is Unreplayable, or was replayed maxReplays times already.
func (l Letter) Refusal(maxReplays int) string {
	if l.Unreplayable != "" {
		return fmt.Sprintf("dead letter %d cannot be replayed: %s: correct it with dlq edit, or purge it", l.Seq, l.Unreplayable)
	}
	if l.ReplayCount >= maxReplays {
		return fmt.Sprintf("dead letter %d was replayed %d times already (at most %d): purge it, or allow more replays", l.Seq, l.ReplayCount, maxReplays)
	}
	return ""
}

// AllRefused says the replay replayed nothing because it refused every letter: the letters left
// behind need an operator (purge them, or allow more replays).
func (r ReplayResult) AllRefused() bool { return !r.DryRun && r.Replayed == 0 && r.Refused > 0 }

// Group counts the planned letters of one reason and original subject.
type Group struct {
	Reason  string `json:"reason"`
	Subject string `json:"subject"`
	Count   int    `json:"count"`
}

// groups lists the counts of letters by reason and subject, sorted.
func groups(counts map[[2]string]int) []Group {
	out := make([]Group, 0, len(counts))
	for k, n := range counts {
		out = append(out, Group{Reason: k[0], Subject: k[1], Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Reason < out[j].Reason || out[i].Reason == out[j].Reason && out[i].Subject < out[j].Subject
	})
	return out
}

// Replay re-publishes each letter's body to its original subject, in the order given, with
// Dlq-Replay-Count incremented and the position of the event it repeats (Dlq-Published-Sequence
// and Dlq-Published-Stream-Created: the worker orders it as that event), under the message ID
// replay:<stream>:<seq>:<count> (a replay repeated after a crash is a duplicate), and removes the
// letter once the server acknowledged the re-publish. Letters replayed MaxReplays times already
// are refused and left, and so are the Unreplayable ones (Letter.Refusal); the others are
// replayed, one refused or gone holding none of them back. A letter given again (its sequence) is
// the same letter: published once, its outcome said, and counted, at each place. Just before its publish each
// letter is read back from the stream: one no longer stored (purged, or replayed and removed, by
// someone else since the caller listed it) is not published, and counts as Gone. Letters given
// without their bodies (AllHeaders: a replay of every letter that matches) take the body so read
// back: the replay then holds the bodies of the letters in its window only (replayWindow), however
// many letters it is given; those it refuses and whose subject names no order (inbound events) are
// read back one at a time, before any publish and in a dry run too, for the shop and order its
// report names (nameRefused).
//
// The re-publishes are asynchronous, up to replayWindow awaiting their acknowledgement at once,
// on one connection: the server stores them in the order given, and a letter costs no round trip
// of its own (one at a time, a publish and a removal took two). The letters acknowledged are
// removed as their acknowledgements come, in batches (removeBatch).
//
// It stops publishing at the first failure, returned with what it did ("after N replayed: …", N
// the letters re-published and removed). A letter whose re-publish was not acknowledged is never
// removed; the letters published before the failure whose acknowledgement still comes are
// removed, and counted, even those after the letter that failed (their events are in the stream
// already: kept, a later replay of them would be a duplicate, dropped only within the stream's
// duplicate window). When it fails, the failure of the first letter, in the order given, is the
// one returned.
func (q *Queue) Replay(ctx context.Context, letters []Letter, opts ReplayOptions) (ReplayResult, error) {
	res := ReplayResult{DryRun: opts.DryRun, MaxReplays: opts.MaxReplays, RefusedLetters: []Letter{}, GoneLetters: []uint64{},
		Letters: make([]Outcome, len(letters))}
	var ok, repeats []int          // indexes of the letters to replay, and of those given again
	planned := 0                   // the letters not refused, at each place given
	byGroup := map[[2]string]int{} // and how many of them each reason and subject counts
	first := map[uint64]int{}      // the index of each sequence's first place
	for i, l := range letters {
		res.Letters[i].Seq = l.Seq
		if why := l.Refusal(opts.MaxReplays); why != "" {
			l.Refused = why
			res.RefusedLetters = append(res.RefusedLetters, l)
			res.Letters[i].Refused = true
			res.Letters[i].Reason = why
			continue
		}
		planned++
		byGroup[[2]string{l.Reason, l.Subject}]++
		if _, seen := first[l.Seq]; seen {
			repeats = append(repeats, i)
			continue
		}
		first[l.Seq] = i
		ok = append(ok, i)
	}
	res.Planned, res.Refused, res.Groups = planned, len(res.RefusedLetters), groups(byGroup)
	if err := q.nameRefused(ctx, res.RefusedLetters); err != nil {
		return res, err
	}
	if opts.DryRun {
		for _, i := range append(ok, repeats...) {
			res.Letters[i].Replayed = true
		}
	}
	if opts.DryRun || len(ok) == 0 {
		return res, nil
	}
	s, err := q.open(ctx)
	if err != nil {
		return res, err
	}
	r := &replayRun{ctx: ctx, js: q.js, s: s, letters: letters, opts: opts, res: &res,
		slots: make(chan struct{}, replayWindow), sent: make(chan sentLetter, replayWindow), acked: make(chan int, len(ok)),
		dups: map[int]dupAck{}, streams: map[string]jetstream.Stream{}}
	r.run(ok)
	for _, i := range repeats { // a letter given again fares as at its first place, and is counted there too
		o := res.Letters[first[letters[i].Seq]]
		res.Letters[i] = o
		switch {
		case o.Replayed:
			r.removed(i)
		case o.Gone:
			r.gone(i)
		}
	}
	if r.err != nil {
		return res, fmt.Errorf("after %d replayed: %w", res.Replayed, r.err)
	}
	return res, nil
}

const (
	// replayWindow is how many re-publishes of a replay may await their acknowledgement at once:
	// enough to keep the connection busy, few enough that a failure leaves little in flight.
	replayWindow = 256
	// replayRemovers is how many letters a replay removes one by one at once: the server
	// deletes one message a request, so the removals go side by side not to wait a round trip
	// each.
	replayRemovers = 16
	// replayPurgeMin is the fewest letters of a subject that a batch removes with a purge rather
	// than one by one: the purge costs a read of the subject's headers and two requests more.
	replayPurgeMin = 16
	// replayBatch is the most letters acknowledged that a replay removes at once.
	replayBatch = 1000
	// replayAckWait is how long a re-publish may go unacknowledged, from its publish, before the
	// replay fails (a synchronous publish waits as long, by default).
	replayAckWait = 5 * time.Second
	// replayLookWait is how long after a replay's context ended it may still look up the letters
	// whose removal failed.
	replayLookWait = 2 * time.Second
)

// replayRun is a replay in progress: the caller's goroutine paces the letters and starts reading
// each back (check), one goroutine publishes those still stored, in order (publish), one takes
// the acknowledgements in the order of the publishes (settle), and one removes the letters
// acknowledged, in batches of those acknowledged meanwhile (removeBatch).
type replayRun struct {
	ctx context.Context
	// look is ctx for what follows the publishes, which outlives it by replayLookWait: once ctx
	// ends, nothing more is published, but the acknowledgements that come meanwhile are taken
	// and their letters removed (the docs: at a failure, the letters whose acknowledgement still
	// comes are removed), and a removal (a purge) done by the server but answered after ctx
	// ended is seen done.
	look    context.Context
	js      jetstream.JetStream
	s       jetstream.Stream
	letters []Letter
	opts    ReplayOptions
	slots   chan struct{}   // a value per publish awaiting its acknowledgement: the window
	sent    chan sentLetter // the publishes awaiting their acknowledgement, in order
	acked   chan int        // the letters (indexes) whose publish was acknowledged, to remove; never full
	// dups holds, by letter index, the acknowledgements that said duplicate: the remover checks
	// that the message stored under the ID is the letter's event (sameEvent) before removing it.
	dups map[int]dupAck
	// streams are the streams of those acknowledgements, opened by the remover.
	streams map[string]jetstream.Stream

	mu     sync.Mutex    // guards what follows, and serializes the calls of opts.Done
	res    *ReplayResult // Replayed and Letters[i].Replayed
	err    error         // the failure of the first letter (in the order given) that failed
	errPos int           // that letter's index
}

// sentLetter is a re-publish awaiting its acknowledgement.
type sentLetter struct {
	i    int // the letter's index
	ack  jetstream.PubAckFuture
	at   time.Time
	body []byte // the body published: kept only while its acknowledgement is awaited
}

// dupAck is an acknowledgement that said duplicate, with the body published (sameEvent).
type dupAck struct {
	ack  *jetstream.PubAck
	body []byte
}

// run replays the letters of the indexes ok and returns once every publish is settled and every
// letter acknowledged is removed, or failed to be.
func (r *replayRun) run(ok []int) {
	look, stopLook := context.WithCancel(context.WithoutCancel(r.ctx))
	defer stopLook()
	go func() { // look ends replayLookWait after ctx, or at the return
		select {
		case <-r.ctx.Done():
			t := time.NewTimer(replayLookWait)
			defer t.Stop()
			select {
			case <-t.C:
				stopLook()
			case <-look.Done():
			}
		case <-look.Done():
		}
	}()
	r.look = look
	removed := make(chan struct{})
	go func() {
		defer close(removed)
		for i := range r.acked {
			batch := []int{i}
		more:
			for len(batch) < replayBatch {
				select {
				case i, ok := <-r.acked:
					if !ok {
						break more
					}
					batch = append(batch, i)
				default:
					break more
				}
			}
			r.removeBatch(batch)
		}
	}()
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		defer close(r.acked)
		for p := range r.sent {
			r.settle(p)
		}
	}()
	checks := make(chan *check, replayWindow) // never full: a check holds a slot of the window
	published := make(chan struct{})
	go func() {
		defer close(published)
		defer close(r.sent)
		for c := range checks {
			r.publish(c)
		}
	}()
	for _, i := range ok {
		if r.failed() {
			break
		}
		if err := r.check(i, checks); err != nil {
			r.fail(i, err)
			break
		}
	}
	close(checks)
	<-published
	<-settled
	<-removed
}

// check is the look-up of a letter before its publish (replayRun.stored), under way.
type check struct {
	i      int    // the letter's index
	letter Letter // the letter as read back, its Body included (for a letter given bodiless)
	stored bool
	err    error
	done   chan struct{} // closed once stored and err are set
}

// check paces the letter of index i and, once the window has room, starts reading it back from
// the stream (stored), handing the look-up over to publish, which takes them in order: the
// letters are looked up side by side, and each costs no round trip of its own, yet each is read
// back last thing before its publish (one round trip before it, even when paced).
func (r *replayRun) check(i int, checks chan<- *check) error {
	if r.opts.Pace != nil {
		if err := r.opts.Pace(r.ctx); err != nil {
			return err
		}
	}
	if err := r.ctx.Err(); err != nil {
		return err // the select below may take a free slot as well as ctx's end
	}
	select {
	case r.slots <- struct{}{}:
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
	c := &check{i: i, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.letter, c.stored, c.err = r.stored(r.letters[i])
	}()
	checks <- c // never blocks: the window bounds checks
	return nil
}

// publish publishes the letter of c once c says it is still stored; a letter gone meanwhile is
// counted gone and not published. Nothing is published after a failure of a letter before it (a
// failure of a letter after it, its pace, may come while its look-up is under way).
func (r *replayRun) publish(c *check) {
	<-c.done
	l := c.letter
	err := c.err
	if err == nil {
		err = r.ctx.Err()
	}
	switch {
	case r.failedBefore(c.i):
	case err != nil:
		r.fail(c.i, err)
	case !c.stored:
		r.gone(c.i)
	default:
		msg := nats.NewMsg(l.Subject)
		msg.Data = l.Body
		id := replayHeaders(l, msg, r.s.CachedInfo().Config.Name, "replay")
		// No retry after "no responders": the client would re-send the publish 250 ms later,
		// behind the publishes sent meanwhile, and the server would store the letters out of
		// order; the publish fails instead, and the letter is kept.
		ack, err := r.js.PublishMsgAsync(msg, jetstream.WithMsgID(id), jetstream.WithRetryAttempts(0))
		if err != nil {
			r.fail(c.i, fmt.Errorf("re-publishing dead letter %d to %s: %w", l.Seq, l.Subject, err))
			break
		}
		r.sent <- sentLetter{i: c.i, ack: ack, at: time.Now(), body: l.Body} // never blocks: the window bounds r.sent
		return                                                               // settle frees the slot
	}
	<-r.slots
}

// stored reads the letter back from the stream, last thing before its publish: the letters were
// listed before the replay began, and one purged since (dlq purge: "for good"), or replayed and
// removed by another replay (whose event, published again past ORDERS' duplicate window, would be
// handled twice), is not to be published. A sequence that holds another message (the stream
// created again since) is the letter gone too. The server has no read of headers alone by
// sequence: the letter is read whole, and returned. A letter given without its body (AllHeaders)
// takes the body read back, the one published: it is the same message when the server stored it
// on the same subject at the same time with the same headers; the replay then holds the body of
// the letters in its window only, never those of all it was given.
func (r *replayRun) stored(l Letter) (Letter, bool, error) {
	m, err := r.s.GetMsg(r.ctx, l.Seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return l, false, nil
	}
	if err != nil {
		return l, false, fmt.Errorf("reading dead letter %d before its replay: %w", l.Seq, err)
	}
	got, same := readBack(l, m)
	return got, same, nil
}

// readBack says whether m, the message stored at letter l's sequence, is l, and returns the letter
// as read back: l itself when given with its Body (the same when m holds the same subject and
// body); for l given without its body (AllHeaders), the letter m holds, its Body included (the
// same when the server stored it on the same subject at the same time with the same headers).
func readBack(l Letter, m *jetstream.RawStreamMsg) (Letter, bool) {
	if m.Subject != dlq.SubjectPrefix+l.Subject {
		return l, false
	}
	if !l.bodiless {
		return l, bytes.Equal(m.Data, l.Body)
	}
	got := letterOf(m.Sequence, m.Subject, m.Time, m.Header, m.Data)
	same := m.Time.Equal(l.storedAt) && got.Subject == l.Subject && got.Stream == l.Stream && got.OrigSeq == l.OrigSeq &&
		got.Reason == l.Reason && got.ReplayCount == l.ReplayCount && got.FailedAt.Equal(l.FailedAt) && got.Published == l.Published &&
		got.PublishedCreated == l.PublishedCreated && got.Unreplayable == l.Unreplayable
	return got, same
}

// nameRefused sets the Shop and Order of the refused letters given without their bodies
// (AllHeaders) and whose subject names no order (an inbound event's: its order is its body's) from
// their bodies, read back one at a time and dropped: the report of a replay names each refused
// letter's order. A letter no longer stored, or whose sequence holds another, keeps what its
// subject names. The refused letters are few: the others are not read here.
func (q *Queue) nameRefused(ctx context.Context, refused []Letter) error {
	var s jetstream.Stream
	for i, l := range refused {
		if !l.bodiless || l.Order != "" {
			continue
		}
		if s == nil {
			var err error
			if s, err = q.open(ctx); err != nil {
				return err
			}
		}
		m, err := s.GetMsg(ctx, l.Seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading refused dead letter %d back for its shop and order: %w", l.Seq, err)
		}
		if got, same := readBack(l, m); same {
			refused[i].Shop, refused[i].Order = got.Shop, got.Order
		}
	}
	return nil
}

// gone counts the letter of index i gone meanwhile: not replayed.
func (r *replayRun) gone(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.letters[i]
	r.res.Gone++
	r.res.GoneLetters = append(r.res.GoneLetters, l.Seq)
	r.res.Letters[i].Gone = true
	r.res.Letters[i].Reason = fmt.Sprintf("dead letter %d was gone when its turn came (purged, or replayed, by someone else meanwhile): not replayed", l.Seq)
}

// settle waits for the acknowledgement of a publish and hands the letter over to be removed; a
// publish refused, or unacknowledged for replayAckWait, is a failure, and its letter is kept.
func (r *replayRun) settle(p sentLetter) {
	defer func() { <-r.slots }()
	l := r.letters[p.i]
	timeout := time.NewTimer(time.Until(p.at.Add(replayAckWait)))
	defer timeout.Stop()
	select {
	case ack := <-p.ack.Ok():
		if ack.Duplicate {
			r.mu.Lock()
			r.dups[p.i] = dupAck{ack: ack, body: p.body}
			r.mu.Unlock()
		}
		r.acked <- p.i
	case err := <-p.ack.Err():
		r.fail(p.i, fmt.Errorf("re-publishing dead letter %d to %s: %w", l.Seq, l.Subject, err))
	case <-timeout.C:
		r.fail(p.i, fmt.Errorf("re-publishing dead letter %d to %s: no acknowledgement within %s", l.Seq, l.Subject, replayAckWait))
	case <-r.look.Done(): // ctx ended replayLookWait ago: the acknowledgements that still come meanwhile are taken
		r.fail(p.i, fmt.Errorf("re-publishing dead letter %d to %s: %w", l.Seq, l.Subject, r.ctx.Err()))
	}
}

// removeBatch removes the letters of the indexes, whose re-publishes were acknowledged, and
// counts them replayed. The letters of a subject that head it in the stream are removed with one
// purge of the subject up to the last of them (purgeHead); the others one by one, replayRemovers
// at once. A letter gone already counts as removed.
func (r *replayRun) removeBatch(batch []int) {
	bySubject := map[string][]int{}
	for _, i := range batch {
		if err := r.sameEvent(i); err != nil {
			r.fail(i, err)
			continue
		}
		subject := dlq.SubjectPrefix + r.letters[i].Subject
		bySubject[subject] = append(bySubject[subject], i)
	}
	var single []int
	for subject, idx := range bySubject {
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(r.letters[a].Seq, r.letters[b].Seq) })
		n := 0
		if len(idx) >= replayPurgeMin {
			n = r.purgeHead(subject, idx)
		}
		r.removed(idx[:n]...)
		single = append(single, idx[n:]...)
	}
	work := make(chan int)
	var removers sync.WaitGroup
	for range min(replayRemovers, len(single)) {
		removers.Go(func() {
			for i := range work {
				l := r.letters[i]
				if err := deleteLetter(r.look, r.look, r.s, l.Seq); err != nil {
					r.fail(i, fmt.Errorf("removing dead letter %d after its replay: %w", l.Seq, err))
					continue
				}
				r.removed(i)
			}
		})
	}
	for _, i := range single {
		work <- i
	}
	close(work)
	removers.Wait()
}

// sameEvent checks, for a letter whose re-publish the server acknowledged as a duplicate, that the
// message it holds under the replay's message ID is the letter's event (its subject and body): a
// replay of this letter published before (a replay that crashed, or ran at once). A message ID
// can repeat another letter's: the DLQ stream created again numbers its letters from 1 again, and
// the replay of a new letter would be dropped as the replay of the old one. The letter is then
// kept: removed, its event would be lost.
func (r *replayRun) sameEvent(i int) error {
	r.mu.Lock()
	dup, isDup := r.dups[i]
	delete(r.dups, i)
	r.mu.Unlock()
	if !isDup {
		return nil
	}
	ack := dup.ack
	l := r.letters[i]
	s, ok := r.streams[ack.Stream]
	if !ok {
		var err error
		if s, err = r.js.Stream(r.look, ack.Stream); err != nil {
			return fmt.Errorf("re-publishing dead letter %d to %s: a duplicate of stream %s sequence %d, which cannot be read: %w", l.Seq, l.Subject, ack.Stream, ack.Sequence, err)
		}
		r.streams[ack.Stream] = s
	}
	return duplicateOf(r.look, s, ack, l, l.Subject, dup.body, "replay")
}

// duplicateOf checks, for the publish of subject and body in place of the dead letter l (its
// replay or edit, kind) that s acknowledged as a duplicate (ack), that the message s holds under
// the message ID is that publish: the same subject and body, or, for an edit, an earlier edit of
// the same letter (it names the letter and the event it repeats). It returns an error naming the
// message when s cannot be read or holds another event: the caller then keeps the letter.
func duplicateOf(ctx context.Context, s jetstream.Stream, ack *jetstream.PubAck, l Letter, subject string, body []byte, kind string) error {
	m, err := s.GetMsg(ctx, ack.Sequence)
	if err != nil {
		return fmt.Errorf("%s of dead letter %d to %s: a duplicate of stream %s sequence %d, which cannot be read: %w", kind, l.Seq, subject, ack.Stream, ack.Sequence, err)
	}
	if m.Subject == subject && bytes.Equal(m.Data, body) {
		return nil
	}
	h := m.Header
	if kind == "edit" && l.Published != 0 && h.Get(dlq.HeaderEditedFrom) == strconv.FormatUint(l.Seq, 10) &&
		h.Get(dlq.HeaderPublishedSequence) == strconv.FormatUint(l.Published, 10) && h.Get(dlq.HeaderPublishedStreamCreated) == l.PublishedCreated {
		return nil // an earlier edit of this letter, published before a crash
	}
	again := "publish its event with dlq edit"
	if kind == "edit" {
		again = "edit it again once the stream's duplicate window has passed"
	}
	return fmt.Errorf("%s of dead letter %d to %s: dropped as a duplicate of stream %s sequence %d, another event under message ID %s (the DLQ stream was created again?): the letter is kept; %s",
		kind, l.Seq, subject, ack.Stream, ack.Sequence, h.Get(jetstream.MsgIDHeader), again)
}

// purgeHead removes with one purge the letters of idx (of stored subject, in sequence order)
// that are the subject's first messages in the stream, and returns how many it removed: it reads
// the subject's headers from its first message while each is the next letter of idx, and purges
// the subject below the next sequence. Messages do not come before one already stored, so the
// purge takes these letters and nothing else. On any error it removes nothing: the letters are
// removed one by one instead.
func (r *replayRun) purgeHead(subject string, idx []int) int {
	c, err := r.s.OrderedConsumer(r.look, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, HeadersOnly: true, InactiveThreshold: 5 * time.Second})
	if err != nil {
		return 0
	}
	n := 0
	for n < len(idx) {
		msgs, err := c.FetchNoWait(len(idx) - n)
		if err != nil {
			return 0
		}
		got, match := 0, true
		for m := range msgs.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil || !match || n == len(idx) || md.Sequence.Stream != r.letters[idx[n]].Seq {
				match = false
				continue // a message not to remove, or one of ours gone meanwhile: the head ends
			}
			n++
		}
		if msgs.Error() != nil {
			return 0
		}
		if got == 0 || !match {
			break
		}
	}
	if n == 0 {
		return 0
	}
	if err := r.s.Purge(r.look, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(r.letters[idx[n-1]].Seq+1)); err != nil {
		return 0
	}
	return n
}

// removed counts the letters of the indexes, removed, replayed.
func (r *replayRun) removed(idx ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, i := range idx {
		r.res.Replayed++
		r.res.Letters[i].Replayed = true
		if r.opts.Done != nil {
			r.opts.Done()
		}
	}
}

// fail records the failure of the letter of index i, which stops the publishing; of several,
// the first letter's is kept.
func (r *replayRun) fail(i int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil || i < r.errPos {
		r.err, r.errPos = err, i
	}
}

// failedBefore says whether a letter before the letter of index i failed, or i itself.
func (r *replayRun) failedBefore(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err != nil && r.errPos <= i
}

func (r *replayRun) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err != nil
}

// deleteLetter deletes the letter of sequence seq from s; a letter gone already is no failure.
// The server answers the deletion of a missing sequence with "sequence N not found" (err_code
// 10043), which the client reports as a plain ErrMsgDeleteUnsuccessful, not ErrMsgNotFound: on a
// failure the letter is looked up, within look, and one missing counts as deleted.
func deleteLetter(ctx, look context.Context, s jetstream.Stream, seq uint64) error {
	err := s.DeleteMsg(ctx, seq)
	if err == nil || errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if _, gerr := s.GetMsg(look, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return err
}

// republish publishes msg in place of the dead letter l (its edit) with replayHeaders, and
// removes the letter from s only once the publish is acknowledged.
func republish(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, l Letter, msg *nats.Msg, kind string) (*jetstream.PubAck, error) {
	id := replayHeaders(l, msg, s.CachedInfo().Config.Name, kind)
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(id))
	if err != nil {
		return nil, fmt.Errorf("re-publishing dead letter %d to %s: %w", l.Seq, msg.Subject, err)
	}
	if ack.Duplicate {
		held, err := js.Stream(ctx, ack.Stream)
		if err == nil {
			err = duplicateOf(ctx, held, ack, l, msg.Subject, msg.Data, kind)
		}
		if err != nil {
			return ack, err
		}
	}
	if err := deleteLetter(ctx, ctx, s, l.Seq); err != nil {
		return ack, fmt.Errorf("removing dead letter %d after its %s: %w", l.Seq, kind, err)
	}
	return ack, nil
}

// replayHeaders sets the headers of msg, published in place of the dead letter l of stream (its
// replay, or its edit): the letter's replay count incremented and the position of the event it
// repeats (so that the worker orders it as that event), and the letter's trace context. It
// returns the publish's message ID, of its own (kind, the letter's stream, sequence and count), so
// that a repeat after a crash is a duplicate.
func replayHeaders(l Letter, msg *nats.Msg, stream, kind string) string {
	count := strconv.Itoa(l.ReplayCount + 1)
	msg.Header.Set(dlq.HeaderReplayCount, count)
	if l.Published != 0 {
		msg.Header.Set(dlq.HeaderPublishedSequence, strconv.FormatUint(l.Published, 10)) // the replay is as old as the event
	}
	if l.PublishedCreated != "" {
		msg.Header.Set(dlq.HeaderPublishedStreamCreated, l.PublishedCreated)
	}
	if l.traceParent != "" && msg.Header.Get(natstrace.HeaderTraceParent) == "" {
		msg.Header.Set(natstrace.HeaderTraceParent, l.traceParent)
		if l.traceState != "" {
			msg.Header.Set(natstrace.HeaderTraceState, l.traceState)
		}
	}
	return fmt.Sprintf("%s:%s:%d:%s", kind, stream, l.Seq, count)
}
