package sandbox_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// TestConcurrentUse runs 50 clients through the whole life of their orders at once, with the admin API
// read and written alongside; run it with -race.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const workers, orders = 50, 4
	var wg sync.WaitGroup
	ids := make(chan string, workers*orders*2)
	errs := make(chan error, workers*orders)
	for w := range workers {
		wg.Go(func() {
			for i := range orders {
				if err := lifecycle(e, fmt.Sprintf("W%d-%d", w, i), ids); err != nil {
					errs <- err
				}
			}
		})
	}
	// The admin API is read and written alongside, to race its lock against the operations'.
	stop := make(chan struct{})
	adminErr := make(chan error, 1)
	var adminWG sync.WaitGroup
	adminWG.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, c := range [][3]string{{"GET", "/sandbox/stats", ""}, {"GET", "/sandbox/transactions?shopOrderId=W1-1", ""}, {"PUT", "/sandbox/faults", "{}"}} {
				if code, err := e.adminStatus(c[0], c[1], c[2]); err != nil || code != 200 {
					adminErr <- fmt.Errorf("%s %s: HTTP %d %v", c[0], c[1], code, err)
					return
				}
			}
		}
	})
	wg.Wait()
	close(stop)
	adminWG.Wait()
	close(errs)
	close(ids)
	close(adminErr)
	for err := range adminErr {
		t.Error(err)
	}
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("transaction ID %s handed out twice", id)
		}
		seen[id] = true
	}
	if len(seen) != workers*orders*2 {
		t.Errorf("%d transactions, want %d", len(seen), workers*orders*2)
	}
	if st := e.stats(); st.Operations["transaction"].Calls != workers*orders*3 {
		t.Errorf("%d registrations counted, want %d", st.Operations["transaction"].Calls, workers*orders*3)
	}
}

// lifecycle registers, polls, ships, cancels and re-registers one order, checking each answer. It
// returns failures rather than failing the test, as it runs off the test's goroutine.
func lifecycle(e *env, orderID string, ids chan<- string) error {
	var id string
	steps := []struct {
		name, op string
		body     func() string
		check    func(r resp) bool
	}{
		{"register", "transaction", func() string { return e.registerXML(newOrder(orderID, "taro@example.jp")) },
			func(r resp) bool { id = r.txID(); return r.Result == "OK" && r.auto() == "OK" }},
		{"getauthori", "getauthori", func() string { return e.authoriXML(id) },
			func(r resp) bool { return r.Result == "OK" && r.manual() == "" }},
		{"ship", "shippingrequest", func() string { return e.shipXML(id, "1", "11", "1234-5678") },
			func(r resp) bool { return r.Result == "OK" }},
		{"duplicate", "transaction", func() string { return e.registerXML(newOrder(orderID, "taro@example.jp")) },
			func(r resp) bool {
				return slices.Equal(r.errs(), []string{"shopOrderId:" + sandbox.CodeDuplicateOrder})
			}},
		{"cancel", "modifytransaction", func() string { return e.cancelXML(id) },
			func(r resp) bool { return r.Result == "OK" }},
		{"getauthori after cancel", "getauthori", func() string { return e.authoriXML(id) },
			func(r resp) bool { return slices.Equal(r.errs(), []string{"transactionId:" + sandbox.CodeCancelled}) }},
		{"register again", "transaction", func() string { return e.registerXML(newOrder(orderID, "review-ok@example.jp")) },
			func(r resp) bool { return r.Result == "OK" && r.auto() == "審査中" }},
	}
	for _, st := range steps {
		r, err := e.call(st.op, st.body())
		if err != nil {
			return fmt.Errorf("%s: %s: %w", orderID, st.name, err)
		}
		if !st.check(r) {
			return fmt.Errorf("%s: %s: unexpected answer %s %v", orderID, st.name, r.Result, r.errs())
		}
		if r.Result == "OK" && st.op == "transaction" {
			ids <- r.txID()
		}
	}
	return nil
}
