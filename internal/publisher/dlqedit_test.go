package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/deadletter"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
)

// invalidLetter is the dead letter of order.created seq of order, billed 1 (its items add up to
// 2950): what the worker dead-letters as invalid.
func invalidLetter(t *testing.T, seq uint64, order string) dlq.Letter {
	data := strings.Replace(compact(t, orderData(order)), `"billed_amount":2950`, `"billed_amount":1`, 1)
	body := `{"specversion":"1.0","id":"e-` + order + `","source":"mall-importer/test","type":"order.created","time":"2026-11-26T10:15:00+09:00","data":` + data + `}`
	return dlq.Letter{Subject: "orders.created.demo", Stream: "ORDERS", Sequence: seq, Reason: "invalid", Body: []byte(body),
		Err: errors.New("billed_amount: 1 does not equal items 2400 + shipping_fee 550 + fee 0 - discount 0"), Attempts: 1,
		FailedAt: time.Date(2026, 11, 27, 0, 39, 49, 0, time.UTC), Published: seq, PublishedCreated: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
}

// script writes an executable shell script, an editor for the tests.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "editor.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

// runEnv runs the tool against the server at url, with the environment env.
func runEnv(t *testing.T, url string, env map[string]string, stdin string, args ...string) runResult {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &App{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	err := a.Run(context.Background(), append([]string{"-nats-url", url}, args...))
	return runResult{out.String(), errOut.String(), err}
}

// fixBilled is an editor that corrects the billed amount of invalidLetter.
const fixBilled = `sed -i 's/"billed_amount": 1,/"billed_amount": 2950,/' "$1"`

// TestDeadLetterEdit: the letter's event opened in $EDITOR, corrected, published in its place as
// a replay of it that says so, and the letter removed.
func TestDeadLetterEdit(t *testing.T) {
	t.Parallel()
	url, s := deadLetters(t, invalidLetter(t, 7, "BAD-1"))
	r := runEnv(t, url, map[string]string{"EDITOR": script(t, fixBilled)}, "", "dlq", "edit", "1")
	if r.err != nil {
		t.Fatalf("%v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if want := "published order.created e-BAD-1 (source mall-importer/test) to orders.created.demo in place of dead letter 1: stream ORDERS, sequence 1; dead letter 1 removed\n"; r.stdout != want {
		t.Errorf("stdout = %q\nwant %q", r.stdout, want)
	}
	if n := len(storedMsgs(t, s)); n != 0 {
		t.Errorf("%d dead letters left, want the letter removed", n)
	}
	o, _ := jsOf(t, url).Stream(context.Background(), "ORDERS")
	m, err := o.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	env, err := events.DecodeEnvelope(m.Subject, m.Data)
	if err != nil {
		t.Fatalf("the edited event: %v", err)
	}
	if ord, err := events.DecodeCreated(env, "demo"); err != nil || *ord.BilledAmount != 2950 {
		t.Errorf("the edited event's data: %v", err)
	}
	if env.ID != "e-BAD-1" || env.Source != "mall-importer/test" || env.Time != "2026-11-26T10:15:00+09:00" {
		t.Errorf("the edited event lost its identity: %+v", env)
	}
	for h, want := range map[string]string{dlq.HeaderEditedFrom: "1", dlq.HeaderReplayCount: "1", dlq.HeaderPublishedSequence: "7",
		dlq.HeaderPublishedStreamCreated: "2026-11-01T00:00:00Z", jetstream.MsgIDHeader: "edit:DLQ:1:1", "Content-Type": events.ContentType} {
		if got := m.Header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
}

// TestDeadLetterEditFromAFile: -file (here stdin) instead of an editor; -new-id; -json; a dry run.
func TestDeadLetterEditFromAFile(t *testing.T) {
	t.Parallel()
	url, s := deadLetters(t, invalidLetter(t, 7, "BAD-1"))
	fixed := strings.Replace(string(invalidLetter(t, 7, "BAD-1").Body), `"billed_amount":1,`, `"billed_amount":2950,`, 1)
	r := runEnv(t, url, nil, fixed, "dlq", "edit", "1", "-file", "-", "-dry-run", "-json")
	var res deadletter.Edited
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &res) != nil || !res.DryRun || res.Removed || res.ID != "e-BAD-1" || len(res.Event) == 0 {
		t.Errorf("dry run: %v\n%s", r.err, r.stdout)
	}
	if len(storedMsgs(t, s)) != 1 {
		t.Fatal("a dry run removed the letter")
	}
	r = runEnv(t, url, nil, fixed, "dlq", "edit", "-new-id", "-file", "-", "-json", "1")
	res = deadletter.Edited{}
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &res) != nil || !uuidPattern.MatchString(res.ID) || !res.Removed ||
		res.Subject != "orders.created.demo" || res.Original != "orders.created.demo" || res.Sequence != 1 || res.MsgID != "edit:DLQ:1:1" || res.ReplayCount != 1 {
		t.Errorf("-new-id -json: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if len(storedMsgs(t, s)) != 0 {
		t.Error("the letter was not removed")
	}
}

// TestDeadLetterEditFailures: an editor that fails, a body left unchanged, a corrected event still
// invalid (kept in its file, which -file then publishes once fixed), no editor, a poll's letter,
// a missing letter. Nothing is published and the letter stays, but for the last fix.
func TestDeadLetterEditFailures(t *testing.T) {
	t.Parallel()
	poll := dlq.Letter{Subject: "atodene.poll.due.demo", Stream: "ATODENE_POLLS", Sequence: 3, Reason: "poll-deadline",
		Body: []byte(`{"shop":"demo","order_id":"P-1"}`), Err: errors.New("still under review"), Attempts: 1, FailedAt: time.Now()}
	url, s := deadLetters(t, invalidLetter(t, 7, "BAD-1"), poll)
	kept := func(what string) {
		t.Helper()
		if n := len(storedMsgs(t, s)); n != 2 {
			t.Errorf("%s: %d dead letters, want both kept", what, n)
		}
		o, _ := jsOf(t, url).Stream(context.Background(), "ORDERS")
		if info, _ := o.Info(context.Background()); info.State.Msgs != 0 {
			t.Errorf("%s: something was published", what)
		}
	}
	r := runEnv(t, url, map[string]string{"EDITOR": "false"}, "", "dlq", "edit", "1")
	if r.err == nil || !strings.Contains(r.err.Error(), "the editor (false) failed: exit status 1: nothing published; dead letter 1 is kept") {
		t.Errorf("a failing editor: %v", r.err)
	}
	kept("a failing editor")
	r = runEnv(t, url, map[string]string{"VISUAL": "true", "EDITOR": "false"}, "", "dlq", "edit", "1")
	if r.err == nil || !strings.Contains(r.err.Error(), "the event was not changed") {
		t.Errorf("an unchanged body: %v", r.err)
	}
	kept("an unchanged body")

	r = runEnv(t, url, map[string]string{"EDITOR": script(t, `sed -i 's/"billed_amount": 1,/"billed_amount": 3,/' "$1"`)}, "", "dlq", "edit", "1")
	file := regexp.MustCompile(`Your edit is in (\S+):`).FindStringSubmatch(errText(r.err))
	if file == nil || !strings.Contains(r.stderr, "billed_amount: 3 does not equal items 2400") {
		t.Fatalf("an invalid edit: %v\n%s", r.err, r.stderr)
	}
	defer os.Remove(file[1])
	kept("an invalid edit")
	raw, err := os.ReadFile(file[1])
	if err != nil || !strings.Contains(string(raw), `"billed_amount": 3,`) {
		t.Fatalf("the edit was not kept: %v\n%s", err, raw)
	}
	if err := os.WriteFile(file[1], bytes.Replace(raw, []byte(`"billed_amount": 3,`), []byte(`"billed_amount": 2950,`), 1), 0o600); err != nil {
		t.Fatal(err)
	}

	if r := runEnv(t, url, nil, "", "dlq", "edit", "1"); !errors.As(r.err, new(UsageError)) || !strings.Contains(r.err.Error(), "$EDITOR") {
		t.Errorf("no editor: %v, want a usage error", r.err)
	}
	if r := runEnv(t, url, nil, "{}", "dlq", "edit", "2", "-file", "-"); r.err == nil || !strings.Contains(r.err.Error(), "not an inbound event") {
		t.Errorf("a poll's letter: %v", r.err)
	}
	if r := runEnv(t, url, nil, "{}", "dlq", "edit", "9", "-file", "-"); r.err == nil || r.err.Error() != "no dead letter 9 in stream DLQ" {
		t.Errorf("a missing letter: %v", r.err)
	}
	kept("refusals")

	if r := runEnv(t, url, nil, "", "dlq", "edit", "1", "-file", file[1]); r.err != nil || !strings.Contains(r.stdout, "dead letter 1 removed") {
		t.Errorf("the fixed edit: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// jsOf connects to the server at url.
func jsOf(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return js
}
