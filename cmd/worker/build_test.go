package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductionBuildLinksNoEmbeddedServers: built with -tags noembedded (as the container
// image is), the worker links neither the in-process servers nor the sandbox.
func TestProductionBuildLinksNoEmbeddedServers(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-tags", "noembedded", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range []string{
		"github.com/nats-io/nats-server/v2/server", "github.com/alicebob/miniredis/v2",
		"github.com/atodene-worker/atodene-worker/internal/embedded", "github.com/atodene-worker/atodene-worker/internal/sandbox",
	} {
		for line := range strings.Lines(string(out)) {
			if strings.TrimSpace(line) == pkg {
				t.Errorf("the noembedded build links %s", pkg)
			}
		}
	}
}
