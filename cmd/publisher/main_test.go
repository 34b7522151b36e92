package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/publisher"
)

// TestHelpExitsZero: asking for help is no mistake, on any command; a mistake exits 2.
func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"-h"}, 0}, {[]string{"dlq", "-h"}, 0}, {[]string{"dlq", "show", "-h"}, 0}, {[]string{"order", "-h"}, 0},
		{[]string{"order", "show", "-h"}, 0}, {[]string{"dlq", "show", "1", "-h"}, 0},
		{[]string{"order", "history", "-h"}, 0}, {[]string{"order", "rerun", "-h"}, 0}, {[]string{"results", "tail", "-h"}, 0},
		{[]string{"invoice", "print", "-h"}, 0}, {[]string{"dlq", "edit", "-h"}, 0},
		{[]string{}, 2}, {[]string{"dlq"}, 2}, {[]string{"order"}, 2}, {[]string{"dlq", "ls", "-nonsense"}, 2},
		{[]string{"results"}, 2}, {[]string{"invoice"}, 2}, {[]string{"order", "rerun", "shop-1", "A-1"}, 2}, {[]string{"order", "nonsense"}, 2},
	} {
		var out, errOut bytes.Buffer
		app := &publisher.App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
		err := app.Run(context.Background(), append([]string{"-nats-url", "nats://127.0.0.1:1"}, tc.args...))
		if got := exitCode(&errOut, err); got != tc.code {
			t.Errorf("publisher %v: exit status %d (%v), want %d", tc.args, got, err, tc.code)
		}
		if tc.code == 0 && !strings.HasPrefix(out.String(), "Usage: publisher") {
			t.Errorf("publisher %v: help not on stdout:\n%s", tc.args, out.String())
		}
	}
}

// TestErrorLineShowsControlsEscaped: an error that quotes outside data (an order's, a letter's) is
// one line on stderr, its control characters escaped.
func TestErrorLineShowsControlsEscaped(t *testing.T) {
	t.Parallel()
	var errOut bytes.Buffer
	if got := exitCode(&errOut, errors.New("order A\x1b]0;x\x07\nB: no history")); got != 1 {
		t.Errorf("exit status %d, want 1", got)
	}
	if want := `publisher: order A\x1b]0;x\a\nB: no history` + "\n"; errOut.String() != want {
		t.Errorf("stderr %q, want %q", errOut.String(), want)
	}
}
