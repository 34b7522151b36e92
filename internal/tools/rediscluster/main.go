// Command rediscluster runs a command with a Redis Cluster of its own: it starts three masters and
// three replicas from redis-server on free loopback ports (testenv.StartCluster), runs the command
// with ATODENE_TEST_REDIS_URL set to the cluster's redis-cluster:// URL, stops the cluster and
// exits with the command's status. `make test` runs the order-state tests on a Cluster with it:
//
//	go run ./internal/tools/rediscluster go test ./internal/orderstate
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rediscluster COMMAND [ARG...]")
		os.Exit(2)
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) (code int) {
	tb := &mainTB{}
	defer tb.cleanup()
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fatal); !ok {
				panic(r)
			}
			code = 1
		}
	}()
	c := testenv.StartCluster(tb)
	fmt.Fprintf(os.Stderr, "rediscluster: Redis Cluster at %s\n", c.URL())
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "ATODENE_TEST_REDIS_URL="+c.URL())
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "rediscluster: %v\n", err)
		return 1
	}
	return 0
}

// fatal is the panic of mainTB's Fatal: it unwinds to run, which stops the cluster.
type fatal struct{}

// mainTB is the testing.TB of a program: testenv's helpers log to stderr, register cleanups
// and fail by unwinding. The embedded interface is nil: a helper calling another method panics.
type mainTB struct {
	testing.TB
	cleanups []func()
	dirs     []string
}

func (t *mainTB) Helper()          {}
func (t *mainTB) Name() string     { return "rediscluster" }
func (t *mainTB) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }
func (t *mainTB) Logf(f string, args ...any) {
	fmt.Fprintf(os.Stderr, "rediscluster: "+f+"\n", args...)
}
func (t *mainTB) Log(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"rediscluster:"}, args...)...)
}
func (t *mainTB) Errorf(f string, args ...any) {
	t.Logf(f, args...)
	panic(fatal{})
}
func (t *mainTB) Fatalf(f string, args ...any) { t.Errorf(f, args...) }
func (t *mainTB) Fatal(args ...any)            { t.Log(args...); panic(fatal{}) }
func (t *mainTB) Failed() bool                 { return false }

func (t *mainTB) TempDir() string {
	dir, err := os.MkdirTemp("", "rediscluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.dirs = append(t.dirs, dir)
	return dir
}

func (t *mainTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	for _, dir := range t.dirs {
		_ = os.RemoveAll(dir)
	}
}
