package publisher

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// The tests of this file hold the tool to the manners of a command-line tool (docs/operations.md).

// deadLetters starts a JetStream server of the test's own with the worker's ORDERS and DLQ streams,
// writes the letters into DLQ with the worker's own writer, and returns the server's URL and DLQ.
func deadLetters(t *testing.T, letters ...dlq.Letter) (string, jetstream.Stream) {
	t.Helper()
	url, js := testenv.JetStream(t)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"},
		Duplicates: 2 * time.Minute, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	s, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "DLQ", Subjects: []string{"dlq.>"},
		Duplicates: 2 * time.Minute, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	w := dlq.NewWriter(js)
	for _, l := range letters {
		if err := w.Write(t.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	return url, s
}

// deadLetter is the letter of order.created event seq of shop, dead-lettered for reason after
// attempts deliveries, replayed replays times already.
func deadLetter(seq uint64, shop, reason string, attempts, replays int) dlq.Letter {
	l := dlq.Letter{Subject: "orders.created." + shop, Stream: "ORDERS", Sequence: seq, Reason: reason,
		Body: []byte(`{"specversion":"1.0","id":"e-` + strconv.FormatUint(seq, 10) + `","data":{"shop_id":"` + shop + `","order_id":"O-` + strconv.FormatUint(seq, 10) + `"}}`),
		Err:  errors.New("it failed"), Attempts: attempts, FailedAt: time.Date(2026, 11, 27, 0, 39, 49, 0, time.UTC),
		Published: seq}
	if replays > 0 {
		l.ReplayCount = strconv.Itoa(replays)
	}
	return l
}

// TestHelpGoesToStdoutAndSucceeds: -h of every command and subcommand prints its usage on stdout
// (so that `publisher dlq ls -h | less` works) and is no error; a mistake prints on stderr.
func TestHelpGoesToStdoutAndSucceeds(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-h"}, {"-help"}, {"--help"},
		{"publish", "-h"}, {"batch", "-h"}, {"sample", "--help"},
		{"dlq", "-h"}, {"dlq", "ls", "-h"}, {"dlq", "show", "-h"}, {"dlq", "replay", "-h"}, {"dlq", "purge", "-h"},
		{"order", "-h"}, {"order", "show", "-h"}, {"order", "history", "-h"}, {"order", "rerun", "-h"}, {"order", "cancel", "-h"},
		{"results", "-h"}, {"results", "tail", "-h"}, {"results", "watch", "-h"}, {"invoice", "-h"}, {"invoice", "print", "-h"},
		{"dlq", "edit", "-h"}, {"dlq", "edit", "3", "-h"},
		{"dlq", "show", "7", "-h"}, // after an argument
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			r := runPublisher(t, "nats://127.0.0.1:1", "", false, args...)
			if !errors.Is(r.err, flag.ErrHelp) {
				t.Errorf("err = %v, want flag.ErrHelp (exit status 0)", r.err)
			}
			want := "Usage: publisher"
			if args[0] != "-h" && args[0] != "-help" && args[0] != "--help" {
				want += " " + args[0]
			}
			if !strings.HasPrefix(r.stdout, want) || r.stderr != "" {
				t.Errorf("want the usage on stdout, nothing on stderr; stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
		})
	}
	r := runPublisher(t, "nats://127.0.0.1:1", "", false, "dlq", "ls", "-nonsense")
	if !errors.As(r.err, new(UsageError)) || r.stdout != "" || !strings.Contains(r.err.Error(), "dlq ls") {
		t.Errorf("a wrong flag: err = %v, stdout %q; want a usage error naming the command and nothing on stdout", r.err, r.stdout)
	}
}

// TestFlagsAfterArguments: flags are taken after the arguments too, and the connection flags
// after the command, so that `dlq show 3 -json` and `dlq ls -nats-url URL` do what they say.
func TestFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	url, _ := deadLetters(t, deadLetter(1, "shop-b", handlers.ReasonUnknownShop.String(), 1, 0))
	r := runPublisher(t, "nats://127.0.0.1:1", "", false, "dlq", "show", "1", "-json", "-nats-url", url)
	if r.err != nil {
		t.Fatalf("dlq show 1 -json -nats-url URL: %v\n%s", r.err, r.stderr)
	}
	var shown map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil || shown["reason"] != handlers.ReasonUnknownShop.String() {
		t.Errorf("dlq show 1 -json: %v\n%s", err, r.stdout)
	}
	r = runPublisher(t, url, "", false, "dlq", "show", "--", "1")
	if r.err != nil || !strings.Contains(r.stdout, "Dlq-Reason: unknown-shop") {
		t.Errorf("dlq show -- 1: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	r = runPublisher(t, "nats://127.0.0.1:1", "", false, "sample", "x", "-n", "1")
	if !errors.As(r.err, new(UsageError)) || !strings.Contains(r.err.Error(), `"x"`) {
		t.Errorf("sample x -n 1: err = %v, want a usage error naming the stray argument", r.err)
	}
}

// TestFilterValuesAreValidated: a filter that can match nothing, because no dead letter can have
// such a value, is a usage error that says what is allowed (before connecting anywhere).
func TestFilterValuesAreValidated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-reason", "unknown_shop"}, append([]string{`-reason "unknown_shop"`}, handlers.Reasons()...)},
		{[]string{"-reason", "Invalid"}, []string{`-reason "Invalid"`}},
		{[]string{"-subject", "dlq.orders.>"}, []string{`-subject "dlq.orders.>"`, "orders.>"}},
		{[]string{"-subject", "orders..x"}, []string{`-subject "orders..x"`}},
		{[]string{"-subject", "orders created"}, []string{`-subject "orders created"`}},
		{[]string{"-subject", "orders.>.x"}, []string{`-subject "orders.>.x"`}},
		{[]string{"-since", "1h", "-until", "2h"}, []string{"-since", "-until"}},
	} {
		for _, cmd := range []string{"ls", "replay", "purge"} {
			args := append([]string{"dlq", cmd}, tc.args...)
			r := runPublisher(t, "nats://127.0.0.1:1", "", false, args...)
			if !errors.As(r.err, new(UsageError)) {
				t.Errorf("%v: err = %v, want a usage error", args, r.err)
				continue
			}
			for _, w := range tc.want {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("%v: %q does not say %q", args, r.err, w)
				}
			}
		}
	}
	for _, reason := range handlers.Reasons() {
		url, _ := deadLetters(t, deadLetter(1, "shop-b", reason, 1, 0))
		if r := runPublisher(t, url, "", false, "dlq", "ls", "-reason", reason, "-subject", "orders.*.shop-b"); r.err != nil || !strings.Contains(r.stdout, "1 dead letters") {
			t.Errorf("dlq ls -reason %s: %v\n%s%s", reason, r.err, r.stdout, r.stderr)
		}
	}
}

// TestReasonsListsEveryReasonConstant keeps handlers.Reasons, which -reason is checked against,
// in step with the Reason constants that the worker writes into Dlq-Reason.
func TestReasonsListsEveryReasonConstant(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "../handlers/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var consts []string
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					break
				}
				// var ReasonInvalid = Reason{"invalid"}
				cl, ok := vs.Values[i].(*ast.CompositeLit)
				if !ok || !strings.HasPrefix(name.Name, "Reason") || len(cl.Elts) != 1 {
					continue
				}
				if lit, ok := cl.Elts[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					consts = append(consts, v)
				}
			}
		}
		return true
	})
	got := handlers.Reasons()
	slices.Sort(consts)
	slices.Sort(got)
	if len(consts) == 0 || !slices.Equal(consts, got) {
		t.Errorf("handlers.Reasons() = %v; the Reason constants of handlers/errors.go are %v", got, consts)
	}
}

// TestReplayOfNothingButRefusalsFails: a replay that replays nothing because every letter was
// refused is a failure (exit status 1), so that a script notices the letters left behind.
func TestReplayOfNothingButRefusalsFails(t *testing.T) {
	t.Parallel()
	url, s := deadLetters(t, deadLetter(1, "demo", handlers.ReasonInvalid.String(), 1, 3), deadLetter(2, "demo", handlers.ReasonInvalid.String(), 1, 5))
	r := runPublisher(t, url, "", false, "dlq", "replay")
	if r.err == nil || errors.As(r.err, new(UsageError)) || !strings.Contains(r.err.Error(), "-max-replays") {
		t.Errorf("err = %v, want a failure that says how to replay them (-max-replays)", r.err)
	}
	if !strings.Contains(r.stdout, "replayed 0, refused 2") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	if len(storedMsgs(t, s)) != 2 {
		t.Error("refused letters were touched")
	}
	// Nothing to replay at all is no failure, and a dry run changes nothing and fails nothing.
	for _, args := range [][]string{{"dlq", "replay", "-reason", "exhausted"}, {"dlq", "replay", "-dry-run"}} {
		if r := runPublisher(t, url, "", false, args...); r.err != nil {
			t.Errorf("%v: %v", args, r.err)
		}
	}
	// Some replayed and some refused: the refusals are reported, and the run succeeds.
	url, _ = deadLetters(t, deadLetter(1, "demo", handlers.ReasonInvalid.String(), 1, 3), deadLetter(2, "demo", handlers.ReasonInvalid.String(), 1, 0))
	if r := runPublisher(t, url, "", false, "dlq", "replay"); r.err != nil || !strings.Contains(r.stdout, "replayed 1, refused 1") {
		t.Errorf("replay of one of two: %v\n%s", r.err, r.stdout)
	}
}

// TestDeadLetterJSONHasNumbers: counts and sequences are JSON numbers, as seq and replay_count
// always were.
func TestDeadLetterJSONHasNumbers(t *testing.T) {
	t.Parallel()
	url, _ := deadLetters(t, deadLetter(7, "shop-b", handlers.ReasonExhausted.String(), 10, 1))
	r := runPublisher(t, url, "", false, "dlq", "ls", "-json")
	if r.err != nil {
		t.Fatal(r.err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	for name, want := range map[string]float64{"seq": 1, "attempts": 10, "original_sequence": 7, "replay_count": 1, "published_sequence": 7} {
		if got[name] != want {
			t.Errorf("%s = %#v, want the number %v\n%s", name, got[name], want, r.stdout)
		}
	}
	if r := runPublisher(t, url, "", false, "dlq", "ls"); !regexpLine(r.stdout, "exhausted", "orders.created.shop-b", "O-7", "10", "1") {
		t.Errorf("dlq ls:\n%s", r.stdout)
	}
}

// TestJSONOnEveryCommandThatPrintsResults: -json prints the result as JSON on stdout, with
// numbers as numbers; messages for people stay on stderr.
func TestJSONOnEveryCommandThatPrintsResults(t *testing.T) {
	t.Parallel()
	url, _ := deadLetters(t, deadLetter(1, "shop-b", handlers.ReasonUnknownShop.String(), 1, 0), deadLetter(2, "demo", handlers.ReasonInvalid.String(), 2, 0),
		deadLetter(3, "demo", handlers.ReasonInvalid.String(), 1, 3))
	lines := compact(t, orderData("J-1")) + "\n" + `{"shop_id":"demo"}` + "\n"
	path := writeFile(t, "orders.jsonl", lines)
	event := writeFile(t, "order.json", orderData("J-2"))
	tests := []struct {
		args []string
		want map[string]any // fields of the JSON object printed, with their values
	}{
		{[]string{"publish", "-type", "order.created", "-file", event, "-id", "j-2", "-json"},
			map[string]any{"id": "j-2", "subject": "orders.created.demo", "stream": "ORDERS", "sequence": 1.0, "duplicate": false}},
		{[]string{"publish", "-type", "order.created", "-file", event, "-id", "j-2", "-json"},
			map[string]any{"id": "j-2", "sequence": 1.0, "duplicate": true}},
		{[]string{"publish", "-type", "order.created", "-file", event, "-id", "j-3", "-dry-run", "-json"},
			map[string]any{"id": "j-3", "subject": "orders.created.demo", "dry_run": true}},
		{[]string{"batch", "-file", path, "-dry-run", "-json"},
			map[string]any{"dry_run": true, "valid": 1.0, "rejected": 1.0, "rejected_lines": []any{2.0}}},
		{[]string{"dlq", "show", "2", "-json"},
			map[string]any{"seq": 2.0, "reason": "invalid", "attempts": 2.0, "subject": "dlq.orders.created.demo"}},
		{[]string{"dlq", "replay", "-dry-run", "-json"},
			map[string]any{"dry_run": true, "planned": 2.0, "replayed": 0.0, "refused": 1.0, "max_replays": 3.0}},
		{[]string{"dlq", "replay", "-reason", "unknown-shop", "-json"},
			map[string]any{"dry_run": false, "planned": 1.0, "replayed": 1.0, "refused": 0.0}},
		{[]string{"dlq", "purge", "-reason", "invalid", "-yes", "-json"},
			map[string]any{"purged": 2.0}},
		{[]string{"batch", "-file", path, "-json"},
			map[string]any{"dry_run": false, "published": 1.0, "duplicates": 0.0, "rejected": 1.0, "failed": 0.0}},
	}
	for _, tc := range tests {
		r := runPublisher(t, url, "", false, tc.args...)
		if r.err != nil && tc.args[0] != "batch" { // batch fails for its rejected line
			t.Errorf("%v: %v\n%s", tc.args, r.err, r.stderr)
			continue
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("%v: stdout is not one JSON object (%v):\n%s", tc.args, err, r.stdout)
			continue
		}
		for k, want := range tc.want {
			if fmt.Sprint(got[k]) != fmt.Sprint(want) || fmt.Sprintf("%T", got[k]) != fmt.Sprintf("%T", want) {
				t.Errorf("%v: %s = %#v, want %#v\n%s", tc.args, k, got[k], want, r.stdout)
			}
		}
	}
}

// TestShowOfAMissingLetter says which letter is missing where, not the server's API error.
func TestShowOfAMissingLetter(t *testing.T) {
	t.Parallel()
	url, _ := deadLetters(t, deadLetter(1, "demo", handlers.ReasonInvalid.String(), 1, 0))
	r := runPublisher(t, url, "", false, "dlq", "show", "99")
	if r.err == nil || r.err.Error() != "no dead letter 99 in stream DLQ" {
		t.Errorf("err = %v, want %q", r.err, "no dead letter 99 in stream DLQ")
	}
}

// TestProgressBarDrawsTheEnd: the last bar drawn shows every line done, even when the lines went
// faster than the bar is redrawn and the file holds a line that is blank to the batch.
func TestProgressBarDrawsTheEnd(t *testing.T) {
	t.Parallel()
	var lines []string
	for i := range 5 {
		lines = append(lines, compact(t, orderData(fmt.Sprintf("P-%d", i))))
	}
	lines = append(lines, "\v", "\u00a0") // blank to bytes.TrimSpace
	path := writeFile(t, "orders.jsonl", strings.Join(lines, "\n")+"\n")
	r := runPublisher(t, "nats://127.0.0.1:1", "", true, "batch", "-file", path, "-dry-run")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	if bar := lastBar(r.stderr); bar != "publishing [##############################] 5/5" {
		t.Errorf("the last bar drawn is %q, want 5/5 done; stderr %q", bar, r.stderr)
	}

	// A run that stops early (an error, an interrupt) leaves the bar at the count it reached.
	var out strings.Builder
	p := &progress{w: &out, on: true, label: "replaying", total: 10}
	for range 4 {
		p.add(1)
	}
	p.finish()
	if bar := lastBar(out.String()); !strings.HasSuffix(bar, " 4/10") {
		t.Errorf("after 4 of 10, the last bar drawn is %q", bar)
	}
}

// lastBar returns the last progress bar drawn on a terminal's line.
func lastBar(stderr string) string {
	parts := strings.Split(strings.TrimRight(stderr, "\n"), "\r")
	return strings.TrimSpace(parts[len(parts)-1])
}

// TestStreamNotFoundNamesTheServer: a publisher pointed at a NATS server without the worker's
// streams (the machine's own NATS on the standard port, say) says which server it asked.
func TestStreamNotFoundNamesTheServer(t *testing.T) {
	t.Parallel()
	url, _ := testenv.JetStream(t) // a server without the worker's streams
	for _, args := range [][]string{
		{"dlq", "ls"},
		{"dlq", "show", "1"},
		{"publish", "-type", "order.cancelled", "-shop", "shop-1", "-order", "A-1"},
	} {
		r := runPublisher(t, url, "", false, args...)
		if r.err == nil || !strings.Contains(r.err.Error(), "on the NATS server "+url+"; is it the worker's?") {
			t.Errorf("%v: err = %v, want it to name the server %s", args, r.err, url)
		}
	}
}

// TestReplaySaysWhichLettersCannotBeReplayed: a letter whose Dlq-Original-Subject disagrees with
// the subject it is stored on is refused and printed with why, the others replayed; a run that
// refused every letter so fails and says to correct or purge them, not to raise -max-replays.
func TestReplaySaysWhichLettersCannotBeReplayed(t *testing.T) {
	t.Parallel()
	url, s := deadLetters(t, deadLetter(1, "demo", handlers.ReasonInvalid.String(), 1, 0))
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	forged := nats.NewMsg("dlq.orders.created.demo")
	forged.Data = []byte(`{"forged":1}`)
	forged.Header.Set(dlq.HeaderOriginalSubject, "credit.ok.demo")
	forged.Header.Set(dlq.HeaderReason, handlers.ReasonInvalid.String())
	if err := nc.PublishMsg(forged); err != nil || nc.Flush() != nil {
		t.Fatal(err)
	}
	r := runPublisher(t, url, "", false, "dlq", "replay")
	if r.err != nil || !strings.Contains(r.stdout, "replayed 1, refused 1") ||
		!strings.Contains(r.stdout, "refused: seq 2 (invalid, orders.created.demo) not replayable: its Dlq-Original-Subject credit.ok.demo disagrees with the subject it is stored on, dlq.orders.created.demo") {
		t.Errorf("replay: %v\n%s", r.err, r.stdout)
	}
	r = runPublisher(t, url, "", false, "dlq", "replay")
	if r.err == nil || !strings.Contains(r.err.Error(), "1 of them as not replayable: correct them with dlq edit, or purge them") {
		t.Errorf("replay of the refused letter alone: %v\n%s", r.err, r.stdout)
	}
	if n := len(storedMsgs(t, s)); n != 1 {
		t.Errorf("%d letters left, want the refused one", n)
	}
}

// TestDlqLsLimit: dlq ls lists at most -limit letters, the oldest, and says how many match when
// it left some out, on stdout after the table, on stderr with -json; a -limit below 1 is a usage
// error.
func TestDlqLsLimit(t *testing.T) {
	t.Parallel()
	url, _ := deadLetters(t, deadLetter(1, "shop-b", handlers.ReasonExhausted.String(), 1, 0),
		deadLetter(2, "shop-b", handlers.ReasonExhausted.String(), 1, 0), deadLetter(3, "shop-b", handlers.ReasonExhausted.String(), 1, 0))
	r := runPublisher(t, url, "", false, "dlq", "ls", "-limit", "2")
	if r.err != nil || !strings.Contains(r.stdout, "showing the first 2 of 3 dead letters that match (-limit 2)") || strings.Contains(r.stdout, "O-3") ||
		!strings.Contains(r.stdout, "O-1") || !strings.Contains(r.stdout, "O-2") {
		t.Errorf("dlq ls -limit 2: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	r = runPublisher(t, url, "", false, "dlq", "ls", "-limit", "2", "-json")
	if r.err != nil || strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stderr, "showing the first 2 of 3 dead letters that match") {
		t.Errorf("dlq ls -limit 2 -json: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if r := runPublisher(t, url, "", false, "dlq", "ls", "-limit", "3"); r.err != nil || !strings.Contains(r.stdout, "3 dead letters") || strings.Contains(r.stdout, "showing") {
		t.Errorf("dlq ls -limit 3: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if r := runPublisher(t, url, "", false, "dlq", "ls", "-limit", "0"); !errors.As(r.err, new(UsageError)) {
		t.Errorf("dlq ls -limit 0: err = %v, want a usage error", r.err)
	}
}
