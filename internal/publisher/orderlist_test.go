package publisher

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/japanese"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/ordercsv"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// putAt writes an order's state as the worker would, written (and so changed) at now.
func (e *orderEnv) putAt(shop, order string, st orderstate.State, now time.Time) {
	e.t.Helper()
	store := orderstate.New(e.rdb, e.prefix, 0)
	defer store.Close()
	if _, err := store.Put(context.Background(), shop, order, st, now); err != nil {
		e.t.Fatal(err)
	}
}

// listEnv writes five orders of shop demo and one of shop other, each changed a minute after the
// one before: B-1 is the newest.
func listEnv(t *testing.T) (*orderEnv, time.Time) {
	e := newOrderEnv(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	day := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, jst.Zone) }
	for i, o := range []struct {
		id string
		st orderstate.State
	}{
		{"A-1", orderstate.State{Status: orderstate.StatusOK, TransactionID: "10000000001", Fee: 205, BilledAmount: 3155, OrderedAt: day(28, 10),
			Shipment: &orderstate.Shipment{CarrierCode: "11", TrackingNumber: "123456789012", Reported: true}}},
		{"A-2", orderstate.State{Status: orderstate.StatusNG, Fee: 205, BilledAmount: 5000, OrderedAt: day(29, 10)}},
		{"A-3", orderstate.State{Status: orderstate.StatusPending, TransactionID: "10000000003", Fee: 205, BilledAmount: 1200, OrderedAt: day(29, 12)}},
		{"A-4", orderstate.State{Status: orderstate.StatusPending, Review: "hold", TransactionID: "10000000004", Fee: 205, BilledAmount: 800, OrderedAt: day(30, 9)}},
		{"B-1", orderstate.State{Status: orderstate.StatusCancelled, TransactionID: "10000000005", Fee: 0, BilledAmount: 2000, OrderedAt: day(30, 10)}},
	} {
		e.putAt("demo", o.id, o.st, base.Add(time.Duration(i)*time.Minute))
	}
	e.putAt("other", "O-1", orderstate.State{Status: orderstate.StatusOK, OrderedAt: day(30, 11)}, base)
	return e, base
}

// ids returns the order IDs of the rows of a table, a CSV or JSON lines.
func tableIDs(out string) []string {
	var ids []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] != "ORDER" && !strings.Contains(l, "orders") {
			ids = append(ids, f[0])
		}
	}
	return ids
}

func isUsage(err error) bool { return errors.As(err, new(UsageError)) }

// TestOrderListHelp: -h of each new command is help (flag.ErrHelp, exit status 0), on stdout.
func TestOrderListHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"ls", "counts", "export", "recheck", "resolve"} {
		var out bytes.Buffer
		a := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
		if err := a.Run(context.Background(), []string{"order", cmd, "-h"}); !errors.Is(err, flag.ErrHelp) || !strings.HasPrefix(out.String(), "Usage: publisher order "+cmd) {
			t.Errorf("order %s -h: %v\n%s", cmd, err, out.String())
		}
	}
}

// TestOrderList: order ls as a table, with each filter, paged with -cursor, as JSON lines and CSV,
// and its mistakes.
func TestOrderList(t *testing.T) {
	t.Parallel()
	e, base := listEnv(t)
	r := e.run("", "order", "ls", "-shop", "demo")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 7 || !regexpLine(lines[0], "ORDER", "STATUS", "SHIPMENT", "TRANSACTION", "FEE", "BILLED", "ORDERED (JST)", "CHANGED (JST)") ||
		!regexpLine(lines[1], "B-1", "cancelled", "none", "10000000005", "0", "2000", "2026-11-30 10:00:00", jst.Format(base.Add(4*time.Minute))) ||
		!regexpLine(lines[2], "A-4", "pending (hold)", "none", "10000000004") ||
		!regexpLine(lines[3], "A-3", "pending (review)") || !regexpLine(lines[4], "A-2", "ng", "none", "-", "205", "5000") ||
		!regexpLine(lines[5], "A-1", "ok", "reported", "10000000001", "205", "3155", "2026-11-28 10:00:00", jst.Format(base)) ||
		lines[6] != "5 orders (last page)" {
		t.Errorf("order ls:\n%s", r.stdout)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-status", "pending"}, []string{"A-4", "A-3"}},
		{[]string{"-status", "review"}, []string{"A-3"}},
		{[]string{"-status", "hold"}, []string{"A-4"}},
		{[]string{"-status", "ok"}, []string{"A-1"}},
		{[]string{"-status", "none"}, nil},
		{[]string{"-shipment", "reported"}, []string{"A-1"}},
		{[]string{"-shipment", "none", "-status", "ng"}, []string{"A-2"}},
		{[]string{"-prefix", "A-"}, []string{"A-4", "A-3", "A-2", "A-1"}},
		{[]string{"-ordered-from", "2026-11-29", "-ordered-to", "2026-11-29"}, []string{"A-3", "A-2"}}, // the whole day, sorted by time ordered
		{[]string{"-ordered-from", "2026-11-30T09:30:00+09:00"}, []string{"B-1"}},
		{[]string{"-sort", "ordered"}, []string{"B-1", "A-4", "A-3", "A-2", "A-1"}},
		{[]string{"-changed-from", base.Add(2 * time.Minute).Format(time.RFC3339), "-changed-to", base.Add(4 * time.Minute).Format(time.RFC3339)}, []string{"A-4", "A-3"}},
	} {
		r := e.run("", append([]string{"order", "ls", "-shop", "demo"}, tc.args...)...)
		if got := tableIDs(r.stdout); r.err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("order ls %v: %v %v, want %v\n%s", tc.args, got, r.err, tc.want, r.stdout)
		}
	}

	// Paged: every order once, newest first, with the cursor of each page.
	var all []string
	cursor := ""
	for range 10 {
		r := e.run("", "order", "ls", "-shop", "demo", "-limit", "2", "-cursor", cursor)
		if r.err != nil {
			t.Fatal(r.err)
		}
		all = append(all, tableIDs(r.stdout)...)
		_, next, ok := strings.Cut(r.stdout, "next page: -cursor ")
		if !ok {
			break
		}
		cursor = strings.TrimSpace(next)
	}
	if want := []string{"B-1", "A-4", "A-3", "A-2", "A-1"}; !slices.Equal(all, want) {
		t.Errorf("paged: %v, want %v", all, want)
	}

	// -json: one order a line, then the cursor.
	r = e.run("", "order", "ls", "-shop", "demo", "-limit", "3", "-json")
	jl := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var first listRow
	var next struct {
		Next *string `json:"next"`
	}
	if r.err != nil || len(jl) != 4 || json.Unmarshal([]byte(jl[0]), &first) != nil || json.Unmarshal([]byte(jl[3]), &next) != nil || next.Next == nil || *next.Next == "" ||
		first.OrderID != "B-1" || first.Status != "cancelled" || first.Shop != "demo" || first.BilledAmount != 2000 || first.TransactionID != "10000000005" ||
		!first.OrderedAt.Equal(time.Date(2026, 11, 30, 10, 0, 0, 0, jst.Zone)) || !first.ChangedAt.Equal(base.Add(4*time.Minute)) {
		t.Fatalf("-json: %v\n%s", r.err, r.stdout)
	}
	r = e.run("", "order", "ls", "-shop", "demo", "-limit", "3", "-json", "-cursor", *next.Next)
	jl = strings.Split(strings.TrimSpace(r.stdout), "\n")
	var hold listRow
	if r.err != nil || len(jl) != 3 || json.Unmarshal([]byte(jl[0]), &hold) != nil || jl[2] != `{"next":""}` ||
		hold.OrderID != "A-2" || hold.Bucket != orderstate.BucketNG {
		t.Errorf("-json, page 2: %v\n%s", r.err, r.stdout)
	}
	r = e.run("", "order", "ls", "-shop", "demo", "-status", "hold", "-json")
	if r.err != nil || json.Unmarshal([]byte(strings.Split(r.stdout, "\n")[0]), &hold) != nil || hold.Status != "pending" || hold.Review != "hold" || hold.Bucket != orderstate.BucketHold {
		t.Errorf("-json of an order on hold: %v\n%s", r.err, r.stdout)
	}

	// -csv: the export's columns; the cursor on stderr.
	r = e.run("", "order", "ls", "-shop", "demo", "-csv", "-limit", "4")
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if r.err != nil || err != nil || len(recs) != 5 || !slices.Equal(recs[0], ordercsv.Header) ||
		!slices.Equal(recs[2], []string{"A-4", "pending", "hold", "10000000004", "205", "800", "none", "2026-11-30 09:00:00", jst.Format(base.Add(3 * time.Minute))}) ||
		!slices.Equal(recs[3][:3], []string{"A-3", "pending", "review"}) || !strings.HasPrefix(r.stderr, "next page: -cursor ") {
		t.Errorf("-csv: %v %v\n%s\n%s", r.err, err, r.stdout, r.stderr)
	}

	// Mistakes: exit status 2, naming the flag.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"order", "ls"}, "-shop"},
		{[]string{"order", "ls", "-shop", "demo", "-status", "done"}, "-status"},
		{[]string{"order", "ls", "-shop", "demo", "-shipment", "lost"}, "-shipment"},
		{[]string{"order", "ls", "-shop", "demo", "-ordered-from", "yesterday"}, "-ordered-from"},
		{[]string{"order", "ls", "-shop", "demo", "-changed-to", "2026-13-01"}, "-changed-to"},
		{[]string{"order", "ls", "-shop", "demo", "-changed-from", "2026-11-30", "-changed-to", "2026-11-29"}, "-changed-to: the range ends (exclusive) at 2026-11-30T00:00:00+09:00, not after it begins (-changed-from) at 2026-11-30T00:00:00+09:00"},
		{[]string{"order", "ls", "-shop", "demo", "-limit", "0"}, "-limit"},
		{[]string{"order", "ls", "-shop", "demo", "-limit", "1001"}, "-limit"},
		{[]string{"order", "ls", "-shop", "demo", "-cursor", "nonsense!"}, "-cursor"},
		{[]string{"order", "ls", "-shop", "demo", "-prefix", "A/"}, "-prefix"},
		{[]string{"order", "ls", "-shop", "demo", "-sort", "price"}, "-sort"},
		{[]string{"order", "ls", "-shop", "de mo"}, "-shop"},
		{[]string{"order", "ls", "-shop", "demo", "-json", "-csv"}, "-json"},
		{[]string{"order", "ls", "-shop", "demo", "extra"}, "no arguments"},
	} {
		if r := e.run("", tc.args...); !isUsage(r.err) || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error naming %s", tc.args, r.err, tc.want)
		}
	}
}

// TestOrderCounts: every status counted, 0 included, as a table and as JSON.
func TestOrderCounts(t *testing.T) {
	t.Parallel()
	e, _ := listEnv(t)
	r := e.run("", "order", "counts", "-shop", "demo")
	if r.err != nil || !regexpLine(r.stdout, "ok", "1") || !regexpLine(r.stdout, "review", "1") || !regexpLine(r.stdout, "hold", "1") ||
		!regexpLine(r.stdout, "registering", "0") || !regexpLine(r.stdout, "total", "5") {
		t.Errorf("order counts: %v\n%s", r.err, r.stdout)
	}
	r = e.run("", "order", "counts", "-shop", "demo", "-json")
	var res countsResult
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Shop != "demo" || res.Total != 5 || len(res.Counts) != len(orderstate.Buckets) ||
		res.Counts[orderstate.BucketOK] != 1 || res.Counts[orderstate.BucketNG] != 1 || res.Counts[orderstate.BucketCancelled] != 1 ||
		res.Counts[orderstate.BucketReview] != 1 || res.Counts[orderstate.BucketHold] != 1 || res.Counts[orderstate.BucketNone] != 0 {
		t.Errorf("order counts -json: %v\n%s", r.err, r.stdout)
	}
	for _, args := range [][]string{{"order", "counts"}, {"order", "counts", "-shop", "a:b"}, {"order", "counts", "-shop", "demo", "demo"}} {
		if r := e.run("", args...); !isUsage(r.err) {
			t.Errorf("%v: %v, want a usage error", args, r.err)
		}
	}
}

// TestOrderExport: every page of a shop's orders as CSV, UTF-8 with a BOM or Shift_JIS, the time
// range, a character Shift_JIS cannot hold, and the mistakes.
func TestOrderExport(t *testing.T) {
	t.Parallel()
	e, base := listEnv(t)
	// More orders than a page holds (orderstate.MaxLimit), and one whose transaction ID is Japanese
	// text, written straight into the index.
	store := orderstate.New(e.rdb, e.prefix, 0)
	defer store.Close()
	var bulk []orderstate.Summary
	for i := range orderstate.MaxLimit + 205 {
		bulk = append(bulk, orderstate.Summary{Shop: "bulk", OrderID: fmt.Sprintf("K-%05d", i), Status: orderstate.StatusOK, Shipment: orderstate.ShipmentNone,
			TransactionID: fmt.Sprint(20000000000 + i), Fee: 205, BilledAmount: int64(1000 + i),
			OrderedAt: base.Add(time.Duration(i) * time.Second), ChangedAt: base.Add(time.Duration(i) * time.Second)})
	}
	bulk[7].TransactionID = "確認中－１"
	bad := orderstate.Summary{Shop: "emoji", OrderID: "E-1", Status: orderstate.StatusOK, TransactionID: "🙂", ChangedAt: base, OrderedAt: base}
	if err := store.LoadIndex(context.Background(), append(bulk, bad)); err != nil {
		t.Fatal(err)
	}

	r := e.run("", "order", "export", "-shop", "bulk")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	utf, ok := strings.CutPrefix(r.stdout, "\xEF\xBB\xBF")
	if !ok {
		t.Fatalf("no BOM: %q", r.stdout[:min(20, len(r.stdout))])
	}
	if !strings.HasPrefix(utf, "order_id,status,review,transaction_id,fee,billed_amount,shipment,ordered_at,changed_at\r\n") {
		t.Errorf("header: %q", utf[:min(100, len(utf))])
	}
	recs, err := csv.NewReader(strings.NewReader(utf)).ReadAll()
	if err != nil || len(recs) != len(bulk)+1 {
		t.Fatalf("%d records (%v), want %d", len(recs), err, len(bulk)+1)
	}
	seen := map[string]bool{}
	for i, rec := range recs[1:] {
		if want := fmt.Sprintf("K-%05d", len(bulk)-1-i); rec[0] != want { // newest ordered first
			t.Fatalf("row %d: %v, want %s", i+1, rec, want)
		}
		seen[rec[0]] = true
	}
	if len(seen) != len(bulk) || !slices.Equal(recs[len(recs)-8], []string{"K-00007", "ok", "", "確認中－１", "205", "1007", "none", jst.Format(base.Add(7 * time.Second)), jst.Format(base.Add(7 * time.Second))}) {
		t.Errorf("rows: %d distinct; K-00007 %v", len(seen), recs[len(recs)-8])
	}

	// Shift_JIS, to a file: the same text once decoded, without a BOM.
	out := filepath.Join(t.TempDir(), "bulk.csv")
	r = e.run("", "order", "export", "-shop", "bulk", "-encoding", "shift_jis", "-o", out)
	raw, err := os.ReadFile(out)
	if r.err != nil || err != nil {
		t.Fatalf("%v %v\n%s", r.err, err, r.stderr)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("exported %d orders of shop bulk to %s (shift_jis)", len(bulk), out)) {
		t.Errorf("stderr: %s", r.stderr)
	}
	if bytes.Contains(raw, []byte("確認中")) || bytes.HasPrefix(raw, []byte("\xEF\xBB\xBF")) {
		t.Error("the Shift_JIS file holds UTF-8")
	}
	decoded, err := japanese.ShiftJIS.NewDecoder().Bytes(raw)
	if err != nil || string(decoded) != utf {
		t.Errorf("decoded Shift_JIS differs from the UTF-8 export (%v)", err)
	}

	// The time range: a date is a day in JST; -by changed bounds the time changed.
	r = e.run("", "order", "export", "-shop", "demo", "-from", "2026-11-29", "-to", "2026-11-29")
	recs, _ = csv.NewReader(strings.NewReader(strings.TrimPrefix(r.stdout, "\uFEFF"))).ReadAll()
	if r.err != nil || len(recs) != 3 || recs[1][0] != "A-3" || recs[2][0] != "A-2" {
		t.Errorf("-from -to: %v\n%s", r.err, r.stdout)
	}
	r = e.run("", "order", "export", "-shop", "demo", "-by", "changed", "-from", base.Add(3*time.Minute).Format(time.RFC3339), "-status", "pending")
	recs, _ = csv.NewReader(strings.NewReader(strings.TrimPrefix(r.stdout, "\uFEFF"))).ReadAll()
	if r.err != nil || len(recs) != 2 || recs[1][0] != "A-4" {
		t.Errorf("-by changed: %v\n%s", r.err, r.stdout)
	}

	// A character CP932 cannot hold: an error naming the order, and no file.
	out = filepath.Join(t.TempDir(), "emoji.csv")
	r = e.run("", "order", "export", "-shop", "emoji", "-encoding", "shift_jis", "-o", out)
	if r.err == nil || isUsage(r.err) || !strings.Contains(r.err.Error(), "order E-1 of shop emoji: transaction_id") {
		t.Errorf("an emoji in Shift_JIS: %v", r.err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s written: %v", out, err)
	}
	if r := e.run("", "order", "export", "-shop", "emoji"); r.err != nil || !strings.Contains(r.stdout, "🙂") {
		t.Errorf("an emoji in UTF-8: %v", r.err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"order", "export"}, "-shop"},
		{[]string{"order", "export", "-shop", "demo", "-encoding", "latin1"}, "-encoding"},
		{[]string{"order", "export", "-shop", "demo", "-from", "last week"}, "-from"},
		{[]string{"order", "export", "-shop", "demo", "-from", "2026-11-30", "-to", "2026-11-01"}, "-to: the range ends (exclusive) at 2026-11-02T00:00:00+09:00, not after it begins (-from)"},
		{[]string{"order", "export", "-shop", "demo", "-by", "changed", "-from", "2026-11-30", "-to", "2026-11-01"}, "-to"},
		{[]string{"order", "export", "-shop", "demo", "-by", "price"}, "-by"},
		{[]string{"order", "export", "-shop", "demo", "-status", "done"}, "-status"},
	} {
		if r := e.run("", tc.args...); !isUsage(r.err) || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error naming %s", tc.args, r.err, tc.want)
		}
	}
}

// TestOrderRecheckResolve: 与信結果確認 and the settling of an unknown order publish the operator
// events of docs/events.md#operator-events, and refuse an order in another status.
func TestOrderRecheckResolve(t *testing.T) {
	t.Parallel()
	e := newOrderEnv(t)
	e.put("demo", "P-1", orderstate.State{Status: orderstate.StatusPending, Review: "hold", TransactionID: "12345678901"})
	e.put("demo", "U-1", orderstate.State{Status: orderstate.StatusUnknown})
	e.put("demo", "K-1", orderstate.State{Status: orderstate.StatusOK, TransactionID: "12345678902"})

	r := e.run("", "order", "recheck", "-operator", "ops-tanaka", "demo", "P-1")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	env := checkStored(t, e.last(), "orders.recheck_requested.demo")
	if env.Type != events.TypeRecheckRequested || env.Source != "publisher/operator/ops-tanaka" || !uuidPattern.MatchString(env.ID) ||
		string(env.Data) != `{"shop_id":"demo","order_id":"P-1","operator":"ops-tanaka"}` {
		t.Errorf("the recheck: %+v %s", env, env.Data)
	}
	if !regexpLine(r.stdout, "published order.recheck_requested "+env.ID, "order P-1 of shop demo (was pending (on hold)), source publisher/operator/ops-tanaka: stream ORDERS, sequence 1") {
		t.Errorf("stdout:\n%s", r.stdout)
	}

	r = e.run("", "order", "resolve", "-operator", "ops-tanaka", "-transaction-id", "12345678909", "-json", "demo", "U-1")
	var res actionResult
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Sequence != 2 || res.Status != "unknown" || res.Subject != "orders.resolve_requested.demo" {
		t.Fatalf("resolve -json: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	env = checkStored(t, e.last(), "orders.resolve_requested.demo")
	if env.ID != res.ID || e.last().Header.Get("Nats-Msg-Id") != res.MsgID ||
		string(env.Data) != `{"shop_id":"demo","order_id":"U-1","operator":"ops-tanaka","transaction_id":"12345678909"}` {
		t.Errorf("the resolve: %+v %s", env, env.Data)
	}
	r = e.run("", "order", "resolve", "-operator", "ops-tanaka", "-not-registered", "demo", "U-1")
	env = checkStored(t, e.last(), "orders.resolve_requested.demo")
	if r.err != nil || string(env.Data) != `{"shop_id":"demo","order_id":"U-1","operator":"ops-tanaka","not_registered":true}` {
		t.Errorf("resolve -not-registered: %v %s", r.err, env.Data)
	}
	r = e.run("", "order", "recheck", "-operator", "ops-tanaka", "-dry-run", "-json", "demo", "P-1")
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &res) != nil || !res.DryRun || len(res.Event) == 0 {
		t.Errorf("recheck -dry-run: %v\n%s", r.err, r.stdout)
	}

	// Refused for the order's status (exit status 1), and mistakes (exit status 2): nothing published.
	for _, tc := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"recheck", "-operator", "a", "demo", "K-1"}, false, "is ok: 与信結果確認 is for an order under review"},
		{[]string{"recheck", "-operator", "a", "demo", "NOBODY"}, false, "no credit state"},
		{[]string{"resolve", "-operator", "a", "-not-registered", "demo", "P-1"}, false, "resolve is for an order whose outcome is unknown"},
		{[]string{"recheck", "demo", "P-1"}, true, "-operator"},
		{[]string{"recheck", "-operator", "a", "demo"}, true, "SHOP and ORDER"},
		{[]string{"resolve", "-operator", "a", "demo", "U-1"}, true, "-transaction-id ID or -not-registered"},
		{[]string{"resolve", "-operator", "a", "-transaction-id", "1", "-not-registered", "demo", "U-1"}, true, "give one of them"},
		{[]string{"resolve", "-operator", "a", "-transaction-id", "ABC", "demo", "U-1"}, true, "rejected"},
	} {
		r := e.run("", append([]string{"order"}, tc.args...)...)
		if r.err == nil || isUsage(r.err) != tc.usage || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%v: %v (usage error: %v), want %q", tc.args, r.err, isUsage(r.err), tc.want)
		}
	}
	if n := len(storedMsgs(t, e.orders)); n != 3 {
		t.Errorf("%d messages, want 3", n)
	}
}

// -retention is the worker's: orders unchanged for longer are left out, as the worker's own
// listings leave them; a bad one is a mistake in the command line.
func TestOrderListRetention(t *testing.T) {
	t.Parallel()
	e, _ := listEnv(t) // changed an hour ago and the minutes after
	if r := e.run("", "order", "ls", "-shop", "demo", "-retention", "2h"); r.err != nil || len(tableIDs(r.stdout)) != 5 {
		t.Errorf("-retention 2h: %v\n%s", r.err, r.stdout)
	}
	if r := e.run("", "order", "ls", "-shop", "demo", "-retention", "30m"); r.err != nil || len(tableIDs(r.stdout)) != 0 {
		t.Errorf("-retention 30m listed orders changed an hour ago: %v\n%s", r.err, r.stdout)
	}
	if r := e.run("", "order", "ls", "-shop", "demo", "-retention", "forever"); !isUsage(r.err) || !strings.Contains(r.err.Error(), "-retention") {
		t.Errorf("-retention forever: %v, want a usage error naming -retention", r.err)
	}
}

// TestOrderCommandsNameWhatFailed: a Redis that does not answer is named with the flag and the
// variable that choose it (a new terminal without the embedded worker's export line); a file export
// cannot write is named, not the temporary file beside it.
func TestOrderCommandsNameWhatFailed(t *testing.T) {
	t.Parallel()
	r := runPublisher(t, "nats://127.0.0.1:1", "", false, "order", "ls", "-shop", "demo", "-redis-url", "redis://127.0.0.1:1")
	if r.err == nil || !strings.Contains(r.err.Error(), "is the worker's Redis at redis://127.0.0.1:1? Set -redis-url or ATODENE_PUBLISHER_REDIS_URL") {
		t.Errorf("order ls of a Redis that does not answer: %v", r.err)
	}
	e, _ := listEnv(t)
	// No order where publisher looked: it says which Redis it asked (a newcomer's publisher left
	// on its default asks the machine's Redis, not the embedded worker's); orders found, nothing.
	r = e.run("", "order", "ls", "-shop", "no-such-shop")
	if r.err != nil || !strings.Contains(r.stderr, `no order of shop no-such-shop matches in the Redis at `) || !strings.Contains(r.stderr, "Set -redis-url or ATODENE_PUBLISHER_REDIS_URL") {
		t.Errorf("order ls finding nothing: %v, stderr %q", r.err, r.stderr)
	}
	if r = e.run("", "order", "ls", "-shop", "demo"); r.stderr != "" {
		t.Errorf("order ls finding orders: stderr %q, want none", r.stderr)
	}
	missing := filepath.Join(t.TempDir(), "no-such-dir", "x.csv")
	if r := e.run("", "order", "export", "-shop", "demo", "-o", missing); r.err == nil || !strings.Contains(r.err.Error(), "writing "+missing+": ") {
		t.Errorf("order export -o into a missing directory: %v", r.err)
	}
}

// TestOrderReindex: a state written before the order index existed is not listed until order
// reindex files it; run again, it files nothing.
func TestOrderReindex(t *testing.T) {
	t.Parallel()
	e, _ := listEnv(t)
	old := `{"version":2,"status":"ng","updated_at":"` + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano) + `"}`
	if err := e.rdb.Set(context.Background(), e.prefix+"order:{demo}:OLD-1", old, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if r := e.run("", "order", "ls", "-shop", "demo"); r.err != nil || strings.Contains(r.stdout, "OLD-1") {
		t.Fatalf("before reindex, order ls: %v\n%s", r.err, r.stdout)
	}
	r := e.run("", "order", "reindex", "-shop", "demo")
	if r.err != nil || !strings.Contains(r.stdout, "6 order states read, 1 filed") {
		t.Fatalf("order reindex: %v\n%s", r.err, r.stdout)
	}
	if r := e.run("", "order", "ls", "-shop", "demo"); r.err != nil || !strings.Contains(r.stdout, "OLD-1") {
		t.Errorf("after reindex, order ls: %v\n%s", r.err, r.stdout)
	}
	if r := e.run("", "order", "reindex"); r.err != nil || !strings.Contains(r.stdout, ", 0 filed") {
		t.Errorf("order reindex again: %v\n%s", r.err, r.stdout)
	}
	if r := e.run("", "order", "reindex", "demo"); !isUsage(r.err) {
		t.Errorf("order reindex demo: %v, want a usage error", r.err)
	}
}

// TestOrderMigrateLayout: on the keys a worker of key layout 1 left, the order commands refuse and
// name order migrate-layout; after it, they read what the worker wrote.
func TestOrderMigrateLayout(t *testing.T) {
	t.Parallel()
	if testenv.OnCluster() {
		t.Skip("layout 1 never ran on a Redis Cluster (its scripts were refused there): nothing to migrate")
	}
	e := newOrderEnv(t)
	ctx := context.Background()
	state := `{"version":2,"status":"ok","transaction_id":"12345678901","updated_at":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}`
	e.rdb.Set(ctx, e.prefix+"order:demo:OLD-1", state, 0)
	e.rdb.RPush(ctx, e.prefix+"history:demo:OLD-1", `{"at":"2026-11-01T00:00:00Z","type":"order.created","did":"registered"}`)
	e.rdb.Set(ctx, e.prefix+"event:0123456789abcdef0123456789abcdef", "1", time.Hour)
	if r := e.run("", "order", "show", "demo", "OLD-1"); r.err == nil || !strings.Contains(r.err.Error(), "publisher order migrate-layout") {
		t.Fatalf("order show on layout 1: %v, want a refusal naming order migrate-layout", r.err)
	}
	r := e.run("", "order", "migrate-layout")
	if r.err != nil || !strings.Contains(r.stdout, "key layout 2: 1 orders of 1 shops moved, 1 event records copied to each shop") {
		t.Fatalf("order migrate-layout: %v\n%s", r.err, r.stdout)
	}
	if r := e.run("", "order", "show", "demo", "OLD-1"); r.err != nil || !strings.Contains(r.stdout, "12345678901") || !strings.Contains(r.stdout, "registered") {
		t.Errorf("order show after the migration: %v\n%s", r.err, r.stdout)
	}
	if r := e.run("", "order", "migrate-layout", "x"); !isUsage(r.err) {
		t.Errorf("order migrate-layout x: %v, want a usage error", r.err)
	}
}
