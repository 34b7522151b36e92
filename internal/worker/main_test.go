package worker

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: Run ends every goroutine it starts (the consumers, their budget, the store's batcher, the reconciler, the HTTP server) before it returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
