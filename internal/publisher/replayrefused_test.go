package publisher

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
)

// TestDlqReplayJSONNamesTheRefusedLettersOrders: dlq replay selects the letters without their
// bodies, yet its -json report names the shop and order of each letter it refused: an inbound
// event's order read back from its body (not ""), a due re-check's shop and order its own (not
// "due", the subject's third token), in a dry run as in a run.
func TestDlqReplayJSONNamesTheRefusedLettersOrders(t *testing.T) {
	t.Parallel()
	poll := dlq.Letter{Subject: "atodene.poll.due.shop-b." + base64.RawURLEncoding.EncodeToString([]byte("P-2")) + ".parked",
		Stream: "ATODENE_POLLS", Sequence: 2, Reason: handlers.ReasonNoTransaction.String(),
		Body: []byte(`{"shop":"shop-b","order_id":"P-2","seq":0,"kind":"parked"}`), Err: errors.New("it failed"), Attempts: 1,
		FailedAt: time.Date(2026, 11, 27, 0, 39, 49, 0, time.UTC), ReplayCount: "3"}
	url, _ := deadLetters(t, deadLetter(1, "demo", handlers.ReasonInvalid.String(), 1, 3), poll, deadLetter(3, "demo", handlers.ReasonInvalid.String(), 1, 0))
	want := map[float64][2]string{1: {"demo", "O-1"}, 2: {"shop-b", "P-2"}}
	for _, args := range [][]string{{"dlq", "replay", "-dry-run", "-json"}, {"dlq", "replay", "-json"}} {
		r := runPublisher(t, url, "", false, args...)
		if r.err != nil {
			t.Fatalf("%v: %v\n%s", args, r.err, r.stderr)
		}
		var res struct {
			Replayed int `json:"replayed"`
			Refused  []struct {
				Seq   float64 `json:"seq"`
				Shop  string  `json:"shop"`
				Order string  `json:"order"`
			} `json:"refused_letters"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res.Refused) != 2 {
			t.Fatalf("%v: %v\n%s", args, err, r.stdout)
		}
		for _, l := range res.Refused {
			if got := [2]string{l.Shop, l.Order}; got != want[l.Seq] {
				t.Errorf("%v: refused letter %v names shop and order %q, want %q\n%s", args, l.Seq, got, want[l.Seq], r.stdout)
			}
		}
		if args[2] != "-dry-run" && res.Replayed != 1 {
			t.Errorf("%v: replayed %d, want 1\n%s", args, res.Replayed, r.stdout)
		}
	}
}
