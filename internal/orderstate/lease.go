package orderstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrLeaseHeld means another handler holds the order's lease; try again shortly.
var ErrLeaseHeld = errors.New("orderstate: order is being handled elsewhere (lease held)")

// Lease is the exclusive right to handle one order until it expires or is released. The
// holder extends it while work goes on, so a slow provider call does not let a second handler in;
// a crashed holder's lease expires by itself.
type Lease struct {
	store *Store
	key   string
	token string
}

var (
	releaseScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
	extendScript  = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)
)

// AcquireLease takes the order's lease for ttl, or returns ErrLeaseHeld.
func (s *Store) AcquireLease(ctx context.Context, shop, order string, ttl time.Duration) (*Lease, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	l := &Lease{store: s, key: s.leaseKey(shop, order), token: hex.EncodeToString(b[:])}
	ok, err := s.rdb.SetNX(ctx, l.key, l.token, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("orderstate: taking lease of %s/%s: %w", shop, order, err)
	}
	if !ok {
		return nil, ErrLeaseHeld
	}
	return l, nil
}

// Extend keeps the lease for ttl from now. It fails if the lease was lost (expired and taken).
func (l *Lease) Extend(ctx context.Context, ttl time.Duration) error {
	n, err := extendScript.Run(ctx, l.store.rdb, []string{l.key}, l.token, ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("orderstate: extending lease %s: %w", l.key, err)
	}
	if n == 0 {
		return fmt.Errorf("orderstate: lease %s was lost", l.key)
	}
	return nil
}

// Release gives the lease up, if it is still held by this holder.
func (l *Lease) Release(ctx context.Context) error {
	if err := releaseScript.Run(ctx, l.store.rdb, []string{l.key}, l.token).Err(); err != nil {
		return fmt.Errorf("orderstate: releasing lease %s: %w", l.key, err)
	}
	return nil
}
