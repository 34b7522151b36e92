package worker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// TestRefusesKeysOfAnOlderLayout: a worker records the key layout it writes at its first start; a
// Redis that holds keys of layout 1 under its prefix (a worker of an earlier version wrote them)
// stops the start, before any consumer runs, and the error names the migration command.
func TestRefusesKeysOfAnOlderLayout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	if v, err := h.deps.Redis.Get(ctx, h.deps.KeyPrefix+"layout").Result(); err != nil || v != orderstate.LayoutVersion {
		t.Fatalf("layout recorded at start: %q, %v", v, err)
	}
	h.shutdown()
	h.deps.Redis.Del(ctx, h.deps.KeyPrefix+"layout")
	h.deps.Redis.SAdd(ctx, h.deps.KeyPrefix+"pending", "shop-a:OLD-1") // layout 1's global set
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := Run(ctx, h.deps)
	if !errors.Is(err, orderstate.ErrOldLayout) || !strings.Contains(err.Error(), "publisher order migrate-layout") {
		t.Fatalf("Run on layout 1 keys: %v, want ErrOldLayout naming the command", err)
	}
}
