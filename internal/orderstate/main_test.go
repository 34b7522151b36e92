package orderstate

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: a store's batcher must be
// stopped by its Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
