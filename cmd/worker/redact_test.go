package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// The secrets of TestNoCredentialIsPrinted: a NATS token and a Redis password.
const (
	natsToken     = "tok3n-s3cr3t-nats"
	redisPassword = "hunter2-redis-pw"
)

// TestNoCredentialIsPrinted runs the worker with a NATS token and a Redis password in its URLs
// through its start, a NATS reconnection, its stop and its errors: neither secret appears in
// standard output, standard error (the JSON log) or an error.
func TestNoCredentialIsPrinted(t *testing.T) {
	ns := testenv.StartNATSToken(t, natsToken)
	mr := miniredis.NewMiniRedis()
	mr.RequireAuth(redisPassword)
	if err := mr.Start(); err != nil {
		t.Fatal(err)
	}
	defer mr.Close()
	natsURL := strings.Replace(ns.URL, "nats://", "nats://"+natsToken+"@", 1)
	redisURL := "redis://:" + redisPassword + "@" + mr.Addr()
	shops := writeShops(t, "shops:\n"+ownCartShop)
	check := func(what, text string) {
		t.Helper()
		for _, secret := range []string{natsToken, redisPassword} {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows the secret %q:\n%s", what, secret, text)
			}
		}
	}

	// Errors: a malformed URL, servers that refuse, a worker's own settings printed.
	for _, args := range [][]string{
		{"-nats-url", "http://" + natsToken + "@a:4222", "-redis-url", "redis:/" + redisPassword},
		{"-nats-url", "nats://" + natsToken + "@127.0.0.1:1", "-redis-url", redisURL},
		{"-nats-url", natsURL, "-redis-url", "redis://:wrong-" + redisPassword + "@" + mr.Addr()},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"-config", shops, "-http-addr", freeAddr(t)}, args...), &stdout, &stderr)
		if err == nil {
			t.Fatalf("%v: no error", args)
		}
		exitCode(err, &stderr)
		check(fmt.Sprintf("the run with %v", args[:2]), stdout.String()+stderr.String()+err.Error())
	}

	// A whole run, with the NATS server restarted under it.
	var out syncBuffer
	cmd := exec.Command(buildWorker(t), "-config", shops, "-http-addr", freeAddr(t), "-nats-url", natsURL, "-redis-url", redisURL)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	wait.For(t, 30*time.Second, "the worker started", func() bool { return strings.Contains(out.String(), "worker started") })
	ns.Stop()
	ns.Start()
	wait.For(t, 30*time.Second, "NATS reconnected", func() bool { return strings.Contains(out.String(), "NATS reconnected") })
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	check("the worker's output", out.String())
	if !strings.Contains(out.String(), "nats://xxxxx@127.0.0.1") {
		t.Errorf("the output names the NATS server without its redacted URL:\n%s", out.String())
	}
}
