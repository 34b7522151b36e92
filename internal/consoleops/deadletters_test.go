package consoleops

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/console"
	"github.com/atodene-worker/atodene-worker/internal/deadletter"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

var failedAt = time.Date(2026, 11, 27, 0, 39, 49, 0, time.UTC)

// orderData is an order.created data object of shop, billed billed (1: invalid, the worker wants
// the items' sum).
func orderData(shop, order, billed string) string {
	return `{"shop_id":"` + shop + `","order_id":"` + order + `","ordered_at":"2026-11-26T10:14:03+09:00","buyer":{"name":"加藤 太郎","name_kana":"カトウ タロウ","zip":"150-0001","address":"東京都渋谷区神宮前1-1-1","phone":"03-1234-5678","email":"taro@example.jp"},"items":[{"name":"緑茶","unit_price":2400,"quantity":1}],"shipping_fee":550,"billed_amount":` + billed + `}`
}

// letter is the dead letter of order.created event seq of ORDERS, with data, failed for reason at
// failedAt plus seq minutes, replayed replays times already.
func letter(seq uint64, shop, reason, data string, replays int) dlq.Letter {
	body := `{"specversion":"1.0","id":"e-` + strconv.FormatUint(seq, 10) + `","source":"mall-importer/test","type":"order.created","data":` + data + `}`
	l := dlq.Letter{Subject: "orders.created." + shop, Stream: "ORDERS", Sequence: seq, Reason: reason, Body: []byte(body),
		Err: errors.New("billed_amount: must be the sum"), Attempts: 1, FailedAt: failedAt.Add(time.Duration(seq) * time.Minute), Published: seq}
	if replays > 0 {
		l.ReplayCount = strconv.Itoa(replays)
	}
	return l
}

// write writes the letters into DLQ with the worker's own writer (its Dlq-* headers).
func (e *env) write(ls ...dlq.Letter) {
	e.t.Helper()
	w := dlq.NewWriter(e.js)
	for _, l := range ls {
		if err := w.Write(context.Background(), l); err != nil {
			e.t.Fatal(err)
		}
	}
}

// TestDeadLetters: the list with counts per reason and no bodies, a letter with its body; replay
// (dry run, then for real) and purge by sequence, each outcome in the order given, a sequence
// that holds no letter refused; an edit published in place of its letter with the console's
// source, and the edits refused.
func TestDeadLetters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	poll := dlq.Letter{Subject: "atodene.poll.due.demo", Stream: "ATODENE_POLLS", Sequence: 3, Reason: "poll-deadline",
		Body: []byte(`{"shop":"demo","order_id":"P-1"}`), Err: errors.New("still under review"), Attempts: 1, FailedAt: failedAt}
	e.write(
		letter(7, "demo", "invalid", orderData("demo", "BAD-1", "1"), 0), // DLQ 1
		poll, // DLQ 2
		letter(8, "other", "invalid", orderData("other", "BAD-2", "1"), 0),       // DLQ 3
		letter(9, "demo", "unknown-shop", orderData("demo", "BAD-3", "2950"), 3), // DLQ 4
	)

	all, counts, err := e.ops.List(ctx, console.LetterFilter{})
	if err != nil || len(all) != 4 {
		t.Fatalf("List: %+v %v", all, err)
	}
	if counts["invalid"] != 2 || counts["poll-deadline"] != 1 || counts["unknown-shop"] != 1 || counts["outcome-unknown"] != 0 {
		t.Errorf("counts: %v", counts)
	}
	want := console.Letter{Seq: 1, Reason: "invalid", Shop: "demo", Order: "BAD-1", Subject: "orders.created.demo",
		Error: "billed_amount: must be the sum", At: failedAt.Add(7 * time.Minute)}
	if l := all[0]; l.Seq != want.Seq || l.Reason != want.Reason || l.Shop != want.Shop || l.Order != want.Order || l.Subject != want.Subject ||
		l.Error != want.Error || !l.At.Equal(want.At) || l.Body != nil {
		t.Errorf("letter 1: %+v, want %+v", l, want)
	}
	if l := all[1]; l.Shop != "demo" || l.Order != "P-1" || l.Reason != "poll-deadline" || l.Body != nil {
		t.Errorf("the poll's letter: %+v", l)
	}
	for _, l := range all {
		if l.Body != nil {
			t.Errorf("letter %d listed with its body", l.Seq)
		}
	}
	demo, demoCounts, err := e.ops.List(ctx, console.LetterFilter{Reason: "invalid", Shop: "demo"})
	if err != nil || len(demo) != 1 || demo[0].Seq != 1 || demoCounts["invalid"] != 1 || demoCounts["poll-deadline"] != 1 || demoCounts["unknown-shop"] != 1 {
		t.Errorf("List of shop demo's invalid: %+v %v %v", demo, demoCounts, err)
	}
	late, _, err := e.ops.List(ctx, console.LetterFilter{Since: failedAt.Add(8 * time.Minute), Until: failedAt.Add(9 * time.Minute)})
	if err != nil || len(late) != 1 || late[0].Seq != 3 {
		t.Errorf("List of a time window: %+v %v", late, err)
	}
	var fe *deadletter.FilterError
	if _, _, err := e.ops.List(ctx, console.LetterFilter{Reason: "bored"}); !errors.As(err, &fe) || fe.Field != "reason" {
		t.Errorf("a reason that is none: %v", err)
	}

	got, err := e.ops.Get(ctx, 1)
	if err != nil || got.Seq != 1 || got.Order != "BAD-1" || string(got.Body) != string(letter(7, "demo", "", orderData("demo", "BAD-1", "1"), 0).Body) {
		t.Errorf("Get: %+v %v", got, err)
	}
	if _, err := e.ops.Get(ctx, 99); !errors.Is(err, deadletter.ErrNotFound) || err.Error() != "no dead letter 99 in stream DLQ" {
		t.Errorf("Get of a sequence without letter: %v", err)
	}

	// Replay: a dry run changes nothing.
	seqs := []uint64{3, 99, 4}
	dry, err := e.ops.Replay(ctx, "alice", seqs, true)
	if err != nil || len(dry) != 3 {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	if !dry[0].Published || dry[0].Shop != "other" || dry[0].Order != "BAD-2" || dry[0].Reason != "would be replayed to orders.created.other (dry run: nothing published)" {
		t.Errorf("dry run, letter 3: %+v", dry[0])
	}
	if dry[1].Published || dry[1].Reason != "no dead letter 99 in stream DLQ" {
		t.Errorf("dry run, sequence 99: %+v", dry[1])
	}
	if dry[2].Published || dry[2].Order != "BAD-3" || dry[2].Reason != "dead letter 4 was replayed 3 times already (at most 3): purge it, or allow more replays" {
		t.Errorf("dry run, letter 4: %+v", dry[2])
	}
	if e.msgs(e.orders) != 0 || e.msgs(e.dlq) != 4 {
		t.Fatalf("the dry run changed the streams: ORDERS %d, DLQ %d", e.msgs(e.orders), e.msgs(e.dlq))
	}
	done, err := e.ops.Replay(ctx, "alice", seqs, false)
	if err != nil || !done[0].Published || done[0].Reason != "replayed to orders.created.other; dead letter 3 removed" ||
		done[1].Published || done[2].Published || done[2].Reason != dry[2].Reason {
		t.Fatalf("replay: %+v %v", done, err)
	}
	if m, err := e.orders.GetMsg(ctx, 1); err != nil || m.Subject != "orders.created.other" || m.Header.Get(dlq.HeaderReplayCount) != "1" || m.Header.Get(dlq.HeaderPublishedSequence) != "8" {
		t.Errorf("the replay: %+v %v", m, err)
	}
	again, err := e.ops.Replay(ctx, "alice", []uint64{3}, false)
	if err != nil || len(again) != 1 || !again[0].Published || again[0].MsgID != "replay:DLQ:3:1" ||
		again[0].Reason != "duplicate: dead letter 3 was replayed already and removed; its replay stands: stream ORDERS, sequence 1 (nothing published again)" {
		t.Errorf("a letter replayed already: %+v %v", again, err)
	}

	// Edit: the refusals keep the letter; the edit is published with the console's source.
	refusals := []struct {
		name string
		seq  uint64
		body string
		want string
	}{
		{"still invalid", 1, orderData("demo", "BAD-1", "3"), "event rejected: billed_amount: "},
		{"blank", 1, " \n", "dead letter 1: the corrected event is empty: nothing published; dead letter 1 is kept"},
		{"not JSON", 1, "{", "event rejected: body: is not valid JSON: unexpected end of JSON input: nothing published"},
		{"a poll", 2, orderData("demo", "BAD-1", "2950"), `dead letter 2 (of "atodene.poll.due.demo") is not an inbound event`},
		// Replayed before (not edited): gone, never "kept".
		{"gone", 3, orderData("other", "BAD-2", "2950"), "no dead letter 3 in stream DLQ: nothing published; the letter is gone (replayed, edited or purged before)"},
	}
	for _, r := range refusals {
		o, err := e.ops.EditReplay(ctx, "alice", r.seq, []byte(r.body))
		if err != nil || o.Published || !strings.HasPrefix(o.Reason, r.want) || (r.name == "gone") == strings.Contains(o.Reason, "is kept") {
			t.Errorf("%s: %+v %v, want a reason starting %q", r.name, o, err, r.want)
		}
	}
	if o, err := e.ops.EditReplay(ctx, "al ice", 1, []byte(orderData("demo", "BAD-1", "2950"))); err != nil || o.Published || !strings.HasPrefix(o.Reason, `operator "al ice"`) {
		t.Errorf("an operator that is none: %+v %v", o, err)
	}
	if e.msgs(e.orders) != 1 || e.msgs(e.dlq) != 3 {
		t.Fatalf("the refused edits changed the streams: ORDERS %d, DLQ %d", e.msgs(e.orders), e.msgs(e.dlq))
	}
	// The data object alone: the event gets the console's source and the clock's time.
	o, err := e.ops.EditReplay(ctx, "alice", 1, []byte(orderData("demo", "BAD-1", "2950")))
	if err != nil || !o.Published || o.Shop != "demo" || o.Order != "BAD-1" || o.MsgID != "edit:DLQ:1:1" ||
		!strings.HasPrefix(o.Reason, "published order.created ") || !strings.HasSuffix(o.Reason, "to orders.created.demo in place of dead letter 1: stream ORDERS, sequence 2; dead letter 1 removed") {
		t.Fatalf("edit: %+v %v", o, err)
	}
	m, err := e.orders.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	env, err := events.DecodeEnvelope(m.Subject, m.Data)
	if err != nil || env.Source != "console/operator/alice" || env.Time != e.clock.Now().Format(time.RFC3339) || m.Header.Get(dlq.HeaderEditedFrom) != "1" ||
		m.Header.Get(dlq.HeaderPublishedSequence) != "7" {
		t.Errorf("the edit's event: %s %+v %v", m.Data, m.Header, err)
	}

	// Purge: in the order given, a sequence twice answered twice, one gone refused.
	purged, err := e.ops.Purge(ctx, "alice", []uint64{4, 1, 2, 4})
	if err != nil || len(purged) != 4 {
		t.Fatalf("purge: %+v %v", purged, err)
	}
	if !purged[0].Published || purged[0].Reason != "dead letter 4 purged" || purged[0].Order != "BAD-3" || purged[1].Published ||
		purged[1].Reason != "no dead letter 1 in stream DLQ" || !purged[2].Published || purged[2].Order != "P-1" || purged[3] != purged[0] {
		t.Errorf("purge: %+v", purged)
	}
	if left, _, err := e.ops.List(ctx, console.LetterFilter{}); err != nil || len(left) != 0 {
		t.Errorf("letters left: %+v %v", left, err)
	}
}

// TestDeadLetterActionsAreRecorded: each letter replayed or purged that names an order gets an
// entry in the order's history with the operator, and no personal data; a dry run, none; a
// sequence given twice, one.
func TestDeadLetterActionsAreRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.put("demo", "BAD-1", orderstate.State{Status: orderstate.StatusNG})
	e.write(
		letter(7, "demo", "invalid", orderData("demo", "BAD-1", "1"), 0), // DLQ 1: an order with state
		letter(8, "demo", "invalid", orderData("demo", "BAD-2", "1"), 0), // DLQ 2: one without
	)
	before, _ := e.store.History(ctx, "demo", "BAD-1")
	if _, err := e.ops.Replay(ctx, "alice", []uint64{1}, true); err != nil {
		t.Fatal(err)
	}
	if h, _ := e.store.History(ctx, "demo", "BAD-1"); len(h) != len(before) {
		t.Errorf("a dry run wrote history: %+v", h)
	}
	if out, err := e.ops.Replay(ctx, "alice", []uint64{1, 1}, false); err != nil || !out[0].Published || strings.Contains(out[0].Reason, "could not") {
		t.Fatalf("replay: %+v %v", out, err)
	}
	h, _ := e.store.History(ctx, "demo", "BAD-1")
	if len(h) != len(before)+1 {
		t.Fatalf("history of BAD-1 after the replay: %+v", h)
	}
	if last := h[len(h)-1]; last.Type != ReplayedType || last.Operator != "alice" || last.Source != "console/operator/alice" ||
		!strings.Contains(last.Did, "dead letter 1") || !strings.Contains(last.Did, "replayed") || last.Status != orderstate.StatusNG {
		t.Errorf("replay entry %+v", last)
	}
	if out, err := e.ops.Purge(ctx, "bob", []uint64{2}); err != nil || !out[0].Published {
		t.Fatalf("purge: %+v %v", out, err)
	}
	h, _ = e.store.History(ctx, "demo", "BAD-2")
	if len(h) != 1 || h[0].Type != PurgedType || h[0].Operator != "bob" || !strings.Contains(h[0].Did, "dead letter 2") || !strings.Contains(h[0].Did, "purged") {
		t.Errorf("history of BAD-2 after the purge: %+v", h)
	}
	for _, all := range [][]orderstate.Entry{h} {
		for _, en := range all {
			if s := en.Did + en.Source + en.Operator; strings.Contains(s, "加藤") || strings.Contains(s, "03-1234-5678") {
				t.Errorf("entry %+v holds personal data", en)
			}
		}
	}
}

// TestListCapped: List returns the newest MaxListed letters that match, without bodies; the
// counts count them all.
func TestListCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ls := make([]dlq.Letter, MaxListed+2)
	for i := range ls {
		ls[i] = letter(uint64(i+1), "demo", "invalid", orderData("demo", "C-"+strconv.Itoa(i+1), "1"), 0)
	}
	e.write(ls...)
	got, counts, err := e.ops.List(context.Background(), console.LetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxListed || got[0].Seq != 3 || got[0].Order != "C-3" || got[len(got)-1].Seq != MaxListed+2 || counts["invalid"] != MaxListed+2 {
		t.Errorf("%d letters, %d to %d, counts %v", len(got), got[0].Seq, got[len(got)-1].Seq, counts)
	}
	for _, l := range got {
		if l.Body != nil {
			t.Fatalf("letter %d listed with its body", l.Seq)
		}
	}
}

// TestReplaySentTwice: the second copy of a replay's confirmation (a double click, the browser's
// resend), sent after the first or at the same time, finds the letter removed by the first: it
// answers a duplicate, published, with the first copy's message ID and the letter's order, and
// publishes nothing again (docs/console.md); a dry run of it says it was replayed, publishing
// nothing. A replay of the letter of the same sequence from before the DLQ stream was created
// again is of another letter: no duplicate (the letter's sequence alone decides nothing).
func TestReplaySentTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.write(letter(7, "demo", "invalid", orderData("demo", "BAD-1", "2950"), 0)) // DLQ 1
	first, err := e.ops.Replay(ctx, "alice", []uint64{1}, false)
	if err != nil || len(first) != 1 || !first[0].Published || first[0].Order != "BAD-1" {
		t.Fatalf("the first copy: %+v %v", first, err)
	}
	want := console.Outcome{Shop: "demo", Order: "BAD-1", Published: true, MsgID: "replay:DLQ:1:1",
		Reason: "duplicate: dead letter 1 was replayed already and removed; its replay stands: stream ORDERS, sequence 1 (nothing published again)"}
	second, err := e.ops.Replay(ctx, "alice", []uint64{1, 1}, false)
	if err != nil || len(second) != 2 || second[0] != want || second[1] != want {
		t.Errorf("the second copy: %+v %v\nwant %+v", second, err, want)
	}
	dry, err := e.ops.Replay(ctx, "alice", []uint64{1}, true)
	if err != nil || len(dry) != 1 || dry[0].Published || dry[0].MsgID != "replay:DLQ:1:1" ||
		dry[0].Reason != "dead letter 1 was replayed already and removed (stream ORDERS, sequence 1): nothing would be published" {
		t.Errorf("a dry run of it: %+v %v", dry, err)
	}
	if n := e.msgs(e.orders); n != 1 {
		t.Errorf("%d events in ORDERS, want 1", n)
	}

	// Two copies at once: one publishes, the other is a duplicate or finds the letter gone.
	e.write(letter(8, "demo", "invalid", orderData("demo", "BAD-2", "2950"), 0)) // DLQ 2
	var wg sync.WaitGroup
	both := make([][]console.Outcome, 2)
	errs := make([]error, 2)
	for i := range both {
		wg.Add(1)
		go func() {
			defer wg.Done()
			both[i], errs[i] = e.ops.Replay(ctx, "alice", []uint64{2}, false)
		}()
	}
	wg.Wait()
	for i := range both {
		if errs[i] != nil || len(both[i]) != 1 || !both[i][0].Published || both[i][0].Order != "BAD-2" {
			t.Errorf("copy %d sent at once: %+v %v", i, both[i], errs[i])
		}
	}
	if n := e.msgs(e.orders); n != 2 {
		t.Errorf("%d events in ORDERS, want 2", n)
	}

	// The DLQ stream created again: its letter 1 is another letter than the one replayed.
	if err := e.js.DeleteStream(ctx, "DLQ"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "DLQ", Subjects: []string{"dlq.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	other, err := e.ops.Replay(ctx, "alice", []uint64{1}, false)
	if err != nil || len(other) != 1 || other[0].Published || other[0].Reason != "no dead letter 1 in stream DLQ" {
		t.Errorf("sequence 1 of the DLQ stream created again: %+v %v", other, err)
	}
	if n := e.msgs(e.orders); n != 2 {
		t.Errorf("%d events in ORDERS, want 2", n)
	}
}

// TestEditSentTwice: the second copy of an edit's confirmation (a double click, the browser's
// resend) finds the letter removed by the first: it answers a duplicate, published, with the first
// copy's message ID, and publishes nothing again; an edit of the letter for another order is no
// such duplicate (the letter's sequence alone decides nothing).
func TestEditSentTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.write(letter(7, "demo", "invalid", orderData("demo", "BAD-1", "1"), 0)) // DLQ 1
	fixed := []byte(orderData("demo", "BAD-1", "2950"))
	first, err := e.ops.EditReplay(ctx, "alice", 1, fixed)
	if err != nil || !first.Published || first.MsgID != "edit:DLQ:1:1" {
		t.Fatalf("the first copy: %+v %v", first, err)
	}
	second, err := e.ops.EditReplay(ctx, "alice", 1, fixed)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Published || second.MsgID != first.MsgID || second.Shop != "demo" || second.Order != "BAD-1" ||
		second.Reason != "duplicate: dead letter 1 was edited already and removed; its edit stands: stream ORDERS, sequence 1 (nothing published again)" {
		t.Errorf("the second copy: %+v", second)
	}
	other, err := e.ops.EditReplay(ctx, "alice", 1, []byte(orderData("demo", "BAD-9", "2950")))
	if err != nil || other.Published || strings.Contains(other.Reason, "is kept") ||
		other.Reason != "no dead letter 1 in stream DLQ: nothing published; the letter is gone (replayed, edited or purged before)" {
		t.Errorf("an edit of the gone letter for another order: %+v %v", other, err)
	}
	if n := e.msgs(e.orders); n != 1 {
		t.Errorf("%d events in ORDERS, want 1", n)
	}
}
