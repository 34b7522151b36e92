package publisher

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// order runs `order show SHOP ORDER`: the order's state as the worker holds it in Redis. The
// state holds no personal data, so all of it can be shown.
func (a *App) order(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "show" {
		return usagef("want: order show [flags] SHOP ORDER")
	}
	fs := a.flagSet("order show")
	redisURL := fs.String("redis-url", a.env("REDIS_URL", "redis://127.0.0.1:6379"), "Redis `URL` the worker uses [$ATODENE_PUBLISHER_REDIS_URL]")
	prefix := fs.String("redis-prefix", a.env("REDIS_PREFIX", "atodene:"), "the worker's Redis key `prefix` [$ATODENE_PUBLISHER_REDIS_PREFIX]")
	asJSON := fs.Bool("json", false, "print the state as JSON")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("order show needs SHOP and ORDER")
	}
	opts, err := redis.ParseURL(*redisURL)
	if err != nil {
		return usagef("-redis-url: %v", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	shop, orderID := fs.Arg(0), fs.Arg(1)
	st, err := orderstate.New(rdb, *prefix, 0).Get(ctx, shop, orderID)
	if err != nil {
		return err
	}
	if st.Version == 0 {
		return fmt.Errorf("order %s of shop %s: the worker has no state for it", orderID, shop)
	}
	if *asJSON {
		// Outcomes not yet published may hold personal data (invoice print data): count them only.
		pending := len(st.Outbox)
		st.Outbox = nil
		enc := json.NewEncoder(a.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			orderstate.State
			OutcomesToPublish int `json:"outcomes_to_publish"`
		}{st, pending})
	}
	return printState(a, shop, orderID, st)
}

func printState(a *App, shop, orderID string, st orderstate.State) error {
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
	row("outcomes to publish", len(st.Outbox))
	row("version", st.Version)
	row("updated", st.UpdatedAt.Format(time.RFC3339))
	return tw.Flush()
}
