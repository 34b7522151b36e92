package orderstate

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Loaded is an order's state for LoadStates: the state, and when it was written.
type Loaded struct {
	Shop, Order string
	State       State
	// At is when the state was written: its UpdatedAt and ChangedAt (the time its index entry
	// shows, from which it expires one retention later). Zero takes the store's now.
	At time.Time
}

// LoadStates writes orders' states directly, pipelined, as a first write of each (write.lua with
// no state stored) would leave them: the state key (version 1, with its index entry and an epoch,
// expiring one retention after At), its entry in its shop's order index, its member of the shop's
// set of orders under review when pending, and of the timer index when it relies on a timer
// (State.TimerDue). No history, lease, event record or kept data is written. For tools that need
// many orders in Redis fast (the benchmark's start to ready): a state loaded over one the
// store holds replaces it, whatever its version. Errors are Redis's, or ctx's once it ends.
func (s *Store) LoadStates(ctx context.Context, orders []Loaded) error {
	now := s.now()
	pipe := s.rdb.Pipeline()
	type shopArgs struct {
		changed, ordered, ids, timers []redis.Z
		sums, pending                 []any
	}
	byShop := map[string]*shopArgs{}
	for _, o := range orders {
		if !validID(o.Shop, 32) || !validID(o.Order, 50) {
			return fmt.Errorf("orderstate: loading states: %q/%q is not a shop and order id", o.Shop, o.Order)
		}
		at := o.At
		if at.IsZero() {
			at = now
		}
		st := o.State
		st.Version, st.ChangedAt, st.Index, st.History, st.OrderData = 0, time.Time{}, "", nil, nil
		enc, err := encode(o.Shop, o.Order, st, at, s.refreshAge())
		if err != nil {
			return err
		}
		a := byShop[o.Shop]
		if a == nil {
			a = &shopArgs{}
			byShop[o.Shop] = a
		}
		pipe.Set(ctx, s.stateKey(o.Shop, o.Order), enc.raw, time.Duration(s.ttl(enc.st, now))*time.Millisecond)
		changed, _ := strconv.ParseFloat(enc.ix.changed, 64)
		ordered, _ := strconv.ParseFloat(enc.ix.ordered, 64)
		a.changed = append(a.changed, redis.Z{Score: changed, Member: o.Order})
		a.ordered = append(a.ordered, redis.Z{Score: ordered, Member: o.Order})
		a.ids = append(a.ids, redis.Z{Member: o.Order})
		a.sums = append(a.sums, o.Order, enc.ix.summary)
		member := o.Shop + ":" + o.Order
		if enc.st.Status == StatusPending {
			a.pending = append(a.pending, member)
		}
		if due, ok := enc.st.TimerDue(); ok {
			a.timers = append(a.timers, redis.Z{Score: float64(due.UnixMilli()), Member: member})
		}
	}
	for shop, a := range byShop {
		keys, sk := s.indexKeys(shop), s.keysOf(shop)
		pipe.ZAdd(ctx, keys[0], a.changed...)
		pipe.ZAdd(ctx, keys[1], a.ordered...)
		pipe.ZAdd(ctx, keys[2], a.ids...)
		pipe.HSet(ctx, keys[3], a.sums...)
		if len(a.pending) > 0 {
			pipe.SAdd(ctx, sk.pending, a.pending...)
		}
		if len(a.timers) > 0 {
			pipe.ZAdd(ctx, sk.timers, a.timers...)
		}
	}
	if _, err := pipe.Exec(ctx); unavailable(err) != nil {
		return fmt.Errorf("orderstate: loading states: %w", unavailable(err))
	}
	return nil
}
