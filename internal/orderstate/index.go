package orderstate

import (
	"context"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The order index (docs/architecture.md#the-order-index): per shop, the orders filed by credit
// status and shipment status (their cell), each sorted by when it last changed and by when it was
// ordered, with a summary of each (no personal data). The scripts that write a state write its
// index entry in the same atomic step (index.lua), so the index is never behind or ahead of the
// states. An order leaves the index when its state expires, one retention after it last changed.

// Bucket is the credit status an order is listed and counted under: its Status, with pending
// split into under review and on hold.
type Bucket string

// The buckets, in the order of their cells.
const (
	BucketNone        Bucket = "none" // a state, but never registered (an event is parked for it)
	BucketRegistering Bucket = "registering"
	BucketOK          Bucket = "ok"
	BucketNG          Bucket = "ng"
	BucketReview      Bucket = "review" // pending, under review (審査中)
	BucketHold        Bucket = "hold"   // pending, on hold (保留)
	BucketCancelled   Bucket = "cancelled"
	BucketInvalid     Bucket = "invalid"
	BucketUnknown     Bucket = "unknown"
)

// Buckets lists every bucket, in the order of their cells.
var Buckets = []Bucket{BucketNone, BucketRegistering, BucketOK, BucketNG, BucketReview, BucketHold, BucketCancelled, BucketInvalid, BucketUnknown}

// BucketOf returns the bucket of a status and review state. A status this code does not know is
// filed as unknown: an operator must look.
func BucketOf(status Status, review string) Bucket {
	switch status {
	case StatusNone:
		return BucketNone
	case StatusRegistering:
		return BucketRegistering
	case StatusOK:
		return BucketOK
	case StatusNG:
		return BucketNG
	case StatusPending:
		if review == "hold" {
			return BucketHold
		}
		return BucketReview
	case StatusCancelled:
		return BucketCancelled
	case StatusInvalid:
		return BucketInvalid
	}
	return BucketUnknown
}

// status returns the Status and review state of a bucket.
func (b Bucket) status() (Status, string) {
	switch b {
	case BucketNone:
		return StatusNone, ""
	case BucketReview:
		return StatusPending, ""
	case BucketHold:
		return StatusPending, "hold"
	}
	return Status(b), ""
}

// ShipmentStatus is where an order's tracking number stands.
type ShipmentStatus string

// The shipment statuses, in the order of their cells.
const (
	ShipmentNone     ShipmentStatus = "none"     // not reported: the order has no tracking number
	ShipmentQueued   ShipmentStatus = "queued"   // kept until the credit is OK
	ShipmentReported ShipmentStatus = "reported" // ATODENE holds it
	ShipmentRefused  ShipmentStatus = "refused"  // the last tracking number was refused (shipment.ng)
)

// ShipmentStatuses lists every shipment status, in the order of their cells.
var ShipmentStatuses = []ShipmentStatus{ShipmentNone, ShipmentQueued, ShipmentReported, ShipmentRefused}

// ShipmentStatus returns where the order's tracking number stands: queued while one waits for the
// credit, else refused if the last one was refused, else reported or none.
func (st State) ShipmentStatus() ShipmentStatus {
	switch {
	case st.Shipment != nil && !st.Shipment.Reported:
		return ShipmentQueued
	case st.ShipmentRefused:
		return ShipmentRefused
	case st.Shipment != nil:
		return ShipmentReported
	}
	return ShipmentNone
}

// cellSpan is the span of scores of one cell: a score is cell×cellSpan plus a time in Unix ms
// (index.lua's CELL). 2^42 ms reach the year 2109; 36 cells stay below 2^53, exact in a double.
const cellSpan = 1 << 42

// cells is how many cells there are: a bucket and a shipment status each.
var cells = len(Buckets) * len(ShipmentStatuses)

func cellOf(b Bucket, sh ShipmentStatus) int {
	bi, si := 0, 0
	for i, x := range Buckets {
		if x == b {
			bi = i
		}
	}
	for i, x := range ShipmentStatuses {
		if x == sh {
			si = i
		}
	}
	return bi*len(ShipmentStatuses) + si
}

func cellParts(cell int) (Bucket, ShipmentStatus) {
	return Buckets[cell/len(ShipmentStatuses)], ShipmentStatuses[cell%len(ShipmentStatuses)]
}

// indexMS is t in Unix ms, within a cell's span.
func indexMS(t time.Time) int64 { return min(max(t.UnixMilli(), 0), cellSpan-1) }

func indexScore(cell int, t time.Time) string {
	return strconv.FormatInt(int64(cell)*cellSpan+indexMS(t), 10)
}

// indexEntry is an order's entry in the index, as the scripts take it: its scores by time
// changed and by time ordered, and its summary.
type indexEntry struct {
	changed, ordered, summary string
}

// join renders the entry as State.Index: its scores and summary joined by "|".
func (e indexEntry) join() string { return e.changed + "|" + e.ordered + "|" + e.summary }

// indexEntryOf returns the index entry of a state as the store writes it (encode has set its
// OrderedAt and ChangedAt). Its scores and summary, joined by "|", are State.Index: write.lua
// joins the same from its arguments to compare it with the stored state's.
func indexEntryOf(st State) indexEntry {
	cell := indexCell(st)
	return indexEntry{changed: indexScore(cell, st.ChangedAt), ordered: indexScore(cell, st.OrderedAt),
		summary: encodeSummary(st.Fee, st.BilledAmount, st.TransactionID)}
}

// indexCell is the cell a state is filed in.
func indexCell(st State) int { return cellOf(BucketOf(st.Status, st.Review), st.ShipmentStatus()) }

// encodeSummary renders what the index keeps of an order besides its cell and times: "fee|billed
// amount|transaction ID" (the ID last: it is the provider's text).
func encodeSummary(fee, billed int64, tx string) string {
	b := make([]byte, 0, 40)
	b = strconv.AppendInt(b, fee, 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, billed, 10)
	b = append(b, '|')
	return string(append(b, tx...))
}

// decodeSummary reads encodeSummary.
func decodeSummary(s string) (fee, billed int64, tx string, ok bool) {
	f, rest, ok1 := strings.Cut(s, "|")
	b, tx, ok2 := strings.Cut(rest, "|")
	fee, err1 := strconv.ParseInt(f, 10, 64)
	billed, err2 := strconv.ParseInt(b, 10, 64)
	return fee, billed, tx, ok1 && ok2 && err1 == nil && err2 == nil
}

// ttl is how long a state written at now lives (ms): one retention after it last changed in the
// index's eyes, so that it expires with its index entry; at least 1 ms. A write refreshes an
// order's time changed once it is older than refreshAge, so a state written lives on for at least
// the rest of its retention or the event records' life, whichever is shorter.
func (s *Store) ttl(st State, now time.Time) int64 {
	return max(1, (s.retention - now.Sub(st.ChangedAt)).Milliseconds())
}

// refreshAge is the age of an order's time changed past which a write counts as a change: the
// retention less the life of an event record (Config.EventTTL, the longest redelivery horizon),
// at most half of it, so that an event redelivered after the write still finds the state.
func (s *Store) refreshAge() time.Duration {
	return s.retention - min(s.eventTTL, s.retention/2)
}

// indexKeys are a shop's index keys: by time changed, by time ordered, by id, the summaries. The
// shop is a hash tag, so that on Redis Cluster a shop's index is in one slot. The slice is the
// caller's own.
func (s *Store) indexKeys(shop string) []string {
	ix := s.keysOf(shop).index
	return ix[:]
}

// shopKeys are the keys of a shop's sets that every script of its orders names.
type shopKeys struct {
	pending, timers, held string
	index                 [4]string // indexKeys
}

// keyCache holds the shopKeys of the shops a store has written or read.
type keyCache struct {
	byShop sync.Map     // shop → *shopKeys
	shops  atomic.Int64 // the shops keysOf was asked for, up to maxKeyedShops and a little past
}

// maxKeyedShops bounds keyCache: a store serves a few shops, but a reader may be asked for any.
const maxKeyedShops = 1024

// keysOf returns the keys of a shop's sets, made once per shop (for the first maxKeyedShops shops
// seen; others each time): a write names six of them, and building them was a tenth of the
// store's allocations.
func (s *Store) keysOf(shop string) *shopKeys {
	if k, ok := s.keys.byShop.Load(shop); ok {
		return k.(*shopKeys)
	}
	base := s.prefix + "index:{" + shop + "}:"
	k := &shopKeys{pending: s.pendingKey(shop), timers: s.timersKey(shop), held: s.heldKey(shop),
		index: [4]string{base + "changed", base + "ordered", base + "id", base + "summary"}}
	if s.keys.shops.Add(1) > maxKeyedShops {
		return k
	}
	actual, _ := s.keys.byShop.LoadOrStore(shop, k)
	return actual.(*shopKeys)
}

// cutoff is the retention cutoff at now, in Unix ms: an order last written at or before it has
// expired.
func (s *Store) cutoff(now time.Time) int64 { return now.Add(-s.retention).UnixMilli() }

// Summary is what the index holds of an order: no personal data.
type Summary struct {
	Shop          string         `json:"shop"`
	OrderID       string         `json:"order_id"`
	Status        Status         `json:"status"`           // "" (StatusNone) for an order never registered
	Review        string         `json:"review,omitempty"` // "hold" for an order on hold
	Shipment      ShipmentStatus `json:"shipment"`
	TransactionID string         `json:"transaction_id,omitempty"`
	Fee           int64          `json:"fee"`
	BilledAmount  int64          `json:"billed_amount"`
	// OrderedAt is the order's ordered_at; for an order without one (known only by an event
	// parked for it, or written before states held it), when its state was first written after.
	OrderedAt time.Time `json:"ordered_at"`
	// ChangedAt is when what the index shows of it last changed (State.ChangedAt).
	ChangedAt time.Time `json:"changed_at"`
}

// Bucket is the bucket the order is listed under.
func (o Summary) Bucket() Bucket { return BucketOf(o.Status, o.Review) }

// SortKey is the time a listing is sorted by, newest first.
type SortKey string

// The sort keys.
const (
	SortChanged SortKey = "changed" // when what the index shows of the order last changed (the default)
	SortOrdered SortKey = "ordered" // when the order was taken
)

// StatusNoneFilter is the Filter.Status that selects the orders never registered (StatusNone,
// which as a filter means any status).
const StatusNoneFilter Status = "none"

// Hold selects one side of pending in a Filter.
type Hold string

// The holds.
const (
	HoldAny    Hold = ""       // under review and on hold
	HoldReview Hold = "review" // under review only
	HoldOnHold Hold = "hold"   // on hold only
)

// DefaultLimit and MaxLimit bound Filter.Limit.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Filter selects and orders a page of one shop's orders. Every field but Shop is optional; the
// conditions add up (and). Times are compared at millisecond precision; From is inclusive, To
// exclusive.
type Filter struct {
	Shop string
	// Status selects one credit status: StatusRegistering, StatusOK, StatusNG, StatusPending,
	// StatusCancelled, StatusInvalid, StatusUnknown, or StatusNoneFilter. "" selects all.
	Status Status
	// Hold, with Status StatusPending or "", selects the orders under review or on hold only.
	Hold Hold
	// Shipment selects one shipment status; "" selects all.
	Shipment ShipmentStatus
	// OrderedFrom and OrderedTo bound the time ordered; ChangedFrom and ChangedTo the time last
	// changed. Zero leaves a bound open.
	OrderedFrom, OrderedTo time.Time
	ChangedFrom, ChangedTo time.Time
	// OrderIDPrefix selects the orders whose id starts with it.
	OrderIDPrefix string
	// Sort is the time the page is sorted by, newest first. Default SortChanged.
	Sort SortKey
	// Limit is the most orders on the page. Default DefaultLimit; at most MaxLimit.
	Limit int
	// Cursor is Page.Next of the page before, "" for the first page. It holds the position in the
	// sort; the other fields should stay as they were.
	Cursor string
}

// Page is a page of a listing.
type Page struct {
	Orders []Summary `json:"orders"`
	// Next is the cursor of the next page (Filter.Cursor), or "" when there is none. A page may
	// hold fewer than Limit orders and still have a Next: a listing whose filters the index's
	// order does not answer directly (an id prefix matching many orders, a range of the time it is
	// not sorted by) looks at a bounded number of entries per call.
	Next string `json:"next,omitempty"`
	// Examined is how many index entries the call looked at.
	Examined int `json:"examined"`
}

// ErrFilter is the error of a Filter ListOrders cannot answer; errors.As finds a *FilterError
// naming the field.
var ErrFilter = errors.New("orderstate: invalid filter")

// FilterError is a field of a Filter that is not valid.
type FilterError struct {
	Field   string // shop, status, hold, shipment, ordered_from, ordered_to, changed_from, changed_to, order_id_prefix, sort, limit, cursor
	Problem string
}

func (e *FilterError) Error() string        { return "orderstate: filter: " + e.Field + ": " + e.Problem }
func (e *FilterError) Is(target error) bool { return target == ErrFilter }

// validID says whether id is 1 to max of [A-Za-z0-9_-]: the shop IDs and order IDs of the
// event contract (docs/events.md), and so safe inside a key's hash tag.
func validID(id string, maxLen int) bool {
	if id == "" || len(id) > maxLen {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// cursor is a position in a listing: the last order of a page, in the sort, and what the listing
// selects (selection), so that it is not taken by another listing, where it would start a page at
// a position that means nothing there.
type cursor struct {
	sort      SortKey
	ms        int64
	id        string
	selection string
}

func (c cursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte("2|" + string(c.sort) + "|" + strconv.FormatInt(c.ms, 10) + "|" + c.selection + "|" + c.id))
}

// decodeCursor reads a cursor; one of version 1 (before cursors named their selection) has none.
func decodeCursor(s string) (cursor, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, false
	}
	f := strings.SplitN(string(raw), "|", 5)
	if f[0] == "1" && len(f) >= 4 {
		f = []string{f[0], f[1], f[2], "", strings.Join(f[3:], "|")}
	}
	if len(f) != 5 || (f[0] != "1" && f[0] != "2") || (f[1] != string(SortChanged) && f[1] != string(SortOrdered)) || !validID(f[4], 50) {
		return cursor{}, false
	}
	ms, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || ms < 0 || ms >= cellSpan {
		return cursor{}, false
	}
	return cursor{SortKey(f[1]), ms, f[4], f[3]}, true
}

// selection names what f selects (its shop and filters, not its sort, page size or cursor): a
// 64-bit FNV-1a hash in base 36.
func selection(f Filter) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%s|%s|%s|%d|%d|%d|%d|%s", f.Shop, f.Status, f.Hold, f.Shipment, f.OrderedFrom.UnixMilli(), f.OrderedTo.UnixMilli(),
		f.ChangedFrom.UnixMilli(), f.ChangedTo.UnixMilli(), f.OrderIDPrefix)
	return strconv.FormatUint(h.Sum64(), 36)
}

// listQuery is a validated Filter, as list.lua takes it.
type listQuery struct {
	cells       []int
	lo, hi      int64 // the sort's time range, inclusive ms
	olo, ohi    int64 // the other time's range, inclusive ms; -1 for open
	prefix      string
	limit       int
	sort        SortKey
	after       *cursor
	emptyAnswer bool // the ranges exclude everything
}

// query validates f at now and returns what list.lua needs, or every fault joined.
func (s *Store) query(f Filter, now time.Time) (listQuery, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FilterError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	if !validID(f.Shop, 32) {
		bad("shop", "%q: want 1 to 32 of A-Z, a-z, 0-9, '_' and '-'", f.Shop)
	}
	var buckets []Bucket
	switch f.Status {
	case "":
		buckets = Buckets
	case StatusNoneFilter:
		buckets = []Bucket{BucketNone}
	case StatusPending:
		buckets = []Bucket{BucketReview, BucketHold}
	case StatusRegistering, StatusOK, StatusNG, StatusCancelled, StatusInvalid, StatusUnknown:
		buckets = []Bucket{Bucket(f.Status)}
	default:
		bad("status", "%q: want registering, ok, ng, pending, cancelled, invalid, unknown or none", f.Status)
	}
	switch f.Hold {
	case HoldAny:
	case HoldReview, HoldOnHold:
		if f.Status != "" && f.Status != StatusPending {
			bad("hold", "%q is for pending orders, not status %q", f.Hold, f.Status)
		}
		buckets = []Bucket{BucketReview}
		if f.Hold == HoldOnHold {
			buckets = []Bucket{BucketHold}
		}
	default:
		bad("hold", "%q: want review or hold", f.Hold)
	}
	ships := ShipmentStatuses
	switch f.Shipment {
	case "":
	case ShipmentNone, ShipmentQueued, ShipmentReported, ShipmentRefused:
		ships = []ShipmentStatus{f.Shipment}
	default:
		bad("shipment", "%q: want none, queued, reported or refused", f.Shipment)
	}
	q := listQuery{limit: f.Limit, sort: f.Sort, prefix: f.OrderIDPrefix, olo: -1, ohi: -1}
	switch q.sort {
	case "":
		q.sort = SortChanged
	case SortChanged, SortOrdered:
	default:
		bad("sort", "%q: want changed or ordered", f.Sort)
	}
	switch {
	case q.limit == 0:
		q.limit = DefaultLimit
	case q.limit < 0 || q.limit > MaxLimit:
		bad("limit", "%d: want 1 to %d", f.Limit, MaxLimit)
	}
	if f.OrderIDPrefix != "" && !validID(f.OrderIDPrefix, 50) {
		bad("order_id_prefix", "%q: want at most 50 of A-Z, a-z, 0-9, '_' and '-'", f.OrderIDPrefix)
	}
	// The time ranges, in inclusive ms; an order past the retention is hidden.
	rng := func(fromField, toField string, from, to time.Time) (int64, int64) {
		lo, hi := int64(0), int64(cellSpan-1)
		if !from.IsZero() {
			lo = max(lo, from.UnixMilli())
		}
		if !to.IsZero() {
			hi = min(hi, to.UnixMilli()-1)
			if !from.IsZero() && !to.After(from) {
				bad(toField, "the range ends (exclusive) at %s, not after it begins (%s) at %s: it holds no time", to.Format(time.RFC3339Nano), fromField, from.Format(time.RFC3339Nano))
			}
		}
		return lo, hi
	}
	olo, ohi := rng("ordered_from", "ordered_to", f.OrderedFrom, f.OrderedTo)
	clo, chi := rng("changed_from", "changed_to", f.ChangedFrom, f.ChangedTo)
	clo = max(clo, s.cutoff(now)+1)
	if f.Cursor != "" {
		c, ok := decodeCursor(f.Cursor)
		switch {
		case !ok:
			bad("cursor", "not a cursor of this listing")
		case c.sort != q.sort:
			bad("cursor", "made for the sort by %s, not %s", c.sort, q.sort)
		case c.selection != "" && c.selection != selection(f):
			bad("cursor", "made for a listing of other filters (shop, status, hold, shipment, times or order-id prefix): give the filters of its first page")
		default:
			q.after = &c
		}
	}
	if err := errors.Join(errs...); err != nil {
		return listQuery{}, err
	}
	for _, b := range buckets {
		for _, sh := range ships {
			q.cells = append(q.cells, cellOf(b, sh))
		}
	}
	if q.sort == SortChanged {
		q.lo, q.hi = clo, chi
		if !f.OrderedFrom.IsZero() || !f.OrderedTo.IsZero() {
			q.olo, q.ohi = olo, ohi
		}
	} else {
		q.lo, q.hi, q.olo, q.ohi = olo, ohi, clo, chi
	}
	q.emptyAnswer = q.lo > q.hi || (q.olo >= 0 && q.olo > q.ohi)
	return q, nil
}

// listBudget bounds the index entries one ListOrders call looks at when it walks the index, and
// so the time it holds Redis (a script runs alone).
const listBudget = 1000

// gatherLimit is the most orders a filter's id prefix, or its range of the time it does not sort
// by, may select for ListOrders to read them all and sort them (exact, in one call); beyond it the
// listing walks the index in its sort and checks each entry.
const gatherLimit = 3000

//go:embed list.lua
var listSource string
var listScript = redis.NewScript(listSource)

// ListOrders returns a page of a shop's orders that f selects, newest first in f.Sort. An order
// is listed once its state is written and leaves the listing when its state expires (one
// retention after it last changed). Paging with Next never repeats an order nor skips one that
// stays where it was in the sort; an order that changes meanwhile moves to the head of the sort by time
// changed (a new listing shows it there). An invalid f yields an error matching ErrFilter (a
// *FilterError per field); other errors are Redis's, or ctx's once it ends.
func (s *Store) ListOrders(ctx context.Context, f Filter) (Page, error) {
	q, err := s.query(f, s.now())
	if err != nil {
		return Page{}, err
	}
	page := Page{Orders: []Summary{}}
	if q.emptyAnswer {
		return page, nil
	}
	keys := s.indexKeys(f.Shop)
	if q.sort == SortOrdered {
		keys[0], keys[1] = keys[1], keys[0]
	}
	cellArg := make([]string, len(q.cells))
	for i, c := range q.cells {
		cellArg[i] = strconv.Itoa(c)
	}
	args := []any{strings.Join(cellArg, " "), q.lo, q.hi, "", "", "", "", q.prefix, q.limit, s.listBudget, s.gatherLimit}
	if q.after != nil {
		args[3], args[4] = q.after.ms, q.after.id
	}
	if q.olo >= 0 {
		args[5], args[6] = q.olo, q.ohi
	}
	res, err := listScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err = unavailable(err); err != nil {
		return Page{}, fmt.Errorf("orderstate: listing the orders of %s: %w", f.Shop, err)
	}
	if len(res) < 3 || (len(res)-3)%4 != 0 {
		return Page{}, fmt.Errorf("orderstate: listing the orders of %s: unexpected reply of %d values", f.Shop, len(res))
	}
	if ms, _ := res[0].(string); ms != "" {
		n, _ := strconv.ParseInt(ms, 10, 64)
		id, _ := res[1].(string)
		page.Next = cursor{q.sort, n, id, selection(f)}.encode()
	}
	page.Examined = int(toInt(res[2]))
	for i := 3; i+3 < len(res); i += 4 {
		id, _ := res[i].(string)
		changed, ordered := toInt(res[i+1]), toInt(res[i+2]) // the sort's score, the other's
		if q.sort == SortOrdered {
			changed, ordered = ordered, changed
		}
		o, err := summaryOf(f.Shop, id, changed, ordered, res[i+3])
		if err != nil {
			return Page{}, err
		}
		page.Orders = append(page.Orders, o)
	}
	return page, nil
}

// toInt reads an integer of a script's reply: Lua numbers come as integers, scores as strings.
func toInt(v any) int64 {
	switch v := v.(type) {
	case int64:
		return v
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
		f, _ := strconv.ParseFloat(v, 64)
		return int64(f)
	}
	return 0
}

// summaryOf reads an index entry: its score by time changed, by time ordered, its summary.
func summaryOf(shop, id string, changed, ordered int64, raw any) (Summary, error) {
	b, sh := cellParts(int(changed / cellSpan))
	o := Summary{Shop: shop, OrderID: id, Shipment: sh,
		ChangedAt: time.UnixMilli(changed % cellSpan).UTC(), OrderedAt: time.UnixMilli(ordered % cellSpan).UTC()}
	o.Status, o.Review = b.status()
	str, _ := raw.(string)
	fee, billed, tx, ok := decodeSummary(str)
	if !ok {
		return Summary{}, fmt.Errorf("orderstate: decoding the index entry of %s/%s: %q", shop, id, str)
	}
	o.Fee, o.BilledAmount, o.TransactionID = fee, billed, tx
	return o, nil
}

// ErrTooManyOrders is the error of AllOrders when f selects more orders than it may return.
var ErrTooManyOrders = errors.New("orderstate: the filter selects too many orders")

// exportMargin is how far before an export began AllOrders reads the orders written since: the
// clocks of the workers that wrote them and of the exporter may differ. exportPasses bounds those
// reads: a shop written to without pause never leaves one with nothing new.
const (
	exportMargin = time.Minute
	exportPasses = 3
)

// AllOrders returns every order f selects, each once, newest first in f.Sort (f.Cursor and f.Limit
// are not used), for an export. Paged by time changed, an order written while the pages are read
// would move past the cursor and be left out; so the pages are read by time ordered, and then the
// orders written since the export began are read again, by time changed, from the head (again, while
// a read finds something new, at most exportPasses times): an
// order's time ordered changes too, now and then (first written by an event parked for it, then
// registered with its ordered_at; an order.updated changing ordered_at). Each order is as it was
// when last read: one that no longer matches f when read again keeps the row it matched with. More than most orders (0: no bound) is ErrTooManyOrders; other errors are
// ListOrders'.
func (s *Store) AllOrders(ctx context.Context, f Filter, most int) ([]Summary, error) {
	began := s.now()
	var all []Summary
	at := map[string]int{} // order ID → index in all
	// read reads every page of f and reports whether it found an order, or a row of one, new to all.
	read := func(f Filter) (bool, error) {
		f.Limit, f.Cursor = MaxLimit, ""
		news := false
		for {
			page, err := s.ListOrders(ctx, f)
			if err != nil {
				return false, err
			}
			for _, o := range page.Orders {
				if i, ok := at[o.OrderID]; ok {
					news = news || all[i] != o
					all[i] = o
					continue
				}
				at[o.OrderID], news = len(all), true
				all = append(all, o)
			}
			if most > 0 && len(all) > most {
				return false, fmt.Errorf("%w: more than %d", ErrTooManyOrders, most)
			}
			if page.Next == "" {
				return news, nil
			}
			f.Cursor = page.Next
		}
	}
	byOrdered := f
	byOrdered.Sort = SortOrdered
	if _, err := read(byOrdered); err != nil {
		return nil, err
	}
	// An order written during a read, ahead of its cursor, is read by the next, until one finds
	// nothing new (a few passes at most, each over what was written during the one before).
	for range exportPasses {
		recent := f
		recent.Sort, recent.ChangedFrom = SortChanged, later(f.ChangedFrom, began.Add(-exportMargin))
		if !recent.ChangedTo.IsZero() && !recent.ChangedTo.After(recent.ChangedFrom) {
			break
		}
		began = s.now()
		news, err := read(recent)
		if err != nil {
			return nil, err
		}
		if !news {
			break
		}
	}
	slices.SortFunc(all, func(a, b Summary) int { // newest first, ties by ID as the index orders them
		ta, tb := a.ChangedAt, b.ChangedAt
		if f.Sort == SortOrdered {
			ta, tb = a.OrderedAt, b.OrderedAt
		}
		if c := tb.Compare(ta); c != 0 {
			return c
		}
		return strings.Compare(b.OrderID, a.OrderID)
	})
	return all, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// CountOrders returns how many orders of a shop each bucket holds (every bucket, 0 included),
// the orders past the retention left out. Each count is a ZCOUNT of a range of the index, whatever
// its size. Errors are Redis's, or ctx's once it ends.
func (s *Store) CountOrders(ctx context.Context, shop string) (map[Bucket]int64, error) {
	if !validID(shop, 32) {
		return nil, &FilterError{Field: "shop", Problem: fmt.Sprintf("%q: want 1 to 32 of A-Z, a-z, 0-9, '_' and '-'", shop)}
	}
	key, from := s.indexKeys(shop)[0], s.cutoff(s.now())+1
	pipe := s.rdb.Pipeline()
	counts := make([]*redis.IntCmd, cells)
	for c := range cells {
		base := int64(c) * cellSpan
		counts[c] = pipe.ZCount(ctx, key, strconv.FormatInt(base+from, 10), "("+strconv.FormatInt(base+cellSpan, 10))
	}
	if _, err := pipe.Exec(ctx); unavailable(err) != nil {
		return nil, fmt.Errorf("orderstate: counting the orders of %s: %w", shop, unavailable(err))
	}
	out := make(map[Bucket]int64, len(Buckets))
	for _, b := range Buckets {
		out[b] = 0
	}
	for c, n := range counts {
		b, _ := cellParts(c)
		out[b] += n.Val()
	}
	return out, nil
}

//go:embed trim.lua
var trimSource string
var trimScript = redis.NewScript(indexSource + trimSource)

// TrimIndex removes from a shop's index at most limit orders past the retention (their states
// have expired; listings hide them already) and returns how many it removed. The writes of a shop
// trim the cells they write to as they go; the worker's reconciliation calls TrimIndex for each
// shop, so that cells no write touches are trimmed too. Errors are Redis's, or ctx's once it ends.
func (s *Store) TrimIndex(ctx context.Context, shop string, limit int) (int, error) {
	if !validID(shop, 32) {
		return 0, &FilterError{Field: "shop", Problem: fmt.Sprintf("%q: want 1 to 32 of A-Z, a-z, 0-9, '_' and '-'", shop)}
	}
	n, err := trimScript.Run(ctx, s.rdb, s.indexKeys(shop), s.cutoff(s.now()), cells, limit).Int()
	if err = unavailable(err); err != nil {
		return 0, fmt.Errorf("orderstate: trimming the index of %s: %w", shop, err)
	}
	return n, nil
}

// LoadIndex writes index entries directly, pipelined, in the layout the state scripts write: for
// tools that need a large index without the states behind it (the benchmark). It writes no state;
// an entry whose order has no state lists an order that does not exist, so it is not for a
// worker's Redis. Entries are filed by their Status, Review, Shipment and times; OrderedAt zero
// takes ChangedAt. Errors are Redis's, or ctx's once it ends.
func (s *Store) LoadIndex(ctx context.Context, orders []Summary) error {
	type shopArgs struct {
		changed, ordered, ids []redis.Z
		sums                  []any
	}
	byShop := map[string]*shopArgs{}
	for _, o := range orders {
		if !validID(o.Shop, 32) || !validID(o.OrderID, 50) {
			return fmt.Errorf("orderstate: loading the index: %q/%q is not a shop and order id", o.Shop, o.OrderID)
		}
		a := byShop[o.Shop]
		if a == nil {
			a = &shopArgs{}
			byShop[o.Shop] = a
		}
		st := State{Status: o.Status, Review: o.Review, TransactionID: o.TransactionID, Fee: o.Fee, BilledAmount: o.BilledAmount,
			ChangedAt: o.ChangedAt, OrderedAt: o.OrderedAt}
		switch o.Shipment {
		case ShipmentQueued:
			st.Shipment = &Shipment{}
		case ShipmentReported:
			st.Shipment = &Shipment{Reported: true}
		case ShipmentRefused:
			st.ShipmentRefused = true
		}
		if st.OrderedAt.IsZero() {
			st.OrderedAt = st.ChangedAt
		}
		e := indexEntryOf(st)
		changed, _ := strconv.ParseFloat(e.changed, 64)
		ordered, _ := strconv.ParseFloat(e.ordered, 64)
		a.changed = append(a.changed, redis.Z{Score: changed, Member: o.OrderID})
		a.ordered = append(a.ordered, redis.Z{Score: ordered, Member: o.OrderID})
		a.ids = append(a.ids, redis.Z{Member: o.OrderID})
		a.sums = append(a.sums, o.OrderID, e.summary)
	}
	pipe := s.rdb.Pipeline()
	for shop, a := range byShop {
		keys := s.indexKeys(shop)
		pipe.ZAdd(ctx, keys[0], a.changed...)
		pipe.ZAdd(ctx, keys[1], a.ordered...)
		pipe.ZAdd(ctx, keys[2], a.ids...)
		pipe.HSet(ctx, keys[3], a.sums...)
	}
	if _, err := pipe.Exec(ctx); unavailable(err) != nil {
		return fmt.Errorf("orderstate: loading the index: %w", unavailable(err))
	}
	return nil
}
