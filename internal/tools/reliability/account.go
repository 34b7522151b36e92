package reliability

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// The merchant's link password changed at ATODENE: a refusal of the account, not of any order.

// accountRefused is the dead-letter reason of an event ATODENE refused because of the merchant's
// account (its credentials), kept for a replay once the account is fixed.
const accountRefused = "account-refused"

// rotation sits between the worker and the sandbox for shop rel-a, and changes the merchant's link
// password there: once rotated, the sandbox takes the new password (rewritten to the one it was
// started with) and refuses the old one with its own linkPassword error. The sandbox keeps its
// transactions in memory and reads its merchants at start only, so a restart with the new
// password would forget every transaction; this changes the password and nothing else.
type rotation struct {
	target *url.URL
	proxy  *httputil.ReverseProxy
	srv    *http.Server

	mu            sync.Mutex
	known, newest string // the password the sandbox knows, and the new one once rotated
}

// startRotation starts the proxy on a free port and makes it shop rel-a's ATODENE base URL; it
// stops with the stack.
func (x *run) startRotation() (*rotation, error) {
	target, err := url.Parse(x.s.SandboxURL)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rt := &rotation{target: target, known: x.secrets[0]}
	rt.proxy = &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}
	rt.srv = &http.Server{Handler: rt, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = rt.srv.Serve(ln) }()
	x.baseURLA = "http://" + ln.Addr().String()
	x.s.OnClose(func() { _ = rt.srv.Close() })
	return rt, nil
}

// rotate makes newPassword the merchant's password from now on.
func (rt *rotation) rotate(newPassword string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.newest = newPassword
}

func (rt *rotation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	body = rt.rewrite(body)
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	rt.proxy.ServeHTTP(w, r)
}

// rewrite maps the password a request carries to what the sandbox must see.
func (rt *rotation) rewrite(body []byte) []byte {
	rt.mu.Lock()
	known, newest := rt.known, rt.newest
	rt.mu.Unlock()
	if newest == "" {
		return body
	}
	tag := func(pw string) []byte { return []byte("<linkPassword>" + pw + "</linkPassword>") }
	if bytes.Contains(body, tag(newest)) {
		return bytes.Replace(body, tag(newest), tag(known), 1)
	}
	return bytes.Replace(body, tag(known), tag("rotated-away"), 1) // refused by the sandbox itself
}

// prepareRotation puts the rotation proxy in front of the sandbox for shop rel-a, before the
// worker starts.
func prepareRotation(_ context.Context, x *run) error {
	rt, err := x.startRotation()
	if err != nil {
		return err
	}
	x.rotation = rt
	return nil
}

// holdRefusals makes the workload wait for the replay of account-refused dead letters.
func holdRefusals(_ context.Context, x *run) error {
	x.d.hold(accountRefused)
	return nil
}

// injectPasswordRotated changes rel-a's link password at ATODENE when 30% of the orders have
// started, restarts the worker with the new password 5 s later (every call of rel-a is refused
// meanwhile), and replays the account-refused dead letters with the operators' publisher until
// none is left.
func injectPasswordRotated(ctx context.Context, x *run) error {
	if err := x.waitStarted(ctx, 0.3); err != nil {
		return err
	}
	newPassword := "relPw-" + randomHex(8)
	x.d.gen.pii.addLiteral(newPassword, "password")
	x.rotation.rotate(newPassword)
	if err := childproc.Sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	w := x.s.Workers[0]
	if took, err := w.Stop(30 * time.Second); err != nil {
		x.notef("stopping the worker for its new password took %s: %v", took.Round(100*time.Millisecond), err)
	}
	x.mu.Lock()
	x.secrets[0] = newPassword
	x.mu.Unlock()
	if err := x.restartWorker(ctx, w); err != nil {
		return err
	}
	replayed, left, err := x.replayRefusals(ctx)
	x.note = fmt.Sprintf("rel-a's password changed at 30%%, the worker restarted with it 5s later; %d account-refused letters replayed", replayed)
	if err != nil {
		x.find("replay", "%v", err)
	}
	if replayed == 0 {
		// Nothing was refused: the rotation did not reach the worker's calls, and the checks
		// would pass without testing anything.
		x.find("not injected", "no account-refused dead letter was replayed: ATODENE refused no call of rel-a's old password")
	}
	if len(left) > 0 {
		x.d.release(left)
	}
	return nil
}

// replayRefusals replays the account-refused dead letters with `publisher dlq replay` until DLQ
// has held none for 5 s (at most a minute). It returns how many it replayed and the letters left.
func (x *run) replayRefusals(ctx context.Context) (int, []DeadLetter, error) {
	total, quiet := 0, 0
	deadline := time.Now().Add(time.Minute)
	for {
		left, err := x.d.deadLetters(ctx, accountRefused)
		if err != nil || time.Now().After(deadline) {
			return total, left, err
		}
		if len(left) == 0 {
			if quiet++; quiet == 5 {
				return total, nil, nil
			}
		} else {
			quiet = 0
			n, err := x.publisher(ctx, "dlq", "replay", "-reason", accountRefused)
			if err != nil {
				return total, left, err
			}
			total += n
		}
		if err := childproc.Sleep(ctx, time.Second); err != nil {
			return total, nil, err
		}
	}
}

// publisher runs the operators' publisher against the scenario's NATS and returns the count its
// "replayed N" line reports.
func (x *run) publisher(ctx context.Context, args ...string) (int, error) {
	cmd := exec.CommandContext(ctx, x.r.host.Bins.Publisher, append([]string{"-nats-url", x.s.NATSURL()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("publisher %s: %v: %s", strings.Join(args, " "), err, clip(strings.TrimSpace(string(out))))
	}
	var n int
	for line := range strings.Lines(string(out)) {
		if _, err := fmt.Sscanf(line, "replayed %d,", &n); err == nil {
			break
		}
	}
	return n, nil
}
