package worker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// TestNewRedisTLS: against a Redis on TLS that requires and verifies client certificates, a
// client of a rediss:// URL with the CA, the client certificate and its key answers PING; without
// the client certificate, or without the CA (the system's roots do not know it), PING fails; a
// file that cannot be used is an error naming the flag and the file, not what the file holds.
func TestNewRedisTLS(t *testing.T) {
	t.Parallel()
	pki := testenv.NewPKI(t)
	srv := testenv.StartRedisTLS(t, pki)
	badKey := filepath.Join(t.TempDir(), "bad-key.pem")
	if err := os.WriteFile(badKey, []byte("-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	rediss := "rediss://" + srv.Addr()
	tests := []struct {
		name      string
		url       string
		files     transport.RedisFiles
		newErr    string // a part of NewRedis's error
		pingFails bool
	}{
		{"ca and client certificate", rediss, transport.RedisFiles{CA: pki.CAFile, Cert: pki.ClientCertFile, Key: pki.ClientKeyFile}, "", false},
		{"no client certificate", rediss, transport.RedisFiles{CA: pki.CAFile}, "", true},
		{"server certificate not trusted", rediss, transport.RedisFiles{Cert: pki.ClientCertFile, Key: pki.ClientKeyFile}, "", true},
		{"no files", rediss, transport.RedisFiles{}, "", true},
		{"missing ca file", rediss, transport.RedisFiles{CA: missing}, "-redis-ca " + missing + ": no such file", false},
		{"bad key file", rediss, transport.RedisFiles{CA: pki.CAFile, Cert: pki.ClientCertFile, Key: badKey}, "-redis-key " + badKey, false},
		{"key without certificate", rediss, transport.RedisFiles{Key: pki.ClientKeyFile}, "-redis-key: needs -redis-cert", false},
		{"files without rediss", "redis://" + srv.Addr(), transport.RedisFiles{CA: pki.CAFile}, "need a rediss:// -redis-url", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb, err := NewRedis(tt.url, tt.files)
			if tt.newErr != "" {
				if err == nil {
					rdb.Close()
					t.Fatalf("NewRedis: no error, want %q", tt.newErr)
				}
				if !strings.Contains(err.Error(), tt.newErr) || strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("NewRedis: %v, want %q and not the file's content", err, tt.newErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewRedis: %v", err)
			}
			defer rdb.Close()
			err = rdb.Ping(t.Context()).Err()
			switch {
			case tt.pingFails && err == nil:
				t.Fatal("PING answered, want a TLS error")
			case !tt.pingFails && err != nil:
				t.Fatalf("PING: %v", err)
			}
			if err != nil {
				t.Log(err)
			}
		})
	}
}
