//go:build !noembedded

package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/console"
	"github.com/atodene-worker/atodene-worker/internal/consoleops"
	"github.com/atodene-worker/atodene-worker/internal/embedded"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/transport"
	"github.com/atodene-worker/atodene-worker/internal/worker"
)

// DemoShopID is the shop the embedded mode configures when there is no shops file.
const DemoShopID = "demo"

// startEmbedded starts the in-process servers the settings ask for: NATS where -nats-url is
// empty, the Redis-protocol server where -redis-url is empty, and the sandbox with its demo shop
// where shops is nil (no shops file). It fills in s's URLs and returns the shops to use and a
// stop function that shuts the servers down. It prints what it started, and the settings that
// point publisher at it, to stdout.
//
// The in-process Redis keeps nothing across a restart, so its state and the JetStream store
// under -data-dir are one unit: stop removes the store after a clean shutdown, and a store left
// by a run that did not stop cleanly is refused (see openStore).
func startEmbedded(s *config.Settings, shops *config.Shops, stdout io.Writer, log *zap.Logger, tp trace.TracerProvider) (*config.Shops, func(), error) {
	var closers []func()
	stop := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (*config.Shops, func(), error) { stop(); return nil, nil, err }
	if s.Demo {
		dir, err := demoDirs(s)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { _ = os.RemoveAll(dir) })
	}
	if s.NATSURL == "" {
		unlock, err := lockDataDir(s.DataDir)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, unlock)
		if err := openStore(s); err != nil {
			return fail(err)
		}
		if s.RedisURL == "" { // runs after NATS has stopped
			closers = append(closers, func() { removeStore(s.DataDir, stdout) })
		}
		n, err := embedded.StartNATS(s.DataDir, s.EmbeddedNATSAddr)
		if storeErr := (*embedded.StoreError)(nil); errors.As(err, &storeErr) {
			return fail(fmt.Errorf("-data-dir %s: %w", s.DataDir, err))
		}
		if err != nil {
			return fail(portError("-embedded-nats-addr", s.EmbeddedNATSAddr, err))
		}
		closers = append(closers, n.Close)
		s.NATSURL = n.URL()
		fmt.Fprintf(stdout, "embedded NATS (JetStream in %s) listening on %s\n", s.DataDir, s.NATSURL)
	}
	if s.RedisURL == "" {
		r, err := embedded.StartRedis(s.EmbeddedRedisAddr)
		if err != nil {
			return fail(portError("-embedded-redis-addr", s.EmbeddedRedisAddr, err))
		}
		s.RedisURL = "redis://" + r.Addr()
		s.RedisWaitReplicas = 0 // one in-process server, with no replicas (and no INFO replication)
		closers = append(closers, r.Close, countForgotten(*s, func() *config.Shops { return shops }, stdout))
		fmt.Fprintf(stdout, "embedded Redis-protocol server (in memory, not durable) on %s\n", r.Addr())
	}
	if shops == nil {
		var err error
		if shops, closers, err = startSandbox(s, closers, stdout, log); err != nil {
			return fail(err)
		}
	}
	if !s.Demo { // the demo's servers are gone when it ends
		printPublisherSettings(stdout, *s)
		stopConsole, err := startConsole(*s, shops, stdout, log, tp)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, stopConsole) // stops before the servers it reads
	}
	return shops, stop, nil
}

// consoleOperator is the operator the embedded console logs in without a password, for clients on
// this machine.
const consoleOperator = "demo"

// startConsole serves the operators' console (docs/console.md) on -embedded-console-addr, on its own
// connections to the servers of s, and prints its address. Clients on this machine are logged in
// as consoleOperator without a password; its session key is random, so its sessions end with the
// process. It returns
// the function that stops it.
func startConsole(s config.Settings, shops *config.Shops, stdout io.Writer, log *zap.Logger, tp trace.TracerProvider) (func(), error) {
	log = log.Named("console")
	files, err := transport.NATSFiles{Creds: s.NATSCredsFile, Nkey: s.NATSNkeyFile, CA: s.NATSCAFile, Cert: s.NATSCertFile, Key: s.NATSKeyFile}.Options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(s.NATSURL, append([]nats.Option{nats.Name("atodene-console"), nats.MaxReconnects(-1)}, files...)...)
	if err != nil {
		return nil, fmt.Errorf("console: connecting to NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	rdb, err := worker.NewRedis(s.RedisURL, transport.RedisFiles{CA: s.RedisCAFile, Cert: s.RedisCertFile, Key: s.RedisKeyFile})
	if err != nil {
		nc.Close()
		return nil, err
	}
	store := orderstate.NewStore(rdb, orderstate.Config{Prefix: s.RedisPrefix, Retention: s.Retention})
	release := func() { store.Close(); rdb.Close(); nc.Close() }
	key := make([]byte, console.MinSessionKey)
	_, _ = rand.Read(key)
	ops, err := consoleops.New(consoleops.Config{JetStream: js, Store: store, Inbound: s.OrdersStream, Results: s.ResultsStream, DLQ: s.DLQStream, Tracing: tp})
	if err != nil {
		release()
		return nil, err
	}
	srv, err := console.New(console.Config{Store: store, JetStream: js, ResultsStream: s.ResultsStream, Shops: shops, Logger: log,
		Actions: ops, DeadLetters: ops, Invoices: ops, Auth: console.Auth{AutoLogin: consoleOperator, SessionKey: key, InsecureCookie: true}})
	if err != nil {
		release()
		return nil, err
	}
	ln, err := net.Listen("tcp", s.EmbeddedConsoleAddr)
	if err != nil {
		release()
		return nil, portError("-embedded-console-addr", s.EmbeddedConsoleAddr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	fmt.Fprintf(stdout, "operators' console on http://%s/ (demo: this machine is logged in as %q without a password)\n",
		ln.Addr(), consoleOperator)
	return func() {
		cancel()
		if err := <-done; err != nil {
			log.Warn("the console stopped with an error", zap.Error(err))
		}
		release()
	}, nil
}

// startSandbox serves the sandbox and returns its demo shop.
func startSandbox(s *config.Settings, closers []func(), stdout io.Writer, log *zap.Logger) (*config.Shops, []func(), error) {
	cfg := sandbox.Config{}
	if s.Demo {
		cfg = demoSandbox
	}
	cfg.Logger = log.Named("sandbox")
	sb, err := embedded.StartSandbox(cfg, log)
	if err != nil {
		return nil, closers, err
	}
	closers = append(closers, sb.Close)
	shops, err := demoShops(sb.BaseURL())
	if err != nil {
		return nil, closers, err
	}
	fmt.Fprintf(stdout, "embedded ATODENE sandbox on %s (admin API %s), shop %q\n", sb.BaseURL(), sb.AdminURL(), DemoShopID)
	return shops, closers, nil
}

// demoDirs gives the demo a data directory of its own and free ports, so that it runs beside an
// -embedded instance (which holds -data-dir and the default ports) and leaves nothing behind.
// It returns the directory, which the caller removes.
func demoDirs(s *config.Settings) (string, error) {
	dir, err := os.MkdirTemp("", "atodene-demo-")
	if err != nil {
		return "", fmt.Errorf("demo: creating its data directory: %w", err)
	}
	s.DataDir, s.EmbeddedNATSAddr, s.EmbeddedRedisAddr = dir, "127.0.0.1:0", "127.0.0.1:0"
	s.PollFirstDelay, s.PollMaxInterval = time.Second, 2*time.Second
	return dir, nil
}

// printPublisherSettings prints the environment that points publisher at this worker's servers:
// publisher's defaults are a NATS and a Redis on their standard ports, not these.
func printPublisherSettings(stdout io.Writer, s config.Settings) {
	r := s.Redacted()
	line := "for publisher: export ATODENE_PUBLISHER_NATS_URL=" + r.NATSURL + " ATODENE_PUBLISHER_REDIS_URL=" + r.RedisURL
	if s.RedisPrefix != config.DefaultSettings().RedisPrefix {
		line += " ATODENE_PUBLISHER_REDIS_PREFIX=" + s.RedisPrefix
	}
	if s.DLQStream != config.DefaultSettings().DLQStream {
		line += " (and dlq -stream " + s.DLQStream + ")"
	}
	fmt.Fprintln(stdout, line)
}

// lockDataDir takes an exclusive lock on dir (created if needed) for as long as this process
// runs, so that a second embedded worker, or the demo, cannot share its store. It returns the
// function that releases the lock.
func lockDataDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("-data-dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("-data-dir %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("-data-dir %s is in use by another embedded worker (process %s): stop it, or give this one another -data-dir", dir, holderPID(holder))
		}
		return nil, fmt.Errorf("-data-dir %s: locking %s: %w", dir, path, err)
	}
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func holderPID(b []byte) string {
	if len(b) == 0 {
		return "unknown"
	}
	return string(b[:len(b)-1])
}

// volatileMark, a file beside the JetStream store, says that the store goes with the states of
// the in-process Redis: a run with -redis-url keeps its states in that Redis and writes none.
const volatileMark = "nats.in-memory-states"

// openStore refuses a JetStream store whose order states are gone or elsewhere: one that a run
// with the in-process Redis left behind without a clean stop (killed, or crashed), whose states
// died with it, whatever Redis this run names; and one of a run with -redis-url, whose states are in
// that Redis, when this run has none. Resuming either would re-check, report and publish for orders
// the state has never heard of, or drop them. When this run's states are in memory, it marks the
// store so (volatileMark).
func openStore(s *config.Settings) error {
	store, mark := filepath.Join(s.DataDir, "nats"), filepath.Join(s.DataDir, volatileMark)
	entries, err := os.ReadDir(store)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("-data-dir %s: %w", s.DataDir, err)
	}
	_, markErr := os.Stat(mark)
	volatile := markErr == nil
	switch {
	case len(entries) > 0 && volatile:
		return fmt.Errorf("-data-dir %s holds the JetStream store of an embedded run that did not stop cleanly (killed or crashed); "+
			"its order states were in the in-process Redis and are gone, so resuming its streams could lose orders without a word. "+
			"Remove %s to start afresh, or give another -data-dir", s.DataDir, store)
	case len(entries) > 0 && s.RedisURL == "":
		return fmt.Errorf("-data-dir %s holds the JetStream store of a run with -redis-url, whose order states are in that Redis: "+
			"give the same -redis-url, or remove %s to start afresh", s.DataDir, store)
	case s.RedisURL != "" && volatile: // an empty store left marked by a start that failed
		if err := os.Remove(mark); err != nil {
			return fmt.Errorf("-data-dir %s: %w", s.DataDir, err)
		}
	case s.RedisURL == "" && !volatile:
		if err := os.WriteFile(mark, []byte("the JetStream store beside this file goes with order states kept in memory\n"), 0o600); err != nil {
			return fmt.Errorf("-data-dir %s: %w", s.DataDir, err)
		}
	}
	return nil
}

// countForgotten returns the stop step that says what the stop forgets: the in-process Redis's
// orders under review, and the events not handled yet, those waiting for their order and the dead
// letters of the JetStream store that goes with it. It runs while both servers are still up.
func countForgotten(s config.Settings, shops func() *config.Shops, stdout io.Writer) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var review, unhandled, waiting, letters int64
		if rdb, err := worker.NewRedis(s.RedisURL, transport.RedisFiles{}); err == nil {
			store := orderstate.New(rdb, s.RedisPrefix, config.EventRecordTTL)
			var ids []string
			for _, sh := range shops().All() {
				ids = append(ids, sh.ID)
			}
			review, _ = store.PendingCount(ctx, ids...)
			store.Close()
			rdb.Close()
		}
		if nc, err := nats.Connect(s.NATSURL); err == nil {
			js, _ := jetstream.New(nc)
			waiting, letters = streamMsgs(ctx, js, worker.KeptStream), streamMsgs(ctx, js, s.DLQStream)
			unhandled, _ = worker.Unhandled(ctx, js, s)
			nc.Close()
		}
		if review+unhandled+waiting+letters > 0 {
			fmt.Fprintf(stdout, "embedded mode: forgotten with the in-memory state and %s: events not handled yet %d, orders under review %d, events waiting for their order %d, dead letters %d\n",
				filepath.Join(s.DataDir, "nats"), unhandled, review, waiting, letters)
		}
	}
}

// streamMsgs returns how many messages a stream holds, 0 if it cannot be read.
func streamMsgs(ctx context.Context, js jetstream.JetStream, name string) int64 {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return 0
	}
	return int64(st.CachedInfo().State.Msgs)
}

// removeStore removes the JetStream store under dataDir after a clean stop: the in-process Redis
// has forgotten the states its streams go with (see openStore).
func removeStore(dataDir string, stdout io.Writer) {
	store := filepath.Join(dataDir, "nats")
	if err := os.RemoveAll(store); err != nil {
		fmt.Fprintf(stdout, "embedded mode: removing %s: %v; remove it before the next start\n", store, err)
		return
	}
	_ = os.Remove(filepath.Join(dataDir, volatileMark))
}

// demoShops is the demo shop: the sandbox's demo merchant with the common default fee table.
func demoShops(baseURL string) (*config.Shops, error) {
	return config.NewShops([]config.Shop{{
		ID: DemoShopID,
		Atodene: config.Atodene{
			BaseURL: baseURL, ShopCode: sandbox.DemoShop.ShopCode, LinkID: sandbox.DemoShop.LinkID,
			LinkPassword: config.NewSecret(sandbox.DemoShop.LinkPassword), InvoiceDelivery: config.InvoiceSeparate,
		},
		Fees: fees.Table{Mode: fees.ModeAdd, Rows: []fees.Row{{Min: 1, Max: 999999, Fee: 205}}},
	}})
}

// withDemo runs the worker while the demo batch goes through it, then stops it.
func withDemo(ctx context.Context, deps worker.Deps, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: listening for /readyz: %w", err)
	}
	deps.HTTPListener = ln
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx, deps) }()
	demoErr := awaitReady(ctx, "http://"+ln.Addr().String()+"/readyz", done)
	if demoErr == nil {
		demoErr = runDemo(ctx, deps.Settings.NATSURL, stdout)
	}
	cancel()
	if err := <-done; err != nil {
		return err
	}
	return demoErr
}

// awaitReady waits until the worker answers ready, or fails if it stopped (leaving its error in
// stopped for the caller).
func awaitReady(ctx context.Context, url string, stopped chan error) error {
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-stopped:
			stopped <- err
			return fmt.Errorf("the worker stopped before it was ready: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
