package handlers

import "time"

// DeadLetter is a message that could not be processed, as DeadLetters store it. Its fields are
// those of dlq.Letter, in the same order, so that a DeadLetter converts to one
// (dlq.Letter(l)); handlers do not import dlq.
type DeadLetter struct {
	Subject     string // the subject it was consumed from
	Stream      string
	Sequence    uint64
	Body        []byte
	Reason      string
	Err         error
	Attempts    int
	ReplayCount string // the Dlq-Replay-Count the message carried, if any
	// Published is the sequence the event had when it was first published (HeaderPublishedSequence);
	// 0 for Sequence.
	Published uint64
	// PublishedCreated is when the stream the event was first published in was created (Unix
	// ns; HeaderPublishedStreamCreated), 0 when unknown.
	PublishedCreated int64
	FailedAt         time.Time
}

// DeadLetterOf says whether a handler's failure dead-letters m, and why: a permanent failure, or
// on the last delivery any other failure but the infrastructure's, which is tried again in place,
// and an event kept for a retry in its order's inbox (RetriedLater), which that inbox tries.
func DeadLetterOf(err error, m *Message) (reason Reason, ok bool) {
	if reason, ok := DeadLetterReason(err); ok {
		return reason, true
	}
	if err != nil && m.LastAttempt && !IsInfrastructure(err) && !RetriedLater(err) {
		return ReasonExhausted, true
	}
	return Reason{}, false
}

// deliveryOutcome is Outcome for the log line of one handling of m: on its last delivery, a failure
// that dead-letters it says dead-letter:exhausted, where Outcome (and the metrics) say retry.
func deliveryOutcome(err error, m *Message) string {
	if reason, ok := DeadLetterOf(err, m); ok {
		return "dead-letter:" + reason.String()
	}
	return Outcome(err)
}
