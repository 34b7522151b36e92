package console

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: a live stream's consumer and
// its reader must end with the request, and the store's batcher with its Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
