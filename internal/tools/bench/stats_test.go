package bench

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	hundred := make([]int64, 100)
	for i := range hundred {
		hundred[i] = int64(i + 1) // 1..100
	}
	tests := []struct {
		name   string
		sorted []int64
		p      float64
		want   int64
	}{
		{"empty", nil, 50, 0},
		{"one value", []int64{7}, 99, 7},
		{"median of odd", []int64{1, 2, 3, 4, 5}, 50, 3},
		{"median of even is the lower middle", []int64{1, 2, 3, 4}, 50, 2},
		{"p99 of 1..100", hundred, 99, 99},
		{"p90 of 1..100", hundred, 90, 90},
		{"p100 is the max", hundred, 100, 100},
		{"tiny p is the min", hundred, 0.001, 1},
		{"p99 of ten values is the max", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := Summarize(ds)
	want := Dist{N: 100, P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if got := Summarize(nil); got != (Dist{}) {
		t.Errorf("Summarize(nil) = %+v, want zero", got)
	}
}

func TestRateAndRatio(t *testing.T) {
	t.Parallel()
	if got := Rate(500, 250*time.Millisecond); got != 2000 {
		t.Errorf("Rate = %v, want 2000", got)
	}
	if got := Rate(5, 0); got != 0 {
		t.Errorf("Rate over no time = %v, want 0", got)
	}
	if got := Ratio(1, 4); got != 0.25 {
		t.Errorf("Ratio = %v, want 0.25", got)
	}
	if got := Ratio(1, 0); got != 0 {
		t.Errorf("Ratio by zero = %v, want 0", got)
	}
}

func TestPollLateness(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	sec := func(s float64) int64 { return t0.Add(time.Duration(s * float64(time.Second))).UnixNano() }
	scheds := []schedRec{
		{at: sec(3), seen: sec(0.1)},  // published at registration
		{at: sec(9), seen: sec(3.2)},  // published while handling re-check 1: 0.2 s late
		{at: sec(21), seen: sec(9.5)}, // re-check 2: 0.5 s late
	}
	got := pollLateness(nil, scheds, sec(21.05)) // re-check 3 decided the order
	want := []time.Duration{200 * time.Millisecond, 500 * time.Millisecond, 50 * time.Millisecond}
	if len(got) != len(want) {
		t.Fatalf("pollLateness = %v, want %v", got, want)
	}
	for i := range want {
		if d := got[i] - want[i]; d > time.Microsecond || d < -time.Microsecond {
			t.Errorf("re-check %d: late %v, want %v", i+1, got[i], want[i])
		}
	}
	if got := pollLateness([]time.Duration{time.Hour}, scheds, 0); len(got) != 3 || got[0] != time.Hour {
		t.Errorf("without a final outcome, appended to one: %v, want 1 + 2 re-checks", got)
	}
}

func TestFireLateness(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) int64 { return t0.Add(d).UnixNano() }
	scheds := []schedRec{{at: at(3 * time.Second)}, {at: at(9 * time.Second)}}
	dues := []dueRec{{at: at(3*time.Second + 20*time.Millisecond)}, {at: at(9*time.Second + 5*time.Millisecond)}, {at: at(time.Second)}}
	got := fireLateness(nil, scheds, dues)
	want := []time.Duration{20 * time.Millisecond, 5 * time.Millisecond} // the due before any @at is left out
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("fireLateness = %v, want %v", got, want)
	}
}

func TestGroupByOrder(t *testing.T) {
	t.Parallel()
	recs := []schedRec{{order: 2, at: 1}, {order: 0, at: 2}, {order: 2, at: 3}, {order: 7, at: 4}, {order: 0, at: 5}}
	out, start := groupByOrder(recs, 3, func(r schedRec) uint32 { return r.order })
	if want := []int{0, 2, 2, 4}; !slices.Equal(start, want) {
		t.Fatalf("start = %v, want %v", start, want)
	}
	var ats []int64
	for _, r := range out {
		ats = append(ats, r.at)
	}
	if want := []int64{2, 5, 1, 3}; !slices.Equal(ats, want) { // order 7 is beyond n: dropped
		t.Errorf("grouped = %v, want %v", ats, want)
	}
}

func TestPendingIndex(t *testing.T) {
	t.Parallel()
	spec := orderSpec{prefix: "P", n: 1000000}
	index := pendingIndex(spec)
	for _, i := range []int{0, 1, 999999} {
		if got, ok := index(spec.id(i)); !ok || got != i {
			t.Errorf("index(%s) = %d, %v; want %d", spec.id(i), got, ok, i)
		}
	}
	for _, order := range []string{"P1000000", "Q0000001", "P", "Pabc"} {
		if _, ok := index(order); ok {
			t.Errorf("index(%s) ok, want not one of the spec's", order)
		}
	}
}

// TestPlanPending: for sizes from the quick run's to ten million, the plan's timings keep the
// order the scenario relies on, with the worker's ±10 % jitter on each delay.
func TestPlanPending(t *testing.T) {
	t.Parallel()
	for _, n := range []int{100, 5000, 100000, 1000000, 10000000} {
		for _, rate := range []float64{1500, 3000} {
			p := planPending(n, rate)
			tReg := float64(n) / rate
			switch {
			case 0.9*p.First < tReg:
				t.Errorf("n %d at %v/s: the first re-checks (from %v s) fall due before registration ends (%v s)", n, rate, 0.9*p.First, tReg)
			case p.Review <= 1.1*p.First+0.3*p.First:
				t.Errorf("n %d at %v/s: review %v s too close to the last first re-check (%v s)", n, rate, p.Review, 1.1*p.First)
			case p.Review >= 0.9*p.First+0.9*p.Max-0.2*p.First:
				t.Errorf("n %d at %v/s: review %v s too close to the first second re-check (%v s)", n, rate, p.Review, 0.9*(p.First+p.Max))
			case 0.9*(p.First+p.Max) < tReg+1.1*p.First:
				t.Errorf("n %d at %v/s: the second wave (from %v s) overlaps the first (to %v s)", n, rate, 0.9*(p.First+p.Max), tReg+1.1*p.First)
			case p.WaveRate >= rate:
				t.Errorf("n %d at %v/s: waves of %v/s, not below the registration rate", n, rate, p.WaveRate)
			case p.Max < p.First:
				t.Errorf("n %d: -poll-max-interval %v s below -poll-first-delay %v s", n, p.Max, p.First)
			}
		}
	}
	if p := planPending(5000, 3000); p.Finish > 12 {
		t.Errorf("quick: done after %v s, want ≤ 12 s", p.Finish)
	}
}

func TestLatencyOf(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	sent := map[string]time.Time{"A": t0, "B": t0.Add(time.Second)}
	finals := map[string]outcome{
		"A": {typ: "credit.ok", at: t0.Add(5 * time.Millisecond), tx: "tx-a"},
		"B": {typ: "credit.ok", at: t0.Add(time.Second + 3*time.Millisecond), tx: "tx-b"},
	}
	sandbox := map[string]time.Duration{"tx-a": time.Millisecond, "tx-b": time.Millisecond}
	got := latencyOf("worker", 2, sent, finals, sandbox)
	if got.Orders != 2 || got.Total.Max != 5 || got.Added.Max != 4 || got.Added.P50 != 2 || got.Sandbox.P50 != 1 {
		t.Errorf("latencyOf = %+v", got)
	}
	if got.Saturated {
		t.Errorf("2 orders in 1.003 s at 2/s reported saturated (achieved %v)", got.Achieved)
	}
}

func TestSaturated(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		offered, achieved, p50 float64
		want                   bool
	}{
		{1000, 1000, 1.5, false},
		{1000, 960, 3, false},
		{1000, 900, 3, true},   // fell behind
		{2000, 1942, 74, true}, // kept the pace only by queueing
	} {
		if got := saturated(tt.offered, tt.achieved, Dist{P50: tt.p50}); got != tt.want {
			t.Errorf("saturated(%v, %v, p50 %v) = %v, want %v", tt.offered, tt.achieved, tt.p50, got, tt.want)
		}
	}
}

func TestHistogramQuantile(t *testing.T) {
	t.Parallel()
	text := `# TYPE m histogram
m_bucket{timer="poll",le="0.1"} 50
m_bucket{timer="poll",le="1"} 90
m_bucket{timer="poll",le="2"} 99
m_bucket{timer="poll",le="+Inf"} 100
m_bucket{timer="inbox",le="0.1"} 7
m_bucket{timer="inbox",le="+Inf"} 7
m_count{timer="poll"} 100
`
	for _, tc := range []struct {
		q, est, upper float64
	}{
		{0.5, 0.1, 0.1}, // the 50th of 100 is the last of the first bucket
		{0.7, 0.55, 1},  // halfway through the (0.1, 1] bucket
		{0.99, 2, 2},    // the 99th is the last of (1, 2]
		{0.995, 2, math.Inf(1)},
	} {
		est, n, upper := HistogramQuantile(text, "m", tc.q, `timer="poll"`)
		if math.Abs(est-tc.est) > 1e-9 || n != 100 || upper != tc.upper {
			t.Errorf("q %v: %v, %v, ≤ %v; want %v, 100, ≤ %v", tc.q, est, n, upper, tc.est, tc.upper)
		}
	}
	if _, n, _ := HistogramQuantile(text, "m", 0.5, `timer="parked"`); n != 0 {
		t.Errorf("a series with no observations: n %v, want 0", n)
	}
}
