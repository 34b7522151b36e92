// Command atodene-sandbox serves an emulation of the ATODENE API over HTTP
// (docs/atodene.md#part-2-the-sandbox-internalsandbox-cmdatodene-sandbox).
//
//	atodene-sandbox [-addr 127.0.0.1:8089] [-shop code:linkid:password]... [-shops-file FILE]
//	                [-review-delay 30s] [-hold-delay 60s] [-slow-delay 5s] [-seed N]
//
// Without -shop, -shops-file or the variable ATODENE_SANDBOX_SHOPS it accepts the demo shop
// (sandbox.DemoShop). A shops file, and the variable, hold one code:linkid:password per line; blank
// lines and lines starting with # are ignored. The password is
// everything after the second colon, so it may contain colons. Logs are JSON on stderr and never
// contain passwords or buyer data. SIGINT or SIGTERM shuts the server down cleanly.
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "atodene-sandbox:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down. stdout gets the start-up banner, stderr the logs.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	return serve(ctx, opts, stdout, stderr)
}
