package publisher

import (
	"bytes"
	"context"
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
	"github.com/atodene-worker/atodene-worker/internal/inbound"
	"github.com/atodene-worker/atodene-worker/internal/termtable"
)

// defaultSource is the CloudEvents source of the events this tool publishes, unless -source says otherwise.
const defaultSource = "publisher"

// problemLines writes one line per problem, each after prefix. The problems are of input from
// outside, which they may quote: control characters in them are written escaped
// (termtable.Visible).
func problemLines(w io.Writer, prefix string, err error) {
	var ie *events.InvalidError
	if !errors.As(err, &ie) {
		termtable.Fprintf(w, "%s%v\n", prefix, err)
		return
	}
	for _, p := range ie.Problems {
		termtable.Fprintf(w, "%s%s: %s\n", prefix, p.Field, p.Reason)
	}
}

// writeLines writes text, lines ending in "\n", each line made termtable.Visible: an event
// pretty-printed, whose strings may hold characters that valid JSON need not escape (DEL, the C1
// controls, the bidirectional overrides), shown as JSON writes them escaped (\u0085, \u202e).
func writeLines(w io.Writer, text string) error {
	for line := range strings.Lines(text) {
		line, nl := strings.CutSuffix(line, "\n")
		if _, err := io.WriteString(w, termtable.Visible(line)); err != nil {
			return err
		}
		if nl {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
	}
	if !strings.HasSuffix(text, "\n") {
		_, err := io.WriteString(w, "\n")
		return err
	}
	return nil
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
	if *typ != "" && !inbound.IsInbound(*typ) {
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
	ev, err := inbound.Wrap(raw, inbound.Fill{Type: *typ, Strict: true, ID: *id, Source: *source, Now: time.Now()})
	if errors.Is(err, inbound.ErrNeedType) {
		return usagef("%s holds a data object, not a whole CloudEvent: give its -type (%s)", inputName(*file), strings.Join(events.InboundTypes, ", "))
	}
	if err != nil {
		problemLines(a.Stderr, "", err)
		return fmt.Errorf("event rejected: nothing published")
	}
	res := published{ID: ev.ID, Subject: ev.Subject, MsgID: ev.MsgID, DryRun: *dry}
	if *dry && *asJSON {
		res.Event = ev.Body
		return a.printJSON(res)
	}
	if *dry {
		termtable.Fprintf(a.Stdout, "subject %s, id %s (dry run: not published)\n", ev.Subject, ev.ID)
		var pretty bytes.Buffer
		_ = json.Indent(&pretty, ev.Body, "", "  ")
		return writeLines(a.Stdout, pretty.String())
	}
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	if max := nc.MaxPayload(); int64(len(ev.Body)) > max {
		return fmt.Errorf("event rejected: it is %d bytes, more than the server's maximum payload of %d: nothing published", len(ev.Body), max)
	}
	var ack *jetstream.PubAck
	err = ev.Send(ctx, a.Tracing, func(ctx context.Context, msg *nats.Msg) (err error) {
		ack, err = js.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.MsgID))
		return err
	})
	if err != nil {
		return a.where(fmt.Errorf("publishing %s to %s: %w", ev.ID, ev.Subject, err))
	}
	if *asJSON {
		res.Stream, res.Sequence, res.Duplicate = ack.Stream, ack.Sequence, ack.Duplicate
		return a.printJSON(res)
	}
	if ack.Duplicate {
		termtable.Fprintf(a.Stdout, "duplicate: stream %s already holds id %s (sequence %d); the server did not store it again\n", ack.Stream, ev.ID, ack.Sequence)
		return nil
	}
	termtable.Fprintf(a.Stdout, "published %s to %s: stream %s, sequence %d\n", ev.ID, ev.Subject, ack.Stream, ack.Sequence)
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
