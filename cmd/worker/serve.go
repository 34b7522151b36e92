package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/embedded"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/worker"
)

// DemoShopID is the shop the embedded mode configures when there is no shops file.
const DemoShopID = "demo"

// serve runs the worker until ctx is cancelled. Where no NATS or Redis URL is given it runs the
// embedded servers; with -embedded and no shops file, the sandbox and its demo shop too.
func serve(ctx context.Context, s config.Settings, shops *config.Shops, stdout io.Writer) error {
	log, err := newLogger(s.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	var cleanup []func()
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}()

	natsURL, redisURL := s.NATSURL, s.RedisURL
	if natsURL == "" {
		n, err := embedded.StartNATS(s.DataDir, 0)
		if err != nil {
			return err
		}
		cleanup = append(cleanup, n.Close)
		natsURL = n.URL()
		fmt.Fprintf(stdout, "embedded NATS (JetStream in %s) listening on %s\n", s.DataDir, natsURL)
	}
	if redisURL == "" {
		r, err := embedded.StartRedis()
		if err != nil {
			return err
		}
		cleanup = append(cleanup, r.Close)
		redisURL = "redis://" + r.Addr()
		fmt.Fprintf(stdout, "embedded Redis-protocol server (in memory, not durable) on %s\n", r.Addr())
	}
	if s.NATSURL == "" || s.RedisURL == "" {
		// publisher's defaults are a NATS and a Redis on their standard ports, not these.
		fmt.Fprintf(stdout, "for publisher: export ATODENE_PUBLISHER_NATS_URL=%s ATODENE_PUBLISHER_REDIS_URL=%s\n", natsURL, redisURL)
	}
	sbCfg := sandbox.Config{}
	if s.Demo {
		sbCfg = demoSandbox
		s.PollFirstDelay, s.PollMaxInterval = time.Second, 2*time.Second
	}
	sbCfg.Logger = log.Named("sandbox")
	if shops == nil {
		sb, err := embedded.StartSandbox(sbCfg, log)
		if err != nil {
			return err
		}
		cleanup = append(cleanup, sb.Close)
		if shops, err = demoShops(sb.BaseURL()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "embedded ATODENE sandbox on %s (admin API %s), shop %q\n", sb.BaseURL(), sb.AdminURL(), DemoShopID)
	}

	nc, err := connectNATS(natsURL, s, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	rdb, err := worker.NewRedis(redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("connecting to Redis at %s: %w", rdb.Options().Addr, err)
	}
	fmt.Fprintf(stdout, "publish events to %s, e.g. subject orders.created.<shop>; metrics on http://%s/metrics\n", natsURL, s.HTTPAddr)
	deps := worker.Deps{Settings: s, Shops: shops, NATS: nc, Redis: rdb, KeyPrefix: s.RedisPrefix, Logger: log}
	if !s.Demo {
		return worker.Run(ctx, deps)
	}
	return withDemo(ctx, deps, natsURL, stdout)
}

// withDemo runs the worker while the demo batch goes through it, then stops it.
func withDemo(ctx context.Context, deps worker.Deps, natsURL string, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx, deps) }()
	demoErr := awaitReady(ctx, "http://"+deps.Settings.HTTPAddr+"/readyz", done)
	if demoErr == nil {
		demoErr = runDemo(ctx, natsURL, stdout)
	}
	cancel()
	if err := <-done; err != nil {
		return err
	}
	return demoErr
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
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", zap.String("server", nc.ConnectedUrlRedacted())) }),
	}
	if s.NATSCredsFile != "" {
		opts = append(opts, nats.UserCredentials(s.NATSCredsFile))
	}
	if s.NATSCAFile != "" {
		opts = append(opts, nats.RootCAs(s.NATSCAFile))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS: %w", err)
	}
	return nc, nil
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

// shopsFileMissing reports whether err says the shops file does not exist.
func shopsFileMissing(err error) bool { return errors.Is(err, os.ErrNotExist) }

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
