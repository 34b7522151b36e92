// Command bench measures the worker on this machine, on loopback, against a bare-bones
// baseline: throughput, latency at fixed rates, a slow provider, orders under review at scale,
// dead-letter replay, the order index with many orders (pages and counts), and the cost of
// scaling out (scaleout: three workers on a NATS cluster and a Redis Cluster against one worker),
// and the cost of tracing (tracing: one worker with tracing off and on); the last two are not part
// of -quick unless named with -only. It builds and starts a NATS server, the ATODENE sandbox and the workers
// as separate processes, uses the machine's Redis under a key prefix of its own, prints the
// machine, versions, settings and a table per measurement, and writes JSON with -json.
//
//	go run ./cmd/bench [-quick] [-json out.json] [-only throughput,latency] [-profile dir]
//	go run ./cmd/bench -only scaleout
//	go run ./cmd/bench -quick -only tracing
//	go run ./cmd/bench -only pending -pending-orders 100000
//
// docs/benchmarks.md has the results and how to read them. The subcommands baseline-worker and
// profiled-worker are the processes the benchmark starts; they are not meant to be run by hand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/atodene-worker/atodene-worker/internal/termtable"
	"github.com/atodene-worker/atodene-worker/internal/tools/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		termtable.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "baseline-worker":
			return bench.RunBaselineWorker(ctx, args[1:], stderr)
		case "profiled-worker":
			return bench.RunProfiledWorker(ctx, args[1:], stderr)
		}
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := bench.Options{Out: stdout}
	fs.BoolVar(&opts.Quick, "quick", false, "small sizes: the whole run takes under two minutes")
	fs.StringVar(&opts.JSON, "json", "", "write the results as JSON to `file`")
	only := fs.String("only", "", "comma-separated `scenarios` to run: "+strings.Join(bench.Scenarios, ", ")+
		" (default all; -quick leaves out "+strings.Join(bench.NotQuick, ", ")+" unless named)")
	fs.StringVar(&opts.ProfileDir, "profile", "", "run the workers with pprof and store CPU and heap profiles in `dir`")
	fs.StringVar(&opts.RedisURL, "redis-url", "redis://127.0.0.1:6379", "Redis `URL` (may be shared: the run only touches its own key prefix)")
	fs.StringVar(&opts.WorkerLogLevel, "worker-log-level", "info", "the workers' -log-level `level`")
	fs.Func("rates", "the latency scenario's offered `rates`, comma-separated orders/s (default 500,1000,2000 quick; 250 to 6000 full)", func(v string) error {
		for f := range strings.SplitSeq(v, ",") {
			rate, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || rate <= 0 {
				return fmt.Errorf("%q is not a rate", f)
			}
			opts.Rates = append(opts.Rates, rate)
		}
		return nil
	})
	fs.Func("worker-env", "add `KEY=VALUE` to the workers' environment, e.g. GOGC=400 (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want KEY=VALUE")
		}
		opts.WorkerEnv = append(opts.WorkerEnv, v)
		return nil
	})
	fs.IntVar(&opts.PendingOrders, "pending-orders", 0, "the pending scenario's orders under review at once, `n` (default 5,000 quick, 1,000,000 full)")
	fs.BoolVar(&opts.Keep, "keep", false, "keep the temporary directory with the logs and JetStream stores")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *only != "" {
		opts.Only = strings.Split(*only, ",")
	}
	return bench.Run(ctx, opts)
}
