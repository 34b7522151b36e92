// Command console serves the operators' web console (docs/console.md): the order list with the
// orders' ATODENE states, actions, histories, invoices for printing, dead letters and shops. It
// reads the worker's Redis and streams and writes only by publishing inbound events; any number of
// replicas may run behind a load balancer. `console -h` lists its settings; `console hash NAME`
// makes a line of the operators file.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap/zapcore"

	"github.com/atodene-worker/atodene-worker/internal/redislog"
)

func main() {
	// go-redis's logger is the process's: set once, before any client.
	redislog.Use(newLogger(zapcore.WarnLevel, os.Stderr).Named("redis"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}
