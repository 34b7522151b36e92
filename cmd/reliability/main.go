// Command reliability runs the reliability suite (docs/reliability.md): the real worker, sandbox
// and nats-server binaries and Redis on loopback ports, a workload of orders through their whole
// life, one fault per scenario, and a table of the invariants checked afterwards. It exits 1 when
// an invariant broke, 2 when the suite could not run.
//
//	go run ./cmd/reliability [-quick] [-scenario name,...] [-orders N] [-seed N] [-parallel N]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/atodene-worker/atodene-worker/internal/termtable"
	"github.com/atodene-worker/atodene-worker/internal/tools/reliability"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reliability", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts reliability.Options
	fs.BoolVar(&opts.Quick, "quick", false, "run every scenario at a reduced size, with short time limits (for CI: about 5 minutes)")
	scenarios := fs.String("scenario", "", "comma-separated `names` of the scenarios to run (default all: "+strings.Join(reliability.ScenarioNames(), ", ")+")")
	fs.IntVar(&opts.Orders, "orders", 0, "orders per scenario (default: 5000 for worker-kill, 2000 or 1000 for the others; with -quick 200-400)")
	fs.Uint64Var(&opts.Seed, "seed", 0, "seed of the workload and the fault schedule (default: from the clock, printed)")
	fs.StringVar(&opts.RedisURL, "redis-url", "redis://127.0.0.1:6379", "the Redis the worker uses (keys under a prefix of the run's own, deleted afterwards)")
	fs.StringVar(&opts.Dir, "dir", "", "directory for binaries, data and logs (default: a temporary one, kept only when a scenario fails)")
	fs.BoolVar(&opts.Keep, "keep", false, "keep the directory even when every scenario passes")
	fs.IntVar(&opts.Parallel, "parallel", 0, "scenarios run at once (default 1; 3 with -quick)")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "reliability: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *scenarios != "" {
		opts.Scenarios = strings.Split(*scenarios, ",")
	}
	if opts.Parallel == 0 && opts.Quick {
		opts.Parallel = 3
	}
	if !*quiet {
		opts.Progress = stderr
	}
	if opts.Seed == 0 {
		opts.Seed = reliability.NewSeed()
	}
	fmt.Fprintf(stderr, "reliability: seed %d (repeat with -seed %d)\n", opts.Seed, opts.Seed)
	results, err := reliability.Run(ctx, opts)
	if err != nil {
		termtable.Fprintf(stderr, "reliability: %v\n", err)
		return 2
	}
	if err := reliability.WriteTable(stdout, results); err != nil {
		fmt.Fprintln(stderr, "reliability:", err)
		return 2
	}
	for _, r := range results {
		if !r.Pass() {
			return 1
		}
	}
	return 0
}
