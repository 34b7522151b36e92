package config

import (
	"io"
	"strings"
	"testing"
)

// TestRetentionOutlivesAReplayedPollDeadlineLetter: -retention must be long enough that "an
// event of the order that comes again (redelivered, replayed from the dead letters, a re-check)"
// still finds the order's state (docs/configuration.md, -retention). The check compared
// -retention with -dlq-retention and -poll-deadline each, but the two add up: an order under review
// writes nothing that moves its time changed while it is re-checked (a re-check still under review
// changes nothing the index shows, and the refresh comes only after -retention less 15 days), its
// poll-deadline letter is written -poll-deadline after the review began, and DLQ keeps it
// -dlq-retention from then. With -retention 720h, -dlq-retention 720h and -poll-deadline 336h
// (accepted), the state expired on day 30 while its letter could be replayed until day 44: the
// replay then found no state and was dead-lettered no-transaction, and the order, still under
// review at ATODENE, was never decided by the worker.
func TestRetentionOutlivesAReplayedPollDeadlineLetter(t *testing.T) {
	t.Parallel()
	env := getenv(map[string]string{})
	s, err := ParseSettings([]string{"-retention", "720h", "-dlq-retention", "720h", "-poll-deadline", "336h"}, env, io.Discard)
	if err != nil {
		for _, want := range []string{"-retention", "-poll-deadline", "-dlq-retention", "1056h"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("refused with %q: want it to name %s", err, want)
			}
		}
		return // refused: as it should be
	}
	if s.Retention < s.PollDeadline+s.DLQRetention {
		t.Errorf("accepted -retention %v with -poll-deadline %v and -dlq-retention %v: a poll-deadline letter stays replayable %v after the review began, "+
			"%v after the order's state (last changed when the review began) has expired",
			s.Retention, s.PollDeadline, s.DLQRetention, s.PollDeadline+s.DLQRetention, s.PollDeadline+s.DLQRetention-s.Retention)
	}
}

// TestRetentionBoundsAddUp: every letter written at the end of a wait must stay replayable within
// -retention (the wait plus -dlq-retention), the defaults pass, and sums past time.Duration's range
// are refused rather than wrapped.
func TestRetentionBoundsAddUp(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"defaults", nil, true},
		{"park-limit plus dlq-retention", []string{"-retention", "1000h", "-dlq-retention", "720h", "-poll-deadline", "200h", "-park-limit", "300h"}, false},
		{"exactly the sum", []string{"-retention", "1056h", "-dlq-retention", "720h", "-poll-deadline", "336h"}, true},
		{"sum past the range", []string{"-retention", "2562047h", "-dlq-retention", "2000000h", "-poll-deadline", "2000000h"}, false},
	} {
		_, err := ParseSettings(c.args, getenv(map[string]string{}), io.Discard)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok %v", c.name, err, c.ok)
		}
	}
}

// TestPollMaxIntervalWithinTheDeadline: a -poll-max-interval longer than -poll-deadline is refused:
// ATODENE_POLLS keeps a schedule the deadline and a day (and the interval's jitter, within the
// deadline), and a re-check scheduled further ahead than the deadline has nothing to do anyway.
func TestPollMaxIntervalWithinTheDeadline(t *testing.T) {
	t.Parallel()
	_, err := ParseSettings([]string{"-poll-max-interval", "2500000h", "-retention", "9600h"}, getenv(map[string]string{}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-poll-deadline") {
		t.Errorf("-poll-max-interval 2500000h with -poll-deadline 336h: %v, want refused naming -poll-deadline", err)
	}
	if _, err := ParseSettings([]string{"-poll-max-interval", "336h"}, getenv(map[string]string{}), io.Discard); err != nil {
		t.Errorf("-poll-max-interval equal to -poll-deadline: %v, want accepted", err)
	}
}
