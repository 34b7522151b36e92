package sandbox_test

import (
	"context"
	"encoding/xml"
	"net/http"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

func TestFaultError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.setFaults(sandbox.Faults{ErrorRate: 1})
	res, _, err := e.postRaw(httpClient(), "transaction", e.registerXML(newOrder("F-1", "taro@example.jp")))
	if err != nil || res.StatusCode != http.StatusInternalServerError {
		t.Fatalf("got %v %v, want HTTP 500", res, err)
	}
	if v := e.transactions("F-1"); len(v) != 0 {
		t.Errorf("an HTTP 500 request was processed: %+v", v)
	}
	// The admin API is not subject to faults.
	if st := e.stats(); st.Operations["transaction"].Statuses["500"] != 1 {
		t.Errorf("stats %+v", st.Operations["transaction"])
	}
}

func TestFaultTimeoutProcessesButNeverAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.setFaults(sandbox.Faults{TimeoutRate: 1})
	client := &http.Client{Timeout: 100 * time.Millisecond}
	start := time.Now()
	if res, _, err := e.postRaw(client, "transaction", e.registerXML(newOrder("F-1", "taro@example.jp"))); err == nil {
		t.Fatalf("got HTTP %d, want no answer", res.StatusCode)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("gave up after %v, want the client's timeout", d)
	}
	v := e.transactions("F-1")
	if len(v) != 1 || v[0].Decision != "OK" {
		t.Fatalf("the unanswered registration was not processed: %+v", v)
	}
	// The client's retry meets the duplicate rule: the outcome it never saw is visible now.
	e.setFaults(sandbox.Faults{})
	wantNG(t, e.register(newOrder("F-1", "taro@example.jp")), "shopOrderId:er000101")
	if st := e.stats(); st.Unanswered != 1 || st.Operations["transaction"].Faults["timeout"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestCloseReleasesHeldRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.setFaults(sandbox.Faults{TimeoutRate: 1})
	done := make(chan error, 1)
	go func() {
		_, _, err := e.postRaw(http.DefaultClient, "getauthori", doc(linkXML(e.shop), txRef("12345678901")))
		done <- err
	}()
	wait.For(t, 5*time.Second, "the held request counted as unanswered", func() bool { return e.stats().Unanswered == 1 })
	e.srv.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("the held request got an answer, want a dropped connection")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the held request")
	}
}

func TestFaultGarbage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.setFaults(sandbox.Faults{GarbageRate: 1})
	res, body, err := e.postRaw(httpClient(), "transaction", e.registerXML(newOrder("F-1", "taro@example.jp")))
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("got %v %v, want HTTP 200", res, err)
	}
	var anything struct{ XMLName xml.Name }
	dec := xml.NewDecoder(bytesReader(body))
	if err := dec.Decode(&anything); err == nil {
		t.Errorf("garbage body is well-formed XML: %s", body)
	}
	if v := e.transactions("F-1"); len(v) != 1 {
		t.Errorf("the garbage-answered registration was not processed: %+v", v)
	}
}

func TestFaultLatency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.setFaults(sandbox.Faults{LatencyMS: 40, JitterMS: 10})
	for range 3 {
		start := time.Now()
		e.authori("12345678901")
		if d := time.Since(start); d < 30*time.Millisecond {
			t.Errorf("answered after %v, want at least 30ms", d)
		}
	}
	// A client that gives up during the latency leaves nothing processed.
	e.setFaults(sandbox.Faults{LatencyMS: 2000})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := newPost(t, e.url+"/api/transaction.do", e.registerXML(newOrder("L-1", "taro@example.jp")), "")
	if _, err := http.DefaultClient.Do(req.WithContext(ctx)); err == nil {
		t.Fatal("got an answer before the latency passed")
	}
	e.setFaults(sandbox.Faults{})
	wait.For(t, 5*time.Second, "the abandoned request counted as unanswered", func() bool { return e.stats().Unanswered == 1 })
	if v := e.transactions("L-1"); len(v) != 0 {
		t.Errorf("a request abandoned during latency was processed: %+v", v)
	}
}

// TestFaultRates checks that rates are honoured roughly, with a fixed seed.
func TestFaultRates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.setFaults(sandbox.Faults{ErrorRate: 0.5})
	const n = 200
	for range n {
		_, _, _ = e.postRaw(httpClient(), "getauthori", doc(linkXML(e.shop), txRef("12345678901")))
	}
	st := e.stats().Operations["getauthori"]
	if got := st.Statuses["500"]; got < n/4 || got > 3*n/4 {
		t.Errorf("%d of %d requests failed at error_rate 0.5", got, n)
	}
}

// TestHugeJitterIsRefused: a jitter of 2^62 ms used to pass validation, after which every operation
// panicked in Faults.draw (rand.Int64N of an overflowed, negative bound) and dropped the connection.
func TestHugeJitterIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, body := range []string{`{"jitter_ms": 4611686018427387904}`, `{"latency_ms": 4611686018427387904}`} {
		code, msg, err := e.adminRaw("PUT", "/sandbox/faults", body)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusBadRequest {
			t.Errorf("PUT /sandbox/faults %s: HTTP %d %s, want 400", body, code, msg)
		}
	}
	// The largest accepted values draw a latency without overflow or panic.
	e.setFaults(sandbox.Faults{LatencyMS: sandbox.MaxFaultMS, JitterMS: sandbox.MaxFaultMS})
	e.setFaults(sandbox.Faults{})
	res, body, err := e.postRaw(&http.Client{Timeout: 2 * time.Second}, "getauthori", e.authoriXML("12345678901"))
	if err != nil {
		t.Fatalf("getauthori.do after refused faults: %v", err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("getauthori.do: HTTP %d %s", res.StatusCode, body)
	}
}

// TestServesAfterCloseWithLatencyFault: after Close the Server keeps serving, without delays, so a
// latency fault no longer holds (and then drops) every request.
func TestServesAfterCloseWithLatencyFault(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.setFaults(sandbox.Faults{LatencyMS: 20})
	e.srv.Close()
	if _, err := e.call("getauthori", e.authoriXML("12345678901")); err != nil {
		t.Fatalf("after Close, with latency_ms 20: %v; want an answer without delay", err)
	}
}
