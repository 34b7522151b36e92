// Package orderstate keeps each order's credit state in Redis (docs/lifecycle.md,
// docs/architecture.md#order-state-in-redis): the state machine,
// what the worker needs to continue after a crash, per-order leases that serialize the handlers
// of one order across replicas, the records of events processed to completion, and the order
// index, which lists and counts each shop's orders by status and time (ListOrders, CountOrders).
//
// Every write is a compare-and-set on the state's version, done in one Lua script, so two
// writers can never both win. A handler's first and last steps are one round trip each: taking
// the lease reads the state and the event record with it, and the last write records the event
// and releases the lease with it. The same scripts keep the order index in step, and set the state
// to expire one retention after the order last changed in the index's eyes.
package orderstate

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Status is where an order stands with ATODENE.
type Status string

// Statuses of the state machine of docs/lifecycle.md#statuses.
const (
	StatusNone        Status = ""            // never registered
	StatusRegistering Status = "registering" // intent written, registration under way
	StatusOK          Status = "ok"
	StatusNG          Status = "ng"
	StatusPending     Status = "pending" // under review (審査中) or on hold (保留)
	StatusInvalid     Status = "invalid" // ATODENE refused the request itself
	StatusCancelled   Status = "cancelled"
	StatusUnknown     Status = "unknown" // outcome unknown; an operator must look
)

// Live reports whether the order has a transaction that ATODENE still holds as live.
func (s Status) Live() bool { return s == StatusOK || s == StatusPending }

// Shipment is the tracking number of an order and whether ATODENE holds it: queued while the
// credit is pending (Reported false), reported once it is OK.
type Shipment struct {
	CarrierCode    string `json:"carrier_code"`
	TrackingNumber string `json:"tracking_number"`
	InvoiceDate    string `json:"invoice_date,omitempty"`
	Reported       bool   `json:"reported"`         // these values are reported to ATODENE
	Filed          bool   `json:"filed,omitempty"`  // ATODENE holds a report: the next one is a change
	Report         string `json:"report,omitempty"` // new or change: the last report sent
	// Event is the identity (events.EventKey) of the tracking event that queued these values
	// while the order was under review: the event's kept copy stays while they wait.
	Event string `json:"event,omitempty"`
}

// State is one order's state. Version grows by one with every write.
type State struct {
	Version int64 `json:"version"`
	// Index is what the order index shows of this state: its scores by time changed and by time
	// ordered and its summary, joined by "|", set by the store as it writes the state. It is the
	// second member of the document, so that write.lua reads it without decoding the rest: a write
	// that leaves it as it was changes nothing the index shows, and writes nothing to the index.
	Index string `json:"ix,omitempty"`
	// Epoch names this life of the order's state: a random value given by its first write. The
	// version counts writes within it; a state lost with Redis and written anew starts at version 1
	// again but in another epoch, so that what is derived from the version (outcome message IDs)
	// never repeats for a different outcome.
	Epoch         string    `json:"epoch,omitempty"`
	Status        Status    `json:"status"`
	Review        string    `json:"review,omitempty"` // "" under review, "hold" on hold
	TransactionID string    `json:"transaction_id,omitempty"`
	Fee           int64     `json:"fee"`
	BilledAmount  int64     `json:"billed_amount"`
	Service       string    `json:"service,omitempty"`   // ATODENE's invoice delivery code
	DataHash      string    `json:"data_hash,omitempty"` // of the request last sent, to spot identical data: "v1:<64 hex>", or <64 hex> from before hashes had a version (handlers compare each by its own computation)
	Reasons       []string  `json:"reasons,omitempty"`
	Errors        []Error   `json:"errors,omitempty"`
	Shipment      *Shipment `json:"shipment,omitempty"`

	// ReceivedHash is DataHash's hash of the same request with the fee and billed amount as
	// received, before the shop's fee table ("v1:<64 hex>"): an order received again with the
	// same data is unchanged after the table is edited. Empty in a state written before it existed.
	ReceivedHash string `json:"received_hash,omitempty"`
	// Outbox holds the outcome events this state calls for that are not yet on the RESULTS
	// stream. A worker that dies between the state write and the publish leaves them here, and
	// the next handler of the order publishes them (with the same message IDs) and clears them.
	Outbox []Outcome `json:"outbox,omitempty"`
	// CausedBy is the id of the inbound event that started the current credit check; outcomes
	// of later polls name it as their cause.
	CausedBy string `json:"caused_by,omitempty"`
	// CreditSeq is the inbound stream sequence of the last order.created, order.updated or
	// order.cancelled applied: an older one handled later (workers run events in parallel) is
	// stale and changes nothing, so the shop's last word stands.
	CreditSeq uint64 `json:"credit_seq,omitempty"`
	// CreditCreated is when the stream of CreditSeq was created (Unix ns, 0 when unknown): an
	// event of a stream created later (the stream deleted and created again, its sequences
	// starting at 1 again) is newer whatever its sequence.
	CreditCreated int64 `json:"credit_created,omitempty"`
	// TrackingSeq and TrackingCreated are the same for order.tracking_entered: a tracking number
	// published before the one the order holds (handled later, in parallel) does not replace it.
	TrackingSeq     uint64 `json:"tracking_seq,omitempty"`
	TrackingCreated int64  `json:"tracking_created,omitempty"`
	// RepeatSeq and RepeatCreated are the position, kept as CreditSeq and CreditCreated, of the
	// latest order.created that found nothing to do (the order live, or refused with the same
	// data), and RepeatTime is its CloudEvents time (zero when it had none). A repeat of the
	// creation is no word on the order's data, so it does not move CreditSeq (an order.updated
	// published before it still applies); but a cancel published before it and not written after
	// it, handled after it, is stale: in stream order the creation would have registered the
	// cancelled order again (与信を実行 after 与信キャンセル).
	RepeatSeq     uint64    `json:"repeat_seq,omitempty"`
	RepeatCreated int64     `json:"repeat_created,omitempty"`
	RepeatTime    time.Time `json:"repeat_time,omitzero"`
	// InvoiceEvent is the id of the last order.invoice_requested answered, so that a retry of it
	// (after its answer was written but before it was acknowledged) answers nothing twice.
	InvoiceEvent string    `json:"invoice_event,omitempty"`
	PollSince    time.Time `json:"poll_since,omitzero"` // when polling began
	// PollSeq numbers the poll schedules of the order; a due poll carrying another number is
	// stale (the order changed since) and is dropped. PollScheduled says the current one is
	// stored in the schedule stream.
	PollSeq       int  `json:"poll_seq,omitempty"`
	PollAttempt   int  `json:"poll_attempt,omitempty"`
	PollScheduled bool `json:"poll_scheduled,omitempty"`
	// PollAt is when the scheduled re-check is due; zero when none is (past the poll deadline).
	PollAt time.Time `json:"poll_at,omitzero"`
	// PollHeld says the scheduled re-check is held in Redis (the shop's held re-checks, see
	// Store.TakeHeld) rather than stored in the schedule stream: one due far ahead is handed to
	// JetStream shortly before it is due (docs/architecture.md#polling-orders-under-review).
	PollHeld bool `json:"poll_held,omitempty"`
	// HoldPoll asks the write to add the order to the shop's held re-checks, due at PollAt: set
	// by the step that holds the re-check, not stored; a write clears it. Later writes of the
	// state do not add it again, so that a re-check handed to JetStream is not handed twice.
	HoldPoll bool `json:"-"`
	// PollTrace is the W3C traceparent of the handling that held the re-check (empty with tracing
	// off): the re-check, handed to JetStream later, still joins the order's trace.
	PollTrace string `json:"poll_trace,omitempty"`
	// CancelledAt is the time of the order.cancelled that cancelled the order: its CloudEvents
	// time, or when it was handled if it had none. A later order.created or order.updated
	// registers the order again unless its own time is earlier (an importer's late retry).
	CancelledAt time.Time `json:"cancelled_at,omitzero"`
	// Parked holds the events that wait for the order to get somewhere (a tracking number before
	// the order is registered, a cancel while a registration is under way), in arrival order.
	// They were acknowledged when parked; the handler that moves the order on applies them.
	Parked []Parked `json:"parked,omitempty"`
	// ParkTimer is when the order's parked-event timer is set for: the retry of the first parked
	// event in stream order, when it waits for one, else the time it has waited too long for its
	// order (it is then dead-lettered); those after it wait for it. Zero when nothing is parked.
	ParkTimer time.Time `json:"park_timer,omitzero"`
	// OrderedAt is when the shop took the order (its ordered_at), written with the intent of its
	// registration; for an order known only by an event parked for it, or written before the field
	// existed, the store sets the time of the write. The order index lists and sorts orders by it.
	OrderedAt time.Time `json:"ordered_at,omitzero"`
	// ChangedAt is when what the order index shows of the order last changed (Index): its credit
	// status, review, shipment status, transaction ID, fee, billed amount or time ordered. Set by
	// the store. The state expires one retention after it, and its index entry goes with it.
	ChangedAt time.Time `json:"changed_at,omitzero"`
	// ShipmentRefused says the last shipment outcome rendered for the order was shipment.ng: its
	// latest tracking number was refused (by ATODENE, or by the worker for an order whose credit is
	// not OK). The store sets it as it writes a state whose outbox holds a shipment outcome; a
	// shipment.ok clears it. The order index files the order under ShipmentRefused by it.
	ShipmentRefused bool `json:"shipment_refused,omitempty"`
	// AuthorizedAt is when ATODENE first approved the live transaction (its registration, or the
	// re-check that turned it OK); zero before that. Re-authorization counts from it
	// (docs/lifecycle.md#re-authorization). A change approved later does not move it.
	AuthorizedAt time.Time `json:"authorized_at,omitzero"`
	// ShopOrderID is the shopOrderId of the live transaction when it is not the order's own (the
	// shop's order_id_prefix and the order_id): the derived one of a re-authorization.
	ShopOrderID string `json:"shop_order_id,omitempty"`
	// Reauth is the order's re-authorization: its timer and the step it is at. Nil for an order
	// never scheduled for one.
	Reauth *Reauth `json:"reauth,omitempty"`
	// RefusedTimers names the timers of the order ("poll" for its re-check, "reauth") whose
	// refusal for the shop's account the order's history noted: each is noted once, not at each
	// refusal after (a refused timer scheduled again, or its message delivered again), until the
	// timer runs without meeting a refusal (docs/lifecycle.md#refusals-of-the-merchants-account).
	RefusedTimers []string `json:"refused_timers,omitempty"`
	// HasData says Redis holds the order's data (OrderData) in a key of its own, kept while the
	// order may be re-authorized (KeepsData).
	HasData bool `json:"has_data,omitempty"`
	// OrderData is the order's data to keep for a re-authorization (the data of the order.created
	// or order.updated that ATODENE last approved, as JSON): a write that holds it stores it, in
	// the same atomic step. It is not part of the stored document (it holds personal data); read
	// it with Store.OrderData.
	OrderData []byte `json:"-"`
	// DropData asks the write to delete the order's kept data whatever KeepsData says (the shop no
	// longer re-authorizes). Not stored.
	DropData  bool      `json:"-"`
	UpdatedAt time.Time `json:"updated_at"`
	// History holds entries to append to the order's history with this write, in the same atomic
	// step. It is not part of the stored document; a write clears it.
	History []Entry `json:"-"`
}

// Reauth is an order's re-authorization (docs/lifecycle.md#re-authorization): a new registration
// under a derived shopOrderId before the live transaction's approval expires, then the cancel of
// the old transaction. The order stays on its old transaction until the new one is OK.
type Reauth struct {
	// N counts the re-authorizations begun; the next derives its shopOrderId from N+1.
	N int `json:"n"`
	// Seq numbers the re-authorization timers of the order: a due timer of another is stale.
	Seq       int       `json:"seq,omitempty"`
	Scheduled bool      `json:"scheduled,omitempty"` // the timer of Seq is set, due At
	At        time.Time `json:"at,omitzero"`
	// Held says the timer is set in the timer index only (ReauthDue), not yet in JetStream: one
	// due far ahead is handed to JetStream by the reconciler once it is due.
	Held bool `json:"held,omitempty"`
	// Phase is the step under way: "", ReauthRegistering, ReauthPending or ReauthCancelling.
	Phase string `json:"phase,omitempty"`
	// ShopOrderID is the derived shopOrderId of the registration under way (ReauthRegistering,
	// ReauthPending).
	ShopOrderID string `json:"shop_order_id,omitempty"`
	// DataHash is the order's DataHash when the re-authorization began: a change of the order
	// since makes the new transaction's data stale.
	DataHash string `json:"data_hash,omitempty"`
	// New is the new transaction while it is under review (ReauthPending); Attempt counts its
	// re-checks since Since.
	New     string    `json:"new,omitempty"`
	Review  string    `json:"review,omitempty"` // of New: "" under review, "hold" on hold
	Attempt int       `json:"attempt,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	// Old is the transaction the re-authorization replaced, to cancel (ReauthCancelling): due At,
	// tried again by the timer after a failure (Attempt counts them).
	Old string `json:"old,omitempty"`
	// Failed says why the last re-authorization left the order on its old transaction ("ng",
	// "invalid", "unknown", "no-data", "review-deadline"); no other is scheduled, and the order's
	// data is not kept, until the order is registered again.
	Failed string `json:"failed,omitempty"`
}

// The phases of a re-authorization.
const (
	// ReauthRegistering: the intent of the new registration is written; transaction.do may be
	// under way or its answer lost. A retry sends the same derived shopOrderId.
	ReauthRegistering = "registering"
	// ReauthPending: the new transaction (New) is under review, re-checked by the
	// re-authorization's timer; the order stays on its old transaction meanwhile.
	ReauthPending = "pending"
	// ReauthCancelling: the order is on the new transaction; Old is to be cancelled, by the
	// re-authorization's timer if the settle step that follows the answer could not.
	ReauthCancelling = "cancelling"
)

// KeepsData reports whether the order's data must stay in Redis for a re-authorization: the order
// awaits its approval (registering, under review, or unknown: the operator's resolution may adopt
// a transaction, whose re-authorization needs the data) or holds one given after the worker kept
// data (AuthorizedAt set), no shipment is reported (a shipped order is not re-authorized), and no
// re-authorization ended for good (an "unknown" ending waits for the operator's resolution).
func (st State) KeepsData() bool {
	// An "unknown" ending keeps it: the operator's resolution may start the next re-authorization.
	if (st.Shipment != nil && st.Shipment.Reported) || (st.Reauth != nil && st.Reauth.Failed != "" && st.Reauth.Failed != "unknown") {
		return false
	}
	switch st.Status {
	case StatusRegistering, StatusPending, StatusUnknown:
		return true
	case StatusOK:
		return !st.AuthorizedAt.IsZero()
	}
	return false
}

// ReauthDue says when the state's re-authorization timer is due, if the state relies on it: one
// under way (its intent, the re-check of its new transaction, or the cancel of the transaction it
// replaced), or one scheduled for an OK order not shipped.
func (st State) ReauthDue() (time.Time, bool) {
	r := st.Reauth
	switch {
	case r == nil || r.At.IsZero():
		return time.Time{}, false
	case r.Phase == ReauthRegistering || r.Phase == ReauthPending || r.Phase == ReauthCancelling:
		return r.At, true
	}
	return r.At, r.Scheduled && r.Phase == "" && st.Status == StatusOK && (st.Shipment == nil || !st.Shipment.Reported)
}

// RecheckDue returns when the state's scheduled re-check is due (PollAt); ok is false when it
// has none: not under review, or no re-check scheduled.
func (st State) RecheckDue() (due time.Time, ok bool) {
	return st.PollAt, st.Status == StatusPending && st.PollScheduled && !st.PollAt.IsZero()
}

// heldPoll says the state relies on a re-check held in Redis (PollHeld).
func (st State) heldPoll() bool {
	_, ok := st.RecheckDue()
	return ok && st.PollHeld
}

// TimerDue returns when the earliest JetStream timer the state relies on is due: its scheduled
// re-check, its parked-event timer, or its re-authorization. ok is false when it relies on none.
func (st State) TimerDue() (due time.Time, ok bool) {
	due, ok = st.RecheckDue()
	if at, relies := st.ReauthDue(); relies && (!ok || at.Before(due)) {
		due, ok = at, true
	}
	if !st.ParkTimer.IsZero() && (!ok || st.ParkTimer.Before(due)) {
		due, ok = st.ParkTimer, true
	}
	return due, ok
}

// Parked is an inbound event kept until its order gets where it can be applied: the message as
// received (for applying it, and for its dead letter if it waits too long), where it came from
// and what it waits for.
type Parked struct {
	Type      string `json:"type"` // the event type, e.g. order.tracking_entered
	Key       string `json:"key"`  // the event's identity, events.EventKey(source, id)
	ID        string `json:"id"`   // the event's CloudEvents id and source
	Source    string `json:"source"`
	Subject   string `json:"subject"` // where it was consumed from
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Published uint64 `json:"published,omitempty"` // the sequence it had when first published, if a replay
	// PublishedCreated is when the stream it was first published in was created (Unix ns).
	PublishedCreated int64  `json:"published_created,omitempty"`
	Attempt          int    `json:"attempt"`
	ReplayCount      string `json:"replay_count,omitempty"`
	Body             []byte `json:"body"` // byte for byte; it may hold personal data
	// BodyKept, in an inbox entry, says that Body is not held here (the message is too large for
	// the inbox) but in the event's copy in the worker's kept copies, read back to apply it, and in
	// the message itself (Stream, Seq). BodySum (BodySum) tells its body from another's: a copy is
	// kept per identity, which an importer may reuse, and a stream created again numbers anew.
	BodyKept bool      `json:"body_kept,omitempty"`
	BodySum  string    `json:"body_sum,omitempty"`
	Since    time.Time `json:"since"` // when it was parked
	Waits    string    `json:"waits"` // what it waits for, in words
	// Kind groups the parked events one order keeps one of: "tracking" and "cancel" (the latest in
	// the stream waits), "invoice" (the first waits).
	Kind string `json:"kind,omitempty"`
	// PlaceSeq and PlaceCreated are, for an event that replaced an earlier one of its kind while
	// parked, the stream position of the first it replaced, kept as Seq and PublishedCreated: the
	// place where it applies among the order's parked events. Zero: its own position.
	PlaceSeq     uint64 `json:"place_seq,omitempty"`
	PlaceCreated int64  `json:"place_created,omitempty"`
	// Tries counts the attempts to apply it that failed transiently; RetryAt is when the next may
	// run, LastError what the last failure was.
	Tries     int       `json:"tries,omitempty"`
	RetryAt   time.Time `json:"retry_at,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Digest is what identifies the event's content (Take.EventDigest), recorded with Key once the
	// event is applied from the inbox; "" in an entry written before digests (the inbox's applier
	// then computes it from Body).
	Digest string `json:"digest,omitempty"`
	// raw is the entry as the order's inbox holds it, when it came from there.
	raw string
}

// BodySum is what identifies a body byte for byte (Parked.BodySum): in lower-case hex, the first
// 16 bytes of its SHA-256.
func BodySum(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:16])
}

// decodeParked reads an inbox entry.
func decodeParked(shop, order, raw string) (*Parked, error) {
	var p Parked
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return nil, fmt.Errorf("orderstate: decoding the inbox of %s/%s: %w", shop, order, err)
	}
	p.raw = raw
	return &p, nil
}

// Error is a provider error kept with the state.
type Error struct {
	Point   string `json:"point"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Outcome is a rendered outcome event waiting to be published.
type Outcome struct {
	Subject string          `json:"subject"`
	MsgID   string          `json:"msg_id"`
	Body    json.RawMessage `json:"body"`
}

// Type is the outcome's event type, read off its subject (credit.ok.<shop> → credit.ok).
func (o Outcome) Type() string {
	if i := strings.LastIndexByte(o.Subject, '.'); i > 0 {
		return o.Subject[:i]
	}
	return o.Subject
}

// The shipment outcome types (events.TypeShipmentOK and TypeShipmentNG), which set
// State.ShipmentRefused.
const (
	outcomeShipmentOK = "shipment.ok"
	outcomeShipmentNG = "shipment.ng"
)

// ErrConflict means the state changed since it was read: read it again and decide again.
var ErrConflict = errors.New("orderstate: state changed concurrently (version conflict)")

// Store reads and writes order states, leases and event records in Redis, and keeps the order
// index (ListOrders, CountOrders) in step with the states.
type Store struct {
	rdb       redis.UniversalClient
	batch     *batchers
	prefix    string
	eventTTL  time.Duration
	retention time.Duration
	now       func() time.Time
	// listBudget and gatherLimit are ListOrders' bounds (the constants; tests lower them).
	listBudget, gatherLimit int
	replication             Replication
	replicated              chan struct{} // runReplicated's slots: maxReplicatedWrites
	replicatedByNode        *nodeSlots    // on a Cluster, per master (replicatedSlots)
	written                 func(Written)
	keys                    *keyCache // keysOf's
}

// DefaultRetention is how long an order's state, history and index entry are kept after it last
// changed when Config.Retention is not set: 400 days.
const DefaultRetention = 400 * 24 * time.Hour

// Config configures a Store.
type Config struct {
	// Prefix starts every key of the store (e.g. "atodene:"). Default "": none.
	Prefix string
	// EventTTL is how long the record of a completed event is kept (it must exceed the longest
	// redelivery horizon). Default 0: a store that records no events (a reader's).
	EventTTL time.Duration
	// Retention is how long an order is kept after it last changed (State.ChangedAt): its state and
	// history expire then, and its index entry is hidden from that moment and removed soon after
	// (TrimIndex, and the writes of its shop). Default DefaultRetention.
	Retention time.Duration
	// Now is the store's clock, for the index's retention cutoff. Default time.Now.
	Now func() time.Time
	// Replication makes the writes of registration intents wait for replicas. Default: none.
	Replication Replication
	// Written, if set, is told what each write of an order stored, once Redis answered that it
	// did (the worker's metrics count them). Default nil: told nothing.
	Written func(Written)
}

// Written is what one write of an order stored.
type Written struct {
	// States is the state versions written: 0 or 1.
	States int
	// Index is the order-index entries written: 1 when what the index shows of the order changed
	// (a new order, its credit or shipment status, review, amounts, transaction, time ordered),
	// 0 otherwise (an outbox published, a re-check still under review touch no index key).
	Index int
	// History is the entries appended to the order's history.
	History int
}

// NewStore returns a store on rdb configured by cfg.
func NewStore(rdb redis.UniversalClient, cfg Config) *Store {
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Replication.Timeout <= 0 {
		cfg.Replication.Timeout = DefaultReplicationTimeout
	}
	return &Store{rdb: rdb, batch: newBatchers(rdb), prefix: cfg.Prefix, eventTTL: cfg.EventTTL, retention: cfg.Retention, now: cfg.Now,
		listBudget: listBudget, gatherLimit: gatherLimit, replication: cfg.Replication, replicated: make(chan struct{}, maxReplicatedWrites),
		replicatedByNode: &nodeSlots{byAddr: map[string]chan struct{}{}}, written: cfg.Written, keys: &keyCache{}}
}

// tell passes w to Config.Written, if set and w holds anything.
func (s *Store) tell(w Written) {
	if s.written != nil && w != (Written{}) {
		s.written(w)
	}
}

// New returns a store that keeps its keys under prefix (e.g. "atodene:"), with the default
// retention. eventTTL is how long the record of a completed event is kept (it must exceed the
// longest redelivery horizon).
func New(rdb redis.UniversalClient, prefix string, eventTTL time.Duration) *Store {
	return NewStore(rdb, Config{Prefix: prefix, EventTTL: eventTTL})
}

// The key layout (docs/architecture.md#redis-keys): every key of an order, and the sets of its shop
// that its scripts write with it, carry the shop as a hash tag ({shop}), so that on Redis Cluster
// the keys of each script are in one slot. Shop IDs hold no braces (config.checkShopID).
func (s *Store) stateKey(shop, order string) string {
	return s.prefix + "order:{" + shop + "}:" + order
}
func (s *Store) leaseKey(shop, order string) string {
	return s.prefix + "lease:{" + shop + "}:" + order
}
func (s *Store) eventKey(shop, key string) string { return s.prefix + "event:{" + shop + "}:" + key }
func (s *Store) historyKey(shop, order string) string {
	return s.prefix + "history:{" + shop + "}:" + order
}
func (s *Store) inboxKey(shop, order string) string {
	return s.prefix + "inbox:{" + shop + "}:" + order
}
func (s *Store) dataKey(shop, order string) string {
	return s.prefix + "data:{" + shop + "}:" + order
}
func (s *Store) pendingKey(shop string) string { return s.prefix + "pending:{" + shop + "}" }
func (s *Store) timersKey(shop string) string  { return s.prefix + "timers:{" + shop + "}" }
func (s *Store) heldKey(shop string) string    { return s.prefix + "held:{" + shop + "}" }

// Get returns an order's state; an order never seen has Version 0 and StatusNone.
func (s *Store) Get(ctx context.Context, shop, order string) (_ State, err error) {
	ctx, c := startCall(ctx, "redis get", "GET")
	defer c.end(&err)
	raw, err := s.rdb.Get(ctx, s.stateKey(shop, order)).Bytes()
	err = unavailable(err)
	if errors.Is(err, redis.Nil) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("orderstate: reading state of %s/%s: %w", shop, order, err)
	}
	return decode(shop, order, raw)
}

type encoded struct {
	st  State
	raw []byte
	ix  indexEntry // st's entry in the order index
}

// encode renders st as the version after it, written at now. A state last changed more than
// refresh ago counts as changed now (Store.refreshAge), so that it lives on after this write.
func encode(shop, order string, st State, now time.Time, refresh time.Duration) (encoded, error) {
	if st.Epoch == "" {
		st.Epoch = NewEpoch()
	}
	st.Version++
	st.UpdatedAt = now.UTC()
	for _, o := range st.Outbox {
		switch o.Type() {
		case outcomeShipmentOK:
			st.ShipmentRefused = false
		case outcomeShipmentNG:
			st.ShipmentRefused = true
		}
	}
	if st.OrderedAt.IsZero() {
		st.OrderedAt = st.UpdatedAt
	}
	cell := indexCell(st)
	ix := indexEntry{ordered: indexScore(cell, st.OrderedAt), summary: encodeSummary(st.Fee, st.BilledAmount, st.TransactionID)}
	unchanged := false
	if !st.ChangedAt.IsZero() && st.UpdatedAt.Sub(st.ChangedAt) <= refresh {
		ix.changed = indexScore(cell, st.ChangedAt)
		unchanged = st.Index == ix.join()
	}
	if !unchanged {
		// What the index shows changed, or the state nears its expiry: the order changed now.
		st.ChangedAt = st.UpdatedAt
		ix.changed = indexScore(cell, st.ChangedAt)
		st.Index = ix.join()
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return encoded{}, fmt.Errorf("orderstate: encoding state of %s/%s: %w", shop, order, err)
	}
	return encoded{st, raw, ix}, nil
}

// NewEpoch returns a random epoch for a state written for the first time: 8 hexadecimal digits.
func NewEpoch() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func decode(shop, order string, raw []byte) (State, error) {
	var st State
	if len(raw) == 0 {
		return st, nil
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return State{}, fmt.Errorf("orderstate: decoding state of %s/%s: %w", shop, order, err)
	}
	return st, nil
}

//go:embed write.lua
var writeSource string

//go:embed index.lua
var indexSource string

//go:embed inbox.lua
var inboxSource string

var writeScript = redis.NewScript(indexSource + inboxSource + writeSource)

// Put writes st as the next version of an order's state if the stored version is still
// st.Version, with st.History appended to the order's history, and returns what was written
// (Version incremented, UpdatedAt set, History empty). A concurrent change yields ErrConflict and
// writes nothing.
func (s *Store) Put(ctx context.Context, shop, order string, st State, now time.Time) (State, error) {
	next, _, err := s.write(ctx, shop, order, &st, writeArgs{}, now)
	return next, err
}

// PutIntent is Put for a registration intent, the state written before ATODENE is sent a
// registration: with Replication, it returns once the replicas hold it, or fails with
// ErrNotReplicated (the state written on the master alone), so that ATODENE is not called on an
// intent a failover could lose.
func (s *Store) PutIntent(ctx context.Context, shop, order string, st State, now time.Time) (State, error) {
	next, _, err := s.write(ctx, shop, order, &st, writeArgs{intent: true}, now)
	return next, err
}

// writeArgs are what a write does besides the state: the history entries to append, the event to
// record as processed, the inbox entry it applied, and the lease to release (or keep, for the
// inbox).
type writeArgs struct {
	entries  []Entry
	version  int64 // in a write of no state, the version followed: the stored one must be at least it
	eventKey string
	digest   string // what the event record holds: the event's digest (Take.EventDigest), or "" for legacyRecord
	pop      string
	token    string
	keep     time.Duration                // the lease's lifetime if kept for the inbox; 0 releases it in any case
	retry    string                       // an entry to put first in the inbox
	retryAt  time.Time                    // when that entry is retried
	ttl      time.Duration                // the lease's lifetime
	intent   bool                         // a registration intent: waits for replicas (Replication)
	ends     struct{ Key, Digest string } // an event ended unrecorded: its copies leave the inbox
}

// inboxDue is when the timer of the order's inbox is due after this write, if it holds events:
// the retry of its first, or, when its holder keeps applying it, the lease's expiry.
func (w writeArgs) inboxDue(now time.Time) time.Time {
	if !w.retryAt.IsZero() {
		return w.retryAt
	}
	return now.Add(w.ttl)
}

// write runs write.lua: st (if not nil) as the next version with its history entries, and w.
// It returns the state written and, when the lease is kept for it, the inbox's next entry.
func (s *Store) write(ctx context.Context, shop, order string, st *State, w writeArgs, now time.Time) (_ State, _ *Parked, err error) {
	ctx, c := startCall(ctx, "redis write", "EVALSHA")
	defer c.end(&err)
	sk := s.keysOf(shop)
	keys := append(make([]string, 0, 12), s.stateKey(shop, order), sk.pending, s.leaseKey(shop, order), s.eventKey(shop, w.eventKey),
		s.historyKey(shop, order), s.inboxKey(shop, order), sk.timers)
	keys = append(keys, sk.index[:]...)
	keys = append(keys, s.dataKey(shop, order), sk.held)
	args := make([]any, 24, 24+len(w.entries))
	args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8], args[9] = w.version, "", shop+":"+order, "0", w.token, "", HistoryLimit, w.pop, "", w.retry
	args[10], args[11] = "", w.inboxDue(now).UnixMilli()
	args[12], args[13], args[14], args[15], args[16], args[17] = "", order, "", "", "", s.cutoff(now)
	args[18], args[19], args[20], args[21], args[22], args[23] = "", "", "", "", "", ""
	if w.ends.Key != "" && w.ends.Digest != "" {
		args[22], args[23] = `"key":"`+w.ends.Key+`"`, `"digest":"`+w.ends.Digest+`"`
	}
	entries := w.entries
	var next State
	stored := Written{}
	if st != nil {
		entries = append(st.History, w.entries...)
		st.History = nil
		args[18], args[19] = dataOp(st)
		enc, err := encode(shop, order, *st, now, s.refreshAge())
		if err != nil {
			return State{}, nil, err
		}
		next = enc.st
		// write.lua writes the index entry when the stored state's differs: the stored state is
		// st's version (else the write is a conflict and stores nothing), whose entry is st.Index.
		stored.States = 1
		if st.Version == 0 || st.Index != next.Index {
			stored.Index = 1
		}
		args[0], args[1] = st.Version, enc.raw
		args[12], args[14], args[15], args[16] = s.ttl(next, now), enc.ix.changed, enc.ix.ordered, enc.ix.summary
		if due, ok := next.TimerDue(); ok {
			args[10] = due.UnixMilli()
		}
		if next.Status == StatusPending {
			args[3] = "1"
		}
		if st.HoldPoll && next.heldPoll() {
			args[20] = next.PollAt.UnixMilli()
		}
		st.HoldPoll, next.HoldPoll = false, false
	}
	if w.eventKey != "" {
		args[5], args[21] = s.eventTTL.Milliseconds(), w.digest
		if w.digest == "" {
			args[21] = legacyRecord
		}
	}
	if w.keep > 0 {
		args[8] = w.keep.Milliseconds()
	}
	for _, e := range entries {
		args = append(args, e.encode())
	}
	run := s.batch.run
	if w.intent && s.WaitsForReplicas() {
		run = s.runReplicated
	}
	res, err := run(ctx, writeScript, keys, args...).Slice()
	if err != nil {
		return State{}, nil, fmt.Errorf("orderstate: writing state of %s/%s: %w", shop, order, err)
	}
	if res[0] != int64(1) {
		return State{}, nil, ErrConflict
	}
	stored.History = len(entries)
	s.tell(stored)
	raw, _ := res[1].(string)
	if raw == "" {
		return next, nil, nil
	}
	p, err := decodeParked(shop, order, raw)
	return next, p, err
}

// dataOp is what a write of st does with the order's data key (write.lua's ARGV[19] and [20]):
// stores st.OrderData, keeps the stored data as long as the state, or deletes it once the order
// no longer keeps it (KeepsData). It sets st.HasData to match, and clears st.OrderData.
func dataOp(st *State) (op string, data any) {
	defer func() { st.OrderData, st.DropData = nil, false }()
	keeps := st.KeepsData() && !st.DropData
	switch {
	case st.OrderData != nil && keeps:
		st.HasData = true
		return "s", string(st.OrderData)
	case st.HasData && keeps:
		return "k", ""
	case st.HasData:
		st.HasData = false
		return "d", ""
	}
	return "", ""
}

// OrderData returns the order's data kept for a re-authorization (State.OrderData), or nil when
// Redis holds none (never stored, deleted once the order no longer kept it, or lost).
func (s *Store) OrderData(ctx context.Context, shop, order string) (_ []byte, err error) {
	ctx, c := startCall(ctx, "redis order data", "GET")
	defer c.end(&err)
	raw, err := s.rdb.Get(ctx, s.dataKey(shop, order)).Bytes()
	err = unavailable(err)
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("orderstate: reading the data of %s/%s: %w", shop, order, err)
	}
	return raw, nil
}

// EventDone reports whether the event of shop with this identity (events.EventKey) was processed
// to completion.
func (s *Store) EventDone(ctx context.Context, shop, key string) (_ bool, err error) {
	ctx, c := startCall(ctx, "redis event done", "EXISTS")
	defer c.end(&err)
	n, err := s.rdb.Exists(ctx, s.eventKey(shop, key)).Result()
	err = unavailable(err)
	if err != nil {
		return false, fmt.Errorf("orderstate: reading event record %s of shop %s: %w", key, shop, err)
	}
	return n == 1, nil
}

// legacyRecord is what an event record held before records held the event's digest, and what one
// holds for an event handled without a digest: it is taken for a record of any event with that
// identity (Recorded).
const legacyRecord = "1"

// EventRecord returns what the record of the event of shop with this identity (events.EventKey)
// holds, for Recorded: "" when the event was not processed (or its record expired).
func (s *Store) EventRecord(ctx context.Context, shop, key string) (_ string, err error) {
	ctx, c := startCall(ctx, "redis event record", "GET")
	defer c.end(&err)
	rec, err := s.rdb.Get(ctx, s.eventKey(shop, key)).Result()
	err = unavailable(err)
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("orderstate: reading event record %s of shop %s: %w", key, shop, err)
	}
	return rec, nil
}

// Record is what the record of an event processed says of an event being handled under the same
// identity (source and id).
type Record int

const (
	// NotRecorded: no event of this identity was processed (or its record expired).
	NotRecorded Record = iota
	// RecordedSame: this event was processed already; the one being handled is a copy.
	RecordedSame
	// RecordedOther: the identity was recorded for an event of other content (another order, type
	// or data): the importer reused the id, and the event being handled is not a copy.
	RecordedOther
)

// Recorded says what record, an event record's content ("" for none), says of an event whose
// digest is digest. A digest is "<version>:<value>" (the handlers compute it); a record of another
// version, or of none (legacyRecord: written before records held digests, or for an event handled
// without a digest), says only that the identity was processed, and is taken for the same event,
// as records were before digests: an event is never refused on a record it cannot read.
func Recorded(record, digest string) Record {
	switch {
	case record == "":
		return NotRecorded
	case record == digest || digest == "":
		return RecordedSame
	}
	v, _, ok := strings.Cut(digest, ":")
	if !ok || !strings.HasPrefix(record, v+":") {
		return RecordedSame
	}
	return RecordedOther
}

// ForgetEvent removes the record of an event of shop processed (a parked event whose dead letter
// was written), so that the event is applied if it comes again.
func (s *Store) ForgetEvent(ctx context.Context, shop, key string) (err error) {
	ctx, c := startCall(ctx, "redis forget event", "DEL")
	defer c.end(&err)
	if err := unavailable(s.rdb.Del(ctx, s.eventKey(shop, key)).Err()); err != nil {
		return fmt.Errorf("orderstate: removing event record %s of shop %s: %w", key, shop, err)
	}
	return nil
}

// PendingCount returns how many orders of shops are under review, across all workers: one SCARD
// per shop, sent together (on Redis Cluster, to the nodes that hold them).
func (s *Store) PendingCount(ctx context.Context, shops ...string) (int64, error) {
	cmds := make([]*redis.IntCmd, len(shops))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, shop := range shops {
			cmds[i] = p.SCard(ctx, s.pendingKey(shop))
		}
		return nil
	})
	if err = unavailable(err); err != nil {
		return 0, fmt.Errorf("orderstate: counting orders under review: %w", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// UnderReview is what Redis holds of the orders under review (status pending: 審査中 or 保留) of
// some shops.
type UnderReview struct {
	Count int64
	// Oldest is the earliest time ordered (the order's ordered_at, or when the worker first
	// wrote it if it had none) of those orders; zero when there are none.
	Oldest time.Time
}

// UnderReview counts the orders of shops under review and finds the earliest time one of them
// was ordered, across all workers, in one round trip that writes nothing: per shop, the SCARD of
// its set of orders under review, and the first entry of each of the order index's cells of
// pending orders (by time ordered: a cell's entries are sorted by it). On Redis Cluster the
// commands go to the nodes that hold each shop.
//
// The time ordered is the index's only time that an order under review keeps until it is decided:
// its time changed moves when it goes from review to hold, gets a tracking number or a new
// amount. It is not when polling began (State.PollSince, in the state alone): an order registered
// days after it was ordered shows as under review since it was ordered.
func (s *Store) UnderReview(ctx context.Context, shops ...string) (UnderReview, error) {
	var pendingCells []int
	for _, b := range []Bucket{BucketReview, BucketHold} {
		for _, sh := range ShipmentStatuses {
			pendingCells = append(pendingCells, cellOf(b, sh))
		}
	}
	counts := make([]*redis.IntCmd, len(shops))
	var firsts []*redis.ZSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, shop := range shops {
			counts[i] = p.SCard(ctx, s.pendingKey(shop))
			ordered := s.indexKeys(shop)[1]
			for _, cell := range pendingCells {
				firsts = append(firsts, p.ZRangeByScoreWithScores(ctx, ordered, &redis.ZRangeBy{
					Min:   strconv.FormatInt(int64(cell)*cellSpan, 10),
					Max:   "(" + strconv.FormatInt(int64(cell+1)*cellSpan, 10),
					Count: 1,
				}))
			}
		}
		return nil
	})
	if err = unavailable(err); err != nil {
		return UnderReview{}, fmt.Errorf("orderstate: reading the orders under review: %w", err)
	}
	var out UnderReview
	for _, c := range counts {
		out.Count += c.Val()
	}
	for _, f := range firsts {
		for _, z := range f.Val() {
			if t := time.UnixMilli(int64(z.Score) % cellSpan); out.Oldest.IsZero() || t.Before(out.Oldest) {
				out.Oldest = t
			}
		}
	}
	return out, nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }
