package stack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// WorkerOptions are the settings of a stack's workers (cmd/worker). RestartWorker takes them
// again, so that a restart may change them (a new password in Env).
type WorkerOptions struct {
	// Shops is the shops file (-config), from WriteShops. Required.
	Shops string
	// LogLevel is -log-level. Default info, as in production: a line per message.
	LogLevel string
	// PollFirst and PollMax are -poll-first-delay and -poll-max-interval. Default 2 s each, the
	// sandbox's default review delay.
	PollFirst, PollMax time.Duration
	// Concurrency is -concurrency. Default: the worker's own (the flag is left out).
	Concurrency int
	// Flags are further flags, given after those above: a flag here overrides them.
	Flags []string
	// Env is added to the worker's environment: the shops' passwords (Shop.PasswordEnv),
	// GOGC=..., settings a worker without them ignores.
	Env []string
	// Launcher runs the worker through another program that takes the worker's flags: Launcher[0]
	// is its binary and Launcher[1:] its first arguments (e.g. the benchmark's own binary and
	// profiled-worker). Default: the worker itself.
	Launcher []string
	// Pprof gives each worker a free port for a pprof endpoint (Worker.PprofAddr), passed to the
	// Launcher as -pprof-addr host:port right after Launcher[1:]. It needs a Launcher: cmd/worker
	// serves no pprof.
	Pprof bool
}

// Worker is one worker process of a stack and its restarts, or a program that stands in for the
// worker (StartStandIn). A scenario may kill or restart it while another goroutine watches it
// for crashes, hence the mutex.
type Worker struct {
	// Name is worker-<n> (n counts from 1 in order of start) or the stand-in's name.
	Name string
	// HTTPAddr is the host:port of its /metrics and /readyz, kept across restarts.
	HTTPAddr string
	// PprofAddr is the host:port of its pprof endpoint with WorkerOptions.Pprof, else empty.
	PprofAddr string
	// Log is the file of its output, Dir/<Name>.log, appended to across restarts.
	Log string

	mu       sync.Mutex
	p        *childproc.Proc
	killed   int  // SIGKILLs sent by Kill
	stopping bool // the tool stops or kills it: its exit is no crash
}

// Proc is the worker's current process (nil before its first start).
func (w *Worker) Proc() *childproc.Proc {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.p
}

// Crashed reports whether the process exited without the tool stopping or killing it, and if so
// marks the exit as handled, so that one crash is reported once.
func (w *Worker) Crashed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.p == nil || w.stopping || !w.p.Exited() {
		return false
	}
	w.stopping = true
	return true
}

// Kills is the number of SIGKILLs Kill has sent.
func (w *Worker) Kills() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.killed
}

// Kill sends SIGKILL, as a crash of the machine does, and waits for the process to end. Start it
// again with RestartWorker.
func (w *Worker) Kill() {
	w.mu.Lock()
	w.stopping = true
	w.killed++
	p := w.p
	w.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

// Stop sends SIGTERM, as a deployment does, and waits up to limit for the process to exit, then
// kills it. It returns how long the process took, and nil if it exited cleanly within limit.
// Start it again with RestartWorker.
func (w *Worker) Stop(limit time.Duration) (time.Duration, error) {
	w.mu.Lock()
	w.stopping = true
	p := w.p
	w.mu.Unlock()
	if p == nil {
		return 0, nil
	}
	start := time.Now()
	err := p.Stop(limit)
	return time.Since(start), err
}

// newWorker gives a worker its name, ports and log, and adds it to Workers.
func (s *Stack) newWorker(name string, pprof bool) (*Worker, error) {
	n := 1
	if pprof {
		n = 2
	}
	ports, err := childproc.FreePorts(n)
	if err != nil {
		return nil, err
	}
	w := &Worker{Name: name, HTTPAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]), Log: filepath.Join(s.Dir, name+".log")}
	if pprof {
		w.PprofAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	}
	s.Workers = append(s.Workers, w)
	return w, nil
}

// StartWorkers starts n worker processes with o, then waits up to 30 s for each to answer
// /readyz with 200, so that n workers start side by side. It returns the new workers (also
// appended to Workers). An error means one did not start or become ready (it carries the end of
// its log); cancelling ctx ends the wait with ctx's error.
func (s *Stack) StartWorkers(ctx context.Context, n int, o WorkerOptions) ([]*Worker, error) {
	if o.Pprof && len(o.Launcher) == 0 {
		return nil, errors.New("stack: WorkerOptions.Pprof needs a Launcher")
	}
	var started []*Worker
	for range n {
		w, err := s.newWorker(fmt.Sprintf("worker-%d", len(s.Workers)+1), o.Pprof)
		if err != nil {
			return started, err
		}
		if err := s.launch(w, o); err != nil {
			return started, err
		}
		started = append(started, w)
	}
	for _, w := range started {
		if err := childproc.WaitHTTP(ctx, "http://"+w.HTTPAddr+"/readyz", 30*time.Second, w.Proc()); err != nil {
			return started, err
		}
	}
	return started, nil
}

// RestartWorker starts w's process again, stopped or killed before, with o (the options it was
// started with, or changed ones), on the same address and log, and waits up to 30 s until it is
// ready. w must come from StartWorkers. Errors are as StartWorkers's.
func (s *Stack) RestartWorker(ctx context.Context, w *Worker, o WorkerOptions) error {
	if err := s.launch(w, o); err != nil {
		return err
	}
	return childproc.WaitHTTP(ctx, "http://"+w.HTTPAddr+"/readyz", 30*time.Second, w.Proc())
}

// LaunchWorker starts a worker process with o (w's again when w is not nil; else a new worker,
// appended to Workers) and returns it at once, without waiting for it to be ready: for a caller
// that times the start itself (the benchmark's start to ready).
func (s *Stack) LaunchWorker(w *Worker, o WorkerOptions) (*Worker, error) {
	if o.Pprof && len(o.Launcher) == 0 {
		return nil, errors.New("stack: WorkerOptions.Pprof needs a Launcher")
	}
	if w == nil {
		var err error
		if w, err = s.newWorker(fmt.Sprintf("worker-%d", len(s.Workers)+1), o.Pprof); err != nil {
			return nil, err
		}
	}
	return w, s.launch(w, o)
}

// launch starts w's process with o and the stack's servers.
func (s *Stack) launch(w *Worker, o WorkerOptions) error {
	args := []string{"-config", o.Shops, "-nats-url", s.NATSURL(), "-redis-url", s.RedisURL,
		"-redis-prefix", s.Prefix, "-http-addr", w.HTTPAddr, "-log-level", cmp.Or(o.LogLevel, "info"),
		"-poll-first-delay", cmp.Or(o.PollFirst, 2*time.Second).String(),
		"-poll-max-interval", cmp.Or(o.PollMax, 2*time.Second).String()}
	if o.Concurrency > 0 {
		args = append(args, "-concurrency", strconv.Itoa(o.Concurrency))
	}
	args = append(args, o.Flags...)
	bin := s.host.Bins.Worker
	if len(o.Launcher) > 0 {
		first := slices.Clone(o.Launcher[1:])
		if w.PprofAddr != "" {
			first = append(first, "-pprof-addr", w.PprofAddr)
		}
		bin, args = o.Launcher[0], append(first, args...)
	}
	p, err := s.host.Procs.Start(w.Name, bin, w.Log, o.Env, args...)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.p, w.stopping = p, false
	w.mu.Unlock()
	return nil
}

// StartStandIn starts a program that stands in for the worker (the benchmark's baseline): bin
// with args and then -http-addr host:port, where it must answer /readyz. It waits up to 30 s for
// that, and counts the program among the Workers (its log is Dir/<name>.log). Errors are as
// StartWorkers's.
func (s *Stack) StartStandIn(ctx context.Context, name, bin string, args ...string) (*Worker, error) {
	w, err := s.newWorker(name, false)
	if err != nil {
		return nil, err
	}
	p, err := s.host.Procs.Start(name, bin, w.Log, nil, append(slices.Clone(args), "-http-addr", w.HTTPAddr)...)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.p = p
	w.mu.Unlock()
	return w, childproc.WaitHTTP(ctx, "http://"+w.HTTPAddr+"/readyz", 30*time.Second, p)
}

// StopWorkers stops every worker (SIGTERM, as in production; SIGKILL after Options.StopGrace) and
// forgets them, so that the next StartWorkers begins at worker-1 again. It returns the first
// unclean exit.
func (s *Stack) StopWorkers() error {
	var first error
	for _, w := range s.Workers {
		if _, err := w.Stop(s.opts.StopGrace); err != nil && first == nil {
			first = err
		}
	}
	s.Workers = nil
	return first
}

// Ready reports whether every worker is running and answers /readyz with 200; if not, the
// second result says which one and why.
func (s *Stack) Ready() (bool, string) {
	client := &http.Client{Timeout: 3 * time.Second}
	for _, w := range s.Workers {
		if p := w.Proc(); p == nil || p.Exited() {
			return false, w.Name + " is not running"
		}
		resp, err := client.Get("http://" + w.HTTPAddr + "/readyz")
		if err != nil {
			return false, fmt.Sprintf("%s: %v", w.Name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Sprintf("%s: /readyz %d %s", w.Name, resp.StatusCode, strings.TrimSpace(string(body)))
		}
	}
	return true, ""
}
