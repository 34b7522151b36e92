package reliability

import (
	"context"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// historyLimit is how many entries an order's history keeps.
const historyLimit = orderstate.HistoryLimit

// history reads an order's history (orderstate.Store.History) from the worker's Redis.
func (x *run) history(ctx context.Context, shop, order string) ([]orderstate.Entry, error) {
	rdb, err := x.s.RedisClient()
	if err != nil {
		return nil, err
	}
	store := orderstate.New(rdb, x.s.Prefix, 0)
	defer store.Close()
	return store.History(ctx, shop, order)
}

// inHistory reports whether an order's history records the event with this CloudEvent id.
func (x *run) inHistory(ctx context.Context, e *Event) (bool, error) {
	entries, err := x.history(ctx, e.Shop, e.Order)
	for _, en := range entries {
		if en.ID == e.Key {
			return true, err
		}
	}
	return false, err
}

// readHistories reads the history of every order that has a Silent event and returns the events
// it records (by key, the CloudEvent id) and the orders whose history is full (older entries gone).
// For those, the events' records in Redis (kept 30 days) say which were handled.
func (x *run) readHistories(ctx context.Context, evs []*Event) (handled, full map[string]bool, err error) {
	handled, full = map[string]bool{}, map[string]bool{}
	orders := map[[2]string][]*Event{}
	for _, e := range evs {
		if e.Want.Silent {
			o := [2]string{e.Shop, e.Order}
			orders[o] = append(orders[o], e)
		}
	}
	for o, silent := range orders {
		entries, err := x.history(ctx, o[0], o[1])
		if err != nil {
			return handled, full, err
		}
		for _, en := range entries {
			handled[en.ID] = true
		}
		if full[o[0]+"/"+o[1]] = len(entries) >= historyLimit; full[o[0]+"/"+o[1]] {
			if err := x.recorded(ctx, silent, handled); err != nil {
				return handled, full, err
			}
		}
	}
	return handled, full, nil
}

// recorded marks handled the events of evs whose record the worker's Redis holds.
func (x *run) recorded(ctx context.Context, evs []*Event, handled map[string]bool) error {
	rdb, err := x.s.RedisClient()
	if err != nil {
		return err
	}
	store := orderstate.New(rdb, x.s.Prefix, 0)
	defer store.Close()
	for _, e := range evs {
		done, err := store.EventDone(ctx, e.Shop, events.EventKey(eventSource(x.s.Name), e.Key))
		if err != nil {
			return err
		}
		handled[e.Key] = handled[e.Key] || done
	}
	return nil
}
