package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// SandboxOptions configure a stack's ATODENE sandbox (cmd/atodene-sandbox).
type SandboxOptions struct {
	// Shops are the merchants it accepts. They go to it in a file, so that no password shows in
	// ps. Default: the sandbox's own, sandbox.DemoShop.
	Shops []sandbox.Shop
	// ReviewDelay is both its -review-delay (how long a review, 審査中, lasts) and its
	// -hold-delay (how long a hold, 保留, lasts). Default 2 s, so that scenarios see reviews end.
	ReviewDelay time.Duration
	// SlowDelay is its -slow-delay, the delay of every answer about a "slow" buyer. Default: the
	// sandbox's, 5 s.
	SlowDelay time.Duration
	// Seed is its -seed, which makes its random decisions and faults. Default 1.
	Seed uint64
	// AuthorizationLifetime is its -authorization-lifetime: how long an approval lasts before a
	// shipment report or a change is refused (er000102). Default: for ever.
	AuthorizationLifetime time.Duration
	// Faults are set once it answers. Default: none.
	Faults sandbox.Faults
}

// startSandbox starts the sandbox on a free port and waits until its admin API answers.
func (s *Stack) startSandbox(ctx context.Context) error {
	o := s.opts.Sandbox
	port, err := childproc.FreePort()
	if err != nil {
		return err
	}
	review := o.ReviewDelay
	if review <= 0 {
		review = 2 * time.Second
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"-addr", addr, "-review-delay", review.String(), "-hold-delay", review.String(),
		"-seed", strconv.FormatUint(max(o.Seed, 1), 10)}
	if o.SlowDelay > 0 {
		args = append(args, "-slow-delay", o.SlowDelay.String())
	}
	if o.AuthorizationLifetime > 0 {
		args = append(args, "-authorization-lifetime", o.AuthorizationLifetime.String())
	}
	if len(o.Shops) > 0 {
		var lines strings.Builder
		for _, shop := range o.Shops {
			fmt.Fprintf(&lines, "%s:%s:%s\n", shop.ShopCode, shop.LinkID, shop.LinkPassword)
		}
		file := filepath.Join(s.Dir, "sandbox-shops.txt")
		if err := os.WriteFile(file, []byte(lines.String()), 0o600); err != nil {
			return err
		}
		args = append(args, "-shops-file", file)
	}
	s.Sandbox, err = s.host.Procs.Start("atodene-sandbox", s.host.Bins.Sandbox, filepath.Join(s.Dir, "sandbox.log"), nil, args...)
	if err != nil {
		return err
	}
	s.SandboxURL = "http://" + addr
	if err := childproc.WaitHTTP(ctx, s.SandboxURL+"/sandbox/stats", 15*time.Second, s.Sandbox); err != nil {
		return err
	}
	if o.Faults != (sandbox.Faults{}) {
		return s.SetFaults(ctx, o.Faults)
	}
	return nil
}

// SetFaults replaces the sandbox's fault injection; the zero Faults turns it off. An error is the
// admin API's refusal or an HTTP failure.
func (s *Stack) SetFaults(ctx context.Context, f sandbox.Faults) error {
	return sandbox.PutFaults(ctx, s.SandboxURL, f)
}

// SandboxJSON GETs an endpoint of the sandbox's admin API (e.g. /sandbox/stats) and decodes its
// JSON into v. An error is an HTTP failure, a status other than 200, or a body that does not
// decode.
func (s *Stack) SandboxJSON(ctx context.Context, path string, v any) error {
	body, err := childproc.Get(ctx, s.SandboxURL+path)
	if err != nil {
		return err
	}
	defer body.Close()
	return json.NewDecoder(body).Decode(v)
}
