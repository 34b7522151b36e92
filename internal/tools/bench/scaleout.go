package bench

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// scaleOutShops are the shops of the scale-out scenario. A shop's keys carry the shop as hash tag
// ({shop}, docs/architecture.md#redis-keys), so each shop lives on one master of a Redis Cluster:
// these three hash to slots 4264, 8395 and 12522, one in each third of the slots that
// redis-cli --cluster create gives three masters (0–5460, 5461–10922, 10923–16383). The cluster
// run checks that with CLUSTER KEYSLOT and CLUSTER SLOTS before its workers start.
var scaleOutShops = []string{"merchant-1", "merchant-2", "merchant-3"}

// ScaleOutResult is the scale-out scenario: the same backlog, spread over three shops, drained by
// one worker on one NATS node and one redis-server, and by three workers on a three-node
// JetStream cluster with R3 streams and a Redis Cluster of three masters with a replica each.
type ScaleOutResult struct {
	Orders int `json:"orders"`
	// Shops are the shops, with their hash tag's slot and its master in the cluster run.
	Shops   []ScaleOutShop `json:"shops"`
	Single  ScaleOutRun    `json:"single"`
	Cluster ScaleOutRun    `json:"cluster"`
	// Ratio is the cluster's orders/s over the single setup's.
	Ratio float64 `json:"ratio_cluster_to_single"`
}

// ScaleOutShop is one shop of the scale-out scenario.
type ScaleOutShop struct {
	ID     string `json:"id"`
	Slot   int    `json:"slot"`
	Master string `json:"master"`
}

// ScaleOutRun is one setup of the scale-out scenario: its drain, and the projection of its CPU
// per order onto a deployment where every process has a core of its own.
type ScaleOutRun struct {
	Setup string `json:"setup"`
	ThroughputResult
	// Roles names the role of each Redis process that has one (master, replica).
	Roles map[string]string `json:"redis_roles,omitempty"`
	// IntentsWait is the number of workers whose registration intents wait for a Redis replica
	// (-redis-wait-replicas auto, as they logged at start-up).
	IntentsWait int              `json:"workers_whose_intents_wait_for_a_replica"`
	Projection  []PartProjection `json:"projection"`
	// Projected is the rate the busiest process allows when every worker, NATS node and Redis
	// node has a core of its own (the lowest OneCoreEach of Projection), Cores the cores that
	// takes (one per process) and Bottleneck the part of that process.
	Projected  float64 `json:"projected_orders_per_second_one_core_each"`
	Cores      int     `json:"projected_cores"`
	Bottleneck string  `json:"projected_bottleneck"`
}

// PartProjection is what the CPU per order of one part of a setup (the workers, NATS or Redis)
// allows, on paper.
type PartProjection struct {
	Part      string `json:"part"`
	Processes int    `json:"processes"`
	// CPUPerOrderMS is the part's CPU per order, over all its processes.
	CPUPerOrderMS float64 `json:"cpu_ms_per_order"`
	// PerCore is 1,000 / CPUPerOrderMS: orders per second per core given to the part, if its work
	// spreads evenly over its processes.
	PerCore float64 `json:"orders_per_second_per_core"`
	// Busiest is the part's process with the most CPU per order, BusiestMS that CPU.
	Busiest   string  `json:"busiest_process"`
	BusiestMS float64 `json:"busiest_process_cpu_ms_per_order"`
	// OneCoreEach is 1,000 / BusiestMS: the rate at which the busiest process fills one core.
	OneCoreEach float64 `json:"orders_per_second_one_core_each"`
}

// projectedParts are the parts a projection covers: what a deployment runs. The sandbox stands
// for the provider, and the bench for the mall's publisher and the outcomes' readers.
var projectedParts = []string{"worker", "nats", "redis"}

// Project projects CPU milliseconds per order by process (<part>/<process>, as
// ThroughputResult.CPUPerOrderByProcessMS) onto a deployment where every process of the workers,
// NATS and Redis has a core of its own: per part, the orders per second per core, and the rate
// at which its busiest process fills its core. It returns the parts, the lowest such rate, the
// part it comes from and the cores (processes) counted. A part with no CPU measured is left out.
func Project(byProcess map[string]float64) (parts []PartProjection, rate float64, bottleneck string, cores int) {
	for _, part := range projectedParts {
		p := PartProjection{Part: part}
		for _, name := range slices.Sorted(maps.Keys(byProcess)) {
			kind, proc, _ := strings.Cut(name, "/")
			if kind != part {
				continue
			}
			ms := byProcess[name]
			p.Processes++
			p.CPUPerOrderMS += ms
			if ms > p.BusiestMS {
				p.Busiest, p.BusiestMS = proc, ms
			}
		}
		if p.Processes == 0 || p.BusiestMS <= 0 {
			continue
		}
		p.PerCore, p.OneCoreEach = 1000/p.CPUPerOrderMS, 1000/p.BusiestMS
		parts = append(parts, p)
		cores += p.Processes
		if rate == 0 || p.OneCoreEach < rate {
			rate, bottleneck = p.OneCoreEach, part
		}
	}
	return parts, rate, bottleneck, cores
}

// scaleOut drains the same backlog, orders of three shops interleaved, twice: (a) one worker on
// one NATS node and one redis-server of the stack's own (its CPU is the stack's alone, and it
// persists as the Cluster's nodes do), and (b) three workers on a three-node JetStream cluster
// with R3 streams (-stream-replicas 3) and a Redis Cluster of three masters with a replica each,
// whose shops fall on different masters. Every process shares this machine's cores, so (b)/(a)
// is the cost of the distributed setup, not its capacity; the projection divides that cost over
// cores of their own.
func (r *runner) scaleOut(ctx context.Context) error {
	n := r.settings.ScaleOutOrders
	fmt.Fprintf(r.out, "7. Scale-out: %d orders (auto OK) of %d shops (%s), interleaved, sandbox at 0 ms, published before the consumers start\n",
		n, len(scaleOutShops), strings.Join(scaleOutShops, ", "))
	orders := orderSpec{shops: scaleOutShops, prefix: "X", n: n, email: emailOK}
	res := ScaleOutResult{Orders: n}

	single := ScaleOutRun{Setup: "1 worker; NATS 1 node, R1; 1 redis-server"}
	var err error
	single.ThroughputResult, err = r.drain(ctx, drainSpec{name: "single", dir: "scaleout-single", srv: servers{privateRedis: true},
		workers: 1, worker: workerOpts{shops: scaleOutShops}, orders: orders, setupFirst: true,
		after: func(_ context.Context, s *benchStack) { single.IntentsWait = intentsWait(s) }})
	if err != nil {
		return fmt.Errorf("single: %w", err)
	}

	cluster := ScaleOutRun{Setup: "3 workers; NATS 3 nodes, R3; Redis Cluster 3 masters + 3 replicas", Roles: map[string]string{}}
	cluster.ThroughputResult, err = r.drain(ctx, drainSpec{name: "cluster", dir: "scaleout-cluster",
		srv: servers{natsNodes: 3, redisCluster: true}, workers: 3,
		worker: workerOpts{shops: scaleOutShops, flags: []string{"-stream-replicas", "3"}}, orders: orders, setupFirst: true,
		started: func(ctx context.Context, s *benchStack) error {
			shops, roles, err := shopsOnMasters(ctx, s)
			res.Shops, cluster.Roles = shops, roles
			return err
		},
		after: func(_ context.Context, s *benchStack) { cluster.IntentsWait = intentsWait(s) }})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	for _, run := range []*ScaleOutRun{&single, &cluster} {
		run.Projection, run.Projected, run.Bottleneck, run.Cores = Project(run.CPUPerOrderByProcessMS)
	}
	res.Single, res.Cluster, res.Ratio = single, cluster, Ratio(cluster.OrdersPerSec, single.OrdersPerSec)
	r.report.ScaleOut = &res
	return r.printScaleOut(res)
}

// intentsWaitLine is what a worker logs at start-up when its registration intents wait for a
// Redis replica (-redis-wait-replicas auto with replicas, or 1).
const intentsWaitLine = "registration intents wait for Redis replicas"

// intentsWait counts the stack's workers whose log says their intents wait for a replica.
func intentsWait(s *benchStack) int {
	n := 0
	for _, w := range s.Workers {
		if raw, err := os.ReadFile(w.Log); err == nil && strings.Contains(string(raw), intentsWaitLine) {
			n++
		}
	}
	return n
}

// shopsOnMasters finds the slot and master of each scale-out shop's hash tag in the stack's Redis
// Cluster, and the role of each node; an error is a shop on the same master as another, which
// would leave a master idle and measure something else.
func shopsOnMasters(ctx context.Context, s *benchStack) ([]ScaleOutShop, map[string]string, error) {
	var shops []ScaleOutShop
	taken := map[string]string{}
	for _, id := range scaleOutShops {
		master, slot, err := s.Cluster.MasterOf(ctx, "{"+id+"}")
		if err != nil {
			return nil, nil, err
		}
		if other, ok := taken[master]; ok {
			return nil, nil, fmt.Errorf("shops %s and %s share the master %s (slot of %s: %d): choose other scale-out shops", other, id, master, id, slot)
		}
		taken[master] = id
		shops = append(shops, ScaleOutShop{ID: id, Slot: slot, Master: master})
	}
	slots, err := s.Cluster.Slots(ctx)
	if err != nil {
		return nil, nil, err
	}
	roles := map[string]string{}
	for _, rs := range s.Cluster.Nodes {
		if slices.Contains(slots.Masters(), rs.Addr) {
			roles["redis/"+rs.Addr] = "master of " + cmp.Or(taken[rs.Addr], "no shop")
			continue
		}
		master := replicaOf(ctx, rs.Addr)
		roles["redis/"+rs.Addr] = "replica of " + cmp.Or(taken[master], master)
	}
	return shops, roles, nil
}

// replicaOf returns the host:port of the master of the replica at addr (INFO replication), or
// "?" if it does not say.
func replicaOf(ctx context.Context, addr string) string {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	info, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return "?"
	}
	host, port := "", ""
	for line := range strings.Lines(info) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "master_host":
			host = v
		case "master_port":
			port = v
		}
	}
	if host == "" || port == "" {
		return "?"
	}
	return host + ":" + port
}

// printScaleOut prints the scenario's tables: the two drains, the CPU of every process, and the
// projection.
func (r *runner) printScaleOut(res ScaleOutResult) error {
	runs := []ScaleOutRun{res.Single, res.Cluster}
	t := Table{Title: "Scale-out (publish → final outcome)",
		Columns: []string{"setup", "orders", "seconds", "orders/s", "vs single", "CPU ms/order: workers", "nats", "redis", "sandbox", "bench", "total", "other load"}}
	for i, run := range runs {
		c := run.CPUPerOrderMS
		vs := 0.0
		if i > 0 {
			vs = res.Ratio
		}
		t.Add(run.Setup, thousands(int64(run.Orders)), num(run.Seconds), num(run.OrdersPerSec), ratio(vs),
			num(c["worker"]), num(c["nats"]), num(c["redis"]), num(c["sandbox"]), num(c["bench"]), num(c["total"]), num(run.OtherCores))
	}
	var where []string
	for _, s := range res.Shops {
		where = append(where, fmt.Sprintf("%s slot %d on %s", s.ID, s.Slot, s.Master))
	}
	t.Notes = []string{
		fmt.Sprintf("cluster / single: %s; CPU ms/order of the workers is the sum over the worker processes", ratio(res.Ratio)),
		"shops on the Redis Cluster: " + strings.Join(where, "; "),
		fmt.Sprintf("registration intents wait for a Redis replica (-redis-wait-replicas auto): single %d of 1 worker, cluster %d of 3",
			res.Single.IntentsWait, res.Cluster.IntentsWait),
		fmt.Sprintf("all of it on this machine's %d cores: cluster / single is the cost of the distributed setup (replication, more processes), not its capacity",
			r.report.Machine.Cores),
	}
	for _, run := range runs {
		if run.DuplicateOuts > 0 {
			t.Notes = append(t.Notes, fmt.Sprintf("%s: %d final outcomes published twice", run.Setup, run.DuplicateOuts))
		}
	}
	if err := t.Render(r.out); err != nil {
		return err
	}

	p := Table{Title: "CPU ms/order by process", Columns: []string{"setup", "process", "role", "CPU ms/order"}}
	for _, run := range runs {
		for _, name := range slices.SortedFunc(maps.Keys(run.CPUPerOrderByProcessMS), processOrder) {
			p.Add(run.Name, name, cmp.Or(run.Roles[name], "-"), num(run.CPUPerOrderByProcessMS[name]))
		}
	}
	if err := p.Render(r.out); err != nil {
		return err
	}

	j := Table{Title: "Projection on paper: every worker, NATS node and Redis node on cores of its own",
		Columns: []string{"setup", "part", "processes", "CPU ms/order", "orders/s per core", "busiest process", "its CPU ms/order", "orders/s, a core each"}}
	for _, run := range runs {
		for _, part := range run.Projection {
			j.Add(run.Name, part.Part, part.Processes, num(part.CPUPerOrderMS), num(part.PerCore), part.Busiest, num(part.BusiestMS), num(part.OneCoreEach))
		}
		j.Add(run.Name, "deployment", run.Cores, "", num(Ratio(run.Projected, float64(run.Cores))), "bound: "+run.Bottleneck, "", num(run.Projected))
	}
	j.Notes = []string{
		"orders/s per core = 1,000 / the part's CPU ms/order; a core each = 1,000 / its busiest process's CPU ms/order",
		"deployment: one core per process; its bound is its lowest part, its orders/s per core that bound over its cores",
		"on paper: the CPU per order measured here, at this machine's rate, and nothing else limiting (network round",
		"trips, disks, the provider); the sandbox (the provider) and the bench (the mall's publisher) are left out",
	}
	return j.Render(r.out)
}

// processOrder orders processes by part (workers, NATS, Redis, sandbox, bench), then by name.
func processOrder(a, b string) int {
	rank := func(name string) int {
		part, _, _ := strings.Cut(name, "/")
		if i := slices.Index([]string{"worker", "nats", "redis", "sandbox", "bench"}, part); i >= 0 {
			return i
		}
		return 9
	}
	return cmp.Or(rank(a)-rank(b), strings.Compare(a, b))
}
