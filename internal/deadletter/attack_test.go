package deadletter

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/dlq"
)

// publishedLetters returns the DLQ sequences whose replay (replay:DLQ:<seq>:<count>) stream name
// holds, with how many times each.
func publishedLetters(t *testing.T, js jetstream.JetStream, name string) map[uint64]int {
	t.Helper()
	out := map[uint64]int{}
	for _, m := range streamMsgs(t, js, name) {
		parts := strings.Split(m.Header.Get(jetstream.MsgIDHeader), ":")
		if len(parts) == 4 && parts[0] == "replay" {
			n, _ := strconv.ParseUint(parts[2], 10, 64)
			out[n]++
		}
	}
	return out
}

// streamMsgs returns the messages stream name holds, in order.
func streamMsgs(t *testing.T, js jetstream.JetStream, name string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func presentLetters(t *testing.T, q *Queue) map[uint64]bool {
	t.Helper()
	ls, err := q.All(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]bool{}
	for _, l := range ls {
		out[l.Seq] = true
	}
	return out
}

// checkReplay checks the contract of one replay's result: Replayed counts the outcomes replayed;
// an outcome replayed is a letter published and gone; a letter given and not replayed by any
// replay, nor purged by the operator, is still there unless it was published.
func checkReplay(t *testing.T, name string, given []Letter, res ReplayResult, err error, done int, published map[uint64]int, present map[uint64]bool) {
	t.Helper()
	n := 0
	for i, o := range res.Letters {
		if o.Seq != given[i].Seq {
			t.Errorf("%s: outcome %d is of letter %d, want %d", name, i, o.Seq, given[i].Seq)
		}
		if o.Replayed {
			n++
			if published[o.Seq] == 0 || present[o.Seq] {
				t.Errorf("%s: letter %d replayed, but published %d times, present %v", name, o.Seq, published[o.Seq], present[o.Seq])
			}
		}
	}
	if n != res.Replayed {
		t.Errorf("%s: Replayed %d, %d outcomes replayed", name, res.Replayed, n)
	}
	if done != res.Replayed {
		t.Errorf("%s: done %d times, replayed %d", name, done, res.Replayed)
	}
	if err != nil && !strings.HasPrefix(err.Error(), "after "+strconv.Itoa(res.Replayed)+" replayed: ") {
		t.Errorf("%s: err %v, replayed %d", name, err, res.Replayed)
	}
}

// checkNoLoss: every letter of the stream at the start that is gone was published or purged by
// the operator; every letter written meanwhile is there.
func checkNoLoss(t *testing.T, before []Letter, purged map[uint64]bool, added []uint64, published map[uint64]int, present map[uint64]bool) {
	t.Helper()
	for _, l := range before {
		if !present[l.Seq] && published[l.Seq] == 0 && !purged[l.Seq] {
			t.Errorf("letter %d removed, never published", l.Seq)
		}
	}
	for _, seq := range added {
		if !present[seq] {
			t.Errorf("letter %d, written during the replay, removed", seq)
		}
	}
}

// TestAttackReplayNoRespondersRetryReorders: the docs promise that the re-publishes are stored
// in the order of the letters. A re-publish that meets "no responders" (the stream briefly
// unavailable: a leader election, a server restarting) is retried by the client 250 ms later,
// after the re-publishes behind it were stored: the replay succeeds, and the events of a subject
// are stored out of order (the synchronous replay retried in place).
func TestAttackReplayNoRespondersRetryReorders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ls := many(6)
	for i := range ls {
		ls[i].Subject = "orders.late.demo"
	}
	q, js := letters(t, ls...)
	ordersTakesCreatedOnly(t, js)
	all, _ := q.All(ctx, Filter{})
	paced := 0
	res, err := q.Replay(ctx, all, ReplayOptions{MaxReplays: 3, Pace: func(ctx context.Context) error {
		if paced++; paced == 2 { // the stream comes (back) after the first re-publish was sent
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LATE", Subjects: []string{"orders.late.>"}, Storage: jetstream.MemoryStorage})
			return err
		}
		return nil
	}})
	t.Logf("replay: replayed %d: %v", res.Replayed, err)
	if err == nil {
		replays(t, js, "LATE") // errors when a subject's replays are out of order
		return
	}
	// The replay failed: the first re-publish met no stream. It may have failed before the second
	// was paced, the stream then never created, and nothing published.
	published := map[uint64]int{}
	if _, err := js.Stream(ctx, "LATE"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		published = publishedLetters(t, js, "LATE")
	}
	if res.Letters[0].Replayed || !presentLetters(t, q)[all[0].Seq] || published[all[0].Seq] != 0 {
		t.Errorf("the letter that failed: %+v, kept %v, published %d times", res.Letters[0], presentLetters(t, q)[all[0].Seq], published[all[0].Seq])
	}
}

// TestAttackReplayInvariants: replays under a hostile world: letters given shuffled and
// duplicated, the worker writing letters of the same subjects meanwhile, an operator purging
// some, a second replay (the console) of overlapping letters at once, a context cancelled
// mid-run. No letter is lost, each result is true.
func TestAttackReplayInvariants(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                         string
		shuffle, dup, write, operate bool
		second, cancel               bool
	}{
		{name: "shuffled-duplicated", shuffle: true, dup: true},
		{name: "writer", write: true},
		{name: "operator", operate: true},
		{name: "two-replays", second: true},
		{name: "cancel", cancel: true},
		{name: "all", shuffle: true, dup: true, write: true, operate: true, second: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			const n = 900
			ls := many(n)
			for i := range ls {
				if i%7 == 3 { // letters of another reason on the same subjects, not selected
					ls[i].Reason = "invalid"
				}
			}
			q, js := letters(t, ls...)
			before, _ := q.All(ctx, Filter{})
			var given []Letter
			for _, l := range before {
				if l.Reason == "unknown-shop" {
					given = append(given, l)
				}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			if tc.shuffle {
				// shuffle by blocks, so that the subjects' heads still come together
				for i := 0; i+50 <= len(given); i += 50 {
					rng.Shuffle(50, func(a, b int) { given[i+a], given[i+b] = given[i+b], given[i+a] })
				}
			}
			if tc.dup {
				given = append(given, given[10:60]...)
			}
			var wg sync.WaitGroup
			stop := make(chan struct{})
			var mu sync.Mutex
			var added []uint64
			purged := map[uint64]bool{}
			if tc.write {
				wg.Go(func() {
					w := dlq.NewWriter(js)
					s, _ := js.Stream(context.Background(), "DLQ")
					for k := 0; ; k++ {
						select {
						case <-stop:
							return
						default:
						}
						l := letter(uint64(10000+k), "shop-"+strconv.Itoa(k%3), "unknown-shop", small("x", "N-"+strconv.Itoa(k)), 1)
						if err := w.Write(context.Background(), l); err != nil {
							t.Error(err)
							return
						}
						info, _ := s.Info(context.Background())
						mu.Lock()
						added = append(added, info.State.LastSeq)
						mu.Unlock()
					}
				})
			}
			if tc.operate {
				wg.Go(func() {
					for k := 0; k < 100; k++ {
						seq := uint64(rng.IntN(n) + 1)
						mu.Lock()
						purged[seq] = true
						mu.Unlock()
						if _, err := q.Purge(context.Background(), []Letter{{Seq: seq}}, nil); err != nil {
							t.Error(err)
						}
						time.Sleep(time.Millisecond)
					}
				})
			}
			var res2 ReplayResult
			var err2 error
			done2 := 0
			var given2 []Letter
			if tc.second {
				given2 = append([]Letter(nil), given[len(given)/3:]...)
				wg.Go(func() {
					res2, err2 = q.Replay(ctx, given2, ReplayOptions{MaxReplays: 3, Done: func() { done2++ }})
				})
			}
			done := 0
			var paced atomic.Int64
			start := time.Now()
			res, err := q.Replay(ctx, given, ReplayOptions{MaxReplays: 3, Done: func() { done++ }, Pace: func(ctx context.Context) error {
				if paced.Add(1) == 400 && tc.cancel {
					cancel()
				}
				return ctx.Err()
			}})
			took := time.Since(start)
			close(stop)
			wg.Wait()
			if tc.cancel && (err == nil || !errors.Is(err, context.Canceled) || took > 10*time.Second) {
				t.Errorf("cancelled: %v after %s", err, took)
			}
			if !tc.cancel && err != nil {
				t.Errorf("replay: %v", err)
			}
			if err2 != nil {
				t.Errorf("second replay: %v", err2)
			}
			published := publishedLetters(t, js, "ORDERS")
			present := presentLetters(t, q)
			checkReplay(t, "replay", given, res, err, done, published, present)
			if tc.second {
				checkReplay(t, "second replay", given2, res2, err2, done2, published, present)
			}
			checkNoLoss(t, before, purged, added, published, present)
			for _, l := range before {
				if l.Reason == "invalid" && !present[l.Seq] && !purged[l.Seq] {
					t.Errorf("letter %d of reason invalid, not given, removed", l.Seq)
				}
			}
			t.Logf("replayed %d (%v), second %d (%v), %d added, took %s", res.Replayed, err, res2.Replayed, err2, len(added), took)
		})
	}
}

// TestAttackReplayLetterGoneMeanwhile: a letter purged by an operator after the listing is not
// re-published (purged is "for good"): it is reported gone, not replayed, and the others are
// replayed; a letter given twice is published once and replayed at both places. The server answers the deletion of a missing sequence with err_code 10043 ("sequence
// N not found"), which the client does not map to jetstream.ErrMsgNotFound: the replay fails,
// "after N replayed: removing dead letter …", and says the letter was not replayed.
func TestAttackReplayLetterGoneMeanwhile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("purged", func(t *testing.T) {
		t.Parallel()
		q, js := letters(t, many(5)...)
		all, _ := q.All(ctx, Filter{})
		if _, err := q.Purge(ctx, all[2:3], nil); err != nil { // the operator, meanwhile
			t.Fatal(err)
		}
		res, err := q.Replay(ctx, all, ReplayOptions{MaxReplays: 3})
		if err != nil || res.Replayed != 4 || res.Gone != 1 || len(res.GoneLetters) != 1 || res.GoneLetters[0] != all[2].Seq ||
			res.Letters[2].Replayed || !res.Letters[2].Gone || !strings.Contains(res.Letters[2].Reason, "gone") {
			t.Errorf("replay: %+v %v", res, err)
		}
		if published := publishedLetters(t, js, "ORDERS"); published[all[2].Seq] != 0 || len(published) != 4 {
			t.Errorf("published %v: the purged letter %d was published", published, all[2].Seq)
		}
	})
	t.Run("given-twice", func(t *testing.T) {
		t.Parallel()
		q, _ := letters(t, many(40)...)
		all, _ := q.All(ctx, Filter{})
		given := append(all, all[5])
		res, err := q.Replay(ctx, given, ReplayOptions{MaxReplays: 3})
		if err != nil || res.Replayed != len(given) {
			t.Errorf("replay: replayed %d of %d: %v", res.Replayed, len(given), err)
		}
	})
	t.Run("purge-purged", func(t *testing.T) {
		t.Parallel()
		q, _ := letters(t, many(2)...)
		all, _ := q.All(ctx, Filter{})
		if _, err := q.Purge(ctx, all[:1], nil); err != nil {
			t.Fatal(err)
		}
		if n, err := q.Purge(ctx, all, nil); err != nil || n != 2 { // "a letter gone already counts as deleted"
			t.Errorf("purge: %d %v", n, err)
		}
	})
}

// lostReplyJS is a JetStream whose stream's first purge is done by the server but answered too
// late: the caller's context ends meanwhile (an operator's Ctrl-C while the purge is in flight).
type lostReplyJS struct {
	jetstream.JetStream
	cancel func()
	once   *sync.Once
}

func (j lostReplyJS) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	s, err := j.JetStream.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return lostReplyStream{s, j}, nil
}

type lostReplyStream struct {
	jetstream.Stream
	j lostReplyJS
}

func (s lostReplyStream) Purge(ctx context.Context, opts ...jetstream.StreamPurgeOpt) error {
	lost := false
	s.j.once.Do(func() { lost = true })
	if !lost {
		return s.Stream.Purge(ctx, opts...)
	}
	err := s.Stream.Purge(context.Background(), opts...)
	s.j.cancel()
	if err != nil {
		return err
	}
	return context.Canceled
}

// TestAttackReplayCancelledPurgeCounts: a replay cancelled while its purge is in flight: the
// server removed the letters of the purge, whose re-publishes were acknowledged, but the replay
// says they were not replayed ("after N replayed" counts none of them, their outcomes say not
// replayed): the one-by-one removal that follows a failed purge fails too, as the context ended,
// and never sees that they are gone.
func TestAttackReplayCancelledPurgeCounts(t *testing.T) {
	t.Parallel()
	ls := many(600)
	for i := range ls {
		ls[i].Subject = "orders.created.demo"
	}
	q, js := letters(t, ls...)
	all, _ := q.All(context.Background(), Filter{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	once := &sync.Once{}
	q = New(lostReplyJS{JetStream: js, cancel: cancel, once: once}, "")
	done := 0
	res, err := q.Replay(ctx, all, ReplayOptions{MaxReplays: 3, Done: func() { done++ }})
	purged := true
	once.Do(func() { purged = false })
	if !purged {
		t.Fatal("no purge happened: the replay never removed a subject's head in one purge, so the cancel this test is about never came")
	}
	published := publishedLetters(t, js, "ORDERS")
	present := presentLetters(t, New(js, ""))
	gone := 0
	for i, o := range res.Letters {
		if !present[all[i].Seq] && published[all[i].Seq] > 0 {
			gone++
			if !o.Replayed {
				t.Errorf("letter %d re-published and removed, outcome not replayed", o.Seq)
			}
		}
	}
	if gone != res.Replayed {
		t.Errorf("%d letters re-published and removed, replayed %d: %v", gone, res.Replayed, err)
	}
	checkReplay(t, "replay", all, res, err, done, published, present)
	t.Logf("%v", err)
}

// TestAttackReplayCancelKeepsAcknowledged: the docs say that at a failure "the letters already
// published whose acknowledgement still comes … are removed and counted in N". A replay
// cancelled (Ctrl-C) while acknowledged letters await their removal keeps them: their removal
// fails with the context, and so do the acknowledgements that came but were not yet taken. Each
// such letter's event is in ORDERS and its letter in DLQ: a replay of it after the duplicate
// window publishes the event twice.
func TestAttackReplayCancelKeepsAcknowledged(t *testing.T) {
	t.Parallel()
	q, js := letters(t, many(600)...)
	all, _ := q.All(context.Background(), Filter{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := 0
	res, err := q.Replay(ctx, all, ReplayOptions{MaxReplays: 3, Done: func() {
		if done++; done == 1 {
			cancel()
			time.Sleep(300 * time.Millisecond) // the acknowledgements of those in flight come
		}
	}})
	if err != nil && !errors.Is(err, context.Canceled) || err == nil && res.Replayed != len(all) {
		t.Fatalf("replay: replayed %d: %v", res.Replayed, err)
	}
	published := publishedLetters(t, js, "ORDERS")
	present := presentLetters(t, q)
	kept := 0
	for _, l := range all {
		if published[l.Seq] > 0 && present[l.Seq] {
			kept++
		}
	}
	if kept > 0 {
		t.Errorf("%d letters published and acknowledged, kept: %v", kept, err)
	}
	checkReplay(t, "replay", all, res, err, done, published, present)
	t.Logf("%d published, %v", len(published), err)
}

// TestAttackReplayDuplicateOfAnotherLetter: the DLQ stream deleted and created again (a change of
// its storage, a restore) numbers its letters from 1 again. A letter replayed within ORDERS's
// duplicate window of the replay of the old letter of the same sequence is published under the
// same message ID, replay:DLQ:<seq>:1: the server drops it as a duplicate and acknowledges it,
// and the replay removes the letter, whose event was never stored: the event is lost.
func TestAttackReplayDuplicateOfAnotherLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, js := letters(t, many(3)...)
	old, _ := q.All(ctx, Filter{})
	if _, err := q.Replay(ctx, old, ReplayOptions{MaxReplays: 3}); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, "DLQ"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DLQ", Subjects: []string{"dlq.>"}, Duplicates: 2 * time.Minute, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	w := dlq.NewWriter(js)
	for i := 1; i <= 3; i++ {
		if err := w.Write(ctx, letter(uint64(100+i), "demo", "unknown-shop", small("demo", "NEW-"+strconv.Itoa(i)), 0)); err != nil {
			t.Fatal(err)
		}
	}
	fresh, _ := q.All(ctx, Filter{})
	res, err := q.Replay(ctx, fresh, ReplayOptions{MaxReplays: 3})
	left, _ := q.All(ctx, Filter{})
	orders, _ := js.Stream(ctx, "ORDERS")
	info, _ := orders.Info(ctx)
	stored := map[string]bool{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		if m, err := orders.GetMsg(ctx, seq); err == nil {
			stored[string(m.Data)] = true
		}
	}
	for _, l := range fresh {
		gone := !slices.ContainsFunc(left, func(k Letter) bool { return k.Seq == l.Seq })
		if gone && !stored[string(l.Body)] {
			t.Errorf("letter %d (order %s) removed, its event never stored in ORDERS", l.Seq, l.Order)
		}
	}
	t.Logf("replayed %d: %v; %d left", res.Replayed, err, len(left))
}

// TestEditDuplicateOfAnotherLetterKeepsIt: after the DLQ stream is created again, a new letter
// has the sequence of an old one edited within ORDERS's duplicate window, so its edit is published
// under the same message ID (edit:DLQ:1:1) and dropped as a duplicate: the edit fails naming the
// other event, and the letter is kept. An edit repeated for the same letter (the first one's
// removal lost) is a duplicate of its own and removes the letter.
func TestEditDuplicateOfAnotherLetterKeepsIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, js := letters(t, letter(7, "demo", "invalid", orderData("OLD-1", "1"), 0))
	fixed := func(order string) []byte {
		return []byte(`{"specversion":"1.0","id":"e-` + order + `","source":"mall-importer/test","type":"order.created","data":` + orderData(order, "2950") + `}`)
	}
	if _, err := q.Edit(ctx, 1, fixed("OLD-1"), EditOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, "DLQ"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DLQ", Subjects: []string{"dlq.>"}, Duplicates: 2 * time.Minute, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	if err := dlq.NewWriter(js).Write(ctx, letter(9, "demo", "invalid", orderData("NEW-1", "1"), 0)); err != nil {
		t.Fatal(err)
	}
	res, err := q.Edit(ctx, 1, fixed("NEW-1"), EditOptions{})
	if err == nil || !strings.Contains(err.Error(), "another event") || res.Removed {
		t.Fatalf("edit of the new letter 1: %+v, %v; want it refused as a duplicate of another event, the letter kept", res, err)
	}
	if left, _ := q.All(ctx, Filter{}); len(left) != 1 || left[0].Order != "NEW-1" {
		t.Errorf("letters left: %+v; want NEW-1's", left)
	}

	// The same letter's edit published before, its removal lost (a crash): the edit made again is
	// a duplicate of its own (its time attribute, filled in now, differs) and removes the letter.
	q, js = letters(t, letter(9, "demo", "invalid", orderData("NEW-1", "1"), 0))
	dry, err := q.Edit(ctx, 1, fixed("NEW-1"), EditOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := q.All(ctx, Filter{})
	msg := nats.NewMsg(dry.Subject)
	msg.Data = dry.Event
	msg.Header.Set(dlq.HeaderEditedFrom, "1")
	id := replayHeaders(l[0], msg, "DLQ", "edit")
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // a time attribute of its own
	res, err = q.Edit(ctx, 1, fixed("NEW-1"), EditOptions{})
	if err != nil || !res.Duplicate || !res.Removed {
		t.Errorf("the same letter's edit again: %+v, %v; want a duplicate of its own, the letter removed", res, err)
	}
}

// copiesOf counts the messages of stream name whose body is body.
func copiesOf(t *testing.T, js jetstream.JetStream, name string, body []byte) int {
	t.Helper()
	n := 0
	for _, m := range streamMsgs(t, js, name) {
		if bytes.Equal(m.Data, body) {
			n++
		}
	}
	return n
}

// rawLetter stores a message in DLQ on subject with the headers given, as a writer other than the
// worker's (or anyone who may publish to the stream) could.
func rawLetter(t *testing.T, js jetstream.JetStream, subject string, body string, h map[string]string) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = []byte(body)
	for k, v := range h {
		m.Header.Set(k, v)
	}
	if _, err := js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
}

// TestReplayDoesNotPublishALetterGoneMeanwhile: a replay works from a listing taken before it
// began; a letter removed since by someone else is not published again, and is reported gone, not
// replayed: purged by another operator while the replay is paced, or replayed (and removed) by
// another operator's replay and published again past ORDERS' duplicate window, which the worker
// would handle twice.
func TestReplayDoesNotPublishALetterGoneMeanwhile(t *testing.T) {
	t.Parallel()
	t.Run("purged", func(t *testing.T) {
		t.Parallel()
		q, js := letters(t, many(3)...)
		all, err := q.All(t.Context(), Filter{})
		if err != nil || len(all) != 3 {
			t.Fatal(all, err)
		}
		paced, done := 0, 0
		res, err := q.Replay(t.Context(), all, ReplayOptions{MaxReplays: 3, Done: func() { done++ }, Pace: func(context.Context) error {
			if paced++; paced == 2 { // another operator, meanwhile: dlq purge -order O-2 -yes
				if n, err := q.Purge(t.Context(), all[1:2], nil); err != nil || n != 1 {
					t.Errorf("purge: %d %v", n, err)
				}
			}
			return nil
		}})
		if err != nil || res.Replayed != 2 || done != 2 || res.Gone != 1 || !slices.Equal(res.GoneLetters, []uint64{all[1].Seq}) {
			t.Errorf("replay: %+v %v", res, err)
		}
		if o := res.Letters[1]; o.Replayed || o.Refused || !o.Gone || !strings.Contains(o.Reason, "gone") {
			t.Errorf("the purged letter's outcome: %+v", o)
		}
		for i, want := range []int{1, 0, 1} {
			if n := copiesOf(t, js, "ORDERS", all[i].Body); n != want {
				t.Errorf("letter %d: %d copies of its event in ORDERS, want %d", all[i].Seq, n, want)
			}
		}
	})
	t.Run("replayed-by-another", func(t *testing.T) {
		t.Parallel()
		q, js := letters(t, many(2)...)
		s, err := js.Stream(t.Context(), "ORDERS")
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.Duplicates = 300 * time.Millisecond // stands for the 2 minutes of a real stream
		if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
			t.Fatal(err)
		}
		listingB, _ := q.All(t.Context(), Filter{}) // B lists first (a paced run)
		listingA, _ := q.All(t.Context(), Filter{Order: "O-1"})
		if res, err := q.Replay(t.Context(), listingA, ReplayOptions{MaxReplays: 3}); err != nil || res.Replayed != 1 {
			t.Fatalf("A: %+v %v", res, err)
		}
		time.Sleep(600 * time.Millisecond) // past the duplicate window
		res, err := q.Replay(t.Context(), listingB, ReplayOptions{MaxReplays: 3})
		if err != nil || res.Replayed != 1 || res.Gone != 1 || !res.Letters[0].Gone || !res.Letters[1].Replayed {
			t.Errorf("B: %+v %v", res, err)
		}
		for _, l := range listingB {
			if n := copiesOf(t, js, "ORDERS", l.Body); n != 1 {
				t.Errorf("letter %d: %d copies of its event in ORDERS, want 1", l.Seq, n)
			}
		}
	})
}

// TestReplayALetterWithoutItsOriginalSubject: a letter without Dlq-Original-Subject (an older or
// foreign writer's, or its header lost) goes to the subject it is stored on without "dlq.", and
// -shop selects it by that subject; a letter that still cannot be replayed is refused and the
// others are replayed all the same (docs/architecture.md#promises: bad input never stops the stream).
func TestReplayALetterWithoutItsOriginalSubject(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q, js := letters(t, many(1)...)
	headerless := `{"specversion":"1.0","id":"x-1","source":"s","type":"order.created","data":{"shop_id":"shop-0","order_id":"X-1"}}`
	rawLetter(t, js, "dlq.orders.created.shop-0", headerless, map[string]string{dlq.HeaderReason: "unknown-shop"})
	rawLetter(t, js, "dlq.nowhere.shop-0", `{"nowhere":1}`, map[string]string{dlq.HeaderReason: "unknown-shop"})
	w := dlq.NewWriter(js)
	for _, l := range many(3)[1:] {
		l.Sequence += 10
		if err := w.Write(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	byShop, err := q.All(ctx, Filter{Shop: "shop-0"})
	if err != nil || len(byShop) != 2 || byShop[1].Seq != 2 || byShop[1].Subject != "orders.created.shop-0" || byShop[1].Order != "X-1" ||
		byShop[1].Unreplayable != "" {
		t.Errorf("-shop shop-0: %+v %v, want letters 1 and 2 (headerless, orders.created.shop-0)", byShop, err)
	}
	all, _ := q.All(ctx, Filter{Reason: "unknown-shop"})
	res, err := q.Replay(ctx, all, ReplayOptions{MaxReplays: 3})
	if err != nil || len(all) != 5 || res.Replayed != 4 || res.Refused != 1 || res.RefusedLetters[0].Seq != 3 || !res.Letters[2].Refused ||
		!strings.Contains(res.Letters[2].Reason, "nowhere.shop-0 is none the worker consumes") {
		t.Errorf("replay: %+v %v", res, err)
	}
	if n := copiesOf(t, js, "ORDERS", []byte(headerless)); n != 1 {
		t.Errorf("the headerless letter's event: %d copies in ORDERS, want 1", n)
	}
	if left := presentLetters(t, q); len(left) != 1 || !left[3] {
		t.Errorf("letters left: %v, want only the refused one, 3", left)
	}
}

// TestReplayRefusesHostileHeaders: a letter's headers may be written by anyone who may publish to
// DLQ. A Dlq-Original-Subject that disagrees with the subject the letter is stored on, or that
// names a subject the worker does not consume (an outcome, credit.ok.…), is refused, not
// published there; a Dlq-Replay-Count that is no count (-1000 would pass every -max-replays) is
// refused; a missing or unreadable Dlq-Failed-At is the time the letter was stored, not year 1,
// which every -until would select (and purge).
func TestReplayRefusesHostileHeaders(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q, js := letters(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RESULTS", Subjects: []string{"credit.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	for _, l := range []struct{ subject, body, original, count, failedAt string }{
		{"dlq.orders.created.demo", `{"forged":1}`, "credit.ok.demo", "", now},                // 1: another subject than its own
		{"dlq.credit.ok.demo", `{"outcome":1}`, "credit.ok.demo", "", now},                    // 2: an outcome's subject
		{"dlq.orders.created.demo", `{"negative":1}`, "orders.created.demo", "-1000", now},    // 3
		{"dlq.orders.created.demo", `{"word":1}`, "orders.created.demo", "two", now},          // 4
		{"dlq.orders.created.demo", `{"fresh":1}`, "orders.created.demo", "", ""},             // 5: no Dlq-Failed-At
		{"dlq.orders.created.demo", `{"badtime":1}`, "orders.created.demo", "1", "yesterday"}, // 6
	} {
		h := map[string]string{dlq.HeaderOriginalSubject: l.original, dlq.HeaderReason: "invalid"}
		if l.count != "" {
			h[dlq.HeaderReplayCount] = l.count
		}
		if l.failedAt != "" {
			h[dlq.HeaderFailedAt] = l.failedAt
		}
		rawLetter(t, js, l.subject, l.body, h)
	}
	if old, err := q.All(ctx, Filter{Until: time.Now().Add(-720 * time.Hour)}); err != nil || len(old) != 0 {
		t.Errorf("-until 720h selects %+v (%v): letters stored just now", old, err)
	}
	fresh, err := q.All(ctx, Filter{Since: time.Now().Add(-time.Minute)})
	if err != nil || len(fresh) != 6 {
		t.Errorf("-since 1m selects %d letters (%v), want the 6 stored just now", len(fresh), err)
	}
	res, err := q.Replay(ctx, fresh, ReplayOptions{MaxReplays: 3})
	if err != nil || res.Replayed != 2 || res.Refused != 4 {
		t.Errorf("replay: %+v %v, want 2 replayed (5, 6) and 4 refused", res, err)
	}
	for i, want := range []string{
		"its Dlq-Original-Subject credit.ok.demo disagrees with the subject it is stored on, dlq.orders.created.demo",
		"its original subject credit.ok.demo is none the worker consumes",
		`its Dlq-Replay-Count "-1000" is no count of replays`,
		`its Dlq-Replay-Count "two" is no count of replays`,
	} {
		if o := res.Letters[i]; !o.Refused || !strings.Contains(o.Reason, want) {
			t.Errorf("letter %d: %+v, want refused: %s", o.Seq, o, want)
		}
	}
	if n := len(streamMsgs(t, js, "RESULTS")); n != 0 {
		t.Errorf("a replay published %d messages to RESULTS", n)
	}
	if published := publishedLetters(t, js, "ORDERS"); len(published) != 2 || published[5] != 1 || published[6] != 1 {
		t.Errorf("published to ORDERS: %v, want letters 5 and 6", published)
	}
}

// A letter's Dlq-Original-Subject of any length (a writer with rights on dlq.> sets it) is
// clipped in the reason its replay is refused with, which the console and publisher show.
func TestReplayRefusalClipsAHostileSubject(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q, js := letters(t)
	long := "credit.ok." + strings.Repeat("x", 5000)
	rawLetter(t, js, "dlq.orders.created.demo", `{"long":1}`, map[string]string{dlq.HeaderOriginalSubject: long, dlq.HeaderReason: "invalid"})
	all, err := q.All(ctx, Filter{})
	if err != nil || len(all) != 1 {
		t.Fatalf("list: %d letters, %v", len(all), err)
	}
	res, err := q.Replay(ctx, all, ReplayOptions{MaxReplays: 3})
	if err != nil || res.Refused != 1 {
		t.Fatalf("replay: %+v %v, want the letter refused", res, err)
	}
	if r := res.Letters[0].Reason; len(r) > 1000 || !strings.Contains(r, "disagrees with the subject it is stored on") {
		t.Errorf("refused with a reason of %d bytes: %.200s", len(r), r)
	}
}
