package publisher

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// runWithEnv runs the tool with args and the environment env.
func runWithEnv(t *testing.T, env map[string]string, args ...string) error {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	return a.Run(t.Context(), args)
}

// checkRun checks the error of a run: one that contains want, and never a file's content.
func checkRun(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want one with %q", err, want)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error quotes a file's content: %v", err)
	}
}

// TestNATSClientCertificate: against a NATS server that requires and verifies client
// certificates, the commands that connect do so with -nats-ca, -nats-cert and -nats-key, before
// the command, after it or from the environment; without the certificate the server turns them
// away. (The server has no DLQ stream: "stream not found" is the answer of a connected dlq ls.)
func TestNATSClientCertificate(t *testing.T) {
	t.Parallel()
	pki := testenv.NewPKI(t)
	srv := testenv.StartNATSTLS(t, pki)
	tls := []string{"-nats-ca", pki.CAFile, "-nats-cert", pki.ClientCertFile, "-nats-key", pki.ClientKeyFile}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"flags before the command", nil, append(append([]string{"-nats-url", srv.URL}, tls...), "dlq", "ls"), "stream not found"},
		{"flags after the command", nil, append([]string{"dlq", "ls", "-nats-url", srv.URL}, tls...), "stream not found"},
		{"environment", map[string]string{"ATODENE_PUBLISHER_NATS_URL": srv.URL, "ATODENE_PUBLISHER_NATS_CA": pki.CAFile,
			"ATODENE_PUBLISHER_NATS_CERT": pki.ClientCertFile, "ATODENE_PUBLISHER_NATS_KEY": pki.ClientKeyFile}, []string{"dlq", "ls"}, "stream not found"},
		{"no client certificate", nil, []string{"-nats-url", srv.URL, "-nats-ca", pki.CAFile, "dlq", "ls"}, "connecting to NATS at " + srv.URL},
		{"certificate without key", nil, []string{"-nats-url", srv.URL, "-nats-ca", pki.CAFile, "-nats-cert", pki.ClientCertFile, "dlq", "ls"},
			"-nats-cert: needs -nats-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkRun(t, runWithEnv(t, tt.env, tt.args...), tt.want)
		})
	}
}

// TestNATSNkey: against a NATS server that knows its user by a public nkey, the tool connects with
// the seed file of -nats-nkey; another user's seed is turned away, and -nats-nkey with
// -nats-creds is a mistake in the command line.
func TestNATSNkey(t *testing.T) {
	t.Parallel()
	seed, pub := testenv.NkeyUser(t)
	other, _ := testenv.NkeyUser(t)
	srv := testenv.StartNATSWith(t, func(o *natsserver.Options) { o.Nkeys = []*natsserver.NkeyUser{{Nkey: pub}} })
	checkRun(t, runWithEnv(t, map[string]string{"ATODENE_PUBLISHER_NATS_NKEY": seed}, "-nats-url", srv.URL, "dlq", "ls"), "stream not found")
	checkRun(t, runWithEnv(t, nil, "-nats-url", srv.URL, "dlq", "ls", "-nats-nkey", other), "Authorization Violation")
	err := runWithEnv(t, nil, "-nats-url", srv.URL, "-nats-creds", "user.creds", "-nats-nkey", seed, "dlq", "ls")
	checkRun(t, err, "-nats-nkey: not with -nats-creds")
	if !errors.As(err, new(UsageError)) {
		t.Errorf("-nats-nkey with -nats-creds: %T, want a UsageError (exit status 2)", err)
	}
}

// TestRedisClientCertificate: against a Redis on TLS that requires and verifies client
// certificates, order show reads with a rediss:// -redis-url, -redis-ca, -redis-cert and
// -redis-key (here an order it has no state for); without the certificate Redis turns it away;
// the files with a redis:// URL are a mistake in the command line.
func TestRedisClientCertificate(t *testing.T) {
	t.Parallel()
	pki := testenv.NewPKI(t)
	srv := testenv.StartRedisTLS(t, pki)
	rediss := "rediss://" + srv.Addr()
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		want  string
		usage bool
	}{
		{"flags", nil, []string{"-redis-url", rediss, "-redis-ca", pki.CAFile, "-redis-cert", pki.ClientCertFile, "-redis-key", pki.ClientKeyFile},
			"the worker has no state for it", false},
		{"environment", map[string]string{"ATODENE_PUBLISHER_REDIS_URL": rediss, "ATODENE_PUBLISHER_REDIS_CA": pki.CAFile,
			"ATODENE_PUBLISHER_REDIS_CERT": pki.ClientCertFile, "ATODENE_PUBLISHER_REDIS_KEY": pki.ClientKeyFile}, nil, "the worker has no state for it", false},
		{"no client certificate", nil, []string{"-redis-url", rediss, "-redis-ca", pki.CAFile}, "certificate required", false},
		{"redis url", nil, []string{"-redis-url", "redis://" + srv.Addr(), "-redis-ca", pki.CAFile}, "need a rediss:// -redis-url", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := runWithEnv(t, tt.env, append(append([]string{"order", "show"}, tt.args...), "shop-1", "O-1")...)
			checkRun(t, err, tt.want)
			if usage := errors.As(err, new(UsageError)); usage != tt.usage {
				t.Errorf("a UsageError: %v, want %v", usage, tt.usage)
			}
		})
	}
}

// A -nats-url whose password holds an unencoded '/' after digits parses with the digits as the
// port: the tool refuses it as a usage error, quoting nothing of it, instead of connecting to the
// password's digits and printing the rest of it.
func TestNATSURLWithMisplacedPassword(t *testing.T) {
	t.Parallel()
	err := runWithEnv(t, nil, "dlq", "ls", "-nats-url", "nats://alice:4222/Qm8pL@127.0.0.1:4222")
	var usage UsageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "percent-encoded") || strings.Contains(err.Error(), "Qm8pL") {
		t.Fatalf("err = %v, want a usage error asking to percent-encode, quoting nothing", err)
	}
}
