package orderstate

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrLeaseHeld means another handler holds the order's lease; try again shortly.
var ErrLeaseHeld = errors.New("orderstate: order is being handled elsewhere (lease held)")

// Lease is the exclusive right to handle one order until it is released or expires. Its
// lifetime must exceed the longest handler run, so that it never lapses under a live holder; a
// crashed holder's lease expires by itself.
type Lease struct {
	store        *Store
	shop, order  string
	event, token string
	// State is the order's state when the lease was taken.
	State State
	// EventDone reports that the event named when the lease was taken was already processed.
	EventDone bool
	// Created reports that taking the lease wrote State (Take.First): no earlier handler saw it.
	Created bool
}

//go:embed acquire.lua
var acquireSource string
var acquireScript = redis.NewScript(acquireSource)

var releaseScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

// Take says how to take a lease.
type Take struct {
	// EventKey is the identity of the inbound event being handled (events.EventKey), or "": the
	// lease reports whether it was processed already (Lease.EventDone).
	EventKey string
	// TTL is the lease's lifetime.
	TTL time.Duration
	// First, if not nil, is written as the order's first version when the order has no state and
	// the event was not processed; Now is its time.
	First *State
	Now   time.Time
}

// AcquireLease takes the order's lease, or returns ErrLeaseHeld. In the same round trip it reads
// the order's state and the event record, and writes t.First for a new order.
func (s *Store) AcquireLease(ctx context.Context, shop, order string, t Take) (*Lease, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	l := &Lease{store: s, shop: shop, order: order, event: t.EventKey, token: hex.EncodeToString(b[:])}
	keys := []string{s.leaseKey(shop, order), s.stateKey(shop, order), s.prefix + "pending", s.eventKey(t.EventKey)}
	args := []any{l.token, t.TTL.Milliseconds(), "0", "", shop + ":" + order, "0"}
	if t.EventKey != "" {
		args[2] = "1"
	}
	if t.First != nil {
		first, err := encode(shop, order, *t.First, t.Now)
		if err != nil {
			return nil, err
		}
		args[3] = first.raw
		if first.st.Status == StatusPending {
			args[5] = "1"
		}
	}
	res, err := s.batch.run(ctx, acquireScript, keys, args...).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, ErrLeaseHeld
	}
	if err != nil {
		// The script may have run and its reply been lost: give up the lease it may hold, or the
		// order would wait for it to expire.
		err = fmt.Errorf("orderstate: taking lease of %s/%s: %w", shop, order, err)
		return nil, errors.Join(err, l.Release(context.WithoutCancel(ctx)))
	}
	raw, _ := res[0].(string)
	if l.State, err = decode(shop, order, []byte(raw)); err != nil {
		return nil, errors.Join(err, l.Release(context.WithoutCancel(ctx)))
	}
	l.EventDone = res[1] == int64(1)
	l.Created = len(res) > 2 && res[2] == int64(1)
	return l, nil
}

// Commit ends the holder's work in one atomic step: it writes st (if not nil) as Put does,
// appends entries to the order's history, records the lease's event as processed if done, and
// releases the lease. On ErrConflict nothing is written or recorded, and the lease is released
// all the same.
func (l *Lease) Commit(ctx context.Context, st *State, entries []Entry, done bool, now time.Time) (State, error) {
	event := ""
	if done {
		event = l.event
	}
	return l.store.write(ctx, l.shop, l.order, st, entries, now, l.token, event)
}

// Release gives the lease up, if it is still held by this holder.
func (l *Lease) Release(ctx context.Context) error {
	key := l.store.leaseKey(l.shop, l.order)
	if err := l.store.batch.run(ctx, releaseScript, []string{key}, l.token).Err(); err != nil {
		return fmt.Errorf("orderstate: releasing lease %s: %w", key, err)
	}
	return nil
}
