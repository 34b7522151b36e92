package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// A pass over the kept copies settles every copy it can: one that fails (its publish refused, an
// inbox that cannot be read) is left for the next pass without holding up those after it, and
// copies younger than the grace are left alone.
func TestKeptPassGoesOnPastAFailingCopy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := keptOnNewServer(t)
	for _, key := range []string{"bad", "applied1", "applied2"} {
		p := orderstate.Parked{Key: key, Subject: "orders.tracking_entered.shop-a", Seq: 1, Body: []byte(`{}`)}
		if err := k.Keep(ctx, "shop-a", "o-1", p, handlers.KeptQueued); err != nil {
			t.Fatal(err)
		}
	}
	fate := func(_ context.Context, _, _, key string) (handlers.KeptFate, error) {
		if key == "bad" {
			return handlers.KeptHeld, errors.New("decoding the inbox of shop-a/o-1: bad entry")
		}
		return handlers.KeptApplied, nil
	}
	log := zaptest.NewLogger(t)
	if _, err := k.reconcile(ctx, fate, time.Hour, 0, time.Now(), log); err != nil {
		t.Fatal(err)
	}
	if n := copies(t, k); n != 3 {
		t.Fatalf("%d copies after a pass with every copy young, want 3", n)
	}
	if _, err := k.reconcile(ctx, fate, 0, 0, time.Now(), log); err != nil {
		t.Fatal(err)
	}
	if n := copies(t, k); n != 1 {
		t.Errorf("%d copies, want only the failing one left", n)
	}
}

func copies(t *testing.T, k kept) uint64 {
	t.Helper()
	info, err := k.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// keptOnNewServer returns the kept copies of a new JetStream server set up with the default settings.
func keptOnNewServer(t *testing.T) kept {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx := context.Background()
	if _, err := setup(ctx, js, config.DefaultSettings()); err != nil {
		t.Fatal(err)
	}
	k, err := newKept(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
