package bench

import (
	"context"
	"fmt"
	"time"
)

// TimelineRow is one interval of a scenario's timeline: where the CPU went and how far the
// worker's poll consumer was behind, to show where re-checks waited.
type TimelineRow struct {
	Seconds float64 `json:"seconds"` // end of the interval, from the first publish
	// PollBacklog is the most re-checks fired and not yet acknowledged (the poll consumer's
	// pending + ack pending) seen in the interval.
	PollBacklog int64 `json:"poll_backlog_max"`
	// Cores is the CPU each part of the stack used in the interval (worker, nats, redis,
	// sandbox, bench), in cores.
	Cores map[string]float64 `json:"cores"`
}

// timeline samples a stack every tick and closes a row every interval.
type timeline struct {
	s        *benchStack
	start    time.Time
	interval time.Duration
	rows     []TimelineRow
	backlog  int64
	rowStart time.Time
	cpu      cpuSample
}

func newTimeline(s *benchStack, start time.Time, interval time.Duration) *timeline {
	return &timeline{s: s, start: start, interval: interval, rowStart: time.Now(), cpu: byPart(s.cpuByProcess())}
}

// sample reads the poll consumer's backlog and, once an interval has passed, closes a row.
func (tl *timeline) sample(ctx context.Context) {
	if info, err := tl.s.consumerInfo(ctx, pollStream, pollConsumer); err == nil {
		tl.backlog = max(tl.backlog, int64(info.NumPending)+int64(info.NumAckPending))
	}
	now := time.Now()
	if now.Sub(tl.rowStart) < tl.interval {
		return
	}
	cpu := byPart(tl.s.cpuByProcess())
	row := TimelineRow{Seconds: now.Sub(tl.start).Seconds(), PollBacklog: tl.backlog, Cores: map[string]float64{}}
	for part, d := range cpu {
		row.Cores[part] = (d - tl.cpu[part]).Seconds() / now.Sub(tl.rowStart).Seconds()
	}
	tl.rows = append(tl.rows, row)
	tl.rowStart, tl.cpu, tl.backlog = now, cpu, 0
}

// timelineTable renders rows, with the re-checks NATS fired per second in each interval.
func timelineTable(title string, rows []TimelineRow, firedPerSecond map[int64]int, start time.Time) Table {
	t := Table{Title: title, Columns: []string{"s", "re-checks fired/s", "poll backlog max", "worker", "nats", "redis", "sandbox", "bench"}}
	from := 0.0
	for _, r := range rows {
		fired := 0
		for sec := int64(from); sec < int64(r.Seconds); sec++ {
			fired += firedPerSecond[start.Unix()+sec]
		}
		t.Add(num(r.Seconds), thousands(int64(float64(fired)/max(r.Seconds-from, 1))), thousands(r.PollBacklog),
			cores(r.Cores["worker"]), cores(r.Cores["nats"]), cores(r.Cores["redis"]), cores(r.Cores["sandbox"]), cores(r.Cores["bench"]))
		from = r.Seconds
	}
	t.Notes = []string{"cores used in each interval by each part of the stack; poll backlog = the poll consumer's pending + ack pending, the most seen (sampled every 0.5 s)"}
	return t
}

func cores(c float64) string { return fmt.Sprintf("%.2f", c) }
