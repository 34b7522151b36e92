// Package publisher is the command-line tool of importers and operators: publishing events (one,
// a file, a batch, generated samples), looking after dead letters (list, show, replay, purge) and
// looking up an order's state. Every command writes to injected writers, so tests drive it whole.
package publisher

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/redact"
)

// App is one run of the tool, with its input and outputs.
type App struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment (os.Getenv in production).
	Getenv func(string) string
	// Terminal says whether Stderr is a terminal, where progress bars are drawn.
	Terminal bool

	natsURL, natsCreds string
}

// UsageError is a mistake in the command line: exit status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

func usagef(format string, args ...any) error { return UsageError{fmt.Errorf(format, args...)} }

// command is one subcommand.
type command struct {
	summary string
	run     func(a *App, ctx context.Context, args []string) error
}

// commands lists every subcommand, in one place.
func commands() map[string]command {
	return map[string]command{
		"dlq":     {"list, show, replay or purge dead letters (dlq -h)", (*App).dlq},
		"order":   {"show an order's state and history as the worker holds them (order show SHOP ORDER)", (*App).order},
		"publish": {"publish one inbound event from a file, stdin or flags (publish -h)", (*App).publish},
		"batch":   {"publish a JSON lines file of events, validated line by line (batch -h)", (*App).batch},
		"sample":  {"write realistic sample orders as JSON lines (sample -h)", (*App).sample},
	}
}

// Run runs the command line args (without the program name).
func (a *App) Run(ctx context.Context, args []string) error {
	fs := a.flagSet("publisher")
	fs.StringVar(&a.natsURL, "nats-url", a.env("NATS_URL", "nats://127.0.0.1:4222"), "NATS server `URLs` [$ATODENE_PUBLISHER_NATS_URL]")
	fs.StringVar(&a.natsCreds, "nats-creds", a.env("NATS_CREDS", ""), "NATS credentials `file` [$ATODENE_PUBLISHER_NATS_CREDS]")
	fs.Usage = func() {
		fmt.Fprintf(a.Stderr, "Usage: publisher [flags] <command> [command flags]\n\nCommands:\n")
		cmds := commands()
		names := make([]string, 0, len(cmds))
		for n := range cmds {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(a.Stderr, "  %-8s %s\n", n, cmds[n].summary)
		}
		fmt.Fprintf(a.Stderr, "\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usagef("no command given")
	}
	cmd, ok := commands()[fs.Arg(0)]
	if !ok {
		return usagef("unknown command %q (publisher -h lists them)", fs.Arg(0))
	}
	return cmd.run(a, ctx, fs.Args()[1:])
}

func (a *App) env(name, def string) string {
	if a.Getenv != nil {
		if v := a.Getenv("ATODENE_PUBLISHER_" + name); v != "" {
			return v
		}
	}
	return def
}

// flagSet returns a flag set that reports errors instead of exiting, printing help to Stderr.
func (a *App) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.Stderr)
	return fs
}

// parse parses args, turning flag errors into usage errors (and -h into flag.ErrHelp).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return UsageError{err}
	}
	return nil
}

// connect opens a NATS connection and its JetStream context.
func (a *App) connect() (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{nats.Name("atodene-publisher")}
	if a.natsCreds != "" {
		opts = append(opts, nats.UserCredentials(a.natsCreds))
	}
	nc, err := nats.Connect(a.natsURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to NATS at %s: %w", redactURL(a.natsURL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// redactURL hides the credentials in server URLs printed in help and errors.
func redactURL(u string) string { return redact.URLs(u) }
