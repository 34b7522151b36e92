package orderstate

import (
	"context"
	"testing"
)

// TestStoreCallOffCostsNothing: outside a recording span, a store call's span allocates nothing
// (its name and attributes are not built).
func TestStoreCallOffCostsNothing(t *testing.T) {
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		_, c := startCall(ctx, "redis write", "EVALSHA")
		var err error
		c.end(&err)
	})
	if allocs != 0 {
		t.Errorf("a store call's span with tracing off allocates %.0f times, want 0", allocs)
	}
}
