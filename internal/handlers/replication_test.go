package handlers_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestRegistrationWaitsForTheReplica: with intents replicated to one replica, a registration whose
// intent the replica (frozen) does not acknowledge is not sent to ATODENE: the event fails
// transiently (Redis unavailable), and its retry, the replica back, registers the order once.
// A failover after an intent only the master held would otherwise lose the record that ATODENE
// was called (docs/architecture.md#failover-of-redis).
func TestRegistrationWaitsForTheReplica(t *testing.T) {
	t.Parallel()
	master, replica := testenv.StartReplicated(t)
	rdb := redis.NewClient(&redis.Options{Addr: master.Addr})
	t.Cleanup(func() { rdb.Close() })
	store := orderstate.NewStore(rdb, orderstate.Config{Prefix: "t:", EventTTL: time.Hour,
		Replication: orderstate.Replication{Replicas: 1, Timeout: time.Second}})
	t.Cleanup(store.Close)
	prov, outs := &fakeProvider{}, &flakyOutcomes{}
	shop := &handlers.Shop{ID: "shop-a", Provider: prov, Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}}
	o := newOrders(t, handlers.OrdersConfig{Store: store, Shops: func(string) (*handlers.Shop, bool) { return shop, true },
		Outcomes: outs, Polls: noPolls{}, Now: time.Now})
	ctx, ev := context.Background(), createdEvent("c-1", "R-1", 10)

	replica.Pause()
	err := o.OrderCreated(ctx, ev)
	replica.Resume()
	if !errors.Is(err, orderstate.ErrNotReplicated) {
		t.Fatalf("order.created with the replica frozen: %v, want ErrNotReplicated", err)
	}
	if _, permanent := handlers.DeadLetterReason(err); permanent {
		t.Fatalf("order.created with the replica frozen: %v is permanent, want a retry", err)
	}
	if n := prov.calls["register"]; n != 0 {
		t.Fatalf("ATODENE called %d times on an intent no replica held", n)
	}
	testenv.WaitReplicasOnline(t, master.Addr, 1)
	// The replica, online again, may still be catching up on a loaded machine: a retry then is
	// refused as the first try was, and calls nothing.
	for err := errors.New("not tried"); err != nil; {
		if ev.Attempt++; ev.Attempt > 10 {
			t.Fatalf("the retries: %v", err)
		}
		if err = o.OrderCreated(ctx, ev); err != nil && !errors.Is(err, orderstate.ErrNotReplicated) {
			t.Fatalf("retry %d: %v, want success or ErrNotReplicated", ev.Attempt, err)
		}
	}
	if n := prov.calls["register"]; n != 1 || len(outs.ids) != 1 {
		t.Errorf("after the retry: %d registrations, %d outcomes; want 1 and 1", n, len(outs.ids))
	}
}
