package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/atodene-worker/atodene-worker/internal/consumer"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
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
	// The outcome is published before the handling's last write and before the message is counted:
	// the counts below are read once both messages are acknowledged.
	h.waitSettled()
	var body string
	wait.For(t, 5*time.Second, "the dead letter counted and seen in its stream", func() bool {
		_, body = h.get("/metrics") // the stream is read again 1 s after the last read
		return strings.Contains(body, `atodene_worker_dead_letters_total{reason="invalid"} 1`) &&
			strings.Contains(body, `atodene_worker_dead_letter_stream_messages{reason="invalid"} 1`)
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
	// The writes of the one order handled: its state versions, index entries and history entries
	// (the undecodable message names no order and writes none).
	st, err := orderstate.New(h.deps.Redis, h.deps.KeyPrefix, time.Hour).Get(context.Background(), "shop-a", "M-1")
	if err != nil {
		t.Fatal(err)
	}
	// The intent (registering) written with the lease, then ok; where intents wait for replicas (on
	// the test matrix's Redis Cluster), the intent is written again, at a new time changed, by the
	// write that waits.
	indexWrites := 2
	if testenv.OnCluster() {
		indexWrites = 3
	}
	for _, want := range []string{
		fmt.Sprintf("atodene_worker_state_writes_total %d\n", st.Version),
		fmt.Sprintf("atodene_worker_index_writes_total %d\n", indexWrites),
		fmt.Sprintf("atodene_worker_history_entries_total %d\n", len(h.history("M-1"))),
		`atodene_worker_lease_waits_total{then="queued"} 0`,
		`atodene_worker_outcome_publish_failures_total 0`,
		"atodene_worker_orders_backlog_age_seconds 0\n",
		`atodene_worker_orders_backlog_read_errors_total 0`,
		`atodene_worker_orders_under_review_oldest_age_seconds 0`,
		`atodene_worker_dead_letter_stream_messages{reason="invalid"} 1`,
		`atodene_worker_dead_letter_stream_messages{reason="exhausted"} 0`,
		`atodene_worker_dead_letter_stream_read_errors_total 0`,
		"atodene_worker_ready 1\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if st.Version < 2 || len(h.history("M-1")) == 0 {
		t.Errorf("order M-1 at version %d with %d history entries: the writes above count nothing", st.Version, len(h.history("M-1")))
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

// underReview is an orders store whose read of the orders under review answers r or fails.
type underReview struct {
	r   orderstate.UnderReview
	err error
}

func (p *underReview) UnderReview(context.Context) (orderstate.UnderReview, error) { return p.r, p.err }

// TestUnderReviewGaugeWithRedisUnreadable: with Redis unreadable, the orders-under-review gauges
// have no sample (the count reported -1, a number that graphs and sums take for a count) and their
// read-error counter grows; with Redis back, the gauges are back.
func TestUnderReviewGaugeWithRedisUnreadable(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	store := &underReview{r: orderstate.UnderReview{Count: 3, Oldest: now.Add(-90 * time.Second)}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(pendingGauge(store.UnderReview, func() time.Time { return now }))
	expect := func(want string) {
		t.Helper()
		if got := exposition(t, reg); got != want {
			t.Errorf("/metrics:\n%s\nwant:\n%s", got, want)
		}
	}
	expect("atodene_worker_orders_under_review 3\natodene_worker_orders_under_review_oldest_age_seconds 90\natodene_worker_orders_under_review_read_errors_total 0\n")
	store.err = errors.New("redis: connection refused")
	expect("atodene_worker_orders_under_review_read_errors_total 1\n")
	store.err, store.r = nil, orderstate.UnderReview{}
	expect("atodene_worker_orders_under_review 0\natodene_worker_orders_under_review_oldest_age_seconds 0\natodene_worker_orders_under_review_read_errors_total 1\n")
}

// TestUnderReviewGaugeReadsRedis: the gauges read what the store holds: the count of orders under
// review and the age of the oldest by when it was ordered, not of a decided order ordered earlier.
func TestUnderReviewGaugeReadsRedis(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := orderstate.New(rdb, prefix, time.Hour)
	t.Cleanup(store.Close)
	ctx, ordered := context.Background(), time.Date(2026, 11, 26, 1, 14, 3, 0, time.UTC)
	now := ordered.Add(3 * time.Hour)
	for order, st := range map[string]orderstate.State{
		"M-1": {Status: orderstate.StatusPending, OrderedAt: ordered},
		"M-2": {Status: orderstate.StatusPending, Review: "hold", OrderedAt: ordered.Add(time.Hour)},
		"M-3": {Status: orderstate.StatusOK, OrderedAt: ordered.Add(-time.Hour)},
	} {
		if _, err := store.Put(ctx, "shop-a", order, st, now); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	read := func(ctx context.Context) (orderstate.UnderReview, error) {
		return store.UnderReview(ctx, "shop-a", "shop-b")
	}
	reg.MustRegister(pendingGauge(read, func() time.Time { return now }))
	want := "atodene_worker_orders_under_review 2\natodene_worker_orders_under_review_oldest_age_seconds 10800\natodene_worker_orders_under_review_read_errors_total 0\n"
	if got := exposition(t, reg); got != want {
		t.Errorf("/metrics:\n%s\nwant:\n%s", got, want)
	}
}

// TestBacklogAgeGauge: the ORDERS backlog's age is that of the oldest message the consumer has
// not acknowledged, by its time in the stream, whether delivered or not; 0 when none waits; no
// sample and a read error counted when JetStream cannot be read; one read serves the scrapes
// within readEvery.
func TestBacklogAgeGauge(t *testing.T) {
	t.Parallel()
	_, js := testenv.JetStream(t)
	ctx := context.Background()
	var now time.Time
	c := backlogGauge(js, "ORDERS", ordersConsumer, ordersFilter, func() time.Time { return now })
	c.oldest.every = 0
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	expect := func(step, want string) {
		t.Helper()
		if got := exposition(t, reg); got != want {
			t.Errorf("%s:\n%s\nwant:\n%s", step, got, want)
		}
	}
	expect("no stream", "atodene_worker_orders_backlog_read_errors_total 1\n")

	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: ordersConsumer, FilterSubject: ordersFilter, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	expect("nothing waits", "atodene_worker_orders_backlog_age_seconds 0\natodene_worker_orders_backlog_read_errors_total 1\n")

	var stored []time.Time
	for i := range 3 {
		ack, err := js.Publish(ctx, "orders.created.shop-a", []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, m.Time)
	}
	now = stored[0].Add(90 * time.Second)
	expect("three waiting", "atodene_worker_orders_backlog_age_seconds 90\natodene_worker_orders_backlog_read_errors_total 1\n")

	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != 3 {
		t.Fatalf("fetched %d messages, want 3", len(msgs))
	}
	if err := msgs[1].DoubleAck(ctx); err != nil { // the floor stays below the first
		t.Fatal(err)
	}
	expect("delivered, the first not acknowledged", "atodene_worker_orders_backlog_age_seconds 90\natodene_worker_orders_backlog_read_errors_total 1\n")
	if err := msgs[0].DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	now = stored[2].Add(5 * time.Second)
	expect("the third alone unacknowledged", "atodene_worker_orders_backlog_age_seconds 5\natodene_worker_orders_backlog_read_errors_total 1\n")

	c.oldest.every = time.Hour
	if err := msgs[2].DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	expect("a scrape within readEvery of the last read", "atodene_worker_orders_backlog_age_seconds 5\natodene_worker_orders_backlog_read_errors_total 1\n")
	c.oldest.every = 0
	expect("all acknowledged", "atodene_worker_orders_backlog_age_seconds 0\natodene_worker_orders_backlog_read_errors_total 1\n")
}

// TestDeadLetterStreamGauge: the dead-letter stream's depth by reason, every reason at 0 included;
// it follows letters written and removed; no sample and a read error counted when JetStream
// cannot be read.
func TestDeadLetterStreamGauge(t *testing.T) {
	t.Parallel()
	_, js := testenv.JetStream(t)
	ctx := context.Background()
	c := dlqGauge(js, "DLQ")
	c.counts.every = 0
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	depth := func(counts map[string]int, errors int) string {
		var b strings.Builder
		for _, r := range slices.Sorted(slices.Values(handlers.Reasons())) {
			fmt.Fprintf(&b, "atodene_worker_dead_letter_stream_messages{reason=%q} %d\n", r, counts[r])
		}
		fmt.Fprintf(&b, "atodene_worker_dead_letter_stream_read_errors_total %d\n", errors)
		return b.String()
	}
	expect := func(step, want string) {
		t.Helper()
		if got := exposition(t, reg); got != want {
			t.Errorf("%s:\n%s\nwant:\n%s", step, got, want)
		}
	}
	expect("no stream", "atodene_worker_dead_letter_stream_read_errors_total 1\n")
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DLQ", Subjects: []string{"dlq.>"}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	expect("empty", depth(nil, 1))

	w := dlq.NewWriter(js)
	for i, reason := range []handlers.Reason{handlers.ReasonInvalid, handlers.ReasonExhausted, handlers.ReasonInvalid} {
		if err := w.Write(ctx, dlq.Letter{Subject: "orders.created.shop-a", Stream: "ORDERS", Sequence: uint64(i + 1), Body: []byte("{}"),
			Reason: reason.String(), Err: errors.New("bad"), Attempts: 1, FailedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	expect("three letters", depth(map[string]int{"invalid": 2, "exhausted": 1}, 1))
	for i, reason := range []handlers.Reason{handlers.ReasonExhausted, handlers.ReasonOutcomeUnknown} {
		if err := w.Write(ctx, dlq.Letter{Subject: "orders.created.shop-a", Stream: "ORDERS", Sequence: uint64(i + 4), Body: []byte("{}"),
			Reason: reason.String(), Err: errors.New("bad"), Attempts: 1, FailedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	expect("two appended (counted from the fourth)", depth(map[string]int{"invalid": 2, "exhausted": 2, "outcome-unknown": 1}, 1))
	if err := s.DeleteMsg(ctx, 1); err != nil { // replayed or purged
		t.Fatal(err)
	}
	expect("one removed", depth(map[string]int{"invalid": 1, "exhausted": 2, "outcome-unknown": 1}, 1))
	if err := s.DeleteMsg(ctx, 3); err != nil { // a removal in the middle, and an append
		t.Fatal(err)
	}
	if err := w.Write(ctx, dlq.Letter{Subject: "orders.created.shop-a", Stream: "ORDERS", Sequence: 6, Body: []byte("{}"),
		Reason: handlers.ReasonInvalid.String(), Err: errors.New("bad"), Attempts: 1, FailedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	expect("one removed in the middle, one appended", depth(map[string]int{"invalid": 1, "exhausted": 2, "outcome-unknown": 1}, 1))
}

// TestOutcomePublishFailuresCounted: an outcome that JetStream does not store counts as a publish
// failure; one stored does not.
func TestOutcomePublishFailuresCounted(t *testing.T) {
	t.Parallel()
	_, js := testenv.JetStream(t)
	ctx := context.Background()
	reg := prometheus.NewPedanticRegistry()
	m := newMetrics(reg)
	o := outcomes{js, m.publishFailures}
	count := func() string {
		for l := range strings.Lines(exposition(t, reg)) {
			if strings.HasPrefix(l, "atodene_worker_outcome_publish_failures_total") {
				return strings.TrimSpace(l)
			}
		}
		return ""
	}
	if err := o.Publish(ctx, "credit.ok.shop-a", "m-1", []byte(`{}`)); err == nil {
		t.Fatal("published without a RESULTS stream")
	}
	if got := count(); got != "atodene_worker_outcome_publish_failures_total 1" {
		t.Errorf("after a failed publish: %s", got)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RESULTS", Subjects: []string{"credit.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := o.Publish(ctx, "credit.ok.shop-a", "m-1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if got := count(); got != "atodene_worker_outcome_publish_failures_total 1" {
		t.Errorf("after a publish stored: %s", got)
	}
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

// pinger is a Redis that answers a ping or fails.
type pinger struct{ err error }

func (p *pinger) Ping(context.Context) error { return p.err }

// TestReadyGauge: atodene_worker_ready is 1 exactly when /readyz answers 200: 0 while starting or
// stopping, and while Redis does not answer.
func TestReadyGauge(t *testing.T) {
	t.Parallel()
	nc, err := nats.Connect(testenv.StartNATS(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	redis := &pinger{}
	h := newHealth(nc, redis, &consumer.Infra{}, func() []string { return nil })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(readyGauge(h))
	expect := func(step, want string) {
		t.Helper()
		if got := exposition(t, reg); got != want {
			t.Errorf("%s: %s, want %s", step, got, want)
		}
		rec := httptest.NewRecorder()
		h.readyz(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if ready := rec.Code == http.StatusOK; ready != (want == "atodene_worker_ready 1\n") {
			t.Errorf("%s: /readyz answers %d with the gauge at %s", step, rec.Code, want)
		}
	}
	expect("starting", "atodene_worker_ready 0\n")
	h.ready.Store(true)
	expect("started", "atodene_worker_ready 1\n")
	redis.err = errors.New("connection refused")
	expect("Redis down", "atodene_worker_ready 0\n")
}
