package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// settingRow is one row of the settings table of docs/configuration.md.
type settingRow struct {
	line                    int
	flag, env, def, meaning string
}

// settingRows reads the settings table of docs/configuration.md: every row of its section
// "Settings" that starts with a flag (the console's flags have a section of their own).
func settingRows(t *testing.T) []settingRow {
	t.Helper()
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `-([a-z0-9-]+)` \\| `([A-Z0-9_]+)` \\| (.*?) \\| (.*) \\|$")
	var rows []settingRow
	in := false
	for i, l := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(l, "## ") {
			in = l == "## Settings"
		}
		if m := row.FindStringSubmatch(l); m != nil && in {
			rows = append(rows, settingRow{i + 1, m[1], m[2], m[3], m[4]})
		}
	}
	if len(rows) == 0 {
		t.Fatal("no rows in the section Settings of docs/configuration.md")
	}
	return rows
}

// helpFlags returns the flags `worker -h` lists: the flag set ParseSettings reads, whatever defines
// them.
func helpFlags(t *testing.T) []string {
	t.Helper()
	var out bytes.Buffer
	if _, err := ParseSettings([]string{"-h"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(out.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("-h lists no flag:\n%s", out.String())
	}
	return names
}

// boundFlags is the worker's flag set with every default applied, as ParseSettings builds it.
func boundFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s := DefaultSettings()
	s.bind(fs)
	return fs
}

// TestFlagTableMatchesTheFlags: docs/configuration.md lists every flag of `worker -h`, once, with
// its variable, and no other.
func TestFlagTableMatchesTheFlags(t *testing.T) {
	t.Parallel()
	var documented []string
	for _, r := range settingRows(t) {
		if r.env != EnvName(r.flag) {
			t.Errorf("configuration.md:%d: -%s is documented with variable %s, want %s", r.line, r.flag, r.env, EnvName(r.flag))
		}
		if strings.TrimSpace(r.meaning) == "" {
			t.Errorf("configuration.md:%d: -%s has no meaning", r.line, r.flag)
		}
		documented = append(documented, r.flag)
	}
	flags := helpFlags(t)
	slices.Sort(documented)
	slices.Sort(flags)
	if !slices.Equal(documented, flags) {
		t.Errorf("documented flags\n%v\nworker -h lists\n%v", documented, flags)
	}
	var bound []string
	boundFlags().VisitAll(func(f *flag.Flag) { bound = append(bound, f.Name) })
	slices.Sort(bound)
	if !slices.Equal(bound, flags) {
		t.Errorf("Settings binds\n%v\nbut worker -h lists\n%v", bound, flags)
	}
}

// TestFlagTableDefaults: the Default column of docs/configuration.md is each flag's default. A
// default written as code (`2m`, `4GiB`, `false`) must be what the flag reads as its default
// (so `336h` and `14d` are compared as durations, `4GiB` as a size); a default in words ("none",
// "the system's roots") must be a flag whose default is empty.
func TestFlagTableDefaults(t *testing.T) {
	t.Parallel()
	code := regexp.MustCompile("^`([^`]*)`")
	for _, r := range settingRows(t) {
		f := boundFlags().Lookup(r.flag)
		if f == nil {
			continue // TestFlagTableMatchesTheFlags reports it
		}
		m := code.FindStringSubmatch(r.def)
		if m == nil {
			if f.DefValue != "" {
				t.Errorf("configuration.md:%d: -%s defaults to %q, documented as %q", r.line, r.flag, f.DefValue, r.def)
			}
			continue
		}
		// Read the documented value the way the flag reads a value, on a fresh flag set.
		g := boundFlags().Lookup(r.flag)
		if err := g.Value.Set(m[1]); err != nil {
			t.Errorf("configuration.md:%d: -%s documented default %q is not a value of the flag: %v", r.line, r.flag, m[1], err)
			continue
		}
		if got := g.Value.String(); got != f.DefValue {
			t.Errorf("configuration.md:%d: -%s defaults to %q, documented as %q (%s)", r.line, r.flag, f.DefValue, m[1], got)
		}
	}
}
