package worker

import (
	"fmt"
	"runtime/debug"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/redact"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// NewRedis returns a client for the Redis at url (redis://…, or rediss://… for TLS), which honours
// the deadlines of the contexts it is given. With a rediss:// URL, files gives the CAs trusted
// for the server's certificate and the client certificate (see transport.RedisFiles.Apply);
// without them, the system's roots and no client certificate. The error names the flag at fault:
// -redis-url, or the file's. Unless the URL asks for a protocol, it speaks RESP2: the worker uses neither push notifications nor client-side caching, and with
// RESP3 the client looks for pending push messages around every command (3% of the worker's CPU
// in the throughput benchmark).
func NewRedis(url string, files transport.RedisFiles) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("-redis-url: %w", redact.Err("-redis-url", url, err))
	}
	if err := files.Apply(opts); err != nil {
		return nil, err
	}
	if opts.Protocol == 0 {
		opts.Protocol = 2
	}
	// A call's context deadline bounds its socket reads and writes (the store's pipelines, the
	// readiness PING): without it a Redis that accepts and never answers holds a call for the read
	// timeout on each of its attempts.
	opts.ContextTimeoutEnabled = true
	return redis.NewClient(opts), nil
}

// DefaultGCPercent is the worker's garbage-collection target unless GOGC is set. Its live heap
// is small (about 10 MB handling 5,000 orders/s), so at Go's default of 100 it collected many
// times a second, 13% of its CPU in the throughput benchmark; at 300 it handles about 5% more
// orders per second for some 30 MB more memory.
const DefaultGCPercent = 300

// SetGCPercent applies DefaultGCPercent unless the environment sets GOGC.
func SetGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}
