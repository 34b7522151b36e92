package reliability

import (
	"context"
	"syscall"

	"github.com/atodene-worker/atodene-worker/internal/childproc"
)

// Child processes (NATS servers, the sandbox, workers, redis-server) are run by childproc.
type (
	proc  = childproc.Proc
	procs = childproc.Group
)

// binaries are the programs a run uses, built once into a directory.
type binaries struct {
	worker, sandbox, nats, publisher string
}

// build compiles the worker, the sandbox, nats-server (from the module's nats-server/v2
// dependency) and the operators' publisher into dir.
func build(ctx context.Context, dir string) (binaries, error) {
	module, err := childproc.ModuleRoot(ctx)
	if err != nil {
		return binaries{}, err
	}
	var b binaries
	for _, t := range []struct {
		out       *string
		name, pkg string
	}{
		{&b.worker, "worker", "./cmd/worker"},
		{&b.sandbox, "atodene-sandbox", "./cmd/atodene-sandbox"},
		{&b.nats, "nats-server", "github.com/nats-io/nats-server/v2"},
		{&b.publisher, "publisher", "./cmd/publisher"},
	} {
		if *t.out, err = childproc.Build(ctx, module, dir, t.name, t.pkg); err != nil {
			return b, err
		}
	}
	return b, nil
}

// pause stops a process (SIGSTOP) where it is, as a hung server is; resume lets it go on.
func pause(p *proc) error  { return syscall.Kill(p.Pid(), syscall.SIGSTOP) }
func resume(p *proc) error { return syscall.Kill(p.Pid(), syscall.SIGCONT) }
