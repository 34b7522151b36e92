package orderstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// HistoryLimit is how many entries an order's history keeps; older ones are dropped.
const HistoryLimit = 100

// Entry is one line of an order's history (docs/lifecycle.md#the-history): an event handled and what it did. It
// holds no personal data: identifiers, types, statuses and ATODENE's answers only.
type Entry struct {
	At       time.Time `json:"at"`
	Type     string    `json:"type"`               // the event type, or poll, park-deadline
	Source   string    `json:"source,omitempty"`   // the event's CloudEvents source
	ID       string    `json:"id,omitempty"`       // the event's CloudEvents id
	Operator string    `json:"operator,omitempty"` // who asked, for operator events
	Did      string    `json:"did"`                // registered, changed, no change: same data, duplicate, parked: …
	Calls    []string  `json:"calls,omitempty"`    // the ATODENE operations called, each with its answer
	Outcomes []string  `json:"outcomes,omitempty"` // the outcome event types it published
	Status   Status    `json:"status"`             // the order's credit status after it
}

// maxEntryText bounds each text of an entry: an event's source and id are the publisher's
// choice, and a history entry must stay small.
const maxEntryText = 200

func (e Entry) encode() []byte {
	e.Source, e.ID, e.Operator, e.Did = clip(e.Source), clip(e.ID), clip(e.Operator), clip(e.Did)
	raw, _ := json.Marshal(e) // plain strings and times always encode
	return raw
}

func clip(s string) string {
	if len(s) <= maxEntryText {
		return s
	}
	cut := maxEntryText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// History returns an order's history, oldest first (at most HistoryLimit entries).
func (s *Store) History(ctx context.Context, shop, order string) ([]Entry, error) {
	raw, err := s.rdb.LRange(ctx, s.historyKey(shop, order), 0, -1).Result()
	err = unavailable(err)
	if err != nil {
		return nil, fmt.Errorf("orderstate: reading history of %s/%s: %w", shop, order, err)
	}
	out := make([]Entry, 0, len(raw))
	for _, r := range raw {
		var e Entry
		if err := json.Unmarshal([]byte(r), &e); err != nil {
			return nil, fmt.Errorf("orderstate: decoding history of %s/%s: %w", shop, order, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// LastHistory returns the newest entry of an order's history, and false when it has none.
func (s *Store) LastHistory(ctx context.Context, shop, order string) (Entry, bool, error) {
	raw, err := s.rdb.LIndex(ctx, s.historyKey(shop, order), -1).Result()
	if errors.Is(err, redis.Nil) {
		return Entry{}, false, nil
	}
	if err = unavailable(err); err != nil {
		return Entry{}, false, fmt.Errorf("orderstate: reading the last history entry of %s/%s: %w", shop, order, err)
	}
	var e Entry
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return Entry{}, false, fmt.Errorf("orderstate: decoding the last history entry of %s/%s: %w", shop, order, err)
	}
	return e, true, nil
}

// AppendHistory appends one entry to an order's history on its own, for an event that changed no
// state (a dead letter written before the order's lease was taken). ttl, if not 0, bounds the life
// of a history that has no order state with it; 0 makes it last as an order state does (the
// store's retention, as a state write does).
func (s *Store) AppendHistory(ctx context.Context, shop, order string, e Entry, ttl time.Duration) (err error) {
	ctx, c := startCall(ctx, "redis append history", "MULTI")
	defer c.end(&err)
	key := s.historyKey(shop, order)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, key, e.encode())
		p.LTrim(ctx, key, -HistoryLimit, -1)
		if ttl <= 0 {
			ttl = s.retention // the order has a state: its history lasts as long
		}
		p.PExpire(ctx, key, ttl)
		return nil
	})
	if err = unavailable(err); err != nil {
		return fmt.Errorf("orderstate: appending to the history of %s/%s: %w", shop, order, err)
	}
	s.tell(Written{History: 1})
	return nil
}
