package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// TestMetricsEndpoint: /metrics passes promlint; it carries the Go and process collectors and a
// build-info metric; the dead-letter series of every reason exist at zero before any dead letter
// (an "any increase" alert then fires on the first one after a restart); a dead letter counts in
// messages_total with its outcome and reason as two labels; ATODENE operations are named without
// their ".do".
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, before := h.get("/metrics")
	for _, reason := range handlers.Reasons() {
		if want := fmt.Sprintf(`atodene_worker_dead_letters_total{reason=%q} 0`, reason); !strings.Contains(before, want) {
			t.Errorf("/metrics at start lacks %s", want)
		}
		if want := fmt.Sprintf(`atodene_worker_messages_total{outcome="dead-letter",reason=%q,type="order.created"} 0`, reason); !strings.Contains(before, want) {
			t.Errorf("/metrics at start lacks %s", want)
		}
	}

	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "M-1", "taro@example.jp"))
	h.publishRaw("orders.created.shop-a", "", []byte("{not json"))
	wait.For(t, 10*time.Second, "the outcome and the dead letter", func() bool { return len(h.results()) == 1 && len(h.deadLetters()) == 1 })
	var body string
	wait.For(t, 5*time.Second, "the dead letter counted", func() bool {
		_, body = h.get("/metrics")
		return strings.Contains(body, `atodene_worker_dead_letters_total{reason="invalid"} 1`)
	})
	for _, want := range []string{
		`atodene_worker_messages_total{outcome="ok",reason="",type="order.created"} 1`,
		`atodene_worker_messages_total{outcome="dead-letter",reason="invalid",type="undecoded"} 1`,
		`atodene_worker_provider_calls_total{op="transaction",result="ok"} 1`,
		`atodene_worker_provider_call_seconds_count{op="transaction"} 1`,
		`atodene_worker_orders_under_review 0`,
		`atodene_worker_orders_under_review_read_errors_total 0`,
		"go_goroutines ", "go_memstats_heap_alloc_bytes ", "process_resident_memory_bytes ", "process_cpu_seconds_total ",
		`atodene_worker_build_info{`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, `.do"`) || strings.Contains(body, `outcome="dead-letter:`) {
		t.Errorf("/metrics has an op with .do or an outcome with its reason packed in")
	}

	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	checkMetricsTable(t, body)
}

// checkMetricsTable checks the metrics table of docs/operations-worker.md against an exposition:
// one row per atodene_worker_ family, with its type and labels, and no row of a family that does
// not exist (but for those the table says are present only at times).
func checkMetricsTable(t *testing.T, exposition string) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/operations-worker.md")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		typ, labels string
		sometimes   bool
	}
	rows := map[string]row{}
	for l := range strings.Lines(string(doc)) {
		cells := strings.Split(l, "|") // "", name, type, labels, meaning, ""
		if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`atodene_worker_") {
			continue
		}
		var labels []string
		for _, lb := range strings.Split(cells[3], ",") {
			if lb = strings.Trim(strings.TrimSpace(lb), "`"); lb != "" {
				labels = append(labels, lb)
			}
		}
		slices.Sort(labels)
		rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = row{strings.TrimSpace(cells[2]), strings.Join(labels, ","),
			strings.HasPrefix(strings.TrimSpace(cells[4]), "Present only")}
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	for name, mf := range families {
		if !strings.HasPrefix(name, "atodene_worker_") {
			continue
		}
		r, ok := rows[name]
		if !ok {
			t.Errorf("docs/operations-worker.md has no row for %s", name)
			continue
		}
		labels := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		want := row{strings.ToLower(mf.GetType().String()), strings.Join(slices.Sorted(maps.Keys(labels)), ","), r.sometimes}
		if r != want {
			t.Errorf("docs/operations-worker.md: %s is a %s with labels %q, /metrics a %s with labels %q", name, r.typ, r.labels, want.typ, want.labels)
		}
	}
	for name, r := range rows {
		if _, ok := families[name]; !ok && !r.sometimes {
			t.Errorf("docs/operations-worker.md lists %s, which /metrics lacks", name)
		}
	}
}

// pendingCount is an orders store whose SCARD answers n or fails.
type pendingCount struct {
	n   int64
	err error
}

func (p *pendingCount) PendingCount(context.Context) (int64, error) { return p.n, p.err }

// TestUnderReviewGaugeWithRedisUnreadable: with Redis unreadable, the orders-under-review gauge has
// no sample (it reported -1, a number that graphs and sums take for a count) and its read-error
// counter grows; with Redis back, the gauge is back.
func TestUnderReviewGaugeWithRedisUnreadable(t *testing.T) {
	t.Parallel()
	store := &pendingCount{n: 3}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(pendingGauge(store.PendingCount))
	expect := func(want string) {
		t.Helper()
		if got := exposition(t, reg); got != want {
			t.Errorf("/metrics:\n%s\nwant:\n%s", got, want)
		}
	}
	expect("atodene_worker_orders_under_review 3\natodene_worker_orders_under_review_read_errors_total 0\n")
	store.err = errors.New("redis: connection refused")
	expect("atodene_worker_orders_under_review_read_errors_total 1\n")
	store.err = nil
	expect("atodene_worker_orders_under_review 3\natodene_worker_orders_under_review_read_errors_total 1\n")
}

// exposition returns the samples reg exposes in the text format, without comments.
func exposition(t *testing.T, reg prometheus.Gatherer) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	var lines []string
	for l := range strings.Lines(b.String()) {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "")
}

// TestDeadLettersCountOncePerLetterStored: every path that dead-letters (the consume loops, parked
// events, max-deliveries advisories) counts through one writer, which counts a letter once it is
// stored and once only: a write that fails (and is retried) counts nothing, and the same letter
// written again (the handler of a last delivery and the advisory of it, or a retry whose first
// acknowledgement was lost) counts once, as the stream stores it once.
func TestDeadLettersCountOncePerLetterStored(t *testing.T) {
	t.Parallel()
	_, js := testenv.JetStream(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	w := countedLetters{dlq.NewWriter(js), m.deadLetters}
	letter := dlq.Letter{Subject: "orders.created.shop-a", Stream: "ORDERS", Sequence: 7, Body: []byte("{}"),
		Reason: handlers.ReasonExhausted.String(), Err: errors.New("timed out"), Attempts: 5, FailedAt: time.Now()}
	count := func() string {
		for l := range strings.Lines(exposition(t, reg)) {
			if strings.Contains(l, `reason="exhausted"`) {
				return strings.TrimSpace(l)
			}
		}
		return ""
	}

	if err := w.Write(ctx, letter); err == nil || !handlers.IsInfrastructure(err) {
		t.Fatalf("write without a DLQ stream: %v, want an infrastructure error", err)
	}
	if got := count(); got != `atodene_worker_dead_letters_total{reason="exhausted"} 0` {
		t.Errorf("a letter that was not stored: %s, want a count of 0", got)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DLQ", Subjects: []string{"dlq.>"}, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := w.Write(ctx, letter); err != nil {
			t.Fatal(err)
		}
	}
	if got := count(); got != `atodene_worker_dead_letters_total{reason="exhausted"} 1` {
		t.Errorf("one letter written twice (stored once): %s, want a count of 1", got)
	}
}
