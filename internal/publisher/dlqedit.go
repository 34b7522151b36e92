package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"github.com/atodene-worker/atodene-worker/internal/deadletter"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/termtable"
)

// dlqEdit runs `dlq edit SEQ`: the dead letter's event, corrected by the operator, published in
// its place.
func (a *App) dlqEdit(ctx context.Context, args []string) error {
	fs := a.flagSet("dlq edit")
	stream := fs.String("stream", "DLQ", "`name` of the dead-letter stream")
	file := fs.String("file", "", "read the corrected event from `file` (- for stdin) instead of opening $EDITOR")
	newID := fs.Bool("new-id", false, "give the corrected event a new id (a UUID) instead of the id it has")
	dry := fs.Bool("dry-run", false, "validate and print the corrected event; publish nothing, keep the letter")
	asJSON := fs.Bool("json", false, "print the result as one JSON object (with the event itself in a dry run)")
	a.bindConnection(fs)
	a.setUsage(fs, "dlq edit [flags] SEQ", `Opens the body of dead letter SEQ (a whole CloudEvent, which holds the buyer's personal data) in
$VISUAL or $EDITOR, or reads the corrected event from -file, validates it as publish does, and publishes it
to the subject of its type and shop, in place of the letter: as a replay of the letter (Dlq-Replay-Count
incremented, the original's position kept, so the worker orders it as the event it corrects), with the header
Dlq-Edited-From: SEQ. The letter is removed once the publish is acknowledged. The event keeps its id and
source (the failed event was never recorded as processed), unless -new-id; a body left unchanged, an
editor that fails and a rejected event publish nothing and keep the letter (exit status 1).
`)
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("dlq edit needs one sequence number (got %d arguments)", len(rest))
	}
	seq, err := strconv.ParseUint(rest[0], 10, 64)
	if err != nil || seq == 0 {
		return usagef("dlq edit: %q is not a sequence number", rest[0])
	}
	editor := ""
	if *file == "" {
		if editor = a.getenv("VISUAL"); editor == "" {
			editor = a.getenv("EDITOR")
		}
		if editor == "" {
			return usagef("dlq edit: set $EDITOR (or $VISUAL), or give the corrected event with -file")
		}
	}
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	q := deadletter.New(js, *stream)
	m, err := q.Get(ctx, seq)
	if err != nil {
		return a.where(err)
	}
	if !m.Editable() {
		return fmt.Errorf("dead letter %d (of %q) is not an inbound event, but a message of the worker's own: it cannot be edited; dlq replay re-publishes it", seq, m.Subject)
	}
	var raw []byte
	var kept string // the file of an edit, kept when it is rejected
	if *file != "" {
		if raw, err = a.readInput(*file); err != nil {
			return fmt.Errorf("reading the corrected event: %w", err)
		}
	} else if raw, kept, err = a.editLetter(ctx, editor, seq, m.Body); err != nil {
		return err
	}
	if blank(raw) {
		return fmt.Errorf("the corrected event is empty: nothing published; dead letter %d is kept", seq)
	}
	res, err := q.Edit(ctx, seq, raw, deadletter.EditOptions{NewID: *newID, DryRun: *dry, Source: defaultSource})
	var ie *events.InvalidError
	switch {
	case errors.As(err, &ie):
		problemLines(a.Stderr, "", err)
		if kept != "" {
			return fmt.Errorf("event rejected: nothing published; dead letter %d is kept. Your edit is in %s: correct it and run publisher dlq edit %d -file %s",
				seq, kept, seq, kept)
		}
		return fmt.Errorf("event rejected: nothing published; dead letter %d is kept", seq)
	}
	if kept != "" {
		defer os.Remove(kept)
	}
	if err != nil {
		return a.where(err)
	}
	if *dry {
		if *asJSON {
			return a.printJSON(res)
		}
		termtable.Fprintf(a.Stdout, "would publish %s %s to %s in place of dead letter %d (dry run: not published, letter kept)\n", res.Type, res.ID, res.Subject, seq)
		var pretty bytes.Buffer
		_ = json.Indent(&pretty, res.Event, "", "  ")
		return writeLines(a.Stdout, pretty.String())
	}
	if *asJSON {
		return a.printJSON(res)
	}
	if res.Duplicate {
		termtable.Fprintf(a.Stdout, "duplicate: stream %s holds an edit of dead letter %d already (sequence %d), published before; it stands, and the letter is removed\n",
			res.Stream, seq, res.Sequence)
		return nil
	}
	termtable.Fprintf(a.Stdout, "published %s %s (source %s) to %s in place of dead letter %d: stream %s, sequence %d; dead letter %d removed\n",
		res.Type, res.ID, res.Source, res.Subject, seq, res.Stream, res.Sequence, seq)
	return nil
}

// getenv reads the environment (nothing when the App has no Getenv).
func (a *App) getenv(name string) string {
	if a.Getenv == nil {
		return ""
	}
	return a.Getenv(name)
}

// editLetter writes a dead letter's body (indented, when it is JSON) to a file of its own (mode
// 0600: it holds personal data), opens it in the editor and returns what the operator saved, with
// the file, which the caller removes once the edit is published. An editor that fails, and a
// body left as it was, are errors; the file is then removed.
func (a *App) editLetter(ctx context.Context, editor string, seq uint64, body []byte) ([]byte, string, error) {
	var text bytes.Buffer
	if json.Indent(&text, body, "", "  ") != nil {
		text.Reset()
		text.Write(body)
	}
	if !bytes.HasSuffix(text.Bytes(), []byte("\n")) {
		text.WriteByte('\n')
	}
	f, err := os.CreateTemp("", fmt.Sprintf("dlq-%d-*.json", seq))
	if err != nil {
		return nil, "", err
	}
	path := f.Name()
	_, err = f.Write(text.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, "", err
	}
	// As git runs it: the editor may be a command with arguments ("code --wait").
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", editor+` "$1"`, "editor", path)
	// The editor draws on the terminal through standard error's, so that -json's output stays clean.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = a.Stdin, a.Stderr, a.Stderr
	if err := cmd.Run(); err != nil {
		os.Remove(path)
		return nil, "", fmt.Errorf("the editor (%s) failed: %v: nothing published; dead letter %d is kept", editor, err, seq)
	}
	out, err := os.ReadFile(path)
	if err != nil {
		os.Remove(path)
		return nil, "", err
	}
	if bytes.Equal(out, text.Bytes()) {
		os.Remove(path)
		return nil, "", fmt.Errorf("the event was not changed: nothing published; dead letter %d is kept (dlq replay re-publishes it as it is)", seq)
	}
	return out, path, nil
}
