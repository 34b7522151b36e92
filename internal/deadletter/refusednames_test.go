package deadletter

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
)

// TestRefusedLettersNameTheirOrder: a replay given its letters without their bodies (AllHeaders)
// reports the shop and order of each letter it refuses: an inbound event's order read back from
// its body, a due re-check's shop and order from its subject (atodene.poll.due.<shop>.<order,
// base64url>[.<kind>]) where its body names none, never the subject's third token ("due"). A
// refused letter gone since the selection keeps what its subject names.
func TestRefusedLettersNameTheirOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	poll := dlq.Letter{Subject: "atodene.poll.due.shop-b." + base64.RawURLEncoding.EncodeToString([]byte("P-2")) + ".retry",
		Stream: "ATODENE_POLLS", Sequence: 2, Reason: "poll-deadline", Body: []byte("not JSON"),
		Err: errors.New("it failed"), Attempts: 1, FailedAt: failedAt, ReplayCount: "3"}
	q, _ := letters(t, letter(1, "demo", "invalid", small("demo", "D-1"), 3), poll,
		letter(3, "demo", "invalid", small("demo", "D-3"), 3), letter(4, "demo", "invalid", small("demo", "D-4"), 0))
	sel, err := q.AllHeaders(ctx, Filter{})
	if err != nil || len(sel) != 4 {
		t.Fatalf("AllHeaders: %+v %v", sel, err)
	}
	if sel[1].Shop != "shop-b" || sel[1].Order != "P-2" {
		t.Errorf("the due re-check's letter read without its body: shop %q, order %q; want shop-b, P-2", sel[1].Shop, sel[1].Order)
	}
	if n, err := q.Purge(ctx, sel[2:3], nil); err != nil || n != 1 {
		t.Fatalf("purge of letter 3: %d %v", n, err)
	}
	want := map[uint64][2]string{1: {"demo", "D-1"}, 2: {"shop-b", "P-2"}, 3: {"demo", ""}}
	for _, dry := range []bool{true, false} {
		res, err := q.Replay(ctx, sel, ReplayOptions{MaxReplays: 3, DryRun: dry})
		if err != nil || len(res.RefusedLetters) != 3 {
			t.Fatalf("replay (dry run %v): %+v %v", dry, res, err)
		}
		for _, l := range res.RefusedLetters {
			if got := [2]string{l.Shop, l.Order}; got != want[l.Seq] || l.Body != nil {
				t.Errorf("dry run %v: refused letter %d names %q (body %q), want %q", dry, l.Seq, got, l.Body, want[l.Seq])
			}
		}
		if !dry && res.Replayed != 1 {
			t.Errorf("replayed %d, want 1: %+v", res.Replayed, res)
		}
	}
	for _, tc := range []struct{ subject, shop, order string }{
		{"orders.created.demo", "demo", ""},
		{"atodene.poll.due.demo." + base64.RawURLEncoding.EncodeToString([]byte("O-1")), "demo", "O-1"},
		{"atodene.poll.due.demo", "demo", ""},
		{"atodene.poll.due.demo.%%%", "demo", ""},
		{"atodene.poll.due.demo." + base64.RawURLEncoding.EncodeToString([]byte("not an order")) + ".inbox", "demo", ""},
	} {
		if shop, order := subjectOrder(tc.subject); shop != tc.shop || order != tc.order {
			t.Errorf("subjectOrder(%q) = %q, %q; want %q, %q", tc.subject, shop, order, tc.shop, tc.order)
		}
	}
}
