package redislog

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestPrintfWritesOneWarning(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	New(zap.New(core)).Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v\n", 5, "refused")
	all := logs.All()
	if len(all) != 1 {
		t.Fatalf("%d entries, want 1", len(all))
	}
	e := all[0]
	if e.Level != zapcore.WarnLevel || e.LoggerName != "redis" || e.Message != "connection pool: failed to dial after 5 attempts: refused" {
		t.Errorf("entry %s %q %q; want a warning of logger redis without the prefix and newline", e.Level, e.LoggerName, e.Message)
	}
}
