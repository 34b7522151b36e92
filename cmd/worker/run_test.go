package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

const (
	rakutenShop = `  - id: rakuten-01
    atodene:
      base_url: https://www.manage.atodene.jp/api/
      shop_code: abc123456789
      link_password: ${ATODENE_RAKUTEN01_PASSWORD}
    fees:
      mode: add
      table:
        - {min: 1, max: 999999, fee: 205}
`
	ownCartShop = `  - id: own-cart
    atodene:
      base_url: http://127.0.0.1:8089/api/
      shop_code: own000000001
      link_password_file: own-cart.password
      invoice_delivery: enclosed
`
	shopsYAML = "shops:\n" + rakutenShop + ownCartShop
)

const wantPrinted = `shops:
  - id: rakuten-01
    atodene:
      base_url: https://www.manage.atodene.jp/api/
      shop_code: abc123456789
      link_id: original00
      link_password: '****' # from ${ATODENE_RAKUTEN01_PASSWORD}
      invoice_delivery: separate
    fees:
      mode: add # 加算する
      table:
        - {min: 1, max: 999999, fee: 205}
    reauthorize_after: 88d
  - id: own-cart
    atodene:
      base_url: http://127.0.0.1:8089/api/
      shop_code: own000000001
      link_id: original00
      link_password: '****' # from file own-cart.password
      invoice_delivery: enclosed
    fees:
      mode: keep # 変更しない
    reauthorize_after: 88d
`

// writeShops writes a shops file and the password file it refers to, and returns its path.
func writeShops(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "own-cart.password"), []byte("fileSecret01\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "shops.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func lookup(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// servers are the settings without defaults outside -embedded.
var servers = map[string]string{"ATODENE_WORKER_NATS_URL": "nats://127.0.0.1:1", "ATODENE_WORKER_REDIS_URL": "redis://127.0.0.1:1"}

var passwordEnv = map[string]string{"ATODENE_RAKUTEN01_PASSWORD": "envSecret01",
	"ATODENE_WORKER_NATS_URL": servers["ATODENE_WORKER_NATS_URL"], "ATODENE_WORKER_REDIS_URL": servers["ATODENE_WORKER_REDIS_URL"]}

func TestConfigCheckValid(t *testing.T) {
	t.Parallel()
	path := writeShops(t, shopsYAML)
	var stdout, stderr bytes.Buffer
	err := runEnv(context.Background(), []string{"config", "check", "-config", path}, lookup(passwordEnv), &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 0 {
		t.Fatalf("exit %d: %v\nstderr: %s", code, err, stderr.String())
	}
	want := "# " + path + ": valid, 2 shops; passwords masked\n" + wantPrinted
	if stdout.String() != want {
		t.Errorf("stdout =\n%s\nwant\n%s", stdout.String(), want)
	}
	for _, secret := range []string{"envSecret01", "fileSecret01"} {
		if strings.Contains(stdout.String()+stderr.String(), secret) {
			t.Errorf("the output shows the secret %q", secret)
		}
	}
}

// TestConfigCheckMinReauthorizeAfter: a reauthorize_after of seconds is refused unless the worker
// is started with a -min-reauthorize-after at most as long.
func TestConfigCheckMinReauthorizeAfter(t *testing.T) {
	t.Parallel()
	path := writeShops(t, shopsYAML+"    reauthorize_after: 4s\n") // own-cart's
	for _, tt := range []struct {
		flags    []string
		wantCode int
		want     string // part of stdout or stderr
	}{
		{nil, 1, `reauthorize_after: "4s": shorter than 1h, probably a wrong unit`},
		{[]string{"-min-reauthorize-after", "5s"}, 1, `reauthorize_after: "4s": shorter than 5s, probably a wrong unit`},
		{[]string{"-min-reauthorize-after", "1s"}, 0, "reauthorize_after: 4s"},
	} {
		var stdout, stderr bytes.Buffer
		err := runEnv(context.Background(), append([]string{"config", "check", "-config", path}, tt.flags...), lookup(passwordEnv), &stdout, &stderr)
		if code := exitCode(err, &stderr); code != tt.wantCode || !strings.Contains(stdout.String()+stderr.String(), tt.want) {
			t.Errorf("%v: exit %d, want %d with %q; stdout:\n%s\nstderr:\n%s", tt.flags, code, tt.wantCode, tt.want, stdout.String(), stderr.String())
		}
	}
}

func TestConfigCheckInvalid(t *testing.T) {
	t.Parallel()
	content := strings.Replace(shopsYAML, "max: 999999", "max: 0", 1)
	content = strings.Replace(content, "invoice_delivery: enclosed", "invoice_delivery: parcel", 1)
	path := writeShops(t, content)
	var stdout, stderr bytes.Buffer
	err := runEnv(context.Background(), []string{"config", "check", "-config=" + path}, lookup(servers), &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; err %v", code, err)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing for an invalid file", stdout.String())
	}
	want := []string{
		`worker: ` + path + `: shop "rakuten-01": atodene.link_password: environment variable ATODENE_RAKUTEN01_PASSWORD is not set (line 6)`,
		`worker: ` + path + `: shop "rakuten-01": fees.table[1]: min 1 > max 0 (line 10)`,
		`worker: ` + path + `: shop "own-cart": atodene.invoice_delivery: "parcel": want separate or enclosed (line 16)`,
	}
	if got := strings.TrimSuffix(stderr.String(), "\n"); got != strings.Join(want, "\n") {
		t.Errorf("stderr =\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
}

// TestRun drives run itself, with the process environment: the shop reads its password from a
// file, so no variable is needed.
func TestRun(t *testing.T) {
	path := writeShops(t, "shops:\n"+ownCartShop)
	srv := []string{"-nats-url", "nats://127.0.0.1:1", "-redis-url", "redis://127.0.0.1:1"}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // part of stdout
		wantErr  string // part of stderr
	}{
		{"config check", append([]string{"config", "check", "-config", path}, srv...), 0, "valid, 1 shop;", ""},
		{"no servers", []string{"-config", path}, 2, "", "worker: -nats-url (ATODENE_WORKER_NATS_URL): required (or -embedded, to run an in-process NATS server)\nworker: -redis-url (ATODENE_WORKER_REDIS_URL): required"},
		{"config check needs no servers", []string{"config", "check", "-config", path}, 0, "valid, 1 shop;", ""},
		{"help", []string{"-h"}, 0, "-poll-deadline duration", ""},
		{"config check help", []string{"config", "check", "-help"}, 0, "[$ATODENE_WORKER_CONFIG]", ""},
		{"NATS unreachable", append([]string{"-config", path}, srv...), 1, "", "worker: connecting to NATS"},
		{"bad setting", []string{"-config", path, "-ack-wait=10s"}, 2, "", "worker: -ack-wait (ATODENE_WORKER_ACK_WAIT): 10s must exceed -provider-timeout 30s"},
		{"unknown flag", []string{"-nats=nats://x"}, 2, "", "worker: flag provided but not defined: -nats\nRun 'worker -h'"},
		{"unknown command", []string{"serve"}, 2, "", `worker: unknown command "serve"`},
		{"config without check", []string{"config"}, 2, "", `worker: unknown command "config"`},
		{"missing shops file", append([]string{"config", "check", "-config", filepath.Join(t.TempDir(), "none.yaml")}, srv...), 1, "", "none.yaml: no such file or directory"},
		{"extra argument", append([]string{"config", "check", "-config", path}, append(srv, "more.yaml")...), 2, "", `worker: unexpected argument "more.yaml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			code := exitCode(err, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; err: %v", code, tt.wantCode, err)
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout =\n%s\nwant it to contain %q", stdout.String(), tt.wantOut)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr =\n%s\nwant it to contain %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{flag.ErrHelp, 0},
		{usageError{flag.ErrHelp}, 0},
		{usageError{errors.New("bad flag")}, 2},
		{errors.New("shops.yaml: bad"), 1},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if got := exitCode(tt.err, &stderr); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to read while run writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	var err error
	ready := wait.Until(10*time.Second, func() bool {
		var resp *http.Response
		if resp, err = http.Get(url); err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !ready {
		t.Fatalf("%s not ready in 10s: %v", url, err)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestConfigCheckRetentionOutlivesReauthorization: a -retention not longer than a shop's
// reauthorize_after is refused, naming both: the order's state would expire before its
// re-authorization.
func TestConfigCheckRetentionOutlivesReauthorization(t *testing.T) {
	t.Parallel()
	path := writeShops(t, shopsYAML)
	var stdout, stderr bytes.Buffer
	err := runEnv(context.Background(), []string{"config", "check", "-config", path, "-retention", "2112h"}, lookup(passwordEnv), &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; err %v", code, err)
	}
	if want := "reauthorize_after 2112h0m0s is not shorter than -retention 2112h0m0s"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want it to say %q", stderr.String(), want)
	}
}

// TestListenedAddr: the banner's metrics address is -http-addr as written, with the port the
// listener took.
func TestListenedAddr(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		asked string
		got   net.Addr
		want  string
	}{
		{"127.0.0.1:0", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41234}, "127.0.0.1:41234"},
		{"127.0.0.1:9090", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9090}, "127.0.0.1:9090"},
		{"0.0.0.0:9090", &net.TCPAddr{IP: net.IPv4zero, Port: 9090}, "0.0.0.0:9090"},
		{":9090", &net.TCPAddr{IP: net.IPv6unspecified, Port: 9090}, ":9090"},
		{"localhost:0", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41234}, "localhost:41234"},
		{"[::1]:0", &net.TCPAddr{IP: net.IPv6loopback, Port: 41234}, "[::1]:41234"},
	} {
		if got := listenedAddr(tt.asked, tt.got); got != tt.want {
			t.Errorf("listenedAddr(%q, %v) = %q, want %q", tt.asked, tt.got, got, tt.want)
		}
	}
}
