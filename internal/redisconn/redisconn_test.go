package redisconn

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
	"github.com/atodene-worker/atodene-worker/internal/transport"
)

// TestSentinelFollowsAFailover: a client of a redis-sentinel:// URL writes to the master the
// sentinels name, and after the master is killed and a sentinel promotes the replica, to the new
// master, where the write acknowledged by the replica (WAIT) before the kill is.
func TestSentinelFollowsAFailover(t *testing.T) {
	t.Parallel()
	g := testenv.StartSentinelGroup(t)
	rdb, err := Open("-redis-url", g.URL(), transport.RedisFiles{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()
	pipe := rdb.Pipeline()
	pipe.Set(ctx, "failover-test", "before", 0)
	acked := pipe.Do(ctx, "WAIT", 1, 5000)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("SET then WAIT 1: %v", err)
	}
	if n, _ := acked.Int(); n != 1 {
		t.Fatalf("SET then WAIT 1: %d replicas acknowledged", n)
	}
	g.Master.Stop()
	if !wait.Until(30*time.Second, func() bool {
		addr, err := g.MasterAddr(ctx)
		return err == nil && addr == g.Replica.Addr
	}) {
		t.Fatal("the sentinels did not promote the replica in 30s")
	}
	var got string
	if !wait.Until(20*time.Second, func() bool {
		got, err = rdb.Get(ctx, "failover-test").Result()
		return err == nil && rdb.Set(ctx, "failover-test-after", "x", 0).Err() == nil
	}) {
		t.Fatalf("the client did not follow the failover in 20s: %v", err)
	}
	if got != "before" {
		t.Errorf("after the failover the key holds %q, want the write acknowledged before it", got)
	}
}

// TestOpenRefuses: what Open refuses, with the setting named and no credential quoted.
func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"redis-sentinel://:S3CRET@127.0.0.1:26379/0", "needs master_name"},
		{"redis-sentinel://127.0.0.1:26379/0?master_name=m&pasword=S3CRET", "-redis-url"},
		{"redis://:S3CRET@host:bad", "not a valid URL"},
		{"http://127.0.0.1:6379", "-redis-url"},
		{"redis-sentinel://s1:26379/0?master_name=m&addr=admin:S3CRET@s2:26379", "unable to parse addr param"},
		{"redis-sentinel://s1:26379/S3CRET?master_name=m", "invalid database number"},
		{"redis-sentinel://s1:26379/0?master_name=m&pool_size=S3CRET", "pool_size"},
		{"redis://r:6379/0?pool_size=S3CRET", "pool_size"},
		{"redis-sentinel://s1:26379/0?master_name=m&route_randomly=true&password=S3CRET", "not supported"},
		{"redis-sentinel://s1:26379/0?master_name=m&route_by_latency=true", "not supported"},
		{"redis-sentinel://s1:26379/0?master_name=m&replica_only=true", "not supported"},
		// Cluster: a password in the user information, in an addr, or where no password goes.
		{"redis-cluster://:S3CRET@n1:7000/S3CRET", "no database number"},
		{"redis-cluster://:S3CRET@n1:7000/1", "no database number"},
		{"redis-cluster://admin:S3CRET@n1:7000?addr=admin:S3CRET@n2:7000", "unable to parse addr param"},
		{"redis-cluster://n1:7000?addr=S3CRET", "unable to parse addr param"},
		{"rediss-cluster://n1:7000?addr=n2:7000&pool_size=S3CRET", "pool_size"},
		{"redis-cluster://n1:7000?read_only=S3CRET", "read_only"},
		{"redis-cluster://n1:7000?pasword=S3CRET", "-redis-url"},
		{"redis-cluster://:S3CRET@n1:bad", "not a valid URL"},
		{"redis-cluster://:S3CRET@n1:7000?read_only=true", "not supported"},
		{"redis-cluster://n1:7000?addr=n2:7000&route_by_latency=true&client_name=S3CRET", "not supported"},
		{"rediss-cluster://n1:7000?route_randomly=1", "not supported"},
		// A password holding an unencoded '/', '?' or '#' after digits: the digits parse as the port.
		{"redis://default:2024/S3CRET@redis:6379/0", "percent-encoded"},
		{"redis://:2024?S3CRET@redis:6379", "percent-encoded"},
		{"redis-sentinel://:2024#S3CRET@s1:26379/0?master_name=m", "percent-encoded"},
	} {
		rdb, err := Open("-redis-url", tc.url, transport.RedisFiles{})
		if err == nil {
			rdb.Close()
			t.Errorf("%s: no error, want %q", tc.url, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "S3CRET") {
			t.Errorf("%s: %v, want %q and no credential", tc.url, err, tc.want)
		}
	}
}

// TestOpenSentinelTLSFiles: the TLS files apply to a rediss-sentinel:// URL and are refused for
// redis-sentinel://, as for one server.
func TestOpenSentinelTLSFiles(t *testing.T) {
	t.Parallel()
	pki := testenv.NewPKI(t)
	files := transport.RedisFiles{CA: pki.CAFile}
	u, err := Open("-redis-url", "rediss-sentinel://127.0.0.1:26379/0?master_name=m", files)
	if err != nil {
		t.Fatalf("rediss-sentinel:// with a CA: %v", err)
	}
	rdb := u.(*redis.Client)
	if rdb.Options().TLSConfig == nil || rdb.Options().TLSConfig.RootCAs == nil {
		t.Error("rediss-sentinel:// with a CA: no TLS configuration with the CA")
	}
	if o := rdb.Options(); o.Protocol != 2 || !o.ContextTimeoutEnabled {
		t.Errorf("a Sentinel client: protocol %d, context deadlines %v; want RESP2 and the deadlines honoured", o.Protocol, o.ContextTimeoutEnabled)
	}
	rdb.Close()
	if _, err := Open("-redis-url", "redis-sentinel://127.0.0.1:26379/0?master_name=m", files); err == nil || !strings.Contains(err.Error(), "need a rediss://") {
		t.Errorf("redis-sentinel:// with a CA: %v, want the files refused", err)
	}
}

// TestSentinelWithAnACLUser: with the default user off on the master and an ACL user for the
// worker, a redis-sentinel:// URL whose username and password parameters name that user writes
// to the master; without them it is refused, and its error does not quote the password.
func TestSentinelWithAnACLUser(t *testing.T) {
	t.Parallel()
	g := testenv.StartSentinelGroupWith(t, testenv.Access{User: "worker", Password: "w0rker-pw"})
	ctx := context.Background()
	rdb, err := Open("-redis-url", g.URL()+"&username=worker&password=w0rker-pw", transport.RedisFiles{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := rdb.Set(ctx, "acl-test", "x", 0).Err(); err != nil {
		t.Fatalf("SET as the ACL user: %v", err)
	}
	anon, err := Open("-redis-url", g.URL(), transport.RedisFiles{})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	err = anon.Set(ctx, "acl-test", "y", 0).Err()
	if err == nil || strings.Contains(err.Error(), "w0rker-pw") {
		t.Errorf("SET without the user: %v, want a refusal that does not quote the password", err)
	}
}

// TestSentinelOverTLS: a rediss-sentinel:// URL with the CA and a client certificate reaches
// sentinels and servers that speak TLS only and verify client certificates, as an ACL user, and
// follows a failover there; without the client certificate, or without the CA, it is refused.
func TestSentinelOverTLS(t *testing.T) {
	t.Parallel()
	pki := testenv.NewPKI(t)
	g := testenv.StartSentinelGroupWith(t, testenv.Access{User: "worker", Password: "w0rker-pw", PKI: pki})
	ctx := t.Context()
	u := g.URL() + "&username=worker&password=w0rker-pw"
	if !strings.HasPrefix(u, "rediss-sentinel://") {
		t.Fatalf("the group's URL %q, want rediss-sentinel://", u)
	}
	rdb, err := Open("-redis-url", u, transport.RedisFiles{CA: pki.CAFile, Cert: pki.ClientCertFile, Key: pki.ClientKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := rdb.Set(ctx, "tls-test", "before", 0).Err(); err != nil {
		t.Fatalf("SET over TLS as the ACL user: %v", err)
	}
	refused(t, "without a client certificate", u, transport.RedisFiles{CA: pki.CAFile})
	refused(t, "without the CA", u, transport.RedisFiles{Cert: pki.ClientCertFile, Key: pki.ClientKeyFile})

	if n, err := rdb.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d replicas, %v", n, err)
	}
	g.Master.Stop()
	g.WaitPromoted(t)
	var got string
	if !wait.Until(20*time.Second, func() bool {
		got, err = rdb.Get(ctx, "tls-test").Result()
		return err == nil && rdb.Set(ctx, "tls-test-after", "x", 0).Err() == nil
	}) {
		t.Fatalf("the client did not follow the failover over TLS in 20s: %v", err)
	}
	if got != "before" {
		t.Errorf("after the failover the key holds %q, want the write acknowledged before it", got)
	}
}

// refused checks that a client of rawURL with files cannot write, and that its error quotes no
// password.
func refused(t *testing.T, what, rawURL string, files transport.RedisFiles) {
	t.Helper()
	rdb, err := Open("-redis-url", rawURL, files)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err = rdb.Set(ctx, "refused-test", "x", 0).Err()
	if err == nil || strings.Contains(err.Error(), "w0rker-pw") {
		t.Errorf("SET %s: %v, want a refusal that does not quote the password", what, err)
	}
}

// TestClusterOverTLSWithAnACLUser: a rediss-cluster:// URL with the CA, a client certificate and an
// ACL user reaches a Cluster whose nodes speak TLS only (clients, replication and cluster bus) and
// have no default user: it runs a script on the keys of one hash tag on each master and has a
// write acknowledged by the replica of its slot's master (WAIT there, as registration intents
// are); without the user, the client certificate or the CA it is refused.
func TestClusterOverTLSWithAnACLUser(t *testing.T) {
	t.Parallel()
	pki := testenv.NewPKI(t)
	c := testenv.StartClusterWith(t, testenv.Access{User: "worker", Password: "w0rker-pw", PKI: pki})
	u := c.URL()
	if !strings.HasPrefix(u, "rediss-cluster://worker:w0rker-pw@") {
		t.Fatalf("the cluster's URL %q, want rediss-cluster:// with the user", u)
	}
	files := transport.RedisFiles{CA: pki.CAFile, Cert: pki.ClientCertFile, Key: pki.ClientKeyFile}
	rdb, err := Open("-redis-url", u, files)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := t.Context()
	script := redis.NewScript(`redis.call("SET", KEYS[1], ARGV[1]); return redis.call("INCR", KEYS[2])`)
	masters := map[string]bool{}
	for i := 0; len(masters) < 3 && i < 1000; i++ {
		tag := fmt.Sprintf("{shop-%d}", i)
		if m := c.MasterOf(tag); !masters[m] {
			masters[m] = true
			if err := script.Run(ctx, rdb, []string{tag + ":order:1", tag + ":version"}, "x").Err(); err != nil {
				t.Errorf("a script on %s's keys (master %s): %v", tag, m, err)
			}
		}
	}
	if len(masters) != 3 {
		t.Fatalf("the scripts reached %d masters, want 3", len(masters))
	}
	node, err := rdb.(*redis.ClusterClient).MasterForKey(ctx, "{shop-0}:order:1")
	if err != nil {
		t.Fatal(err)
	}
	pipe := node.Pipeline()
	pipe.Set(ctx, "{shop-0}:order:1", "y", 0)
	acked := pipe.Do(ctx, "WAIT", 1, 5000)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("SET then WAIT 1 on the master of the slot: %v", err)
	}
	if n, _ := acked.Int(); n != 1 {
		t.Errorf("SET then WAIT 1 on the master of the slot: %d replicas acknowledged, want 1 (replication over TLS)", n)
	}
	refused(t, "without the user", strings.Replace(u, "worker:w0rker-pw@", "", 1), files)
	refused(t, "without a client certificate", u, transport.RedisFiles{CA: pki.CAFile})
	refused(t, "without the CA", u, transport.RedisFiles{Cert: pki.ClientCertFile, Key: pki.ClientKeyFile})
}

// TestOpenCluster: a redis-cluster:// URL makes a cluster client of the host and every addr, with
// the user information for every node, RESP2, the contexts' deadlines and the slots asked for
// again every second; a rediss-cluster:// URL takes the TLS files, which redis-cluster:// refuses.
func TestOpenCluster(t *testing.T) {
	t.Parallel()
	rdb, err := Open("-redis-url", "redis-cluster://worker:pw@n1:7000/0?addr=n2:7000&addr=n3:7000&pool_size=5", transport.RedisFiles{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("Open returned a %T, want a *redis.ClusterClient", rdb)
	}
	o := cc.Options()
	if want := []string{"n1:7000", "n2:7000", "n3:7000"}; !slices.Equal(o.Addrs, want) {
		t.Errorf("addresses %v, want %v", o.Addrs, want)
	}
	if o.Username != "worker" || o.Password != "pw" || o.PoolSize != 5 || o.TLSConfig != nil {
		t.Errorf("user %q, password given %v, pool %d, TLS %v; want worker, true, 5, none", o.Username, o.Password == "pw", o.PoolSize, o.TLSConfig != nil)
	}
	if o.Protocol != 2 || !o.ContextTimeoutEnabled || o.ClusterStateReloadInterval != time.Second || o.ReadOnly {
		t.Errorf("protocol %d, context deadlines %v, slots reloaded every %s, read-only %v; want RESP2, the deadlines honoured, 1s, masters only",
			o.Protocol, o.ContextTimeoutEnabled, o.ClusterStateReloadInterval, o.ReadOnly)
	}
	if got := Addr(rdb); got != "n1:7000,n2:7000,n3:7000" {
		t.Errorf("Addr = %q, want the three addresses", got)
	}

	pki := testenv.NewPKI(t)
	files := transport.RedisFiles{CA: pki.CAFile}
	tlsc, err := Open("-redis-url", "rediss-cluster://n1:7000?addr=n2:7000", files)
	if err != nil {
		t.Fatalf("rediss-cluster:// with a CA: %v", err)
	}
	defer tlsc.Close()
	if c := tlsc.(*redis.ClusterClient).Options().TLSConfig; c == nil || c.RootCAs == nil || c.ServerName != "n1" {
		t.Error("rediss-cluster:// with a CA: no TLS configuration with the CA and the host's name")
	}
	if _, err := Open("-redis-url", "redis-cluster://n1:7000", files); err == nil || !strings.Contains(err.Error(), "need a rediss://") {
		t.Errorf("redis-cluster:// with a CA: %v, want the files refused", err)
	}
}

// TestClusterFollowsAFailover: a client of a redis-cluster:// URL naming the masters writes to the
// master of each key's slot, runs a script on keys of one hash tag (and is refused one on keys of
// two slots), and after the master of a key is killed and its replica promoted, reads the write
// acknowledged by the replica before the kill and writes again, on the new master.
func TestClusterFollowsAFailover(t *testing.T) {
	t.Parallel()
	c := testenv.StartCluster(t)
	rdb, err := Open("-redis-url", c.URL(), transport.RedisFiles{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := t.Context()
	script := redis.NewScript(`redis.call("SET", KEYS[1], ARGV[1]); return redis.call("INCR", KEYS[2])`)
	if err := script.Run(ctx, rdb, []string{"{shop-a}:order:1", "{shop-a}:version"}, "x").Err(); err != nil {
		t.Errorf("a script on keys of one hash tag: %v", err)
	}
	if err := script.Run(ctx, rdb, []string{"shop-a:order:1", "shop-b:version"}, "x").Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Errorf("a script on keys of two slots: %v, want CROSSSLOT", err)
	}
	masters := c.Masters()
	var key string
	for i := 0; key == "" && i < 1000; i++ {
		if k := fmt.Sprintf("{shop-%d}:order", i); c.MasterOf(k) == masters[1] {
			key = k
		}
	}
	node, err := rdb.(*redis.ClusterClient).MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	pipe := node.Pipeline()
	pipe.Set(ctx, key, "before", 0)
	acked := pipe.Do(ctx, "WAIT", 1, 5000)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("SET then WAIT 1: %v", err)
	}
	if n, _ := acked.Int(); n != 1 {
		t.Fatalf("SET then WAIT 1: %d replicas acknowledged", n)
	}
	c.KillMaster(t, masters[1])
	var got string
	if !wait.Until(10*time.Second, func() bool {
		got, err = rdb.Get(ctx, key).Result()
		return err == nil && rdb.Set(ctx, key, "after", 0).Err() == nil
	}) {
		t.Fatalf("the client did not follow the failover in 10s: %v", err)
	}
	if got != "before" {
		t.Errorf("after the failover the key holds %q, want the write acknowledged before it", got)
	}
}
