// Package publisher is the command-line tool of importers and operators: publishing events (one,
// a file, a batch, generated samples), looking after dead letters (list, show, replay, edit,
// purge), looking up an order's state and history, acting on an order (rerun, cancel), following
// the outcomes and printing enclosed invoices. Every command writes to injected writers, so tests drive it whole.
// What the operators' commands do is in the libraries the operators' console shares
// (internal/operator, internal/deadletter, internal/invoiceprint, internal/ordercsv): the
// commands parse flags, call them, and print.
package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/atodene-worker/atodene-worker/internal/redact"
	"github.com/atodene-worker/atodene-worker/internal/transport"
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
	// Tracing, if set, starts a trace for each event published (publish, batch, the operator
	// commands): a producer span whose context the event's headers carry to the worker. Default
	// nil: none.
	Tracing trace.TracerProvider

	natsURL string
	// natsFiles are the files of -nats-creds, -nats-nkey, -nats-ca, -nats-cert and -nats-key.
	natsFiles transport.NATSFiles
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
		"dlq":     {"list, show, replay, edit or purge dead letters (dlq -h)", dlqCommands.run},
		"order":   {"list, count and export orders; an order's state and history; the operator's actions (order -h)", orderCommands.run},
		"results": {"follow the outcome events as they are published (results tail -h)", resultsCommands.run},
		"invoice": {"print enclosed invoices from their print data (invoice print SHOP ORDER...)", invoiceCommands.run},
		"publish": {"publish one inbound event from a file, stdin or flags (publish -h)", (*App).publish},
		"batch":   {"publish a JSON lines file of events, validated line by line (batch -h)", (*App).batch},
		"sample":  {"write realistic sample orders as JSON lines (sample -h)", (*App).sample},
	}
}

// group is a command made of subcommands (dlq, order, results, invoice): its usage, printed by
// -h, and its subcommands, in the order its errors name them.
type group struct {
	name  string
	usage string
	subs  []sub
}

// sub is a subcommand of a group: its name, other names it answers to, and what it runs.
type sub struct {
	name    string
	aliases []string
	run     func(a *App, ctx context.Context, args []string) error
}

// names lists the subcommands for errors: "ls, show or purge".
func (g group) names() string {
	var b strings.Builder
	for i, s := range g.subs {
		switch {
		case i == 0:
		case i == len(g.subs)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(s.name)
	}
	return b.String()
}

// run runs the subcommand args name; no name prints the group's usage on Stderr, and is a
// UsageError, as an unknown name is.
func (g group) run(a *App, ctx context.Context, args []string) error {
	switch {
	case len(args) == 0:
		fmt.Fprint(a.Stderr, g.usage)
		return usagef("%s needs a command: %s", g.name, g.names())
	case isHelp(args[0]):
		return a.help(g.usage)
	}
	for _, s := range g.subs {
		if args[0] == s.name || slices.Contains(s.aliases, args[0]) {
			return s.run(a, ctx, args[1:])
		}
	}
	return usagef("unknown %s command %q: want %s", g.name, args[0], g.names())
}

// Run runs the command line args (without the program name).
func (a *App) Run(ctx context.Context, args []string) error {
	fs := a.flagSet("publisher")
	fs.StringVar(&a.natsURL, "nats-url", a.env("NATS_URL", "nats://127.0.0.1:4222"), "NATS server `URLs` [$ATODENE_PUBLISHER_NATS_URL]")
	fs.Lookup("nats-url").DefValue = redactURL(a.natsURL) // -h must not print a credential
	fs.StringVar(&a.natsFiles.Creds, "nats-creds", a.env("NATS_CREDS", ""), "NATS credentials `file` [$ATODENE_PUBLISHER_NATS_CREDS]")
	fs.StringVar(&a.natsFiles.Nkey, "nats-nkey", a.env("NATS_NKEY", ""), "`file` holding the NATS user's nkey seed (SU…); not with -nats-creds [$ATODENE_PUBLISHER_NATS_NKEY]")
	fs.StringVar(&a.natsFiles.CA, "nats-ca", a.env("NATS_CA", ""), "PEM `file` of the CAs trusted for NATS TLS; empty uses the system's [$ATODENE_PUBLISHER_NATS_CA]")
	fs.StringVar(&a.natsFiles.Cert, "nats-cert", a.env("NATS_CERT", ""), "PEM `file` of the client certificate for NATS TLS (mutual TLS) [$ATODENE_PUBLISHER_NATS_CERT]")
	fs.StringVar(&a.natsFiles.Key, "nats-key", a.env("NATS_KEY", ""), "PEM `file` of the private key of -nats-cert [$ATODENE_PUBLISHER_NATS_KEY]")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: publisher [flags] <command> [command flags]\n\nCommands:\n")
		cmds := commands()
		names := make([]string, 0, len(cmds))
		for n := range cmds {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
		}
		fmt.Fprintf(w, "\nFlags (also taken after a command that connects to NATS):\n")
		fs.PrintDefaults()
	}
	// The command's own flags follow its name, so these are parsed up to the name only.
	if err := a.parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.SetOutput(a.Stderr)
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

// flagSet returns the flag set of a command: it reports errors instead of exiting, and its usage
// names the command (setUsage gives it a synopsis and a description).
func (a *App) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: publisher %s [flags]\n\nFlags:\n", name)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses the flags at the start of args. Help (-h) is asked for, so its usage goes to
// Stdout, where it can be paged, and is flag.ErrHelp (exit status 0). A mistake is a UsageError
// naming the command, printed once by main: the flag package would print it and the whole usage
// to the same writer.
func (a *App) parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(a.Stdout)
		fs.Usage()
		return err
	case err != nil:
		return usagef("%s: %v (publisher %s -h lists the flags)", fs.Name(), err, fs.Name())
	}
	return nil
}

// parseArgs parses a command's flags wherever they are among its arguments, as in
// `dlq show 3 -json`, and returns the arguments. "--" ends the flags: what follows is arguments.
func (a *App) parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := a.parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if parsed := len(args) - len(rest); parsed > 0 && args[parsed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// isHelp reports whether arg asks for help, as the flag package understands it.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--h", "--help":
		return true
	}
	return false
}

// help prints the usage of a group of commands on Stdout and returns flag.ErrHelp (exit status 0).
func (a *App) help(usage string) error {
	fmt.Fprint(a.Stdout, usage)
	return flag.ErrHelp
}

// bindConnection adds the connection flags of the tool (-nats-url, -nats-creds, -nats-nkey,
// -nats-ca, -nats-cert, -nats-key) to a command that connects to NATS, so that they may also
// follow the command's name; there they win over the ones before it.
func (a *App) bindConnection(fs *flag.FlagSet) {
	fs.StringVar(&a.natsURL, "nats-url", a.natsURL, "NATS server `URLs`, as before the command")
	fs.StringVar(&a.natsFiles.Creds, "nats-creds", a.natsFiles.Creds, "NATS credentials `file`, as before the command")
	fs.StringVar(&a.natsFiles.Nkey, "nats-nkey", a.natsFiles.Nkey, "NATS nkey seed `file`, as before the command")
	fs.StringVar(&a.natsFiles.CA, "nats-ca", a.natsFiles.CA, "PEM `file` of the CAs trusted for NATS TLS, as before the command")
	fs.StringVar(&a.natsFiles.Cert, "nats-cert", a.natsFiles.Cert, "PEM `file` of the NATS client certificate, as before the command")
	fs.StringVar(&a.natsFiles.Key, "nats-key", a.natsFiles.Key, "PEM `file` of the NATS client key, as before the command")
	fs.Lookup("nats-url").DefValue = redactURL(a.natsURL) // -h must not print a password
}

// connect opens a NATS connection and its JetStream context. A credentials, nkey or TLS file
// that cannot be used is an error naming its flag and path; -nats-nkey with -nats-creds is a
// UsageError.
func (a *App) connect() (*nats.Conn, jetstream.JetStream, error) {
	if a.natsFiles.Nkey != "" && a.natsFiles.Creds != "" {
		return nil, nil, usagef("-nats-nkey: not with -nats-creds, which holds an nkey seed already: give one of them")
	}
	files, err := a.natsFiles.Options()
	if err != nil {
		return nil, nil, err
	}
	for _, u := range strings.Split(a.natsURL, ",") {
		if redact.Misplaced(strings.TrimSpace(u)) { // it would connect to the password's first digits as a port
			return nil, nil, usagef("-nats-url: %s", redact.MisplacedMessage)
		}
	}
	nc, err := nats.Connect(a.natsURL, append([]nats.Option{nats.Name("atodene-publisher")}, files...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to NATS at %s: %w", redactURL(a.natsURL), redact.Err("-nats-url", a.natsURL, err))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// printJSON writes v to Stdout as one line of JSON: the output of -json.
func (a *App) printJSON(v any) error {
	enc := json.NewEncoder(a.Stdout)
	enc.SetEscapeHTML(false) // an error text keeps its < and &
	return enc.Encode(v)
}

// where says which NATS server was asked, in an error that means the server has no such stream:
// what a publisher sees when pointed at another server than the worker's (a machine's own NATS on
// the standard port, say).
func (a *App) where(err error) error {
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%w: on the NATS server %s; is it the worker's? Set -nats-url or ATODENE_PUBLISHER_NATS_URL (the worker prints it at start-up)",
			err, redactURL(a.natsURL))
	}
	return err
}

// redactURL hides the credentials in server URLs printed in help and errors.
func redactURL(u string) string { return redact.URLs(u) }
