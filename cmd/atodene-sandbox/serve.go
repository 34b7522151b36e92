package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// shutdownTimeout bounds how long in-flight requests may take to finish after a signal.
const shutdownTimeout = 10 * time.Second

// The http.Server's timeouts. A request, headers and body, must arrive within readTimeout (a real one
// is a few kilobytes), so a client that stalls mid-body cannot hold a handler for ever; an idle
// keep-alive connection is closed after idleTimeout.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 2 * time.Minute
)

// serve runs the sandbox on opts.addr until ctx is done.
func serve(ctx context.Context, opts options, stdout, stderr io.Writer) error {
	log := newLogger(stderr)
	defer func() { _ = log.Sync() }()
	cfg := opts.cfg
	cfg.Logger = log
	sb, err := sandbox.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: min(readHeaderTimeout, opts.readTimeout),
		ReadTimeout: opts.readTimeout, IdleTimeout: idleTimeout}
	// Shutdown waits for every handler: timeout faults hold theirs until released, and Close also ends
	// the body reads of stalled clients.
	srv.RegisterOnShutdown(sb.Close)
	printBanner(stdout, ln.Addr().String(), opts.cfg.Shops)
	log.Info("listening", zap.String("addr", ln.Addr().String()), zap.Int("shops", max(len(opts.cfg.Shops), 1)))

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close() // drop what is left rather than leave it running
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// printBanner tells a human where to point a client. Only the public demo shop's password is shown.
func printBanner(w io.Writer, addr string, shops []sandbox.Shop) {
	fmt.Fprintf(w, "ATODENE sandbox: base URL http://%s%s\n", addr, sandbox.BasePath)
	if len(shops) == 0 {
		d := sandbox.DemoShop
		fmt.Fprintf(w, "demo shop: shopCode=%s linkId=%s linkPassword=%s\n", d.ShopCode, d.LinkID, d.LinkPassword)
	}
	for _, s := range shops {
		fmt.Fprintf(w, "shop: shopCode=%s linkId=%s\n", s.ShopCode, s.LinkID)
	}
	fmt.Fprintf(w, "admin API: http://%s/sandbox/\n", addr)
}

func newLogger(w io.Writer) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	enc := zapcore.NewJSONEncoder(ec)
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), zap.InfoLevel))
}
