package orderstate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// LayoutVersion is the key layout the store reads and writes (docs/architecture.md#redis-keys),
// recorded in <prefix>layout. Layout 2 gives every key of an order, its event records and its
// shop's sets of orders under review and timers the shop as a hash tag ({shop}), so that each
// script's keys are in one slot of a Redis Cluster. Layout 1, before it, had untagged keys of
// orders and events and one global set each of orders under review and timers; Redis Cluster
// refuses its scripts, and this store cannot read its keys: MigrateLayout moves them.
const LayoutVersion = "2"

// ErrOldLayout means Redis holds keys of layout 1 under the store's prefix, which this version
// cannot read: stop every worker and run MigrateLayout (`publisher order migrate-layout`).
var ErrOldLayout = errors.New("orderstate: Redis holds keys of key layout 1, which this version cannot read; stop the workers and run `publisher order migrate-layout`")

func (s *Store) layoutKey() string { return s.prefix + "layout" }

// perOrderKinds are the kinds of key that name a shop and an order (<kind>:<shop>:<order> in
// layout 1, <kind>:{<shop>}:<order> in layout 2), and event, which names a shop only in layout 2.
var perOrderKinds = []string{"order", "lease", "history", "inbox"}

// oldKind says which kind of layout-1 key rest (a key without the store's prefix) is, or "".
func oldKind(rest string) string {
	if rest == "pending" || rest == "timers" {
		return rest
	}
	for _, kind := range append(perOrderKinds, "event") {
		if tail, ok := strings.CutPrefix(rest, kind+":"); ok && !strings.HasPrefix(tail, "{") {
			return kind
		}
	}
	return ""
}

// CheckLayout returns nil if Redis holds no key under the store's prefix that the store cannot
// read. It reads one key when the layout is recorded; else (the first start on this Redis, or
// after it lost its data or the record) it looks for keys of layout 1, on every master of a
// Cluster, and, with record, records the layout when there is none. The error is ErrOldLayout
// (with one such key named), a layout recorded by a later version, or Redis's.
//
// The look is two EXISTS and one SCAN of oldPattern, which matches the per-order keys of layout 1
// and none of layout 2: Redis walks every key (SCAN's cost grows with the database), but sends
// back only those of layout 1, in pages of layoutScanCount, so that a Redis holding a million
// orders of layout 2 is checked in a hundred round trips that return nothing, not by reading every
// key's name a thousand at a time (4.5 s with 1,000,000 orders on a shared 2-core machine, before
// the worker was ready).
func (s *Store) CheckLayout(ctx context.Context, record bool) error {
	v, err := s.rdb.Get(ctx, s.layoutKey()).Result()
	switch {
	case err == nil && v == LayoutVersion:
		return nil
	case err == nil:
		return fmt.Errorf("orderstate: %s records key layout %q; this version reads layout %s", s.layoutKey(), v, LayoutVersion)
	case !errors.Is(err, redis.Nil):
		return fmt.Errorf("orderstate: reading %s: %w", s.layoutKey(), unavailable(err))
	}
	old, err := s.findOldKey(ctx)
	if old != "" {
		return fmt.Errorf("%w (e.g. %s)", ErrOldLayout, old)
	}
	if err != nil {
		return err
	}
	if !record {
		return nil
	}
	if err := s.rdb.Set(ctx, s.layoutKey(), LayoutVersion, 0).Err(); err != nil {
		return fmt.Errorf("orderstate: recording the key layout in %s: %w", s.layoutKey(), unavailable(err))
	}
	return nil
}

// oldPattern is the SCAN pattern of the per-order keys of layout 1 under prefix: a kind of
// perOrderKinds or event followed by ':' and no hash tag ("order:shop:o1", "event:0123abcd",
// "history:shop:o1"). Every kind's name has 5 letters but history's, whose sixth is 'r': the
// pattern takes a ':' or 'r' sixth and three characters other than '{' after it, which a
// layout-1 key has (a shop, a ':' and an order, or an event's hash: ids hold no braces) and no
// layout-2 key: each has its hash tag right after its kind's ':' ("order:{shop}:o1",
// "history:{shop}:o1", "data:{shop}:o1", "pending:{shop}") or no ':' ("layout"). The check
// reads what it matches with oldKind, which decides.
func oldPattern(prefix string) string { return prefix + "?????[:r][^{][^{][^{]*" }

// oldSets are the keys of layout 1's global sets of orders under review and of timers.
func oldSets(prefix string) []string { return []string{prefix + "pending", prefix + "timers"} }

// layoutScanCount is the COUNT of the SCANs of findOldKey: pages of up to 10,000 keys walked,
// about a millisecond of Redis's time each, of which it returns only the keys of layout 1.
const layoutScanCount = 10000

// findOldKey returns a key of layout 1 under the store's prefix, or "" when there is none.
func (s *Store) findOldKey(ctx context.Context) (string, error) {
	for _, key := range oldSets(s.prefix) {
		n, err := s.rdb.Exists(ctx, key).Result()
		if err != nil {
			return "", fmt.Errorf("orderstate: reading %s: %w", key, unavailable(err))
		}
		if n > 0 {
			return key, nil
		}
	}
	var old string
	errFound := errors.New("found")
	err := s.scanPagesCount(ctx, oldPattern(s.prefix), layoutScanCount, func(keys []string) error {
		for _, key := range keys {
			if oldKind(strings.TrimPrefix(key, s.prefix)) != "" {
				old = key
				return errFound
			}
		}
		return nil
	})
	if old != "" {
		return old, nil
	}
	return "", err
}

// scanAll calls fn with every key that matches pattern, on every master of a Redis Cluster
// (SCAN reads one node), until fn returns an error, which it returns.
func (s *Store) scanAll(ctx context.Context, pattern string, fn func(key string) error) error {
	return s.scanPages(ctx, pattern, func(keys []string) error {
		for _, key := range keys {
			if err := fn(key); err != nil {
				return err
			}
		}
		return nil
	})
}

// scanCount is the COUNT of scanPages's SCANs: about how many keys a page holds.
const scanCount = 1000

// scanPages is scanAll a SCAN reply at a time: fn is called with the keys of each page (none
// empty), which it must not keep, until it returns an error, which scanPages returns.
func (s *Store) scanPages(ctx context.Context, pattern string, fn func(keys []string) error) error {
	return s.scanPagesCount(ctx, pattern, scanCount, fn)
}

// scanPagesCount is scanPages with SCANs of COUNT count.
func (s *Store) scanPagesCount(ctx context.Context, pattern string, count int64, fn func(keys []string) error) error {
	nodes := []redis.UniversalClient{s.rdb}
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		masters, err := clusterMasters(ctx, c)
		if err != nil {
			return err
		}
		nodes = nodes[:0]
		for _, m := range masters {
			nodes = append(nodes, m)
		}
	}
	for _, node := range nodes {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, pattern, count).Result()
			if err != nil {
				return fmt.Errorf("orderstate: scanning %s: %w", pattern, unavailable(err))
			}
			if len(keys) > 0 {
				if err := fn(keys); err != nil {
					return err
				}
			}
			if next == 0 {
				break
			}
			cursor = next
		}
	}
	return nil
}

// clusterMasters returns a client of each master of c.
func clusterMasters(ctx context.Context, c *redis.ClusterClient) ([]*redis.Client, error) {
	var mu sync.Mutex
	var out []*redis.Client
	err := c.ForEachMaster(ctx, func(_ context.Context, m *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("orderstate: listing the masters of the cluster: %w", unavailable(err))
	}
	return out, nil
}

// Migration is what MigrateLayout did.
type Migration struct {
	Shops []string // the shops whose keys it found
	// Keys of orders moved (states, histories, inboxes); event records copied (one per shop each,
	// see MigrateLayout); members of the sets of orders under review and of timers moved.
	Orders, Events, Pending, Timers int
	// Conflicts are layout-1 keys left where the layout-2 key exists already (a worker of this
	// version wrote the order meanwhile): the newer key is kept, the old one named here.
	Conflicts []string
}

// MigrateLayout moves the keys of layout 1 under the store's prefix to layout 2 and records the
// layout. Every worker must be stopped: it refuses, moving nothing, while a layout-1 lease exists
// (a worker of the earlier version runs, or stopped less than a lease's lifetime ago). Keys of an
// order are renamed, keeping their expiry; a state whose layout-2 key exists is left and listed
// in Conflicts. An event record of layout 1 does not say its shop: it is copied to each shop found
// (keys of orders, the sets, the order index), with its expiry, which answers as layout 1 did (a
// record is an event's source and id hashed, whatever the shop); they are copied a SCAN page at
// a time, so its memory does not grow with their number. Run again, it goes on where it
// stopped. Layout 1 was never usable on Redis Cluster; this runs on one server (or Sentinel's
// master), where RENAME works.
func (s *Store) MigrateLayout(ctx context.Context) (Migration, error) {
	var m Migration
	shops := map[string]bool{}
	var lease string
	err := s.scanAll(ctx, s.prefix+"*", func(key string) error {
		rest := strings.TrimPrefix(key, s.prefix)
		kind := oldKind(rest)
		switch kind {
		case "lease":
			lease = key
		case "order", "history", "inbox":
			shop, _, _ := strings.Cut(strings.TrimPrefix(rest, kind+":"), ":")
			shops[shop] = true
		case "":
			if tail, ok := strings.CutPrefix(rest, "index:{"); ok { // the index: tagged in layout 1 too
				shop, _, _ := strings.Cut(tail, "}")
				shops[shop] = true
			}
		}
		return nil
	})
	if err != nil {
		return m, err
	}
	if lease != "" {
		return m, fmt.Errorf("orderstate: %s exists: a worker of the earlier version holds an order (or stopped less than a lease's lifetime ago); stop every worker and try again", lease)
	}
	if err := s.moveSets(ctx, &m, shops); err != nil {
		return m, err
	}
	if err := s.scanAll(ctx, s.prefix+"*", func(key string) error { return s.moveOrderKey(ctx, key, &m) }); err != nil {
		return m, err
	}
	for shop := range shops {
		m.Shops = append(m.Shops, shop)
	}
	// Every shop is known now: the event records are copied to each, page by page. A record's
	// copies are of layout 2 (event:{shop}:...), which the scan may return too and skips.
	err = s.scanPages(ctx, s.prefix+"event:*", func(keys []string) error {
		events := slices.DeleteFunc(keys, func(key string) bool { return oldKind(strings.TrimPrefix(key, s.prefix)) != "event" })
		return s.copyEvents(ctx, events, m.Shops, &m)
	})
	if err != nil {
		return m, err
	}
	if err := s.rdb.Set(ctx, s.layoutKey(), LayoutVersion, 0).Err(); err != nil {
		return m, fmt.Errorf("orderstate: recording the key layout in %s: %w", s.layoutKey(), unavailable(err))
	}
	return m, nil
}

// moveOrderKey renames key to layout 2 if it is a layout-1 key of an order.
func (s *Store) moveOrderKey(ctx context.Context, key string, m *Migration) error {
	rest := strings.TrimPrefix(key, s.prefix)
	kind := oldKind(rest)
	if kind != "order" && kind != "history" && kind != "inbox" {
		return nil
	}
	shop, order, _ := strings.Cut(strings.TrimPrefix(rest, kind+":"), ":")
	to := s.prefix + kind + ":{" + shop + "}:" + order
	moved, err := s.rdb.RenameNX(ctx, key, to).Result()
	if err != nil {
		return fmt.Errorf("orderstate: renaming %s to %s: %w", key, to, unavailable(err))
	}
	if !moved {
		m.Conflicts = append(m.Conflicts, key)
	} else if kind == "order" {
		m.Orders++
	}
	return nil
}

// moveSets moves the members of the global sets of orders under review and of timers to their
// shops' sets, and notes their shops in shops.
func (s *Store) moveSets(ctx context.Context, m *Migration, shops map[string]bool) error {
	pending, err := s.rdb.SMembers(ctx, s.prefix+"pending").Result()
	if err != nil {
		return fmt.Errorf("orderstate: reading %spending: %w", s.prefix, unavailable(err))
	}
	timers, err := s.rdb.ZRangeWithScores(ctx, s.prefix+"timers", 0, -1).Result()
	if err != nil {
		return fmt.Errorf("orderstate: reading %stimers: %w", s.prefix, unavailable(err))
	}
	pipe := s.rdb.Pipeline()
	for _, member := range pending {
		shop, _, _ := strings.Cut(member, ":")
		shops[shop] = true
		pipe.SAdd(ctx, s.pendingKey(shop), member)
	}
	for _, z := range timers {
		member, _ := z.Member.(string)
		shop, _, _ := strings.Cut(member, ":")
		shops[shop] = true
		pipe.ZAdd(ctx, s.timersKey(shop), z)
	}
	pipe.Del(ctx, s.prefix+"pending", s.prefix+"timers")
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("orderstate: moving the sets of orders under review and timers: %w", unavailable(err))
	}
	m.Pending, m.Timers = len(pending), len(timers)
	return nil
}

// copyEvents copies each layout-1 event record to every shop, with its expiry, and removes it.
func (s *Store) copyEvents(ctx context.Context, keys, shops []string, m *Migration) error {
	const batch = 500
	for start := 0; start < len(keys); start += batch {
		part := keys[start:min(start+batch, len(keys))]
		ttls := make([]*redis.DurationCmd, len(part))
		pipe := s.rdb.Pipeline()
		for i, key := range part {
			ttls[i] = pipe.PTTL(ctx, key)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("orderstate: reading the expiry of event records: %w", unavailable(err))
		}
		pipe = s.rdb.Pipeline()
		for i, key := range part {
			ttl := ttls[i].Val()
			if ttl == -2 { // expired meanwhile (go-redis gives PTTL's -2 as -2 ns)
				continue
			}
			if ttl < 0 {
				ttl = 0 // no expiry
			}
			eventKey := strings.TrimPrefix(key, s.prefix+"event:")
			for _, shop := range shops {
				pipe.Set(ctx, s.eventKey(shop, eventKey), "1", ttl)
			}
			pipe.Del(ctx, key)
			m.Events++
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("orderstate: copying event records: %w", unavailable(err))
		}
	}
	return nil
}
