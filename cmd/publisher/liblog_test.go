package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/publisher"
	"github.com/atodene-worker/atodene-worker/internal/redislog"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestRedisLinesLookLikeThePublishers: go-redis's own lines about a Redis that does not answer
// come out as the publisher's other messages, not with its timestamps and source lines.
func TestRedisLinesLookLikeThePublishers(t *testing.T) {
	// Not parallel: go-redis's logger is the process's.
	var logs bytes.Buffer
	redislog.Use(libraryLogger(&logs))
	var out, errOut bytes.Buffer
	app := &publisher.App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) // nothing listens there
	if err := app.Run(context.Background(), []string{"order", "show", "-redis-url", "redis://" + addr, "shop", "o1"}); err == nil {
		t.Fatal("order show succeeded with no Redis")
	}
	if logs.Len() == 0 {
		t.Fatal("go-redis logged nothing: the test proves nothing")
	}
	for l := range strings.Lines(logs.String()) {
		if !strings.HasPrefix(l, "publisher: redis: ") {
			t.Errorf("line %q; want it to start with %q", l, "publisher: redis: ")
		}
	}
}
