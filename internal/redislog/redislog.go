// Package redislog routes the log lines of the go-redis client through zap. go-redis has one
// logger for the whole process, which prints plain-text lines on stderr (its failed dials during
// an outage, for one): in a log of one JSON object a line, they break the parsers that read it.
package redislog

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Logger writes go-redis's lines to a zap logger, as warnings: go-redis logs what went wrong
// (a dial that failed, a connection dropped with unread data), never routine work.
type Logger struct{ log *zap.Logger }

// New returns a Logger writing to log, named "redis".
func New(log *zap.Logger) Logger { return Logger{log.Named("redis")} }

// Printf writes one line; the "redis: " go-redis puts in front of many is left out, the logger's
// name says it.
func (l Logger) Printf(_ context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	l.log.Warn(strings.TrimPrefix(msg, "redis: "))
}

// Use makes go-redis log through log, in the whole process: call it once, at start-up, before
// the first client is made.
func Use(log *zap.Logger) { redis.SetLogger(New(log)) }
