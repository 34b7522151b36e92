package embedded

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// TestStartNATSStoreUnusable: a JetStream store that nats-server cannot use stops the start as
// soon as nats-server gives up, with its reason and the store directory, as a *StoreError (the
// worker then names -data-dir, not the port), and leaves no goroutine behind. Before, the
// reason went to no logger and the start failed 10 s later with "not ready after 10s".
func TestStartNATSStoreUnusable(t *testing.T) {
	for _, tt := range []struct {
		name   string
		spoil  func(t *testing.T, store string) // makes the store under store unusable
		reason string
	}{
		{"its directory is a file", func(t *testing.T, store string) {
			mkdir(t, store)
			if err := os.WriteFile(filepath.Join(store, "jetstream"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "Can't start JetStream: storage directory is not a directory"},
		{"its directory is not writable", func(t *testing.T, store string) {
			if os.Geteuid() == 0 {
				t.Skip("root writes any directory")
			}
			mkdir(t, store)
			if err := os.Chmod(store, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(store, 0o700) })
		}, "Can't start JetStream: could not create storage directory - mkdir STORE/jetstream: permission denied"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			dir := t.TempDir()
			store := filepath.Join(dir, "nats")
			tt.spoil(t, store)
			start := time.Now()
			n, err := StartNATS(dir, "127.0.0.1:0")
			took := time.Since(start)
			if n != nil {
				n.Close()
				t.Fatal("started on an unusable store")
			}
			var storeErr *StoreError
			if !errors.As(err, &storeErr) || storeErr.Dir != store {
				t.Fatalf("err %v (%T), want a *StoreError of %s", err, err, store)
			}
			want := "embedded NATS: JetStream store " + store + ": " + strings.ReplaceAll(tt.reason, "STORE", store)
			if err.Error() != want {
				t.Errorf("err %q\nwant %q", err, want)
			}
			if took > 2*time.Second {
				t.Errorf("the start failed after %v, want at once", took.Round(time.Millisecond))
			}
			if err := goleak.Find(ignore); err != nil {
				t.Errorf("goroutines left by the failed start:\n%v", err)
			}
		})
	}
}

// TestStartLogKeepsStartUpErrorsOnly: the embedded server's logger keeps its first fatal error and
// its first startLogLines errors, each cut at startLogLen bytes, and nothing once the server is
// ready (errors then can quote what a client sent).
func TestStartLogKeepsStartUpErrorsOnly(t *testing.T) {
	t.Parallel()
	l := &startLog{}
	l.Warnf("a warning")
	l.Errorf("error %d", 1)
	l.Fatalf("fatal %d", 1)
	l.Errorf("error %d: %s", 2, strings.Repeat("é", startLogLen))
	l.Fatalf("fatal %d", 2)
	l.Errorf("error %d", 3)
	l.Errorf("error %d", 4)
	fatal, errs := l.failure()
	long := "error 2: " + strings.Repeat("é", (startLogLen-len("error 2: "))/2) + "…"
	if want := []string{"error 1", long, "error 3"}; fatal != "fatal 1" || strings.Join(errs, "\n") != strings.Join(want, "\n") {
		t.Errorf("kept %q and %q, want %q and %q", fatal, errs, "fatal 1", want)
	}
	l = &startLog{}
	l.started()
	l.Errorf("parser ERROR, proto='PUB orders.created.demo 12\r\n{\"name\":...'")
	l.Fatalf("fatal")
	if fatal, errs := l.failure(); fatal != "" || len(errs) != 0 {
		t.Errorf("kept %q and %q once ready, want nothing", fatal, errs)
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

// TestSandboxCloseWithStalledBody: a client stalled mid-body does not hold the embedded sandbox's
// Close: the sandbox ends the read, and Shutdown returns at once rather than after its 2 s.
func TestSandboxCloseWithStalledBody(t *testing.T) {
	sb, err := StartSandbox(sandbox.Config{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(sb.BaseURL(), "/api/"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /api/transaction.do HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n<request>"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	sb.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v with a client stalled mid-body; want it at once", d)
	}
}
