package handlers_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestReconcilerGoesOnPastAFailingShop: the pass of one shop fails (its state unreadable in Redis,
// or JetStream failing to answer for its timer); the overdue timer of the shop after it is still
// scheduled again, and the error names the failing shop only.
func TestReconcilerGoesOnPastAFailingShop(t *testing.T) {
	t.Parallel()
	errJetStream := errors.New("jetstream: no responders")
	for _, tc := range []struct {
		name    string
		spoil   func(t *testing.T, rdb redis.UniversalClient, prefix string) // makes shop-a's pass fail
		waiting error                                                        // Waiting's error for shop-a
	}{
		{name: "state unreadable", spoil: func(t *testing.T, rdb redis.UniversalClient, prefix string) {
			if err := rdb.Set(context.Background(), prefix+"order:{shop-a}:o-1", "{not json", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "jetstream fails", waiting: errJetStream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rdb, prefix := testenv.Redis(t)
			store := orderstate.New(rdb, prefix, time.Hour)
			t.Cleanup(store.Close)
			ctx, now := context.Background(), time.Now()
			overdue := orderstate.State{Status: orderstate.StatusPending, PollSeq: 1, PollScheduled: true, PollAt: now.Add(-time.Hour)}
			for _, shop := range []string{"shop-a", "shop-b"} {
				if _, err := store.Put(ctx, shop, "o-1", overdue, now.Add(-2*time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.spoil != nil {
				tc.spoil(t, rdb, prefix)
			}
			polls := &recordedPolls{}
			rec := &handlers.Reconciler{Store: store, Shops: []string{"shop-a", "shop-b"}, Polls: polls,
				Waiting: func(_ context.Context, req handlers.PollRequest, _, _ time.Time) (handlers.TimerState, error) {
					if req.Shop == "shop-a" && tc.waiting != nil {
						return 0, tc.waiting
					}
					return handlers.TimerMissing, nil
				},
				Grace: time.Minute, Now: func() time.Time { return now }, Logger: zap.NewNop()}

			n, err := rec.Once(ctx)
			if err == nil || !strings.Contains(err.Error(), "shop shop-a") || strings.Contains(err.Error(), "shop shop-b") {
				t.Errorf("Once: %v, want an error naming shop shop-a only", err)
			}
			if tc.waiting != nil && !errors.Is(err, tc.waiting) {
				t.Errorf("Once: %v, want it to wrap %v", err, tc.waiting)
			}
			if n != 1 || len(polls.timer) != 1 || polls.timer[0].Shop != "shop-b" || polls.timer[0].OrderID != "o-1" {
				t.Errorf("Once scheduled %d: %+v, want the re-check of shop-b/o-1", n, polls.timer)
			}
		})
	}
}

// TestReconcilerSchedulesALostReauthorization: an OK order whose re-authorization timer JetStream
// lost (its state says it is scheduled, and it is overdue) gets it again, with its series number;
// one held in the timer index (never put in JetStream) is handed to JetStream once due, without
// looking for it there; one whose timer is still waiting, and a shipped order, get nothing.
func TestReconcilerSchedulesALostReauthorization(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	t.Cleanup(store.Close)
	ctx, now := context.Background(), time.Now()
	due := now.Add(-time.Hour)
	for order, st := range map[string]orderstate.State{
		"lost":    {Status: orderstate.StatusOK, Reauth: &orderstate.Reauth{Seq: 3, Scheduled: true, At: due}},
		"held":    {Status: orderstate.StatusOK, Reauth: &orderstate.Reauth{Seq: 2, Scheduled: true, Held: true, At: due}},
		"waiting": {Status: orderstate.StatusOK, Reauth: &orderstate.Reauth{Seq: 1, Scheduled: true, At: due}},
		"shipped": {Status: orderstate.StatusOK, Reauth: &orderstate.Reauth{Seq: 1, Scheduled: true, At: due},
			Shipment: &orderstate.Shipment{CarrierCode: "1", TrackingNumber: "1", Reported: true}},
	} {
		if _, err := store.Put(ctx, "shop-a", order, st, now.Add(-2*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	polls := &recordedPolls{}
	rec := &handlers.Reconciler{Store: store, Shops: []string{"shop-a"}, Polls: polls,
		Waiting: func(_ context.Context, req handlers.PollRequest, _, _ time.Time) (handlers.TimerState, error) {
			if req.OrderID == "waiting" || req.OrderID == "held" {
				return handlers.TimerWaiting, nil
			}
			return handlers.TimerMissing, nil
		},
		Grace: time.Minute, Now: func() time.Time { return now }, Logger: zap.NewNop()}
	n, err := rec.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Each carries when it was due, for the lateness of its handling.
	want := []handlers.PollRequest{{Shop: "shop-a", OrderID: "held", Seq: 2, Kind: handlers.TimerReauth, At: due}, {Shop: "shop-a", OrderID: "lost", Seq: 3, Kind: handlers.TimerReauth, At: due}}
	slices.SortFunc(polls.timer, func(a, b handlers.PollRequest) int { return strings.Compare(a.OrderID, b.OrderID) })
	if n != 2 || !slices.EqualFunc(polls.timer, want, func(a, b handlers.PollRequest) bool {
		return a.At.Equal(b.At) && a.OrderID == b.OrderID && a.Seq == b.Seq && a.Kind == b.Kind
	}) {
		t.Fatalf("scheduled %d: %+v, want %+v", n, polls.timer, want)
	}
}
