package publisher

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// TestOrderListDayBoundsInJST: a date is a day in JST, -…-from inclusive, -…-to the whole
// day (exclusive at the next midnight), at the millisecond edges.
func TestOrderListDayBoundsInJST(t *testing.T) {
	t.Parallel()
	e := newOrderEnv(t)
	now := time.Now().Add(-time.Hour).Truncate(time.Second)
	mid := time.Date(2026, 11, 29, 15, 0, 0, 0, time.UTC) // 2026-11-30 00:00 JST
	for i, o := range []struct {
		id string
		at time.Time
	}{
		{"E-before", mid.Add(-time.Millisecond)},
		{"E-first", mid},
		{"E-last", mid.Add(24*time.Hour - time.Millisecond)},
		{"E-next", mid.Add(24 * time.Hour)},
	} {
		e.putAt("demo", o.id, orderstate.State{Status: orderstate.StatusOK, OrderedAt: o.at}, now.Add(time.Duration(i)*time.Second))
	}
	r := e.run("", "order", "ls", "-shop", "demo", "-ordered-from", "2026-11-30", "-ordered-to", "2026-11-30")
	got := tableIDs(r.stdout)
	slices.Sort(got)
	if r.err != nil || !slices.Equal(got, []string{"E-first", "E-last"}) {
		t.Errorf("the JST day 2026-11-30: %v (%v), want E-first and E-last\n%s", got, r.err, r.stdout)
	}
	r = e.run("", "order", "ls", "-shop", "demo", "-ordered-from", "2026-11-30T00:00:00+09:00", "-ordered-to", "2026-11-30T15:00:00Z")
	got = tableIDs(r.stdout)
	slices.Sort(got)
	if r.err != nil || !slices.Equal(got, []string{"E-first", "E-last"}) {
		t.Errorf("RFC 3339 bounds: %v (%v)\n%s", got, r.err, r.stdout)
	}
	// A cursor of the day's listing, given to the listing of another day, is refused (exit 2).
	r = e.run("", "order", "ls", "-shop", "demo", "-ordered-from", "2026-11-30", "-ordered-to", "2026-11-30", "-limit", "1")
	i := strings.Index(r.stdout, "-cursor ")
	if i < 0 {
		t.Fatalf("no cursor: %s", r.stdout)
	}
	cur := strings.TrimSpace(r.stdout[i+len("-cursor "):])
	r = e.run("", "order", "ls", "-shop", "demo", "-ordered-from", "2026-11-29", "-ordered-to", "2026-11-30", "-limit", "1", "-cursor", cur)
	if !isUsage(r.err) {
		t.Errorf("a cursor of another day's listing: %v, want a usage error\n%s", r.err, r.stdout)
	}
	for _, bad := range []string{cur + "x", "AAAA", "%%%", strings.Repeat("A", 4000)} {
		r = e.run("", "order", "ls", "-shop", "demo", "-cursor", bad)
		if !isUsage(r.err) {
			t.Errorf("a hand-edited cursor %.20q: %v, want a usage error", bad, r.err)
		}
	}
}
