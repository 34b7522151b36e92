package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/tracing/otelenv"
	"github.com/atodene-worker/atodene-worker/internal/transport"
	atodeneworker "github.com/atodene-worker/atodene-worker/internal/worker"
)

// RunProfiledWorker runs worker.Run as cmd/worker does with a NATS URL, a Redis URL and a shops
// file, and serves net/http/pprof on the address of a leading -pprof-addr flag:
// bench profiled-worker -pprof-addr host:port <worker flags>. cmd/worker has no pprof endpoint,
// so this is how -profile looks inside the worker; everything else is the same code.
func RunProfiledWorker(ctx context.Context, args []string, stderr io.Writer) error {
	atodeneworker.SetGCPercent(os.Getenv) // as cmd/worker
	pprofAddr := ""
	if len(args) >= 2 && args[0] == "-pprof-addr" {
		pprofAddr, args = args[1], args[2:]
	}
	s, err := config.ParseSettings(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	if s.NATSURL == "" || s.RedisURL == "" {
		return errors.New("profiled-worker needs -nats-url and -redis-url")
	}
	shops, err := config.LoadShops(s.ShopsFile, os.LookupEnv)
	if err != nil {
		return err
	}
	if pprofAddr != "" {
		ln, err := net.Listen("tcp", pprofAddr)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(s.LogLevel)
	cfg.EncoderConfig.TimeKey, cfg.EncoderConfig.EncodeTime = "time", zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil
	log, err := cfg.Build()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	nc, err := nats.Connect(s.NATSURL, nats.Name("atodene-worker"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connecting to NATS: %w", err)
	}
	defer nc.Close()
	rdb, err := atodeneworker.NewRedis(s.RedisURL, transport.RedisFiles{CA: s.RedisCAFile, Cert: s.RedisCertFile, Key: s.RedisKeyFile})
	if err != nil {
		return err
	}
	defer rdb.Close()
	// Traced as cmd/worker is, when the environment asks (the tracing scenario).
	tp, flush, err := otelenv.Setup(ctx, os.Getenv, "atodene-worker", os.Stderr)
	if err != nil {
		return err
	}
	defer func() { _ = flush() }()
	return atodeneworker.Run(ctx, atodeneworker.Deps{Settings: s, Shops: shops, NATS: nc, Redis: rdb, KeyPrefix: s.RedisPrefix, Logger: log, Tracing: tp})
}
