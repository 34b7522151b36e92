package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// Faults of Redis beyond an outage: recent writes lost, everything lost, a server that hangs.

// stateLost are the dead-letter reasons any event may end with once the worker lost its state: an
// event that needs a transaction the worker has no record of goes to an operator
// (no-transaction), and a registration the worker no longer knows it made finds the order
// registered at ATODENE (outcome-unknown).
var stateLost = []string{"no-transaction", "outcome-unknown"}

// injectRedisRollback takes a snapshot of the private Redis when 40% of the orders have started,
// SIGKILLs the server a second later, and starts it again from the snapshot alone: the last
// second of writes is lost, as with a replica promoted one second behind or appendfsync everysec
// after a power cut.
func injectRedisRollback(ctx context.Context, x *run) error {
	if err := x.waitStarted(ctx, 0.4); err != nil {
		return err
	}
	snap, err := x.s.RedisServer.Snapshot(ctx)
	if err != nil {
		return err
	}
	if err := childproc.Sleep(ctx, time.Second); err != nil {
		return err
	}
	x.s.RedisServer.Kill()
	return x.s.RedisServer.Restore(ctx, snap)
}

// injectRedisFlushed deletes every key of the private Redis (FLUSHALL) when 40% of the orders have
// started.
func injectRedisFlushed(ctx context.Context, x *run) error {
	if err := x.waitStarted(ctx, 0.4); err != nil {
		return err
	}
	return x.s.RedisServer.Flush(ctx)
}

// shutdownSlack is how much longer than its grace a worker may take to exit after SIGTERM.
const shutdownSlack = 5 * time.Second

// injectFrozenShutdown freezes the private Redis (SIGSTOP) when 40% of the orders have started,
// sends the worker SIGTERM a second later and times its exit (it is SIGKILLed 30 s after its
// grace), then lets Redis go on (SIGCONT) and starts the worker again.
func injectFrozenShutdown(ctx context.Context, x *run) error {
	if err := x.waitStarted(ctx, 0.4); err != nil {
		return err
	}
	const grace = 10 * time.Second // the worker's -shutdown-grace (workerOptions)
	if err := x.s.RedisServer.Proc().Pause(); err != nil {
		return err
	}
	if err := childproc.Sleep(ctx, time.Second); err != nil {
		return err
	}
	took, stopErr := x.s.Workers[0].Stop(grace + 30*time.Second)
	if err := x.s.RedisServer.Proc().Resume(); err != nil {
		return err
	}
	took = took.Round(100 * time.Millisecond)
	x.note = fmt.Sprintf("Redis frozen; the worker exited %s after SIGTERM (grace %s)", took, grace)
	switch {
	case took > grace+shutdownSlack:
		x.find("slow shutdown", "the worker took %s to exit after SIGTERM with Redis frozen: more than its grace (%s) and %s (%v)", took, grace, shutdownSlack, stopErr)
	case stopErr != nil:
		x.find("unclean shutdown", "the worker exited %s after SIGTERM with Redis frozen, but not cleanly: %v", took, stopErr)
	}
	return x.restartWorker(ctx, x.s.Workers[0])
}

// injectRedisFailover SIGKILLs the private Redis master when 40% of the orders have started, with
// registrations in flight, and waits until the sentinels promote its replica; 5 s later it starts
// the old master again, which the sentinels make a replica of the new one (until then the new
// master has no replica, and the worker's intents wait for one).
func injectRedisFailover(ctx context.Context, x *run) error {
	if err := x.waitStarted(ctx, 0.4); err != nil {
		return err
	}
	g := x.s.Sentinels
	killed := time.Now()
	x.s.RedisServer.Kill()
	for {
		if addr, err := g.Master(ctx); err == nil && addr == g.Replica.Addr {
			break
		}
		if time.Since(killed) > time.Minute {
			return fmt.Errorf("the sentinels did not promote the replica %s within a minute", g.Replica.Addr)
		}
		if err := childproc.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	promoted := time.Since(killed).Round(100 * time.Millisecond)
	if err := childproc.Sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	if err := x.s.RedisServer.Start(ctx); err != nil {
		return err
	}
	if err := g.WaitReplicas(ctx, g.Replica.Addr, 1); err != nil {
		return err
	}
	x.note = fmt.Sprintf("master SIGKILLed at 40%%, replica promoted after %s, old master its replica after %s", promoted, time.Since(killed).Round(100*time.Millisecond))
	return nil
}

// injectClusterNodeLoss SIGKILLs, when 40% of the orders have started and registrations are in
// flight, the master of the Redis Cluster that holds shop rel-a's slot (that of "{rel-a}": every
// key of a shop carries the shop as hash tag), and waits until the cluster promotes its replica;
// 5 s later it starts the killed node again, which rejoins as the replica of the new master
// (until then the new master has none, and the intents of rel-a's registrations wait for one).
// A worker whose intents wait for no replica makes the run a violation: the scenario would not
// test what it says.
func injectClusterNodeLoss(ctx context.Context, x *run) error {
	if err := x.waitStarted(ctx, 0.4); err != nil {
		return err
	}
	if !intentsWaitForAReplica(x) {
		x.find("not injected", "the worker's registration intents wait for no replica (its log does not say %q with 1 replica): -redis-wait-replicas auto found none", intentsWaitLine)
	}
	c := x.s.Cluster
	tag := "{" + shopA + "}"
	victim, slot, err := c.MasterOf(ctx, tag)
	if err != nil {
		return err
	}
	other, _, err := c.MasterOf(ctx, "{"+shopB+"}")
	if err != nil {
		return err
	}
	started := x.d.started.Load()
	killed := time.Now()
	if _, err := c.KillMaster(ctx, victim); err != nil {
		return err
	}
	tookOver := time.Since(killed).Round(100 * time.Millisecond)
	if err := childproc.Sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	if err := c.Restart(ctx, victim); err != nil {
		return err
	}
	where := "rel-b on another master"
	if other == victim {
		where = "rel-b on the same master"
	}
	x.note = fmt.Sprintf("master of %s (slot %d; %s) SIGKILLed at 40%% (order %d), replica promoted after %s, killed node its replica after %s",
		tag, slot, where, started, tookOver, time.Since(killed).Round(100*time.Millisecond))
	return nil
}

// intentsWaitLine is what the worker logs at start-up when its registration intents wait for
// Redis replicas (worker.replication).
const intentsWaitLine = "registration intents wait for Redis replicas"

// intentsWaitForAReplica reports whether every worker's log says that its intents wait for one
// replica.
func intentsWaitForAReplica(x *run) bool {
	for _, w := range x.s.Workers {
		raw, err := os.ReadFile(w.Log)
		if err != nil {
			return false
		}
		waits := false
		for line := range strings.Lines(string(raw)) {
			waits = waits || strings.Contains(line, intentsWaitLine) && strings.Contains(line, `"replicas":1`)
		}
		if !waits {
			return false
		}
	}
	return true
}

// notHeldLine is what the worker logs of an intent whose write no replica acknowledged in time
// (orderstate.ErrNotReplicated): the registration is held, and nothing sent to ATODENE.
const notHeldLine = "not acknowledged by enough replicas"

// heldOrder finds the order in the error of a held write: "orderstate: writing state of
// rel-a/D93C8-000089: orderstate: the write was not acknowledged ...".
var heldOrder = regexp.MustCompile(`writing state of ([^ :]+/[^ :]+):`)

// noteHeldIntents notes how many registrations waited for a replica after the failover (and of
// how many orders): what shows that registrations were in flight when the master went.
func noteHeldIntents(_ context.Context, x *run) error {
	held, orders := 0, map[string]bool{}
	for _, w := range x.s.Workers {
		raw, err := os.ReadFile(w.Log)
		if err != nil {
			return err
		}
		for line := range strings.Lines(string(raw)) {
			if !strings.Contains(line, notHeldLine) || !strings.Contains(line, `"msg":"handling the message failed`) {
				continue
			}
			var l struct{ Error string }
			if json.Unmarshal([]byte(line), &l) == nil {
				held++
				if m := heldOrder.FindStringSubmatch(l.Error); m != nil {
					orders[m[1]] = true
				}
			}
		}
	}
	x.notef("%d writes of registration intents (%d orders) held for want of a replica while the killed node was down", held, len(orders))
	return nil
}
