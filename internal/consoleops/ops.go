// Package consoleops connects the operators' web console (internal/console) to the libraries
// that act for operators, the same ones the publisher command uses: the actions on orders
// (internal/operator), the dead-letter stream (internal/deadletter), the enclosed invoices
// (internal/invoiceprint) and the CSV of an order list (internal/ordercsv). An *Ops is the
// console's Actions, DeadLetters and Invoices.
//
// Every event an action or an edit publishes carries the source console/operator/NAME
// (SourcePrefix), which the worker records in the order's history. Refusals (an order whose state
// does not allow the action, a dead letter gone, an edit the worker would reject) are Outcomes
// that say why; errors are the infrastructure's (Redis, NATS) and the end of the context.
package consoleops

import (
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/atodene-worker/atodene-worker/internal/console"
	"github.com/atodene-worker/atodene-worker/internal/deadletter"
	"github.com/atodene-worker/atodene-worker/internal/operator"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// SourcePrefix heads the CloudEvents source of the events the console publishes, followed by the
// operator's name.
const SourcePrefix = "console/operator/"

// DefaultMaxReplays is how many times a dead letter may have been replayed before Replay refuses
// it, as `publisher dlq replay` has it.
const DefaultMaxReplays = 3

// Config configures Ops.
type Config struct {
	// JetStream publishes the events and reads the streams. Required.
	JetStream jetstream.JetStream
	// Store reads the orders' states and histories (the worker's Redis and key prefix). Required.
	Store *orderstate.Store
	// Inbound is the name of the worker's inbound stream, where the actions publish. Default "ORDERS".
	Inbound string
	// Results is the name of the worker's outcome stream, where Sheets finds invoices. Default "RESULTS".
	Results string
	// DLQ is the name of the worker's dead-letter stream. Default "DLQ".
	DLQ string
	// Now is the clock: the time of the events published. Default time.Now.
	Now func() time.Time
	// MaxReplays refuses the dead letters replayed this many times already. Default
	// DefaultMaxReplays (3).
	MaxReplays int
	// Concurrency is how many orders an action acts on at once. Default 32 (operator's default).
	Concurrency int
	// Tracing, if set, starts a trace for each event an action publishes (operator.Config.Tracing).
	// Default nil: none.
	Tracing trace.TracerProvider
}

// withDefaults returns c with the defaults of the settings left zero.
func (c Config) withDefaults() Config {
	if c.Inbound == "" {
		c.Inbound = "ORDERS"
	}
	if c.Results == "" {
		c.Results = "RESULTS"
	}
	if c.DLQ == "" {
		c.DLQ = deadletter.DefaultStream
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxReplays <= 0 {
		c.MaxReplays = DefaultMaxReplays
	}
	return c
}

// validate reports the required settings missing.
func (c Config) validate() error {
	var errs []error
	if c.JetStream == nil {
		errs = append(errs, errors.New("consoleops: Config.JetStream is required"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("consoleops: Config.Store is required"))
	}
	return errors.Join(errs...)
}

// Ops runs the console's operations. It is safe for concurrent use.
type Ops struct {
	cfg     Config
	op      *operator.Operator
	letters *deadletter.Queue
}

// The console's interfaces that *Ops implements.
var (
	_ console.Actions     = (*Ops)(nil)
	_ console.DeadLetters = (*Ops)(nil)
	_ console.Invoices    = (*Ops)(nil)
)

// New returns the operations configured by cfg; a required setting missing is an error. It
// connects to nothing: the streams are opened by each call.
func New(cfg Config) (*Ops, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	op, err := operator.New(operator.Config{JetStream: cfg.JetStream, Store: cfg.Store, Inbound: cfg.Inbound, Results: cfg.Results,
		SourcePrefix: SourcePrefix, Now: cfg.Now, Concurrency: cfg.Concurrency, Tracing: cfg.Tracing})
	if err != nil {
		return nil, err
	}
	return &Ops{cfg: cfg, op: op, letters: deadletter.New(cfg.JetStream, cfg.DLQ)}, nil
}

// Source returns the CloudEvents source of the events of the named operator:
// console/operator/NAME.
func Source(name string) string { return SourcePrefix + name }
