package publisher

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/deadletter"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/termtable"
)

// filter selects dead letters.
type filter struct {
	subject, reason, shop, order string
	since, until                 string
	from, to                     time.Time
}

func (f *filter) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.subject, "subject", "", "original `subject` (NATS wildcards * and > allowed)")
	fs.StringVar(&f.reason, "reason", "", "`reason`: "+strings.Join(handlers.Reasons(), ", "))
	fs.StringVar(&f.shop, "shop", "", "shop `ID`")
	fs.StringVar(&f.order, "order", "", "order `ID`")
	fs.StringVar(&f.since, "since", "", "failed at or after `time` (RFC 3339, or a duration ago such as 2h)")
	fs.StringVar(&f.until, "until", "", "failed before `time` (RFC 3339, or a duration ago)")
}

// resolve parses the time bounds and checks the filters: one that no dead letter can match is a
// usage error, not an empty list that looks like good news.
func (f *filter) resolve(now time.Time) error {
	var err error
	if f.from, err = parseWhen(f.since, now); err != nil {
		return usagef("-since: %v", err)
	}
	if f.to, err = parseWhen(f.until, now); err != nil {
		return usagef("-until: %v", err)
	}
	var fe *deadletter.FilterError
	if errors.As(f.selects().Check(), &fe) {
		switch fe.Field {
		case "until":
			return usagef("-since %s is not before -until %s: no dead letter can match", f.from.Format(time.RFC3339), f.to.Format(time.RFC3339))
		case "reason":
			return usagef("-reason %q %s", f.reason, fe.Problem)
		case "subject":
			return usagef("-subject %q %s", f.subject, fe.Problem)
		}
		return usagef("%v", fe)
	}
	return nil
}

// selects is the filter as the dead-letter library takes it.
func (f *filter) selects() deadletter.Filter {
	return deadletter.Filter{Subject: f.subject, Reason: f.reason, Shop: f.shop, Order: f.order, Since: f.from, Until: f.to}
}

// parseWhen reads a time flag: RFC 3339, or a duration before now; "" is no time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := events.ParseTime(s) // RFC 3339, its lower-case t and z too
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a duration", s)
	}
	return t, nil
}

// dlqOpts are the flags that select dead letters: the stream (-stream) and the filters.
type dlqOpts struct {
	stream string
	filter filter
}

func (o *dlqOpts) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.stream, "stream", "DLQ", "`name` of the dead-letter stream")
	o.filter.bind(fs)
}

// selection is the dead letters a command works on, with its open connection and stream.
type selection struct {
	nc      *nats.Conn
	queue   *deadletter.Queue
	opts    dlqOpts
	letters []deadletter.Letter
	// limit, when set (dlq ls -limit), bounds the letters read: page says how many matched.
	limit *int
	page  deadletter.Listing
}

// selectLetters parses a dead-letter command's flags (the filters, the connection flags, plus
// those extra binds; description heads its -h), connects, and reads the matching dead letters.
// The caller closes sel.nc.
func (a *App) selectLetters(ctx context.Context, name, description string, args []string, extra func(*flag.FlagSet, *selection)) (*selection, error) {
	sel := &selection{}
	fs := a.flagSet(name)
	sel.opts.bind(fs)
	extra(fs, sel)
	a.bindConnection(fs)
	a.setUsage(fs, name+" [filters] [flags]", description+`The filters (-subject, -reason, -shop, -order, -since, -until) select the dead letters; all must match.
`)
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, usagef("%s takes no arguments (got %q): select dead letters with the filters", name, rest[0])
	}
	if err := sel.opts.filter.resolve(time.Now()); err != nil {
		return nil, err
	}
	if sel.limit != nil && *sel.limit < 1 {
		return nil, usagef("%s -limit %d: want at least 1", name, *sel.limit)
	}
	var js jetstream.JetStream
	if sel.nc, js, err = a.connect(); err != nil {
		return nil, err
	}
	sel.queue = deadletter.New(js, sel.opts.stream)
	switch {
	case sel.limit != nil: // a listing reads a page: the headers of all, the bodies of the page only
		f := sel.opts.filter.selects()
		f.Limit = *sel.limit
		sel.page, err = sel.queue.List(ctx, f)
		sel.letters = sel.page.Letters
	default: // a purge acts on every letter that matches, by its sequence; a replay too, reading
		// each body back just before its publish (deadletter.Queue.Replay): neither holds them all
		sel.letters, err = sel.queue.AllHeaders(ctx, sel.opts.filter.selects())
	}
	if err != nil {
		sel.nc.Close()
		return nil, a.where(err)
	}
	return sel, nil
}

// dlqUsage is the usage of the dlq commands as a group.
const dlqUsage = `Usage: publisher dlq <command> [flags]

Commands:
  ls      list dead letters, as a table or JSON lines
  show    show one dead letter, its headers and its body (dlq show SEQ)
  replay  re-publish dead letters to their original subjects
  edit    correct a dead letter's event in $EDITOR (or from a file) and publish it (dlq edit SEQ)
  purge   delete dead letters for good

publisher dlq <command> -h lists the flags of a command.
`

// dlqCommands are the dead-letter commands.
var dlqCommands = group{name: "dlq", usage: dlqUsage, subs: []sub{
	{"ls", nil, (*App).dlqList}, {"show", nil, (*App).dlqShow}, {"replay", nil, (*App).dlqReplay},
	{"edit", nil, (*App).dlqEdit}, {"purge", nil, (*App).dlqPurge},
}}

func (a *App) dlqList(ctx context.Context, args []string) error {
	var asJSON *bool
	sel, err := a.selectLetters(ctx, "dlq ls", "Lists the dead letters that match, oldest first: the first -limit of them, and how many match.\n", args, func(fs *flag.FlagSet, sel *selection) {
		asJSON = fs.Bool("json", false, "print JSON lines, one dead letter a line, instead of a table")
		sel.limit = fs.Int("limit", deadletter.DefaultLimit, "list at most `n` dead letters (at least 1), the oldest that match (counting them all)")
	})
	if err != nil {
		return err
	}
	defer sel.nc.Close()
	ls := sel.letters
	// The letters past -limit are not read: say so, never a silent cut.
	more := ""
	if sel.page.Truncated {
		more = fmt.Sprintf("showing the first %d of %d dead letters that match (-limit %d): narrow the filters, or raise -limit", len(ls), sel.page.Matching, *sel.limit)
	}
	if *asJSON {
		for _, l := range ls {
			if err := a.printJSON(l); err != nil {
				return err
			}
		}
		if more != "" {
			fmt.Fprintf(a.Stderr, "publisher: dlq ls: %s\n", more)
		}
		return nil
	}
	// A letter is mostly an event whose data failed validation: its subject, order_id and error
	// may hold anything, control characters included, which the table shows escaped.
	var tb termtable.Table
	tb.Row("SEQ", "FAILED AT", "REASON", "SUBJECT", "ORDER", "ATTEMPTS", "REPLAYS", "ERROR")
	for _, l := range ls {
		tb.Row(strconv.FormatUint(l.Seq, 10), l.FailedAt.Format(time.RFC3339), l.Reason, l.Subject,
			l.Order, strconv.Itoa(l.Attempts), strconv.Itoa(l.ReplayCount), clipText(l.Error, 80))
	}
	if err := tb.Write(a.Stdout); err != nil {
		return err
	}
	if more != "" {
		fmt.Fprintln(a.Stdout, more)
		return nil
	}
	fmt.Fprintf(a.Stdout, "%d dead letters\n", len(ls))
	return nil
}

func clipText(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func (a *App) dlqShow(ctx context.Context, args []string) error {
	fs := a.flagSet("dlq show")
	stream := fs.String("stream", "DLQ", "`name` of the dead-letter stream")
	asJSON := fs.Bool("json", false, "print the letter as one JSON object: the fields of dlq ls -json, the headers and the body")
	a.bindConnection(fs)
	a.setUsage(fs, "dlq show [flags] SEQ", `Shows the dead letter of sequence SEQ (dlq ls lists them): its headers, then its body, which holds the
buyer's personal data.
`)
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("dlq show needs one sequence number (got %d arguments)", len(rest))
	}
	seq, err := strconv.ParseUint(rest[0], 10, 64)
	if err != nil || seq == 0 {
		return usagef("dlq show: %q is not a sequence number", rest[0])
	}
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	m, err := deadletter.New(js, *stream).Get(ctx, seq)
	if err != nil {
		return a.where(err)
	}
	if *asJSON {
		return a.printJSON(m)
	}
	termtable.Fprintf(a.Stdout, "Sequence: %d\nSubject:  %s\nStored:   %s\n", m.Seq, m.StoredSubject, m.Stored.Format(time.RFC3339))
	names := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		termtable.Fprintf(a.Stdout, "%s: %s\n", k, strings.Join(m.Headers[k], ", "))
	}
	fmt.Fprintln(a.Stdout)
	var pretty bytes.Buffer
	if json.Indent(&pretty, m.Body, "", "  ") == nil {
		err = writeLines(a.Stdout, pretty.String())
	} else {
		_, err = fmt.Fprintf(a.Stdout, "%q\n", m.Body)
	}
	return err
}

func (a *App) dlqReplay(ctx context.Context, args []string) error {
	var (
		dry, asJSON *bool
		rate        *float64
		maxReplays  *int
	)
	sel, err := a.selectLetters(ctx, "dlq replay", `Re-publishes each dead letter that matches to its original subject, and removes it once the server
acknowledged the re-publish. A run that replays nothing because every letter was refused fails (status 1).
`, args, func(fs *flag.FlagSet, _ *selection) {
		dry = fs.Bool("dry-run", false, "print what would be replayed, with counts, and change nothing")
		rate = fs.Float64("rate", 0, "replays per `second` (0: as fast as acknowledgements come)")
		maxReplays = fs.Int("max-replays", 3, "refuse dead letters already replayed this many `times`")
		asJSON = fs.Bool("json", false, "print the result (or the plan of a dry run) as one JSON object")
	})
	if err != nil {
		return err
	}
	defer sel.nc.Close()
	opts := deadletter.ReplayOptions{MaxReplays: *maxReplays, DryRun: *dry}
	var bar *progress
	if !*dry {
		planned := 0
		for _, l := range sel.letters {
			if l.Refusal(*maxReplays) == "" {
				planned++
			}
		}
		lim := newLimiter(*rate)
		bar = a.progress("replaying", planned)
		opts.Pace = func(context.Context) error { lim.wait(); return nil }
		opts.Done = func() { bar.add(1) }
	}
	res, err := sel.queue.Replay(ctx, sel.letters, opts)
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return a.where(err)
	}
	switch {
	case *asJSON:
		err = a.printJSON(res)
	case *dry:
		a.printPlan(res)
	default:
		fmt.Fprintf(a.Stdout, "replayed %d, refused %d (replayed %d times or more, or not replayable)", res.Replayed, res.Refused, res.MaxReplays)
		if res.Gone > 0 {
			fmt.Fprintf(a.Stdout, ", gone %d (removed meanwhile by someone else: not replayed)", res.Gone)
		}
		fmt.Fprintln(a.Stdout)
		a.printRefusals(res, false)
		for _, seq := range res.GoneLetters {
			fmt.Fprintf(a.Stdout, "gone: seq %d was removed meanwhile (purged, or replayed by someone else): not replayed\n", seq)
		}
	}
	if err == nil && res.AllRefused() {
		// Refusals leave letters behind that need an operator: a run that did nothing else says so.
		unreplayable := 0
		for _, l := range res.RefusedLetters {
			if l.Unreplayable != "" {
				unreplayable++
			}
		}
		if unreplayable == 0 {
			return fmt.Errorf("nothing replayed: the %d dead letters that match were all replayed %d times or more already (-max-replays %d): purge them, or raise -max-replays",
				res.Refused, res.MaxReplays, res.MaxReplays)
		}
		return fmt.Errorf("nothing replayed: the %d dead letters that match were all refused, %d of them as not replayable: correct them with dlq edit, or purge them",
			res.Refused, unreplayable)
	}
	return err
}

// printRefusals prints the letters a replay refused: each one not replayable with why, and, when
// counts, each one refused for its replay count.
func (a *App) printRefusals(res deadletter.ReplayResult, counts bool) {
	for _, l := range res.RefusedLetters {
		switch {
		case l.Unreplayable != "":
			termtable.Fprintf(a.Stdout, "refused: seq %d (%s, %s) not replayable: %s\n", l.Seq, l.Reason, l.Subject, l.Unreplayable)
		case counts:
			termtable.Fprintf(a.Stdout, "refused: seq %d (%s, %s) replayed %d times\n", l.Seq, l.Reason, l.Subject, l.ReplayCount)
		}
	}
}

// printPlan prints what a replay would do, with counts per reason and subject.
func (a *App) printPlan(res deadletter.ReplayResult) {
	fmt.Fprintf(a.Stdout, "would replay %d dead letters; %d refused (replayed %d times or more, or not replayable)\n", res.Planned, res.Refused, res.MaxReplays)
	var tb termtable.Table
	tb.Row("REASON", "SUBJECT", "COUNT")
	for _, g := range res.Groups {
		tb.Row(g.Reason, g.Subject, strconv.Itoa(g.Count))
	}
	_ = tb.Write(a.Stdout)
	a.printRefusals(res, true)
}

func (a *App) dlqPurge(ctx context.Context, args []string) error {
	var yes, asJSON *bool
	sel, err := a.selectLetters(ctx, "dlq purge", "Deletes the dead letters that match for good, after asking on the terminal unless -yes.\n", args, func(fs *flag.FlagSet, _ *selection) {
		yes = fs.Bool("yes", false, "do not ask for confirmation")
		asJSON = fs.Bool("json", false, `print the result as one JSON object: {"purged": N}`)
	})
	if err != nil {
		return err
	}
	defer sel.nc.Close()
	ls := sel.letters
	printPurged := func(n int) error {
		if *asJSON {
			return a.printJSON(struct {
				Purged int `json:"purged"`
			}{n})
		}
		if n == 0 {
			_, err := fmt.Fprintln(a.Stdout, "no dead letters match")
			return err
		}
		_, err := fmt.Fprintf(a.Stdout, "purged %d dead letters\n", n)
		return err
	}
	if len(ls) == 0 {
		return printPurged(0)
	}
	if !*yes && !a.confirm(fmt.Sprintf("delete %d dead letters for good? [y/N] ", len(ls))) {
		return errors.New("purge not confirmed: nothing deleted")
	}
	bar := a.progress("purging", len(ls))
	n, err := sel.queue.Purge(ctx, ls, func() { bar.add(1) })
	bar.finish()
	if err != nil {
		return a.where(err)
	}
	return printPurged(n)
}

// confirm asks a yes/no question on Stderr and reads the answer from Stdin.
func (a *App) confirm(question string) bool {
	fmt.Fprint(a.Stderr, question)
	line, _ := bufio.NewReader(a.Stdin).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}
