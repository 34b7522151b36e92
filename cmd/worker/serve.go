package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/redact"
	"github.com/atodene-worker/atodene-worker/internal/redisconn"
	"github.com/atodene-worker/atodene-worker/internal/tracing/otelenv"
	"github.com/atodene-worker/atodene-worker/internal/transport"
	"github.com/atodene-worker/atodene-worker/internal/worker"
)

// serve runs the worker until ctx is cancelled; with -embedded, on in-process servers where no
// URL is given, and the sandbox with its demo shop when there is no shops file. The OTEL_*
// variables of getenv turn tracing on (otelenv.Setup; console spans go to stderr).
//
// A cancellation is a clean stop, also while the worker is still starting: the start-up steps it
// cuts short (connecting to Redis, setting up the streams) fail with ctx's error, and serve
// returns nil for them. A start-up error of any other kind is returned, stop or not. The demo
// (-demo), a batch that the stop leaves unfinished, returns its error.
func serve(ctx context.Context, s config.Settings, shops *config.Shops, getenv func(string) string, stdout, stderr io.Writer) error {
	err := serveUntil(ctx, s, shops, getenv, stdout, stderr)
	if err != nil && !s.Demo && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// serveUntil is serve without the clean stop during start-up.
func serveUntil(ctx context.Context, s config.Settings, shops *config.Shops, getenv func(string) string, stdout, stderr io.Writer) error {
	log, err := newLogger(s.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	defer routeLibraryLogs(log)()
	tp, flush, err := otelenv.Setup(ctx, getenv, "atodene-worker", stderr)
	if err != nil {
		return err
	}
	defer func() {
		if err := flush(); err != nil {
			log.Warn("tracing: the last spans were not exported", zap.Error(err))
		}
	}()
	if tp != nil {
		log.Info("tracing on: spans are exported as the OTEL_* environment variables say")
	}
	samples := s.Embedded && !s.Demo && !s.EmbeddedNoSamples && shops == nil // the sandbox's demo shop: give the console orders to show
	var ln net.Listener
	if !s.Demo { // the demo serves its /readyz on a port of its own and prints its own lines
		// Listened to first, so that a port taken stops the start before the embedded servers
		// print their lines, and so that the banner says the port taken (-http-addr 127.0.0.1:0
		// takes a free one); worker.Run serves it.
		if ln, err = net.Listen("tcp", s.HTTPAddr); err != nil {
			return portError("-http-addr", s.HTTPAddr, err)
		}
		defer ln.Close() // if Run returns before it serves
	}
	if s.Embedded {
		var stop func()
		if shops, stop, err = startEmbedded(&s, shops, stdout, log, tp); err != nil {
			return err
		}
		defer stop()
	}
	nc, err := connectNATS(s.NATSURL, s, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	rdb, err := connectRedis(ctx, s)
	if err != nil {
		return err
	}
	defer rdb.Close()
	deps := worker.Deps{Settings: s, Shops: shops, NATS: nc, Redis: rdb, KeyPrefix: s.RedisPrefix, Logger: log, Tracing: tp}
	if ln != nil {
		deps.HTTPListener = ln
		fmt.Fprintf(stdout, "publish events to %s, e.g. subject orders.created.<shop>; metrics on http://%s/metrics\n", s.Redacted().NATSURL, listenedAddr(s.HTTPAddr, ln.Addr()))
	}
	if samples {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go publishSamples(ctx, s.NATSURL, s.OrdersStream, stdout, log)
	}
	if !s.Demo {
		return worker.Run(ctx, deps)
	}
	return withDemo(ctx, deps, stdout)
}

// portError is the error of a listener of flag that could not listen on addr; a port taken says
// how to take a free one.
func portError(flag, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s %s: %w (give %s 127.0.0.1:0 for a free port)", flag, addr, err, flag)
	}
	return fmt.Errorf("%s %s: %w", flag, addr, err)
}

// listenedAddr is the address asked for (-http-addr) with the port of the listener: the port a
// port 0 took, and the host as written (":9090" stays ":9090", not "[::]:9090").
func listenedAddr(asked string, got net.Addr) string {
	host, _, err := net.SplitHostPort(asked)
	tcp, ok := got.(*net.TCPAddr)
	if err != nil || !ok {
		return got.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

func connectNATS(url string, s config.Settings, log *zap.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("atodene-worker"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", zap.String("server", redact.URLs(nc.ConnectedUrl())))
		}),
		natsErrors(log),
	}
	files, err := transport.NATSFiles{Creds: s.NATSCredsFile, Nkey: s.NATSNkeyFile, CA: s.NATSCAFile,
		Cert: s.NATSCertFile, Key: s.NATSKeyFile}.Options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, files...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS: %w", err)
	}
	return nc, nil
}

// connectRedis returns a client of -redis-url, with the TLS files of -redis-ca, -redis-cert and
// -redis-key, once Redis has answered a PING.
func connectRedis(ctx context.Context, s config.Settings) (redis.UniversalClient, error) {
	rdb, err := worker.NewRedis(s.RedisURL, transport.RedisFiles{CA: s.RedisCAFile, Cert: s.RedisCertFile, Key: s.RedisKeyFile})
	if err != nil {
		return nil, err
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("connecting to Redis at %s: %w", redisconn.Addr(rdb), err)
	}
	return rdb, nil
}

func newLogger(level zapcore.Level) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(level)
	cfg.EncoderConfig.TimeKey, cfg.EncoderConfig.EncodeTime = "time", zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil
	log, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("building the logger: %w", err)
	}
	return log, nil
}
