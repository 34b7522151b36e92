package orderstate

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The timer index: a sorted set per shop (<prefix>timers:{shop}) of the orders whose state relies on a timer in
// JetStream (a scheduled re-check, a parked-event timer, an inbox timer), scored by when the
// earliest is due (Unix ms). Every write of a state keeps it in step (write.lua, acquire.lua). A
// timer that JetStream lost (its stream deleted and created again, its store wiped) leaves its
// order in the index past its due time; the reconciler finds it there and schedules it again.

// Timer is an order of the timer index.
type Timer struct {
	Shop, Order string
	Due         time.Time // when its earliest timer was due
	member      string
	score       float64
}

// OverdueTimers returns at most limit orders of shop in the index whose timer was due before
// before, earliest first.
func (s *Store) OverdueTimers(ctx context.Context, shop string, before time.Time, limit int64) ([]Timer, error) {
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, s.timersKey(shop), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(before.UnixMilli(), 10), Count: limit}).Result()
	if err = unavailable(err); err != nil {
		return nil, fmt.Errorf("orderstate: reading the timer index of shop %s: %w", shop, err)
	}
	out := make([]Timer, 0, len(zs))
	for _, z := range zs {
		member, _ := z.Member.(string)
		shop, order, _ := strings.Cut(member, ":") // shop IDs hold no ':'
		out = append(out, Timer{Shop: shop, Order: order, Due: time.UnixMilli(int64(z.Score)), member: member, score: z.Score})
	}
	return out, nil
}

var claimScript = redis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1`)

// ClaimTimer moves t in the index to next (or removes it, for a zero next) if no one moved it since
// it was read, and says whether it did: of several workers looking at one overdue order, one acts.
func (s *Store) ClaimTimer(ctx context.Context, t Timer, next time.Time) (bool, error) {
	to := ""
	if !next.IsZero() {
		to = strconv.FormatInt(next.UnixMilli(), 10)
	}
	n, err := claimScript.Run(ctx, s.rdb, []string{s.timersKey(t.Shop)}, t.member, strconv.FormatFloat(t.score, 'f', -1, 64), to).Int()
	if err = unavailable(err); err != nil {
		return false, fmt.Errorf("orderstate: claiming the timer of %s/%s: %w", t.Shop, t.Order, err)
	}
	return n == 1, nil
}

// InboxLen returns how many events the order's inbox holds.
func (s *Store) InboxLen(ctx context.Context, shop, order string) (int64, error) {
	n, err := s.rdb.LLen(ctx, s.inboxKey(shop, order)).Result()
	if err = unavailable(err); err != nil {
		return 0, fmt.Errorf("orderstate: reading the inbox of %s/%s: %w", shop, order, err)
	}
	return n, nil
}

// Queued is what an entry of an order's inbox says of its event's identity and place in the
// stream, read without its body (up to 64 KiB, which the readers of Inbox do not need).
type Queued struct {
	Type             string `json:"type"`
	Key              string `json:"key"`
	Seq              uint64 `json:"seq"`
	Published        uint64 `json:"published,omitempty"`
	PublishedCreated int64  `json:"published_created,omitempty"`
}

// Inbox returns what the order's inbox holds of each event, first first (at most MaxInbox).
func (s *Store) Inbox(ctx context.Context, shop, order string) (_ []Queued, err error) {
	ctx, c := startCall(ctx, "redis inbox", "LRANGE")
	defer c.end(&err)
	raws, err := s.rdb.LRange(ctx, s.inboxKey(shop, order), 0, -1).Result()
	if err = unavailable(err); err != nil {
		return nil, fmt.Errorf("orderstate: reading the inbox of %s/%s: %w", shop, order, err)
	}
	inbox := make([]Queued, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal([]byte(raw), &inbox[i]); err != nil {
			return nil, fmt.Errorf("orderstate: decoding the inbox of %s/%s: %w", shop, order, err)
		}
	}
	return inbox, nil
}

// Held is what Redis holds of an order's events that were acknowledged before they were applied.
type Held struct {
	// Keys are the identities (events.EventKey) of the events parked in the state, queued in the
	// inbox, or whose tracking number waits in the state for the credit.
	Keys map[string]bool
	// Busy says a handler holds the order's lease, or its inbox is full: an event of the order
	// that went round would go round again.
	Busy bool
}

// HeldEvents reads what Redis holds of the order's events. The inbox is read before the state:
// an event applied from the inbox and parked is written into the state before it leaves the
// inbox, so it is seen in one or the other.
func (s *Store) HeldEvents(ctx context.Context, shop, order string) (_ Held, err error) {
	ctx, c := startCall(ctx, "redis held events", "PIPELINE")
	defer c.end(&err)
	h := Held{Keys: map[string]bool{}}
	pipe := s.rdb.Pipeline()
	inbox := pipe.LRange(ctx, s.inboxKey(shop, order), 0, -1)
	lease := pipe.Exists(ctx, s.leaseKey(shop, order))
	if _, err := pipe.Exec(ctx); unavailable(err) != nil {
		return h, fmt.Errorf("orderstate: reading the inbox of %s/%s: %w", shop, order, unavailable(err))
	}
	for _, raw := range inbox.Val() {
		var p struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return h, fmt.Errorf("orderstate: decoding the inbox of %s/%s: %w", shop, order, err)
		}
		h.Keys[p.Key] = true
	}
	h.Busy = lease.Val() == 1 || len(inbox.Val()) >= MaxInbox
	st, err := s.Get(ctx, shop, order)
	if err != nil {
		return h, err
	}
	for _, key := range st.HeldKeys() {
		h.Keys[key] = true
	}
	return h, nil
}

// HeldKeys lists the identities (events.EventKey) of the events st holds as received: parked, or
// a tracking number queued until the credit is OK. Their kept copies stay while st holds them.
// It is nil when st holds nothing, as most states do: it runs several times in every step.
func (st State) HeldKeys() []string {
	queued := st.Shipment != nil && !st.Shipment.Reported && st.Shipment.Event != ""
	if len(st.Parked) == 0 && !queued {
		return nil
	}
	keys := make([]string, 0, len(st.Parked)+1)
	for _, p := range st.Parked {
		keys = append(keys, p.Key)
	}
	if queued {
		keys = append(keys, st.Shipment.Event)
	}
	return keys
}

// The held re-checks: a sorted set per shop (<prefix>held:{shop}) of the orders whose next
// re-check is held in Redis rather than stored in JetStream as a message schedule, scored by when
// it is due (Unix ms). A state's write adds its order when it holds the re-check
// (State.HoldPoll), in the same atomic step. TakeHeld claims the orders as they fall due, to hand
// their re-checks to JetStream, by moving their score to the end of the claim; Handed removes
// them once handed. A claim not ended so (the worker stopped, JetStream failed) runs out, and the
// order is taken again. An entry whose state no longer holds that re-check (the order changed
// since) is taken all the same and dropped by the caller.

var takeHeldScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], due[i])
end
return due`)

// HeldRecheck is an order of the held re-checks: its ID and when its re-check is due.
type HeldRecheck struct {
	Order string
	Due   time.Time
}

// TakeHeld claims until claim at most limit orders of shop's held re-checks due at or before
// upTo, earliest first, and returns them: of several workers taking at once, each gets other
// orders, and no one takes them again before claim. An error is Redis's (ErrUnavailable when it
// cannot be reached); nothing is taken then.
func (s *Store) TakeHeld(ctx context.Context, shop string, upTo, claim time.Time, limit int) ([]HeldRecheck, error) {
	res, err := takeHeldScript.Run(ctx, s.rdb, []string{s.heldKey(shop)}, upTo.UnixMilli(), limit, claim.UnixMilli()).StringSlice()
	if err = unavailable(err); err != nil {
		return nil, fmt.Errorf("orderstate: taking the due re-checks held for shop %s: %w", shop, err)
	}
	out := make([]HeldRecheck, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		_, order, _ := strings.Cut(res[i], ":") // shop IDs hold no ':'
		ms, _ := strconv.ParseInt(res[i+1], 10, 64)
		out = append(out, HeldRecheck{Order: order, Due: time.UnixMilli(ms)})
	}
	return out, nil
}

var handedScript = redis.NewScript(`
for i = 2, #ARGV do
  if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i])) == tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return 0`)

// Handed removes orders of shop from the held re-checks, those still under the claim TakeHeld
// made: an order a write held again meanwhile keeps its new entry.
func (s *Store) Handed(ctx context.Context, shop string, orders []string, claim time.Time) error {
	if len(orders) == 0 {
		return nil
	}
	args := make([]any, 0, len(orders)+1)
	args = append(args, claim.UnixMilli())
	for _, o := range orders {
		args = append(args, shop+":"+o)
	}
	if err := unavailable(handedScript.Run(ctx, s.rdb, []string{s.heldKey(shop)}, args...).Err()); err != nil {
		return fmt.Errorf("orderstate: removing %d handed re-checks of shop %s: %w", len(orders), shop, err)
	}
	return nil
}

// TakeHeldOrder removes one order from shop's held re-checks and says whether it was there: true
// means no worker handed its re-check to JetStream (one may have claimed it and stopped), and the
// caller is now the one to hand it.
func (s *Store) TakeHeldOrder(ctx context.Context, shop, order string) (bool, error) {
	n, err := s.rdb.ZRem(ctx, s.heldKey(shop), shop+":"+order).Result()
	if err = unavailable(err); err != nil {
		return false, fmt.Errorf("orderstate: taking the held re-check of %s/%s: %w", shop, order, err)
	}
	return n == 1, nil
}
