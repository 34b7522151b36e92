package orderstate

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
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
//
// An event that finds the lease held is queued in the order's inbox (Take.Queue) rather than
// waiting: the holder applies the inbox before it lets the lease go (Commit returns its entries
// one by one), so a burst of events for one order holds one handler, not one per event.
type Lease struct {
	store        *Store
	shop, order  string
	event, token string
	digest       string // the event's (Take.EventDigest), for its record
	ttl          time.Duration
	// State is the order's state when the lease was taken.
	State State
	// EventDone reports that the event named when the lease was taken was already processed:
	// Record is RecordedSame.
	EventDone bool
	// Record is what the event record says of the event named when the lease was taken
	// (Take.EventKey and Take.EventDigest): not processed, processed already, or an event of other
	// content recorded under its identity (a reused id).
	Record Record
	// Created reports that taking the lease wrote State (Take.First): no earlier handler saw it.
	Created bool
	// Drain reports that the inbox held older events when the lease was taken: the event (if it
	// was given as Take.Queue) was put last in the inbox, and the holder applies the inbox (Next).
	// The first state (Take.First) was not written.
	Drain bool
}

// ErrQueued means another handler holds the order's lease and the event was queued in the
// order's inbox: that handler applies it. The error is a *QueuedError.
var ErrQueued = errors.New("orderstate: queued in the order's inbox behind the handler holding its lease")

// QueuedError is ErrQueued with the inbox's length after the event was queued.
type QueuedError struct{ Length int64 }

func (e *QueuedError) Error() string        { return ErrQueued.Error() }
func (e *QueuedError) Is(target error) bool { return target == ErrQueued }

//go:embed acquire.lua
var acquireSource string
var acquireScript = redis.NewScript(indexSource + inboxSource + acquireSource)

var releaseScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

// Take says how to take a lease.
type Take struct {
	// EventKey is the identity of the inbound event being handled (events.EventKey), or "": the
	// lease reports whether it was processed already (Lease.EventDone).
	EventKey string
	// EventDigest is what identifies the content of that event (its type, order and data), of the
	// form "<version>:<value>": the event's record holds it, and an event whose identity is
	// recorded with another digest is not a copy (Lease.Record is RecordedOther). "" checks and
	// records the identity alone, as before digests.
	EventDigest string
	// TTL is the lease's lifetime.
	TTL time.Duration
	// First, if not nil, is written as the order's first version when the order has no state and
	// the event was not processed; Now is its time.
	First *State
	Now   time.Time
	// Queue, if not nil, is the event as an inbox entry: queued when another handler holds the
	// lease (ErrQueued), or behind the inbox's older events when it is not empty (Lease.Drain).
	// It is sent only when needed: AcquireLease first tries without it, which finds the lease free
	// and the inbox empty almost always. Nil waits for nobody: ErrLeaseHeld.
	Queue *Parked
	// MaybeCopy says Queue's event may be in the inbox already (a delivery after the first, or a
	// run again in place): it is not queued again if it is (acquire.lua's inbox_holds, which reads
	// the whole inbox, so only then).
	MaybeCopy bool
	// BeforeQueue, if set, runs before Queue is sent (its error is returned, nothing queued): the
	// caller keeps a copy of an event that Redis alone will hold once it is queued.
	BeforeQueue func() error
}

// MaxInbox is how many events an order's inbox holds; an event beyond it is not queued and its
// handler waits for the lease.
const MaxInbox = 1024

// AcquireLease takes the order's lease, or returns ErrLeaseHeld, or ErrQueued when it queued
// t.Queue in the order's inbox. In the same round trip it reads the order's state and the event
// record, and writes t.First for a new order.
func (s *Store) AcquireLease(ctx context.Context, shop, order string, t Take) (*Lease, error) {
	l, err := s.acquire(ctx, shop, order, t, false)
	if t.Queue != nil && (errors.Is(err, ErrLeaseHeld) || errors.Is(err, errNeedEntry)) {
		if t.BeforeQueue != nil {
			if err := t.BeforeQueue(); err != nil {
				return nil, err
			}
		}
		return s.acquire(ctx, shop, order, t, true)
	}
	return l, err
}

// errNeedEntry means the inbox holds events and the event must be put behind them: call again
// with its entry.
var errNeedEntry = errors.New("orderstate: the inbox holds events")

// acquire runs acquire.lua once, with t.Queue's entry if withEntry.
func (s *Store) acquire(ctx context.Context, shop, order string, t Take, withEntry bool) (_ *Lease, err error) {
	ctx, c := startCall(ctx, "redis acquire", "EVALSHA")
	defer c.end(&err)
	var b [16]byte
	_, _ = rand.Read(b[:])
	l := &Lease{store: s, shop: shop, order: order, event: t.EventKey, digest: t.EventDigest, token: hex.EncodeToString(b[:]), ttl: t.TTL}
	sk := s.keysOf(shop)
	keys := make([]string, 6, 10)
	keys[0], keys[1], keys[2], keys[3], keys[4], keys[5] = s.leaseKey(shop, order), s.stateKey(shop, order), sk.pending, s.eventKey(shop, t.EventKey), s.inboxKey(shop, order), sk.timers
	// A queued event's inbox timer is due when the lease expires.
	args := []any{l.token, t.TTL.Milliseconds(), "0", "", shop + ":" + order, "0", "", MaxInbox, "0", t.Now.Add(t.TTL).UnixMilli(),
		"", order, "", "", "", s.cutoff(t.Now), "", ""}
	if t.Queue != nil && !withEntry {
		args[8] = "1"
	}
	if t.Queue != nil && withEntry {
		raw, err := json.Marshal(t.Queue)
		if err != nil {
			return nil, fmt.Errorf("orderstate: encoding an inbox entry of %s/%s: %w", shop, order, err)
		}
		args[6] = raw
		if t.MaybeCopy && t.Queue.Digest != "" { // a copy's entry starts with its key and has its digest (inbox_holds)
			args[16], args[17] = `"key":"`+t.Queue.Key+`"`, `"digest":"`+t.Queue.Digest+`"`
		}
	}
	if t.EventKey != "" {
		args[2] = "1"
	}
	var first encoded
	if t.First != nil {
		if first, err = encode(shop, order, *t.First, t.Now, s.refreshAge()); err != nil {
			return nil, err
		}
		first.st.History = nil // not part of the document: never written with a first state
		args[3] = first.raw
		args[10], args[12], args[13], args[14] = s.ttl(first.st, t.Now), first.ix.changed, first.ix.ordered, first.ix.summary
		keys = append(keys, sk.index[:]...) // where the first state is filed
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
		return nil, errors.Join(err, l.ReleaseAfter(ctx))
	}
	mode, _ := res[3].(string)
	if mode == "entry" {
		return nil, errNeedEntry
	}
	if mode == "queued" {
		n, _ := res[1].(int64)
		return nil, &QueuedError{Length: n}
	}
	l.Drain = mode == "drain"
	record, _ := res[1].(string)
	l.Record = Recorded(record, t.EventDigest)
	l.EventDone = l.Record == RecordedSame
	l.Created = res[2] == int64(1)
	if l.Created {
		// The script wrote t.First and sends no copy back: the lease holds the state as encoded,
		// as a write returns the state it wrote (decoding the copy took 3% of the worker's CPU).
		l.State = first.st
		s.tell(Written{States: 1, Index: 1}) // t.First, filed in the index with it
		return l, nil
	}
	raw, _ := res[0].(string)
	if l.State, err = decode(shop, order, []byte(raw)); err != nil {
		return nil, errors.Join(err, l.ReleaseAfter(ctx))
	}
	return l, nil
}

// Commit is the last write of one event under the lease.
type Commit struct {
	// State, if not nil, is written as Put writes it.
	State *State
	// Version, when State is nil, is the version of a state the commit follows (the one read with
	// the lease, or one written since; 0 for none, which checks nothing): a commit that finds an
	// earlier one stored, or none (Redis flushed or rolled back meanwhile), or that would record
	// the event with the lease no longer its own (flushed, and taken by another handler), writes
	// and records nothing and returns ErrConflict, so that the event is handled again rather than
	// recorded with its effects lost.
	Version int64
	// Entries are appended to the order's history.
	Entries []Entry
	// Done records the event as processed: the lease's own event, or the inbox entry Applied.
	Done bool
	// Ends, without Done, says the event ends unrecorded (dead-lettered, or kept for its retry as
	// Retry): the inbox's other copies of it are removed, or each would be tried again, after the
	// event's dead letter too. Not for an event whose message is handed back, its fate undecided:
	// a copy may be the message's own later delivery, acknowledged already, which a Nak of the
	// earlier one does not bring back. (A copy of an event recorded is left: its record makes it a
	// duplicate.)
	Ends bool
	// Applied is the inbox entry this commit ends (from Next), removed from the inbox with it.
	Applied *Parked
	// Retry, if not nil, is put first in the inbox, in place of Applied or in front of the others:
	// an event that failed and is retried before those queued after it. The lease is let go.
	Retry *Parked
}

// Commit ends one event's work in one atomic step: it writes c.State, appends c.Entries, records
// the event, removes the inbox entry applied, and releases the lease, unless the inbox holds more:
// then the lease is kept and its next entry returned, for the holder to apply and commit in turn.
// On ErrConflict (c.State's version is not the one stored, or c.Version is above it; see Version)
// nothing is written or recorded, and the lease is released all the same.
func (l *Lease) Commit(ctx context.Context, c Commit, now time.Time) (State, *Parked, error) {
	w := writeArgs{entries: c.Entries, version: c.Version, token: l.token, keep: l.ttl, ttl: l.ttl}
	if c.Retry != nil {
		w.keep = 0
	}
	if c.Retry != nil {
		raw, err := json.Marshal(c.Retry)
		if err != nil {
			return State{}, nil, fmt.Errorf("orderstate: encoding an inbox entry of %s/%s: %w", l.shop, l.order, err)
		}
		w.retry, w.retryAt = string(raw), c.Retry.RetryAt
	}
	key, digest := l.event, l.digest
	if c.Applied != nil {
		w.pop = c.Applied.raw
		key, digest = c.Applied.Key, c.Applied.Digest
	}
	switch {
	case c.Done:
		w.eventKey, w.digest = key, digest
	case c.Ends:
		w.ends.Key, w.ends.Digest = key, digest
	}
	return l.store.write(ctx, l.shop, l.order, c.State, w, now)
}

// Next returns the inbox's first entry, or nil when it is empty, for a holder that took the lease
// in Drain mode.
func (l *Lease) Next(ctx context.Context) (_ *Parked, err error) {
	ctx, c := startCall(ctx, "redis inbox next", "LINDEX")
	defer c.end(&err)
	raw, err := l.store.rdb.LIndex(ctx, l.store.inboxKey(l.shop, l.order), 0).Result()
	err = unavailable(err)
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("orderstate: reading the inbox of %s/%s: %w", l.shop, l.order, err)
	}
	return decodeParked(l.shop, l.order, raw)
}

// releaseTimeout bounds the release of a lease after its handler's context ended: the release
// is worth trying (the order's next event need not wait for the lease to expire), but not worth
// holding a shutdown for while Redis does not answer.
const releaseTimeout = 2 * time.Second

// ReleaseAfter gives the lease up as Release does, also when ctx has ended (the handler timed out
// or the worker is stopping), waiting for Redis at most releaseTimeout.
func (l *Lease) ReleaseAfter(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	return l.Release(ctx)
}

// Release gives the lease up, if it is still held by this holder.
func (l *Lease) Release(ctx context.Context) (err error) {
	ctx, c := startCall(ctx, "redis release", "EVALSHA")
	defer c.end(&err)
	key := l.store.leaseKey(l.shop, l.order)
	if err := l.store.batch.run(ctx, releaseScript, []string{key}, l.token).Err(); err != nil {
		return fmt.Errorf("orderstate: releasing lease %s: %w", key, err)
	}
	return nil
}
