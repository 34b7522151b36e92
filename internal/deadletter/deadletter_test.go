package deadletter

import (
	"context"
	"errors"
	"fmt"
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

// ordersTakesCreatedOnly narrows the ORDERS stream of letters to orders.created.>, so that a
// test's other inbound subjects (the only ones a replay publishes to) are taken by the streams it
// creates, or by none.
func ordersTakesCreatedOnly(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	s, err := js.Stream(t.Context(), "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Subjects = []string{"orders.created.>"}
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
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
		ls, err := q.All(ctx, tc.f)
		var got []uint64
		for _, l := range ls {
			got = append(got, l.Seq)
		}
		if err != nil || len(got) != len(tc.want) || len(got) > 0 && got[0] != tc.want[0] {
			t.Errorf("All(%+v) = %v %v, want %v", tc.f, got, err, tc.want)
		}
		page, err := q.List(ctx, tc.f) // the bounded read, two reads when the filter needs no body
		got = nil
		for _, l := range page.Letters {
			got = append(got, l.Seq)
		}
		if err != nil || len(got) != len(tc.want) || len(got) > 0 && got[0] != tc.want[0] || page.Matching != len(tc.want) || page.Truncated ||
			len(page.Letters) > 0 && page.Letters[0].Order == "" {
			t.Errorf("List(%+v) = %v %+v %v, want %v", tc.f, got, page, err, tc.want)
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
		if _, err := q.All(ctx, f); !errors.As(err, &fe) {
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
	all, _ := q.All(ctx, Filter{})
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
	if left, _ := q.All(ctx, Filter{}); len(left) != 0 {
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
	if ls, _ := q.All(ctx, Filter{}); len(ls) != 2 {
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
	if ls, _ := q.All(ctx, Filter{}); len(ls) != 1 || ls[0].Seq != 2 {
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
	all, _ := q.All(ctx, Filter{})
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

// many returns n letters of order.created events of shops shop-0, shop-1 and shop-2 in turn,
// their events' sequences 1 to n.
func many(n int) []dlq.Letter {
	ls := make([]dlq.Letter, n)
	for i := range ls {
		shop := "shop-" + strconv.Itoa(i%3)
		ls[i] = letter(uint64(i+1), shop, "unknown-shop", small(shop, "O-"+strconv.Itoa(i+1)), 0)
	}
	return ls
}

// replays returns the replays in stream name, by message ID, and checks that each was published
// once and that the replays of a subject come in the order of their events.
func replays(t *testing.T, js jetstream.JetStream, name string) map[string]int {
	t.Helper()
	ids, last := map[string]int{}, map[string]uint64{}
	for _, m := range streamMsgs(t, js, name) {
		ids[m.Header.Get(jetstream.MsgIDHeader)]++
		published, _ := strconv.ParseUint(m.Header.Get(dlq.HeaderPublishedSequence), 10, 64)
		if published <= last[m.Subject] {
			t.Errorf("%s: the replay of event %d after that of event %d", m.Subject, published, last[m.Subject])
		}
		last[m.Subject] = published
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s published %d times", id, n)
		}
	}
	return ids
}

// TestReplayMany: more letters than the window of publishes awaiting their acknowledgement, of
// three subjects: each published once, in order within its subject, under its message ID, and
// removed; Pace called before each publish and Done after each replay (never at once: the
// counters are plain ints, which the race detector watches).
func TestReplayMany(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 3*replayWindow + 50
	q, js := letters(t, many(n)...)
	all, err := q.All(ctx, Filter{})
	if err != nil || len(all) != n {
		t.Fatalf("List: %d letters, %v", len(all), err)
	}
	paced, done := 0, 0
	res, err := q.Replay(ctx, all, ReplayOptions{MaxReplays: 3, Pace: func(context.Context) error { paced++; return nil }, Done: func() { done++ }})
	if err != nil || res.Replayed != n || res.Planned != n || paced != n || done != n {
		t.Fatalf("replay: replayed %d of %d, paced %d, done %d: %v", res.Replayed, res.Planned, paced, done, err)
	}
	for i, o := range res.Letters {
		if !o.Replayed || o.Refused || o.Seq != all[i].Seq {
			t.Errorf("outcome %d: %+v", i, o)
		}
	}
	if left, err := q.All(ctx, Filter{}); err != nil || len(left) != 0 {
		t.Errorf("%d letters left: %v", len(left), err)
	}
	ids := replays(t, js, "ORDERS")
	for _, l := range all {
		if id := "replay:DLQ:" + strconv.FormatUint(l.Seq, 10) + ":1"; ids[id] != 1 {
			t.Errorf("no replay %s", id)
		}
	}
	if len(ids) != n {
		t.Errorf("%d replays, want %d", len(ids), n)
	}
}

// TestReplayFailure: a replay stops at its first failure and says how many it replayed; a letter
// whose re-publish was not acknowledged is kept (one whose subject no stream takes, ones a full
// stream refuses), and every letter whose re-publish was acknowledged is removed, before the
// failure or after it, and published once.
func TestReplayFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ls := many(120)
	ls[40].Subject = "orders.nowhere.shop-1" // no stream takes it: no responders
	for i := 60; i < 70; i++ {
		ls[i].Subject = "orders.full.shop-" + strconv.Itoa(i%3)
	}
	q, js := letters(t, ls...)
	ordersTakesCreatedOnly(t, js)
	// A stream that takes two messages and refuses the others.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FULL", Subjects: []string{"orders.full.>"}, MaxMsgs: 2,
		Discard: jetstream.DiscardNew, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	all, _ := q.All(ctx, Filter{})
	done := 0
	res, replayErr := q.Replay(ctx, all, ReplayOptions{MaxReplays: 3, Done: func() { done++ }})
	want := fmt.Sprintf("after %d replayed: re-publishing dead letter 41 to orders.nowhere.shop-1: ", res.Replayed)
	if replayErr == nil || !strings.HasPrefix(replayErr.Error(), want) {
		t.Fatalf("err = %v, want it to start %q", replayErr, want)
	}
	if done != res.Replayed {
		t.Errorf("done %d times, replayed %d", done, res.Replayed)
	}
	left, err := q.All(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	kept := map[uint64]bool{}
	for _, l := range left {
		kept[l.Seq] = true
	}
	ids := replays(t, js, "ORDERS")
	for id := range replays(t, js, "FULL") {
		ids[id]++
	}
	replayed := 0
	for i, o := range res.Letters {
		seq := all[i].Seq
		published := ids["replay:DLQ:"+strconv.FormatUint(seq, 10)+":1"] == 1
		switch {
		case o.Replayed:
			replayed++
			if kept[seq] || !published {
				t.Errorf("letter %d replayed, but kept %v, published %v", seq, kept[seq], published)
			}
		case !kept[seq] || published:
			t.Errorf("letter %d not replayed, but kept %v, published %v", seq, kept[seq], published)
		}
		if i < 40 && !o.Replayed {
			t.Errorf("letter %d, published before the failure, not replayed", seq)
		}
	}
	if !kept[41] || replayed != res.Replayed || len(left)+res.Replayed != len(all) {
		t.Errorf("letter 41 kept %v; replayed %d (%d counted), %d left of %d", kept[41], replayed, res.Replayed, len(left), len(all))
	}
	refused := 0
	for i := 60; i < 70; i++ {
		if kept[all[i].Seq] {
			refused++
		}
	}
	if refused < 8 {
		t.Errorf("%d of the letters for the full stream kept, want 8 at least (it takes 2)", refused)
	}
	t.Logf("%v; %d letters left", replayErr, len(left))
}

// TestReplayPaceFails: a rate limit that fails stops the replay before the letter it paced:
// the letters published before it are replayed and removed, the others kept.
func TestReplayPaceFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, js := letters(t, many(50)...)
	all, _ := q.All(ctx, Filter{})
	paced, done := 0, 0
	stop := errors.New("rate limit gone")
	res, err := q.Replay(ctx, all, ReplayOptions{MaxReplays: 3, Done: func() { done++ }, Pace: func(context.Context) error {
		if paced++; paced == 31 {
			return stop
		}
		return nil
	}})
	if !errors.Is(err, stop) || err.Error() != "after 30 replayed: rate limit gone" || res.Replayed != 30 || done != 30 || paced != 31 {
		t.Fatalf("replayed %d, done %d, paced %d: %v", res.Replayed, done, paced, err)
	}
	for i, o := range res.Letters {
		if o.Replayed != (i < 30) {
			t.Errorf("letter %d replayed %v", o.Seq, o.Replayed)
		}
	}
	if left, _ := q.All(ctx, Filter{}); len(left) != 20 || left[0].Seq != 31 {
		t.Errorf("%d letters left", len(left))
	}
	if ids := replays(t, js, "ORDERS"); len(ids) != 30 {
		t.Errorf("%d replays published, want 30", len(ids))
	}
}

// TestReplayKeepsTheLettersBetween: the letters of a subject are removed in batches (a purge of
// the subject's first messages where they are all replayed), but never a letter of the subject
// that was not replayed: one refused, one not asked for, before and between those replayed.
func TestReplayKeepsTheLettersBetween(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ls := make([]dlq.Letter, 100)
	for i := range ls {
		replays := 0
		if i == 60 {
			replays = 3
		}
		ls[i] = letter(uint64(i+1), "demo", "unknown-shop", small("demo", "D-"+strconv.Itoa(i+1)), replays)
	}
	q, js := letters(t, ls...)
	all, _ := q.All(ctx, Filter{})
	var asked []Letter
	for _, l := range all {
		if l.Seq != 1 && l.Seq != 80 { // the first letter of the subject, and one further on
			asked = append(asked, l)
		}
	}
	done := 0
	for _, part := range [][]Letter{asked[:40], asked[40:]} { // the second starts behind letter 1 still
		res, err := q.Replay(ctx, part, ReplayOptions{MaxReplays: 3, Done: func() { done++ }})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Letters {
			if o.Replayed == (o.Seq == 61) {
				t.Errorf("letter %d: %+v", o.Seq, o)
			}
		}
	}
	left, _ := q.All(ctx, Filter{})
	if len(left) != 3 || left[0].Seq != 1 || left[1].Seq != 61 || left[2].Seq != 80 || done != 97 {
		var seqs []uint64
		for _, l := range left {
			seqs = append(seqs, l.Seq)
		}
		t.Errorf("left %v, done %d times; want 1, 61 and 80 left, 97 done", seqs, done)
	}
	if ids := replays(t, js, "ORDERS"); len(ids) != 97 {
		t.Errorf("%d replays published, want 97", len(ids))
	}
	// Without letter 1, the letters before 61 head the subject: the rest go, the refused one stays.
	if _, err := q.Purge(ctx, left[:1], nil); err != nil {
		t.Fatal(err)
	}
	extra := dlq.NewWriter(js)
	for i := 101; i <= 130; i++ {
		if err := extra.Write(ctx, letter(uint64(i), "demo", "unknown-shop", small("demo", "D-"+strconv.Itoa(i)), 0)); err != nil {
			t.Fatal(err)
		}
	}
	all, _ = q.All(ctx, Filter{})
	if res, err := q.Replay(ctx, all, ReplayOptions{MaxReplays: 3}); err != nil || res.Replayed != 31 || res.Refused != 1 {
		t.Errorf("the last replay: %+v %v", res, err)
	}
	if left, _ := q.All(ctx, Filter{}); len(left) != 1 || left[0].Seq != 61 {
		t.Errorf("left: %+v", left)
	}
}
