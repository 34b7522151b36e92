package consoleops

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/clock"
)

// TestMain fails the package's tests if any goroutine outlives them: the NATS clients and servers
// and the stores the tests start are closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a JetStream server of the test's own with the worker's ORDERS, RESULTS and DLQ streams,
// a store under a Redis key prefix of the test's own, and the operations on them.
type env struct {
	t       *testing.T
	js      jetstream.JetStream
	orders  jetstream.Stream
	results jetstream.Stream
	dlq     jetstream.Stream
	store   *orderstate.Store
	clock   *clock.Fake
	ops     *Ops
}

func newEnv(t *testing.T) *env {
	t.Helper()
	_, js := testenv.JetStream(t)
	e := &env{t: t, js: js}
	for _, s := range []struct {
		to       *jetstream.Stream
		name     string
		subjects []string
	}{
		{&e.orders, "ORDERS", []string{"orders.>"}},
		{&e.results, "RESULTS", []string{"credit.>", "shipment.>", "invoice.>"}},
		{&e.dlq, "DLQ", []string{"dlq.>"}},
	} {
		stream, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: s.name, Subjects: s.subjects,
			Duplicates: 2 * time.Minute, Storage: jetstream.MemoryStorage})
		if err != nil {
			t.Fatal(err)
		}
		*s.to = stream
	}
	rdb, prefix := testenv.Redis(t)
	e.store = orderstate.NewStore(rdb, orderstate.Config{Prefix: prefix})
	t.Cleanup(e.store.Close)
	e.clock = clock.NewFake(time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC))
	ops, err := New(Config{JetStream: js, Store: e.store, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.ops = ops
	return e
}

// put writes an order's state as the worker would.
func (e *env) put(shop, order string, st orderstate.State) {
	e.t.Helper()
	if _, err := e.store.Put(context.Background(), shop, order, st, time.Now()); err != nil {
		e.t.Fatal(err)
	}
}

// msgs counts the messages of s.
func (e *env) msgs(s jetstream.Stream) uint64 {
	e.t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// TestNew: the required settings.
func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without JetStream and Store: no error")
	} else if want := "consoleops: Config.JetStream is required\nconsoleops: Config.Store is required"; err.Error() != want {
		t.Errorf("New: %q, want %q", err, want)
	}
}
