// Package golden compares test output with files under testdata/ and rewrites them on request:
// `go test -update` in a package whose tests use it.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/, and the generated parts of docs/ that a package's tests check (the schemas shown in docs/events.md)")

// Updating reports whether the test run was asked to rewrite golden files (-update).
func Updating() bool { return *update }

// Check compares got with testdata/<name>, byte for byte. With -update it writes got there
// first. A missing file fails the test, saying how to create it.
func Check(t testing.TB, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatalf("golden: writing %s: %v", file, err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("golden: %v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("golden: output differs from %s:\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}
