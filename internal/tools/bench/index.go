package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/redisadmin"
)

// IndexResult is the order-index scenario: the listing and counting of one shop's orders with
// many of them in the index.
type IndexResult struct {
	Orders int    `json:"orders"`
	Shop   string `json:"shop"`
	// LoadSeconds is the time orderstate.Store.LoadIndex took to write the entries, pipelined,
	// in batches of indexBatch.
	LoadSeconds float64 `json:"load_seconds"`
	LoadPerSec  float64 `json:"load_per_second"`
	// RedisKeysMB is MEMORY USAGE of the shop's four index keys (Redis samples the big ones);
	// RedisGrowthMB is used_memory after the load minus before (the whole shared server).
	RedisKeysMB   float64            `json:"redis_keys_mb"`
	RedisKeyMB    map[string]float64 `json:"redis_key_mb"` // each key's, by its last part
	RedisGrowthMB float64            `json:"redis_used_memory_growth_mb"`
	BytesPerOrder float64            `json:"bytes_per_order"`
	// Queries are the kinds of listing, each called Calls times with varied parameters, and the
	// counts per status.
	Queries []IndexQuery `json:"queries"`
	// Console are the console's order list pages of the same index, rendered server-side
	// (consolePages), Calls of each kind.
	Console []IndexQuery `json:"console"`
	// ConsoleBulk is the console's bulk 与信キャンセル of 500 orders, until every event was
	// acknowledged (consoleBulk).
	ConsoleBulk Dist `json:"console_bulk_500"`
}

// IndexQuery is one kind of call: its latency as the client saw it, the orders a page held, the
// index entries it looked at, and how many pages ended early (fewer orders than asked, and a
// cursor to go on: the listing's budget spent).
type IndexQuery struct {
	Name     string  `json:"name"`
	Calls    int     `json:"calls"`
	Latency  Dist    `json:"latency"`
	Orders   float64 `json:"mean_orders"`
	Examined float64 `json:"mean_examined"`
	Partial  int     `json:"partial_pages"`
}

const (
	indexShop  = "bench-index"
	indexBatch = 5000
	indexPage  = 50
	indexDays  = 390 // orders ordered over the last 390 days, within the default retention
)

// indexPlan is the generated index: what the queries pick their parameters from.
type indexPlan struct {
	now    time.Time
	days   []string // the days orders were ordered on, yyyymmdd, the prefix of their ids
	sample []string // some order ids
}

// index loads many orders into one shop's index, the worst case of the per-shop layout, and
// measures listings and counts against it.
func (r *runner) index(ctx context.Context) error {
	n, calls := r.settings.IndexOrders, r.settings.IndexCalls
	fmt.Fprintf(r.out, "6. Order index: %s orders of one shop loaded into the index, then pages of %d and counts per status, %d calls of each\n",
		thousands(int64(n)), indexPage, calls)
	prefix := r.host.Prefix + "index:"
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		_ = redisadmin.DeleteKeys(dctx, r.rdb, prefix) // UNLINK: freed in the background, in batches
		cancel()
	}()
	store := orderstate.NewStore(r.rdb, orderstate.Config{Prefix: prefix})
	defer store.Close()
	res := &IndexResult{Orders: n, Shop: indexShop}
	before := r.redisUsedMB(ctx)
	plan, load, err := loadIndex(ctx, store, n)
	if err != nil {
		return err
	}
	res.LoadSeconds, res.LoadPerSec = load.Seconds(), Rate(n, load)
	res.RedisGrowthMB = r.redisUsedMB(ctx) - before
	for _, suffix := range []string{"changed", "ordered", "id", "summary"} {
		b, _ := r.rdb.MemoryUsage(ctx, prefix+"index:{"+indexShop+"}:"+suffix).Result()
		if res.RedisKeyMB == nil {
			res.RedisKeyMB = map[string]float64{}
		}
		res.RedisKeyMB[suffix] = float64(b) / (1 << 20)
		res.RedisKeysMB += float64(b) / (1 << 20)
	}
	res.BytesPerOrder = res.RedisKeysMB * (1 << 20) / float64(n)

	rng := rand.New(rand.NewPCG(16, 1))
	day := func() (string, time.Time) {
		d := plan.days[rng.IntN(len(plan.days))]
		t, _ := time.ParseInLocation("20060102", d, time.UTC)
		return d, t
	}
	kinds := []struct {
		name   string
		filter func() orderstate.Filter
	}{
		{"status ok, by time changed", func() orderstate.Filter { return orderstate.Filter{Status: orderstate.StatusOK} }},
		{"status ok, shipment reported", func() orderstate.Filter {
			return orderstate.Filter{Status: orderstate.StatusOK, Shipment: orderstate.ShipmentReported}
		}},
		{"pending on hold (1%)", func() orderstate.Filter {
			return orderstate.Filter{Status: orderstate.StatusPending, Hold: orderstate.HoldOnHold}
		}},
		{"unknown (0.05%)", func() orderstate.Filter { return orderstate.Filter{Status: orderstate.StatusUnknown} }},
		{"any status", func() orderstate.Filter { return orderstate.Filter{} }},
		{"ordered on a day, by time ordered", func() orderstate.Filter {
			_, t := day()
			return orderstate.Filter{OrderedFrom: t, OrderedTo: t.Add(24 * time.Hour), Sort: orderstate.SortOrdered}
		}},
		{"ordered on a day, NG, by time ordered", func() orderstate.Filter {
			_, t := day()
			return orderstate.Filter{Status: orderstate.StatusNG, OrderedFrom: t, OrderedTo: t.Add(24 * time.Hour), Sort: orderstate.SortOrdered}
		}},
		{"changed in a week, cancelled", func() orderstate.Filter {
			_, t := day()
			return orderstate.Filter{Status: orderstate.StatusCancelled, ChangedFrom: t, ChangedTo: t.Add(7 * 24 * time.Hour)}
		}},
		{"next page (cursor), status ok", nil}, // filled below: the page after a random one
		{"id prefix, one order", func() orderstate.Filter {
			return orderstate.Filter{OrderIDPrefix: plan.sample[rng.IntN(len(plan.sample))]}
		}},
		{"id prefix of a day (~" + thousands(int64(n/indexDays)) + " ids, gathers)", func() orderstate.Filter {
			d, _ := day()
			return orderstate.Filter{OrderIDPrefix: d}
		}},
		{"id prefix of a day, status ok (gathers)", func() orderstate.Filter {
			d, _ := day()
			return orderstate.Filter{OrderIDPrefix: d, Status: orderstate.StatusOK}
		}},
		{"id prefix of a month (walks)", func() orderstate.Filter {
			d, _ := day()
			return orderstate.Filter{OrderIDPrefix: d[:6]}
		}},
		{"ordered on a day, by time changed (gathers)", func() orderstate.Filter {
			_, t := day()
			return orderstate.Filter{OrderedFrom: t, OrderedTo: t.Add(24 * time.Hour)}
		}},
	}
	for _, k := range kinds {
		q := IndexQuery{Name: k.name, Calls: calls}
		lat := make([]time.Duration, 0, calls)
		for range calls {
			var f orderstate.Filter
			if k.filter == nil { // a cursor deep in the listing, taken from a page ordered on a random day
				for f.Cursor == "" { // a day at the start of the data has no next page: another
					_, t := day()
					p, err := store.ListOrders(ctx, orderstate.Filter{Shop: indexShop, Status: orderstate.StatusOK, ChangedTo: t, Limit: indexPage})
					if err != nil {
						return err
					}
					f = orderstate.Filter{Status: orderstate.StatusOK, ChangedTo: t, Cursor: p.Next} // the listing it was made for
				}
			} else {
				f = k.filter()
			}
			f.Shop, f.Limit = indexShop, indexPage
			start := time.Now()
			p, err := store.ListOrders(ctx, f)
			lat = append(lat, time.Since(start))
			if err != nil {
				return fmt.Errorf("%s: %w", k.name, err)
			}
			q.Orders += float64(len(p.Orders)) / float64(calls)
			q.Examined += float64(p.Examined) / float64(calls)
			if len(p.Orders) < indexPage && p.Next != "" {
				q.Partial++
			}
		}
		q.Latency = Summarize(lat)
		res.Queries = append(res.Queries, q)
	}
	q := IndexQuery{Name: "counts per status (CountOrders)", Calls: calls}
	lat := make([]time.Duration, 0, calls)
	for range calls {
		start := time.Now()
		counts, err := store.CountOrders(ctx, indexShop)
		lat = append(lat, time.Since(start))
		if err != nil {
			return err
		}
		total := int64(0)
		for _, c := range counts {
			total += c
		}
		q.Orders += float64(total) / float64(calls)
	}
	q.Latency = Summarize(lat)
	res.Queries = append(res.Queries, q)
	if res.Console, err = consolePages(ctx, store, plan, calls); err != nil {
		return fmt.Errorf("console pages: %w", err)
	}
	if res.ConsoleBulk, err = r.consoleBulk(ctx, store); err != nil {
		return fmt.Errorf("console bulk action: %w", err)
	}
	r.report.Index = res

	t := Table{Title: "Order index: " + thousands(int64(n)) + " orders of one shop", Columns: []string{"query", "p50 ms", "p99 ms", "max ms", "orders per page", "entries looked at", "pages ended early"}}
	for _, q := range res.Queries {
		t.Add(q.Name, num(q.Latency.P50), num(q.Latency.P99), num(q.Latency.Max), num(q.Orders), num(q.Examined), strconv.Itoa(q.Partial))
	}
	t.Notes = []string{
		fmt.Sprintf("loaded with orderstate.Store.LoadIndex (the scripts' layout, pipelined, %s per batch): %s s, %s orders/s",
			thousands(indexBatch), num(res.LoadSeconds), num(res.LoadPerSec)),
		fmt.Sprintf("Redis: the index keys %s MB (MEMORY USAGE, %s bytes per order: by time changed %s, by time ordered %s, ids %s, summaries %s MB); used_memory grew %s MB",
			num(res.RedisKeysMB), num(res.BytesPerOrder), num(res.RedisKeyMB["changed"]), num(res.RedisKeyMB["ordered"]), num(res.RedisKeyMB["id"]),
			num(res.RedisKeyMB["summary"]), num(res.RedisGrowthMB)),
		"for the counts, \"orders per page\" is the orders counted",
		"target: a page of 50 and the counts per status ≤ 20 ms at p99 with 1,000,000 orders",
	}
	if err := t.Render(r.out); err != nil {
		return err
	}
	c := Table{Title: "Console: the order list (GET /orders) rendered server-side, " + thousands(int64(n)) + " orders in the index",
		Columns: []string{"page", "p50 ms", "p99 ms", "max ms", "orders shown"}}
	for _, q := range res.Console {
		c.Add(q.Name, num(q.Latency.P50), num(q.Latency.P99), num(q.Latency.Max), num(q.Orders))
	}
	c.Notes = []string{
		fmt.Sprintf("timed around the console's handler: the listing, the counts per status, the page's states (%s orders have one, the newest), the template", thousands(consoleStates)),
		"target: ≤ 100 ms at p99 with 1,000,000 orders",
		fmt.Sprintf("bulk 与信キャンセル of %d orders (the console's Actions.Do: states read, events published and acknowledged), %d rounds: p50 %s ms, max %s ms; target ≤ 2,000 ms",
			bulkOrders, bulkRounds, num(res.ConsoleBulk.P50), num(res.ConsoleBulk.Max)),
	}
	return c.Render(r.out)
}

// loadIndex writes n generated orders into the shop's index and returns what the queries need
// and how long the load took.
func loadIndex(ctx context.Context, store *orderstate.Store, n int) (indexPlan, time.Duration, error) {
	rng := rand.New(rand.NewPCG(16, 0))
	plan := indexPlan{now: time.Now()}
	first := plan.now.Add(-indexDays * 24 * time.Hour)
	seen := map[string]bool{}
	batch := make([]orderstate.Summary, 0, indexBatch)
	var took time.Duration
	for i := range n {
		ordered := first.Add(time.Duration(rng.Int64N(int64(indexDays * 24 * time.Hour))))
		changed := ordered.Add(time.Duration(rng.Int64N(int64(72 * time.Hour))))
		if rng.IntN(50) == 0 || changed.After(plan.now) {
			changed = plan.now.Add(-time.Duration(rng.Int64N(int64(24 * time.Hour))))
		}
		day := ordered.UTC().Format("20060102")
		if !seen[day] {
			seen[day] = true
			plan.days = append(plan.days, day)
		}
		o := orderstate.Summary{Shop: indexShop, OrderID: day + "-" + fmt.Sprintf("%07d", i), OrderedAt: ordered, ChangedAt: changed,
			TransactionID: strconv.Itoa(10000000000 + i), Fee: 330, BilledAmount: int64(1000 + rng.IntN(50000)), Shipment: orderstate.ShipmentNone}
		switch p := rng.IntN(10000); {
		case p < 20:
			o.Status = orderstate.StatusRegistering
		case p < 25:
			o.Status = orderstate.StatusUnknown
		case p < 75:
			o.Status = orderstate.StatusNone
		case p < 675:
			o.Status = orderstate.StatusNG
		case p < 975:
			o.Status = orderstate.StatusPending
			if rng.IntN(10) == 0 {
				o.Shipment = orderstate.ShipmentQueued
			}
		case p < 1075:
			o.Status, o.Review = orderstate.StatusPending, "hold"
		case p < 2075:
			o.Status = orderstate.StatusCancelled
		case p < 2275:
			o.Status = orderstate.StatusInvalid
		default:
			o.Status, o.Shipment = orderstate.StatusOK, orderstate.ShipmentReported
			switch q := rng.IntN(100); {
			case q < 2:
				o.Shipment = orderstate.ShipmentRefused
			case q < 20:
				o.Shipment = orderstate.ShipmentNone
			}
		}
		if i%(n/100+1) == 0 {
			plan.sample = append(plan.sample, o.OrderID)
		}
		batch = append(batch, o)
		if len(batch) == cap(batch) || i == n-1 {
			start := time.Now()
			if err := store.LoadIndex(ctx, batch); err != nil {
				return plan, took, err
			}
			took += time.Since(start)
			batch = batch[:0]
		}
	}
	return plan, took, nil
}
