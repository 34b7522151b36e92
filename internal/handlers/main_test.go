package handlers_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: handlers leave nothing running
// (the consume loops and their budget are package consumer's).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
