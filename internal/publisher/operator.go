package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/operator"
	"github.com/atodene-worker/atodene-worker/internal/termtable"
)

// The operator's actions on one order: the commands of internal/operator, which checks the
// order's state in Redis and publishes an ordinary inbound event for it, whose source names the
// tool and the operator: publisher/operator/<name>. The worker records the source in the order's
// history.

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

// received is where a rerun took the order's data from, as -json prints it.
type received struct {
	Sequence uint64    `json:"sequence"`
	Type     string    `json:"type"`
	ID       string    `json:"id"`
	Source   string    `json:"source"`
	Stored   time.Time `json:"stored_at"`
	// Copy says it is a replay or an edit of a dead letter (it carries Dlq-Replay-Count).
	Copy bool `json:"copy,omitempty"`
}

// actionResult is what the operator's actions print with -json.
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

// act runs an operator's action from the command line: it parses the flags and SHOP ORDER (fs
// named after the command), checks -operator and then what check checks (nil: nothing), opens the
// order state store and NATS, runs the action (build, when not nil, adds the values of the
// command's own flags to the request and returns the options of the call), and prints the result.
func (a *App) act(ctx context.Context, fs *flag.FlagSet, o *operatorOpts, args []string, action operator.Action, check func() error, build func(*operator.Request) []operator.Option) error {
	name := fs.Name()
	ord, err := a.openOrder(fs, o.redis, args, func() error {
		switch {
		case o.operator == "":
			return usagef("%s needs -operator NAME: who asks, recorded in the order's history", name)
		case !operator.ValidName(o.operator):
			return usagef("-operator %q: want a login name or e-mail address (1-64 of A-Z, a-z, 0-9 and . _ @ + -)", o.operator)
		}
		if check != nil {
			return check()
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer ord.close()
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	ops, err := operator.New(operator.Config{JetStream: js, Store: ord.store, Inbound: o.stream, SourcePrefix: operatorSourcePrefix, Tracing: a.Tracing})
	if err != nil {
		return err
	}
	req := operator.Request{Action: action, Operator: o.operator, Shop: ord.shop, Order: ord.order}
	var opts []operator.Option
	if build != nil {
		opts = build(&req)
	}
	if o.dry {
		opts = append(opts, operator.DryRun())
	}
	res, err := ops.Do(ctx, req, opts...)
	if err != nil {
		return a.where(err)
	}
	return a.printAction(res, o)
}

// printAction prints what an action did, or returns why it was refused.
func (a *App) printAction(res operator.Result, o *operatorOpts) error {
	typ, _, _ := events.ParseSubject(res.Subject)
	if res.Outcome == operator.Refused {
		switch res.Refusal {
		case operator.RefusedInput:
			problemLines(a.Stderr, "", &events.InvalidError{Problems: res.Problems})
			if res.Action == operator.ActionCancel { // its flags cannot make it so: an order ID, say
				return errors.New("event rejected: nothing published")
			}
			return usagef("%s rejected: nothing published", eventType(res.Action))
		case operator.RefusedInvalid:
			problemLines(a.Stderr, "", &events.InvalidError{Problems: res.Problems})
		case operator.RefusedDataGone:
			return errors.New(res.Reason + " (publisher publish -type order.created -file order.json)")
		case operator.RefusedScanLimit:
			return errors.New(res.Reason + ": raise -scan")
		}
		return errors.New(res.Reason)
	}
	out := actionResult{Shop: res.Shop, Order: res.Order, Status: res.Status, Operator: res.Operator, ID: res.ID, Source: res.Source,
		Subject: res.Subject, MsgID: res.MsgID, Stream: res.Stream, Sequence: res.Sequence, Duplicate: res.Duplicate, DryRun: o.dry}
	if res.Action == operator.ActionRerun || res.Action == operator.ActionCancel {
		out.Status = statusName(res.Before) // without the side of pending, as these commands always printed it
	}
	if f := res.From; f != nil {
		out.From = &received{Sequence: f.Sequence, Type: f.Type, ID: f.ID, Source: f.Source, Stored: f.Stored, Copy: f.Copy}
	}
	if o.dry {
		if o.asJSON {
			out.Event = res.Event
			return a.printJSON(out)
		}
		termtable.Fprintf(a.Stdout, "would publish %s to %s, id %s (dry run: not published)\n", typ, res.Subject, res.ID)
		var pretty bytes.Buffer
		_ = json.Indent(&pretty, res.Event, "", "  ")
		return writeLines(a.Stdout, pretty.String())
	}
	if o.asJSON {
		if err := a.printJSON(out); err != nil {
			return err
		}
	} else {
		termtable.Fprintf(a.Stdout, "published %s %s for order %s of shop %s (was %s), source %s: stream %s, sequence %d\n",
			typ, res.ID, out.Order, out.Shop, out.Status, out.Source, res.Stream, res.Sequence)
		if f := res.From; f != nil {
			copyOf := ""
			if f.Copy {
				copyOf = fmt.Sprintf(", a dead letter's replay or edit of sequence %d", f.CopyOf)
			}
			termtable.Fprintf(a.Stdout, "data from %s sequence %d: %s %s from %s, stored %s JST%s\n",
				o.stream, f.Sequence, f.Type, f.ID, f.Source, jst.Format(f.Stored), copyOf)
		}
	}
	if res.Note != "" {
		termtable.Fprintf(a.Stderr, "note: %s\n", res.Note)
	}
	return nil
}

// eventType is the event type an action publishes.
func eventType(a operator.Action) string {
	return map[operator.Action]string{
		operator.ActionRerun: events.TypeOrderCreated, operator.ActionCancel: events.TypeOrderCancelled,
		operator.ActionRecheck: events.TypeRecheckRequested, operator.ActionResolve: events.TypeResolveRequested,
		operator.ActionTrack: events.TypeTrackingEntered, operator.ActionRequestInvoice: events.TypeInvoiceRequested,
	}[a]
}

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
	check := func() error {
		if *scan < 1 {
			return usagef("-scan must be at least 1")
		}
		return nil
	}
	return a.act(ctx, fs, o, args, operator.ActionRerun, check, func(*operator.Request) []operator.Option {
		return []operator.Option{operator.Scan(*scan)}
	})
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
	return a.act(ctx, fs, o, args, operator.ActionCancel, nil, func(r *operator.Request) []operator.Option {
		r.Reason = *reason
		return nil
	})
}

// orderRecheck runs `order recheck SHOP ORDER` (与信結果確認): order.recheck_requested for an
// order under review (docs/events.md#operator-events).
func (a *App) orderRecheck(ctx context.Context, args []string) error {
	fs := a.flagSet("order recheck")
	o := a.bindOperator(fs)
	a.setUsage(fs, "order recheck -operator NAME [flags] SHOP ORDER", `与信結果確認: publishes order.recheck_requested for the order (new id, source publisher/operator/NAME,
time now): the worker asks ATODENE now for the result of an order under review, outside its re-check
schedule. An order the worker has no state for, and one that is not pending (under review or on hold), are
refused (exit status 1).
`)
	return a.act(ctx, fs, o, args, operator.ActionRecheck, nil, nil)
}

// orderResolve runs `order resolve SHOP ORDER`: order.resolve_requested for an order in the
// unknown state, with the transaction ATODENE holds or none.
func (a *App) orderResolve(ctx context.Context, args []string) error {
	fs := a.flagSet("order resolve")
	o := a.bindOperator(fs)
	tx := fs.String("transaction-id", "", "ATODENE's transaction `ID` (お問い合わせ番号) for the order, found in ATODENE's screen")
	notRegistered := fs.Bool("not-registered", false, "ATODENE holds no transaction for the order")
	a.setUsage(fs, "order resolve -operator NAME (-transaction-id ID | -not-registered) [flags] SHOP ORDER", `Settles an order in the unknown state: publishes order.resolve_requested (new id, source
publisher/operator/NAME, time now) with the transaction ATODENE holds for it (-transaction-id) or saying
ATODENE holds none (-not-registered): exactly one of the two. An order the worker has no state for, and
one that is not unknown, are refused (exit status 1).
`)
	check := func() error {
		switch {
		case *tx == "" && !*notRegistered:
			return usagef("order resolve needs -transaction-id ID or -not-registered: what ATODENE holds for the order")
		case *tx != "" && *notRegistered:
			return usagef("-transaction-id and -not-registered: give one of them")
		}
		return nil
	}
	return a.act(ctx, fs, o, args, operator.ActionResolve, check, func(r *operator.Request) []operator.Option {
		r.Resolution = operator.Resolution{TransactionID: *tx, NotRegistered: *notRegistered}
		return nil
	})
}
