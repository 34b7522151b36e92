package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// The operator's actions on one order (the console's buttons): each checks the order's state in
// Redis, then publishes an ordinary inbound event for it, whose source names the tool and the
// operator: publisher/operator/<name>. The worker records the source in the order's history.

// operatorPattern is what an operator's name may hold: a login name or an e-mail address, which
// keeps the source a plain URI reference.
var operatorPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)

// operatorSourcePrefix heads the CloudEvents source of the events an operator publishes.
const operatorSourcePrefix = "publisher/operator/"

// operatorOpts are the flags the operator's actions share.
type operatorOpts struct {
	operator string
	stream   string
	dry      bool
	asJSON   bool
	redis    *redisOpts
}

func (a *App) bindOperator(fs *flag.FlagSet) *operatorOpts {
	o := &operatorOpts{redis: a.bindRedis(fs)}
	fs.StringVar(&o.operator, "operator", "", "who asks: a login `name` or e-mail address (required); the event's source is publisher/operator/NAME")
	fs.StringVar(&o.stream, "stream", "ORDERS", "`name` of the worker's inbound stream")
	fs.BoolVar(&o.dry, "dry-run", false, "check the order and print the event; publish nothing")
	fs.BoolVar(&o.asJSON, "json", false, "print the result as one JSON object (with the event itself in a dry run)")
	a.bindConnection(fs)
	return o
}

// parseOperator parses the arguments of an operator's action and checks the operator's name.
func (a *App) parseOperator(fs *flag.FlagSet, name string, o *operatorOpts, args []string) (string, string, error) {
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return "", "", err
	}
	shop, orderID, err := shopOrder(name, rest)
	if err != nil {
		return "", "", err
	}
	switch {
	case o.operator == "":
		return "", "", usagef("%s needs -operator NAME: who asks, recorded in the order's history", name)
	case !operatorPattern.MatchString(o.operator):
		return "", "", usagef("-operator %q: want a login name or e-mail address (1-64 of A-Z, a-z, 0-9 and . _ @ + -)", o.operator)
	}
	return shop, orderID, nil
}

// orderState reads the order's state and history, and fails for an order the worker does not know.
func orderState(ctx context.Context, ro *redisOpts, shop, orderID string) (orderstate.State, []orderstate.Entry, error) {
	store, closeStore, err := ro.store()
	if err != nil {
		return orderstate.State{}, nil, err
	}
	defer closeStore()
	st, err := store.Get(ctx, shop, orderID)
	if err != nil {
		return st, nil, err
	}
	history, err := store.History(ctx, shop, orderID)
	if err != nil {
		return st, nil, err
	}
	if st.Version == 0 {
		return st, nil, fmt.Errorf("order %s of shop %s: the worker has no credit state for it (order history %s %s shows what it did with its events)",
			orderID, shop, shop, orderID)
	}
	return st, history, nil
}

// received is an inbound event as the stream holds it: where the operator's action took the
// order's data from.
type received struct {
	Sequence uint64    `json:"sequence"`
	Type     string    `json:"type"`
	ID       string    `json:"id"`
	Source   string    `json:"source"`
	Stored   time.Time `json:"stored_at"`
	// Copy says it is a replay or an edit of a dead letter (it carries Dlq-Replay-Count).
	Copy bool `json:"copy,omitempty"`
	data json.RawMessage
	// published is the sequence of the event it copies, for a copy.
	published uint64
}

// actionResult is what rerun and cancel print with -json.
type actionResult struct {
	Shop      string          `json:"shop"`
	Order     string          `json:"order"`
	Status    string          `json:"status"`
	Operator  string          `json:"operator"`
	ID        string          `json:"id"`
	Source    string          `json:"source"`
	Subject   string          `json:"subject"`
	MsgID     string          `json:"msg_id"`
	Stream    string          `json:"stream,omitempty"`
	Sequence  uint64          `json:"sequence,omitempty"`
	Duplicate bool            `json:"duplicate"`
	DryRun    bool            `json:"dry_run"`
	From      *received       `json:"from,omitempty"`
	Event     json.RawMessage `json:"event,omitempty"`
}

// errDataGone says that the order's received data is no longer in the inbound stream.
type errDataGone struct{ why string }

func (e errDataGone) Error() string { return e.why }

// orderRerun runs `order rerun SHOP ORDER` (与信を実行).
func (a *App) orderRerun(ctx context.Context, args []string) error {
	fs := a.flagSet("order rerun")
	o := a.bindOperator(fs)
	scan := fs.Int("scan", 100000, "read at most `N` messages of the shop in the inbound stream when the data is not at the order's recorded position (a cancel, a dead-letter edit)")
	a.setUsage(fs, "order rerun -operator NAME [flags] SHOP ORDER", `与信を実行: re-sends the order's latest received data as a new order.created (new id, source
publisher/operator/NAME, time now), for an order whose credit is ng, cancelled or invalid; any other status
is refused (exit status 1) with the reason.
The data is the event the worker last applied, read from the inbound stream at the position the order's
state records: for a cancelled order, the last order.created or order.updated before the cancel. Past the
stream's retention (7 days by default), or after the stream was created again, it is gone: the command says
so and the importer must publish order.created with the data again.
For an ng or invalid order the worker calls ATODENE again only if the request differs from the one it
answered (the shop's settings changed); with the same data its history says "no change: same data".
`)
	shop, orderID, err := a.parseOperator(fs, "order rerun", o, args)
	if err != nil {
		return err
	}
	if *scan < 1 {
		return usagef("-scan must be at least 1")
	}
	st, history, err := orderState(ctx, o.redis, shop, orderID)
	if err != nil {
		return err
	}
	switch st.Status {
	case orderstate.StatusNG, orderstate.StatusCancelled, orderstate.StatusInvalid:
	case orderstate.StatusOK, orderstate.StatusPending:
		return fmt.Errorf("order %s of shop %s is %s: its credit is live at ATODENE; 与信を実行 is for an order whose credit is ng, cancelled or invalid (send order.updated to change it, or cancel it first)",
			orderID, shop, statusWords(st))
	case orderstate.StatusRegistering:
		return fmt.Errorf("order %s of shop %s is registering: a registration is under way; wait for its outcome (order history %s %s)", orderID, shop, shop, orderID)
	case orderstate.StatusUnknown:
		return fmt.Errorf("order %s of shop %s is unknown: an earlier registration may exist at ATODENE; settle it first (docs/operations.md#what-each-reason-means-and-what-to-do)", orderID, shop)
	default:
		return fmt.Errorf("order %s of shop %s has credit status %q: 与信を実行 is for an order whose credit is ng, cancelled or invalid", orderID, shop, statusName(st.Status))
	}
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	s, err := js.Stream(ctx, o.stream)
	if err != nil {
		return a.where(fmt.Errorf("opening stream %s: %w", o.stream, err))
	}
	from, err := latestData(ctx, s, st, history, shop, orderID, *scan)
	var gone errDataGone
	if errors.As(err, &gone) {
		return fmt.Errorf("order %s of shop %s: its received data is gone: %s; publish order.created with the order's data again (publisher publish -type order.created -file order.json)",
			orderID, shop, gone.why)
	}
	if err != nil {
		return err
	}
	ev, err := operatorEvent(events.TypeOrderCreated, from.data, o.operator)
	if err != nil {
		problemLines(a.Stderr, "", err)
		return fmt.Errorf("the data of %s sequence %d is not a valid order.created today: nothing published; publish a corrected order.created", o.stream, from.Sequence)
	}
	res := actionResult{Shop: shop, Order: orderID, Status: statusName(st.Status), Operator: o.operator, From: &from}
	if err := a.publishAction(ctx, js, o, ev, &res); err != nil {
		return err
	}
	if st.Status != orderstate.StatusCancelled && !o.dry {
		fmt.Fprintf(a.Stderr, "note: the worker sends it to ATODENE only if the request differs from the one ATODENE answered %s (the shop's settings changed, say); "+
			"otherwise its history says \"no change: same data\" (order history %s %s)\n", st.Status, shop, orderID)
	}
	return nil
}

// orderCancel runs `order cancel SHOP ORDER` (与信キャンセル).
func (a *App) orderCancel(ctx context.Context, args []string) error {
	fs := a.flagSet("order cancel")
	o := a.bindOperator(fs)
	reason := fs.String("reason", "", "`text` added to the cancel's reason, which is \"operator\"")
	a.setUsage(fs, "order cancel -operator NAME [flags] SHOP ORDER", `与信キャンセル: publishes order.cancelled for the order (reason "operator", new id, source
publisher/operator/NAME, time now). The worker cancels a live transaction at ATODENE and publishes
credit.cancelled; a cancel during a registration waits for its outcome. An order the worker has no
state for, one cancelled already and one whose outcome is unknown are refused (exit status 1).
`)
	shop, orderID, err := a.parseOperator(fs, "order cancel", o, args)
	if err != nil {
		return err
	}
	st, _, err := orderState(ctx, o.redis, shop, orderID)
	if err != nil {
		return err
	}
	switch st.Status {
	case orderstate.StatusCancelled:
		return fmt.Errorf("order %s of shop %s is cancelled already (at %s)", orderID, shop, jstTime(st.CancelledAt)+" JST")
	case orderstate.StatusUnknown:
		return fmt.Errorf("order %s of shop %s is unknown: the worker does not know whether ATODENE holds a transaction; cancel it at ATODENE by hand, then settle it", orderID, shop)
	case orderstate.StatusNone:
		return fmt.Errorf("order %s of shop %s has no credit state: a cancel would wait for an order that may never come", orderID, shop)
	}
	why := "operator"
	if r := strings.TrimSpace(*reason); r != "" {
		why += ": " + r
	}
	data, err := json.Marshal(events.Cancel{ShopID: shop, OrderID: orderID, Reason: why})
	if err != nil {
		return err
	}
	ev, err := operatorEvent(events.TypeOrderCancelled, data, o.operator)
	if err != nil {
		problemLines(a.Stderr, "", err)
		return fmt.Errorf("event rejected: nothing published")
	}
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	res := actionResult{Shop: shop, Order: orderID, Status: statusName(st.Status), Operator: o.operator}
	return a.publishAction(ctx, js, o, ev, &res)
}

// statusWords names a status for people: pending says whether the review is on hold.
func statusWords(st orderstate.State) string {
	if st.Status == orderstate.StatusPending && st.Review == "hold" {
		return "pending (on hold)"
	}
	return statusName(st.Status)
}

// operatorEvent wraps data in a new event of typ from the operator, validated as the worker
// validates it.
func operatorEvent(typ string, data json.RawMessage, operator string) (event, error) {
	body, err := json.Marshal(map[string]any{"type": typ, "data": data})
	if err != nil {
		return event{}, err
	}
	return wrap(body, fill{typ: typ, strict: true, source: operatorSourcePrefix + operator, now: time.Now()})
}

// publishAction publishes an operator's event (or prints it, in a dry run) and reports it.
func (a *App) publishAction(ctx context.Context, js jetstream.JetStream, o *operatorOpts, ev event, res *actionResult) error {
	res.ID, res.Source, res.Subject, res.MsgID, res.DryRun = ev.id, operatorSourcePrefix+o.operator, ev.subject, ev.msgID, o.dry
	typ, _, _ := events.ParseSubject(ev.subject)
	if o.dry {
		if o.asJSON {
			res.Event = ev.body
			return a.printJSON(res)
		}
		fmt.Fprintf(a.Stdout, "would publish %s to %s, id %s (dry run: not published)\n", typ, ev.subject, ev.id)
		var pretty bytes.Buffer
		_ = json.Indent(&pretty, ev.body, "", "  ")
		_, err := fmt.Fprintln(a.Stdout, pretty.String())
		return err
	}
	ack, err := js.PublishMsg(ctx, ev.msg(), jetstream.WithMsgID(ev.msgID))
	if err != nil {
		return a.where(fmt.Errorf("publishing %s to %s: %w", ev.id, ev.subject, err))
	}
	res.Stream, res.Sequence, res.Duplicate = ack.Stream, ack.Sequence, ack.Duplicate
	if o.asJSON {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.Stdout, "published %s %s for order %s of shop %s (was %s), source %s: stream %s, sequence %d\n",
		typ, ev.id, res.Order, res.Shop, res.Status, res.Source, ack.Stream, ack.Sequence)
	if f := res.From; f != nil {
		copyOf := ""
		if f.Copy {
			copyOf = fmt.Sprintf(", a dead letter's replay or edit of sequence %d", f.published)
		}
		fmt.Fprintf(a.Stdout, "data from %s sequence %d: %s %s from %s, stored %s JST%s\n",
			o.stream, f.Sequence, f.Type, f.ID, f.Source, jstTime(f.Stored), copyOf)
	}
	return nil
}

// orderEvent is an inbound event of an order read from the stream.
type orderEvent struct {
	received
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
	ev := orderEvent{received: received{Sequence: seq, Type: typ, ID: env.ID, Source: env.Source, Stored: stored, data: env.Data},
		shop: shop, order: data.OrderID, billed: data.BilledAmount}
	if header.Get(dlq.HeaderReplayCount) != "" {
		ev.Copy = true
		ev.published, _ = strconv.ParseUint(header.Get(dlq.HeaderPublishedSequence), 10, 64)
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
// order.updated of the order before it. scan bounds the messages read. An errDataGone says the
// data is no longer in the stream.
func latestData(ctx context.Context, s jetstream.Stream, st orderstate.State, history []orderstate.Entry, shop, orderID string, scan int) (received, error) {
	name := s.CachedInfo().Config.Name
	info, err := s.Info(ctx)
	if err != nil {
		return received{}, err
	}
	if st.CreditSeq == 0 {
		return received{}, errDataGone{"the order's state records no position of its credit events (a state written before positions were kept)"}
	}
	if st.CreditCreated != 0 && info.Created.UnixNano() != st.CreditCreated {
		return received{}, errDataGone{fmt.Sprintf("stream %s was created again (at %s JST) after the order's last credit event was published in it (sequence %d of the stream created %s JST)",
			name, jstTime(info.Created), st.CreditSeq, jstTime(time.Unix(0, st.CreditCreated)))}
	}
	m, err := s.GetMsg(ctx, st.CreditSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return received{}, errDataGone{fmt.Sprintf("the order's last credit event, sequence %d of stream %s, is no longer there: %s",
			st.CreditSeq, name, retentionWords(info))}
	}
	if err != nil {
		return received{}, fmt.Errorf("reading sequence %d of stream %s: %w", st.CreditSeq, name, err)
	}
	last, ok := readOrderEvent(m.Subject, m.Header, m.Data, m.Sequence, m.Time)
	if !ok || last.shop != shop || last.order != orderID {
		return received{}, errDataGone{fmt.Sprintf("sequence %d of stream %s is not an event of the order: the stream was created again since", st.CreditSeq, name)}
	}
	data := []string{events.Subject(events.TypeOrderCreated, shop), events.Subject(events.TypeOrderUpdated, shop)}
	if last.isData() {
		deadLettered, handled := fate(history, last.Source, last.ID)
		if !deadLettered {
			return last.received, nil
		}
		// It failed before it was applied: what the worker applied is its replay or edit, published
		// after it with its position (Dlq-Published-Sequence).
		var found *orderEvent
		read, err := readRange(ctx, s, data, st.CreditSeq+1, 0, func(m jetstream.Msg, seq uint64) (bool, error) {
			md, _ := m.Metadata()
			if ev, ok := readOrderEvent(m.Subject(), m.Headers(), m.Data(), seq, md.Timestamp); ok && ev.Copy && ev.published == st.CreditSeq && ev.order == orderID {
				found = &ev
			}
			scan--
			return scan == 0, nil
		})
		switch {
		case err != nil:
			return received{}, err
		case scan == 0:
			// Cut short: a later copy (a second edit) may lie beyond what was read.
			return received{}, fmt.Errorf("the order's last credit event, sequence %d of stream %s, was dead-lettered; its replays and edits were looked for among %d messages after it and more remain: raise -scan", st.CreditSeq, name, read)
		case found != nil:
			return found.received, nil
		case handled:
			return last.received, nil // replayed as it was, and the replay is gone: the same data
		}
		return received{}, errDataGone{fmt.Sprintf("the order's last credit event, sequence %d of stream %s, was dead-lettered, and its replay or edit is not among the %d messages of the shop after it",
			st.CreditSeq, name, read)}
	}
	// A cancel: the data is the newest order.created or order.updated of the order before it that
	// was not only dead-lettered.
	var found *orderEvent
	b := backScan{stream: s, filters: data, limit: scan}
	res, err := b.run(ctx, st.CreditSeq, func(m jetstream.Msg, seq uint64) error {
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
		return received{}, err
	}
	if found != nil {
		return found.received, nil
	}
	why := fmt.Sprintf("no order.created or order.updated of the order is left in stream %s before its cancel (sequence %d): %s",
		name, st.CreditSeq, retentionWords(info))
	if res.Limited {
		why = fmt.Sprintf("no order.created or order.updated of the order among the last %d of the shop's before its cancel (sequence %d of stream %s; -scan reads more)",
			res.Read, st.CreditSeq, name)
	}
	return received{}, errDataGone{why}
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
