package bench

import (
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestProject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		byProcess  map[string]float64
		wantParts  []PartProjection
		wantRate   float64
		bottleneck string
		cores      int
	}{
		{
			name:      "nothing measured",
			byProcess: map[string]float64{"sandbox/sandbox": 0.15, "bench/bench": 0.01},
		},
		{
			name: "one of each: the busiest part bounds",
			byProcess: map[string]float64{"worker/worker-1": 0.25, "nats/n1": 0.05, "redis/127.0.0.1:7000": 0.1,
				"sandbox/sandbox": 0.15, "bench/bench": 0.01},
			wantParts: []PartProjection{
				{Part: "worker", Processes: 1, CPUPerOrderMS: 0.25, PerCore: 4000, Busiest: "worker-1", BusiestMS: 0.25, OneCoreEach: 4000},
				{Part: "nats", Processes: 1, CPUPerOrderMS: 0.05, PerCore: 20000, Busiest: "n1", BusiestMS: 0.05, OneCoreEach: 20000},
				{Part: "redis", Processes: 1, CPUPerOrderMS: 0.1, PerCore: 10000, Busiest: "127.0.0.1:7000", BusiestMS: 0.1, OneCoreEach: 10000},
			},
			wantRate: 4000, bottleneck: "worker", cores: 3,
		},
		{
			name: "spread unevenly: the busiest process bounds its part",
			byProcess: map[string]float64{"worker/worker-1": 0.1, "worker/worker-2": 0.1, "worker/worker-3": 0.1,
				"redis/a": 0.2, "redis/b": 0.05, "redis/c": 0, "nats/n1": 0.04},
			wantParts: []PartProjection{
				{Part: "worker", Processes: 3, CPUPerOrderMS: 0.3, PerCore: 1000 / 0.3, Busiest: "worker-1", BusiestMS: 0.1, OneCoreEach: 10000},
				{Part: "nats", Processes: 1, CPUPerOrderMS: 0.04, PerCore: 25000, Busiest: "n1", BusiestMS: 0.04, OneCoreEach: 25000},
				{Part: "redis", Processes: 3, CPUPerOrderMS: 0.25, PerCore: 4000, Busiest: "a", BusiestMS: 0.2, OneCoreEach: 5000},
			},
			wantRate: 5000, bottleneck: "redis", cores: 7,
		},
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6*math.Max(1, math.Abs(b)) }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			parts, rate, bottleneck, cores := Project(tt.byProcess)
			if len(parts) != len(tt.wantParts) {
				t.Fatalf("Project: %d parts %+v, want %d", len(parts), parts, len(tt.wantParts))
			}
			for i, p := range parts {
				w := tt.wantParts[i]
				if p.Part != w.Part || p.Processes != w.Processes || p.Busiest != w.Busiest || !near(p.CPUPerOrderMS, w.CPUPerOrderMS) ||
					!near(p.PerCore, w.PerCore) || !near(p.BusiestMS, w.BusiestMS) || !near(p.OneCoreEach, w.OneCoreEach) {
					t.Errorf("part %d = %+v, want %+v", i, p, w)
				}
			}
			if !near(rate, tt.wantRate) || bottleneck != tt.bottleneck || cores != tt.cores {
				t.Errorf("Project = rate %v, bottleneck %q, cores %d; want %v, %q, %d", rate, bottleneck, cores, tt.wantRate, tt.bottleneck, tt.cores)
			}
		})
	}
}

func TestProcessOrder(t *testing.T) {
	t.Parallel()
	got := []string{"bench/bench", "redis/b", "sandbox/sandbox", "nats/n2", "worker/worker-2", "redis/a", "nats/n1", "worker/worker-1"}
	slices.SortFunc(got, processOrder)
	want := []string{"worker/worker-1", "worker/worker-2", "nats/n1", "nats/n2", "redis/a", "redis/b", "sandbox/sandbox", "bench/bench"}
	if !slices.Equal(got, want) {
		t.Errorf("sorted: %v, want %v", got, want)
	}
}

// TestScenariosDocumented keeps docs/benchmarks.md's list of scenarios, the line that begins
// "Scenarios", true: it names every scenario, in order, and those -quick leaves out.
func TestScenariosDocumented(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../../docs/benchmarks.md")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for l := range strings.Lines(string(raw)) {
		if strings.HasPrefix(l, "Scenarios (`-only`): ") {
			line = l
			break
		}
	}
	if line == "" {
		t.Fatal("docs/benchmarks.md has no line beginning \"Scenarios (`-only`): \"")
	}
	all, notQuick, _ := strings.Cut(line, "; not in `-quick` unless named: ")
	spans := func(s string) []string {
		var out []string
		for _, m := range regexp.MustCompile("`([a-z]+)`").FindAllStringSubmatch(s, -1) {
			out = append(out, m[1])
		}
		return out
	}
	if got := spans(strings.TrimPrefix(all, "Scenarios (`-only`): ")); !slices.Equal(got, Scenarios) {
		t.Errorf("docs/benchmarks.md lists the scenarios %v, the bench runs %v", got, Scenarios)
	}
	if got := spans(notQuick); !slices.Equal(got, NotQuick) {
		t.Errorf("docs/benchmarks.md says -quick leaves out %v, the bench leaves out %v", got, NotQuick)
	}
}
