package dlq_test

import (
	"bytes"
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// newJetStream starts a JetStream server of the test's own with an ORDERS stream and a DLQ stream
// configured as docs/architecture.md#streams-subjects-and-consumers says.
func newJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := testenv.JetStream(t)
	for _, sc := range []jetstream.StreamConfig{
		{Name: "ORDERS", Subjects: []string{"orders.>"}},
		{Name: "DLQ", Subjects: []string{"dlq.>"}, Retention: jetstream.LimitsPolicy, Duplicates: 2 * time.Minute},
	} {
		if _, err := js.CreateStream(t.Context(), sc); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

// letters returns every message of the DLQ stream.
func letters(t *testing.T, js jetstream.JetStream) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := js.Stream(t.Context(), "DLQ")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

var dlqHeaders = []string{dlq.HeaderOriginalSubject, dlq.HeaderOriginalStream, dlq.HeaderOriginalSequence,
	dlq.HeaderReason, dlq.HeaderError, dlq.HeaderAttempts, dlq.HeaderFailedAt, dlq.HeaderReplayCount, dlq.HeaderPublishedSequence,
	dlq.HeaderPublishedStreamCreated}

func TestHeaderNamesAreTheContract(t *testing.T) {
	t.Parallel()
	want := []string{"Dlq-Original-Subject", "Dlq-Original-Stream", "Dlq-Original-Sequence", "Dlq-Reason", "Dlq-Error",
		"Dlq-Attempts", "Dlq-Failed-At", "Dlq-Replay-Count", "Dlq-Published-Sequence", "Dlq-Published-Stream-Created"}
	if !slices.Equal(dlqHeaders, want) {
		t.Errorf("header names %v, want %v (docs/operations-worker.md#dead-letters)", dlqHeaders, want)
	}
	if dlq.SubjectPrefix != "dlq." {
		t.Errorf("SubjectPrefix %q", dlq.SubjectPrefix)
	}
}

func TestWriterWritesTheLetter(t *testing.T) {
	t.Parallel()
	js := newJetStream(t)
	w := dlq.NewWriter(js)
	jst := time.FixedZone("JST", 9*60*60)
	failedAt := time.Date(2026, 11, 26, 10, 15, 30, 123456789, jst)

	large := bytes.Repeat([]byte(`{"name":"山田 花子","n":12345}`), 16<<10) // ≈ 500 KiB
	for _, tc := range []struct {
		name        string
		letter      dlq.Letter
		wantHeaders map[string]string
	}{
		{"json body", dlq.Letter{Subject: "orders.created.shop-a", Stream: "ORDERS", Sequence: 42,
			Body: []byte(`{"specversion":"1.0","id":"e-1"}`), Reason: "invalid", Err: errors.New("buyer.zip: must be 123-4567"),
			Attempts: 1, FailedAt: failedAt}, map[string]string{
			"Dlq-Original-Subject": "orders.created.shop-a", "Dlq-Original-Stream": "ORDERS", "Dlq-Original-Sequence": "42",
			"Dlq-Reason": "invalid", "Dlq-Error": "buyer.zip: must be 123-4567", "Dlq-Attempts": "1",
			"Dlq-Failed-At": "2026-11-26T01:15:30Z", "Dlq-Published-Sequence": "42"}},
		{"not UTF-8, replayed", dlq.Letter{Subject: "orders.updated.shop-b", Stream: "ORDERS", Sequence: 43,
			Body: []byte{0xff, 0xfe, 0x00, '{', 0x80, '\r', '\n', 0xc3, 0x28}, Reason: "exhausted", Err: errors.New("ATODENE timed out"),
			Attempts: 5, ReplayCount: "2", Published: 7, PublishedCreated: failedAt.Add(-time.Hour).UnixNano(), FailedAt: failedAt}, map[string]string{
			"Dlq-Original-Subject": "orders.updated.shop-b", "Dlq-Original-Stream": "ORDERS", "Dlq-Original-Sequence": "43",
			"Dlq-Reason": "exhausted", "Dlq-Error": "ATODENE timed out", "Dlq-Attempts": "5",
			"Dlq-Failed-At": "2026-11-26T01:15:30Z", "Dlq-Replay-Count": "2", "Dlq-Published-Sequence": "7",
			"Dlq-Published-Stream-Created": "2026-11-26T00:15:30.123456789Z"}},
		{"large body", dlq.Letter{Subject: "orders.created.shop-c", Stream: "ORDERS", Sequence: 44, Body: large,
			Reason: "outcome-unknown", Err: errors.New("already registered"), Attempts: 3, FailedAt: failedAt.UTC()}, map[string]string{
			"Dlq-Original-Subject": "orders.created.shop-c", "Dlq-Original-Stream": "ORDERS", "Dlq-Original-Sequence": "44",
			"Dlq-Reason": "outcome-unknown", "Dlq-Error": "already registered", "Dlq-Attempts": "3",
			"Dlq-Failed-At": "2026-11-26T01:15:30Z", "Dlq-Published-Sequence": "44"}},
		{"empty body", dlq.Letter{Subject: "orders.cancelled.shop-a", Stream: "POLLS", Sequence: 1, Body: nil,
			Reason: "poll-deadline", Err: errors.New("still under review"), Attempts: 1, FailedAt: failedAt}, map[string]string{
			"Dlq-Original-Subject": "orders.cancelled.shop-a", "Dlq-Original-Stream": "POLLS", "Dlq-Original-Sequence": "1",
			"Dlq-Reason": "poll-deadline", "Dlq-Error": "still under review", "Dlq-Attempts": "1",
			"Dlq-Failed-At": "2026-11-26T01:15:30Z", "Dlq-Published-Sequence": "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := w.Write(t.Context(), tc.letter); err != nil {
				t.Fatal(err)
			}
			s, err := js.Stream(t.Context(), "DLQ")
			if err != nil {
				t.Fatal(err)
			}
			m, err := s.GetLastMsgForSubject(t.Context(), "dlq."+tc.letter.Subject)
			if err != nil {
				t.Fatalf("no letter on dlq.%s: %v", tc.letter.Subject, err)
			}
			if !bytes.Equal(m.Data, tc.letter.Body) {
				t.Errorf("body of %d bytes differs from the original's %d bytes", len(m.Data), len(tc.letter.Body))
			}
			for _, name := range dlqHeaders {
				got, want := m.Header.Values(name), tc.wantHeaders[name]
				switch {
				case want == "" && len(got) != 0:
					t.Errorf("%s = %q, want it absent", name, got)
				case want != "" && (len(got) != 1 || got[0] != want):
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			at, err := time.Parse(time.RFC3339, m.Header.Get(dlq.HeaderFailedAt))
			if err != nil || !at.Equal(tc.letter.FailedAt.Truncate(time.Second)) {
				t.Errorf("Dlq-Failed-At %q: %v", m.Header.Get(dlq.HeaderFailedAt), err)
			}
			for name := range m.Header {
				if strings.HasPrefix(strings.ToLower(name), "dlq-") && tc.wantHeaders[name] == "" {
					t.Errorf("unexpected header %s", name)
				}
			}
		})
	}
	if n := len(letters(t, js)); n != 4 {
		t.Errorf("%d letters in DLQ, want 4", n)
	}
}

func TestWriterTruncatesLongErrors(t *testing.T) {
	t.Parallel()
	js := newJetStream(t)
	w := dlq.NewWriter(js)
	for i, tc := range []struct {
		name string
		err  string
	}{
		{"ASCII", "items[0].name: " + strings.Repeat("x", 5000)},
		{"multi-byte", "buyer.address: " + strings.Repeat("東京都", 1000)},
		{"exactly 1 KiB", strings.Repeat("y", 1024)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := dlq.Letter{Subject: "orders.created.shop-a", Stream: "ORDERS", Sequence: uint64(100 + i), Body: []byte("{}"),
				Reason: "invalid", Err: errors.New(tc.err), Attempts: 1, FailedAt: time.Now()}
			if err := w.Write(t.Context(), l); err != nil {
				t.Fatal(err)
			}
			s, _ := js.Stream(t.Context(), "DLQ")
			m, err := s.GetLastMsgForSubject(t.Context(), "dlq.orders.created.shop-a")
			if err != nil {
				t.Fatal(err)
			}
			got := m.Header.Get(dlq.HeaderError)
			if len(tc.err) <= 1024 {
				if got != tc.err {
					t.Errorf("an error of %d bytes was changed to %d bytes", len(tc.err), len(got))
				}
				return
			}
			if len(got) > 1024+len("…") || len(got) < 1000 {
				t.Errorf("Dlq-Error is %d bytes, want ≈ 1 KiB", len(got))
			}
			if !strings.HasPrefix(tc.err, strings.TrimSuffix(got, "…")) {
				t.Errorf("Dlq-Error %q… is not the start of the error", got[:40])
			}
			if !utf8.ValidString(got) {
				t.Errorf("Dlq-Error is cut inside a character: ends %q", got[len(got)-8:])
			}
		})
	}
}

func TestWriterErrorsWithLineBreaks(t *testing.T) {
	t.Parallel()
	js := newJetStream(t)
	w := dlq.NewWriter(js)
	// errors.Join and panics make multi-line messages; a header value cannot hold a line break.
	cause := errors.Join(errors.New("buyer.zip: must be 123-4567"), errors.New("Dlq-Reason: poll-deadline\r\nX-Injected: yes"))
	l := dlq.Letter{Subject: "orders.created.shop-a", Stream: "ORDERS", Sequence: 7, Body: []byte("{}"),
		Reason: "invalid", Err: cause, Attempts: 1, FailedAt: time.Now()}
	if err := w.Write(t.Context(), l); err != nil {
		t.Fatalf("a multi-line error could not be dead-lettered: %v", err)
	}
	got := letters(t, js)
	if len(got) != 1 {
		t.Fatalf("%d letters", len(got))
	}
	h := got[0].Header
	if r := h.Values(dlq.HeaderReason); len(r) != 1 || r[0] != "invalid" {
		t.Errorf("Dlq-Reason %q, want [invalid]", r)
	}
	if h.Get("X-Injected") != "" {
		t.Error("the error's text injected a header")
	}
	if e := h.Get(dlq.HeaderError); !strings.Contains(e, "buyer.zip") || !strings.Contains(e, "poll-deadline") {
		t.Errorf("Dlq-Error %q lost part of the error", e)
	}
}

func TestWriterStoresTheSameLetterOnce(t *testing.T) {
	t.Parallel()
	js := newJetStream(t)
	w := dlq.NewWriter(js)
	l := dlq.Letter{Subject: "orders.created.shop-a", Stream: "ORDERS", Sequence: 9, Body: []byte("{}"),
		Reason: "exhausted", Err: errors.New("timeout"), Attempts: 5, FailedAt: time.Now()}
	for range 3 {
		if err := w.Write(t.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	// The same original written by the other path (another reason, time and error) is the same letter.
	l2 := l
	l2.Reason, l2.Err, l2.FailedAt = "exhausted", errors.New("no delivery was acknowledged"), time.Now().Add(time.Second)
	if err := w.Write(t.Context(), l2); err != nil {
		t.Fatal(err)
	}
	got := letters(t, js)
	if len(got) != 1 {
		t.Fatalf("%d letters for one original, want 1", len(got))
	}
	if id := got[0].Header.Get(jetstream.MsgIDHeader); id == "" {
		t.Error("no Nats-Msg-Id")
	}

	// Another original, or the same one after a replay, is another letter.
	other := l
	other.Sequence = 10
	replayed := l
	replayed.ReplayCount = "1"
	for _, x := range []dlq.Letter{other, replayed} {
		if err := w.Write(t.Context(), x); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(letters(t, js)); n != 3 {
		t.Errorf("%d letters, want 3", n)
	}
}

func TestWriterFailsWithoutDLQStream(t *testing.T) {
	t.Parallel()
	js := newJetStream(t)
	if err := js.DeleteStream(t.Context(), "DLQ"); err != nil {
		t.Fatal(err)
	}
	err := dlq.NewWriter(js).Write(t.Context(), dlq.Letter{Subject: "orders.created.shop-a", Stream: "ORDERS", Sequence: 3,
		Reason: "invalid", Err: errors.New("bad"), Attempts: 1, FailedAt: time.Now()})
	if err == nil {
		t.Fatal("Write returned nil with no stream to store the letter")
	}
	if !strings.Contains(err.Error(), "orders.created.shop-a") || !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Errorf("err %v: want the subject named and jetstream.ErrNoStreamResponse wrapped", err)
	}
}

func TestFromMsgReadsAConsumedMessage(t *testing.T) {
	t.Parallel()
	js := newJetStream(t)
	body := []byte{0xff, '{', '"', 'a', '"', '}'}
	for _, hdr := range []nats.Header{nil, {dlq.HeaderReplayCount: []string{"3"}}} {
		msg := &nats.Msg{Subject: "orders.updated.shop-a", Data: body, Header: hdr}
		if _, err := js.PublishMsg(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
	c, err := js.CreateOrUpdateConsumer(t.Context(), "ORDERS", jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	// Deliver the first message twice, so its attempts are 2.
	first, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Nak(); err != nil {
		t.Fatal(err)
	}
	var got []dlq.Letter
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	cause := errors.New("buyer.zip: must be 123-4567")
	for len(got) < 2 {
		m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, dlq.FromMsg(m, 1234, "invalid", cause, now))
		_ = m.Ack()
	}
	slices.SortFunc(got, func(a, b dlq.Letter) int { return int(a.Sequence) - int(b.Sequence) })
	for i, want := range []dlq.Letter{
		{Subject: "orders.updated.shop-a", Stream: "ORDERS", Sequence: 1, Body: body, Reason: "invalid", Err: cause, Attempts: 2, FailedAt: now,
			Published: 1, PublishedCreated: 1234},
		// A replay without Dlq-Published-*: its first stream is not known.
		{Subject: "orders.updated.shop-a", Stream: "ORDERS", Sequence: 2, Body: body, Reason: "invalid", Err: cause, Attempts: 1,
			ReplayCount: "3", FailedAt: now, Published: 2},
	} {
		g := got[i]
		if g.Subject != want.Subject || g.Stream != want.Stream || g.Sequence != want.Sequence || !bytes.Equal(g.Body, want.Body) ||
			g.Reason != want.Reason || g.Err != want.Err || g.Attempts != want.Attempts || g.ReplayCount != want.ReplayCount ||
			!g.FailedAt.Equal(want.FailedAt) || g.Published != want.Published || g.PublishedCreated != want.PublishedCreated {
			t.Errorf("letter %d = %+v, want %+v", i, g, want)
		}
	}

	// Written, the replayed one keeps its replay count.
	w := dlq.NewWriter(js)
	for _, l := range got {
		if err := w.Write(t.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	stored := letters(t, js)
	if len(stored) != 2 || stored[0].Header.Get(dlq.HeaderAttempts) != "2" || stored[1].Header.Get(dlq.HeaderReplayCount) != "3" ||
		stored[0].Header.Get(dlq.HeaderOriginalSequence) != "1" || !bytes.Equal(stored[1].Data, body) {
		t.Errorf("stored letters: %+v", stored)
	}
}

// TestLetterOfARecreatedStreamIsStored: after ORDERS is deleted and created again (sequences from 1
// again), a message of the new stream dead-lettered within DLQ's duplicate window of the old
// stream's letter of the same sequence gets a letter of its own (the worker acknowledges the
// message once Write returns: a letter dropped as a duplicate is an event lost); written again, it
// is stored once.
func TestLetterOfARecreatedStreamIsStored(t *testing.T) {
	t.Parallel()
	js := newJetStream(t)
	w := dlq.NewWriter(js)
	old := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	recreated := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC).UnixNano()
	first := dlq.Letter{Subject: "orders.created.demo", Stream: "ORDERS", Sequence: 5, Body: []byte(`{"id":"old","data":{"order_id":"A1"}}`),
		Reason: "invalid", Err: errors.New("bad"), Attempts: 1, PublishedCreated: old, FailedAt: time.Now()}
	if _, err := w.WriteOnce(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	second := dlq.Letter{Subject: "orders.created.demo", Stream: "ORDERS", Sequence: 5, Body: []byte(`{"id":"new","data":{"order_id":"B2"}}`),
		Reason: "invalid", Err: errors.New("bad too"), Attempts: 1, PublishedCreated: recreated, FailedAt: time.Now()}
	stored, err := w.WriteOnce(t.Context(), second)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := w.WriteOnce(t.Context(), second); err != nil || again {
		t.Errorf("the second letter written again: stored %v (%v), want a duplicate", again, err)
	}
	got := letters(t, js)
	if !stored || len(got) != 2 {
		t.Fatalf("the letter of ORDERS (created again) sequence 5, another event, was stored=%v; DLQ holds %d letters, want 2: the message is acknowledged and its event lost", stored, len(got))
	}
}

// TestWriterWritesAReadableReplayCount: the Dlq-Replay-Count a message carried is written as the
// replay guard reads it: a count in plain digits; one that is none (-1000 would pass every
// -max-replays, as would a word read as 0 by a careless reader) is left out, as for an event never
// replayed, by Write and by FromMsg alike.
func TestWriterWritesAReadableReplayCount(t *testing.T) {
	t.Parallel()
	js := newJetStream(t)
	w := dlq.NewWriter(js)
	for i, tc := range []struct{ carried, want string }{
		{"2", "2"}, {"007", "7"}, {"-1000", ""}, {"+1", ""}, {"two", ""}, {"99999999999999999999", ""}, {"", ""},
	} {
		l := dlq.Letter{Subject: "orders.created.demo", Stream: "ORDERS", Sequence: uint64(i + 1), Body: []byte(`{}`),
			Reason: "invalid", Attempts: 1, ReplayCount: tc.carried, FailedAt: time.Now()}
		if err := w.Write(t.Context(), l); err != nil {
			t.Fatal(err)
		}
		stored := letters(t, js)
		if got := stored[len(stored)-1].Header.Values(dlq.HeaderReplayCount); tc.want == "" && len(got) != 0 || tc.want != "" && (len(got) != 1 || got[0] != tc.want) {
			t.Errorf("carried %q: Dlq-Replay-Count %q, want %q", tc.carried, got, tc.want)
		}
		if count, ok := dlq.ParseReplayCount(tc.carried); ok != (tc.want != "" || tc.carried == "") || ok && strconv.FormatUint(count, 10) != cmp.Or(tc.want, "0") {
			t.Errorf("ParseReplayCount(%q) = %d, %v", tc.carried, count, ok)
		}
	}
	// FromMsg: a consumed message carrying -1000 makes a letter that carries no count.
	if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: "orders.created.demo", Data: []byte(`{}`),
		Header: nats.Header{dlq.HeaderReplayCount: []string{"-1000"}}}); err != nil {
		t.Fatal(err)
	}
	c, err := js.OrderedConsumer(t.Context(), "ORDERS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if l := dlq.FromMsg(m, 0, "invalid", errors.New("x"), time.Now()); l.ReplayCount != "" {
		t.Errorf("FromMsg of a message carrying Dlq-Replay-Count -1000: ReplayCount %q, want none", l.ReplayCount)
	}
}
