package clienttest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// handlerTransport answers a request by calling the handler in the caller's goroutine: no network,
// so a test in a synctest bubble runs the client and the sandbox on the bubble's clock alone. It
// cannot carry the faults that drop the connection (timeout_rate): the sandbox panics with
// http.ErrAbortHandler for those, which only a real server recovers from.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// inProcess is a sandbox called without a network, and a client for its demo shop that sends to it
// that way. Make it inside the synctest bubble, so that the sandbox's timers are the bubble's.
type inProcess struct {
	t      *testing.T
	sb     *sandbox.Server
	client *atodene.Client
}

// newInProcess starts a sandbox and a client like newEnv's; mod, if set, changes the client's
// configuration first.
func newInProcess(t *testing.T, mod func(*atodene.Config)) *inProcess {
	t.Helper()
	sb, err := sandbox.New(sandbox.Config{ReviewDelay: reviewDelay, HoldDelay: holdDelay, SlowDelay: slowDelay, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	c := demoClient(t, "http://sandbox.invalid", &http.Client{Transport: handlerTransport{sb}}, mod)
	return &inProcess{t: t, sb: sb, client: c}
}

// admin sends one admin API call and decodes its JSON answer into out (unless nil). The sandbox
// has recorded every call it answered by then: no waiting, unlike env.statsAfter.
func (p *inProcess) admin(method, path string, body, out any) {
	p.t.Helper()
	rec := httptest.NewRecorder()
	p.sb.ServeHTTP(rec, httptest.NewRequest(method, path, jsonBody(p.t, body)))
	if rec.Code != http.StatusOK {
		p.t.Fatalf("%s %s: HTTP %d: %s", method, path, rec.Code, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			p.t.Fatalf("%s %s: decoding: %v", method, path, err)
		}
	}
}
