package publisher

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
)

// letter is a dead letter as the operator commands see it, and as -json prints it: counts and
// sequences are numbers (0 where the header is missing or unreadable), times RFC 3339 strings.
type letter struct {
	Seq         uint64    `json:"seq"`
	Subject     string    `json:"original_subject"`
	Stream      string    `json:"original_stream"`
	OrigSeq     uint64    `json:"original_sequence"`
	Reason      string    `json:"reason"`
	Error       string    `json:"error"`
	Attempts    int       `json:"attempts"`
	FailedAt    time.Time `json:"failed_at"`
	ReplayCount int       `json:"replay_count"`
	Published   uint64    `json:"published_sequence,omitempty"`
	// PublishedCreated is when the stream of Published was created (Dlq-Published-Stream-Created).
	PublishedCreated string `json:"published_stream_created,omitempty"`
	Shop             string `json:"shop"`
	Order            string `json:"order"`
	body             []byte
}

func toLetter(seq uint64, h nats.Header, body []byte) letter {
	l := letter{Seq: seq, Subject: h.Get(dlq.HeaderOriginalSubject), Stream: h.Get(dlq.HeaderOriginalStream),
		Reason: h.Get(dlq.HeaderReason), Error: h.Get(dlq.HeaderError), body: body}
	l.OrigSeq, _ = strconv.ParseUint(h.Get(dlq.HeaderOriginalSequence), 10, 64)
	l.Attempts, _ = strconv.Atoi(h.Get(dlq.HeaderAttempts))
	l.FailedAt, _ = time.Parse(time.RFC3339, h.Get(dlq.HeaderFailedAt))
	l.ReplayCount, _ = strconv.Atoi(h.Get(dlq.HeaderReplayCount))
	l.Published, _ = strconv.ParseUint(h.Get(dlq.HeaderPublishedSequence), 10, 64)
	l.PublishedCreated = h.Get(dlq.HeaderPublishedStreamCreated)
	if parts := strings.Split(l.Subject, "."); len(parts) >= 3 {
		l.Shop = parts[2]
	}
	l.Shop, l.Order = orderOf(l.Subject, body, l.Shop)
	return l
}

// orderOf finds the shop and order of a dead letter: from its event data, or from a poll body.
func orderOf(subject string, body []byte, shop string) (string, string) {
	var env struct {
		Data struct {
			ShopID  string `json:"shop_id"`
			OrderID string `json:"order_id"`
		} `json:"data"`
		Shop    string `json:"shop"`
		OrderID string `json:"order_id"`
	}
	if json.Unmarshal(body, &env) != nil {
		return shop, ""
	}
	if env.Data.OrderID != "" {
		return shop, env.Data.OrderID
	}
	if env.OrderID != "" { // a poll request
		return env.Shop, env.OrderID
	}
	return shop, ""
}

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
	if !f.from.IsZero() && !f.to.IsZero() && !f.from.Before(f.to) {
		return usagef("-since %s is not before -until %s: no dead letter can match", f.from.Format(time.RFC3339), f.to.Format(time.RFC3339))
	}
	if f.reason != "" && !slices.Contains(handlers.Reasons(), f.reason) {
		return usagef("-reason %q is not a dead-letter reason: want one of %s", f.reason, strings.Join(handlers.Reasons(), ", "))
	}
	if problem := subjectProblem(f.subject); problem != "" {
		return usagef("-subject %q %s", f.subject, problem)
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

func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a duration", s)
	}
	return t, nil
}

// streamSubject narrows the read to the subject filter, so the server does the filtering.
func (f *filter) streamSubject() string {
	if f.subject == "" {
		return dlq.SubjectPrefix + ">"
	}
	return dlq.SubjectPrefix + f.subject
}

func (f *filter) match(l letter) bool {
	return (f.reason == "" || l.Reason == f.reason) && (f.shop == "" || l.Shop == f.shop) &&
		(f.order == "" || l.Order == f.order) &&
		(f.from.IsZero() || !l.FailedAt.Before(f.from)) && (f.to.IsZero() || l.FailedAt.Before(f.to))
}

// dlqStream is the dead-letter stream's name (-stream).
type dlqOpts struct {
	stream string
	filter filter
}

func (o *dlqOpts) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.stream, "stream", "DLQ", "`name` of the dead-letter stream")
	o.filter.bind(fs)
}

// letters reads the dead letters that match.
func (a *App) letters(ctx context.Context, js jetstream.JetStream, o *dlqOpts) ([]letter, error) {
	s, err := js.Stream(ctx, o.stream)
	if err != nil {
		return nil, a.where(fmt.Errorf("opening stream %s: %w", o.stream, err))
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{o.filter.streamSubject()}})
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: %w", o.stream, err)
	}
	var out []letter
	for {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			return nil, fmt.Errorf("reading stream %s: %w", o.stream, err)
		}
		n, left := 0, uint64(0)
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			left = md.NumPending
			if l := toLetter(md.Sequence.Stream, m.Headers(), m.Data()); o.filter.match(l) {
				out = append(out, l)
			}
		}
		if n == 0 || left == 0 {
			return out, nil
		}
	}
}

// selection is the dead letters a command works on, with its open connection.
type selection struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	opts    dlqOpts
	letters []letter
}

// selectLetters parses a dead-letter command's flags (the filters, the connection flags, plus
// those extra binds; description heads its -h), connects, and reads the matching dead letters.
// The caller closes sel.nc.
func (a *App) selectLetters(ctx context.Context, name, description string, args []string, extra func(*flag.FlagSet)) (*selection, error) {
	sel := &selection{}
	fs := a.flagSet(name)
	sel.opts.bind(fs)
	extra(fs)
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
	if sel.nc, sel.js, err = a.connect(); err != nil {
		return nil, err
	}
	if sel.letters, err = a.letters(ctx, sel.js, &sel.opts); err != nil {
		sel.nc.Close()
		return nil, err
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

func (a *App) dlq(ctx context.Context, args []string) error {
	sub := map[string]func(context.Context, []string) error{
		"ls": a.dlqList, "show": a.dlqShow, "replay": a.dlqReplay, "edit": a.dlqEdit, "purge": a.dlqPurge,
	}
	switch {
	case len(args) == 0:
		fmt.Fprint(a.Stderr, dlqUsage)
		return usagef("dlq needs a command: ls, show, replay, edit or purge")
	case isHelp(args[0]):
		return a.help(dlqUsage)
	}
	run, ok := sub[args[0]]
	if !ok {
		return usagef("unknown dlq command %q: want ls, show, replay, edit or purge", args[0])
	}
	return run(ctx, args[1:])
}

func (a *App) dlqList(ctx context.Context, args []string) error {
	var asJSON *bool
	sel, err := a.selectLetters(ctx, "dlq ls", "Lists the dead letters that match, oldest first.\n", args, func(fs *flag.FlagSet) {
		asJSON = fs.Bool("json", false, "print JSON lines, one dead letter a line, instead of a table")
	})
	if err != nil {
		return err
	}
	defer sel.nc.Close()
	ls := sel.letters
	if *asJSON {
		for _, l := range ls {
			if err := a.printJSON(l); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tFAILED AT\tREASON\tSUBJECT\tORDER\tATTEMPTS\tREPLAYS\tERROR")
	for _, l := range ls {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", l.Seq, l.FailedAt.Format(time.RFC3339), l.Reason, l.Subject,
			l.Order, l.Attempts, l.ReplayCount, clipText(l.Error, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
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

// shownLetter is what dlq show -json prints: the letter as dlq ls -json gives it, with the
// message's own subject, the time it was stored, every header, and the body: JSON as it is,
// anything else as a string.
type shownLetter struct {
	letter
	StoredSubject string              `json:"subject"`
	Stored        time.Time           `json:"stored_at"`
	Headers       map[string][]string `json:"headers"`
	Body          json.RawMessage     `json:"body"`
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
	_, m, err := a.deadLetter(ctx, js, *stream, seq)
	if err != nil {
		return err
	}
	if *asJSON {
		return a.printJSON(showLetter(m))
	}
	fmt.Fprintf(a.Stdout, "Sequence: %d\nSubject:  %s\nStored:   %s\n", m.Sequence, m.Subject, m.Time.Format(time.RFC3339))
	names := make([]string, 0, len(m.Header))
	for k := range m.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(a.Stdout, "%s: %s\n", k, strings.Join(m.Header.Values(k), ", "))
	}
	fmt.Fprintln(a.Stdout)
	var pretty bytes.Buffer
	if json.Indent(&pretty, m.Data, "", "  ") == nil {
		_, err = fmt.Fprintln(a.Stdout, pretty.String())
	} else {
		_, err = fmt.Fprintf(a.Stdout, "%q\n", m.Data)
	}
	return err
}

func showLetter(m *jetstream.RawStreamMsg) shownLetter {
	body := json.RawMessage(m.Data)
	if !json.Valid(m.Data) {
		body, _ = json.Marshal(string(m.Data)) // a string cannot fail to marshal
	}
	headers := map[string][]string(m.Header)
	if headers == nil {
		headers = map[string][]string{}
	}
	return shownLetter{letter: toLetter(m.Sequence, m.Header, m.Data), StoredSubject: m.Subject, Stored: m.Time,
		Headers: headers, Body: body}
}

func (a *App) dlqReplay(ctx context.Context, args []string) error {
	var (
		dry, asJSON *bool
		rate        *float64
		maxReplays  *int
	)
	sel, err := a.selectLetters(ctx, "dlq replay", `Re-publishes each dead letter that matches to its original subject, and removes it once the server
acknowledged the re-publish. A run that replays nothing because every letter was refused fails (status 1).
`, args, func(fs *flag.FlagSet) {
		dry = fs.Bool("dry-run", false, "print what would be replayed, with counts, and change nothing")
		rate = fs.Float64("rate", 0, "replays per `second` (0: as fast as acknowledgements come)")
		maxReplays = fs.Int("max-replays", 3, "refuse dead letters already replayed this many `times`")
		asJSON = fs.Bool("json", false, "print the result (or the plan of a dry run) as one JSON object")
	})
	if err != nil {
		return err
	}
	defer sel.nc.Close()
	res := replayResult{DryRun: *dry, MaxReplays: *maxReplays, RefusedLetters: []letter{}}
	var ok []letter
	for _, l := range sel.letters {
		if l.ReplayCount >= *maxReplays {
			res.RefusedLetters = append(res.RefusedLetters, l)
		} else {
			ok = append(ok, l)
		}
	}
	res.Planned, res.Refused, res.Groups = len(ok), len(res.RefusedLetters), groupLetters(ok)
	if !*dry {
		s, err := sel.js.Stream(ctx, sel.opts.stream)
		if err != nil {
			return a.where(err)
		}
		if res.Replayed, err = a.replayLetters(ctx, sel.js, s, ok, *rate); err != nil {
			return err
		}
	}
	switch {
	case *asJSON:
		err = a.printJSON(res)
	case *dry:
		a.printPlan(res)
	default:
		_, err = fmt.Fprintf(a.Stdout, "replayed %d, refused %d (replayed %d times or more)\n", res.Replayed, res.Refused, res.MaxReplays)
	}
	if err == nil && !*dry && res.Replayed == 0 && res.Refused > 0 {
		// Refusals leave letters behind that need an operator: a run that did nothing else says so.
		return fmt.Errorf("nothing replayed: the %d dead letters that match were all replayed %d times or more already (-max-replays %d): purge them, or raise -max-replays",
			res.Refused, res.MaxReplays, res.MaxReplays)
	}
	return err
}

// replayResult is what dlq replay -json prints. Planned counts the matching letters under
// -max-replays, which a run replays (Replayed) and a dry run only counts (Groups).
type replayResult struct {
	DryRun         bool          `json:"dry_run"`
	Planned        int           `json:"planned"`
	Replayed       int           `json:"replayed"`
	Refused        int           `json:"refused"`
	MaxReplays     int           `json:"max_replays"`
	Groups         []replayGroup `json:"groups"`
	RefusedLetters []letter      `json:"refused_letters"`
}

// replayGroup counts the planned letters of one reason and original subject.
type replayGroup struct {
	Reason  string `json:"reason"`
	Subject string `json:"subject"`
	Count   int    `json:"count"`
}

// groupLetters counts letters by reason and subject, sorted.
func groupLetters(ls []letter) []replayGroup {
	counts := map[[2]string]int{}
	for _, l := range ls {
		counts[[2]string{l.Reason, l.Subject}]++
	}
	groups := make([]replayGroup, 0, len(counts))
	for k, n := range counts {
		groups = append(groups, replayGroup{Reason: k[0], Subject: k[1], Count: n})
	}
	sort.Slice(groups, func(i, j int) bool {
		return groups[i].Reason < groups[j].Reason || groups[i].Reason == groups[j].Reason && groups[i].Subject < groups[j].Subject
	})
	return groups
}

// replayLetters replays the letters at rate per second (0: no limit), drawing a progress bar, and
// returns how many it replayed; it stops at the first failure.
func (a *App) replayLetters(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, ls []letter, rate float64) (int, error) {
	bar, lim := a.progress("replaying", len(ls)), newLimiter(rate)
	defer bar.finish()
	for i, l := range ls {
		lim.wait()
		if err := replay(ctx, js, s, l); err != nil {
			return i, fmt.Errorf("after %d replayed: %w", i, err)
		}
		bar.add(1)
	}
	return len(ls), nil
}

// replay re-publishes a dead letter's body to its original subject, counting the replay, and
// removes it from the dead-letter stream only once the re-publish is acknowledged.
func replay(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, l letter) error {
	if l.Subject == "" {
		return fmt.Errorf("dead letter %d has no %s header", l.Seq, dlq.HeaderOriginalSubject)
	}
	msg := nats.NewMsg(l.Subject)
	msg.Data = l.body
	_, err := republish(ctx, js, s, l, msg, "replay")
	return err
}

// republish publishes msg in place of the dead letter l (its replay, or its edit): with the
// letter's replay count incremented and the position of the event it repeats (so that the worker
// orders it as that event), under a message ID of its own (kind, the letter's stream, sequence and
// count), so that a repeat after a crash here is a duplicate. It removes the letter from s only
// once the publish is acknowledged.
func republish(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, l letter, msg *nats.Msg, kind string) (*jetstream.PubAck, error) {
	count := strconv.Itoa(l.ReplayCount + 1)
	msg.Header.Set(dlq.HeaderReplayCount, count)
	if l.Published != 0 {
		msg.Header.Set(dlq.HeaderPublishedSequence, strconv.FormatUint(l.Published, 10)) // the replay is as old as the event
	}
	if l.PublishedCreated != "" {
		msg.Header.Set(dlq.HeaderPublishedStreamCreated, l.PublishedCreated)
	}
	id := fmt.Sprintf("%s:%s:%d:%s", kind, s.CachedInfo().Config.Name, l.Seq, count)
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(id))
	if err != nil {
		return nil, fmt.Errorf("re-publishing dead letter %d to %s: %w", l.Seq, msg.Subject, err)
	}
	if err := s.DeleteMsg(ctx, l.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return ack, fmt.Errorf("removing dead letter %d after its %s: %w", l.Seq, kind, err)
	}
	return ack, nil
}

// printPlan prints what a replay would do, with counts per reason and subject.
func (a *App) printPlan(res replayResult) {
	fmt.Fprintf(a.Stdout, "would replay %d dead letters; %d refused (replayed %d times or more)\n", res.Planned, res.Refused, res.MaxReplays)
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REASON\tSUBJECT\tCOUNT")
	for _, g := range res.Groups {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", g.Reason, g.Subject, g.Count)
	}
	_ = tw.Flush()
	for _, l := range res.RefusedLetters {
		fmt.Fprintf(a.Stdout, "refused: seq %d (%s, %s) replayed %d times\n", l.Seq, l.Reason, l.Subject, l.ReplayCount)
	}
}

func (a *App) dlqPurge(ctx context.Context, args []string) error {
	var yes, asJSON *bool
	sel, err := a.selectLetters(ctx, "dlq purge", "Deletes the dead letters that match for good, after asking on the terminal unless -yes.\n", args, func(fs *flag.FlagSet) {
		yes = fs.Bool("yes", false, "do not ask for confirmation")
		asJSON = fs.Bool("json", false, `print the result as one JSON object: {"purged": N}`)
	})
	if err != nil {
		return err
	}
	defer sel.nc.Close()
	js, ls := sel.js, sel.letters
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
	s, err := js.Stream(ctx, sel.opts.stream)
	if err != nil {
		return a.where(err)
	}
	bar := a.progress("purging", len(ls))
	for i, l := range ls {
		if err := s.DeleteMsg(ctx, l.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			bar.finish()
			return fmt.Errorf("after %d deleted: deleting %d: %w", i, l.Seq, err)
		}
		bar.add(1)
	}
	bar.finish()
	return printPurged(len(ls))
}

// confirm asks a yes/no question on Stderr and reads the answer from Stdin.
func (a *App) confirm(question string) bool {
	fmt.Fprint(a.Stderr, question)
	line, _ := bufio.NewReader(a.Stdin).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}
