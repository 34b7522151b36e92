package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// TestRedisOutageLogsJSON runs the worker binary and stops its Redis: what the Redis client has to
// say about it (go-redis prints its own plain-text lines on stderr unless told otherwise) comes
// through the worker's logger, so that every line of the log stays one JSON object.
func TestRedisOutageLogsJSON(t *testing.T) {
	t.Parallel()
	bin := buildWorker(t)
	r := testenv.StartPrivateRedis(t)
	ns := testenv.StartNATS(t)
	shops := filepath.Join(t.TempDir(), "shops.yaml")
	yaml := fmt.Sprintf("shops:\n  - id: shop-l\n    atodene:\n      base_url: http://127.0.0.1:1/api/\n      shop_code: %s\n      link_password: ${LIBLOG_TEST_PASSWORD}\n    fees:\n      mode: add\n      table:\n        - {min: 1, max: 999999, fee: 205}\n",
		sandbox.DemoShop.ShopCode)
	if err := os.WriteFile(shops, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr := freeAddr(t)
	cmd := exec.Command(bin, "-config", shops, "-nats-url", ns.URL, "-redis-url", "redis://"+r.Addr, "-http-addr", httpAddr)
	cmd.Env = append(os.Environ(), "LIBLOG_TEST_PASSWORD="+sandbox.DemoShop.LinkPassword)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	})
	waitReady(t, "http://"+httpAddr+"/readyz")

	r.Stop()
	// The readiness probe and the pending gauge ask Redis; go-redis reports its failed dials.
	wait.Until(15*time.Second, func() bool { // the check of the log below says whether it came
		if strings.Contains(stderr.String(), "dial") {
			return true
		}
		for _, path := range []string{"/readyz", "/metrics"} {
			if resp, err := http.Get("http://" + httpAddr + path); err == nil {
				resp.Body.Close()
			}
		}
		return false
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("the worker exited with %v after SIGTERM", err)
	}

	log := stderr.String()
	if !strings.Contains(log, "dial") {
		t.Fatalf("no log line about the Redis outage: the test proves nothing; log:\n%s", log)
	}
	for l := range strings.Lines(log) {
		if l = strings.TrimSpace(l); l != "" && !json.Valid([]byte(l)) {
			t.Errorf("a log line that is not JSON: %s", l)
		}
	}
}
