package publisher

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/inbound"
)

const (
	// batchWindow bounds the asynchronous publishes of a batch that await their acknowledgement.
	batchWindow = 256
	// ackTimeout bounds the wait for one acknowledgement; after it the line counts as failed.
	ackTimeout = 10 * time.Second
)

// inflight is a published line awaiting its acknowledgement.
type inflight struct {
	line   int
	future jetstream.PubAckFuture
}

// batchRun counts a batch's lines and reports the rejected and failed ones.
type batchRun struct {
	a                                       *App
	bar                                     *progress
	published, duplicates, rejected, failed int
	valid                                   int // dry run: lines that would be published
	rejectedLines, failedLines              []int
}

// batchResult is what batch -json prints: the counts of the summary, and the numbers of the lines
// rejected or failed (their problems are on stderr, one line each, as without -json).
type batchResult struct {
	DryRun        bool  `json:"dry_run"`
	Published     int   `json:"published"`
	Duplicates    int   `json:"duplicates"`
	Valid         int   `json:"valid"` // dry run: lines that would be published
	Rejected      int   `json:"rejected"`
	Failed        int   `json:"failed"`
	RejectedLines []int `json:"rejected_lines"`
	FailedLines   []int `json:"failed_lines"`
}

func (b *batchRun) result(dry bool) batchResult {
	return batchResult{DryRun: dry, Published: b.published, Duplicates: b.duplicates, Valid: b.valid,
		Rejected: b.rejected, Failed: b.failed,
		// Lists, even empty ones, so that a reader never meets null.
		RejectedLines: append([]int{}, b.rejectedLines...), FailedLines: append([]int{}, b.failedLines...)}
}

// report writes a line about one input line to Stderr, first clearing the progress bar's line.
func (b *batchRun) report(line int, err error) {
	if b.bar.on {
		fmt.Fprint(b.a.Stderr, "\r\x1b[K")
	}
	problemLines(b.a.Stderr, fmt.Sprintf("line %d: ", line), err)
}

func (b *batchRun) reject(line int, err error) {
	b.rejected++
	b.rejectedLines = append(b.rejectedLines, line)
	b.report(line, err)
	b.bar.add(1)
}

func (b *batchRun) fail(line int, err error) {
	b.failed++
	b.failedLines = append(b.failedLines, line)
	b.report(line, b.a.where(fmt.Errorf("publishing: %w", err)))
	b.bar.add(1)
}

// settle waits for a line's acknowledgement. It always comes, or fails after ackTimeout.
func (b *batchRun) settle(p inflight) {
	select {
	case ack := <-p.future.Ok():
		if ack.Duplicate {
			b.duplicates++
		} else {
			b.published++
		}
		b.bar.add(1)
	case err := <-p.future.Err():
		b.fail(p.line, err)
	}
}

// batch runs `batch`: publishes a JSON lines file, validating every line first.
func (a *App) batch(ctx context.Context, args []string) error {
	fs := a.flagSet("batch")
	file := fs.String("file", "", "JSON lines `file` (- for stdin): one data object or one whole CloudEvent per line")
	typ := fs.String("type", events.TypeOrderCreated, "event `type` of the lines that are data objects (and of whole events without a type)")
	rate := fs.Float64("rate", 0, "events per `second`; 0 publishes as fast as the server acknowledges, with 256 awaiting acknowledgement")
	source := fs.String("source", defaultSource, "CloudEvents `source` of events that have none")
	dry := fs.Bool("dry-run", false, "validate every line; publish nothing")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object, with the numbers of the lines rejected or failed")
	a.bindConnection(fs)
	a.setUsage(fs, "batch -file F.jsonl|- [-type T] [-rate N] [-source S]",
		`Publishes one event per line: a whole CloudEvent (an object with specversion or data) or a data object
of -type. Blank lines are skipped. Missing envelope attributes are filled in, and every line is validated
as the worker validates it: a rejected line is reported as "line N: field: reason" and not published.
The summary counts what the server stored, what it dropped as a duplicate (same source and id within its duplicate
window) and what was rejected; the exit status is 1 when any line was rejected or failed.
`)
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) != 0:
		return usagef("batch takes no arguments (got %q): give the file with -file", rest[0])
	case *file == "":
		return usagef("batch needs -file (- for stdin)")
	case !inbound.IsInbound(*typ):
		return usagef("-type %q is not an inbound event type (%s)", *typ, strings.Join(events.InboundTypes, ", "))
	case *rate < 0:
		return usagef("-rate must not be negative")
	}
	// A -type given on the command line must agree with the type a line carries: batch refuses to
	// guess which of the two was meant.
	typeGiven := false
	fs.Visit(func(f *flag.Flag) { typeGiven = typeGiven || f.Name == "type" })
	in := a.Stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	total := 0
	if a.Terminal && *file != "-" {
		if total, err = countLines(*file); err != nil {
			return err
		}
	}
	b := &batchRun{a: a, bar: a.progress("publishing", total)} // stdin: the total is unknown, 0, and no bar

	var js jetstream.JetStream
	var maxPayload int64 = 1 << 20 // the server's default, for a dry run
	if !*dry {
		nc, _, err := a.connect()
		if err != nil {
			return err
		}
		defer nc.Close()
		if js, err = jetstream.New(nc, jetstream.WithPublishAsyncTimeout(ackTimeout)); err != nil {
			return err
		}
		maxPayload = nc.MaxPayload()
	}

	lim := newLimiter(*rate)
	rd := bufio.NewReader(in)
	var pending []inflight
	var stop error
	line := 0
	for stop == nil {
		raw, readErr := rd.ReadBytes('\n')
		line++
		if !blank(raw) {
			pending = b.line(js, lim, pending, line, bytes.TrimSpace(raw), inbound.Fill{Type: *typ, Strict: typeGiven, Source: *source, Now: time.Now()}, maxPayload)
		}
		switch {
		case errors.Is(readErr, io.EOF):
			stop = io.EOF
		case readErr != nil:
			stop = fmt.Errorf("reading %s after line %d: %w", inputName(*file), line-1, readErr)
		case ctx.Err() != nil:
			stop = fmt.Errorf("interrupted after line %d: %w", line, context.Cause(ctx))
		}
	}
	for _, p := range pending {
		b.settle(p)
	}
	b.bar.finish()

	if *asJSON {
		if err := a.printJSON(b.result(*dry)); err != nil {
			return err
		}
	} else if *dry {
		fmt.Fprintf(a.Stdout, "valid %d, rejected %d (dry run: nothing published)\n", b.valid, b.rejected)
	} else {
		fmt.Fprintf(a.Stdout, "published %d, duplicates %d (reported by the server), rejected %d", b.published, b.duplicates, b.rejected)
		if b.failed > 0 {
			fmt.Fprintf(a.Stdout, ", failed %d", b.failed)
		}
		fmt.Fprintln(a.Stdout)
	}
	switch {
	case !errors.Is(stop, io.EOF):
		return stop
	case b.rejected > 0 || b.failed > 0:
		return fmt.Errorf("%d lines rejected, %d failed to publish", b.rejected, b.failed)
	}
	return nil
}

// line validates and publishes one non-blank line, keeping at most batchWindow publishes awaiting
// their acknowledgement; it returns the publishes still awaiting theirs. js is nil in a dry run.
func (b *batchRun) line(js jetstream.JetStream, lim *limiter, pending []inflight, line int, raw []byte, f inbound.Fill, maxPayload int64) []inflight {
	ev, err := inbound.Wrap(raw, f)
	if err != nil {
		b.reject(line, err)
		return pending
	}
	if int64(len(ev.Body)) > maxPayload {
		b.reject(line, &events.InvalidError{Problems: []events.Problem{{Field: "body",
			Reason: fmt.Sprintf("is %d bytes, more than the server's maximum payload of %d", len(ev.Body), maxPayload)}}})
		return pending
	}
	if js == nil {
		b.valid++
		b.bar.add(1)
		return pending
	}
	lim.wait()
	// The span ends once the message is handed to the connection; its acknowledgement is waited
	// for below, with the others in flight.
	var future jetstream.PubAckFuture
	err = ev.Send(context.Background(), b.a.Tracing, func(_ context.Context, msg *nats.Msg) (err error) {
		future, err = js.PublishMsgAsync(msg, jetstream.WithMsgID(ev.MsgID))
		return err
	})
	if err != nil {
		b.fail(line, err)
		return pending
	}
	pending = append(pending, inflight{line: line, future: future})
	if len(pending) >= batchWindow {
		b.settle(pending[0])
		pending = pending[1:]
	}
	return pending
}

// blank reports whether a line holds nothing to publish: batch skips it.
func blank(line []byte) bool { return len(bytes.TrimSpace(line)) == 0 }

// countLines counts the lines of a file that are not blank, for the progress bar. It reads them
// as batch does: a line batch skips but the count took in would keep the bar short of its end.
func countLines(name string) (int, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rd := bufio.NewReader(f)
	n := 0
	for {
		line, err := rd.ReadBytes('\n')
		if !blank(line) {
			n++
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}
