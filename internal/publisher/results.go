package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/streamscan"
	"github.com/atodene-worker/atodene-worker/internal/termtable"
)

// resultKinds are the first tokens of the outcome subjects, in the order of the contract.
var resultKinds = []string{"credit", "shipment", "invoice"}

// outcomeTypes are the outcome event types, in the order of the contract.
var outcomeTypes = []string{events.TypeCreditOK, events.TypeCreditNG, events.TypeCreditPending, events.TypeCreditCancelled,
	events.TypeCreditInvalid, events.TypeShipmentOK, events.TypeShipmentNG, events.TypeInvoiceOK, events.TypeInvoiceNG}

// resultsUsage is the usage of the results commands as a group.
const resultsUsage = `Usage: publisher results <command> [flags]

Commands:
  tail    follow the outcome events (credit.*, shipment.*, invoice.*) as they are published; also "watch"

publisher results tail -h lists the flags.
`

// resultsCommands are the results commands.
var resultsCommands = group{name: "results", usage: resultsUsage, subs: []sub{
	{"tail", []string{"watch"}, (*App).resultsTail},
}}

// tailRow is a row of the results tail table; a value wider than its column pushes the rest right.
const tailRow = "%-19s  %-16s  %-10s  %-26s  %-11s  %s\n" // ORDER holds a 26-character Rakuten order number

// outcome is an outcome event as results tail -json prints it: where the stream holds it, what it
// is about, and the event's data as it is.
type outcome struct {
	Seq         uint64          `json:"seq"`
	Stored      time.Time       `json:"stored_at"`
	Subject     string          `json:"subject"`
	Type        string          `json:"type"`
	Shop        string          `json:"shop"`
	Order       string          `json:"order"`
	ID          string          `json:"id"`
	CausationID string          `json:"causationid"`
	Time        string          `json:"time"`
	Data        json.RawMessage `json:"data"`
}

// typeFilters turns the -type list (credit.ok, credit.*, invoice...) into subject filters for a
// shop ("*" for all), or says what is wrong with it.
func typeFilters(list, shop string) ([]string, error) {
	if shop == "" {
		shop = "*"
	}
	if list == "" {
		out := make([]string, 0, len(resultKinds))
		for _, k := range resultKinds {
			if shop == "*" {
				out = append(out, k+".>")
			} else {
				out = append(out, k+".*."+shop)
			}
		}
		return out, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		kind, event, _ := strings.Cut(t, ".")
		switch {
		case event == "" || event == "*" || event == ">":
			if !slices.Contains(resultKinds, kind) {
				return nil, fmt.Errorf("%q is not an outcome type: want one of %s, or credit.*, shipment.*, invoice.*", t, strings.Join(outcomeTypes, ", "))
			}
			t = kind + ".*"
		case !slices.Contains(outcomeTypes, t):
			return nil, fmt.Errorf("%q is not an outcome type: want one of %s, or credit.*, shipment.*, invoice.*", t, strings.Join(outcomeTypes, ", "))
		}
		if f := t + "." + shop; !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	// A kind's wildcard covers its types: the server refuses overlapping filters.
	var kept []string
	for _, f := range out {
		kind, _, _ := strings.Cut(f, ".")
		if !strings.Contains(f, ".*.") && seen[kind+".*."+shop] {
			continue
		}
		kept = append(kept, f)
	}
	return kept, nil
}

// resultsTail runs `results tail` (and `results watch`): the outcome events as they come.
func (a *App) resultsTail(ctx context.Context, args []string) error {
	fs := a.flagSet("results tail")
	stream := fs.String("stream", "RESULTS", "`name` of the outcome stream")
	shop := fs.String("shop", "", "only the outcomes of shop `ID`")
	orderID := fs.String("order", "", "only the outcomes of order `ID` (its data.order_id)")
	types := fs.String("type", "", "only these outcome `types`, comma-separated: credit.ok, credit.ng, …, or credit.*, shipment.*, invoice.*")
	since := fs.String("since", "", "start from the outcomes stored at or after `time` (RFC 3339, or a duration ago such as 2h); default: new ones only")
	n := fs.Int("n", 0, "stop after `N` outcomes (0: follow until interrupted)")
	asJSON := fs.Bool("json", false, "print JSON lines, one outcome a line, with the event's data as it is, instead of a table")
	a.bindConnection(fs)
	a.setUsage(fs, "results tail [flags]", `Follows the outcome events the worker publishes to the RESULTS stream (credit.*, shipment.*,
invoice.*), as they come, until interrupted (Ctrl-C, exit status 0) or -n outcomes were printed. The table
shows no personal data; -json prints each event's data as it is (invoice.ok holds the invoice's addressee).
`)
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) != 0:
		return usagef("results tail takes no arguments (got %q): select outcomes with -shop, -order and -type", rest[0])
	case *shop != "" && !events.ValidShopID(*shop):
		return usagef("-shop %q is not a shop ID (1-32 of A-Z, a-z, 0-9, _ and -)", *shop)
	case *n < 0:
		return usagef("-n must not be negative")
	}
	filters, err := typeFilters(*types, *shop)
	if err != nil {
		return usagef("-type: %v", err)
	}
	start, err := parseWhen(*since, time.Now())
	if err != nil {
		return usagef("-since: %v", err)
	}
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	s, err := js.Stream(ctx, *stream)
	if err != nil {
		return a.where(fmt.Errorf("opening stream %s: %w", *stream, err))
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverNewPolicy}
	if !start.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	f, err := streamscan.Follow(ctx, s, cfg, func(created time.Time) {
		fmt.Fprintf(a.Stderr, "publisher: stream %s was created again (%s JST): following it from its first outcome\n", *stream, jst.Format(created))
	})
	if err != nil {
		return err
	}
	defer f.Stop()
	if !*asJSON {
		fmt.Fprintf(a.Stdout, tailRow, "TIME (JST)", "TYPE", "SHOP", "ORDER", "TRANSACTION", "DETAIL")
	}
	for printed := 0; *n == 0 || printed < *n; {
		m, err := f.Next(ctx)
		if ctx.Err() != nil {
			return nil // interrupted: the normal end of a tail
		}
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("following stream %s: %w", *stream, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		o := readOutcome(m.Subject(), m.Data(), md.Sequence.Stream, md.Timestamp)
		if *orderID != "" && o.Order != *orderID {
			continue
		}
		printed++
		if *asJSON {
			if err := a.printJSON(o); err != nil {
				return err
			}
			continue
		}
		// Each line as it comes, in columns of fixed widths: a table aligned on its widest values
		// would wait for the end to print anything.
		if _, err := termtable.Fprintf(a.Stdout, tailRow, jst.Format(o.when()), o.Type, o.Shop, orDash(o.Order), orDash(transactionOf(o.Data)), oneLine(outcomeDetail(o))); err != nil {
			return err
		}
	}
	return nil
}

// readOutcome reads an outcome message; one that is no CloudEvent keeps its data empty.
func readOutcome(subject string, body []byte, seq uint64, stored time.Time) outcome {
	o := outcome{Seq: seq, Stored: stored, Subject: subject}
	o.Type, o.Shop, _ = events.ParseSubject(subject)
	var env events.Envelope
	if json.Unmarshal(body, &env) == nil {
		o.ID, o.CausationID, o.Time, o.Data = env.ID, env.CausationID, env.Time, env.Data
	}
	var data struct {
		OrderID string `json:"order_id"`
	}
	_ = json.Unmarshal(o.Data, &data)
	o.Order = data.OrderID
	if o.Data == nil {
		o.Data = json.RawMessage("null")
	}
	return o
}

// when is the outcome's time: the event's, else when the stream stored it.
func (o outcome) when() time.Time {
	if t, err := time.Parse(time.RFC3339, o.Time); err == nil {
		return t
	}
	return o.Stored
}

func transactionOf(data json.RawMessage) string {
	var d struct {
		TransactionID string `json:"transaction_id"`
	}
	_ = json.Unmarshal(data, &d)
	return d.TransactionID
}

// outcomeDetail says in a few words what an outcome holds, without personal data.
func outcomeDetail(o outcome) string {
	var parts []string
	errs := func(list []events.ProviderError) {
		for _, e := range list {
			where := strings.TrimSpace(e.Point + " " + e.Code)
			parts = append(parts, fmt.Sprintf("error %s: %s", where, e.Message))
		}
	}
	kind, _, _ := strings.Cut(o.Type, ".")
	switch kind {
	case "credit":
		var c events.Credit
		if json.Unmarshal(o.Data, &c) != nil {
			return "(data unreadable)"
		}
		parts = append(parts, fmt.Sprintf("fee %d, billed %d", c.Fee, c.BilledAmount))
		if c.Result == "pending" {
			parts = append(parts, map[string]string{"": "under review", "hold": "on hold"}[c.Review])
		}
		for _, r := range c.Reasons {
			parts = append(parts, "reason "+r)
		}
		errs(c.Errors)
	case "shipment":
		var s events.Shipment
		if json.Unmarshal(o.Data, &s) != nil {
			return "(data unreadable)"
		}
		parts = append(parts, fmt.Sprintf("carrier %s, tracking %s, report %s", s.CarrierCode, s.TrackingNumber, s.Report))
		errs(s.Errors)
	case "invoice":
		var inv events.Invoice
		if json.Unmarshal(o.Data, &inv) != nil {
			return "(data unreadable)"
		}
		if p := inv.Invoice; p != nil {
			parts = append(parts, fmt.Sprintf("print data: %d fields, %d lines, billed %s, due %s", len(p.Fields), len(p.Details),
				orDash(p.Fields["billedAmount"]), orDash(p.Fields["billDeadlineDate"])))
		}
		errs(inv.Errors)
	}
	return strings.Join(parts, "; ")
}
