package clienttest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
)

// TestConcurrentOrders runs 20 goroutines × 20 orders through one client at once (register, poll,
// cancel), while every goroutine also races to register one shared order; run it with -race. The
// admin API must show every order registered exactly once, and the shared order too.
func TestConcurrentOrders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const workers, orders = 20, 20
	ctx := t.Context()
	var (
		wg       sync.WaitGroup
		sharedOK atomic.Int32
		errs     = make(chan error, workers*(orders+1))
	)
	for w := range workers {
		wg.Go(func() {
			for i := range orders {
				if err := lifecycle(e, fmt.Sprintf("W%02d-%02d", w, i), w+i); err != nil {
					errs <- err
				}
			}
			_, err := e.client.Register(ctx, request(newOrder("SHARED", "taro@example.jp", 3000)))
			switch {
			case err == nil:
				sharedOK.Add(1)
			case !errors.Is(err, atodene.ErrAlreadyRegistered):
				errs <- fmt.Errorf("SHARED: %v, want success or ErrAlreadyRegistered", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := sharedOK.Load(); n != 1 {
		t.Errorf("the shared order was registered %d times, want once", n)
	}

	all := e.allTransactions()
	if len(all) != workers*orders+1 {
		t.Fatalf("admin lists %d transactions, want %d", len(all), workers*orders+1)
	}
	seen := map[string]int{}
	for _, v := range all {
		seen[v.ShopOrderID]++
		if v.Registrations != 1 || v.Calls["transaction"] != 1 {
			t.Errorf("%s: %d registrations, %d transaction calls, want 1", v.ShopOrderID, v.Registrations, v.Calls["transaction"])
		}
		if v.ShopOrderID == "SHARED" {
			if v.RejectedRegistrations != workers-1 || v.State != "active" {
				t.Errorf("SHARED: %+v, want active with %d refused registrations", v, workers-1)
			}
			continue
		}
		if v.State != "cancelled" || v.Calls["getauthori"] != 1 || v.Calls["modifytransaction"] != 1 {
			t.Errorf("%s: %+v, want cancelled after one getauthori and one cancel", v.ShopOrderID, v)
		}
	}
	for w := range workers {
		for i := range orders {
			if id := fmt.Sprintf("W%02d-%02d", w, i); seen[id] != 1 {
				t.Errorf("order %s has %d transactions, want 1", id, seen[id])
			}
		}
	}
	st := e.statsAfter("transaction", workers*orders+workers)
	if op := st.Operations["transaction"]; op.Calls != workers*orders+workers || op.Statuses["200"] != op.Calls {
		t.Errorf("transaction stats %+v, want %d calls, all HTTP 200", op, workers*orders+workers)
	}
}

// lifecycle registers one order, polls it once and cancels it, checking each answer. n picks the
// buyer: default, ng or review-ok. It is safe for concurrent use.
func lifecycle(e *env, id string, n int) error {
	ctx := e.t.Context()
	emails := []struct {
		email string
		want  atodene.Decision
	}{{"taro@example.jp", atodene.DecisionOK}, {"ng@example.jp", atodene.DecisionNG}, {"review-ok@example.jp", atodene.DecisionReview}}
	pick := emails[n%len(emails)]
	reg, err := e.client.Register(ctx, request(newOrder(id, pick.email, 3000)))
	if err != nil {
		return fmt.Errorf("%s: Register: %w", id, err)
	}
	if reg.Auto != pick.want {
		return fmt.Errorf("%s: Register = %+v, want %s", id, reg, pick.want)
	}
	s, err := e.client.GetAuthori(ctx, reg.TransactionID)
	if err != nil {
		return fmt.Errorf("%s: GetAuthori: %w", id, err)
	}
	if s.TransactionID != reg.TransactionID || s.Decision() != pick.want {
		return fmt.Errorf("%s: GetAuthori = %+v, want %s for %s", id, s, pick.want, reg.TransactionID)
	}
	if err := e.client.Cancel(ctx, reg.TransactionID); err != nil {
		return fmt.Errorf("%s: Cancel: %w", id, err)
	}
	return nil
}
