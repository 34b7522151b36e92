package clienttest

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// TestFaultHTTP500 checks error_rate: the client gets a *StatusError 500; Register is not retried
// (its outcome is unknown to the client) while the read-only GetAuthori is; and nothing was processed.
func TestFaultHTTP500(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := e.register(newOrder("F-0", "taro@example.jp", 3000))
	e.setFaults(sandbox.Faults{ErrorRate: 1})

	_, err := e.client.Register(t.Context(), request(newOrder("F-1", "taro@example.jp", 3000)))
	var se *atodene.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusInternalServerError {
		t.Fatalf("Register: %T %v, want *atodene.StatusError 500", err, err)
	}
	if !atodene.OutcomeUnknown(err) || atodene.IsRetrySafe(err) {
		t.Errorf("an HTTP 500 is not outcome-unknown or is retry-safe: %v", err)
	}
	st := e.statsAfter("transaction", 2)
	if op := st.Operations["transaction"]; op.Calls != 2 || op.Statuses["500"] != 1 || op.Faults["error"] != 1 {
		t.Errorf("Register under HTTP 500s: stats %+v, want 1 call besides the setup, not retried", op)
	}
	if v := e.transactions("F-1"); len(v) != 0 {
		t.Errorf("a request answered 500 was processed: %+v", v)
	}

	_, err = e.client.GetAuthori(t.Context(), reg.TransactionID)
	if !errors.As(err, &se) || se.StatusCode != http.StatusInternalServerError {
		t.Fatalf("GetAuthori: %T %v, want *atodene.StatusError 500", err, err)
	}
	st = e.statsAfter("getauthori", maxRetries+1)
	if op := st.Operations["getauthori"]; op.Calls != maxRetries+1 || op.Statuses["500"] != maxRetries+1 {
		t.Errorf("GetAuthori under HTTP 500s: stats %+v, want %d calls", op, maxRetries+1)
	}
	if v := e.onlyTransaction("F-0"); v.Calls["getauthori"] != 0 {
		t.Errorf("requests answered 500 were counted on the transaction: %v", v.Calls)
	}

	// Since nothing was processed, registering once the faults are gone succeeds.
	e.setFaults(sandbox.Faults{})
	if reg := e.register(newOrder("F-1", "taro@example.jp", 3000)); reg.Auto != atodene.DecisionOK {
		t.Errorf("Register after the faults: %+v", reg)
	}
}

// TestContextEndsBetweenRetries checks that when the caller's context ends while the client waits to
// retry, the client returns then, not after the wait; that the error still carries the last attempt's
// classification (here an HTTP 500, outcome unknown) as well as the context's error; and that no
// further attempt is made. The client and the sandbox run in process in a synctest bubble, so the
// time GetAuthori takes is measured on the bubble's clock: exact, whatever the load of the machine.
func TestContextEndsBetweenRetries(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newInProcess(t, func(c *atodene.Config) { c.RetryInterval = 2 * time.Second }) // first wait ≥ 1s
		reg, err := p.client.Register(t.Context(), request(newOrder("F-1", "taro@example.jp", 3000)))
		if err != nil {
			t.Fatal(err)
		}
		p.admin(http.MethodPut, "/sandbox/faults", sandbox.Faults{ErrorRate: 1}, nil)
		const deadline = 100 * time.Millisecond
		ctx, cancel := context.WithTimeout(t.Context(), deadline)
		defer cancel()

		start := time.Now()
		_, err = p.client.GetAuthori(ctx, reg.TransactionID)
		if d := time.Since(start); d != deadline {
			t.Errorf("GetAuthori returned after %v, want at the context's deadline, %v", d, deadline)
		}
		var se *atodene.StatusError
		if !errors.As(err, &se) || !atodene.OutcomeUnknown(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("GetAuthori: %T %v, want the *atodene.StatusError of the last attempt and the context's error", err, err)
		}
		var st sandbox.Stats
		p.admin(http.MethodGet, "/sandbox/stats", nil, &st)
		if n := st.Operations["getauthori"].Calls; n != 1 {
			t.Errorf("GetAuthori was called %d times, want 1", n)
		}
	})
}

// TestFaultTimeout checks timeout_rate: the sandbox processes the registration and never answers;
// the client times out with an error for which OutcomeUnknown is true; the admin API shows the
// transaction registered; and once the faults are gone, registering again meets the duplicate rule,
// which is how a caller resolves the unknown outcome. GetAuthori is retried on each timeout.
func TestFaultTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const timeout = 150 * time.Millisecond
	client := e.newClient(func(c *atodene.Config) { c.Timeout = timeout })
	e.setFaults(sandbox.Faults{TimeoutRate: 1})

	start := time.Now()
	_, err := client.Register(t.Context(), request(newOrder("F-1", "taro@example.jp", 3000)))
	if d := time.Since(start); d < timeout {
		t.Errorf("Register gave up after %v, before its timeout %v", d, timeout)
	}
	var ou *atodene.OutcomeUnknownError
	if !atodene.OutcomeUnknown(err) || !errors.As(err, &ou) || atodene.IsRetrySafe(err) {
		t.Fatalf("Register: %T %v, want an *atodene.OutcomeUnknownError", err, err)
	}
	v := e.onlyTransaction("F-1")
	if v.State != "active" || v.Decision != "OK" || v.Registrations != 1 {
		t.Fatalf("admin view %+v, want the unanswered registration processed", v)
	}
	st := e.statsAfter("transaction", 1)
	if op := st.Operations["transaction"]; op.Calls != 1 || op.Unanswered != 1 || op.Faults["timeout"] != 1 || op.Results["OK"] != 1 {
		t.Errorf("stats %+v, want one processed, unanswered call", op)
	}

	_, err = client.GetAuthori(t.Context(), v.TransactionID)
	if !errors.As(err, &ou) {
		t.Errorf("GetAuthori: %T %v, want an *atodene.OutcomeUnknownError", err, err)
	}
	if st := e.statsAfter("getauthori", maxRetries+1); st.Operations["getauthori"].Calls != maxRetries+1 {
		t.Errorf("GetAuthori was called %d times, want %d", st.Operations["getauthori"].Calls, maxRetries+1)
	}

	e.setFaults(sandbox.Faults{})
	_, err = client.Register(t.Context(), request(newOrder("F-1", "taro@example.jp", 3000)))
	if !errors.Is(err, atodene.ErrAlreadyRegistered) {
		t.Fatalf("registering again after the timeout: %v, want ErrAlreadyRegistered", err)
	}
	if v := e.onlyTransaction("F-1"); v.Registrations != 1 || v.RejectedRegistrations != 1 {
		t.Errorf("admin view %+v, want 1 registration and 1 refused", v)
	}
}

// TestFaultGarbage checks garbage_rate: the request is processed and answered with a malformed body,
// which the client reports as a *MalformedResponseError (outcome unknown). Register is not retried;
// GetAuthori is.
func TestFaultGarbage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.setFaults(sandbox.Faults{GarbageRate: 1})

	_, err := e.client.Register(t.Context(), request(newOrder("F-1", "taro@example.jp", 3000)))
	var me *atodene.MalformedResponseError
	if !errors.As(err, &me) || !atodene.OutcomeUnknown(err) {
		t.Fatalf("Register: %T %v, want an *atodene.MalformedResponseError", err, err)
	}
	v := e.onlyTransaction("F-1")
	if v.State != "active" || v.Decision != "OK" {
		t.Fatalf("admin view %+v, want the registration processed", v)
	}

	_, err = e.client.GetAuthori(t.Context(), v.TransactionID)
	if !errors.As(err, &me) {
		t.Fatalf("GetAuthori: %T %v, want an *atodene.MalformedResponseError", err, err)
	}
	st := e.statsAfter("getauthori", maxRetries+1)
	if st.Operations["transaction"].Calls != 1 || st.Operations["getauthori"].Calls != maxRetries+1 {
		t.Errorf("calls: %d transaction, %d getauthori; want 1 and %d",
			st.Operations["transaction"].Calls, st.Operations["getauthori"].Calls, maxRetries+1)
	}
	if st.Operations["transaction"].Faults["garbage"] != 1 || st.Operations["transaction"].Statuses["200"] != 1 {
		t.Errorf("stats %+v, want one garbage answer with HTTP 200", st.Operations["transaction"])
	}

	e.setFaults(sandbox.Faults{})
	if _, err := e.client.Register(t.Context(), request(newOrder("F-1", "taro@example.jp", 3000))); !errors.Is(err, atodene.ErrAlreadyRegistered) {
		t.Errorf("registering again: %v, want ErrAlreadyRegistered", err)
	}
}

// TestFaultLatency checks latency_ms and jitter_ms: every call takes at least latency - jitter.
func TestFaultLatency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const latency, jitter = 100, 40
	e.setFaults(sandbox.Faults{LatencyMS: latency, JitterMS: jitter})
	minimum := time.Duration(latency-jitter) * time.Millisecond

	start := time.Now()
	reg := e.register(newOrder("F-1", "taro@example.jp", 3000))
	if d := time.Since(start); d < minimum {
		t.Errorf("Register took %v, want at least %v", d, minimum)
	}
	for range 4 {
		start := time.Now()
		if s := e.screening(reg.TransactionID); s.Decision() != atodene.DecisionOK {
			t.Errorf("GetAuthori = %+v, want OK", s)
		}
		if d := time.Since(start); d < minimum {
			t.Errorf("GetAuthori took %v, want at least %v", d, minimum)
		}
	}
	// The admin API is not delayed by faults: nothing to assert beyond it answering.
	if st := e.statsAfter("getauthori", 4); st.Operations["getauthori"].Calls != 4 {
		t.Errorf("GetAuthori was called %d times, want 4 (no retries)", st.Operations["getauthori"].Calls)
	}
}

// TestLatencyBeyondClientTimeout checks that a client whose Timeout is shorter than the added latency
// gets an OutcomeUnknown error, and that the sandbox, seeing the client gone during the latency, does
// not process the request: registering again once the faults are gone succeeds.
func TestLatencyBeyondClientTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.newClient(func(c *atodene.Config) { c.Timeout = 100 * time.Millisecond })
	e.setFaults(sandbox.Faults{LatencyMS: 3000})

	_, err := client.Register(t.Context(), request(newOrder("F-1", "taro@example.jp", 3000)))
	var ou *atodene.OutcomeUnknownError
	if !atodene.OutcomeUnknown(err) || !errors.As(err, &ou) {
		t.Fatalf("Register: %T %v, want an *atodene.OutcomeUnknownError", err, err)
	}
	st := e.statsAfter("transaction", 1)
	if op := st.Operations["transaction"]; op.Unanswered != 1 || len(op.Results) != 0 {
		t.Errorf("stats %+v, want one unanswered, unprocessed call", op)
	}
	if v := e.transactions("F-1"); len(v) != 0 {
		t.Fatalf("a request abandoned during the latency was processed: %+v", v)
	}

	e.setFaults(sandbox.Faults{})
	if reg, err := client.Register(t.Context(), request(newOrder("F-1", "taro@example.jp", 3000))); err != nil || reg.Auto != atodene.DecisionOK {
		t.Errorf("Register after the faults: %+v, %v", reg, err)
	}
}

// TestReset checks that POST /sandbox/reset forgets transactions, stats and faults, and that a
// transaction ID from before it names nothing afterwards.
func TestReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := e.register(newOrder("RS-1", "taro@example.jp", 3000))
	e.setFaults(sandbox.Faults{LatencyMS: 10})

	e.admin(http.MethodPost, "/sandbox/reset", nil, http.StatusNoContent, nil)
	if v := e.allTransactions(); len(v) != 0 {
		t.Fatalf("transactions after reset: %+v", v)
	}
	if st := e.stats(); st.Operations["transaction"].Calls != 0 || len(st.Statuses) != 0 {
		t.Errorf("stats after reset: %+v", st)
	}
	var f sandbox.Faults
	e.admin(http.MethodGet, "/sandbox/faults", nil, http.StatusOK, &f)
	if f != (sandbox.Faults{}) {
		t.Errorf("faults after reset: %+v", f)
	}

	_, err := e.client.GetAuthori(t.Context(), old.TransactionID)
	wantRejected(t, err, "transactionId", sandbox.CodeUnknownTx)
	reg := e.register(newOrder("RS-1", "taro@example.jp", 3000))
	if reg.TransactionID == old.TransactionID {
		t.Errorf("the transaction ID %s was handed out again after reset", reg.TransactionID)
	}
	if v := e.onlyTransaction("RS-1"); v.Registrations != 1 {
		t.Errorf("admin view %+v, want 1 registration", v)
	}
}
