package childproc

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: a child's reaper ends once the child is stopped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
