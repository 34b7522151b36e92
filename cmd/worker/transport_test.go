package main

import (
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// connectWith connects to NATS as serve does, with the settings of args (and a Redis URL, which
// connectNATS does not use).
func connectWith(t *testing.T, args ...string) error {
	t.Helper()
	s, err := config.ParseSettings(append(args, "-redis-url=redis://127.0.0.1:1"), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("ParseSettings: %v", err)
	}
	nc, err := connectNATS(s.NATSURL, s, zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatalf("connected, then: %v", err)
	}
	return nil
}

// secretFile writes content, which holds the word "hunter2", to a file of the test: an error about
// the file must not quote it.
func secretFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConnectNATSClientCertificate: against a server that requires and verifies client
// certificates (mutual TLS), the worker connects with -nats-ca, -nats-cert and -nats-key; without
// its certificate the server turns it away, and a file it cannot use is an error naming the flag
// and the file, not what the file holds.
func TestConnectNATSClientCertificate(t *testing.T) {
	t.Parallel()
	pki := testenv.NewPKI(t)
	srv := testenv.StartNATSTLS(t, pki)
	if !strings.HasPrefix(srv.URL, "tls://") {
		t.Fatalf("server URL %s, want tls://", srv.URL)
	}
	badKey := secretFile(t, "bad-key.pem", "-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----\n")
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name string
		args []string
		want []string // parts of the error; none: it connects
	}{
		{"ca and client certificate", []string{"-nats-ca", pki.CAFile, "-nats-cert", pki.ClientCertFile, "-nats-key", pki.ClientKeyFile}, nil},
		{"no client certificate", []string{"-nats-ca", pki.CAFile}, []string{"connecting to NATS"}},
		{"server certificate not trusted", []string{"-nats-cert", pki.ClientCertFile, "-nats-key", pki.ClientKeyFile}, []string{"connecting to NATS", "certificate"}},
		{"missing certificate file", []string{"-nats-ca", pki.CAFile, "-nats-cert", missing, "-nats-key", pki.ClientKeyFile}, []string{"-nats-cert " + missing + ": no such file"}},
		{"bad key file", []string{"-nats-ca", pki.CAFile, "-nats-cert", pki.ClientCertFile, "-nats-key", badKey}, []string{"-nats-cert " + pki.ClientCertFile, "-nats-key " + badKey}},
		{"ca file without certificates", []string{"-nats-ca", badKey, "-nats-cert", pki.ClientCertFile, "-nats-key", pki.ClientKeyFile}, []string{"-nats-ca " + badKey + ": no PEM certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := connectWith(t, append([]string{"-nats-url", srv.URL}, tt.args...)...)
			checkConnectError(t, err, tt.want)
		})
	}
}

// TestConnectNATSNkey: against a server that knows its user by a public nkey, the worker connects
// with the seed file of -nats-nkey; another user's seed, or none, is turned away.
func TestConnectNATSNkey(t *testing.T) {
	t.Parallel()
	seed, pub := testenv.NkeyUser(t)
	other, _ := testenv.NkeyUser(t)
	srv := testenv.StartNATSWith(t, func(o *natsserver.Options) { o.Nkeys = []*natsserver.NkeyUser{{Nkey: pub}} })
	notSeed := secretFile(t, "bad.nk", "SUhunter2\n")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"the user's seed", []string{"-nats-nkey", seed}, nil},
		{"another user's seed", []string{"-nats-nkey", other}, []string{"connecting to NATS", "Authorization Violation"}},
		{"no seed", nil, []string{"connecting to NATS", "Authorization Violation"}},
		{"not a seed", []string{"-nats-nkey", notSeed}, []string{"-nats-nkey " + notSeed + ": "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := connectWith(t, append([]string{"-nats-url", srv.URL}, tt.args...)...)
			checkConnectError(t, err, tt.want)
		})
	}
}

// TestConnectRedisClientCertificate: against a Redis on TLS that requires and verifies client
// certificates, the worker connects to a rediss:// -redis-url with -redis-ca, -redis-cert and
// -redis-key (here given by their variables); without its certificate Redis turns it away.
func TestConnectRedisClientCertificate(t *testing.T) {
	t.Parallel()
	pki := testenv.NewPKI(t)
	srv := testenv.StartRedisTLS(t, pki)
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"ca and client certificate", map[string]string{"ATODENE_WORKER_REDIS_CA": pki.CAFile,
			"ATODENE_WORKER_REDIS_CERT": pki.ClientCertFile, "ATODENE_WORKER_REDIS_KEY": pki.ClientKeyFile}, nil},
		{"no client certificate", map[string]string{"ATODENE_WORKER_REDIS_CA": pki.CAFile}, []string{"connecting to Redis at " + srv.Addr(), "certificate required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"ATODENE_WORKER_NATS_URL": "nats://127.0.0.1:1", "ATODENE_WORKER_REDIS_URL": "rediss://" + srv.Addr()}
			maps.Copy(env, tt.env)
			s, err := config.ParseSettings(nil, func(k string) string { return env[k] }, io.Discard)
			if err != nil {
				t.Fatalf("ParseSettings: %v", err)
			}
			rdb, err := connectRedis(t.Context(), s)
			if err == nil {
				rdb.Close()
			}
			checkConnectError(t, err, tt.want)
		})
	}
}

func checkConnectError(t *testing.T, err error, want []string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("connecting: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("connected, want an error with %q", want)
	}
	t.Log(err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q, want it to contain %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error quotes a file's content: %v", err)
	}
}
