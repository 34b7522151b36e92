// Package redisconn opens the Redis client of a URL: one server (redis://, rediss://), the master
// of a group that Redis Sentinel watches (redis-sentinel://, rediss-sentinel://), which the client
// follows through a failover, or a Redis Cluster (redis-cluster://, rediss-cluster://), whose
// client sends each key to the master of its slot and follows the slots through a failover.
package redisconn

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/redact"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// The schemes of the URLs Open takes, without "://". The Sentinel and Cluster forms are those of
// go-redis's ParseFailoverURL and ParseClusterURL with another scheme, so that a URL says which
// kind of server it names.
const (
	schemeOne         = "redis"
	schemeOneTLS      = "rediss"
	schemeSentinel    = "redis-sentinel"
	schemeSentinelTLS = "rediss-sentinel"
	schemeCluster     = "redis-cluster"
	schemeClusterTLS  = "rediss-cluster"
)

// Schemes returns the schemes of the URLs Open takes, without "://": one server, Sentinel, then
// Cluster, each without and with TLS. It is a new slice at each call.
func Schemes() []string {
	return []string{schemeOne, schemeOneTLS, schemeSentinel, schemeSentinelTLS, schemeCluster, schemeClusterTLS}
}

// UsesTLS reports whether a URL with scheme (without "://") connects with TLS, and so takes the
// TLS files (transport.RedisFiles).
func UsesTLS(scheme string) bool {
	return slices.Contains([]string{schemeOneTLS, schemeSentinelTLS, schemeClusterTLS}, scheme)
}

// Open returns a client of the Redis at rawURL, which honours the deadlines of the contexts it is
// given. rawURL is one of:
//
//   - redis://[user:password@]host:port[/db] (rediss:// for TLS): one server (a *redis.Client);
//   - redis-sentinel://[sentinel-user:sentinel-password@]host:port[/db]?master_name=NAME
//     [&addr=host:port...][&username=U&password=P] (rediss-sentinel:// for TLS to the sentinels and the
//     master): the master of the group NAME, as the sentinels at host:port and each addr name it;
//     the user information authenticates to the sentinels, username and password to the master
//     (a *redis.Client);
//   - redis-cluster://[user:password@]host:port[?addr=host:port...] (rediss-cluster:// for TLS to
//     every node): a Redis Cluster, which the client learns from the node at host:port or, if it
//     does not answer, from an addr (a *redis.ClusterClient). The user information authenticates
//     to every node. The client sends each command to the master of its keys' slot, follows the
//     slots' moves and, within about a second of a replica's promotion, a failover; it never
//     reads from a replica. The path, if any, is database 0: a Cluster has no other.
//
// Each form takes go-redis's other parameters of its URLs (dial_timeout, pool_size, protocol...);
// those that send commands to replicas are refused (route_by_latency, route_randomly and
// replica_only for Sentinel, read_only, route_by_latency and route_randomly for Cluster): a
// replica refuses the worker's writes, and its compare-and-set must read what the master holds.
//
// With TLS, files gives the CAs trusted for the servers' certificates and the client certificate
// (transport.RedisFiles); without them, the system's roots and no client certificate. A Cluster's
// nodes are all verified against the URL's host name, as go-redis does.
//
// Unless the URL asks for a protocol, the client speaks RESP2: the worker uses neither push
// notifications nor client-side caching, and with RESP3 the client looks for pending push messages
// around every command (3% of the worker's CPU in the throughput benchmark).
//
// The error names the setting at fault (flag, "-redis-url", or the file's flag) and quotes
// neither the URL nor any of its values.
func Open(flag, rawURL string, files transport.RedisFiles) (redis.UniversalClient, error) {
	if redact.Misplaced(rawURL) {
		// go-redis would take the password's first digits for the port, and its messages and
		// Addr would show them.
		return nil, fmt.Errorf("%s: %s", flag, redact.MisplacedMessage)
	}
	scheme, _, _ := strings.Cut(rawURL, "://")
	switch scheme {
	case schemeSentinel, schemeSentinelTLS:
		return openSentinel(flag, rawURL, files)
	case schemeCluster, schemeClusterTLS:
		return openCluster(flag, rawURL, files)
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

// Addr returns where rdb, a client of Open, connects, for messages: the host:port of one server,
// the addresses a Cluster client was given (comma-separated), or go-redis's name for a Sentinel
// client's, "FailoverClient".
func Addr(rdb redis.UniversalClient) string {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().Addr
	case *redis.ClusterClient:
		return strings.Join(c.Options().Addrs, ",")
	}
	return fmt.Sprintf("%T", rdb)
}

// clusterReload is how long a Cluster client keeps the slots' masters it learnt before it asks a
// node again: one CLUSTER SLOTS a second at most, which bounds to about a second how long the
// client goes on sending a failed-over master's slots to it once its replica is promoted.
const clusterReload = time.Second

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

// goRedisURL returns rawURL, a Sentinel or Cluster URL, with the scheme go-redis parses it with:
// redis:// or rediss://.
func goRedisURL(rawURL string) string {
	scheme, rest, _ := strings.Cut(rawURL, "://")
	base, _, _ := strings.Cut(scheme, "-")
	return base + "://" + rest
}

func openSentinel(flag, rawURL string, files transport.RedisFiles) (*redis.Client, error) {
	opts, err := redis.ParseFailoverURL(goRedisURL(rawURL))
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

func openCluster(flag, rawURL string, files transport.RedisFiles) (*redis.ClusterClient, error) {
	opts, err := redis.ParseClusterURL(goRedisURL(rawURL))
	if err != nil {
		return nil, urlError(flag, rawURL, err)
	}
	u, _ := url.Parse(rawURL) // ParseClusterURL has parsed it
	switch {
	case u.Path != "" && u.Path != "/" && u.Path != "/0":
		// go-redis ignores the path of a Cluster URL; a database asked for would not be the one used.
		return nil, fmt.Errorf("%s: a Cluster URL takes no database number: a Redis Cluster has database 0 only", flag)
	case opts.ReadOnly || opts.RouteByLatency || opts.RouteRandomly:
		// They send read-only commands to replicas, which may not hold the master's last writes yet.
		return nil, fmt.Errorf("%s: read_only, route_by_latency and route_randomly are not supported: they read from replicas, and the worker's compare-and-set must read what the master holds", flag)
	}
	if opts.TLSConfig, err = files.TLS(opts.TLSConfig); err != nil {
		return nil, err
	}
	tune(&opts.Protocol, &opts.ContextTimeoutEnabled)
	// The client asks for the slots' masters again when a node redirects a command (MOVED, ASK),
	// or at its next command once this has passed since it last asked. A dead master redirects
	// nothing: until then the client sends it its slots' commands, even after its replica is
	// promoted (for a minute with go-redis's default).
	opts.ClusterStateReloadInterval = clusterReload
	return redis.NewClusterClient(opts), nil
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
