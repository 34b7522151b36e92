package streamscan

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// TestMain fails the package's tests if any goroutine outlives them: the NATS clients and servers the tests start are stopped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func stream(t *testing.T, n int) jetstream.Stream {
	t.Helper()
	ctx := context.Background()
	_, js := testenv.JetStream(t)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SCAN", Subjects: []string{"x.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		subject := "x.a"
		if i%2 == 1 {
			subject = "x.b"
		}
		if _, err := js.Publish(ctx, subject, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// A backward scan that reaches its limit has read the newest messages, never an older part of a
// window whose newer end it left unread: what it keeps is the latest among those it read.
func TestBackScanLimitKeepsTheNewest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := testenv.JetStream(t)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SCAN", Subjects: []string{"x.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := js.Publish(ctx, "x.a", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	var kept []string
	b := Back{Stream: s, Filters: []string{"x.a"}, Limit: 5}
	res, err := b.Run(ctx, 0, func(m jetstream.Msg, _ uint64) error {
		kept = append(kept, string(m.Data()))
		return nil
	}, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if !res.Limited || res.Read != 5 {
		t.Errorf("result %+v, want 5 read and limited", res)
	}
	if len(kept) != 5 || kept[0] != "5" || kept[4] != "9" {
		t.Errorf("read %v, want the 5 newest, 5 to 9", kept)
	}
}

// TestRange: a range of sequences on a filter, oldest first, stopped by visit; and the first
// message since a time.
func TestRange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := stream(t, 600)
	var seqs []uint64
	read, err := Range(ctx, s, []string{"x.b"}, 10, 20, func(_ jetstream.Msg, seq uint64) (bool, error) {
		seqs = append(seqs, seq)
		return false, nil
	})
	if err != nil || read != 5 || seqs[0] != 10 || seqs[4] != 18 {
		t.Errorf("x.b from 10 to 20: %v read %d %v", seqs, read, err)
	}
	read, err = Range(ctx, s, nil, 0, 0, func(_ jetstream.Msg, seq uint64) (bool, error) { return seq == 300, nil })
	if err != nil || read != 300 {
		t.Errorf("stopped at 300: read %d %v", read, err)
	}
	if first, err := FirstSince(ctx, s, []string{"x.a"}, time.Now().Add(-time.Hour)); err != nil || first != 1 {
		t.Errorf("FirstSince an hour ago: %d %v", first, err)
	}
	if first, err := FirstSince(ctx, s, []string{"x.a"}, time.Now().Add(time.Hour)); err != nil || first != 0 {
		t.Errorf("FirstSince an hour ahead: %d %v", first, err)
	}
}
