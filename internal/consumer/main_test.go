package consumer_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the consume loops and the handling goroutines of their budget end when Consume returns and the budget is closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
