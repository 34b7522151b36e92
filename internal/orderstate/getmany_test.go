package orderstate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

func TestGetMany(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	s := NewStore(rdb, Config{Prefix: prefix})
	t.Cleanup(s.Close)
	ctx, now := context.Background(), time.Now()
	if _, err := s.Put(ctx, "shop", "a", State{Status: StatusOK, TransactionID: "11111111111"}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "shop", "c", State{Status: StatusNG}, now); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetMany(ctx, "shop", []string{"c", "b", "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Status != StatusNG || got[1].Version != 0 || got[2].TransactionID != "11111111111" {
		t.Fatalf("GetMany(c, b, a) = %+v", got)
	}
	if got, err := s.GetMany(ctx, "shop", nil); err != nil || got != nil {
		t.Fatalf("GetMany(none) = %v, %v", got, err)
	}
	// A state that is not JSON is named.
	if err := rdb.Set(ctx, s.stateKey("shop", "bad"), "{", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMany(ctx, "shop", []string{"a", "bad"}); err == nil || !strings.Contains(err.Error(), "shop/bad") {
		t.Fatalf("a broken state: %v", err)
	}
	// Redis gone: ErrUnavailable.
	down := testenv.StartPrivateRedis(t)
	drdb := redis.NewClient(&redis.Options{Addr: down.Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = drdb.Close() })
	ds := NewStore(drdb, Config{Prefix: prefix})
	t.Cleanup(ds.Close)
	down.Stop()
	if _, err := ds.GetMany(ctx, "shop", []string{"a"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Redis down: %v, want ErrUnavailable", err)
	}
}
