package publisher

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestOrderCommandsRedisDown: every order command against a Redis that does not answer
// fails (exit status 1, not 0 and not 2), in bounded time, with nothing on stdout that a script
// would read as a (JSON) result.
func TestOrderCommandsRedisDown(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"order", "ls", "-shop", "demo"}, {"order", "ls", "-shop", "demo", "-json"}, {"order", "ls", "-shop", "demo", "-csv"},
		{"order", "counts", "-shop", "demo", "-json"}, {"order", "export", "-shop", "demo"},
		{"order", "history", "demo", "A-1"}, {"order", "show", "demo", "A-1", "-json"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			env := map[string]string{"ATODENE_PUBLISHER_REDIS_URL": "redis://127.0.0.1:1", "ATODENE_PUBLISHER_REDIS_PREFIX": "redisdown-test:"}
			a := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			began := time.Now()
			err := a.Run(ctx, args)
			if err == nil || isUsage(err) {
				t.Errorf("Redis down: err = %v (usage %v), want a failure (exit status 1)\nstdout %q", err, isUsage(err), out.String())
			}
			if out.Len() > 0 {
				t.Errorf("Redis down: stdout %q, want nothing", out.String())
			}
			if d := time.Since(began); d > 30*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
