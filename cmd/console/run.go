package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/console"
	"github.com/atodene-worker/atodene-worker/internal/consoleops"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/redact"
	"github.com/atodene-worker/atodene-worker/internal/redisconn"
	"github.com/atodene-worker/atodene-worker/internal/termtable"
	"github.com/atodene-worker/atodene-worker/internal/tracing/otelenv"
	"github.com/atodene-worker/atodene-worker/internal/transport"
	"github.com/atodene-worker/atodene-worker/internal/worker"
)

// EnvPrefix starts the environment variable of every flag: -nats-url is also
// ATODENE_CONSOLE_NATS_URL.
const EnvPrefix = "ATODENE_CONSOLE_"

// settings are the console's flags.
type settings struct {
	NATSURL        string
	NATSFiles      transport.NATSFiles
	RedisURL       string
	RedisFiles     transport.RedisFiles
	RedisPrefix    string
	Retention      time.Duration
	ResultsStream  string
	OrdersStream   string
	DLQStream      string
	HTTPAddr       string
	OperatorsFile  string
	TrustedHeader  string
	TrustedProxies prefixList
	SessionKeyFile string
	SessionTTL     time.Duration
	CookieSecure   bool
	ShopsFile      string
	LogLevel       zapcore.Level
}

// prefixList is a flag of addresses and CIDR prefixes, comma-separated; an address is its own
// prefix (/32, /128).
type prefixList []netip.Prefix

func (l *prefixList) String() string {
	var out []string
	for _, p := range *l {
		out = append(out, p.String())
	}
	return strings.Join(out, ",")
}

func (l *prefixList) Set(v string) error {
	*l = nil
	for f := range strings.SplitSeq(v, ",") {
		f = strings.TrimSpace(f)
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return fmt.Errorf("%q is neither an address nor a CIDR prefix (10.0.0.0/8)", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		*l = append(*l, p.Masked())
	}
	return nil
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// flagSet defines the console's flags on s, with their defaults.
func flagSet(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server `URLs`, comma-separated, the worker's")
	fs.StringVar(&s.NATSFiles.Creds, "nats-creds", "", "NATS credentials `file`")
	fs.StringVar(&s.NATSFiles.Nkey, "nats-nkey", "", "`file` holding the NATS user's nkey seed (SU…); not with -nats-creds")
	fs.StringVar(&s.NATSFiles.CA, "nats-ca", "", "PEM `file` of the CAs trusted for NATS TLS; empty uses the system's")
	fs.StringVar(&s.NATSFiles.Cert, "nats-cert", "", "PEM `file` of the client certificate for NATS TLS (mutual TLS); needs -nats-key")
	fs.StringVar(&s.NATSFiles.Key, "nats-key", "", "PEM `file` of the private key of -nats-cert")
	fs.StringVar(&s.RedisURL, "redis-url", "redis://127.0.0.1:6379", "the worker's Redis `URL`: redis://, rediss://, redis-sentinel://, rediss-sentinel://, redis-cluster:// or rediss-cluster://")
	fs.StringVar(&s.RedisFiles.CA, "redis-ca", "", "PEM `file` of the CAs trusted for Redis TLS (rediss://); empty uses the system's")
	fs.StringVar(&s.RedisFiles.Cert, "redis-cert", "", "PEM `file` of the client certificate for Redis TLS (rediss://); needs -redis-key")
	fs.StringVar(&s.RedisFiles.Key, "redis-key", "", "PEM `file` of the private key of -redis-cert")
	fs.StringVar(&s.RedisPrefix, "redis-prefix", "atodene:", "the worker's Redis key `prefix`")
	fs.DurationVar(&s.Retention, "retention", config.DefaultRetention, "the worker's -retention: orders unchanged for longer are not listed")
	fs.StringVar(&s.ResultsStream, "results-stream", "RESULTS", "`name` of the worker's stream of outcome events, followed for the live updates and read for invoices")
	fs.StringVar(&s.OrdersStream, "orders-stream", "ORDERS", "`name` of the worker's inbound stream: the actions publish to it, and 与信を実行 reads the order's data from it")
	fs.StringVar(&s.DLQStream, "dlq-stream", "DLQ", "`name` of the worker's dead-letter stream")
	fs.StringVar(&s.HTTPAddr, "http-addr", "127.0.0.1:8090", "`address` the console listens on (loopback by default)")
	fs.StringVar(&s.OperatorsFile, "operators", "", "`file` of the operators who log in with a password: lines name:bcrypt-hash (console hash NAME makes one)")
	fs.StringVar(&s.TrustedHeader, "trusted-header", "", "request header `name` that holds the operator's name, set by an authenticating proxy (X-Forwarded-User); only behind one")
	fs.Var(&s.TrustedProxies, "trusted-proxies", "`addresses` or CIDR prefixes, comma-separated, of reverse proxies in front of the console beside loopback (a load balancer): the login throttle counts the client their X-Forwarded-For names")
	fs.StringVar(&s.SessionKeyFile, "session-key-file", "", "`file` of the key (at least 32 bytes) that signs sessions, shared by the replicas; none: a random key per process")
	fs.DurationVar(&s.SessionTTL, "session-ttl", 12*time.Hour, "how long a session lasts after its login; lowered, it applies to the sessions made before")
	fs.BoolVar(&s.CookieSecure, "cookie-secure", true, "send the session cookie over HTTPS only; false only for plain HTTP on loopback")
	fs.StringVar(&s.ShopsFile, "shops", "", "the worker's shops `file`, for the shop list, the shops page and its fee calculator")
	fs.Var(&s.LogLevel, "log-level", "least severe `level` logged: debug, info (the default), warn or error")
	return fs
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse reads the settings from the environment, then args (the flags win). Help is printed on
// help and is flag.ErrHelp.
func parse(args []string, lookupEnv func(string) (string, bool), help io.Writer) (settings, error) {
	var s settings
	fs := flagSet(&s)
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		f.Usage += " [$" + env + "]"
		if v, ok := lookupEnv(env); ok && v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("invalid value %q for %s: %v", v, env, err))
			}
		}
	})
	fs.Lookup("nats-url").DefValue = redact.URLs(fs.Lookup("nats-url").DefValue)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(help)
			fmt.Fprintf(help, "Usage: console [flags]\n       console hash NAME   (reads a password on stdin, prints NAME:bcrypt-hash)\n\nFlags:\n")
			fs.PrintDefaults()
			return s, err
		}
		return s, usageError{err}
	}
	if fs.NArg() > 0 {
		return s, usagef("unexpected argument %q (console -h lists the flags)", fs.Arg(0))
	}
	switch {
	case s.OperatorsFile == "" && s.TrustedHeader == "":
		errs = append(errs, errors.New("give -operators FILE (operators log in with a password) or -trusted-header NAME (behind an authenticating proxy)"))
	case s.Retention <= 0:
		errs = append(errs, errors.New("-retention must be positive: the worker's -retention"))
	case s.SessionTTL <= 0:
		errs = append(errs, errors.New("-session-ttl must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return s, usageError{err}
	}
	return s, nil
}

// run runs the command line args (without the program name).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	if len(args) > 0 && args[0] == "hash" {
		return hash(args[1:], stdin, stdout)
	}
	s, err := parse(args, lookupEnv, stdout)
	if err != nil {
		return err
	}
	log := newLogger(s.LogLevel, stderr)
	defer func() { _ = log.Sync() }()
	// The OTEL_* variables turn tracing on: a trace for each event an action publishes.
	tp, flush, err := otelenv.Setup(ctx, func(name string) string { v, _ := lookupEnv(name); return v }, "atodene-console", stderr)
	if err != nil {
		return err
	}
	defer func() {
		if err := flush(); err != nil {
			log.Warn("tracing: the last spans were not exported", zap.Error(err))
		}
	}()
	return serve(ctx, s, lookupEnv, log, tp, stdout)
}

// serve connects to the worker's servers, then serves the console until ctx ends.
func serve(ctx context.Context, s settings, lookupEnv func(string) (string, bool), log *zap.Logger, tp trace.TracerProvider, stdout io.Writer) error {
	auth, err := authOf(s, log)
	if err != nil {
		return err
	}
	var shops *config.Shops
	if s.ShopsFile != "" {
		if shops, err = loadShops(s.ShopsFile); err != nil {
			return err
		}
	}
	files, err := s.NATSFiles.Options()
	if err != nil {
		return err
	}
	for _, u := range strings.Split(s.NATSURL, ",") {
		if redact.Misplaced(strings.TrimSpace(u)) { // it would connect to the password's first digits as a port
			return fmt.Errorf("-nats-url: %s", redact.MisplacedMessage)
		}
	}
	nc, err := nats.Connect(s.NATSURL, append([]nats.Option{nats.Name("atodene-console"), nats.MaxReconnects(-1)}, files...)...)
	if err != nil {
		return fmt.Errorf("connecting to NATS at %s: %w", redact.URLs(s.NATSURL), redact.Err("-nats-url", s.NATSURL, err))
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	url := s.RedisURL
	if !strings.Contains(url, "://") {
		url = "redis://" + url // host:port, as the worker's embedded mode prints it
	}
	rdb, err := worker.NewRedis(url, s.RedisFiles)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("connecting to Redis at %s: %w", redisconn.Addr(rdb), err)
	}
	store := orderstate.NewStore(rdb, orderstate.Config{Prefix: s.RedisPrefix, Retention: s.Retention})
	defer store.Close()
	if err := store.CheckLayout(ctx, false); err != nil {
		return fmt.Errorf("-redis-url: %w", err)
	}
	ops, err := consoleops.New(consoleops.Config{JetStream: js, Store: store, Inbound: s.OrdersStream, Results: s.ResultsStream, DLQ: s.DLQStream, Tracing: tp})
	if err != nil {
		return err
	}
	srv, err := console.New(console.Config{Store: store, JetStream: js, ResultsStream: s.ResultsStream, Shops: shops,
		Actions: ops, DeadLetters: ops, Invoices: ops, Auth: auth, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.HTTPAddr)
	if err != nil {
		return fmt.Errorf("-http-addr %s: %w", s.HTTPAddr, err)
	}
	if !s.CookieSecure && !loopbackAddr(ln.Addr()) {
		log.Warn("-cookie-secure=false on an address off this machine: session cookies travel in clear text", zap.String("addr", ln.Addr().String()))
	}
	fmt.Fprintf(stdout, "operators' console on http://%s/ (NATS %s, Redis %s)\n", ln.Addr(), redact.URLs(s.NATSURL), redisconn.Addr(rdb))
	return srv.Serve(ctx, ln)
}

// authOf reads the operators file and the session key.
func authOf(s settings, log *zap.Logger) (console.Auth, error) {
	a := console.Auth{TrustedHeader: s.TrustedHeader, TrustedProxies: s.TrustedProxies, SessionTTL: s.SessionTTL, InsecureCookie: !s.CookieSecure}
	if s.OperatorsFile != "" {
		ops, err := console.LoadOperators(s.OperatorsFile)
		if err != nil {
			return a, fmt.Errorf("-operators: %w", err)
		}
		a.Operators = ops
	}
	if s.TrustedHeader != "" {
		log.Info("operators are identified by a header set by the authenticating proxy in front of the console; it must not be reachable otherwise",
			zap.String("header", s.TrustedHeader))
	}
	if s.SessionKeyFile == "" {
		a.SessionKey = make([]byte, 32)
		_, _ = rand.Read(a.SessionKey)
		log.Warn("no -session-key-file: sessions are signed with a random key of this process; they do not survive a restart and are not valid on another replica")
		return a, nil
	}
	key, err := os.ReadFile(s.SessionKeyFile)
	if err != nil {
		return a, fmt.Errorf("-session-key-file: %w", err)
	}
	key = []byte(strings.TrimRight(string(key), "\r\n"))
	if len(key) < console.MinSessionKey {
		return a, fmt.Errorf("-session-key-file %s: %d bytes; at least %d (head -c 48 /dev/urandom | base64 > %s)", s.SessionKeyFile, len(key), console.MinSessionKey, s.SessionKeyFile)
	}
	a.SessionKey = key
	return a, nil
}

// loadShops reads the worker's shops file as the worker does. The console never uses nor shows
// the link passwords, so it reads none: a ${NAME} its environment lacks, or holds otherwise than
// the worker's, is accepted.
func loadShops(path string) (*config.Shops, error) {
	return config.LoadShops(path, func(string) (string, bool) { return "not read by the console", true })
}

func loopbackAddr(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// hash reads a password (its first line) on stdin and prints NAME:bcrypt-hash, a line of the
// operators file.
func hash(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) != 1 {
		return usagef("console hash NAME: give the operator's name")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return usagef("console hash: no password on stdin")
	}
	h, err := console.HashPassword(password)
	if err != nil {
		return err
	}
	ops, err := console.ParseOperators(strings.NewReader(args[0]+":"+string(h)), "the line")
	if err != nil || len(ops) != 1 {
		return usagef("console hash: %v", err)
	}
	_, err = fmt.Fprintf(stdout, "%s:%s\n", args[0], h)
	return err
}

// newLogger logs JSON lines to w, as the worker does.
func newLogger(level zapcore.Level, w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.EncodeTime = "time", zapcore.ISO8601TimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), level)).Named("console")
}

// exitCode prints err, if any, and returns the exit status: 0 for success and -h, 2 for a usage
// error, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	for line := range strings.Lines(err.Error()) {
		termtable.Fprintf(stderr, "console: %s\n", strings.TrimSuffix(line, "\n"))
	}
	if errors.As(err, new(usageError)) {
		fmt.Fprintln(stderr, "Run 'console -h' for the list of settings.")
		return 2
	}
	return 1
}
