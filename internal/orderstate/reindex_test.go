package orderstate

import (
	"context"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// A state written before the order index existed (no "ix", no expiry) is not listed; Reindex
// files it as changed when it was last written, with the expiry that follows, and leaves the
// states already filed alone.
func TestReindexFilesStatesWrittenBeforeTheIndex(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	now := time.Now().Truncate(time.Millisecond)
	s := NewStore(rdb, Config{Prefix: prefix, Retention: 100 * time.Hour, Now: func() time.Time { return now }})
	t.Cleanup(s.Close)
	ctx := context.Background()
	written := now.Add(-10 * time.Hour).UTC()
	old := `{"version":3,"status":"ok","transaction_id":"12345678901","fee":205,"billed_amount":3155,"updated_at":"` + written.Format(time.RFC3339Nano) + `"}`
	if err := rdb.Set(ctx, s.stateKey("shop", "old-1"), old, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "shop", "new-1", State{Status: StatusNG, OrderedAt: now.Add(-time.Hour)}, now); err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, s, Filter{Shop: "shop", Limit: MaxLimit}); len(got) != 1 {
		t.Fatalf("before: %d orders listed, want the one written with the index", len(got))
	}
	read, filed, err := s.Reindex(ctx, "shop")
	if err != nil || read != 2 || filed != 1 {
		t.Fatalf("Reindex: read %d, filed %d, %v; want 2 and 1", read, filed, err)
	}
	o, ok := only(t, s, "shop", "old-1")
	if !ok || !o.ChangedAt.Equal(written) || !o.OrderedAt.Equal(written) || o.TransactionID != "12345678901" || o.Bucket() != BucketOK {
		t.Fatalf("old-1 listed as %+v (%v), want changed and ordered at %v, its transaction and status", o, ok, written)
	}
	if ttl := rdb.PTTL(ctx, s.stateKey("shop", "old-1")).Val(); ttl < 89*time.Hour || ttl > 90*time.Hour {
		t.Errorf("old-1 expires in %v, want the retention less the 10 h since it was written", ttl)
	}
	checkIndexMatchesStates(t, s, "shop")
	if _, filed, err := s.Reindex(ctx, ""); err != nil || filed != 0 {
		t.Errorf("a second Reindex filed %d, %v; want none", filed, err)
	}
}
