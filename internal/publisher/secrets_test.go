package publisher

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestNoCredentialIsPrinted: the credentials of the publisher's URLs, from the environment or
// flags, appear in no help text and no error, even for a URL that does not parse.
func TestNoCredentialIsPrinted(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"ATODENE_PUBLISHER_NATS_URL":  "nats://alice:S3CRETA@127.0.0.1:1",
		"ATODENE_PUBLISHER_REDIS_URL": "redis://:S3CRETB@127.0.0.1:1",
	}
	for _, args := range [][]string{
		{"-h"},
		{},
		{"order", "show", "-h"},
		{"dlq", "ls", "-nats-url", "nats://alice:S3CRETA@host:bad"},
		{"dlq", "ls", "-nats-url", "nats://alice:S3CR%ETA@host:1"},
		{"order", "show", "-redis-url", "redis://:S3CRETB@host:bad", "shop-1", "A-1"},
		{"order", "show", "shop-1", "A-1"},
		{"order", "history", "-h"}, {"order", "rerun", "-h"}, {"order", "cancel", "-h"}, {"results", "tail", "-h"}, {"invoice", "print", "-h"}, {"dlq", "edit", "-h"},
		{"order", "history", "shop-1", "A-1"},
		{"order", "rerun", "-operator", "alice", "shop-1", "A-1"},
		{"order", "cancel", "-operator", "alice", "-redis-url", "redis://:S3CRETB@host:bad", "shop-1", "A-1"},
		{"results", "tail", "-n", "1"},
		{"invoice", "print", "shop-1", "A-1"},
		{"dlq", "edit", "1", "-file", "-"},
	} {
		var out, errOut bytes.Buffer
		a := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
		err := a.Run(context.Background(), args)
		text := out.String() + errOut.String()
		if err != nil {
			text += err.Error()
		}
		for _, secret := range []string{"S3CRETA", "S3CR%ETA", "S3CRETB"} {
			if strings.Contains(text, secret) {
				t.Errorf("publisher %v shows the secret %q:\n%s", args, secret, text)
			}
		}
	}
}
