package publisher

import (
	"context"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

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
	b := backScan{stream: s, filters: []string{"x.a"}, limit: 5}
	res, err := b.run(ctx, 0, func(m jetstream.Msg, _ uint64) error {
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
