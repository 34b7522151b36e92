package worker

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// TestKeptCopyOfQueuedShipmentOutlivesTheReview: a tracking number that comes while its order is
// under review is acknowledged and kept in the order's state until the credit is OK
// (docs/lifecycle.md#the-shipment-sub-state), with its copy in ATODENE_KEPT "until the values are
// reported, so that they come back if Redis loses them" (docs/architecture.md#when-redis-loses-its-state).
// An order stays under review up to -poll-deadline (14 days by default): ATODENE_KEPT's max age was
// -park-limit + 24 h (8 days), so from day 8 of a review the copy was gone, and a Redis that lost
// the state then lost the tracking number silently (ATODENE's billing never started for that parcel).
func TestKeptCopyOfQueuedShipmentOutlivesTheReview(t *testing.T) {
	t.Parallel()
	s := config.DefaultSettings()
	var keptAge time.Duration
	for _, c := range streamConfigs(s, 1<<20) {
		if c.Name == KeptStream {
			keptAge = c.MaxAge
		}
	}
	if keptAge == 0 {
		t.Fatalf("no %s stream among the stream configs", KeptStream)
	}
	if keptAge < s.PollDeadline {
		t.Errorf("%s keeps a copy %v (-park-limit %v + 24h), but a tracking number queued while its order is under review is kept "+
			"in Redis alone for up to -poll-deadline %v: its copy expires %v before the review can end",
			KeptStream, keptAge, s.ParkLimit, s.PollDeadline, s.PollDeadline-keptAge)
	}
	if renew := keptRenewAge(s); renew <= 0 || renew >= keptAge {
		t.Errorf("copies renewed at %v for a max age of %v: want them renewed well before it", renew, keptAge)
	}
}

// TestKeptCopyStillHeldIsRenewed: a review goes on past -poll-deadline until an operator replays
// its letter (up to -dlq-retention later), and a replay starts a new deadline, so no max age covers
// every wait. The reconciler renews a copy of an event Redis still holds once it is older than the
// renew age: the same subject, body and headers, published anew (its age starting again), the old
// one gone. A young one, and one of an event applied, are not renewed.
func TestKeptCopyStillHeldIsRenewed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := keptOnNewServer(t)
	p := orderstate.Parked{Key: "0123456789abcdef0123456789abcdef", Subject: "orders.tracking_entered.shop-a", Seq: 7, Published: 5,
		ReplayCount: "1", Body: []byte(`{"id":"t-1"}`)}
	if err := k.Keep(ctx, "shop-a", "o-1", p, handlers.KeptShipment); err != nil {
		t.Fatal(err)
	}
	subject := keptSubject("shop-a", "o-1", p.Key)
	first, err := k.stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	held := func(context.Context, string, string, string) (handlers.KeptFate, error) {
		return handlers.KeptHeld, nil
	}
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)

	// Younger than the renew age: left as it is.
	if _, err := k.reconcile(ctx, held, 0, time.Hour, time.Now(), log); err != nil {
		t.Fatal(err)
	}
	if again, err := k.stream.GetLastMsgForSubject(ctx, subject); err != nil || again.Sequence != first.Sequence {
		t.Fatalf("a young copy: %v (%v), want it left at %d", again, err, first.Sequence)
	}

	// Older: kept anew.
	if _, err := k.reconcile(ctx, held, 0, time.Hour, time.Now().Add(2*time.Hour), log); err != nil {
		t.Fatal(err)
	}
	renewed, err := k.stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Sequence == first.Sequence || !renewed.Time.After(first.Time) || string(renewed.Data) != string(first.Data) {
		t.Fatalf("an old copy still held: seq %d at %s %q, was %d at %s %q; want it published anew with the same body",
			renewed.Sequence, renewed.Time, renewed.Data, first.Sequence, first.Time, first.Data)
	}
	for _, h := range []string{headerKeptSubject, headerKeptWhy, "Dlq-Replay-Count", "Dlq-Published-Sequence"} {
		if got, want := renewed.Header.Get(h), first.Header.Get(h); got != want || want == "" {
			t.Errorf("header %s of the renewed copy %q, want %q", h, got, want)
		}
	}
	if n := copies(t, k); n != 1 {
		t.Errorf("%d copies after the renewal, want the new one alone", n)
	}
	if w := logs.FilterLevelExact(zapcore.WarnLevel).All(); len(w) != 0 {
		t.Errorf("the renewal logged %d warnings, the first %q %v: the old copy, replaced on its subject, is no failure to drop", len(w), w[0].Message, w[0].ContextMap())
	}

	// A copy replaced since it was read is not renewed over the newer one.
	if ok, err := k.renew(ctx, renewed.Sequence-1); err != nil || ok {
		t.Errorf("renewing a copy replaced since: %v, %v; want nothing done", ok, err)
	}
	if n := copies(t, k); n != 1 {
		t.Errorf("%d copies after renewing a replaced one, want 1", n)
	}
}
