package reliability

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// Faults of the NATS store: full, one stream recreated, all of it lost.

// workerConsumers are the worker's durable consumers, by stream.
var workerConsumers = []struct{ stream, name string }{
	{"ORDERS", "atodene-worker"}, {"ATODENE_POLLS", "atodene-worker-polls"}, {"ATODENE_ADVISORIES", "atodene-worker-advisories"},
}

// storeLimit is the JetStream file store of store-full (max_file_store), filled up by a stream of
// the suite's own; storeWorkerShare is what the worker's streams reserve of it (-stream-bytes,
// given through the environment so that a worker without the setting runs too). The reservation
// must fit in the store and be at least the worker's minimum, 64 MiB; each stream gets its share
// of it (ORDERS and RESULTS 40%, 51 MiB each, DLQ 10%, the timers, copies and advisories the
// rest), far more than a run writes (a few MB at full size), and ORDERS's share holds its largest
// message (max_payload, 2 MiB). Both are binary sizes, as nats-server reads "MiB" too.
const (
	storeLimit       = "256MiB"
	storeWorkerShare = "128MiB"
)

// reconcileFlags make the worker reconcile every 10 s, instead of every minute, in the scenarios
// that lose JetStream's timers or Redis's writes: a re-check lost at 40%, or an event kept only in
// Redis (published again from its copy in ATODENE_KEPT), would otherwise wait a minute or two,
// which the quick suite cannot afford.
var reconcileFlags = []string{"-reconcile-interval", "10s"}

// storeFullHold is how long store-full keeps the store full.
func (x *run) storeFullHold() time.Duration {
	if x.r.opts.Quick {
		return 30 * time.Second
	}
	return 60 * time.Second
}

// injectStoreFull fills the JetStream store when 30% of the orders have started, with 1 MiB
// messages of a stream of the suite's own until the server refuses one, keeps it full, then frees
// the space by deleting that stream.
func injectStoreFull(ctx context.Context, x *run) error {
	if err := x.waitStarted(ctx, 0.3); err != nil {
		return err
	}
	if _, err := x.s.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "FILLER", Subjects: []string{"filler.>"},
		Storage: jetstream.FileStorage}); err != nil {
		return err
	}
	chunk := make([]byte, 1<<20)
	filled := 0
	var refusal error
	for refusal == nil {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, refusal = x.s.JS.Publish(pctx, "filler.x", chunk)
		cancel()
		if refusal == nil {
			filled++
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	hold := x.storeFullHold()
	x.note = fmt.Sprintf("store (%s) filled at 30%% with %d MiB, freed %s later", storeLimit, filled, hold)
	x.notef("the store refused the filler after %d MiB: %v", filled, refusal)
	if !strings.Contains(refusal.Error(), "insufficient resources") {
		x.find("not injected", "the filler stopped on another error than a full store: %v", refusal)
	}
	if err := childproc.Sleep(ctx, hold); err != nil {
		return err
	}
	return x.s.JS.DeleteStream(ctx, "FILLER")
}

// injectOrdersRecreated deletes the ORDERS stream when 40% of the orders have started and creates
// it again at once with the configuration it had (the worker's: same name, subjects and limits),
// as a rename or a move to an R3 stream does. The worker's consumer goes with the stream; if the
// worker does not make it again by itself, it is restarted, as an operator would. Events the old
// stream held unanswered are lost with it: the workload publishes them again (driver.resend).
func injectOrdersRecreated(ctx context.Context, x *run) error {
	if err := x.waitStarted(ctx, 0.4); err != nil {
		return err
	}
	st, err := x.s.JS.Stream(ctx, "ORDERS")
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	x.d.closeGate()
	err = x.s.JS.DeleteStream(ctx, "ORDERS")
	lost := x.d.unanswered()
	if err == nil {
		_, err = x.s.JS.CreateStream(ctx, info.Config)
	}
	x.d.openGate()
	if err != nil {
		return fmt.Errorf("deleting and creating ORDERS again: %w", err)
	}
	how, err := x.recoverWorker(ctx)
	if err != nil {
		return err
	}
	x.note = fmt.Sprintf("ORDERS (last seq %d) deleted and created again at 40%%; %d unanswered events sent again", info.State.LastSeq, len(lost))
	x.notef("after ORDERS was recreated %s", how)
	return x.d.resend(ctx, lost)
}

// injectNATSWiped loses the whole NATS store when 40% of the orders have started: the worker is
// frozen (SIGSTOP) while RESULTS and DLQ are read as they are (the check needs what they held),
// NATS is stopped, its store directory deleted, and NATS started again, empty; then the worker
// goes on. If it does not make its streams and consumers again by itself, it is restarted. The
// inbound events the store held unanswered are published again (driver.resend).
func injectNATSWiped(ctx context.Context, x *run) error {
	if err := x.waitStarted(ctx, 0.4); err != nil {
		return err
	}
	p := x.s.Workers[0].Proc()
	if err := p.Pause(); err != nil {
		return err
	}
	lost, err := x.wipeNATS(ctx)
	if err = errors.Join(err, p.Resume()); err != nil {
		return err
	}
	how, err := x.recoverWorker(ctx)
	if err != nil {
		return err
	}
	if err := x.d.watch(ctx); err != nil {
		return err
	}
	x.note = fmt.Sprintf("NATS store deleted at 40%% (%d outcomes, %d dead letters before); %d unanswered events sent again",
		len(x.before.outs), len(x.before.dead), len(lost))
	x.notef("after the NATS store was lost %s", how)
	return x.d.resend(ctx, lost)
}

// wipeNATS reads RESULTS and DLQ into x.before (the worker must be frozen: nothing changes them),
// then stops NATS, deletes its store and starts it again, empty. It returns the events the lost
// ORDERS held unanswered. The driver stops following RESULTS and DLQ first and is given what
// they held, so that its view of which events were answered is exactly what was read.
func (x *run) wipeNATS(ctx context.Context) ([]*Event, error) {
	x.d.stopWatching()
	outs, dead, err := x.d.collect(ctx)
	if err != nil {
		return nil, err
	}
	x.before = &streamsRead{outs: outs, dead: dead}
	x.d.feed(x.before)
	x.d.closeGate()
	defer x.d.openGate()
	node := x.s.Nodes[0]
	_ = node.Proc().Stop(30 * time.Second) // an unclean stop changes nothing: the store goes
	lost := x.d.unanswered()
	if err := os.RemoveAll(node.Dir); err != nil {
		return lost, err
	}
	return lost, x.s.RestartNode(ctx, node)
}

// recoverWorker waits up to 10 s for the worker to have its streams and consumers again by itself,
// else restarts it (it makes them at start-up). It says which.
func (x *run) recoverWorker(ctx context.Context) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if x.workerSetUp(ctx) {
			return "the worker made its streams and consumers again by itself", nil
		}
		if err := childproc.Sleep(ctx, 500*time.Millisecond); err != nil {
			return "", err
		}
	}
	w := x.s.Workers[0]
	if took, err := w.Stop(30 * time.Second); err != nil {
		x.notef("stopping the worker to restart it took %s: %v", took.Round(100*time.Millisecond), err)
	}
	if err := x.restartWorker(ctx, w); err != nil {
		return "", err
	}
	return "the worker did not make its consumers again by itself within 10s: restarted", nil
}

// workerSetUp reports whether the worker's consumers and the outcome streams exist.
func (x *run) workerSetUp(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for _, c := range workerConsumers {
		if _, err := x.s.JS.Consumer(cctx, c.stream, c.name); err != nil {
			return false
		}
	}
	for _, name := range []string{"RESULTS", "DLQ"} {
		if _, err := x.s.JS.Stream(cctx, name); err != nil {
			return false
		}
	}
	return true
}
