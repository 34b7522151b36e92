package publisher

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/redact"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// order runs `order show SHOP ORDER`: the order's state as the worker holds it in Redis, and its
// history: every event handled and what it did. Neither holds personal data, except the outcomes
// waiting to be published and the bodies of parked events, which are counted, not shown.
func (a *App) order(ctx context.Context, args []string) error {
	const synopsis = "order show [flags] SHOP ORDER"
	switch {
	case len(args) > 0 && isHelp(args[0]):
		return a.help("Usage: publisher " + synopsis + "   (publisher order show -h lists the flags)\n")
	case len(args) == 0 || args[0] != "show":
		return usagef("want: %s (order show -h lists the flags)", synopsis)
	}
	fs := a.flagSet("order show")
	redisURL := fs.String("redis-url", a.env("REDIS_URL", "redis://127.0.0.1:6379"), "Redis `URL` the worker uses [$ATODENE_PUBLISHER_REDIS_URL]")
	fs.Lookup("redis-url").DefValue = redactURL(*redisURL) // -h must not print a credential
	var files transport.RedisFiles
	fs.StringVar(&files.CA, "redis-ca", a.env("REDIS_CA", ""), "PEM `file` of the CAs trusted for Redis TLS (rediss://); empty uses the system's [$ATODENE_PUBLISHER_REDIS_CA]")
	fs.StringVar(&files.Cert, "redis-cert", a.env("REDIS_CERT", ""), "PEM `file` of the client certificate for Redis TLS (rediss://) [$ATODENE_PUBLISHER_REDIS_CERT]")
	fs.StringVar(&files.Key, "redis-key", a.env("REDIS_KEY", ""), "PEM `file` of the private key of -redis-cert [$ATODENE_PUBLISHER_REDIS_KEY]")
	prefix := fs.String("redis-prefix", a.env("REDIS_PREFIX", "atodene:"), "the worker's Redis key `prefix` [$ATODENE_PUBLISHER_REDIS_PREFIX]")
	asJSON := fs.Bool("json", false, "print the state and the history as JSON")
	a.setUsage(fs, synopsis, `Shows an order's state as the worker holds it in Redis, then its history: every event handled for
the order, oldest first, with what it did. Personal data is left out.
`)
	rest, err := a.parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return usagef("order show needs SHOP and ORDER (got %d arguments)", len(rest))
	}
	rdb, err := connectRedis(*redisURL, files)
	if err != nil {
		return err
	}
	defer rdb.Close()
	shop, orderID := rest[0], rest[1]
	store := orderstate.New(rdb, *prefix, 0)
	defer store.Close()
	st, err := store.Get(ctx, shop, orderID)
	if err != nil {
		return err
	}
	history, err := store.History(ctx, shop, orderID)
	if err != nil {
		return err
	}
	if st.Version == 0 && len(history) == 0 {
		return fmt.Errorf("order %s of shop %s: the worker has no state for it", orderID, shop)
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

// connectRedis returns a client of the Redis at url (a redis:// or rediss:// URL, or host:port),
// with the TLS files of a rediss:// URL. A URL that does not parse, or files without rediss://,
// is a UsageError; a file that cannot be used is an error naming its flag and path.
func connectRedis(url string, files transport.RedisFiles) (*redis.Client, error) {
	if !strings.Contains(url, "://") {
		url = "redis://" + url // host:port, as the worker's embedded mode prints it
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, usagef("-redis-url: %v", redact.Err("-redis-url", url, err))
	}
	if opts.TLSConfig == nil && files != (transport.RedisFiles{}) {
		return nil, usagef("-redis-ca, -redis-cert and -redis-key need a rediss:// -redis-url: redis:// does not use TLS")
	}
	if err := files.Apply(opts); err != nil {
		return nil, err
	}
	return redis.NewClient(opts), nil
}

func printState(a *App, shop, orderID string, st orderstate.State, pending int) error {
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
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
		row("under review since", st.PollSince.Format(time.RFC3339))
	}
	for _, p := range st.Parked {
		row("waiting", fmt.Sprintf("%s %s (source %s) since %s, for %s", p.Type, p.ID, p.Source, p.Since.Format(time.RFC3339), p.Waits))
	}
	if st.Status == orderstate.StatusCancelled && !st.CancelledAt.IsZero() {
		row("cancelled at", st.CancelledAt.Format(time.RFC3339))
	}
	row("outcomes to publish", pending)
	row("version", st.Version)
	row("updated", st.UpdatedAt.Format(time.RFC3339))
	return tw.Flush()
}

// printHistory prints the order's history, oldest first, one event a line: when, what, from
// whom, what it did, ATODENE's answers and the outcomes.
func printHistory(a *App, history []orderstate.Entry) error {
	if len(history) == 0 {
		return nil
	}
	fmt.Fprintf(a.Stdout, "\nhistory (oldest first, at most %d):\n", orderstate.HistoryLimit)
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t→ %s\n", e.At.Format(time.RFC3339), event, detail, statusName(e.Status))
	}
	return tw.Flush()
}

func statusName(s orderstate.Status) string {
	if s == orderstate.StatusNone {
		return "none"
	}
	return string(s)
}
