package deadletter

import (
	"context"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
)

// TestListAndCountsAreBounded: a dead-letter stream of many large letters (a refused account
// dead-letters thousands of orders). Counts reads the letters' headers only, and List reads the
// bodies of the letters it returns only, at most its limit of them, and says how many match: the
// bytes the client receives are measured on its connection.
func TestListAndCountsAreBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n, bodySize = 200, 64 << 10
	pad := strings.Repeat("x", bodySize)
	var ls []dlq.Letter
	for i := range uint64(n) {
		shop, reason := "shop-a", "account-refused"
		if i%2 == 1 {
			shop, reason = "shop-b", "invalid"
		}
		ls = append(ls, letter(i+1, shop, reason, `{"shop_id":"`+shop+`","order_id":"O-`+string(rune('0'+i%10))+`","pad":"`+pad+`"}`, 0))
	}
	q, js := letters(t, ls...)
	nc := js.Conn()
	read := func(what string, maxBodies int, do func()) {
		t.Helper()
		before := nc.Stats().InBytes
		do()
		if got := nc.Stats().InBytes - before; got > uint64(maxBodies*bodySize+n*1024) {
			t.Errorf("%s received %d bytes from the server, want at most %d bodies' worth (%d letters of %d bytes stored)", what, got, maxBodies, n, bodySize)
		}
	}

	read("Counts", 0, func() {
		counts, err := q.Counts(ctx, Filter{Reason: "invalid"})
		if err != nil || counts["account-refused"] != n/2 || counts["invalid"] != n/2 {
			t.Errorf("Counts: %v %v", counts, err)
		}
	})
	read("List with a limit of 5", 5, func() {
		page, err := q.List(ctx, Filter{Limit: 5})
		if err != nil || len(page.Letters) != 5 || page.Letters[0].Seq != 1 || page.Letters[4].Seq != 5 || page.Matching != n || !page.Truncated ||
			page.Letters[0].Order != "O-0" || len(page.Letters[0].Body) < bodySize || page.Counts["invalid"] != n/2 {
			t.Errorf("List(limit 5): %d letters, matching %d, truncated %v, counts %v, %v", len(page.Letters), page.Matching, page.Truncated, page.Counts, err)
		}
	})
	read("List of the newest 3 invalid", 3, func() {
		page, err := q.List(ctx, Filter{Reason: "invalid", Limit: 3, Newest: true})
		if err != nil || len(page.Letters) != 3 || page.Letters[0].Seq != n-4 || page.Letters[2].Seq != n || page.Matching != n/2 || !page.Truncated ||
			page.Counts["account-refused"] != n/2 {
			t.Errorf("List(newest 3 invalid): %d letters, matching %d, truncated %v, counts %v, %v", len(page.Letters), page.Matching, page.Truncated, page.Counts, err)
		}
	})
	read("AllHeaders, a purge's selection", 0, func() {
		all, err := q.AllHeaders(ctx, Filter{Reason: "invalid"})
		if err != nil || len(all) != n/2 || all[0].Seq != 2 || all[0].Body != nil {
			t.Errorf("AllHeaders(invalid): %d letters, %v", len(all), err)
		}
	})
	if all, err := q.AllHeaders(ctx, Filter{Order: "O-1"}); err != nil || len(all) != n/10 || all[0].Body != nil || all[0].Order != "O-1" {
		t.Errorf("AllHeaders(O-1): %d letters, %v", len(all), err)
	}
	page, err := q.List(ctx, Filter{})
	if err != nil || len(page.Letters) != n || page.Truncated || page.Matching != n {
		t.Errorf("List(default limit %d) of %d: %d letters, matching %d, truncated %v, %v", DefaultLimit, n, len(page.Letters), page.Matching, page.Truncated, err)
	}
	// A shop and order filter reads the bodies (an inbound event's order is its body's), one batch at a time, and keeps the limit.
	page, err = q.List(ctx, Filter{Shop: "shop-b", Order: "O-1", Limit: 2})
	if err != nil || len(page.Letters) != 2 || page.Letters[0].Seq != 2 || page.Matching != n/10 || !page.Truncated {
		t.Errorf("List(shop-b O-1, limit 2): %d letters, matching %d, truncated %v, %v", len(page.Letters), page.Matching, page.Truncated, err)
	}
}
