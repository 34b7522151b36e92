package worker

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// TestRedisFailoverUnderLoad: a worker on a redis-sentinel:// or a redis-cluster:// URL, its
// registration intents waiting for the replica, loses the Redis master of its shop's keys while
// orders arrive. The replica is promoted (by the sentinels, or by the cluster's other masters);
// registrations wait (no replica holds their intents) until the old master is back as a replica of
// the new one, then go on. Every order ends with one credit outcome or, where the answer of a
// registration that reached ATODENE was lost with the master, an outcome-unknown dead letter; none
// is registered twice, and no outcome is published twice.
func TestRedisFailoverUnderLoad(t *testing.T) {
	t.Parallel()
	for _, topology := range []struct {
		name  string
		start func(t *testing.T) failover
	}{{"sentinel", sentinelFailover}, {"cluster", clusterFailover}} {
		t.Run(topology.name, func(t *testing.T) { failoverUnderLoad(t, topology.start(t)) })
	}
}

// failover is a Redis topology whose master of shop-a's keys the test kills.
type failover struct {
	url     string
	kill    func() // kills the master of shop-a's keys
	promote func() // waits until its replica is promoted
	restore func() // starts the old master again and waits until it is a replica of the new one
}

func sentinelFailover(t *testing.T) failover {
	g := testenv.StartSentinelGroup(t)
	return failover{url: g.URL(), kill: g.Master.Stop,
		promote: func() { g.WaitPromoted(t) },
		restore: func() { g.RestartOldMaster(t) }}
}

func clusterFailover(t *testing.T) failover {
	c := testenv.StartCluster(t)
	master := c.MasterOf("{shop-a}")
	return failover{url: c.URL(), kill: func() { c.KillMaster(t, master) }, promote: func() {}, restore: func() { c.Restart(t, master) }}
}

func failoverUnderLoad(t *testing.T, f failover) {
	rdb, err := NewRedis(f.url, transport.RedisFiles{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	h := newHarnessWith(t, harnessOpts{redis: rdb, settings: func(s *config.Settings) {
		s.RedisWaitReplicas, s.RedisWaitTimeout = config.AutoReplicas, 300*time.Millisecond
		s.MaxDeliveries = 100 // the failover takes seconds: no order may run out of tries
	}})
	const orders = 60
	order := func(i int) string { return fmt.Sprintf("SF-%03d", i) }
	for i := range orders {
		if i == orders/3 {
			f.kill()
		}
		h.publish("order.created", "shop-a", "ev-"+order(i), orderData("shop-a", order(i), "taro@example.jp"))
		time.Sleep(20 * time.Millisecond)
	}
	f.promote()
	f.restore()

	unknown := map[string]bool{}
	wait.For(t, 60*time.Second, "every order answered", func() bool {
		for _, d := range h.deadLetters() {
			var ev struct {
				Data struct {
					OrderID string `json:"order_id"`
				} `json:"data"`
			}
			_ = json.Unmarshal(d.Data(), &ev)
			if reason := d.Headers().Get(dlq.HeaderReason); reason != "outcome-unknown" {
				t.Fatalf("%s dead-lettered %s: %s", ev.Data.OrderID, reason, d.Headers().Get(dlq.HeaderError))
			}
			unknown[ev.Data.OrderID] = true
		}
		credit := map[string]int{}
		for _, o := range h.results() {
			credit[o.Credit.OrderID]++
		}
		for i := range orders {
			if credit[order(i)] == 0 && !unknown[order(i)] {
				return false
			}
		}
		return true
	})
	ids := map[string]bool{}
	perOrder := map[string]int{}
	for _, o := range h.results() {
		if ids[o.MsgID] {
			t.Errorf("outcome %s published twice", o.MsgID)
		}
		ids[o.MsgID] = true
		perOrder[o.Credit.OrderID]++
	}
	for i := range orders {
		if n := perOrder[order(i)]; n > 1 {
			t.Errorf("%s: %d credit outcomes, want 1", order(i), n)
		}
		live := 0
		for _, tx := range h.sandboxTransactions(order(i)) {
			if tx.State == "active" && tx.Decision != "NG" {
				live++
			}
		}
		if live > 1 {
			t.Errorf("%s registered twice: %d live transactions", order(i), live)
		}
	}
	t.Logf("%d orders, %d outcome-unknown after the failover", orders, len(unknown))
}
