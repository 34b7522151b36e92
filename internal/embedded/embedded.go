// Package embedded runs the product's servers in-process, so that one command runs the whole
// product on a bare machine: a NATS server with JetStream (the real nats-server module, storing
// under a data directory), a Redis-protocol server (miniredis: its state is in memory only and
// lost at exit), and the ATODENE sandbox with its demo shop.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// NATS is an in-process NATS server with JetStream.
type NATS struct{ srv *natsserver.Server }

// natsReadyWithin is how long StartNATS waits for the server to accept connections.
const natsReadyWithin = 10 * time.Second

// StoreError is a start of the embedded NATS server that failed on its JetStream store (the
// directory under the data directory cannot be created, read or written), not on its address.
type StoreError struct {
	Dir string // the store directory, <dataDir>/nats
	Err error  // what nats-server said
}

func (e *StoreError) Error() string {
	return "embedded NATS: JetStream store " + e.Dir + ": " + e.Err.Error()
}

func (e *StoreError) Unwrap() error { return e.Err }

// StartNATS starts NATS on addr, a host:port (port 0 picks a free port), storing JetStream data
// under dataDir/nats. The error says when the port is in use; it is a *StoreError when JetStream
// cannot use its store, returned as soon as nats-server gives up (it does at once, for a store
// it cannot write), with nats-server's reason.
func StartNATS(dataDir, addr string) (*NATS, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: port %q: %w", portText, err)
	}
	if port == 0 {
		port = natsserver.RANDOM_PORT
	}
	// A port in use: say so at once, in the system's words, before nats-server tries it.
	if port != natsserver.RANDOM_PORT {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		l.Close()
	}
	store := filepath.Join(dataDir, "nats")
	srv, err := natsserver.NewServer(&natsserver.Options{
		ServerName: "atodene-embedded", Host: host, Port: port,
		JetStream: true, StoreDir: store, NoSigs: true, NoLog: true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	log := &startLog{}
	srv.SetLogger(log, false, false)
	go srv.Start()
	// nats-server reports a failed start (a store it cannot write, say) only to its logger, and
	// never becomes ready: look at both.
	deadline := time.Now().Add(natsReadyWithin)
	for !srv.ReadyForConnections(50 * time.Millisecond) {
		fatal, errs := log.failure()
		if fatal == "" && time.Now().Before(deadline) {
			continue
		}
		srv.Shutdown()
		srv.WaitForShutdown()
		switch {
		case strings.HasPrefix(fatal, "Can't start JetStream"):
			return nil, &StoreError{Dir: store, Err: errors.New(fatal)}
		case fatal != "":
			return nil, fmt.Errorf("embedded NATS: %s", fatal)
		case len(errs) > 0:
			return nil, fmt.Errorf("embedded NATS: not ready after %s: %s", natsReadyWithin, strings.Join(errs, "; "))
		}
		return nil, fmt.Errorf("embedded NATS: not ready after %s", natsReadyWithin)
	}
	log.started()
	return &NATS{srv: srv}, nil
}

// startLog is the embedded nats-server's logger (natsserver.Logger). Until the server is ready it
// keeps its first fatal error and its first errors, bounded (startLogLines lines of at most
// startLogLen bytes): the cause of a start that fails, in paths and system errors. It keeps and
// prints nothing else, and nothing once the server is ready: with clients connected, nats-server's
// errors can quote what a client sent (its parser errors do), an order's personal data.
type startLog struct {
	mu    sync.Mutex
	ready bool
	fatal string
	errs  []string
}

const (
	startLogLines = 3
	startLogLen   = 300
)

func (l *startLog) Noticef(string, ...any)         {}
func (l *startLog) Warnf(string, ...any)           {}
func (l *startLog) Debugf(string, ...any)          {}
func (l *startLog) Tracef(string, ...any)          {}
func (l *startLog) Errorf(format string, v ...any) { l.record(false, format, v) }

// Fatalf records the error: nats-server's own logger would exit the process, this one leaves
// StartNATS to return it.
func (l *startLog) Fatalf(format string, v ...any) { l.record(true, format, v) }

func (l *startLog) record(fatal bool, format string, v []any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ready {
		return
	}
	line := fmt.Sprintf(format, v...)
	if len(line) > startLogLen {
		line = strings.ToValidUTF8(line[:startLogLen], "") + "…"
	}
	switch {
	case fatal && l.fatal == "":
		l.fatal = line
	case !fatal && len(l.errs) < startLogLines:
		l.errs = append(l.errs, line)
	}
}

// failure returns the first fatal error and the first errors logged so far.
func (l *startLog) failure() (string, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal, slices.Clone(l.errs)
}

// started stops the recording.
func (l *startLog) started() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ready = true
}

// URL is where clients connect.
func (n *NATS) URL() string { return n.srv.ClientURL() }

// Close shuts the server down.
func (n *NATS) Close() { n.srv.Shutdown(); n.srv.WaitForShutdown() }

// StartRedis starts an in-memory Redis-protocol server on addr, a host:port (port 0 picks a
// free port).
func StartRedis(addr string) (*miniredis.Miniredis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedded Redis: %w", err)
	}
	return m, nil
}

// Sandbox is the ATODENE sandbox served on a local port.
type Sandbox struct {
	srv  *http.Server
	sb   *sandbox.Server
	base string
}

// StartSandbox serves the sandbox with cfg on a free local port.
func StartSandbox(cfg sandbox.Config, log *zap.Logger) (*Sandbox, error) {
	sb, err := sandbox.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded sandbox: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embedded sandbox: %w", err)
	}
	// ReadTimeout and IdleTimeout as in cmd/atodene-sandbox: a client stalled mid-body cannot hold a
	// handler for ever (and Close, through sb.Close, ends its read at once).
	s := &Sandbox{srv: &http.Server{Handler: sb, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute}, sb: sb,
		base: "http://" + l.Addr().String()}
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("embedded sandbox stopped", zap.Error(err))
		}
	}()
	return s, nil
}

// BaseURL is the sandbox's API root, e.g. http://127.0.0.1:34567/api/.
func (s *Sandbox) BaseURL() string { return s.base + "/api/" }

// AdminURL is the root of the sandbox's admin API.
func (s *Sandbox) AdminURL() string { return s.base + "/sandbox/" }

// Close stops serving, releasing requests held by fault injection.
func (s *Sandbox) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.sb.Close()
	if s.srv.Shutdown(ctx) != nil {
		_ = s.srv.Close()
	}
}
