package config

import (
	"flag"
	"io"
	"os"
	"regexp"
	"slices"
	"testing"
)

// TestFlagTableMatchesTheFlags: docs/configuration.md lists every worker flag with its variable,
// and no other.
func TestFlagTableMatchesTheFlags(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `-([a-z-]+)` \\| `([A-Z_]+)` \\|")
	var documented []string
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		if m[2] != EnvName(m[1]) {
			t.Errorf("-%s is documented with variable %s, want %s", m[1], m[2], EnvName(m[1]))
		}
		documented = append(documented, m[1])
	}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s := DefaultSettings()
	s.bind(fs)
	var flags []string
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f.Name) })
	slices.Sort(documented)
	slices.Sort(flags)
	if !slices.Equal(documented, flags) {
		t.Errorf("documented flags\n%v\nwant\n%v", documented, flags)
	}
}
