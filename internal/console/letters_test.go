package console

import (
	"context"
	"net/http"
	"net/url"
	"testing"
)

// stoppingLetters replays or purges the first letter, then fails, as consoleops.Replay and Purge
// return when the server goes away in the middle: with the error, the outcomes that say what was
// done.
type stoppingLetters struct{ *fakeLetters }

func (p stoppingLetters) stop(did string, seqs []uint64) []Outcome {
	out := make([]Outcome, len(seqs))
	for i := range seqs {
		out[i] = Outcome{Shop: testShop, Order: "X", Reason: "not done: the action stopped at a failure before this dead letter, which is kept"}
	}
	out[0].Published, out[0].Reason = true, did
	return out
}

func (p stoppingLetters) Purge(_ context.Context, _ string, seqs []uint64) ([]Outcome, error) {
	return p.stop("dead letter 1 purged", seqs), errNATSClosed
}

func (p stoppingLetters) Replay(_ context.Context, _ string, seqs []uint64, _ bool) ([]Outcome, error) {
	return p.stop("replayed to orders.created.demo; dead letter 1 removed", seqs), errNATSClosed
}

// TestLetterActionPartialFailure: a purge or a replay that fails part-way answers 503 with the
// error, and still lists every letter as what became of it: the one purged (gone for good) or
// replayed as done, the others refused and kept.
func TestLetterActionPartialFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.DeadLetters = stoppingLetters{c.DeadLetters.(*fakeLetters)} })
	for _, c := range []struct{ action, did string }{
		{"purge", "dead letter 1 purged"},
		{"replay", "replayed to orders.created.demo; dead letter 1 removed"},
	} {
		t.Run(c.action, func(t *testing.T) {
			page := body(t, h.post("/dlq/actions", "alice", url.Values{"action": {c.action}, "seq": {"1", "2"}, "confirm": {"yes"}}),
				http.StatusServiceUnavailable)
			mustContain(t, page, `id="action-error"`, "操作を実行できませんでした: publishing: nats: connection closed", `data-testid="action-partial"`,
				`<tr data-seq="1" data-key="demo/X" data-testid="result-row" data-result="published">`, c.did,
				`<tr data-seq="2" data-key="demo/X" data-testid="result-row" data-result="refused">`, "which is kept")
		})
	}
}
