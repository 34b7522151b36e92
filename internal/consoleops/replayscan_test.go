package consoleops

import (
	"context"
	"testing"
)

// TestReplayedBeforeReadsTheLettersSubject: the look for an earlier replay of a letter gone reads,
// when the letter's original subject is known, that subject's messages only (its replay went
// there): a replay stored on another subject is not seen, and a subject the inbound stream does
// not take (a due re-check's) is no error and no replay; unknown, every subject is read.
func TestReplayedBeforeReadsTheLettersSubject(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.write(letter(7, "demo", "invalid", orderData("demo", "BAD-1", "2950"), 0)) // DLQ 1
	if out, err := e.ops.Replay(ctx, "alice", []uint64{1}, false); err != nil || len(out) != 1 || !out[0].Published {
		t.Fatalf("the replay: %+v %v", out, err)
	}
	for _, tc := range []struct {
		subject string
		found   bool
	}{
		{"orders.created.demo", true},
		{"", true},
		{"orders.created.other", false},
		{"atodene.poll.due.demo.QkFELTE", false},
	} {
		hit, err := e.ops.replayedBefore(ctx, 1, tc.subject)
		if err != nil || (hit.msgID == "replay:DLQ:1:1" && hit.seq == 1 && hit.order == "BAD-1") != tc.found || !tc.found && hit.msgID != "" {
			t.Errorf("replayedBefore(1, %q) = %+v %v, found want %v", tc.subject, hit, err, tc.found)
		}
	}
	for _, tc := range []struct {
		patterns []string
		subject  string
		want     bool
	}{
		{[]string{"orders.>"}, "orders.created.demo", true},
		{[]string{"orders.>"}, "orders", false},
		{[]string{"credit.*", "orders.*.demo"}, "orders.created.demo", true},
		{[]string{"orders.*.demo"}, "orders.created.shop-b", false},
		{[]string{"orders.created"}, "orders.created.demo", false},
		{[]string{"orders.created.demo.x"}, "orders.created.demo", false},
		{[]string{"orders.>"}, "atodene.poll.due.demo.QkFELTE", false},
	} {
		if got := takes(tc.patterns, tc.subject); got != tc.want {
			t.Errorf("takes(%q, %q) = %v, want %v", tc.patterns, tc.subject, got, tc.want)
		}
	}
}
