package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// options are the parsed command line.
type options struct {
	addr        string
	cfg         sandbox.Config // without Logger
	readTimeout time.Duration  // the http.Server's ReadTimeout: readTimeout, shorter in tests
}

// ShopsEnv holds shops as the shops file does, one code:linkid:password per line: passwords in the
// environment (a secret of the container platform) rather than on the command line, which ps shows.
const ShopsEnv = "ATODENE_SANDBOX_SHOPS"

// parseFlags reads the command line, and the shops of ShopsEnv by getenv. flag.ErrHelp means -h
// was given and usage was printed.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{readTimeout: readTimeout}
	var shopsFile string
	fs := flag.NewFlagSet("atodene-sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8089", "listen address")
	fs.Func("shop", "accepted shop as `code:linkid:password` (repeatable; default: the demo shop; visible in ps: prefer -shops-file or $"+ShopsEnv+")", func(v string) error {
		shop, err := parseShop(v)
		o.cfg.Shops = append(o.cfg.Shops, shop)
		return err
	})
	fs.StringVar(&shopsFile, "shops-file", "", "file of shops, one code:linkid:password per line, # comments")
	fs.DurationVar(&o.cfg.ReviewDelay, "review-delay", 30*time.Second, "time until a review (審査中) gets its manual result (0: at once)")
	fs.DurationVar(&o.cfg.HoldDelay, "hold-delay", 60*time.Second, "time until a hold (保留) turns NG (0: at once)")
	fs.DurationVar(&o.cfg.SlowDelay, "slow-delay", 5*time.Second, "delay of every response about a slow… buyer (0: none)")
	fs.DurationVar(&o.cfg.AuthorizationLifetime, "authorization-lifetime", 0, "how long an authorization lasts from its last OK decision; then shipment reports and changes are refused (er000102) (0: never expires; 2112h is 88 days)")
	fs.Int64Var(&o.cfg.Seed, "seed", 0, "seed of the fault and ID random source (0: from the clock)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	// A delay given as 0 means none; sandbox.Config reads a zero delay as "the default".
	for _, d := range []struct {
		name string
		v    *time.Duration
	}{{"review-delay", &o.cfg.ReviewDelay}, {"hold-delay", &o.cfg.HoldDelay}, {"slow-delay", &o.cfg.SlowDelay}} {
		switch {
		case *d.v < 0:
			return o, fmt.Errorf("-%s must not be negative", d.name)
		case *d.v == 0:
			*d.v = sandbox.NoDelay
		}
	}
	if o.cfg.AuthorizationLifetime < 0 {
		return o, errors.New("-authorization-lifetime must not be negative (0: never expires)")
	}
	if shopsFile != "" {
		shops, err := readShopsFile(shopsFile)
		if err != nil {
			return o, err
		}
		o.cfg.Shops = append(o.cfg.Shops, shops...)
	}
	if v := getenv(ShopsEnv); v != "" {
		shops, err := parseShopLines(strings.NewReader(v), "$"+ShopsEnv)
		if err != nil {
			return o, err
		}
		o.cfg.Shops = append(o.cfg.Shops, shops...)
	}
	return o, nil
}

// parseShop reads code:linkid:password. The password is the rest of the line, so it may hold colons.
// Errors never quote the value, which holds a password.
func parseShop(v string) (sandbox.Shop, error) {
	parts := strings.SplitN(strings.TrimSpace(v), ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return sandbox.Shop{}, fmt.Errorf("a shop must be code:linkid:password")
	}
	return sandbox.Shop{ShopCode: parts[0], LinkID: parts[1], LinkPassword: parts[2]}, nil
}

func readShopsFile(path string) ([]sandbox.Shop, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseShopLines(f, path)
}

// parseShopLines reads one code:linkid:password per line of r, skipping blank lines and # comments;
// errors name where (name:line) without quoting the line.
func parseShopLines(r io.Reader, path string) ([]sandbox.Shop, error) {
	var shops []sandbox.Shop
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		shop, err := parseShop(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		shops = append(shops, shop)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return shops, nil
}
