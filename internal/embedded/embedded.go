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
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// NATS is an in-process NATS server with JetStream.
type NATS struct{ srv *natsserver.Server }

// StartNATS starts NATS on addr, a host:port (port 0 picks a free port), storing JetStream data
// under dataDir/nats. The error says when the port is in use.
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
	// nats-server gives up on a port in use by logging and exiting the process: check first.
	if port != natsserver.RANDOM_PORT {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		l.Close()
	}
	srv, err := natsserver.NewServer(&natsserver.Options{
		ServerName: "atodene-embedded", Host: host, Port: port,
		JetStream: true, StoreDir: filepath.Join(dataDir, "nats"), NoSigs: true, NoLog: true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded NATS: not ready after 10s")
	}
	return &NATS{srv: srv}, nil
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
	s := &Sandbox{srv: &http.Server{Handler: sb, ReadHeaderTimeout: 5 * time.Second}, sb: sb,
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
	_ = s.srv.Shutdown(ctx)
}
