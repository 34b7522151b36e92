//go:build noembedded

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestNoEmbeddedBuildRefusesEmbedded: the production build says that it has no embedded mode.
func TestNoEmbeddedBuildRefusesEmbedded(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-embedded", "-config", t.TempDir() + "/none.yaml"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "built without the embedded mode (-tags noembedded)") {
		t.Fatalf("err = %v, want the build's refusal", err)
	}
}
