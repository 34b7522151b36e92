// Command publisher publishes order events for mall importers, and lets operators list, show,
// replay and purge dead letters and look up an order's credit state. publisher -h lists the
// commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/atodene-worker/atodene-worker/internal/publisher"
	"github.com/atodene-worker/atodene-worker/internal/redislog"
	"github.com/atodene-worker/atodene-worker/internal/termtable"
	"github.com/atodene-worker/atodene-worker/internal/tracing/otelenv"
)

func main() {
	redislog.Use(libraryLogger(os.Stderr)) // go-redis's logger is the process's: set once, before any client
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	info, _ := os.Stderr.Stat()
	// The OTEL_* variables turn tracing on: a trace for each event published.
	tp, flush, err := otelenv.Setup(ctx, os.Getenv, "atodene-publisher", os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "publisher: %v\n", err)
		os.Exit(1)
	}
	app := &publisher.App{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		Terminal: info != nil && info.Mode()&os.ModeCharDevice != 0, Tracing: tp}
	err = app.Run(ctx, os.Args[1:])
	stop()
	if err := flush(); err != nil {
		fmt.Fprintf(os.Stderr, "publisher: %v\n", err)
	}
	os.Exit(exitCode(os.Stderr, err))
}

// exitCode prints err on stderr and returns 0 for success and help (printed on stdout), 2 for
// usage errors, 1 for failures.
func exitCode(stderr io.Writer, err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(publisher.UsageError)):
		termtable.Fprintf(stderr, "publisher: %v\n", err)
		return 2
	}
	termtable.Fprintf(stderr, "publisher: %v\n", err) // it may quote a letter's or an order's data
	return 1
}
