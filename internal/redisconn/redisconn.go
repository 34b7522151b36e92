// Package redisconn opens the Redis client of a URL: one server (redis://, rediss://), or the
// master of a group that Redis Sentinel watches (redis-sentinel://, rediss-sentinel://), which the
// client follows through a failover.
package redisconn

import (
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/redact"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// Schemes of a Sentinel URL: the form of go-redis's ParseFailoverURL with another scheme, so that
// a URL says which kind of server it names.
const (
	sentinelScheme    = "redis-sentinel://"
	sentinelTLSScheme = "rediss-sentinel://"
)

// Open returns a client of the Redis at rawURL, which honours the deadlines of the contexts it is
// given. rawURL is one of:
//
//   - redis://[user:password@]host:port[/db] (rediss:// for TLS): one server;
//   - redis-sentinel://[sentinel-user:sentinel-password@]host:port[/db]?master_name=NAME
//     [&addr=host:port...][&username=U&password=P] (rediss-sentinel:// for TLS to the sentinels and the
//     master): the master of the group NAME, as the sentinels at host:port and each addr name it;
//     the user information authenticates to the sentinels, username and password to the master.
//
// With TLS, files gives the CAs trusted for the servers' certificates and the client certificate
// (transport.RedisFiles); without them, the system's roots and no client certificate. Redis Cluster
// URLs are refused: the worker's scripts write keys of an order and of its shop together, which a
// Cluster spreads over slots.
//
// Unless the URL asks for a protocol, the client speaks RESP2: the worker uses neither push
// notifications nor client-side caching, and with RESP3 the client looks for pending push messages
// around every command (3% of the worker's CPU in the throughput benchmark).
//
// The error names the setting at fault (flag, "-redis-url", or the file's flag) and quotes
// neither the URL nor any of its values.
func Open(flag, rawURL string, files transport.RedisFiles) (*redis.Client, error) {
	switch {
	case strings.HasPrefix(rawURL, sentinelScheme), strings.HasPrefix(rawURL, sentinelTLSScheme):
		return openSentinel(flag, rawURL, files)
	case strings.HasPrefix(rawURL, "redis-cluster://"), strings.HasPrefix(rawURL, "rediss-cluster://"):
		return nil, fmt.Errorf("%s: Redis Cluster is not supported: the worker's scripts write an order's keys and its shop's index together, which a Cluster keeps in different slots", flag)
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, urlError(flag, rawURL, err)
	}
	if opts.TLSConfig, err = files.TLS(opts.TLSConfig); err != nil {
		return nil, err
	}
	tune(&opts.Protocol, &opts.ContextTimeoutEnabled)
	return redis.NewClient(opts), nil
}

// tune sets what every client of the product has: RESP2 unless the URL asks for a protocol, and
// the call's context deadline bounding its socket reads and writes (the store's pipelines, the
// readiness PING): without it a Redis that accepts and never answers holds a call for the read
// timeout on each of its attempts.
func tune(protocol *int, contextTimeout *bool) {
	if *protocol == 0 {
		*protocol = 2
	}
	*contextTimeout = true
}

func openSentinel(flag, rawURL string, files transport.RedisFiles) (*redis.Client, error) {
	scheme := "redis://"
	if strings.HasPrefix(rawURL, sentinelTLSScheme) {
		scheme = "rediss://"
	}
	opts, err := redis.ParseFailoverURL(scheme + rawURL[strings.Index(rawURL, "://")+3:])
	if err != nil {
		return nil, urlError(flag, rawURL, err)
	}
	switch {
	case opts.MasterName == "":
		return nil, fmt.Errorf("%s: a Sentinel URL needs master_name, the name the sentinels know the master by", flag)
	case opts.RouteByLatency || opts.RouteRandomly || opts.ReplicaOnly:
		// They send commands to replicas, which refuse the worker's writes (and the first two make
		// the client panic).
		return nil, fmt.Errorf("%s: route_by_latency, route_randomly and replica_only are not supported: the worker writes, and only the master takes writes", flag)
	}
	if opts.TLSConfig, err = files.TLS(opts.TLSConfig); err != nil {
		return nil, err
	}
	tune(&opts.Protocol, &opts.ContextTimeoutEnabled)
	return redis.NewFailoverClient(opts), nil
}

// urlError is the error of a URL go-redis refused: named by its setting, with go-redis's reason,
// every value of the URL it quotes masked (it quotes what it could not parse, a password given in
// the wrong place or under a misspelt name included), and without the URL, for the same reason.
func urlError(flag, rawURL string, err error) error {
	if e := redact.Err(flag, rawURL, err); e != err {
		return e
	}
	return fmt.Errorf("%s: %s", flag, redact.Values(err.Error(), rawURL))
}
