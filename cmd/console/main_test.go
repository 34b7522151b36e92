package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/atodene-worker/atodene-worker/internal/console"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func noEnv(string) (string, bool) { return "", false }

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// TestHelp lists every flag with its variable, on stdout, exit status 0.
func TestHelp(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"-h"}, nil, &out, &errOut, noEnv)
	if !errors.Is(err, flag.ErrHelp) || exitCode(err, &errOut) != 0 {
		t.Fatalf("-h: %v", err)
	}
	var s settings
	flagSet(&s).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "-"+f.Name) || !strings.Contains(out.String(), "$"+envName(f.Name)) {
			t.Errorf("-h lacks -%s or $%s", f.Name, envName(f.Name))
		}
	})
}

// TestUsageErrors: no way to log in, a bad value, an argument: exit status 2, naming the problem.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "give -operators FILE"},
		{[]string{"-operators", "x", "extra"}, nil, `unexpected argument "extra"`},
		{[]string{"-operators", "x", "-session-ttl", "soon"}, nil, "invalid value"},
		{[]string{"-operators", "x"}, map[string]string{"ATODENE_CONSOLE_COOKIE_SECURE": "maybe"}, "ATODENE_CONSOLE_COOKIE_SECURE"},
		{[]string{"-operators", "x", "-trusted-proxies", "10.0.0.0/8,lb.internal"}, nil, `"lb.internal" is neither an address nor a CIDR prefix`},
	} {
		var out, errOut bytes.Buffer
		err := run(t.Context(), c.args, nil, &out, &errOut, env(c.env))
		if code := exitCode(err, &errOut); code != 2 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errOut.String(), c.want)
		}
	}
}

// TestEnvironment: a variable sets a flag; the flag wins over it.
func TestEnvironment(t *testing.T) {
	t.Parallel()
	s, err := parse([]string{"-http-addr", "127.0.0.1:9999"}, env(map[string]string{
		"ATODENE_CONSOLE_HTTP_ADDR": "0.0.0.0:1", "ATODENE_CONSOLE_TRUSTED_HEADER": "X-Forwarded-User", "ATODENE_CONSOLE_COOKIE_SECURE": "false",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.HTTPAddr != "127.0.0.1:9999" || s.TrustedHeader != "X-Forwarded-User" || s.CookieSecure {
		t.Errorf("settings %+v", s)
	}
	s, err = parse([]string{"-operators", "f"}, env(map[string]string{"ATODENE_CONSOLE_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7,2001:db8::/32"}), io.Discard)
	if got := s.TrustedProxies.String(); err != nil || got != "10.0.0.0/8,192.0.2.7/32,2001:db8::/32" {
		t.Errorf("-trusted-proxies from the environment: %q (%v)", got, err)
	}
	if s, _ := parse([]string{"-operators", "f"}, noEnv, io.Discard); s.HTTPAddr != "127.0.0.1:8090" || !s.CookieSecure || s.RedisPrefix != "atodene:" {
		t.Errorf("defaults %+v", s)
	}
}

// TestHash prints a line of the operators file for the password on stdin.
func TestHash(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"hash", "alice"}, strings.NewReader("s3cret\n"), &out, io.Discard, noEnv); err != nil {
		t.Fatal(err)
	}
	ops, err := console.ParseOperators(&out, "out")
	if err != nil || ops["alice"] == nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	if err := run(t.Context(), []string{"hash", "bad name"}, strings.NewReader("x\n"), io.Discard, io.Discard, noEnv); exitCode(err, io.Discard) != 2 {
		t.Errorf("a bad name: %v", err)
	}
	if err := run(t.Context(), []string{"hash", "bob"}, strings.NewReader(""), io.Discard, io.Discard, noEnv); exitCode(err, io.Discard) != 2 {
		t.Errorf("no password: %v", err)
	}
}

// syncBuffer is a buffer the console writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestServe runs the console against a NATS and the shared Redis: it prints its address, asks for
// a login, lets an operator of the file in, shows the shops of the shops file without their
// passwords, and stops when its context ends.
func TestServe(t *testing.T) {
	t.Parallel()
	natsURL, _ := testenv.JetStream(t)
	_, prefix := testenv.Redis(t)
	dir := t.TempDir()
	var hashOut bytes.Buffer
	if err := run(t.Context(), []string{"hash", "alice"}, strings.NewReader("pw-of-alice\n"), &hashOut, io.Discard, noEnv); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ops := write("operators", "# who may log in\n"+hashOut.String())
	key := write("session.key", strings.Repeat("0123456789abcdef", 3)+"\n")
	shops := write("shops.yaml", "shops:\n  - id: demo\n    atodene:\n      base_url: http://127.0.0.1:8089/api/\n      shop_code: demo00000001\n      link_password: ${DEMO_LINK_PASSWORD}\n")
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-nats-url", natsURL, "-redis-url", testenv.RedisURL(), "-redis-prefix", prefix, "-http-addr", addr,
			"-operators", ops, "-session-key-file", key, "-shops", shops, "-cookie-secure=false"}, nil, &stdout, &stderr, noEnv)
	}()
	if !wait.Until(10*time.Second, func() bool { return strings.Contains(stdout.String(), "operators' console on http://"+addr) }) {
		t.Fatalf("not started; stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	base := "http://" + addr
	res, err := client.Get(base + "/orders")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.Request.URL.Path != "/login" {
		t.Fatalf("GET /orders ended at %s, want the login page", res.Request.URL)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if csrf == nil {
		t.Fatal("no CSRF token on the login page")
	}
	res, err = client.PostForm(base+"/login", url.Values{"csrf": {string(csrf[1])}, "name": {"alice"}, "password": {"pw-of-alice"}, "next": {"/shops"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Request.URL.Path != "/shops" || !strings.Contains(string(page), "demo00000001") {
		t.Fatalf("after login: %d at %s", res.StatusCode, res.Request.URL)
	}
	if strings.Contains(string(page), "not set in the console") {
		t.Error("the shops page shows the stand-in of a password")
	}
	client.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return in 10s")
	}
	for _, want := range []string{`"msg":"operator logged in","operator":"alice"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "pw-of-alice") {
		t.Error("the log holds a password")
	}
}

// TestSessionKeyFile: a key shorter than 32 bytes is refused; none gives a random key, with a
// warning.
func TestSessionKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tooshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := newLogger(0, io.Discard)
	if _, err := authOf(settings{SessionKeyFile: short}, log); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("short key: %v", err)
	}
	var logs syncBuffer
	a, err := authOf(settings{}, newLogger(0, &logs))
	if err != nil || len(a.SessionKey) != 32 || !strings.Contains(logs.String(), "do not survive a restart") {
		t.Errorf("no key file: %v, %d bytes, log %q", err, len(a.SessionKey), logs.String())
	}
}

// TestFlagTableMatchesTheFlags: the console's table in docs/configuration.md lists every flag,
// once, with its variable and default, and no other.
func TestFlagTableMatchesTheFlags(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## The console's settings\n")
	if !ok {
		t.Fatal("docs/configuration.md has no section \"The console's settings\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `-([a-z0-9-]+)` \\| `([A-Z0-9_]+)` \\| (.*?) \\| (.*) \\|$")
	var s settings
	fs := flagSet(&s)
	var documented []string
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		documented = append(documented, m[1])
		f := fs.Lookup(m[1])
		if f == nil {
			t.Errorf("-%s is documented but is no flag", m[1])
			continue
		}
		if m[2] != envName(m[1]) {
			t.Errorf("-%s: variable %s, want %s", m[1], m[2], envName(m[1]))
		}
		def := regexp.MustCompile("^`([^`]*)`").FindStringSubmatch(m[3])
		switch {
		case def == nil && f.DefValue != "":
			t.Errorf("-%s defaults to %q, documented as %q", m[1], f.DefValue, m[3])
		case def != nil:
			g := flagSet(new(settings)).Lookup(m[1])
			if err := g.Value.Set(def[1]); err != nil || g.Value.String() != f.DefValue {
				t.Errorf("-%s defaults to %q, documented as %q", m[1], f.DefValue, def[1])
			}
		}
	}
	var flags []string
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f.Name) })
	slices.Sort(flags)
	slices.Sort(documented)
	if !slices.Equal(flags, documented) {
		t.Errorf("documented\n%v\nflags\n%v", documented, flags)
	}
}
