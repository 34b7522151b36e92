package deadletter

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/goleak"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestMain fails the package's tests if any goroutine outlives them: the NATS clients and servers the tests start are stopped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var failedAt = time.Date(2026, 11, 27, 0, 39, 49, 0, time.UTC)

// letters starts a JetStream server with the worker's ORDERS and DLQ streams and writes the
// letters into DLQ with the worker's own writer.
func letters(t *testing.T, ls ...dlq.Letter) (*Queue, jetstream.JetStream) {
	t.Helper()
	_, js := testenv.JetStream(t)
	for _, name := range []string{"ORDERS", "DLQ"} {
		subject := "orders.>"
		if name == "DLQ" {
			subject = "dlq.>"
		}
		if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: name, Subjects: []string{subject},
			Duplicates: 2 * time.Minute, Storage: jetstream.MemoryStorage}); err != nil {
			t.Fatal(err)
		}
	}
	w := dlq.NewWriter(js)
	for _, l := range ls {
		if err := w.Write(t.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	return New(js, ""), js
}

// letter is the letter of order.created event seq of shop, with data, failed for reason at
// failedAt plus seq minutes, replayed replays times already.
func letter(seq uint64, shop, reason, data string, replays int) dlq.Letter {
	body := `{"specversion":"1.0","id":"e-` + strconv.FormatUint(seq, 10) + `","source":"mall-importer/test","type":"order.created","data":` + data + `}`
	l := dlq.Letter{Subject: "orders.created." + shop, Stream: "ORDERS", Sequence: seq, Reason: reason, Body: []byte(body),
		Err: errors.New("it failed"), Attempts: 1, FailedAt: failedAt.Add(time.Duration(seq) * time.Minute), Published: seq}
	if replays > 0 {
		l.ReplayCount = strconv.Itoa(replays)
	}
	return l
}

func small(shop, order string) string { return `{"shop_id":"` + shop + `","order_id":"` + order + `"}` }

// orderData is a valid order.created data object of shop demo, billed billed.
func orderData(order, billed string) string {
	return `{"shop_id":"demo","order_id":"` + order + `","ordered_at":"2026-11-26T10:14:03+09:00","buyer":{"name":"加藤 太郎","name_kana":"カトウ タロウ","zip":"150-0001","address":"東京都渋谷区神宮前1-1-1","phone":"03-1234-5678","email":"taro@example.jp"},"items":[{"name":"緑茶","unit_price":2400,"quantity":1}],"shipping_fee":550,"billed_amount":` + billed + `}`
}

// TestListAndCounts: the filters, the counts per reason, a letter shown, and filters that no
// letter can match.
func TestListAndCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, _ := letters(t,
		letter(1, "shop-b", "unknown-shop", small("shop-b", "B-1"), 0),
		letter(2, "shop-b", "unknown-shop", small("shop-b", "B-2"), 0),
		letter(3, "demo", "invalid", small("demo", "D-3"), 1))
	for _, tc := range []struct {
		f    Filter
		want []uint64
	}{
		{Filter{}, []uint64{1, 2, 3}},
		{Filter{Reason: "unknown-shop"}, []uint64{1, 2}},
		{Filter{Shop: "demo"}, []uint64{3}},
		{Filter{Shop: "shop-b", Order: "B-2"}, []uint64{2}},
		{Filter{Subject: "orders.*.demo"}, []uint64{3}},
		{Filter{Since: failedAt.Add(2 * time.Minute)}, []uint64{2, 3}},
		{Filter{Until: failedAt.Add(2 * time.Minute)}, []uint64{1}},
	} {
		ls, err := q.List(ctx, tc.f)
		var got []uint64
		for _, l := range ls {
			got = append(got, l.Seq)
		}
		if err != nil || len(got) != len(tc.want) || len(got) > 0 && got[0] != tc.want[0] {
			t.Errorf("List(%+v) = %v %v, want %v", tc.f, got, err, tc.want)
		}
	}
	counts, err := q.Counts(ctx, Filter{Reason: "invalid", Shop: "shop-b"})
	if err != nil || counts["unknown-shop"] != 2 || counts["invalid"] != 0 || len(counts) != len(handlers.Reasons()) {
		t.Errorf("Counts: %v %v", counts, err)
	}
	all, err := q.ReasonCounts(ctx) // headers only, no filter
	if err != nil || all["unknown-shop"] != 2 || all["invalid"] != 1 || all["exhausted"] != 0 || len(all) != len(handlers.Reasons()) {
		t.Errorf("ReasonCounts: %v %v", all, err)
	}
	shown, err := q.Get(ctx, 3)
	if err != nil || shown.Reason != "invalid" || shown.ReplayCount != 1 || shown.Order != "D-3" || shown.StoredSubject != "dlq.orders.created.demo" ||
		!strings.Contains(string(shown.JSONBody), `"order_id":"D-3"`) || shown.Headers[dlq.HeaderReason][0] != "invalid" {
		t.Errorf("Get: %+v %v", shown, err)
	}
	if _, err := q.Get(ctx, 9); !errors.Is(err, ErrNotFound) || err.Error() != "no dead letter 9 in stream DLQ" {
		t.Errorf("a missing letter: %v", err)
	}
	for _, f := range []Filter{{Reason: "unknown_shop"}, {Subject: "dlq.orders.>"}, {Subject: "orders..x"}, {Subject: "orders.>.x"},
		{Since: failedAt, Until: failedAt}} {
		var fe *FilterError
		if _, err := q.List(ctx, f); !errors.As(err, &fe) {
			t.Errorf("List(%+v): %v, want a *FilterError", f, err)
		}
	}
}

// TestReplayAndPurge: a dry run plans and changes nothing; a replay re-publishes and removes the
// letters under the limit and refuses the others; a purge deletes.
func TestReplayAndPurge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, js := letters(t,
		letter(1, "shop-b", "unknown-shop", small("shop-b", "B-1"), 0),
		letter(2, "demo", "invalid", small("demo", "D-2"), 3),
		letter(3, "demo", "invalid", small("demo", "D-3"), 1))
	all, _ := q.List(ctx, Filter{})
	plan, err := q.Replay(ctx, all, ReplayOptions{MaxReplays: 3, DryRun: true})
	if err != nil || plan.Planned != 2 || plan.Refused != 1 || plan.Replayed != 0 || len(plan.Groups) != 2 || plan.Groups[0] != (Group{"invalid", "orders.created.demo", 1}) {
		t.Errorf("dry run: %+v %v", plan, err)
	}
	paced, done := 0, 0
	res, err := q.Replay(ctx, all, ReplayOptions{MaxReplays: 3, Pace: func(context.Context) error { paced++; return nil }, Done: func() { done++ }})
	if err != nil || res.Replayed != 2 || res.Refused != 1 || res.RefusedLetters[0].Seq != 2 || paced != 2 || done != 2 || res.AllRefused() {
		t.Errorf("replay: %+v %v", res, err)
	}
	if o := res.Letters; len(o) != 3 || !o[0].Replayed || o[1].Replayed || !o[1].Refused || !strings.Contains(o[1].Reason, "replayed 3 times already") || !o[2].Replayed {
		t.Errorf("outcomes: %+v", o)
	}
	orders, _ := js.Stream(ctx, "ORDERS")
	m, err := orders.GetMsg(ctx, 2)
	if err != nil || m.Subject != "orders.created.demo" || m.Header.Get(dlq.HeaderReplayCount) != "2" || m.Header.Get(jetstream.MsgIDHeader) != "replay:DLQ:3:2" ||
		m.Header.Get(dlq.HeaderPublishedSequence) != "3" {
		t.Errorf("the replay of letter 3: %+v %v", m, err)
	}
	left, missing, err := q.Letters(ctx, []uint64{3, 2, 1})
	if err != nil || len(left) != 1 || left[0].Seq != 2 || len(missing) != 2 || missing[0] != 3 {
		t.Fatalf("left: %+v, missing %v, %v", left, missing, err)
	}
	if res, _ := q.Replay(ctx, left, ReplayOptions{MaxReplays: 3}); !res.AllRefused() {
		t.Errorf("a replay of refused letters only: %+v", res)
	}
	if n, err := q.Purge(ctx, left, nil); err != nil || n != 1 {
		t.Errorf("purge: %d %v", n, err)
	}
	if left, _ := q.List(ctx, Filter{}); len(left) != 0 {
		t.Errorf("left after the purge: %+v", left)
	}
}

// TestEdit: a corrected event published in place of its letter, as a replay of it that says so,
// and the letter removed; the guards keep the letter.
func TestEdit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	poll := dlq.Letter{Subject: "atodene.poll.due.demo", Stream: "ATODENE_POLLS", Sequence: 3, Reason: "poll-deadline",
		Body: []byte(`{"shop":"demo","order_id":"P-1"}`), Err: errors.New("still under review"), Attempts: 1, FailedAt: failedAt}
	q, js := letters(t, letter(7, "demo", "invalid", orderData("BAD-1", "1"), 0), poll)
	fixed := []byte(`{"specversion":"1.0","id":"e-7","source":"mall-importer/test","type":"order.created","data":` + orderData("BAD-1", "2950") + `}`)
	still := []byte(`{"specversion":"1.0","id":"e-7","source":"mall-importer/test","type":"order.created","data":` + orderData("BAD-1", "3") + `}`)

	var ie *events.InvalidError
	if _, err := q.Edit(ctx, 1, still, EditOptions{}); !errors.As(err, &ie) || !strings.Contains(ie.Problems[0].Field, "billed_amount") {
		t.Errorf("an edit still invalid: %v", err)
	}
	if _, err := q.Edit(ctx, 1, []byte(" \n"), EditOptions{}); !errors.Is(err, ErrEmpty) {
		t.Errorf("an empty edit: %v", err)
	}
	if _, err := q.Edit(ctx, 2, fixed, EditOptions{}); !errors.Is(err, ErrNotEditable) {
		t.Errorf("a poll's letter: %v", err)
	}
	if _, err := q.Edit(ctx, 9, fixed, EditOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing letter: %v", err)
	}
	dry, err := q.Edit(ctx, 1, fixed, EditOptions{DryRun: true})
	if err != nil || !dry.DryRun || dry.Removed || len(dry.Event) == 0 || dry.ID != "e-7" {
		t.Errorf("dry run: %+v %v", dry, err)
	}
	if ls, _ := q.List(ctx, Filter{}); len(ls) != 2 {
		t.Fatalf("the guards removed a letter: %d left", len(ls))
	}

	res, err := q.Edit(ctx, 1, fixed, EditOptions{})
	if err != nil || !res.Removed || res.Sequence != 1 || res.MsgID != "edit:DLQ:1:1" || res.Subject != "orders.created.demo" || res.Source != "mall-importer/test" {
		t.Fatalf("edit: %+v %v", res, err)
	}
	orders, _ := js.Stream(ctx, "ORDERS")
	m, err := orders.GetMsg(ctx, 1)
	if err != nil || m.Header.Get(dlq.HeaderEditedFrom) != "1" || m.Header.Get(dlq.HeaderReplayCount) != "1" || m.Header.Get(dlq.HeaderPublishedSequence) != "7" {
		t.Errorf("the edit's message: %+v %v", m, err)
	}
	if ls, _ := q.List(ctx, Filter{}); len(ls) != 1 || ls[0].Seq != 2 {
		t.Errorf("letters left: %+v", ls)
	}
}

// TestReplayCarriesTheTrace: a letter written within a traced message's span carries its trace
// context, and its replay carries it on to the worker.
func TestReplayCarriesTheTrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, js := letters(t)
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(ctx) }()
	spanCtx, span := tp.Tracer("test").Start(ctx, "process orders.created.demo")
	err := dlq.NewWriter(js).Write(spanCtx, letter(1, "demo", "invalid", small("demo", "D-1"), 0))
	span.End()
	if err != nil {
		t.Fatal(err)
	}
	all, _ := q.List(ctx, Filter{})
	if res, err := q.Replay(ctx, all, ReplayOptions{MaxReplays: 3}); err != nil || res.Replayed != 1 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	orders, _ := js.Stream(ctx, "ORDERS")
	m, err := orders.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := span.SpanContext().TraceID().String()
	if got := m.Header.Get("traceparent"); !strings.Contains(got, "-"+want+"-") {
		t.Errorf("the replay's traceparent %q, want one of trace %s", got, want)
	}
}
