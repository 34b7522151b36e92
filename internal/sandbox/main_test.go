package sandbox_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: a sandbox's timers end with its Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
