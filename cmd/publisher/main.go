// Command publisher publishes order events for mall importers, and lets operators list, show,
// replay and purge dead letters and look up an order's credit state. publisher -h lists the
// commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/atodene-worker/atodene-worker/internal/publisher"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	info, _ := os.Stderr.Stat()
	app := &publisher.App{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		Terminal: info != nil && info.Mode()&os.ModeCharDevice != 0}
	err := app.Run(ctx, os.Args[1:])
	stop()
	os.Exit(exitCode(err))
}

// exitCode prints err and returns 0 for success and help, 2 for usage errors, 1 for failures.
func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(publisher.UsageError)):
		fmt.Fprintf(os.Stderr, "publisher: %v\n", err)
		return 2
	}
	fmt.Fprintf(os.Stderr, "publisher: %v\n", err)
	return 1
}
