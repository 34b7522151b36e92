package worker

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

// NewRedis returns a client for the Redis at url (redis://…). Unless the URL asks for a protocol,
// it speaks RESP2: the worker uses neither push notifications nor client-side caching, and with
// RESP3 the client looks for pending push messages around every command (3% of the worker's CPU
// in the throughput benchmark).
func NewRedis(url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("-redis-url: %w", err)
	}
	if opts.Protocol == 0 {
		opts.Protocol = 2
	}
	return redis.NewClient(opts), nil
}
