package worker

import (
	"context"
	"runtime/debug"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/redisconn"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// NewRedis returns a client for -redis-url (redisconn.Open: one server, a master found through
// Sentinel, or a Redis Cluster) with the TLS files of -redis-ca, -redis-cert and -redis-key.
func NewRedis(url string, files transport.RedisFiles) (redis.UniversalClient, error) {
	return redisconn.Open("-redis-url", url, files)
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

// replication is -redis-wait-replicas and -redis-wait-timeout as the store takes them: auto asks
// the master how many replicas it has online now, and waits for one if it has any. A master that
// does not answer INFO (an ACL user without it) waits for none, and the log says so.
func replication(ctx context.Context, rdb redis.UniversalClient, s config.Settings, log *zap.Logger) orderstate.Replication {
	n := int(s.RedisWaitReplicas)
	switch online, err := orderstate.ConnectedReplicas(ctx, rdb); {
	case s.RedisWaitReplicas == config.AutoReplicas && err != nil:
		log.Warn("-redis-wait-replicas auto: the replicas could not be counted; registration intents wait for none (set -redis-wait-replicas)", zap.Error(err))
		n = 0
	case s.RedisWaitReplicas == config.AutoReplicas:
		n = min(online, 1)
	case err == nil && online < n:
		log.Warn("-redis-wait-replicas asks for more replicas than the Redis master has connected: registrations wait until they are there",
			zap.Int("replicas", n), zap.Int("connected", online))
	}
	if n > 0 {
		log.Info("registration intents wait for Redis replicas", zap.Int("replicas", n), zap.Duration("timeout", s.RedisWaitTimeout))
	}
	return orderstate.Replication{Replicas: n, Timeout: s.RedisWaitTimeout}
}
