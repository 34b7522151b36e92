package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/atodene-worker/atodene-worker/internal/redact"
	"github.com/atodene-worker/atodene-worker/internal/redisconn"
)

// EnvPrefix starts the name of every setting's environment variable: the flag -nats-url is
// also ATODENE_WORKER_NATS_URL.
const EnvPrefix = "ATODENE_WORKER_"

// Settings are the worker's connection and tuning settings. ParseSettings fills them from
// flags and environment variables; the comment of each field gives its flag and default.
type Settings struct {
	// ShopsFile is the path of the shops file (-config). Default "shops.yaml".
	ShopsFile string
	// NATSURL lists the NATS servers, comma-separated nats:// or tls:// URLs (-nats-url).
	// Required unless Embedded, which runs an in-process server when it is empty.
	NATSURL string
	// NATSCredsFile is a NATS credentials file (-nats-creds). Default "": none.
	NATSCredsFile string
	// NATSCAFile is a PEM file of the CAs that sign the NATS servers' certificates (-nats-ca).
	// Default "": the system's roots.
	NATSCAFile string
	// NATSCertFile and NATSKeyFile are the PEM client certificate and its private key, for NATS
	// servers that verify their clients' certificates (mutual TLS) (-nats-cert, -nats-key). Both
	// or neither. Default "": none.
	NATSCertFile, NATSKeyFile string
	// NATSNkeyFile is a file holding a NATS user nkey seed, SU… (-nats-nkey), for servers that
	// know the worker's user by its public nkey. Not with NATSCredsFile. Default "": none.
	NATSNkeyFile string
	// RedisURL is the Redis server, redis:// or rediss:// for TLS, the master of a Sentinel group,
	// redis-sentinel:// or rediss-sentinel://, or a Redis Cluster, redis-cluster:// or
	// rediss-cluster:// (redisconn.Open) (-redis-url). Required unless Embedded, which runs an
	// in-process Redis-protocol server when it is empty.
	RedisURL string
	// RedisCAFile is a PEM file of the CAs that sign the Redis server's certificate (-redis-ca),
	// with a rediss:// RedisURL. Default "": the system's roots.
	RedisCAFile string
	// RedisCertFile and RedisKeyFile are the PEM client certificate and its private key, for a
	// Redis that verifies its clients' certificates (-redis-cert, -redis-key), with a rediss://
	// RedisURL. Both or neither. Default "": none.
	RedisCertFile, RedisKeyFile string
	// RedisWaitReplicas is how many Redis replicas must hold a registration intent before ATODENE
	// is called (-redis-wait-replicas): a failover to a replica that lacks it would lose the record
	// that ATODENE was called. Default AutoReplicas; 0 does not wait.
	RedisWaitReplicas ReplicaWait
	// RedisWaitTimeout bounds that wait (-redis-wait-timeout): past it the event is retried
	// later, without calling ATODENE. Default 1s.
	RedisWaitTimeout time.Duration
	// RedisPrefix prefixes every Redis key of the worker (-redis-prefix), so that several
	// deployments can share one Redis. No braces: a hash tag in it would put every key in one slot
	// of a Redis Cluster. Default "atodene:".
	RedisPrefix string
	// HTTPAddr is where /metrics, /healthz and /readyz are served (-http-addr).
	// Default "127.0.0.1:9090".
	HTTPAddr string
	// Concurrency is the most messages one worker handles at once, its consumers together
	// (-concurrency). Default DefaultConcurrency.
	Concurrency int
	// ProviderTimeout bounds one ATODENE call (-provider-timeout). Default 30s.
	ProviderTimeout time.Duration
	// AckWait is how long NATS waits for an ack before redelivering a message (-ack-wait). It
	// must exceed ProviderTimeout, or a slow call would be redelivered while still running.
	// Default 2m.
	AckWait time.Duration
	// MaxDeliveries is how many times a message is delivered before it is dead-lettered as
	// exhausted (-max-deliveries). Default 10.
	MaxDeliveries int
	// PollFirstDelay is the wait before the first check of an order under review
	// (-poll-first-delay). Default 1m.
	PollFirstDelay time.Duration
	// PollMaxInterval caps the exponential back-off between checks (-poll-max-interval).
	// Default 30m.
	PollMaxInterval time.Duration
	// PollDeadline is how long an order may stay under review before it is dead-lettered with
	// reason poll-deadline (-poll-deadline). Default 336h (14 days).
	PollDeadline time.Duration
	// ParkLimit is how long an event may wait for its order to get where it applies (a tracking
	// number, a cancel or an invoice request for an order not registered yet or during its
	// registration) before it is
	// dead-lettered with reason no-transaction (-park-limit). Default 168h (7 days).
	ParkLimit time.Duration
	// MinReauthorizeAfter is the shortest reauthorize_after, 0 (off) aside, that the shops file
	// may give (-min-reauthorize-after): a shorter one is refused as a probable wrong unit. Lower
	// it only to see re-authorizations happen within seconds, against a sandbox whose
	// authorizations expire as soon (tests, the reliability suite). Default 1h.
	MinReauthorizeAfter time.Duration
	// PollHandoffAhead, if positive, is how far ahead a re-check may be due and still be scheduled
	// in JetStream when it is set (-poll-handoff-ahead); one due later is held in Redis and handed
	// to JetStream that long before it is due, so that JetStream holds only the re-checks due soon,
	// however many orders are under review. A held re-check lives only in Redis until then: a Redis
	// that loses its data loses it. Default 0: every re-check is a JetStream schedule at once.
	PollHandoffAhead time.Duration
	// ReconcileInterval is how often the worker checks that its streams exist and that the timers
	// the orders' states rely on are in JetStream, re-creating what a lost NATS store took
	// (-reconcile-interval); a timer is looked for once it is that long overdue. Default 1m.
	ReconcileInterval time.Duration
	// Retention is how long an order is kept in Redis after it last changed (-retention): its state
	// and history expire then, and it leaves the order index. At least 720h (the records of
	// processed events) and each of -orders-retention, -dlq-retention and -poll-deadline, so that no
	// event of the order can come again once its state is gone. Default 9600h (400 days).
	Retention time.Duration
	// LogLevel is the least severe level logged (-log-level). Default info.
	LogLevel zapcore.Level
	// ShutdownGrace is how long in-flight messages may take to finish at shutdown before they
	// are handed back for redelivery (-shutdown-grace). Default 30s.
	ShutdownGrace time.Duration
	// DataDir holds the embedded servers' data (-data-dir). Default "./data".
	DataDir string
	// OrdersStream, ResultsStream and DLQStream name the JetStream streams (-orders-stream,
	// -results-stream, -dlq-stream). Defaults "ORDERS", "RESULTS", "DLQ".
	OrdersStream, ResultsStream, DLQStream string
	// OrdersRetention, ResultsRetention and DLQRetention are the streams' maximum message ages
	// (-orders-retention, -results-retention, -dlq-retention). Defaults 168h, 720h, 720h.
	OrdersRetention, ResultsRetention, DLQRetention time.Duration
	// DuplicateWindow is the ORDERS stream's window for dropping re-sent messages by
	// Nats-Msg-Id (-duplicate-window). At least 2m. Default 2m.
	DuplicateWindow time.Duration
	// SkipStreamSetup leaves the streams and consumers as they are at start-up, for
	// deployments whose administrators manage them (-skip-stream-setup). Default false: the
	// worker creates or updates them.
	SkipStreamSetup bool
	// StreamBytes is the JetStream file store the worker's streams reserve together
	// (-stream-bytes), in bytes: ORDERS 40%, RESULTS 36%, DLQ 10%, ATODENE_POLLS 6%,
	// ATODENE_KEPT 6% and ATODENE_ADVISORIES 2%. Each refuses new messages once its share is full
	// (but ATODENE_POLLS, whose message schedules allow nothing but dropping the oldest), so a
	// backlog makes the server refuse new input while the worker's own streams keep their room.
	// Default 4 GiB.
	StreamBytes ByteSize
	// StreamReplicas is the replica count of the streams the worker creates or updates
	// (-stream-replicas): 3 on a JetStream cluster. Default 1.
	StreamReplicas int
	// Embedded runs the whole product in one process (-embedded): an in-process NATS server
	// and Redis-protocol server where no URL is given, and the ATODENE sandbox with a demo shop
	// when the shops file does not exist. The in-process Redis keeps nothing across restarts, so
	// its JetStream store under DataDir lasts as long as the process. Default false.
	Embedded bool
	// EmbeddedNATSAddr and EmbeddedRedisAddr are where Embedded's in-process NATS and
	// Redis-protocol servers listen (-embedded-nats-addr, -embedded-redis-addr), host:port.
	// Defaults "127.0.0.1:14222" and "127.0.0.1:16379": stable, so that publisher's settings
	// printed at start-up stay true across restarts, and beside the standard ports, which a
	// machine's own NATS or Redis often holds.
	EmbeddedNATSAddr, EmbeddedRedisAddr string
	// EmbeddedConsoleAddr is where Embedded's operators' console listens
	// (-embedded-console-addr), host:port on loopback: its demo logs in loopback clients without
	// a password. Default "127.0.0.1:18090", stable so that a bookmark of it stays true.
	EmbeddedConsoleAddr string
	// EmbeddedNoSamples, with Embedded and no shops file, leaves out the sample orders it
	// otherwise publishes at start for the console to show (-embedded-no-samples). Default false.
	EmbeddedNoSamples bool
	// Demo, with Embedded, publishes a sample batch that meets every sandbox rule, prints a
	// table of the outcomes and exits (-demo). Default false.
	Demo bool
}

// Redacted returns s with the credentials of NATSURL and RedisURL (users, passwords, tokens)
// replaced by "xxxxx", for printing (see redact.URLs).
func (s Settings) Redacted() Settings {
	s.NATSURL, s.RedisURL = redact.URLs(s.NATSURL), redact.URLs(s.RedisURL)
	return s
}

// Format prints the settings with every verb of package fmt, URL passwords redacted, so that
// logging them cannot leak a password.
func (s Settings) Format(f fmt.State, verb rune) {
	type fields Settings // the same fields without the methods, to print them
	fmt.Fprintf(f, fmt.FormatString(f, verb), fields(s.Redacted()))
}

// minDuplicateWindow is the least duplicate window the design allows for ORDERS.
const minDuplicateWindow = 2 * time.Minute

// EventRecordTTL is how long the record of a processed event is kept in Redis: longer than any
// redelivery, replay or wait of the event is expected.
const EventRecordTTL = 30 * 24 * time.Hour

// DefaultRetention is how long an order is kept after its last write by default: 400 days.
const DefaultRetention = 400 * 24 * time.Hour

// maxRedisWaitTimeout is the longest -redis-wait-timeout: below the Redis client's read timeout.
const maxRedisWaitTimeout = 2 * time.Second

// maxParkLimit keeps a parked event's record alive for as long as the event may wait, twice.
const maxParkLimit = EventRecordTTL / 2

// DefaultSettings returns the settings with every default applied.
func DefaultSettings() Settings { return Settings{RedisWaitReplicas: AutoReplicas}.withDefaults() }

// MinConcurrency is the least -concurrency: a slot kept for each of the three consumers (an idle
// one holds its slot through a fetch that waits a second for messages) and one they share. Below
// it, idle consumers took turns holding the only slots: at 1, each order waited up to 2 s.
const MinConcurrency = 4

// DefaultConcurrency bounds the calls to ATODENE in flight, and so the rate (Little's law): 512
// handlers at once allow 2,560 orders/s with a provider that answers in 200 ms.
const DefaultConcurrency = 512

// withDefaults returns s with every zero field set to its default. SkipStreamSetup's zero
// value is its default.
func (s Settings) withDefaults() Settings {
	setDefault(&s.ShopsFile, "shops.yaml")
	setDefault(&s.RedisPrefix, "atodene:")
	setDefault(&s.RedisWaitTimeout, time.Second)
	setDefault(&s.StreamReplicas, 1)
	setDefault(&s.HTTPAddr, "127.0.0.1:9090")
	setDefault(&s.Concurrency, DefaultConcurrency)
	setDefault(&s.ProviderTimeout, 30*time.Second)
	setDefault(&s.AckWait, 2*time.Minute)
	setDefault(&s.MaxDeliveries, 10)
	setDefault(&s.PollFirstDelay, time.Minute)
	setDefault(&s.PollMaxInterval, 30*time.Minute)
	setDefault(&s.PollDeadline, 14*24*time.Hour)
	setDefault(&s.ParkLimit, 7*24*time.Hour)
	setDefault(&s.MinReauthorizeAfter, minReauthorizeAfter)
	setDefault(&s.ShutdownGrace, 30*time.Second)
	setDefault(&s.ReconcileInterval, time.Minute)
	setDefault(&s.Retention, DefaultRetention)
	setDefault(&s.DataDir, "./data")
	setDefault(&s.EmbeddedNATSAddr, "127.0.0.1:14222")
	setDefault(&s.EmbeddedRedisAddr, "127.0.0.1:16379")
	setDefault(&s.EmbeddedConsoleAddr, "127.0.0.1:18090")
	setDefault(&s.OrdersStream, "ORDERS")
	setDefault(&s.ResultsStream, "RESULTS")
	setDefault(&s.DLQStream, "DLQ")
	setDefault(&s.OrdersRetention, 7*24*time.Hour)
	setDefault(&s.ResultsRetention, 30*24*time.Hour)
	setDefault(&s.DLQRetention, 30*24*time.Hour)
	setDefault(&s.DuplicateWindow, minDuplicateWindow)
	setDefault(&s.StreamBytes, 4<<30)
	return s // LogLevel's zero value is info, its default
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// bind defines one flag per setting on fs, each defaulting to the current value in s.
func (s *Settings) bind(fs *flag.FlagSet) {
	fs.StringVar(&s.ShopsFile, "config", s.ShopsFile, "the shops `file`")
	fs.StringVar(&s.NATSURL, "nats-url", s.NATSURL, "NATS server `URLs`, comma-separated; required unless -embedded")
	fs.StringVar(&s.NATSCredsFile, "nats-creds", s.NATSCredsFile, "NATS credentials `file`")
	fs.StringVar(&s.NATSCAFile, "nats-ca", s.NATSCAFile, "PEM `file` of the CAs trusted for NATS TLS; empty uses the system's")
	fs.StringVar(&s.NATSCertFile, "nats-cert", s.NATSCertFile, "PEM `file` of the client certificate for NATS TLS (mutual TLS); needs -nats-key")
	fs.StringVar(&s.NATSKeyFile, "nats-key", s.NATSKeyFile, "PEM `file` of the private key of -nats-cert")
	fs.StringVar(&s.NATSNkeyFile, "nats-nkey", s.NATSNkeyFile, "`file` holding the NATS user's nkey seed (SU…); not with -nats-creds")
	fs.StringVar(&s.RedisURL, "redis-url", s.RedisURL, "Redis `URL`: redis:// or rediss:// (one server), redis-sentinel:// or rediss-sentinel:// (Sentinel), redis-cluster:// or rediss-cluster:// (Cluster); required unless -embedded")
	fs.StringVar(&s.RedisCAFile, "redis-ca", s.RedisCAFile, "PEM `file` of the CAs trusted for Redis TLS (rediss://); empty uses the system's")
	fs.StringVar(&s.RedisCertFile, "redis-cert", s.RedisCertFile, "PEM `file` of the client certificate for Redis TLS (rediss://); needs -redis-key")
	fs.StringVar(&s.RedisKeyFile, "redis-key", s.RedisKeyFile, "PEM `file` of the private key of -redis-cert")
	fs.StringVar(&s.RedisPrefix, "redis-prefix", s.RedisPrefix, "`prefix` of every Redis key the worker writes")
	fs.Var(&s.RedisWaitReplicas, "redis-wait-replicas", "Redis replicas that must hold a registration intent before ATODENE is called: auto (1 if the master has a replica at start-up, else 0) or a `number`; 0 does not wait")
	fs.DurationVar(&s.RedisWaitTimeout, "redis-wait-timeout", s.RedisWaitTimeout, "longest wait for those replicas; past it the event is retried later, ATODENE not called")
	fs.StringVar(&s.HTTPAddr, "http-addr", s.HTTPAddr, "`address` for /metrics, /healthz and /readyz")
	fs.IntVar(&s.Concurrency, "concurrency", s.Concurrency, "most messages handled at once by this worker, all its consumers together")
	fs.DurationVar(&s.ProviderTimeout, "provider-timeout", s.ProviderTimeout, "timeout of one ATODENE call")
	fs.DurationVar(&s.AckWait, "ack-wait", s.AckWait, "how long NATS waits for an ack before redelivering; must exceed -provider-timeout")
	fs.IntVar(&s.MaxDeliveries, "max-deliveries", s.MaxDeliveries, "deliveries of a message before it is dead-lettered as exhausted")
	fs.DurationVar(&s.PollFirstDelay, "poll-first-delay", s.PollFirstDelay, "wait before the first check of an order under review")
	fs.DurationVar(&s.PollMaxInterval, "poll-max-interval", s.PollMaxInterval, "longest wait between checks of an order under review")
	fs.DurationVar(&s.PollDeadline, "poll-deadline", s.PollDeadline, "how long an order may stay under review before it is dead-lettered")
	fs.DurationVar(&s.ParkLimit, "park-limit", s.ParkLimit, "how long an event may wait for its order (a tracking number before the order) before it is dead-lettered")
	fs.DurationVar(&s.MinReauthorizeAfter, "min-reauthorize-after", s.MinReauthorizeAfter, "shortest reauthorize_after (0 aside) the shops file may give; a shorter one is refused as a probable wrong unit (lower it only for tests)")
	fs.DurationVar(&s.PollHandoffAhead, "poll-handoff-ahead", s.PollHandoffAhead, "if positive, re-checks due later than this are held in Redis and handed to JetStream this long before they are due (for very many orders under review); 0 holds none")
	fs.DurationVar(&s.ReconcileInterval, "reconcile-interval", s.ReconcileInterval, "how often lost streams and timers are looked for and re-created")
	fs.DurationVar(&s.Retention, "retention", s.Retention, "how long an order's state, history and index entry are kept after the order last changed")
	fs.Var(&s.LogLevel, "log-level", "least severe `level` logged: debug, info (the default), warn or error")
	fs.DurationVar(&s.ShutdownGrace, "shutdown-grace", s.ShutdownGrace, "time in-flight messages get to finish at shutdown")
	fs.StringVar(&s.DataDir, "data-dir", s.DataDir, "`directory` for the embedded servers' data")
	fs.StringVar(&s.OrdersStream, "orders-stream", s.OrdersStream, "`name` of the stream of inbound events")
	fs.StringVar(&s.ResultsStream, "results-stream", s.ResultsStream, "`name` of the stream of outcome events")
	fs.StringVar(&s.DLQStream, "dlq-stream", s.DLQStream, "`name` of the dead-letter stream")
	fs.DurationVar(&s.OrdersRetention, "orders-retention", s.OrdersRetention, "maximum age of inbound events")
	fs.DurationVar(&s.ResultsRetention, "results-retention", s.ResultsRetention, "maximum age of outcome events")
	fs.DurationVar(&s.DLQRetention, "dlq-retention", s.DLQRetention, "maximum age of dead letters")
	fs.DurationVar(&s.DuplicateWindow, "duplicate-window", s.DuplicateWindow, "window in which a re-sent inbound event is dropped (at least 2m)")
	fs.BoolVar(&s.Embedded, "embedded", s.Embedded, "run NATS, Redis and the ATODENE sandbox in-process where none are given (a demo; the in-process Redis keeps nothing on disk)")
	fs.Var(&s.StreamBytes, "stream-bytes", "`size` of the JetStream store the worker's streams reserve together, e.g. 4GiB or 500MB")
	fs.StringVar(&s.EmbeddedNATSAddr, "embedded-nats-addr", s.EmbeddedNATSAddr, "with -embedded: `address` of the in-process NATS server")
	fs.StringVar(&s.EmbeddedRedisAddr, "embedded-redis-addr", s.EmbeddedRedisAddr, "with -embedded: `address` of the in-process Redis-protocol server")
	fs.StringVar(&s.EmbeddedConsoleAddr, "embedded-console-addr", s.EmbeddedConsoleAddr, "with -embedded: loopback `address` of the operators' console")
	fs.BoolVar(&s.EmbeddedNoSamples, "embedded-no-samples", s.EmbeddedNoSamples, "with -embedded and no shops file: publish no sample orders at start")
	fs.IntVar(&s.StreamReplicas, "stream-replicas", s.StreamReplicas, "replicas of the streams the worker creates or updates (3 on a cluster)")
	fs.BoolVar(&s.Demo, "demo", s.Demo, "with -embedded: publish a sample batch covering every sandbox rule, print the outcomes and exit")
	fs.BoolVar(&s.SkipStreamSetup, "skip-stream-setup", s.SkipStreamSetup, "leave streams and consumers as they are instead of creating or updating them at start-up")
}

// EnvName returns the environment variable of the setting whose flag is name.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ParseSettings returns the settings given by args (flags, without the program name) and by
// the environment as read by getenv (os.Getenv in production). A flag on the command line wins
// over its environment variable, which wins over the default; an empty variable counts as
// unset.
//
// With -h or -help it prints every setting, with its variable and default, to out and returns
// flag.ErrHelp; nothing else is printed. Otherwise the error is an unknown or malformed flag,
// or every bad value joined, each naming its flag and variable.
func ParseSettings(args []string, getenv func(string) string, out io.Writer) (Settings, error) {
	s := DefaultSettings()
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, not printed; only -h prints
	fs.Usage = func() {}
	s.bind(fs)
	envErrs := map[string]error{}
	fs.VisitAll(func(f *flag.Flag) {
		env := EnvName(f.Name)
		f.Usage += " [$" + env + "]"
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				envErrs[f.Name] = fmt.Errorf("invalid value %q for %s: %w", v, env, err)
				_ = f.Value.Set(f.DefValue) // a failed Set may leave a zero value behind
			}
		}
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(out)
			printUsage(fs)
		}
		return Settings{}, err
	}
	if fs.NArg() > 0 {
		return Settings{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { delete(envErrs, f.Name) }) // the flag overrides a bad variable
	var errs []error
	fs.VisitAll(func(f *flag.Flag) { errs = append(errs, envErrs[f.Name]) }) // in flag order
	if err := errors.Join(append(errs, s.validate())...); err != nil {
		return Settings{}, err
	}
	return s, nil
}

func printUsage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, `Usage:
  worker [flags]               run the worker
  worker config check [flags]  check the shops file and print it, secrets masked

Every flag can also be given by the environment variable in brackets; the flag wins.

Flags:
`)
	fs.PrintDefaults()
}

// validate returns every bad setting, joined, each naming its flag and variable.
func (s Settings) validate() error {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("-%s (%s): %s", flagName, EnvName(flagName), fmt.Sprintf(format, args...)))
	}
	if s.ShopsFile == "" {
		bad("config", "required")
	}
	s.validateServers(bad)
	if s.StreamReplicas < 1 || s.StreamReplicas > 5 {
		bad("stream-replicas", "%d: want 1 to 5", s.StreamReplicas)
	}
	if strings.ContainsAny(s.RedisPrefix, "{}") {
		bad("redis-prefix", "%q: want no braces: the keys' hash tags are their shops ({shop}), which a brace in the prefix would replace", s.RedisPrefix)
	}
	if s.Demo && !s.Embedded {
		bad("demo", "needs -embedded")
	}
	if s.Demo && (s.NATSURL != "" || s.RedisURL != "") {
		// It would join the durable consumers of those servers and handle their orders.
		bad("demo", "runs on in-process servers of its own: it takes no -nats-url or -redis-url (given by flag or environment)")
	}
	if _, _, err := net.SplitHostPort(s.HTTPAddr); err != nil {
		bad("http-addr", "%q: want host:port: %v", s.HTTPAddr, err)
	}
	if s.Concurrency < MinConcurrency {
		bad("concurrency", "%d: must be at least %d: the orders, polls and advisories consumers each keep a slot, and one is shared", s.Concurrency, MinConcurrency)
	}
	if s.MaxDeliveries < 1 {
		bad("max-deliveries", "%d: must be at least 1", s.MaxDeliveries)
	}
	s.validateDurations(bad)
	if s.LogLevel < zapcore.DebugLevel || s.LogLevel > zapcore.ErrorLevel {
		bad("log-level", "%s: want debug, info, warn or error", s.LogLevel)
	}
	s.validateStreams(bad)
	if s.StreamBytes < minStreamBytes {
		bad("stream-bytes", "%s: must be at least %s", s.StreamBytes, minStreamBytes)
	}
	return errors.Join(errs...)
}

type reportFunc func(flagName, format string, args ...any)

// RequireServers returns a problem for each of -nats-url and -redis-url that is empty without
// -embedded, each naming its flag and variable: a production worker on in-process servers would
// report ready on state that a restart forgets, and its replicas would stop sharing leases, so only
// -embedded runs them. ParseSettings does not check it, so that a check that connects to no server
// (worker config check) runs without them; the worker checks it before it starts.
func (s Settings) RequireServers() error {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("-%s (%s): %s", flagName, EnvName(flagName), fmt.Sprintf(format, args...)))
	}
	if !s.Embedded && s.NATSURL == "" {
		bad("nats-url", "required (or -embedded, to run an in-process NATS server)")
	}
	if !s.Embedded && s.RedisURL == "" {
		bad("redis-url", "required (or -embedded, to run an in-process Redis-protocol server)")
	}
	return errors.Join(errs...)
}

func (s Settings) validateServers(bad reportFunc) {
	if s.NATSURL == "" {
		if s.NATSCredsFile != "" {
			bad("nats-creds", "needs -nats-url: the embedded server takes no credentials")
		}
		if s.NATSCAFile != "" {
			bad("nats-ca", "needs -nats-url: the embedded server does not use TLS")
		}
		if s.NATSNkeyFile != "" {
			bad("nats-nkey", "needs -nats-url: the embedded server takes no credentials")
		}
		for _, f := range []struct{ flag, file string }{{"nats-cert", s.NATSCertFile}, {"nats-key", s.NATSKeyFile}} {
			if f.file != "" {
				bad(f.flag, "needs -nats-url: the embedded server does not use TLS")
			}
		}
	}
	if s.NATSNkeyFile != "" && s.NATSCredsFile != "" {
		bad("nats-nkey", "not with -nats-creds, which holds an nkey seed already: give one of them")
	}
	checkKeyPair(bad, "nats", s.NATSCertFile, s.NATSKeyFile)
	if s.RedisCAFile != "" || s.RedisCertFile != "" || s.RedisKeyFile != "" {
		if u, err := url.Parse(s.RedisURL); err != nil || !redisconn.UsesTLS(u.Scheme) {
			for _, f := range []struct{ flag, file string }{{"redis-ca", s.RedisCAFile}, {"redis-cert", s.RedisCertFile}, {"redis-key", s.RedisKeyFile}} {
				if f.file != "" {
					bad(f.flag, "needs a rediss:// (or rediss-sentinel://, rediss-cluster://) -redis-url: the files are for TLS, which redis:// and the embedded server do not use")
				}
			}
		}
	}
	checkKeyPair(bad, "redis", s.RedisCertFile, s.RedisKeyFile)
	if s.NATSURL != "" {
		for _, u := range strings.Split(s.NATSURL, ",") {
			checkURL(bad, "nats-url", strings.TrimSpace(u), "nats", "tls", "ws", "wss")
		}
	}
	if s.RedisURL != "" {
		checkURL(bad, "redis-url", s.RedisURL, redisconn.Schemes()...)
	}
	if s.Embedded && (s.NATSURL == "" || s.RedisURL == "") && s.DataDir == "" {
		bad("data-dir", "required for the embedded servers")
	}
	if s.Embedded && s.RedisURL == "" && s.RedisWaitReplicas > 0 {
		bad("redis-wait-replicas", "%d: the in-process Redis has no replicas (give -redis-url, or leave it auto)", s.RedisWaitReplicas)
	}
	if s.Embedded && s.RedisURL == "" && s.NATSURL != "" {
		bad("redis-url", "required with -nats-url: the in-process Redis forgets at exit the order states that the streams of -nats-url keep")
	}
	for _, a := range []struct{ flag, addr string }{{"embedded-nats-addr", s.EmbeddedNATSAddr}, {"embedded-redis-addr", s.EmbeddedRedisAddr},
		{"embedded-console-addr", s.EmbeddedConsoleAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); s.Embedded && err != nil {
			bad(a.flag, "%q: want host:port: %v", a.addr, err)
		}
	}
	if host, _, err := net.SplitHostPort(s.EmbeddedConsoleAddr); s.Embedded && err == nil {
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			bad("embedded-console-addr", "%q: want a loopback address: the embedded console logs in its clients without a password", s.EmbeddedConsoleAddr)
		}
	}
}

// checkKeyPair reports a client certificate without its key (-<server>-cert, -<server>-key), or
// the other way round.
func checkKeyPair(bad reportFunc, server, certFile, keyFile string) {
	switch {
	case certFile != "" && keyFile == "":
		bad(server+"-cert", "needs -%s-key, the private key of the certificate", server)
	case certFile == "" && keyFile != "":
		bad(server+"-key", "needs -%s-cert, the client certificate of the key", server)
	}
}

// checkURL reports raw unless it is a URL with one of schemes and a host, whose credentials are
// in its user information (redact.Misplaced). URLs may carry passwords, so messages show them
// redacted.
func checkURL(bad reportFunc, flagName, raw string, schemes ...string) {
	u, err := url.Parse(raw)
	if err != nil {
		bad(flagName, "not a URL (the value is not quoted: it may hold a credential)") // url.Error would quote it
		return
	}
	if redact.Misplaced(raw) {
		bad(flagName, "%s", redact.MisplacedMessage)
		return
	}
	for _, sc := range schemes {
		if u.Scheme == sc && u.Host != "" {
			return
		}
	}
	want := make([]string, len(schemes))
	for i, sc := range schemes {
		want[i] = sc + "://host:port"
	}
	if shown := redact.URLs(raw); shown != redact.Mask {
		bad(flagName, "%q: want %s", shown, strings.Join(want, " or "))
		return
	}
	// Without a host, what a credential is cannot be told from the rest: the value is not quoted.
	bad(flagName, "want %s (the value is not quoted: it may hold a credential)", strings.Join(want, " or "))
}

func (s Settings) validateDurations(bad reportFunc) {
	positive := []struct {
		flag string
		d    time.Duration
	}{
		{"provider-timeout", s.ProviderTimeout}, {"ack-wait", s.AckWait},
		{"poll-first-delay", s.PollFirstDelay}, {"poll-max-interval", s.PollMaxInterval},
		{"poll-deadline", s.PollDeadline}, {"park-limit", s.ParkLimit}, {"shutdown-grace", s.ShutdownGrace},
		{"min-reauthorize-after", s.MinReauthorizeAfter},
		{"reconcile-interval", s.ReconcileInterval}, {"retention", s.Retention},
		{"orders-retention", s.OrdersRetention}, {"results-retention", s.ResultsRetention},
		{"dlq-retention", s.DLQRetention}, {"redis-wait-timeout", s.RedisWaitTimeout},
	}
	for _, p := range positive {
		if p.d <= 0 {
			bad(p.flag, "%v: must be positive", p.d)
		}
	}
	if s.PollHandoffAhead < 0 {
		bad("poll-handoff-ahead", "%v: must not be negative (0 holds no re-check)", s.PollHandoffAhead)
	}
	if s.ProviderTimeout > 0 && s.AckWait <= s.ProviderTimeout {
		bad("ack-wait", "%v must exceed -provider-timeout %v, or a slow call is redelivered while it runs", s.AckWait, s.ProviderTimeout)
	}
	if s.PollFirstDelay > 0 && s.PollMaxInterval < s.PollFirstDelay {
		bad("poll-max-interval", "%v is less than -poll-first-delay %v", s.PollMaxInterval, s.PollFirstDelay)
	}
	if s.PollFirstDelay > 0 && s.PollDeadline <= s.PollFirstDelay {
		bad("poll-deadline", "%v must exceed -poll-first-delay %v", s.PollDeadline, s.PollFirstDelay)
	}
	if s.PollDeadline > 0 && s.PollMaxInterval > s.PollDeadline {
		// ATODENE_POLLS is sized for waits up to the deadline (and the interval's jitter): a
		// re-check scheduled further ahead could be removed before it fires, and none is
		// wanted past the deadline anyway.
		bad("poll-max-interval", "%v exceeds -poll-deadline %v: no re-check may be scheduled further ahead than the deadline", s.PollMaxInterval, s.PollDeadline)
	}
	if s.ParkLimit > maxParkLimit {
		bad("park-limit", "%v: must be at most %v: a parked event's record is kept %v, and an event Redis lost that parks again may wait twice the limit", s.ParkLimit, maxParkLimit, EventRecordTTL)
	}
	if s.RedisWaitTimeout > 0 && (s.RedisWaitTimeout < time.Millisecond || s.RedisWaitTimeout > maxRedisWaitTimeout) {
		// WAIT takes whole milliseconds, and 0 waits forever; a wait past the Redis client's read
		// timeout (3 s) ends in an I/O timeout and a resent write instead of an answer.
		bad("redis-wait-timeout", "%v: want 1ms to %v", s.RedisWaitTimeout, maxRedisWaitTimeout)
	}
	s.validateRetention(bad)
	if s.DuplicateWindow < minDuplicateWindow {
		bad("duplicate-window", "%v: must be at least %v", s.DuplicateWindow, minDuplicateWindow)
	} else if s.OrdersRetention > 0 && s.DuplicateWindow > s.OrdersRetention {
		bad("duplicate-window", "%v exceeds -orders-retention %v", s.DuplicateWindow, s.OrdersRetention)
	}
}

// validateRetention checks that an order's state outlives whatever may bring one of its events
// again: the record of a processed event, the inbound stream, a dead letter replayed, a re-check.
// Without its state, the event would be handled as the first of a new order (a registration sent
// twice). A dead letter written at the end of a wait (the poll deadline, the park limit) may be
// replayed -dlq-retention after it, and the wait need not change the state's time changed (a
// re-check still under review changes nothing the index shows): the state must outlive the wait
// and the letter's retention added up.
func (s Settings) validateRetention(bad reportFunc) {
	if s.Retention <= 0 {
		return // reported with the other durations
	}
	for _, least := range []struct {
		what string
		d    time.Duration
	}{
		{"the records of processed events are kept " + EventRecordTTL.String(), EventRecordTTL},
		{"-orders-retention is " + s.OrdersRetention.String(), s.OrdersRetention},
		{"-dlq-retention is " + s.DLQRetention.String(), s.DLQRetention},
		{"-poll-deadline is " + s.PollDeadline.String(), s.PollDeadline},
		{"-poll-deadline " + s.PollDeadline.String() + " + -dlq-retention " + s.DLQRetention.String() +
			" (a poll-deadline letter, written at the deadline, may be replayed until -dlq-retention after it)", addDurations(s.PollDeadline, s.DLQRetention)},
		{"-park-limit " + s.ParkLimit.String() + " + -dlq-retention " + s.DLQRetention.String() +
			" (a parked event's letter, written at the limit, may be replayed until -dlq-retention after it)", addDurations(s.ParkLimit, s.DLQRetention)},
	} {
		if s.Retention < least.d {
			bad("retention", "%v: must be at least %v: %s, and an order's state must outlive any event of the order that may come again", s.Retention, least.d, least.what)
			return
		}
	}
}

// addDurations adds a and b, saturating at the largest time.Duration rather than wrapping
// negative.
func addDurations(a, b time.Duration) time.Duration {
	if a > 0 && b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func (s Settings) validateStreams(bad reportFunc) {
	seen := map[string]string{}
	for _, st := range []struct{ flag, name string }{
		{"orders-stream", s.OrdersStream}, {"results-stream", s.ResultsStream}, {"dlq-stream", s.DLQStream},
	} {
		switch {
		case st.name == "":
			bad(st.flag, "required")
		case strings.ContainsAny(st.name, " \t\r\n.*>/\\"):
			bad(st.flag, "%q: a stream name cannot contain spaces, '.', '*', '>', '/' or '\\'", st.name)
		case seen[st.name] != "":
			bad(st.flag, "%q is also -%s", st.name, seen[st.name])
		default:
			seen[st.name] = st.flag
		}
	}
}
