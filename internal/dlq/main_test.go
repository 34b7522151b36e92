package dlq_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the NATS clients and servers the tests start are stopped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
