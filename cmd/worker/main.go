// Command worker handles the ATODENE order events of many shops: fees, credit checks, polling,
// shipment reports and invoices. Its settings come from flags and ATODENE_WORKER_*
// environment variables (worker -h lists them); its shops from a shops file, which
// `worker config check` validates and prints with secrets masked.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/atodene-worker/atodene-worker/internal/worker"
)

func main() {
	worker.SetGCPercent(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}
