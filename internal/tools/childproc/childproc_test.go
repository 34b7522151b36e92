package childproc

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFreePorts(t *testing.T) {
	ports, err := FreePorts(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p == 4222 || seen[p] {
			t.Errorf("port %d: the machine's NATS port or a repeat", p)
		}
		seen[p] = true
	}
}

func TestStartStopAndGroup(t *testing.T) {
	dir := t.TempDir()
	var g Group
	p, err := g.Start("sleeper", "sleep", filepath.Join(dir, "sleep.log"), nil, "30")
	if err != nil {
		t.Fatal(err)
	}
	q, err := g.Start("sleeper2", "sleep", filepath.Join(dir, "sleep2.log"), nil, "30")
	if err != nil {
		t.Fatal(err)
	}
	if p.Exited() || p.Pid() <= 0 {
		t.Fatal("just started, already gone")
	}
	// sleep dies of SIGTERM: Stop reports the unclean exit.
	if err := p.Stop(5 * time.Second); err == nil || !strings.Contains(err.Error(), "sleeper exited") {
		t.Errorf("Stop: %v", err)
	}
	g.StopAll()
	if !q.Exited() {
		t.Error("StopAll left a process running")
	}
}

func TestWaitHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ctx := context.Background()
	if err := WaitHTTP(ctx, srv.URL, time.Second, nil); err != nil {
		t.Errorf("a server answering 200: %v", err)
	}
	dir := t.TempDir()
	var g Group
	p, err := g.Start("quitter", "sh", filepath.Join(dir, "q.log"), nil, "-c", "echo bye; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	err = WaitHTTP(ctx, "http://127.0.0.1:1/", 10*time.Second, p)
	if err == nil || !strings.Contains(err.Error(), "quitter exited before it was ready") || !strings.Contains(err.Error(), "bye") {
		t.Errorf("a process that exits: %v", err)
	}
}
