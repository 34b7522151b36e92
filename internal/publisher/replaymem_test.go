package publisher

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestDlqReplayHoldsAWindowOfBodies: dlq replay of many large letters (a refused account
// dead-letters thousands of orders) selects them by their headers and reads each body back just
// before its publish: the replay's live heap, sampled after a collection while it runs, never
// holds the bodies of all the letters, only those of its window. Not parallel: the heap is the
// process's.
func TestDlqReplayHoldsAWindowOfBodies(t *testing.T) {
	if args := os.Getenv(childArgsEnv); args != "" {
		publisherChild(strings.Split(args, "\x1f"))
	}
	const n, bodySize = 4000, 32 << 10
	pad := strings.Repeat("x", bodySize)
	// The server is the test's, in this process: ORDERS keeps the last few events only, not to count
	// the replayed events it stores in the heap.
	url, js := testenv.JetStream(t)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"},
		Duplicates: 2 * time.Minute, Storage: jetstream.MemoryStorage, MaxMsgs: 16}); err != nil {
		t.Fatal(err)
	}
	s, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "DLQ", Subjects: []string{"dlq.>"},
		Duplicates: 2 * time.Minute, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	w := dlq.NewWriter(js)
	for i := range uint64(n) {
		l := deadLetter(i+1, "shop-b", handlers.ReasonAccountRefused.String(), 1, 0)
		l.Body = []byte(`{"specversion":"1.0","id":"e-` + strconv.FormatUint(i+1, 10) + `","data":{"shop_id":"shop-b","order_id":"O-` +
			strconv.FormatUint(i+1, 10) + `","pad":"` + pad + `"}}`)
		if err := w.Write(t.Context(), l); err != nil {
			t.Fatal(err)
		}
	}

	// The replay runs in a process of its own (this test binary again, publisherChild), which holds
	// nothing but the publisher's client: its live heap is sampled there.
	cmd := exec.Command(os.Args[0], "-test.run=^TestDlqReplayHoldsAWindowOfBodies$")
	cmd.Env = append(os.Environ(), childArgsEnv+"="+strings.Join([]string{"-nats-url", url, "dlq", "replay", "-reason", handlers.ReasonAccountRefused.String()}, "\x1f"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	r := runResult{out.String(), errOut.String(), err}
	var grew int64
	_, said, _ := strings.Cut(r.stderr, "peak live heap growth ")
	if _, err := fmt.Sscanf(said, "%d", &grew); err != nil {
		t.Fatalf("the replay's process said no peak: %v\n%s%s", err, r.stdout, r.stderr)
	}
	if r.err != nil || !strings.Contains(r.stdout, "replayed "+strconv.Itoa(n)+", refused 0") {
		t.Fatalf("dlq replay: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if info, err := s.Info(context.Background()); err != nil || info.State.Msgs != 0 {
		t.Fatalf("DLQ after the replay: %+v %v, want empty", info, err)
	}
	t.Logf("replay of %d letters of %d bytes: live heap grew at most %d KB (the bodies: %d KB)", n, bodySize, grew>>10, n*bodySize>>10)
	if grew > n*bodySize/2 {
		t.Errorf("the replay's live heap grew by %d bytes, want less than half the %d letters' bodies (%d bytes): it holds them all", grew, n, n*bodySize)
	}
}

// childArgsEnv holds the arguments of the publisher that publisherChild runs, separated by unit separators (US, 0x1f).
const childArgsEnv = "ATODENE_TEST_PUBLISHER_CHILD_ARGS"

// publisherChild runs the publisher with args in this process, sampling its live heap after a
// collection every few milliseconds meanwhile, prints "peak live heap growth N" (bytes, over the
// heap before the run) on stderr, and exits with the publisher's status.
func publisherChild(args []string) {
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := heap()
	var (
		peak uint64
		wg   sync.WaitGroup
	)
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			peak = max(peak, heap())
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	a := &App{Stdin: strings.NewReader(""), Stdout: os.Stdout, Stderr: os.Stderr, Getenv: func(string) string { return "" }}
	err := a.Run(context.Background(), args)
	close(stop)
	wg.Wait()
	fmt.Fprintf(os.Stderr, "peak live heap growth %d\n", int64(peak)-int64(base))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
