package orderstate

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// GetMany returns the states of a shop's orders, in the order of ids, in one round trip (a
// pipeline of GETs, which Redis Cluster also takes across slots): what a page of the order index
// shows besides its summaries. An order never seen has Version 0 and StatusNone, as with Get.
// The error is Redis's (ErrUnavailable when it cannot answer), or names the first state it
// could not decode.
func (s *Store) GetMany(ctx context.Context, shop string, ids []string) ([]State, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, s.stateKey(shop, id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("orderstate: reading %d states of shop %s: %w", len(ids), shop, unavailable(err))
	}
	out := make([]State, len(ids))
	for i, c := range cmds {
		raw, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("orderstate: reading state of %s/%s: %w", shop, ids[i], unavailable(err))
		}
		if out[i], err = decode(shop, ids[i], raw); err != nil {
			return nil, err
		}
	}
	return out, nil
}
