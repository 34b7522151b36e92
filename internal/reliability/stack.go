package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/childproc"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// maxPayload is the NATS servers' max_payload: 2 MiB, so that the corpus's 1 MiB body is
// accepted (the server default, 1 MiB, refuses it before the worker sees it) and one body can be
// made just under the limit.
const maxPayload = 2 << 20

// natsNode is one nats-server process: alone, or one node of a cluster.
type natsNode struct {
	name        string
	port        int
	clusterPort int
	dir         string
	conf        string
	p           *proc
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// stack is one scenario's servers: NATS (one node or a three-node cluster) with its own store,
// the sandbox, Redis (the shared one under a key prefix of the scenario's own, or a private
// redis-server), and the worker.
type stack struct {
	r        *runner
	name     string
	dir      string
	prefix   string
	nodes    []*natsNode
	nc       *nats.Conn
	js       jetstream.JetStream
	sandbox  *proc
	sbURL    string // http://host:port
	redisURL string
	redis    *privateRedis // nil: the shared Redis
	workers  []*workerProc
	wopts    workerOpts
	secrets  []string // the shops' link passwords, which no log may contain
	// maxFileStore, when set, limits the JetStream file store of every node (max_file_store).
	maxFileStore string
	// baseURLA, when set, is the ATODENE base URL of shop rel-a instead of the sandbox's.
	baseURLA string
	// cleanup stops what a scenario started beside the servers, once the worker has stopped.
	cleanup []func()

	rdbMu sync.Mutex
	rdb   *redis.Client // the suite's client of the worker's Redis (redisClient)
}

// workerProc is one worker and its restarts. The kill injector replaces its process while the
// crash monitor watches it, hence the mutex.
type workerProc struct {
	index    int
	httpAddr string
	log      string

	mu       sync.Mutex
	p        *proc
	starts   int
	killed   int  // SIGKILLs the suite sent
	stopping bool // the suite stops or kills it: its exit is no crash
}

// current returns the running process (nil before the first start) and whether the suite is
// stopping it.
func (w *workerProc) current() (*proc, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.p, w.stopping
}

// crashed reports whether the process exited without the suite stopping it, and if so marks it
// as handled, so that one crash is counted once.
func (w *workerProc) crashed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.p == nil || w.stopping || !w.p.Exited() {
		return false
	}
	w.stopping = true
	return true
}

// kills returns the SIGKILLs sent so far.
func (w *workerProc) kills() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.killed
}

// workerOpts are a scenario's worker flags beyond the common ones, and its environment.
type workerOpts struct {
	extra []string
	env   []string
}

// shop IDs of the suite: shopA adds the common fee and mails invoices, shopB keeps fees and
// encloses invoices by default. ghostShop is in no shops file.
const (
	shopA     = "rel-a"
	shopB     = "rel-b"
	ghostShop = "rel-ghost"
)

// newStack makes the scenario's directory; servers are started by the start* methods.
func (r *runner) newStack(name string) (*stack, error) {
	s := &stack{r: r, name: name, dir: filepath.Join(r.dir, name), prefix: r.prefix + name + ":"}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	s.redisURL = r.opts.RedisURL
	return s, nil
}

// startNATS starts n nats-server nodes (1, or 3 for a cluster with JetStream on every node) and
// connects the suite's client to all of them.
func (s *stack) startNATS(ctx context.Context, n int) error {
	ports, err := childproc.FreePorts(2 * n)
	if err != nil {
		return err
	}
	for i := range n {
		node := &natsNode{name: fmt.Sprintf("n%d", i+1), port: ports[2*i], clusterPort: ports[2*i+1],
			dir: filepath.Join(s.dir, fmt.Sprintf("nats-n%d", i+1))}
		node.conf = filepath.Join(s.dir, fmt.Sprintf("nats-n%d.conf", i+1))
		s.nodes = append(s.nodes, node)
	}
	for _, node := range s.nodes {
		var b strings.Builder
		fmt.Fprintf(&b, "server_name: %s\nlisten: 127.0.0.1:%d\nmax_payload: %d\n", node.name, node.port, maxPayload)
		fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n", node.dir)
		if s.maxFileStore != "" {
			fmt.Fprintf(&b, "  max_file_store: %s\n", s.maxFileStore)
		}
		b.WriteString("}\n")
		if n > 1 {
			var routes []string
			for _, other := range s.nodes {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", other.clusterPort))
			}
			fmt.Fprintf(&b, "cluster {\n  name: reliability\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n",
				node.clusterPort, strings.Join(routes, ", "))
		}
		if err := os.WriteFile(node.conf, []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	for _, node := range s.nodes {
		if err := s.startNode(node); err != nil {
			return err
		}
	}
	opts := []nats.Option{nats.Name("atodene-reliability"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		nc, err := nats.Connect(s.natsURLs(), opts...)
		if err == nil {
			s.nc = nc
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("NATS did not accept connections: %v", err)
		}
		if err := childproc.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	s.js, err = jetstream.New(s.nc)
	if err != nil {
		return err
	}
	// A cluster is usable once JetStream has a meta leader.
	deadline = time.Now().Add(30 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.js.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("JetStream not available: %v", err)
		}
		if err := childproc.Sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// startNode (re)starts one NATS node with its configuration and storage, and waits until it
// accepts connections.
func (s *stack) startNode(node *natsNode) error {
	p, err := s.r.procs.Start("nats-"+node.name, s.r.bins.nats, filepath.Join(s.dir, "nats-"+node.name+".log"), nil, "-c", node.conf)
	if err != nil {
		return err
	}
	node.p = p
	deadline := time.Now().Add(15 * time.Second)
	for {
		nc, err := nats.Connect(node.url(), nats.NoReconnect())
		if err == nil {
			nc.Close()
			return nil
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("NATS node %s did not start: %v%s", node.name, err, childproc.LogTail(p.Log(), 5))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *stack) natsURLs() string {
	urls := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		urls[i] = n.url()
	}
	return strings.Join(urls, ",")
}

// startSandbox starts the ATODENE sandbox with two merchants (one per shop) whose passwords are
// fresh for the run, and short review and hold delays.
func (s *stack) startSandbox(ctx context.Context) error {
	port, err := childproc.FreePort()
	if err != nil {
		return err
	}
	s.secrets = []string{"relPw-" + randomHex(8), "relPw-" + randomHex(8)}
	shopsFile := filepath.Join(s.dir, "sandbox-shops.txt")
	lines := fmt.Sprintf("%s:original00:%s\n%s:original00:%s\n", codeA, s.secrets[0], codeB, s.secrets[1])
	if err := os.WriteFile(shopsFile, []byte(lines), 0o600); err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s.sandbox, err = s.r.procs.Start("atodene-sandbox", s.r.bins.sandbox, filepath.Join(s.dir, "sandbox.log"), nil,
		"-addr", addr, "-shops-file", shopsFile, "-review-delay", "2s", "-hold-delay", "2s", "-slow-delay", "1500ms",
		"-seed", strconv.FormatUint(s.r.opts.Seed|1, 10))
	if err != nil {
		return err
	}
	s.sbURL = "http://" + addr
	return childproc.WaitHTTP(ctx, s.sbURL+"/sandbox/stats", 15*time.Second, s.sandbox)
}

// setFaults sets the sandbox's fault injection.
func (s *stack) setFaults(ctx context.Context, f sandbox.Faults) error {
	return sandbox.PutFaults(ctx, s.sbURL, f)
}

// sandboxJSON GETs an admin endpoint into v.
func (s *stack) sandboxJSON(ctx context.Context, path string, v any) error {
	body, err := childproc.Get(ctx, s.sbURL+path)
	if err != nil {
		return err
	}
	defer body.Close()
	return json.NewDecoder(body).Decode(v)
}

// writeShops writes the worker's shops file.
func (s *stack) writeShops() (string, error) {
	baseA := s.sbURL
	if s.baseURLA != "" {
		baseA = s.baseURLA
	}
	yaml := fmt.Sprintf(`shops:
  - id: %s
    atodene:
      base_url: %s/api/
      shop_code: %s
      link_id: original00
      link_password: ${REL_PASSWORD_A}
      invoice_delivery: separate
    fees:
      mode: add
      table:
        - {min: 1, max: 999999, fee: 205}
  - id: %s
    atodene:
      base_url: %s/api/
      shop_code: %s
      link_id: original00
      link_password: ${REL_PASSWORD_B}
      invoice_delivery: enclosed
    fees:
      mode: keep
      table:
        - {min: 1, max: 999999, fee: 330}
`, shopA, baseA, codeA, shopB, s.sbURL, codeB)
	path := filepath.Join(s.dir, "shops.yaml")
	return path, os.WriteFile(path, []byte(yaml), 0o600)
}

// startWorker starts a new worker process (index len(workers)) and waits until it is ready.
func (s *stack) startWorker(ctx context.Context) (*workerProc, error) {
	port, err := childproc.FreePort()
	if err != nil {
		return nil, err
	}
	w := &workerProc{index: len(s.workers), httpAddr: fmt.Sprintf("127.0.0.1:%d", port)}
	w.log = filepath.Join(s.dir, fmt.Sprintf("worker-%d.log", w.index+1))
	s.workers = append(s.workers, w)
	return w, s.restartWorker(ctx, w)
}

// restartWorker starts w's process again with the same settings and waits until it is ready.
func (s *stack) restartWorker(ctx context.Context, w *workerProc) error {
	shops, err := s.writeShops()
	if err != nil {
		return err
	}
	args := []string{"-config", shops, "-nats-url", s.natsURLs(), "-redis-url", s.redisURL,
		"-redis-prefix", s.prefix, "-http-addr", w.httpAddr, "-log-level", "info",
		"-poll-first-delay", "1s", "-poll-max-interval", "2s", "-ack-wait", "5s", "-provider-timeout", "2s",
		"-shutdown-grace", "10s", "-concurrency", "64", "-park-limit", "5s"}
	args = append(args, s.wopts.extra...)
	env := append([]string{"REL_PASSWORD_A=" + s.secrets[0], "REL_PASSWORD_B=" + s.secrets[1]}, s.wopts.env...)
	p, err := s.r.procs.Start(fmt.Sprintf("worker-%d", w.index+1), s.r.bins.worker, w.log, env, args...)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.p, w.stopping = p, false
	w.starts++
	w.mu.Unlock()
	return childproc.WaitHTTP(ctx, "http://"+w.httpAddr+"/readyz", 30*time.Second, p)
}

// redisClient returns the suite's client of the worker's Redis, made on first use (once the
// scenario's Redis is chosen) and closed with the stack. It reconnects by itself after a restart
// of a private Redis.
func (s *stack) redisClient() (*redis.Client, error) {
	s.rdbMu.Lock()
	defer s.rdbMu.Unlock()
	if s.rdb == nil {
		ropts, err := redis.ParseURL(s.redisURL)
		if err != nil {
			return nil, err
		}
		s.rdb = redis.NewClient(ropts)
	}
	return s.rdb, nil
}

// killWorker SIGKILLs w and starts it again.
func (s *stack) killWorker(ctx context.Context, w *workerProc) error {
	w.mu.Lock()
	w.stopping = true
	w.killed++
	p := w.p
	w.mu.Unlock()
	p.Kill()
	return s.restartWorker(ctx, w)
}

// stopWorker sends w SIGTERM and waits up to limit for it to exit, then kills it. It returns how
// long the worker took and how it ended (nil: it exited 0 within limit). Start it again with
// restartWorker.
func (s *stack) stopWorker(w *workerProc, limit time.Duration) (time.Duration, error) {
	w.mu.Lock()
	w.stopping = true
	p := w.p
	w.mu.Unlock()
	start := time.Now()
	err := p.Stop(limit)
	return time.Since(start), err
}

// ready reports whether every worker is running and answers /readyz with 200.
func (s *stack) ready() (bool, string) {
	client := &http.Client{Timeout: 3 * time.Second}
	for _, w := range s.workers {
		if p, _ := w.current(); p == nil || p.Exited() {
			return false, fmt.Sprintf("worker-%d is not running", w.index+1)
		}
		resp, err := client.Get("http://" + w.httpAddr + "/readyz")
		if err != nil {
			return false, fmt.Sprintf("worker-%d: %v", w.index+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Sprintf("worker-%d: /readyz %d %s", w.index+1, resp.StatusCode, strings.TrimSpace(string(body)))
		}
	}
	return true, ""
}

// close stops everything of the stack and deletes its keys from the shared Redis.
func (s *stack) close() {
	for _, w := range s.workers {
		w.mu.Lock()
		p := w.p
		w.stopping = true
		w.mu.Unlock()
		if p != nil {
			_ = p.Stop(15 * time.Second)
		}
	}
	for _, f := range s.cleanup {
		f()
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.rdb != nil {
		_ = s.rdb.Close()
	}
	if s.sandbox != nil {
		_ = s.sandbox.Stop(10 * time.Second)
	}
	for _, n := range s.nodes {
		if n.p != nil {
			_ = n.p.Stop(10 * time.Second)
		}
	}
	if s.redis != nil {
		s.redis.stop()
	} else {
		s.r.deleteKeys(s.prefix)
	}
}

// privateRedis is a redis-server of the scenario's own, with append-only persistence so that a
// restart keeps the data.
type privateRedis struct {
	r    *runner
	addr string
	dir  string
	p    *proc
}

func (s *stack) startPrivateRedis(ctx context.Context) error {
	port, err := childproc.FreePort()
	if err != nil {
		return err
	}
	pr := &privateRedis{r: s.r, addr: fmt.Sprintf("127.0.0.1:%d", port), dir: filepath.Join(s.dir, "redis")}
	if err := os.MkdirAll(pr.dir, 0o755); err != nil {
		return err
	}
	s.redis, s.redisURL = pr, "redis://"+pr.addr
	return pr.start(ctx)
}

func (pr *privateRedis) start(ctx context.Context) error { return pr.startWith(ctx, "yes") }

// startWith starts the server with appendonly yes (it loads its append-only file) or no (it loads
// its snapshot, dump.rdb).
func (pr *privateRedis) startWith(ctx context.Context, appendonly string) error {
	_, port, _ := strings.Cut(pr.addr, ":")
	p, err := pr.r.procs.Start("redis-server", "redis-server", filepath.Join(pr.dir, "..", "redis.log"), nil,
		"--bind", "127.0.0.1", "--port", port, "--dir", pr.dir, "--appendonly", appendonly, "--save", "")
	if err != nil {
		return err
	}
	pr.p = p
	rdb := pr.client()
	defer rdb.Close()
	deadline := time.Now().Add(15 * time.Second)
	for rdb.Ping(ctx).Err() != nil {
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer%s", pr.addr, childproc.LogTail(p.Log(), 5))
		}
		if err := childproc.Sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func (pr *privateRedis) client() *redis.Client { return redis.NewClient(&redis.Options{Addr: pr.addr}) }

// snapshot writes the data set as it is now (SAVE) and keeps a copy of the file: what a replica
// or a backup behind the primary holds.
func (pr *privateRedis) snapshot(ctx context.Context) (string, error) {
	rdb := pr.client()
	defer rdb.Close()
	if err := rdb.Save(ctx).Err(); err != nil {
		return "", fmt.Errorf("redis SAVE: %w", err)
	}
	raw, err := os.ReadFile(filepath.Join(pr.dir, "dump.rdb"))
	if err != nil {
		return "", err
	}
	snap := filepath.Join(pr.dir, "..", "redis-snapshot.rdb")
	return snap, os.WriteFile(snap, raw, 0o600)
}

// restore starts the (stopped) server again from a snapshot alone: the append-only file, which
// holds every later write, is removed first. The server loads the snapshot, then turns
// append-only persistence on again.
func (pr *privateRedis) restore(ctx context.Context, snap string) error {
	raw, err := os.ReadFile(snap)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(pr.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(pr.dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pr.dir, "dump.rdb"), raw, 0o600); err != nil {
		return err
	}
	if err := pr.startWith(ctx, "no"); err != nil {
		return err
	}
	rdb := pr.client()
	defer rdb.Close()
	return rdb.ConfigSet(ctx, "appendonly", "yes").Err()
}

// flush deletes every key (FLUSHALL): the whole state lost.
func (pr *privateRedis) flush(ctx context.Context) error {
	if strings.HasSuffix(pr.addr, ":6379") {
		return fmt.Errorf("refusing to flush %s: the machine's shared Redis", pr.addr)
	}
	rdb := pr.client()
	defer rdb.Close()
	return rdb.FlushAll(ctx).Err()
}

// usedMemory is the server's used_memory (INFO memory), in bytes.
func (pr *privateRedis) usedMemory(ctx context.Context) (int64, error) {
	rdb := pr.client()
	defer rdb.Close()
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("redis INFO memory has no used_memory")
}

// kill stops the server as an outage does (SIGKILL). The append-only file keeps every write
// the server acknowledged: the data is in the OS's page cache, which a killed process leaves.
func (pr *privateRedis) kill() { pr.p.Kill() }

func (pr *privateRedis) stop() {
	if pr.p != nil {
		_ = pr.p.Stop(10 * time.Second)
	}
}
