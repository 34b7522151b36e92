package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/redisconn"
	"github.com/atodene-worker/atodene-worker/internal/termtable"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// orderUsage is the usage of the order commands as a group.
const orderUsage = `Usage: publisher order <command> [flags] SHOP ORDER

Commands:
  ls       a shop's orders from the order index, newest first, filtered and paged (-shop S)
  counts   how many orders of a shop each credit status holds (-shop S)
  export   a shop's credit results as CSV, every page, UTF-8 with a BOM or Shift_JIS (-shop S)
  reindex  file in the order index the states written before it existed ([-shop S])
  migrate-layout  move the keys a worker older than the Cluster-ready key layout wrote (once, when upgrading)
  show     the order's state and history, as the worker holds them in Redis
  history  the order's history: every event handled, as a table (times in JST) or JSON lines
  rerun    与信を実行: re-send the order's latest received data as a new order.created (-operator NAME)
  cancel   与信キャンセル: publish order.cancelled for the order (-operator NAME)
  recheck  与信結果確認: publish order.recheck_requested for an order under review (-operator NAME)
  resolve  settle an unknown order: publish order.resolve_requested (-operator NAME, -transaction-id ID or -not-registered)

publisher order <command> -h lists the flags of a command.
`

// orderCommands are the order commands: those that read the order index and the orders' states
// and histories in Redis, and the operator's actions, which publish an event for an order.
var orderCommands = group{name: "order", usage: orderUsage, subs: []sub{
	{"ls", nil, (*App).orderList}, {"counts", nil, (*App).orderCounts}, {"export", nil, (*App).orderExport}, {"reindex", nil, (*App).orderReindex},
	{"migrate-layout", nil, (*App).orderMigrateLayout},
	{"show", nil, (*App).orderShow}, {"history", nil, (*App).orderHistory}, {"rerun", nil, (*App).orderRerun},
	{"cancel", nil, (*App).orderCancel}, {"recheck", nil, (*App).orderRecheck}, {"resolve", nil, (*App).orderResolve},
}}

// redisOpts are the flags of a command that reads the worker's Redis.
type redisOpts struct {
	url, prefix string
	files       transport.RedisFiles
	retention   string // the worker's -retention, as given
}

// bindRedis adds the Redis flags (-redis-url, -redis-ca, -redis-cert, -redis-key, -redis-prefix)
// to fs.
func (a *App) bindRedis(fs *flag.FlagSet) *redisOpts {
	o := &redisOpts{}
	fs.StringVar(&o.url, "redis-url", a.env("REDIS_URL", "redis://127.0.0.1:6379"), "Redis `URL` the worker uses [$ATODENE_PUBLISHER_REDIS_URL]")
	fs.Lookup("redis-url").DefValue = redactURL(o.url) // -h must not print a credential
	fs.StringVar(&o.files.CA, "redis-ca", a.env("REDIS_CA", ""), "PEM `file` of the CAs trusted for Redis TLS (rediss://); empty uses the system's [$ATODENE_PUBLISHER_REDIS_CA]")
	fs.StringVar(&o.files.Cert, "redis-cert", a.env("REDIS_CERT", ""), "PEM `file` of the client certificate for Redis TLS (rediss://) [$ATODENE_PUBLISHER_REDIS_CERT]")
	fs.StringVar(&o.files.Key, "redis-key", a.env("REDIS_KEY", ""), "PEM `file` of the private key of -redis-cert [$ATODENE_PUBLISHER_REDIS_KEY]")
	fs.StringVar(&o.prefix, "redis-prefix", a.env("REDIS_PREFIX", "atodene:"), "the worker's Redis key `prefix` [$ATODENE_PUBLISHER_REDIS_PREFIX]")
	fs.StringVar(&o.retention, "retention", a.env("RETENTION", "9600h"), "the worker's -retention (a `duration`): orders unchanged for longer are left out of lists, counts and exports [$ATODENE_PUBLISHER_RETENTION]")
	return o
}

// layoutCheckTimeout bounds the check of the key layout when a command opens the store: one GET,
// or, on a Redis that never had a worker of this version, one scan of the prefix's keys.
const layoutCheckTimeout = time.Minute

// store opens the worker's order state store, after checking that it can read its key layout;
// close releases it and its client.
func (o *redisOpts) store() (store *orderstate.Store, close func(), err error) {
	if store, close, err = o.open(); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), layoutCheckTimeout)
	defer cancel()
	if err := store.CheckLayout(ctx, false); err != nil {
		close()
		if errors.Is(err, orderstate.ErrUnavailable) {
			return nil, nil, fmt.Errorf("%w; is the worker's Redis at %s? Set -redis-url or ATODENE_PUBLISHER_REDIS_URL", err, redactURL(o.url))
		}
		return nil, nil, err
	}
	return store, close, nil
}

// open opens the worker's order state store; close releases it and its client.
func (o *redisOpts) open() (store *orderstate.Store, close func(), err error) {
	retention, err := time.ParseDuration(o.retention)
	if err != nil || retention <= 0 {
		return nil, nil, usagef("-retention %q: want a positive duration such as 9600h, the worker's -retention", o.retention)
	}
	rdb, err := connectRedis(o.url, o.files)
	if err != nil {
		return nil, nil, err
	}
	store = orderstate.NewStore(rdb, orderstate.Config{Prefix: o.prefix, Retention: retention})
	return store, func() { store.Close(); rdb.Close() }, nil
}

// anOrder is the order an order command is about (its SHOP ORDER arguments), with the worker's
// order state store, which close releases.
type anOrder struct {
	shop, order string
	store       *orderstate.Store
	close       func()
}

// openOrder parses the flags and the SHOP ORDER arguments of an order command (fs named after
// it), runs check (nil: none) on what the flags hold, and opens the worker's order state store of
// the Redis flags ro. The caller closes it. Mistakes are UsageErrors.
func (a *App) openOrder(fs *flag.FlagSet, ro *redisOpts, args []string, check func() error) (anOrder, error) {
	name := fs.Name()
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return anOrder{}, err
	}
	if len(rest) != 2 {
		return anOrder{}, usagef("%s needs SHOP and ORDER (got %d arguments)", name, len(rest))
	}
	if !events.ValidShopID(rest[0]) {
		return anOrder{}, usagef("%s: %q is not a shop ID (1-32 of A-Z, a-z, 0-9, _ and -)", name, rest[0])
	}
	if check != nil {
		if err := check(); err != nil {
			return anOrder{}, err
		}
	}
	store, closeStore, err := ro.store()
	if err != nil {
		return anOrder{}, err
	}
	return anOrder{shop: rest[0], order: rest[1], store: store, close: closeStore}, nil
}

// orderShow runs `order show SHOP ORDER`: the order's state as the worker holds it in Redis, and
// its history: every event handled and what it did. Neither holds personal data, except the
// outcomes waiting to be published and the bodies of parked events, which are counted, not shown.
func (a *App) orderShow(ctx context.Context, args []string) error {
	fs := a.flagSet("order show")
	ro := a.bindRedis(fs)
	asJSON := fs.Bool("json", false, "print the state and the history as JSON")
	a.setUsage(fs, "order show [flags] SHOP ORDER", `Shows an order's state as the worker holds it in Redis, then its history: every event handled for
the order, oldest first, with what it did. Personal data is left out.
`)
	o, err := a.openOrder(fs, ro, args, nil)
	if err != nil {
		return err
	}
	defer o.close()
	shop, orderID := o.shop, o.order
	st, err := o.store.Get(ctx, shop, orderID)
	if err != nil {
		return err
	}
	history, err := o.store.History(ctx, shop, orderID)
	if err != nil {
		return err
	}
	if st.Version == 0 && len(history) == 0 {
		// Name the Redis asked: a publisher left on its default asks another Redis than the worker's.
		return fmt.Errorf("order %s of shop %s: the worker has no state for it in the Redis at %s (key prefix %q); is it the worker's? Set -redis-url or ATODENE_PUBLISHER_REDIS_URL",
			orderID, shop, redactURL(ro.url), ro.prefix)
	}
	// Outcomes not yet published may hold personal data (invoice print data), and so may the
	// bodies of parked events: show neither.
	pending := len(st.Outbox)
	st.Outbox = nil
	for i := range st.Parked {
		st.Parked[i].Body = nil
	}
	if *asJSON {
		enc := json.NewEncoder(a.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			orderstate.State
			OutcomesToPublish int                `json:"outcomes_to_publish"`
			History           []orderstate.Entry `json:"history"`
		}{st, pending, history})
	}
	if st.Version == 0 {
		fmt.Fprintf(a.Stdout, "order %s of shop %s: no credit state (only events that changed nothing, or were dead-lettered)\n", orderID, shop)
	} else if err := printState(a, shop, orderID, st, pending); err != nil {
		return err
	}
	return printHistory(a, history)
}

// connectRedis returns a client of the Redis at url (as the worker's -redis-url takes it:
// redisconn.Open, or host:port), with the TLS files of a rediss:// URL. A URL that does not parse,
// or files without TLS, is a UsageError; a file that cannot be used is an error naming its flag
// and path.
func connectRedis(url string, files transport.RedisFiles) (redis.UniversalClient, error) {
	if !strings.Contains(url, "://") {
		url = "redis://" + url // host:port, as the worker's embedded mode prints it
	}
	rdb, err := redisconn.Open("-redis-url", url, files)
	if err != nil && (strings.HasPrefix(err.Error(), "-redis-url") || errors.Is(err, transport.ErrFilesNeedTLS)) {
		return nil, usagef("%v", err)
	}
	return rdb, err
}

func printState(a *App, shop, orderID string, st orderstate.State, pending int) error {
	// Every value is the worker's record of outside data (ids, sources, ATODENE's messages): the
	// table shows control characters in them escaped.
	var tb termtable.Table
	row := func(k string, v any) { tb.Row(k, fmt.Sprint(v)) }
	row("shop", shop)
	row("order", orderID)
	row("credit", st.Status)
	if st.Review != "" {
		row("review", st.Review)
	}
	row("transaction", st.TransactionID)
	row("fee", st.Fee)
	row("billed amount", st.BilledAmount)
	row("invoice", map[string]string{"2": "separate (別送)", "3": "enclosed (同梱)"}[st.Service])
	for _, r := range st.Reasons {
		row("reason", r)
	}
	for _, e := range st.Errors {
		row("error", fmt.Sprintf("%s %s %s", e.Point, e.Code, e.Message))
	}
	if sh := st.Shipment; sh != nil {
		state := "queued until the credit is OK"
		if sh.Reported {
			state = "reported (" + sh.Report + ")"
		}
		row("shipment", fmt.Sprintf("carrier %s, tracking %s, %s", sh.CarrierCode, sh.TrackingNumber, state))
	}
	if st.Status == orderstate.StatusPending {
		row("under review since", jstTime(st.PollSince))
	}
	for _, p := range st.Parked {
		row("waiting", fmt.Sprintf("%s %s (source %s) since %s, for %s", p.Type, p.ID, p.Source, jstTime(p.Since), p.Waits))
	}
	if st.Status == orderstate.StatusCancelled && !st.CancelledAt.IsZero() {
		row("cancelled at", jstTime(st.CancelledAt))
	}
	row("outcomes to publish", pending)
	row("version", st.Version)
	row("updated", jstTime(st.UpdatedAt))
	return tb.Write(a.Stdout)
}

// printHistory prints the order's history, oldest first, one event a line: when, what, from
// whom, what it did, ATODENE's answers and the outcomes.
func printHistory(a *App, history []orderstate.Entry) error {
	if len(history) == 0 {
		return nil
	}
	fmt.Fprintf(a.Stdout, "\nhistory (oldest first, at most %d):\n", orderstate.HistoryLimit)
	var tb termtable.Table // the details hold Japanese text (審査中, 保留)
	for _, e := range history {
		event := e.Type
		if e.ID != "" {
			event += " " + e.ID
		}
		if e.Source != "" {
			event += " from " + e.Source
		}
		if e.Operator != "" {
			event += " by " + e.Operator
		}
		detail := e.Did
		if len(e.Calls) > 0 {
			detail += "; ATODENE: " + strings.Join(e.Calls, ", ")
		}
		if len(e.Outcomes) > 0 {
			detail += "; published " + strings.Join(e.Outcomes, ", ")
		}
		tb.Row(jstTime(e.At), event, detail, "→ "+statusName(e.Status))
	}
	return tb.Write(a.Stdout)
}

// jstTime writes t in RFC 3339 in JST, the operators' time (as `order history` and `order ls` show
// times), with its offset, so that it is not taken for UTC: 2026-11-30T06:13:48+09:00.
func jstTime(t time.Time) string { return t.In(jst.Zone).Format(time.RFC3339) }

func statusName(s orderstate.Status) string {
	if s == orderstate.StatusNone {
		return "none"
	}
	return string(s)
}
