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
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
)

// letter is a dead letter as the operator commands see it.
type letter struct {
	Seq         uint64    `json:"seq"`
	Subject     string    `json:"original_subject"`
	Stream      string    `json:"original_stream"`
	OrigSeq     string    `json:"original_sequence"`
	Reason      string    `json:"reason"`
	Error       string    `json:"error"`
	Attempts    string    `json:"attempts"`
	FailedAt    time.Time `json:"failed_at"`
	ReplayCount int       `json:"replay_count"`
	Published   string    `json:"published_sequence,omitempty"`
	// PublishedCreated is when the stream of Published was created (Dlq-Published-Stream-Created).
	PublishedCreated string `json:"published_stream_created,omitempty"`
	Shop             string `json:"shop"`
	Order            string `json:"order"`
	body             []byte
}

func toLetter(seq uint64, h nats.Header, body []byte) letter {
	l := letter{Seq: seq, Subject: h.Get(dlq.HeaderOriginalSubject), Stream: h.Get(dlq.HeaderOriginalStream),
		OrigSeq: h.Get(dlq.HeaderOriginalSequence), Reason: h.Get(dlq.HeaderReason), Error: h.Get(dlq.HeaderError),
		Attempts: h.Get(dlq.HeaderAttempts), body: body}
	l.FailedAt, _ = time.Parse(time.RFC3339, h.Get(dlq.HeaderFailedAt))
	l.ReplayCount, _ = strconv.Atoi(h.Get(dlq.HeaderReplayCount))
	l.Published = h.Get(dlq.HeaderPublishedSequence)
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
	fs.StringVar(&f.reason, "reason", "", "`reason`: invalid, unknown-shop, outcome-unknown, poll-deadline or exhausted")
	fs.StringVar(&f.shop, "shop", "", "shop `ID`")
	fs.StringVar(&f.order, "order", "", "order `ID`")
	fs.StringVar(&f.since, "since", "", "failed at or after `time` (RFC 3339, or a duration ago such as 2h)")
	fs.StringVar(&f.until, "until", "", "failed before `time` (RFC 3339, or a duration ago)")
}

// resolve parses the time bounds.
func (f *filter) resolve(now time.Time) error {
	var err error
	if f.from, err = parseWhen(f.since, now); err != nil {
		return usagef("-since: %v", err)
	}
	if f.to, err = parseWhen(f.until, now); err != nil {
		return usagef("-until: %v", err)
	}
	return nil
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
		return nil, fmt.Errorf("opening stream %s: %w", o.stream, err)
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

// selectLetters parses a dead-letter command's flags (the filters, plus those extra binds),
// connects, and reads the matching dead letters. The caller closes sel.nc.
func (a *App) selectLetters(ctx context.Context, name string, args []string, extra func(*flag.FlagSet)) (*selection, error) {
	sel := &selection{}
	fs := a.flagSet(name)
	sel.opts.bind(fs)
	extra(fs)
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if err := sel.opts.filter.resolve(time.Now()); err != nil {
		return nil, err
	}
	var err error
	if sel.nc, sel.js, err = a.connect(); err != nil {
		return nil, err
	}
	if sel.letters, err = a.letters(ctx, sel.js, &sel.opts); err != nil {
		sel.nc.Close()
		return nil, err
	}
	return sel, nil
}

func (a *App) dlq(ctx context.Context, args []string) error {
	sub := map[string]func(context.Context, []string) error{
		"ls": a.dlqList, "show": a.dlqShow, "replay": a.dlqReplay, "purge": a.dlqPurge,
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprintln(a.Stderr, "Usage: publisher dlq ls|show|replay|purge [flags]   (publisher dlq <command> -h for its flags)")
		if len(args) == 0 {
			return usagef("dlq needs a command: ls, show, replay or purge")
		}
		return flag.ErrHelp
	}
	run, ok := sub[args[0]]
	if !ok {
		return usagef("unknown dlq command %q: want ls, show, replay or purge", args[0])
	}
	return run(ctx, args[1:])
}

func (a *App) dlqList(ctx context.Context, args []string) error {
	var asJSON *bool
	sel, err := a.selectLetters(ctx, "dlq ls", args, func(fs *flag.FlagSet) {
		asJSON = fs.Bool("json", false, "print JSON lines instead of a table")
	})
	if err != nil {
		return err
	}
	defer sel.nc.Close()
	ls := sel.letters
	if *asJSON {
		enc := json.NewEncoder(a.Stdout)
		for _, l := range ls {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tFAILED AT\tREASON\tSUBJECT\tORDER\tATTEMPTS\tREPLAYS\tERROR")
	for _, l := range ls {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", l.Seq, l.FailedAt.Format(time.RFC3339), l.Reason, l.Subject,
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

func (a *App) dlqShow(ctx context.Context, args []string) error {
	fs := a.flagSet("dlq show")
	stream := fs.String("stream", "DLQ", "`name` of the dead-letter stream")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("dlq show needs one sequence number")
	}
	seq, err := strconv.ParseUint(fs.Arg(0), 10, 64)
	if err != nil {
		return usagef("dlq show: %q is not a sequence number", fs.Arg(0))
	}
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	s, err := js.Stream(ctx, *stream)
	if err != nil {
		return fmt.Errorf("opening stream %s: %w", *stream, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return fmt.Errorf("dead letter %d: %w", seq, err)
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

func (a *App) dlqReplay(ctx context.Context, args []string) error {
	var (
		dry        *bool
		rate       *float64
		maxReplays *int
	)
	sel, err := a.selectLetters(ctx, "dlq replay", args, func(fs *flag.FlagSet) {
		dry = fs.Bool("dry-run", false, "print what would be replayed, with counts, and change nothing")
		rate = fs.Float64("rate", 0, "replays per `second` (0: as fast as acknowledgements come)")
		maxReplays = fs.Int("max-replays", 3, "refuse dead letters already replayed this many `times`")
	})
	if err != nil {
		return err
	}
	defer sel.nc.Close()
	js, ls := sel.js, sel.letters
	var ok, refused []letter
	for _, l := range ls {
		if l.ReplayCount >= *maxReplays {
			refused = append(refused, l)
		} else {
			ok = append(ok, l)
		}
	}
	if *dry {
		a.printPlan(ok, refused, *maxReplays)
		return nil
	}
	s, err := js.Stream(ctx, sel.opts.stream)
	if err != nil {
		return err
	}
	bar, lim := a.progress("replaying", len(ok)), newLimiter(*rate)
	replayed := 0
	for _, l := range ok {
		lim.wait()
		if err := replay(ctx, js, s, l); err != nil {
			bar.finish()
			return fmt.Errorf("after %d replayed: %w", replayed, err)
		}
		replayed++
		bar.add(1)
	}
	bar.finish()
	fmt.Fprintf(a.Stdout, "replayed %d, refused %d (replayed %d times or more)\n", replayed, len(refused), *maxReplays)
	return nil
}

// replay re-publishes a dead letter's body to its original subject, counting the replay, and
// removes it from the dead-letter stream only once the re-publish is acknowledged.
func replay(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, l letter) error {
	if l.Subject == "" {
		return fmt.Errorf("dead letter %d has no %s header", l.Seq, dlq.HeaderOriginalSubject)
	}
	msg := nats.NewMsg(l.Subject)
	msg.Data = l.body
	count := strconv.Itoa(l.ReplayCount + 1)
	msg.Header.Set(dlq.HeaderReplayCount, count)
	if l.Published != "" {
		msg.Header.Set(dlq.HeaderPublishedSequence, l.Published) // the replay is as old as the event
	}
	if l.PublishedCreated != "" {
		msg.Header.Set(dlq.HeaderPublishedStreamCreated, l.PublishedCreated)
	}
	// The ID makes a repeated replay of the same dead letter (after a crash here) a duplicate.
	id := fmt.Sprintf("replay:%s:%d:%s", s.CachedInfo().Config.Name, l.Seq, count)
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("re-publishing dead letter %d to %s: %w", l.Seq, l.Subject, err)
	}
	if err := s.DeleteMsg(ctx, l.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("removing dead letter %d after its replay: %w", l.Seq, err)
	}
	return nil
}

// printPlan prints what a replay would do, with counts per reason and subject.
func (a *App) printPlan(ok, refused []letter, maxReplays int) {
	fmt.Fprintf(a.Stdout, "would replay %d dead letters; %d refused (replayed %d times or more)\n", len(ok), len(refused), maxReplays)
	counts := map[[2]string]int{}
	for _, l := range ok {
		counts[[2]string{l.Reason, l.Subject}]++
	}
	keys := make([][2]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REASON\tSUBJECT\tCOUNT")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", k[0], k[1], counts[k])
	}
	_ = tw.Flush()
	for _, l := range refused {
		fmt.Fprintf(a.Stdout, "refused: seq %d (%s, %s) replayed %d times\n", l.Seq, l.Reason, l.Subject, l.ReplayCount)
	}
}

func (a *App) dlqPurge(ctx context.Context, args []string) error {
	var yes *bool
	sel, err := a.selectLetters(ctx, "dlq purge", args, func(fs *flag.FlagSet) {
		yes = fs.Bool("yes", false, "do not ask for confirmation")
	})
	if err != nil {
		return err
	}
	defer sel.nc.Close()
	js, ls := sel.js, sel.letters
	if len(ls) == 0 {
		fmt.Fprintln(a.Stdout, "no dead letters match")
		return nil
	}
	if !*yes && !a.confirm(fmt.Sprintf("delete %d dead letters for good? [y/N] ", len(ls))) {
		return errors.New("purge not confirmed: nothing deleted")
	}
	s, err := js.Stream(ctx, sel.opts.stream)
	if err != nil {
		return err
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
	fmt.Fprintf(a.Stdout, "purged %d dead letters\n", len(ls))
	return nil
}

// confirm asks a yes/no question on Stderr and reads the answer from Stdin.
func (a *App) confirm(question string) bool {
	fmt.Fprint(a.Stderr, question)
	line, _ := bufio.NewReader(a.Stdin).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}
