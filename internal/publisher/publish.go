package publisher

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// defaultSource is the CloudEvents source of the events this tool publishes, unless -source says otherwise.
const defaultSource = "publisher"

// event is an inbound event ready to publish: its subject, its ID, its Nats-Msg-Id (unique per
// source and id, events.MsgID) and its body, a structured-mode CloudEvent that passed the
// worker's own validation.
type event struct {
	subject string
	id      string
	msgID   string
	body    []byte
}

// msg returns the NATS message of the event, with the CloudEvents content type.
func (e event) msg() *nats.Msg {
	m := nats.NewMsg(e.subject)
	m.Data = e.body
	m.Header.Set("Content-Type", events.ContentType)
	return m
}

// fill is what wrap fills into an envelope that lacks it.
type fill struct {
	typ    string // type of a data object, and of a whole event that has none
	strict bool   // typ must also agree with the type a whole event has
	id     string // event ID; "" for a random one; must agree with the id a whole event has
	source string
	now    time.Time
}

// errNeedType says that the input is a bare data object and no event type was given for it.
var errNeedType = errors.New("a data object needs an event type")

// wrap turns raw JSON, a whole CloudEvent or just its data object, into an event: it fills in the
// envelope attributes that are missing (specversion, id, source, time, type, datacontenttype),
// derives the subject from the type and data.shop_id, and validates the result with the code the
// worker runs (events.DecodeEnvelope and the Decode function of the type). A rejected event is an
// *events.InvalidError listing every problem; a data object without a type is errNeedType.
//
// The input is a whole CloudEvent when it has a specversion or a data attribute. Attributes it
// already has are kept, unknown ones (extensions) included.
func wrap(raw []byte, f fill) (event, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return event{}, &events.InvalidError{Problems: []events.Problem{{Field: "body", Reason: "must be a JSON object"}}}
	}
	_, hasSpec := obj["specversion"]
	_, hasData := obj["data"]
	if !hasSpec && !hasData {
		if f.typ == "" {
			return event{}, errNeedType
		}
		obj = map[string]json.RawMessage{"data": raw}
	}
	var p []events.Problem
	setString := func(name, value string) {
		if _, ok := obj[name]; !ok {
			obj[name], _ = json.Marshal(value)
		}
	}
	if f.strict && f.typ != "" {
		if t, ok := stringAttr(obj, "type"); ok && obj["type"] != nil && t != f.typ {
			p = append(p, events.Problem{Field: "type", Reason: fmt.Sprintf("%q contradicts -type %s", t, f.typ)})
		}
	}
	if f.id != "" {
		if id, ok := stringAttr(obj, "id"); ok && obj["id"] != nil && id != f.id {
			p = append(p, events.Problem{Field: "id", Reason: fmt.Sprintf("%q contradicts -id %s", id, f.id)})
		}
	}
	if f.id == "" {
		f.id = newEventID()
	}
	setString("specversion", events.SpecVersion)
	setString("id", f.id)
	setString("source", f.source)
	setString("time", f.now.Format(time.RFC3339))
	setString("datacontenttype", "application/json")
	if f.typ != "" {
		setString("type", f.typ)
	}
	body, err := json.Marshal(obj)
	if err != nil { // an attribute that is not valid JSON cannot come out of json.Unmarshal
		return event{}, err
	}
	ev, more := check(obj, body)
	if p = append(p, more...); len(p) > 0 {
		return event{}, &events.InvalidError{Problems: p}
	}
	return ev, nil
}

// check derives the subject of a filled-in event and validates it as the worker will.
func check(obj map[string]json.RawMessage, body []byte) (event, []events.Problem) {
	var p []events.Problem
	typ, typeIsString := stringAttr(obj, "type")
	switch {
	case !typeIsString:
		// Not a string: DecodeEnvelope names the attribute and its JSON type.
	case typ == "":
		p = append(p, events.Problem{Field: "type", Reason: "is required"})
	case !isInbound(typ):
		p = append(p, events.Problem{Field: "type", Reason: fmt.Sprintf("%q is not an inbound event type (%s)", typ, strings.Join(events.InboundTypes, ", "))})
	}
	var data struct {
		ShopID any `json:"shop_id"`
	}
	_ = json.Unmarshal(obj["data"], &data) // a data that is no object is reported by DecodeEnvelope
	shop, _ := data.ShopID.(string)
	subjectShop := shop
	if !events.ValidShopID(shop) {
		subjectShop = "_" // a stand-in, so that the rest of the envelope is still checked
		if shop != "" {
			p = append(p, events.Problem{Field: "shop_id", Reason: "must be 1-32 of A-Z, a-z, 0-9, '_' and '-' (it is the last token of the subject)"})
		}
	}
	subject := events.Subject(typ, subjectShop)
	env, err := events.DecodeEnvelope(subject, body)
	p = appendProblems(p, err, func(pr events.Problem) bool {
		// The subject is derived here, from the type and the shop, whose problems are reported above.
		return pr.Field != "subject"
	})
	if d := bytes.TrimSpace(env.Data); isInbound(typ) && len(d) > 0 && d[0] == '{' {
		p = appendProblems(p, decodeData(typ, env, shop), nil)
	}
	id, _ := stringAttr(obj, "id")
	source, _ := stringAttr(obj, "source")
	return event{subject: events.Subject(typ, shop), id: id, msgID: events.MsgID(source, id), body: body}, p
}

// decodeData runs the worker's decoder of the event type on the data.
func decodeData(typ string, env events.Envelope, shop string) error {
	_, err := events.DecodeData(typ, env, shop)
	return err
}

// appendProblems appends the problems of an *events.InvalidError that keep accepts (all when keep
// is nil); any other error becomes a problem of the body.
func appendProblems(p []events.Problem, err error, keep func(events.Problem) bool) []events.Problem {
	if err == nil {
		return p
	}
	var ie *events.InvalidError
	if !errors.As(err, &ie) {
		return append(p, events.Problem{Field: "body", Reason: err.Error()})
	}
	for _, pr := range ie.Problems {
		if keep == nil || keep(pr) {
			p = append(p, pr)
		}
	}
	return p
}

// stringAttr returns a string attribute; ok is false when it is absent or not a JSON string.
func stringAttr(obj map[string]json.RawMessage, name string) (string, bool) {
	raw, present := obj[name]
	if !present {
		return "", true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func isInbound(typ string) bool { return slices.Contains(events.InboundTypes, typ) }

// newEventID returns a random (version 4) UUID.
func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// problemLines writes one line per problem, each after prefix.
func problemLines(w io.Writer, prefix string, err error) {
	var ie *events.InvalidError
	if !errors.As(err, &ie) {
		fmt.Fprintf(w, "%s%v\n", prefix, err)
		return
	}
	for _, p := range ie.Problems {
		fmt.Fprintf(w, "%s%s: %s\n", prefix, p.Field, p.Reason)
	}
}

// setUsage makes fs print a synopsis and a description before its flags.
func (a *App) setUsage(fs *flag.FlagSet, synopsis, description string) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: publisher %s\n\n%s\nFlags:\n", synopsis, description)
		fs.PrintDefaults()
	}
}

// readInput reads a file, or Stdin for "-".
func (a *App) readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(a.Stdin)
	}
	return os.ReadFile(name)
}

// publishDataFlags are the flags of publish that build the data of an event.
var publishDataFlags = []string{"shop", "order", "reason", "carrier", "tracking", "invoice-date"}

// publish runs `publish`: one inbound event from a file, Stdin or flags.
func (a *App) publish(ctx context.Context, args []string) error {
	fs := a.flagSet("publish")
	typ := fs.String("type", "", "event `type`: "+strings.Join(events.InboundTypes, ", ")+"; required for a data object or flags")
	file := fs.String("file", "", "read the event from `file` (- for stdin): a whole CloudEvent or just its data object")
	source := fs.String("source", defaultSource, "CloudEvents `source` when the event has none")
	id := fs.String("id", "", "event `ID` when the event has none (default random); the same source and ID again is dropped as a duplicate")
	dry := fs.Bool("dry-run", false, "validate and print the event; publish nothing")
	shop := fs.String("shop", "", "shop `ID` (data.shop_id), without -file")
	order := fs.String("order", "", "order `ID` (data.order_id), without -file")
	reason := fs.String("reason", "", "cancellation `reason`, for order.cancelled")
	carrier := fs.String("carrier", "", "`carrier` name (yamato, sagawa, ...) or ATODENE code, for order.tracking_entered")
	tracking := fs.String("tracking", "", "tracking `number` (5-20 of digits and -), for order.tracking_entered")
	invoiceDate := fs.String("invoice-date", "", "`date` (YYYY-MM-DD) the enclosed invoice is issued, for order.tracking_entered")
	asJSON := fs.Bool("json", false, "print the result as one JSON object (with the event itself in a dry run)")
	a.bindConnection(fs)
	a.setUsage(fs, "publish [-type T] -file F|- [flags]\n       publisher publish -type T -shop S -order O [data flags]",
		`Publishes one inbound event to its subject (orders.<event>.<shop>), with a Nats-Msg-Id unique per source and
id: the id itself when it is a UUID, else "ce-" and a digest of the two (events.MsgID).
The event comes from a file or stdin, as a whole CloudEvent (an object with specversion or data) or as
its data object alone (then -type is required); or, for order.cancelled, order.tracking_entered and
order.invoice_requested, from flags. Missing envelope attributes are filled in. The event is validated
as the worker validates it; a rejected event lists its problems and nothing is published.
`)
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return usagef("publish takes no arguments (got %q): give the event with -file or flags", rest[0])
	}
	if *typ != "" && !isInbound(*typ) {
		return usagef("-type %q is not an inbound event type (%s)", *typ, strings.Join(events.InboundTypes, ", "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var raw []byte
	if *file != "" {
		for _, name := range publishDataFlags {
			if set[name] {
				return usagef("-%s builds the event from flags: it cannot be used with -file", name)
			}
		}
		if raw, err = a.readInput(*file); err != nil {
			return fmt.Errorf("reading the event: %w", err)
		}
	} else if raw, err = dataFromFlags(*typ, set, *shop, *order, *reason, *carrier, *tracking, *invoiceDate); err != nil {
		return err
	}
	ev, err := wrap(raw, fill{typ: *typ, strict: true, id: *id, source: *source, now: time.Now()})
	if errors.Is(err, errNeedType) {
		return usagef("%s holds a data object, not a whole CloudEvent: give its -type (%s)", inputName(*file), strings.Join(events.InboundTypes, ", "))
	}
	if err != nil {
		problemLines(a.Stderr, "", err)
		return fmt.Errorf("event rejected: nothing published")
	}
	res := published{ID: ev.id, Subject: ev.subject, MsgID: ev.msgID, DryRun: *dry}
	if *dry && *asJSON {
		res.Event = ev.body
		return a.printJSON(res)
	}
	if *dry {
		fmt.Fprintf(a.Stdout, "subject %s, id %s (dry run: not published)\n", ev.subject, ev.id)
		var pretty bytes.Buffer
		_ = json.Indent(&pretty, ev.body, "", "  ")
		_, err := fmt.Fprintln(a.Stdout, pretty.String())
		return err
	}
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	if max := nc.MaxPayload(); int64(len(ev.body)) > max {
		return fmt.Errorf("event rejected: it is %d bytes, more than the server's maximum payload of %d: nothing published", len(ev.body), max)
	}
	ack, err := js.PublishMsg(ctx, ev.msg(), jetstream.WithMsgID(ev.msgID))
	if err != nil {
		return a.where(fmt.Errorf("publishing %s to %s: %w", ev.id, ev.subject, err))
	}
	if *asJSON {
		res.Stream, res.Sequence, res.Duplicate = ack.Stream, ack.Sequence, ack.Duplicate
		return a.printJSON(res)
	}
	if ack.Duplicate {
		fmt.Fprintf(a.Stdout, "duplicate: stream %s already holds id %s (sequence %d); the server did not store it again\n", ack.Stream, ev.id, ack.Sequence)
		return nil
	}
	fmt.Fprintf(a.Stdout, "published %s to %s: stream %s, sequence %d\n", ev.id, ev.subject, ack.Stream, ack.Sequence)
	return nil
}

// published is what publish -json prints: where the event went (for a duplicate, where the server
// holds the first one), or in a dry run the event itself.
type published struct {
	ID        string          `json:"id"`
	Subject   string          `json:"subject"`
	MsgID     string          `json:"msg_id"`
	Stream    string          `json:"stream,omitempty"`
	Sequence  uint64          `json:"sequence,omitempty"`
	Duplicate bool            `json:"duplicate"`
	DryRun    bool            `json:"dry_run"`
	Event     json.RawMessage `json:"event,omitempty"`
}

func inputName(file string) string {
	if file == "-" {
		return "stdin"
	}
	return file
}

// dataFromFlags builds the data of an order.cancelled, order.tracking_entered or
// order.invoice_requested event from the flags. A flag the type does not use is a usage error.
func dataFromFlags(typ string, set map[string]bool, shop, order, reason, carrier, tracking, invoiceDate string) ([]byte, error) {
	uses := map[string][]string{
		events.TypeOrderCancelled:   {"shop", "order", "reason"},
		events.TypeTrackingEntered:  {"shop", "order", "carrier", "tracking", "invoice-date"},
		events.TypeInvoiceRequested: {"shop", "order"},
	}
	used, ok := uses[typ]
	switch {
	case typ == "":
		return nil, usagef("give -file F (or -file - for stdin), or -type with the data flags")
	case !ok:
		return nil, usagef("%s has too many fields for flags: give it with -file (publisher sample writes examples)", typ)
	}
	for _, name := range publishDataFlags {
		if set[name] && !slices.Contains(used, name) {
			return nil, usagef("-%s does not apply to %s", name, typ)
		}
	}
	need := []string{"shop", "order"}
	if typ == events.TypeTrackingEntered {
		need = append(need, "carrier", "tracking")
	}
	for _, name := range need {
		if !set[name] {
			return nil, usagef("%s from flags needs -%s", typ, strings.Join(need, ", -"))
		}
	}
	var data any
	switch typ {
	case events.TypeOrderCancelled:
		data = events.Cancel{ShopID: shop, OrderID: order, Reason: reason}
	case events.TypeTrackingEntered:
		data = events.Tracking{ShopID: shop, OrderID: order, Carrier: carrier, TrackingNumber: tracking, InvoiceDate: invoiceDate}
	default:
		data = events.InvoiceRequest{ShopID: shop, OrderID: order}
	}
	return json.Marshal(data)
}
