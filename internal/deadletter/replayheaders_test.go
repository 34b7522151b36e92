package deadletter

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
)

// TestReplayOfHeadersReadsEachBodyBack: a replay given the letters without their bodies
// (AllHeaders, the selection of dlq replay) publishes each letter's body as read back just before
// its publish, oldest first; a letter purged since the selection is gone, not published; and when
// the stream was created again since, its sequences holding other letters, none is published.
func TestReplayOfHeadersReadsEachBodyBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ls := []dlq.Letter{
		letter(1, "shop-b", "unknown-shop", small("shop-b", "B-1"), 0),
		letter(2, "shop-b", "unknown-shop", small("shop-b", "B-2"), 0),
		letter(3, "demo", "invalid", small("demo", "D-3"), 1),
		letter(4, "demo", "invalid", small("demo", "D-4"), 3),
		letter(5, "shop-b", "unknown-shop", small("shop-b", "B-5"), 0),
	}
	q, js := letters(t, ls...)
	sel, err := q.AllHeaders(ctx, Filter{})
	if err != nil || len(sel) != 5 || sel[0].Body != nil {
		t.Fatalf("AllHeaders: %+v %v", sel, err)
	}
	if n, err := q.Purge(ctx, sel[1:2], nil); err != nil || n != 1 {
		t.Fatalf("purge of letter 2: %d %v", n, err)
	}
	res, err := q.Replay(ctx, sel, ReplayOptions{MaxReplays: 3})
	if err != nil || res.Replayed != 3 || res.Gone != 1 || res.GoneLetters[0] != 2 || res.Refused != 1 || res.RefusedLetters[0].Seq != 4 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	orders, _ := js.Stream(ctx, "ORDERS")
	for i, seq := range []int{1, 3, 5} {
		m, err := orders.GetMsg(ctx, uint64(i+1))
		if err != nil || !bytes.Equal(m.Data, ls[seq-1].Body) || m.Subject != ls[seq-1].Subject || m.Header.Get(dlq.HeaderPublishedSequence) != strconv.Itoa(seq) {
			t.Errorf("ORDERS %d, the replay of letter %d: %+v %v", i+1, seq, m, err)
		}
	}

	// The DLQ stream created again: its sequences 1 and 2 hold other letters than those selected.
	sel, err = q.AllHeaders(ctx, Filter{Reason: "invalid"})
	if err != nil || len(sel) != 1 {
		t.Fatalf("AllHeaders after the replay: %+v %v", sel, err)
	}
	if err := js.DeleteStream(ctx, "DLQ"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DLQ", Subjects: []string{"dlq.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	w := dlq.NewWriter(js)
	for i := range uint64(4) {
		if err := w.Write(ctx, letter(10+i, "demo", "invalid", small("demo", "X"), 0)); err != nil {
			t.Fatal(err)
		}
	}
	sel[0].ReplayCount = 0 // the letter of sequence 4 is now another letter, replayable
	q = New(js, "")
	if res, err := q.Replay(ctx, sel, ReplayOptions{MaxReplays: 3}); err != nil || res.Replayed != 0 || res.Gone != 1 {
		t.Errorf("replay of a letter whose sequence holds another: %+v %v", res, err)
	}
}
