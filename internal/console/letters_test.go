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

// publishedNotRemoved is an edit whose event was published but whose letter could not be removed
// afterwards: consoleops.EditReplay returns the published Outcome with the error.
type publishedNotRemoved struct{ *fakeLetters }

func (p publishedNotRemoved) EditReplay(_ context.Context, _ string, seq uint64, _ []byte) (Outcome, error) {
	return Outcome{Shop: testShop, Order: "A1", Published: true, MsgID: "edit:DLQ:7:1",
		Reason: "published order.created x to orders.created.demo in place of dead letter 7: stream ORDERS, sequence 12"}, errNATSClosed
}

// failedEdit is an edit that failed before anything was published.
type failedEdit struct{ *fakeLetters }

func (p failedEdit) EditReplay(_ context.Context, _ string, _ uint64, _ []byte) (Outcome, error) {
	return Outcome{Shop: testShop, Order: "A1"}, errNATSClosed
}

// TestLetterEditPublishedThenFailed: an edit published whose letter's removal then failed is
// shown as published, with its message ID, beside the removal's failure; one that failed before
// publishing is shown as a failure, with no outcome.
func TestLetterEditPublishedThenFailed(t *testing.T) {
	t.Parallel()
	edited := `{"type":"order.created","data":{"shop_id":"demo","order_id":"A1"}}`
	seed := func(h *harness) {
		h.letters.add(Letter{Seq: 7, Reason: "invalid", Shop: testShop, Order: "A1", Subject: "orders.created.demo", Body: []byte(edited)})
	}
	h := newHarness(t, func(c *Config) { c.DeadLetters = publishedNotRemoved{c.DeadLetters.(*fakeLetters)} })
	seed(h)
	page := body(t, h.post("/dlq/7/edit", "alice", url.Values{"body": {edited}, "confirm": {"yes"}}), http.StatusServiceUnavailable)
	mustContain(t, page, `data-testid="edit-outcome" data-published="yes"`, "送信済", "edit:DLQ:7:1",
		"修正したイベントは送信済みです", "connection closed")
	mustNotContain(t, page, "デッドレターを読めませんでした")

	h = newHarness(t, func(c *Config) { c.DeadLetters = failedEdit{c.DeadLetters.(*fakeLetters)} })
	seed(h)
	page = body(t, h.post("/dlq/7/edit", "alice", url.Values{"body": {edited}, "confirm": {"yes"}}), http.StatusServiceUnavailable)
	mustContain(t, page, "操作を実行できませんでした: publishing: nats: connection closed")
	mustNotContain(t, page, `data-testid="edit-outcome"`, "送信済みです")
}
