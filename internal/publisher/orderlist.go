package publisher

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/ordercsv"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/termtable"
)

// The listing commands read the order index (docs/architecture.md#the-order-index): order ls,
// order counts and order export. The index holds no personal data, and neither do their outputs.

// listStatuses are the values of -status: the credit statuses, with pending's two sides.
const listStatuses = "ok, ng, pending, review, hold, cancelled, invalid, unknown, registering or none"

// statusFilter turns a -status value into the index's Status and Hold.
func statusFilter(v string) (orderstate.Status, orderstate.Hold, error) {
	switch v {
	case "":
		return "", orderstate.HoldAny, nil
	case "review":
		return orderstate.StatusPending, orderstate.HoldReview, nil
	case "hold":
		return orderstate.StatusPending, orderstate.HoldOnHold, nil
	case "none":
		return orderstate.StatusNoneFilter, orderstate.HoldAny, nil
	case "ok", "ng", "pending", "cancelled", "invalid", "unknown", "registering":
		return orderstate.Status(v), orderstate.HoldAny, nil
	}
	return "", "", usagef("-status %q: want %s", v, listStatuses)
}

// parseBound reads a time bound of a listing: RFC 3339, or a date (2026-11-30) in JST. A date
// given as an upper bound (end) takes the whole day: the bound is the next day's midnight, JST.
func parseBound(name, v string, end bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := events.ParseTime(v); err == nil { // RFC 3339, its lower-case t and z too
		return t, nil
	}
	d, err := time.ParseInLocation(time.DateOnly, v, jst.Zone)
	if err != nil {
		return time.Time{}, usagef("-%s %q: want a time in RFC 3339 (2026-11-30T09:00:00+09:00) or a date (2026-11-30, JST)", name, v)
	}
	if end {
		d = d.AddDate(0, 0, 1)
	}
	return d, nil
}

// filterFlags maps the fields of an orderstate.FilterError to the flags that set them.
var filterFlags = map[string]string{
	"shop": "-shop", "status": "-status", "hold": "-status", "shipment": "-shipment",
	"ordered_from": "-ordered-from", "ordered_to": "-ordered-to", "changed_from": "-changed-from", "changed_to": "-changed-to",
	"order_id_prefix": "-prefix", "sort": "-sort", "limit": "-limit", "cursor": "-cursor",
}

// filterUsage makes a filter the index refuses a usage error naming the flags; other errors pass.
func filterUsage(err error, rename map[string]string) error {
	if !errors.Is(err, orderstate.ErrFilter) {
		return err
	}
	flag := func(field string) string {
		if r, ok := rename[field]; ok {
			return r
		}
		if f, ok := filterFlags[field]; ok {
			return f
		}
		return field
	}
	var msgs []string
	var walk func(error)
	walk = func(e error) {
		var fe *orderstate.FilterError
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
		} else if errors.As(e, &fe) {
			problem := fe.Problem
			for field := range filterFlags { // a field the problem names in parentheses, such as (ordered_from)
				problem = strings.ReplaceAll(problem, "("+field+")", "("+flag(field)+")")
			}
			msgs = append(msgs, flag(fe.Field)+": "+problem)
		}
	}
	walk(err)
	if len(msgs) == 0 {
		return usagef("%v", err)
	}
	return usagef("%s", strings.Join(msgs, "; "))
}

// listRow is an order of a listing as -json prints it: the index's summary, with status "none"
// for an order never registered and the bucket it is counted under.
type listRow struct {
	orderstate.Summary
	Status string            `json:"status"`
	Bucket orderstate.Bucket `json:"bucket"`
}

func newListRow(o orderstate.Summary) listRow {
	return listRow{Summary: o, Status: statusName(o.Status), Bucket: o.Bucket()}
}

// statusReview is an order's status in a table: pending says which side.
func statusReview(o orderstate.Summary) string {
	switch o.Bucket() {
	case orderstate.BucketReview:
		return "pending (review)"
	case orderstate.BucketHold:
		return "pending (hold)"
	}
	return statusName(o.Status)
}

// orderList runs `order ls -shop S`: a page of the shop's orders from the order index.
func (a *App) orderList(ctx context.Context, args []string) error {
	fs := a.flagSet("order ls")
	ro := a.bindRedis(fs)
	shop := fs.String("shop", "", "shop `ID` (required)")
	status := fs.String("status", "", "credit `status`: "+listStatuses+" (review and hold: pending, under review or on hold)")
	shipment := fs.String("shipment", "", "shipment `status`: none, queued, reported or refused")
	orderedFrom := fs.String("ordered-from", "", "ordered at or after `time` (RFC 3339, or a date: its midnight, JST)")
	orderedTo := fs.String("ordered-to", "", "ordered before `time` (RFC 3339, or a date: that whole day, JST)")
	changedFrom := fs.String("changed-from", "", "last changed at or after `time` (RFC 3339, or a date, JST)")
	changedTo := fs.String("changed-to", "", "last changed before `time` (RFC 3339, or a date: that whole day, JST)")
	prefix := fs.String("prefix", "", "order IDs starting with `P`")
	sortBy := fs.String("sort", "", "sort newest first by `time`: changed or ordered (default ordered with only -ordered-from/-to, else changed)")
	limit := fs.Int("limit", orderstate.DefaultLimit, fmt.Sprintf("at most `N` orders on the page (1 to %d)", orderstate.MaxLimit))
	cursor := fs.String("cursor", "", "the `cursor` printed by the page before: the next page (keep the other flags)")
	asJSON := fs.Bool("json", false, `print JSON lines: one order a line, then {"next": CURSOR} ("" on the last page)`)
	asCSV := fs.Bool("csv", false, "print CSV (UTF-8, no BOM) with a header row; the next cursor goes to stderr")
	a.setUsage(fs, "order ls -shop S [flags]", `Lists a shop's orders from the worker's order index in Redis, newest first (by the time last changed,
or ordered): order ID, credit status (pending says under review or on hold), shipment, transaction ID,
fee, billed amount, and the times ordered and changed, in JST. A page holds at most -limit orders; the
line "next page: -cursor C" gives the next one (-json: a last line {"next": "C"}; -csv: on stderr). A
page may hold fewer orders and still have a next one. No personal data. A filter that is not valid is a
mistake in the command line (exit status 2).
`)
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("order ls takes no arguments (got %q): give the shop with -shop", rest[0])
	}
	if *asJSON && *asCSV {
		return usagef("-json and -csv: give one of them")
	}
	f := orderstate.Filter{Shop: *shop, Shipment: orderstate.ShipmentStatus(*shipment), OrderIDPrefix: *prefix,
		Sort: orderstate.SortKey(*sortBy), Limit: *limit, Cursor: *cursor}
	if *shop == "" {
		return usagef("order ls needs -shop S")
	}
	if *limit < 1 || *limit > orderstate.MaxLimit {
		return usagef("-limit %d: want 1 to %d", *limit, orderstate.MaxLimit)
	}
	if f.Status, f.Hold, err = statusFilter(*status); err != nil {
		return err
	}
	for _, b := range []struct {
		name, v string
		end     bool
		to      *time.Time
	}{{"ordered-from", *orderedFrom, false, &f.OrderedFrom}, {"ordered-to", *orderedTo, true, &f.OrderedTo},
		{"changed-from", *changedFrom, false, &f.ChangedFrom}, {"changed-to", *changedTo, true, &f.ChangedTo}} {
		if *b.to, err = parseBound(b.name, b.v, b.end); err != nil {
			return err
		}
	}
	if f.Sort == "" {
		f.Sort = orderstate.SortChanged
		if (*orderedFrom != "" || *orderedTo != "") && *changedFrom == "" && *changedTo == "" {
			f.Sort = orderstate.SortOrdered
		}
	}
	store, closeStore, err := ro.store()
	if err != nil {
		return err
	}
	defer closeStore()
	page, err := store.ListOrders(ctx, f)
	if err != nil {
		return filterUsage(err, nil)
	}
	if len(page.Orders) == 0 && f.Cursor == "" {
		// Name the Redis asked: a publisher left on its default lists another Redis than the
		// worker's, where no order is not a finding.
		fmt.Fprintf(a.Stderr, "no order of shop %s matches in the Redis at %s (key prefix %q); if the worker has some, is it the worker's? Set -redis-url or ATODENE_PUBLISHER_REDIS_URL\n",
			f.Shop, redactURL(ro.url), ro.prefix)
	}
	switch {
	case *asJSON:
		for _, o := range page.Orders {
			if err := a.printJSON(newListRow(o)); err != nil {
				return err
			}
		}
		return a.printJSON(struct {
			Next string `json:"next"`
		}{page.Next})
	case *asCSV:
		w := csv.NewWriter(a.Stdout)
		_ = w.Write(ordercsv.Header)
		for _, o := range page.Orders {
			_ = w.Write(ordercsv.Record(o))
		}
		if w.Flush(); w.Error() != nil {
			return w.Error()
		}
		if page.Next != "" {
			termtable.Fprintf(a.Stderr, "next page: -cursor %s\n", page.Next)
		}
		return nil
	}
	var tb termtable.Table // what Redis holds is shown, control characters escaped
	tb.Row("ORDER", "STATUS", "SHIPMENT", "TRANSACTION", "FEE", "BILLED", "ORDERED (JST)", "CHANGED (JST)")
	for _, o := range page.Orders {
		tb.Row(o.OrderID, statusReview(o), string(o.Shipment), orDash(o.TransactionID),
			strconv.FormatInt(o.Fee, 10), strconv.FormatInt(o.BilledAmount, 10), jst.Format(o.OrderedAt), jst.Format(o.ChangedAt))
	}
	if err := tb.Write(a.Stdout); err != nil {
		return err
	}
	if page.Next == "" {
		_, err = fmt.Fprintf(a.Stdout, "%d orders (last page)\n", len(page.Orders))
		return err
	}
	_, err = termtable.Fprintf(a.Stdout, "%d orders; next page: -cursor %s\n", len(page.Orders), page.Next)
	return err
}

// countsResult is what `order counts -json` prints.
type countsResult struct {
	Shop   string                      `json:"shop"`
	Counts map[orderstate.Bucket]int64 `json:"counts"`
	Total  int64                       `json:"total"`
}

// orderReindex runs `order reindex [-shop S]`: files in the order index the states written
// before it existed.
func (a *App) orderReindex(ctx context.Context, args []string) error {
	fs := a.flagSet("order reindex")
	ro := a.bindRedis(fs)
	shop := fs.String("shop", "", "shop `ID`; empty: every shop")
	a.setUsage(fs, "order reindex [-shop S] [flags]", `Files in the worker's order index the order states written before it existed (a worker older than the
index wrote them): until then order ls, counts and export leave them out, and they never expire. Each is
filed as changed when it was last written and expires one -retention after that. Safe to run while the
worker runs, and again: states already filed are left as they are.
`)
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("order reindex takes no arguments (got %q): give a shop with -shop", rest[0])
	}
	store, closeStore, err := ro.store()
	if err != nil {
		return err
	}
	defer closeStore()
	read, filed, err := store.Reindex(ctx, *shop)
	if err != nil {
		return fmt.Errorf("order reindex: after %d states read, %d filed: %w", read, filed, err)
	}
	fmt.Fprintf(a.Stdout, "%d order states read, %d filed in the index (the others were in it)\n", read, filed)
	return nil
}

// orderMigrateLayout runs `order migrate-layout`: orderstate.MigrateLayout.
func (a *App) orderMigrateLayout(ctx context.Context, args []string) error {
	fs := a.flagSet("order migrate-layout")
	ro := a.bindRedis(fs)
	a.setUsage(fs, "order migrate-layout [flags]", `Moves the worker's Redis keys written by a version before key layout 2 (docs/architecture.md#redis-keys),
which this version refuses to start on: the keys of each order and the sets of orders under review and of
timers get the shop as a hash tag, as Redis Cluster needs. Stop every worker first: it refuses while a
worker of the earlier version holds an order. Safe to run again; states a worker of this version wrote
meanwhile are kept and the older keys named.
`)
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("order migrate-layout takes no arguments (got %q)", rest[0])
	}
	store, closeStore, err := ro.open()
	if err != nil {
		return err
	}
	defer closeStore()
	m, err := store.MigrateLayout(ctx)
	if err != nil {
		return fmt.Errorf("order migrate-layout: %w", err)
	}
	fmt.Fprintf(a.Stdout, "key layout %s: %d orders of %d shops moved, %d event records copied to each shop, %d orders under review, %d timers\n",
		orderstate.LayoutVersion, m.Orders, len(m.Shops), m.Events, m.Pending, m.Timers)
	for _, key := range m.Conflicts {
		termtable.Fprintf(a.Stdout, "left %s: the order has a key of layout %s already\n", key, orderstate.LayoutVersion)
	}
	return nil
}

// orderCounts runs `order counts -shop S`: how many orders each bucket holds.
func (a *App) orderCounts(ctx context.Context, args []string) error {
	fs := a.flagSet("order counts")
	ro := a.bindRedis(fs)
	shop := fs.String("shop", "", "shop `ID` (required)")
	asJSON := fs.Bool("json", false, `print one JSON object: {"shop", "counts": {STATUS: N, ...}, "total"}`)
	a.setUsage(fs, "order counts -shop S [flags]", `Counts a shop's orders in the worker's order index by credit status (pending split into review and hold;
none: a state for an order never registered), every status shown, 0 included, and the total. Orders past
the retention are left out.
`)
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) > 0:
		return usagef("order counts takes no arguments (got %q): give the shop with -shop", rest[0])
	case *shop == "":
		return usagef("order counts needs -shop S")
	}
	store, closeStore, err := ro.store()
	if err != nil {
		return err
	}
	defer closeStore()
	counts, err := store.CountOrders(ctx, *shop)
	if err != nil {
		return filterUsage(err, nil)
	}
	res := countsResult{Shop: *shop, Counts: counts}
	for _, n := range counts {
		res.Total += n
	}
	if *asJSON {
		return a.printJSON(res)
	}
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STATUS\tORDERS\t")
	for _, b := range orderstate.Buckets {
		fmt.Fprintf(tw, "%s\t%d\t\n", b, counts[b])
	}
	fmt.Fprintf(tw, "total\t%d\t\n", res.Total)
	return tw.Flush()
}

// orderExport runs `order export -shop S`: the shop's credit results as CSV, every page.
func (a *App) orderExport(ctx context.Context, args []string) error {
	fs := a.flagSet("order export")
	ro := a.bindRedis(fs)
	shop := fs.String("shop", "", "shop `ID` (required)")
	from := fs.String("from", "", "from `time` (RFC 3339, or a date: its midnight, JST), inclusive")
	to := fs.String("to", "", "to `time` (RFC 3339, or a date: that whole day, JST), exclusive")
	by := fs.String("by", "ordered", "the `time` -from and -to bound and the rows are sorted by, newest first: ordered or changed")
	status := fs.String("status", "", "only the orders of credit `status`: "+listStatuses)
	encoding := fs.String("encoding", "utf-8", "`encoding` of the file: utf-8 (with a BOM) or shift_jis (CP932, for Excel on Japanese Windows)")
	out := fs.String("o", "", "write to `file` instead of stdout")
	a.setUsage(fs, "order export -shop S [flags]", `Writes a shop's credit results from the worker's order index as CSV, every page of the listing: a
header row, then one order a row, newest first (columns: order_id, status, review, transaction_id, fee,
billed_amount, shipment, ordered_at, changed_at; times in JST), lines ending CRLF. UTF-8 with a BOM by
default; -encoding shift_jis writes CP932, which Excel on Japanese Windows opens as is. A character CP932
cannot hold is an error naming the order (exit status 1), and nothing is left at -o. No personal data.
`)
	rest, err := a.parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) > 0:
		return usagef("order export takes no arguments (got %q): give the shop with -shop", rest[0])
	case *shop == "":
		return usagef("order export needs -shop S")
	case *encoding != "utf-8" && *encoding != "shift_jis":
		return usagef("-encoding %q: want utf-8 or shift_jis", *encoding)
	case *by != "ordered" && *by != "changed":
		return usagef("-by %q: want ordered or changed", *by)
	}
	f := orderstate.Filter{Shop: *shop, Sort: orderstate.SortKey(*by), Limit: orderstate.MaxLimit}
	if f.Status, f.Hold, err = statusFilter(*status); err != nil {
		return err
	}
	lo, err := parseBound("from", *from, false)
	if err != nil {
		return err
	}
	hi, err := parseBound("to", *to, true)
	if err != nil {
		return err
	}
	rename := map[string]string{"ordered_from": "-from", "ordered_to": "-to"}
	if f.Sort == orderstate.SortOrdered {
		f.OrderedFrom, f.OrderedTo = lo, hi
	} else {
		f.ChangedFrom, f.ChangedTo = lo, hi
		rename = map[string]string{"changed_from": "-from", "changed_to": "-to"}
	}
	store, closeStore, err := ro.store()
	if err != nil {
		return err
	}
	defer closeStore()

	// The whole file is built first: an order CP932 cannot hold leaves nothing half written.
	var buf bytes.Buffer
	w, err := ordercsv.NewWriter(&buf, ordercsv.Encoding(*encoding))
	if err != nil {
		return err
	}
	orders, err := store.AllOrders(ctx, f, 0)
	if err != nil {
		return filterUsage(err, rename)
	}
	if err := w.Write(orders...); err != nil {
		var ue *ordercsv.UnencodableError
		if errors.As(err, &ue) {
			return fmt.Errorf("%v: nothing exported; use -encoding utf-8", err)
		}
		return err
	}
	n := len(orders)
	if *out == "" {
		_, err = a.Stdout.Write(buf.Bytes())
		return err
	}
	if err := writeFileAtomic(*out, buf.Bytes()); err != nil {
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	fmt.Fprintf(a.Stderr, "exported %d orders of shop %s to %s (%s)\n", n, *shop, *out, *encoding)
	return nil
}

// writeFileAtomic writes data to name through a temporary file beside it, so that a reader never
// sees half a file.
func writeFileAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".export-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, bytes.NewReader(data))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
