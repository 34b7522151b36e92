package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// Node is one nats-server process: alone, or one node of a cluster. Its name, ports, store and
// configuration stay the same across restarts (RestartNode), as a real server's do.
type Node struct {
	Name        string // n1, n2, ...
	Port        int    // client port on 127.0.0.1
	ClusterPort int    // route port, used in a cluster
	// PprofAddr is the host:port of its pprof endpoint with Options.Pprof, else empty.
	PprofAddr string
	Dir       string // its JetStream store
	Conf      string // its configuration file

	proc *childproc.Proc
}

// URL is the node's client URL.
func (n *Node) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.Port) }

// Proc is the node's current process; a scenario may stop or kill it and then call RestartNode.
func (n *Node) Proc() *childproc.Proc { return n.proc }

// NATSURL lists the client URLs of every node, comma-separated, as -nats-url takes them.
func (s *Stack) NATSURL() string {
	urls := make([]string, len(s.Nodes))
	for i, n := range s.Nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// startNATS writes each node's configuration, starts the nodes, connects the tool's client to
// all of them and waits until JetStream answers (a cluster answers once it has a meta leader).
func (s *Stack) startNATS(ctx context.Context) error {
	n := s.opts.Nodes
	ports, err := childproc.FreePorts(3 * n)
	if err != nil {
		return err
	}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		s.Nodes = append(s.Nodes, &Node{Name: name, Port: ports[3*i], ClusterPort: ports[3*i+1],
			Dir: filepath.Join(s.Dir, "nats-"+name), Conf: filepath.Join(s.Dir, "nats-"+name+".conf")})
		if s.opts.Pprof {
			s.Nodes[i].PprofAddr = fmt.Sprintf("127.0.0.1:%d", ports[3*i+2])
		}
	}
	for _, node := range s.Nodes {
		if err := os.WriteFile(node.Conf, []byte(s.natsConf(node)), 0o600); err != nil {
			return err
		}
	}
	for _, node := range s.Nodes {
		if err := s.RestartNode(ctx, node); err != nil {
			return err
		}
	}
	// Reconnecting for ever carries the tool's client through a scenario's NATS restarts.
	opts := []nats.Option{nats.Name(s.host.Client), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		nc, err := nats.Connect(s.NATSURL(), opts...)
		if err == nil {
			s.NC = nc
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("NATS did not accept connections: %v", err)
		}
		if err := childproc.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	if s.JS, err = jetstream.New(s.NC); err != nil {
		return err
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.JS.AccountInfo(actx)
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

// natsConf is a node's configuration file.
func (s *Stack) natsConf(node *Node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nlisten: 127.0.0.1:%d\n", node.Name, node.Port)
	if s.opts.MaxPayload > 0 {
		fmt.Fprintf(&b, "max_payload: %d\n", s.opts.MaxPayload)
	}
	if node.PprofAddr != "" {
		_, port, _ := strings.Cut(node.PprofAddr, ":")
		fmt.Fprintf(&b, "prof_port: %s\n", port)
	}
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n", node.Dir)
	if s.opts.MaxFileStore != "" {
		fmt.Fprintf(&b, "  max_file_store: %s\n", s.opts.MaxFileStore)
	}
	b.WriteString("}\n")
	if len(s.Nodes) > 1 {
		var routes []string
		for _, other := range s.Nodes {
			routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", other.ClusterPort))
		}
		fmt.Fprintf(&b, "cluster {\n  name: stack\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n",
			node.ClusterPort, strings.Join(routes, ", "))
	}
	return b.String()
}

// RestartNode starts node (again) with its configuration and store, and waits up to 15 s until it
// accepts connections. Stop or kill its process first (Node.Proc). An error means it did not
// start; it carries the end of the node's log.
func (s *Stack) RestartNode(ctx context.Context, node *Node) error {
	p, err := s.host.Procs.Start("nats-"+node.Name, s.host.Bins.NATS, filepath.Join(s.Dir, "nats-"+node.Name+".log"), nil, "-c", node.Conf)
	if err != nil {
		return err
	}
	node.proc = p
	deadline := time.Now().Add(15 * time.Second)
	for {
		nc, err := nats.Connect(node.URL(), nats.NoReconnect())
		if err == nil {
			nc.Close()
			return nil
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("NATS node %s did not start: %v%s", node.Name, err, childproc.LogTail(p.Log(), 5))
		}
		if err := childproc.Sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}
