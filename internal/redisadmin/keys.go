package redisadmin

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// deleteBatch is how many keys DeleteKeys reads per SCAN and removes per UNLINK (or pipeline).
const deleteBatch = 5000

// DeleteKeys deletes every key under prefix, deleteBatch at a time with UNLINK, as it scans them
// (its memory does not grow with the keys); on a Redis Cluster, those of each master, one key per
// UNLINK (a command's keys must share a slot) in pipelines of deleteBatch. It never flushes: the
// Redis may be shared. An error is Redis's; cancelling ctx stops it with ctx's error.
func DeleteKeys(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return deleteKeys(ctx, node, prefix, true)
		})
	}
	return deleteKeys(ctx, rdb, prefix, false)
}

// deleteKeys deletes the keys under prefix of the server rdb sends SCAN to, deleteBatch per
// UNLINK or, oneByOne, per pipeline of UNLINKs.
func deleteKeys(ctx context.Context, rdb redis.UniversalClient, prefix string, oneByOne bool) error {
	unlink := func(keys []string) error {
		if !oneByOne {
			return rdb.Unlink(ctx, keys...).Err()
		}
		_, err := rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, k := range keys {
				pipe.Unlink(ctx, k)
			}
			return nil
		})
		return err
	}
	iter := rdb.Scan(ctx, 0, prefix+"*", deleteBatch).Iterator()
	batch := make([]string, 0, deleteBatch)
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == cap(batch) {
			if err := unlink(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return unlink(batch)
	}
	return nil
}
