package reliability

import (
	"context"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/tools/stack"
)

// maxPayload is the NATS servers' max_payload: 2 MiB, so that the corpus's 1 MiB body is
// accepted (the server default, 1 MiB, refuses it before the worker sees it) and one body can be
// made just under the limit.
const maxPayload = 2 << 20

// shop IDs of the suite: shopA adds the common fee and mails invoices, shopB keeps fees and
// encloses invoices by default. ghostShop is in no shops file.
const (
	shopA     = "rel-a"
	shopB     = "rel-b"
	ghostShop = "rel-ghost"
)

// linkID is the link ID of both of the sandbox's merchants.
const linkID = "original00"

// startStack starts the scenario's servers: NATS (one node, or a three-node cluster), a private
// redis-server or Redis Cluster if the scenario breaks Redis, and the sandbox with two merchants
// (one per shop) whose passwords are fresh for the run, and short review and hold delays.
func (x *run) startStack(ctx context.Context) error {
	sc := x.sc
	x.secrets = []string{"relPw-" + randomHex(8), "relPw-" + randomHex(8)}
	lifetime := time.Duration(0)
	if sc.reauth {
		lifetime = authorizationLifetime
	}
	s, err := x.r.host.Start(ctx, sc.name, stack.Options{Nodes: sc.nodes, MaxPayload: maxPayload, MaxFileStore: sc.maxFileStore,
		PrivateRedis: sc.privateRedis, RedisSentinel: sc.sentinel, RedisCluster: sc.cluster,
		// The workers run with -shutdown-grace 10s (workerOptions).
		StopGrace: 15 * time.Second,
		Sandbox: stack.SandboxOptions{
			Shops: []sandbox.Shop{
				{ShopCode: codeA, LinkID: linkID, LinkPassword: x.secrets[0]},
				{ShopCode: codeB, LinkID: linkID, LinkPassword: x.secrets[1]},
			},
			ReviewDelay: 2 * time.Second, SlowDelay: 1500 * time.Millisecond, Seed: x.r.opts.Seed | 1,
			AuthorizationLifetime: lifetime,
		}})
	if err != nil {
		return err
	}
	x.s = s
	return nil
}

// writeShops writes the worker's shops file; shop rel-a goes through baseURLA when a scenario set
// one. The shops re-authorize after reauthorizeAfter in a scenario that says so, else after the
// worker's default, 88 days (never within a run).
func (x *run) writeShops() (string, error) {
	reauth := ""
	if x.sc.reauth {
		reauth = reauthorizeAfter.String()
	}
	return x.s.WriteShops(
		stack.Shop{ID: shopA, BaseURL: x.baseURLA, ShopCode: codeA, LinkID: linkID, PasswordEnv: "REL_PASSWORD_A",
			InvoiceDelivery: "separate", FeeMode: "add", Fee: 205, ReauthorizeAfter: reauth},
		stack.Shop{ID: shopB, ShopCode: codeB, LinkID: linkID, PasswordEnv: "REL_PASSWORD_B",
			InvoiceDelivery: "enclosed", FeeMode: "keep", Fee: 330, ReauthorizeAfter: reauth})
}

// workerOptions are the worker's settings: times short enough for a quick run to see re-checks
// (held in Redis and handed to JetStream, as in production with longer delays), redeliveries,
// provider timeouts, shutdowns and parked events, then the scenario's own flags and environment,
// and the merchants' passwords as they are now.
func (x *run) workerOptions() stack.WorkerOptions {
	x.mu.Lock()
	env := []string{"REL_PASSWORD_A=" + x.secrets[0], "REL_PASSWORD_B=" + x.secrets[1]}
	x.mu.Unlock()
	return stack.WorkerOptions{Shops: x.shops, LogLevel: "info", PollFirst: time.Second, PollMax: 2 * time.Second, Concurrency: 64,
		Flags: append([]string{"-ack-wait", "5s", "-provider-timeout", "2s", "-shutdown-grace", "10s", "-park-limit", "5s",
			"-poll-handoff-ahead", "500ms"}, x.sc.workerFlags...),
		Env: append(env, x.sc.workerEnv...)}
}

// restartWorker starts w again, stopped or killed before, with the current settings, and waits
// until it is ready.
func (x *run) restartWorker(ctx context.Context, w *stack.Worker) error {
	return x.s.RestartWorker(ctx, w, x.workerOptions())
}

// killWorker SIGKILLs w and starts it again.
func (x *run) killWorker(ctx context.Context, w *stack.Worker) error {
	w.Kill()
	return x.restartWorker(ctx, w)
}
