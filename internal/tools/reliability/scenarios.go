package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// scenario is one fault the suite injects while the workload runs.
type scenario struct {
	name  string
	title string
	// full and quick are the default numbers of orders.
	full, quick int
	// nodes is the number of NATS nodes: 1, or 3 for a JetStream cluster.
	nodes        int
	privateRedis bool
	sentinel     bool // the private Redis with a replica and three sentinels (stack.Options.RedisSentinel)
	cluster      bool // a private Redis Cluster, three masters with a replica each (stack.Options.RedisCluster)
	workerFlags  []string
	dup          bool // publish every event three times
	corpus       bool // publish the bad-input corpus among the orders
	// workerEnv is the worker's environment beyond the common one: settings that a worker
	// without them ignores, unlike flags.
	workerEnv []string
	// allowed lists the dead-letter reasons any workload event may end with (Observed.Allowed).
	allowed []string
	// maxFileStore limits the NATS nodes' JetStream file store (e.g. "256MiB"; "" for none).
	maxFileStore string
	// reauth gives the shops reauthorizeAfter and the sandbox authorizationLifetime (reauth.go).
	reauth bool
	// plans, when set, makes the workload's orders instead of generator.plans.
	plans func(g *generator, n int) []*plan
	// prepare runs once the servers are up, before the worker starts; before once the worker is
	// ready, inject alongside the workload, after once the worker went quiet; describe says what
	// was injected.
	prepare  func(ctx context.Context, x *run) error
	before   func(ctx context.Context, x *run) error
	inject   func(ctx context.Context, x *run) error
	after    func(ctx context.Context, x *run) error
	describe func(x *run) string
}

func scenarios() []scenario {
	return []scenario{
		{name: "worker-kill", title: "the worker SIGKILLed at random moments and restarted", full: 5000, quick: 400, nodes: 1,
			inject: injectKills, describe: func(x *run) string { return fmt.Sprintf("%d worker SIGKILLs", x.s.Workers[0].Kills()) }},
		{name: "nats-restart", title: "the NATS server stopped and started again on the same storage", full: 2000, quick: 300, nodes: 1,
			inject: injectNATSRestart, describe: func(x *run) string { return "NATS stopped 5s, restarted" }},
		{name: "nats-cluster", title: "a 3-node JetStream cluster, R3 streams; the streams' leader SIGKILLed", full: 2000, quick: 300, nodes: 3,
			workerFlags: []string{"-stream-replicas", "3"}, inject: injectLeaderKill, describe: describeNote},
		{name: "redis-outage", title: "a private redis-server SIGKILLed for 10 s and started again with its data", full: 2000, quick: 300, nodes: 1,
			privateRedis: true, inject: injectRedisOutage, describe: func(x *run) string { return "Redis down 10s" }},
		{name: "provider-faults", title: "the sandbox at 20% HTTP 500, 5% never answering, 5% malformed XML, latency with jitter", full: 2000, quick: 300, nodes: 1,
			// A message whose every delivery (10) meets a provider fault is exhausted, as designed:
			// at 30% faults, about one order in 2,000 is.
			allowed: []string{"exhausted"}, before: startProviderFaults, after: stopProviderFaults, describe: describeProviderFaults},
		{name: "duplicates", title: "every event published three times, one copy with a fresh Nats-Msg-Id, some seconds late", full: 2000, quick: 300, nodes: 1,
			dup: true, describe: describeDuplicates},
		{name: "bad-input", title: fmt.Sprintf("a corpus of %d kinds of bad messages and %d odd but valid ones among the orders", badKinds(), len(corpus())-badKinds()),
			full: 1000, quick: 200, nodes: 1, corpus: true,
			// Few deliveries, so that a message that cannot even be dead-lettered shows up soon.
			workerFlags: []string{"-max-deliveries", "3"},
			describe:    func(x *run) string { return fmt.Sprintf("%d bad kinds, %d odd", badKinds(), len(corpus())-badKinds()) }},
		// The second round: faults that break the state the worker keeps beside NATS and Redis.
		{name: "store-full", title: "the JetStream store filled up mid-load until publishes fail, then freed", full: 2000, quick: 200, nodes: 1,
			maxFileStore: storeLimit, workerEnv: []string{"ATODENE_WORKER_STREAM_BYTES=" + storeWorkerShare},
			workerFlags: reconcileFlags, inject: injectStoreFull, describe: describeNote},
		{name: "orders-recreated", title: "the ORDERS stream deleted and created again mid-load", full: 2000, quick: 200, nodes: 1,
			inject: injectOrdersRecreated, describe: describeNote},
		{name: "nats-wiped", title: "NATS stopped, its store deleted, started again empty", full: 2000, quick: 200, nodes: 1,
			workerFlags: reconcileFlags, inject: injectNATSWiped, describe: describeNote},
		{name: "redis-rollback", title: "a private redis-server SIGKILLed and started again from a snapshot taken 1 s before", full: 2000, quick: 200, nodes: 1,
			// As redis-flushed: a re-check held in Redis goes with the writes lost.
			privateRedis: true, allowed: stateLost, workerFlags: append(slices.Clone(reconcileFlags), "-poll-handoff-ahead", "0"),
			inject: injectRedisRollback, describe: func(x *run) string { return "Redis rolled back 1s" }},
		{name: "redis-flushed", title: "the private redis-server flushed mid-load", full: 2000, quick: 200, nodes: 1,
			// Re-checks held in Redis go with a flush, by design (docs/configuration.md,
			// -poll-handoff-ahead): this scenario runs with the default, every re-check in JetStream;
			// with re-checks held, the orders registered since the lost data are never re-checked.
			privateRedis: true, allowed: stateLost, workerFlags: append(slices.Clone(reconcileFlags), "-poll-handoff-ahead", "0"),
			inject: injectRedisFlushed, describe: func(x *run) string { return "Redis flushed" }},
		{name: "password-rotated", title: "a merchant's link password changed at ATODENE, the worker restarted with it, refusals replayed", full: 2000, quick: 200, nodes: 1,
			prepare: prepareRotation, before: holdRefusals, inject: injectPasswordRotated, describe: describeNote},
		{name: "hot-order", title: "a burst of events for one order while the other shop's orders must keep their latency", full: 1000, quick: 200, nodes: 1,
			inject: injectHotOrder, describe: describeNote},
		{name: "redis-frozen-shutdown", title: "the worker sent SIGTERM while its Redis is frozen (SIGSTOP)", full: 1000, quick: 200, nodes: 1,
			privateRedis: true, inject: injectFrozenShutdown, describe: describeNote},
		{name: "huge-ids", title: "events whose CloudEvents id (1 MiB) or source (10 KiB) is huge, among the orders", full: 1000, quick: 200, nodes: 1,
			privateRedis: true, inject: injectHugeIDs, describe: describeNote},
		{name: "redis-failover", title: "the private Redis master SIGKILLed while registrations are in flight; Sentinel promotes its replica", full: 2000, quick: 200, nodes: 1,
			privateRedis: true, sentinel: true, inject: injectRedisFailover, describe: describeNote},
		{name: "redis-cluster-node-loss", title: "the Redis Cluster master of one shop's slot SIGKILLed while registrations are in flight; its replica promoted", full: 2000, quick: 200, nodes: 1,
			// Each master has a replica, so auto makes every intent wait for its master's replica.
			cluster: true, workerFlags: []string{"-redis-wait-replicas", "auto"}, inject: injectClusterNodeLoss, after: noteHeldIntents, describe: describeNote},
		{name: "late-retry", title: "an importer's late retry of order.created after the order's cancel, and orders created again after it", full: 1000, quick: 200, nodes: 1,
			inject: injectLateRetries, after: checkLateOrders, describe: describeNote},
		{name: "reauthorization", title: "orders re-authorized every 4 s while they wait to ship, the worker SIGKILLed meanwhile; approvals expire after 66 s", full: 2000, quick: 200, nodes: 1,
			reauth: true, workerFlags: []string{"-min-reauthorize-after", "1s"}, plans: reauthPlans,
			before: startReauthWatch, inject: injectReauthKills, after: checkReauthorizations, describe: describeNote},
	}
}

// describeNote is what the scenario's injector said it did.
func describeNote(x *run) string {
	if x.note == "" {
		return "not injected"
	}
	return x.note
}

func badKinds() int {
	n := 0
	for _, c := range corpus() {
		if c.reason != "" || c.refused {
			n++
		}
	}
	return n
}

// injectKills SIGKILLs the worker at least three times (five at full size) at random moments
// between 10% and 85% of the orders started, and restarts it each time.
func injectKills(ctx context.Context, x *run) error {
	n := 5
	if x.r.opts.Quick {
		n = 3
	}
	r := rand.New(rand.NewPCG(x.seed, 1))
	at := make([]float64, n)
	for i := range at {
		at[i] = 0.1 + 0.75*(float64(i)+r.Float64())/float64(n) // one in each slice: spread, random
	}
	slices.Sort(at)
	for _, share := range at {
		if err := x.waitStarted(ctx, share); err != nil {
			return err
		}
		if err := childproc.Sleep(ctx, time.Duration(r.IntN(1000))*time.Millisecond); err != nil {
			return err
		}
		if err := x.killWorker(ctx, x.s.Workers[0]); err != nil {
			return err
		}
	}
	return nil
}

// injectNATSRestart stops the NATS server (SIGTERM) when 40% of the orders have started, and
// starts it again on the same port and storage 5 seconds later.
func injectNATSRestart(ctx context.Context, x *run) error {
	if err := x.waitStarted(ctx, 0.4); err != nil {
		return err
	}
	node := x.s.Nodes[0]
	if err := node.Proc().Stop(30 * time.Second); err != nil {
		return err
	}
	if err := childproc.Sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	return x.s.RestartNode(ctx, node)
}

// injectLeaderKill SIGKILLs the node that leads ORDERS when 40% of the orders have started, and
// starts it again 10 seconds later.
func injectLeaderKill(ctx context.Context, x *run) error {
	if err := x.waitStarted(ctx, 0.4); err != nil {
		return err
	}
	leaders := map[string][]string{}
	for _, name := range []string{"ORDERS", "RESULTS", "DLQ", "ATODENE_POLLS", "ATODENE_KEPT", "ATODENE_ADVISORIES"} {
		st, err := x.s.JS.Stream(ctx, name)
		if err != nil {
			return err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.Config.Replicas != 3 || info.Cluster == nil {
			return fmt.Errorf("stream %s has %d replicas, want 3", name, info.Config.Replicas)
		}
		leaders[info.Cluster.Leader] = append(leaders[info.Cluster.Leader], name)
	}
	var victim string
	for node, streams := range leaders {
		if slices.Contains(streams, "ORDERS") {
			victim = node
		}
	}
	for _, n := range x.s.Nodes {
		if n.Name != victim {
			continue
		}
		slices.Sort(leaders[victim])
		x.note = fmt.Sprintf("leader %s (%s) SIGKILLed 10s", victim, strings.Join(leaders[victim], ", "))
		n.Proc().Kill()
		if err := childproc.Sleep(ctx, 10*time.Second); err != nil {
			return err
		}
		return x.s.RestartNode(ctx, n)
	}
	return fmt.Errorf("no node leads ORDERS (leaders: %v)", leaders)
}

// injectRedisOutage SIGKILLs the private redis-server when 30% of the orders have started and
// starts it again, with its append-only file, 10 seconds later.
func injectRedisOutage(ctx context.Context, x *run) error {
	if err := x.waitStarted(ctx, 0.3); err != nil {
		return err
	}
	x.s.RedisServer.Kill()
	if err := childproc.Sleep(ctx, 10*time.Second); err != nil {
		return err
	}
	return x.s.RedisServer.Start(ctx)
}

// providerFaults are the provider faults of the scenario: 20% HTTP 500, 5% answers that never
// come, 5% malformed XML, and 40±40 ms of latency on every call.
var providerFaults = sandbox.Faults{LatencyMS: 40, JitterMS: 40, ErrorRate: 0.20, TimeoutRate: 0.05, GarbageRate: 0.05}

func startProviderFaults(ctx context.Context, x *run) error {
	return x.s.SetFaults(ctx, providerFaults)
}

// stopProviderFaults runs once the worker went quiet: the faults were on for the whole run.
func stopProviderFaults(ctx context.Context, x *run) error {
	return x.s.SetFaults(ctx, sandbox.Faults{})
}

func describeProviderFaults(x *run) string {
	var st sandbox.Stats
	if err := x.s.SandboxJSON(context.Background(), "/sandbox/stats", &st); err != nil {
		return "stats unavailable: " + err.Error()
	}
	counts := map[string]int{}
	calls := 0
	for _, op := range st.Operations {
		calls += op.Calls
		for f, n := range op.Faults {
			counts[f] += n
		}
	}
	return fmt.Sprintf("%d of %d calls: %d HTTP 500, %d hung, %d bad XML",
		counts["error"]+counts["timeout"]+counts["garbage"], calls, counts["error"], counts["timeout"], counts["garbage"])
}

func describeDuplicates(x *run) string {
	dropped := 0
	for _, e := range x.d.ledger() {
		dropped += e.Dropped
	}
	return fmt.Sprintf("%d copies: %d dropped by the stream, %d with a fresh Nats-Msg-Id",
		dropped+int(x.d.lateCount.Load()), dropped, x.d.lateCount.Load())
}
