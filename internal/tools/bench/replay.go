package bench

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// ReplayResult is the replay scenario.
type ReplayResult struct {
	Letters int `json:"letters"`
	// DeadLetterPerSec is how fast the worker dead-lettered the orders of the unknown shop.
	DeadLetterPerSec float64 `json:"dead_lettered_per_second"`
	// ReplaySeconds is the wall time of `publisher dlq replay -reason unknown-shop`, process
	// start to exit, with the worker running and handling the replayed orders.
	ReplaySeconds float64 `json:"replay_seconds"`
	ReplayPerSec  float64 `json:"replayed_per_second"`
	// SettledSeconds is from the replay's start until every replayed order had its outcome.
	SettledSeconds float64 `json:"settled_seconds"`
	SettledPerSec  float64 `json:"settled_per_second"`
	Output         string  `json:"publisher_output"`
}

// replay makes dead letters the way they happen: orders of a shop the worker does not know yet
// are dead-lettered unknown-shop. Then the shop is added (the worker restarts with it) and an
// operator replays them with the publisher command, timed.
func (r *runner) replay(ctx context.Context) error {
	n := r.settings.ReplayLetters
	fmt.Fprintf(r.out, "5. Replay: %d unknown-shop dead letters, replayed with `publisher dlq replay -reason unknown-shop` after the shop is added\n", n)
	res := &ReplayResult{Letters: n}
	s, err := r.newStack(ctx, "replay", sandboxOpts{})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.createStreams(ctx); err != nil {
		return err
	}
	col, err := s.collect(ctx, false)
	if err != nil {
		return err
	}
	defer col.stop()
	if err := s.startWorkers(ctx, 1, workerOpts{concurrency: r.settings.Concurrency}); err != nil {
		return err
	}
	pub, err := newPublisher(s.NC)
	if err != nil {
		return err
	}
	start := time.Now()
	if _, err := pub.publish(ctx, orderSpec{shop: ghostShop, prefix: "R", n: n, email: emailOK}, 0); err != nil {
		return err
	}
	if err := s.waitStreamMsgs(ctx, dlqStream, n, 60*time.Second); err != nil {
		return err
	}
	res.DeadLetterPerSec = Rate(n, time.Since(start))

	// The operator adds the shop and restarts the worker, then replays.
	if err := s.StopWorkers(); err != nil {
		return err
	}
	if err := s.startWorkers(ctx, 1, workerOpts{concurrency: r.settings.Concurrency, ghostShop: true}); err != nil {
		return err
	}
	start = time.Now()
	cmd := exec.CommandContext(ctx, r.host.Bins.Publisher, "-nats-url", s.NATSURL(), "dlq", "replay", "-reason", "unknown-shop")
	out, err := cmd.CombinedOutput()
	res.ReplaySeconds = time.Since(start).Seconds()
	res.Output = strings.TrimSpace(string(out))
	if err != nil {
		return fmt.Errorf("publisher dlq replay: %v: %s", err, out)
	}
	res.ReplayPerSec = float64(n) / res.ReplaySeconds
	if err := col.wait(ctx, n, 60*time.Second); err != nil {
		return err
	}
	_, last, _ := span(col.finalsOf("R"))
	res.SettledSeconds = last.Sub(start).Seconds()
	res.SettledPerSec = float64(n) / res.SettledSeconds
	r.report.Replay = res

	t := Table{Title: "Replay of dead letters", Columns: []string{"measure", "value"}}
	t.Add("dead letters (unknown-shop)", thousands(int64(n)))
	t.Add("dead-lettered by the worker", num(res.DeadLetterPerSec)+"/s")
	t.Add("publisher dlq replay, wall time", num(res.ReplaySeconds)+" s")
	t.Add("replayed", num(res.ReplayPerSec)+"/s")
	t.Add("replay start → every order settled", num(res.SettledSeconds)+" s ("+num(res.SettledPerSec)+"/s)")
	t.Add("publisher said", res.Output)
	t.Notes = []string{"target: replay ≥ 1,000 messages/s"}
	return t.Render(r.out)
}

// waitStreamMsgs waits until a stream holds n messages.
func (s *benchStack) waitStreamMsgs(ctx context.Context, name string, n int, idle time.Duration) error {
	last, lastProgress := uint64(0), time.Now()
	for {
		st, err := s.JS.Stream(ctx, name)
		if err == nil {
			info, err := st.Info(ctx)
			if err == nil {
				if info.State.Msgs >= uint64(n) {
					return nil
				}
				if info.State.Msgs != last {
					last, lastProgress = info.State.Msgs, time.Now()
				}
			}
		}
		if time.Since(lastProgress) > idle {
			return fmt.Errorf("stream %s holds %d of %d messages; none for %s", name, last, n, idle)
		}
		if err := childproc.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}
