// Package childproc runs the product's binaries (and nats-server, redis-server) as child
// processes on loopback, for the benchmark and the reliability suite (through package stack):
// building them, starting, stopping and pausing them, free ports, and waiting until they answer.
package childproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one running child process.
type Proc struct {
	name string
	cmd  *exec.Cmd
	log  string // file holding its stdout and stderr
	done chan struct{}
	err  error // set before done is closed
}

// Group owns every child process of a run, so that all of them are stopped however the run ends.
type Group struct {
	mu   sync.Mutex
	live map[*Proc]bool
}

// Start runs bin with args and extra environment, appending its output to logFile. The child is
// killed if this process dies without a chance to clean up.
func (g *Group) Start(name, bin, logFile string, env []string, args ...string) (*Proc, error) {
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{name: name, cmd: cmd, log: logFile, done: make(chan struct{})}
	g.mu.Lock()
	if g.live == nil {
		g.live = map[*Proc]bool{}
	}
	g.live[p] = true
	g.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		f.Close()
		g.mu.Lock()
		delete(g.live, p)
		g.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// StopAll stops every process still running and waits for them.
func (g *Group) StopAll() {
	g.mu.Lock()
	list := make([]*Proc, 0, len(g.live))
	for p := range g.live {
		list = append(list, p)
	}
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range list {
		wg.Go(func() { _ = p.Stop(10 * time.Second) })
	}
	wg.Wait()
}

// Name is the name the process was started with.
func (p *Proc) Name() string { return p.name }

// Log is the file holding its output.
func (p *Proc) Log() string { return p.log }

// Pid is its process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Err is how it exited (nil while it runs or after a clean exit).
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to grace for the process to exit, then kills it. It returns an
// error when the process did not exit cleanly.
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s after SIGTERM; killed", p.name, grace)
	}
}

func (p *Proc) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("%s exited: %w (log: %s)", p.name, p.err, p.log)
	}
	return nil
}

// Pause stops the process where it is (SIGSTOP), as a hung server is; Resume lets it go on
// (SIGCONT). An error means the signal could not be sent (the process is gone).
func (p *Proc) Pause() error { return p.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume lets a paused process go on (SIGCONT).
func (p *Proc) Resume() error { return p.cmd.Process.Signal(syscall.SIGCONT) }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Port 4222 is never
// returned: it belongs to whatever NATS the machine runs.
func FreePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port != 4222 {
			return port, nil
		}
	}
}

// FreePorts returns n distinct free ports.
func FreePorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for len(out) < n {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// Build compiles pkg (a package path, or ./cmd/x relative to module) to dir/name.
func Build(ctx context.Context, module, dir, name, pkg string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = module
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out, nil
}

// ModuleRoot finds the directory of the module the command runs in.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run it inside the atodene-worker module (go run ./cmd/...)")
	}
	return filepath.Dir(mod), nil
}

// WaitHTTP polls url until it answers 200, the process p (if any) exits, or timeout passes.
func WaitHTTP(ctx context.Context, url string, timeout time.Duration, p *Proc) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited before it was ready: %v%s", p.name, p.err, LogTail(p.log, 5))
		}
		if time.Now().After(deadline) {
			if p == nil {
				return fmt.Errorf("%s not ready after %s", url, timeout)
			}
			return fmt.Errorf("%s not ready after %s%s", p.name, timeout, LogTail(p.log, 5))
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// LogTail returns the last n lines of a log file, indented, for error messages.
func LogTail(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil || len(raw) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	lines = lines[max(0, len(lines)-n):]
	return "\n    " + strings.Join(lines, "\n    ")
}

// Sleep waits for d or until ctx ends, whichever comes first, and returns ctx's error if it ended.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Get GETs url from a child's HTTP endpoint and returns the body of a 200 answer; the caller
// closes it. Any other status is an error naming the URL.
func Get(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp.Body, nil
}
