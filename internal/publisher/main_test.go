package publisher

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the commands close the NATS and Redis clients they open.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
