package redisadmin_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/redisadmin"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestDeleteKeys: every key under the prefix goes, more than one batch of them, and the keys
// beside it stay; on a Redis Cluster (ATODENE_TEST_REDIS_URL) too, its keys spread over the
// masters. A cancelled context stops it with the context's error.
func TestDeleteKeys(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	const n = 5001 // more than the 5,000 of a batch
	pipe := rdb.Pipeline()
	for i := range n {
		pipe.Set(ctx, prefix+"gone:"+strconv.Itoa(i), "1", 0)
	}
	pipe.Set(ctx, prefix+"kept", "1", 0)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := redisadmin.DeleteKeys(cancelled, rdb, prefix+"gone:"); !errors.Is(err, context.Canceled) {
		t.Errorf("DeleteKeys with ctx cancelled: %v, want context.Canceled", err)
	}

	if err := redisadmin.DeleteKeys(ctx, rdb, prefix+"gone:"); err != nil {
		t.Fatal(err)
	}
	pipe = rdb.Pipeline()
	exists := make([]*redis.IntCmd, n)
	for i := range n {
		exists[i] = pipe.Exists(ctx, prefix+"gone:"+strconv.Itoa(i))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	left := 0
	for _, c := range exists {
		left += int(c.Val())
	}
	if left != 0 {
		t.Errorf("%d of %d keys under the prefix left", left, n)
	}
	if kept, err := rdb.Exists(ctx, prefix+"kept").Result(); err != nil || kept != 1 {
		t.Errorf("the key beside the prefix: exists %d, %v; want it kept", kept, err)
	}
}
