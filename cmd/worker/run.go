package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/termtable"
	"go.yaml.in/yaml/v3"
)

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// run runs the command line args (without the program name), reading the environment of the
// process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runEnv(ctx, args, os.LookupEnv, stdout, stderr)
}

// runEnv is run with the environment injected.
func runEnv(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if args[0] == "config" && len(args) > 1 && args[1] == "check" {
			return configCheck(args[2:], lookupEnv, stdout, stderr)
		}
		return usageError{fmt.Errorf("unknown command %q: want `worker [flags]` or `worker config check [flags]`", strings.Join(args, " "))}
	}
	settings, shops, err := loadConfig(args, lookupEnv, stdout)
	if errors.As(err, new(usageError)) {
		return err
	}
	if rerr := settings.RequireServers(); rerr != nil {
		return usageError{rerr}
	}
	if settings.Demo {
		// The demo publishes to the sandbox's demo shop: a shops file in the working directory
		// (the default -config) would leave every demo order to an unknown shop.
		return serve(ctx, settings, nil, getenv(lookupEnv), stdout, stderr)
	}
	if err != nil && !(settings.Embedded && shopsFileMissing(settings.ShopsFile)) {
		return err
	}
	return serve(ctx, settings, shops, getenv(lookupEnv), stdout, stderr)
}

// shopsFileMissing reports whether the shops file itself does not exist: -embedded then runs the
// sandbox's demo shop. A file that exists is loaded and validated, whatever it refers to: a
// missing password file is its error, not a reason to run the demo instead.
func shopsFileMissing(path string) bool {
	_, err := os.Stat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// loadConfig parses the settings, then loads the shops file they name. Help (printed to help) and bad settings
// are usage errors; a bad shops file is not.
func loadConfig(args []string, lookupEnv func(string) (string, bool), help io.Writer) (config.Settings, *config.Shops, error) {
	getenv := func(k string) string { v, _ := lookupEnv(k); return v }
	settings, err := config.ParseSettings(args, getenv, help)
	if err != nil {
		return config.Settings{}, nil, usageError{err}
	}
	shops, err := config.LoadShops(settings.ShopsFile, lookupEnv, config.MinReauthorizeAfter(settings.MinReauthorizeAfter))
	if err != nil {
		return settings, nil, err
	}
	// An order's state, and the data kept for its re-authorization, must outlive the wait for it.
	if longest := shops.LongestReauthorizeAfter(); longest > 0 && settings.Retention <= longest {
		return settings, nil, fmt.Errorf("%s: reauthorize_after %s is not shorter than -retention %s: an order's state and kept data would expire before its re-authorization; lengthen -retention or shorten reauthorize_after",
			shops.File(), longest, settings.Retention)
	}
	return settings, shops, nil
}

// configCheck validates the settings and the shops file, and prints the shops as YAML with
// defaults filled in and secrets masked.
func configCheck(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	_, shops, err := loadConfig(args, lookupEnv, stdout)
	if err != nil {
		return err
	}
	n, noun := len(shops.All()), "shops"
	if n == 1 {
		noun = "shop"
	}
	fmt.Fprintf(stdout, "# %s: valid, %d %s; passwords masked\n", shops.File(), n, noun)
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	if err := enc.Encode(shops); err != nil {
		return err
	}
	return enc.Close()
}

// exitCode prints err, if any, to stderr, one problem per line, and returns the exit status:
// 0 for success and for -h, 2 for a usage error, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	for line := range strings.Lines(err.Error()) {
		termtable.Fprintf(stderr, "worker: %s\n", strings.TrimSuffix(line, "\n"))
	}
	if errors.As(err, new(usageError)) {
		fmt.Fprintln(stderr, "Run 'worker -h' for the list of settings.")
		return 2
	}
	return 1
}

// getenv is lookupEnv as a Getenv: "" for a variable that is not set.
func getenv(lookupEnv func(string) (string, bool)) func(string) string {
	return func(name string) string { v, _ := lookupEnv(name); return v }
}
