package main

import (
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/redislog"
)

// routeLibraryLogs sends what the libraries log on their own through log, so that the worker's
// log stays one JSON object a line: go-redis's logger (its failed dials during an outage) and the
// standard library's log package (an http.Server without an ErrorLog) belong to the process, so
// this is done once, at start-up. restore gives the standard log package its output back.
func routeLibraryLogs(log *zap.Logger) (restore func()) {
	redislog.Use(log)
	return zap.RedirectStdLog(log.Named("stdlog"))
}

// natsErrors logs the NATS client's asynchronous errors (a slow consumer, a permission denied),
// which it otherwise prints on stderr in plain text.
func natsErrors(log *zap.Logger) nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		fields := []zap.Field{zap.Error(err)}
		if sub != nil {
			fields = append(fields, zap.String("subject", sub.Subject))
		}
		log.Warn("NATS asynchronous error", fields...)
	})
}
