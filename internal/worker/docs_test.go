package worker

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
)

// streamDoc is what docs/architecture.md says of the streams: the table's rows by stream name,
// the paragraph before the table and the one after it.
type streamDoc struct {
	rows             map[string][]string // the cells of each row
	intro, consumers string
}

const architectureDoc = "../../docs/architecture.md"

func readStreamDoc(t *testing.T) streamDoc {
	t.Helper()
	raw, err := os.ReadFile(architectureDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	_, section, ok := strings.Cut(doc, "\n## Streams, subjects and consumers\n")
	if !ok {
		t.Fatalf("%s has no section Streams, subjects and consumers", architectureDoc)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	d := streamDoc{rows: map[string][]string{}}
	var paragraphs []string
	for _, p := range strings.Split(section, "\n\n") {
		p = strings.TrimSpace(p)
		if !strings.HasPrefix(p, "|") {
			paragraphs = append(paragraphs, strings.ReplaceAll(p, "\n", " "))
			continue
		}
		for _, l := range strings.Split(p, "\n") {
			if name, _, ok := strings.Cut(strings.TrimPrefix(l, "| `"), "`"); ok && strings.HasPrefix(l, "| `") {
				d.rows[name] = strings.Split(strings.TrimSuffix(strings.TrimPrefix(l, "| "), " |"), " | ")
			}
		}
	}
	for _, p := range paragraphs {
		switch {
		case strings.HasPrefix(p, "The worker creates or updates"):
			d.intro = p
		case strings.HasPrefix(p, "The consumers are"):
			d.consumers = p
		}
	}
	if d.intro == "" || d.consumers == "" {
		t.Fatalf("%s: the streams section lost its paragraph on the streams or on the consumers", architectureDoc)
	}
	return d
}

// row returns the cells of a stream's row: stream, subjects, limits, written by, consumer.
func (d streamDoc) row(t *testing.T, name string) []string {
	t.Helper()
	r, ok := d.rows[name]
	if !ok {
		t.Errorf("%s: stream %s has no row", architectureDoc, name)
		return nil
	}
	if len(r) != 5 {
		t.Errorf("%s: the row of %s has %d cells, want 5", architectureDoc, name, len(r))
		return nil
	}
	return r
}

// says reports whether text holds phrase as words (not as a part of a longer number or word).
func says(text, phrase string) bool {
	return regexp.MustCompile(`(^|[^0-9A-Za-z])` + regexp.QuoteMeta(phrase) + `($|[^0-9A-Za-z])`).MatchString(text)
}

// TestStreamTableMatchesTheStreams: the stream table of docs/architecture.md has one row per
// stream the worker creates, with its subjects and its share of -stream-bytes, and what the
// paragraph before it says of all of them is true.
func TestStreamTableMatchesTheStreams(t *testing.T) {
	t.Parallel()
	d := readStreamDoc(t)
	s := config.DefaultSettings()
	s.StreamReplicas = 3
	configs := streamConfigs(s, 1<<20)
	for i, sc := range configs {
		r := d.row(t, sc.Name)
		if r == nil {
			continue
		}
		if share := fmt.Sprintf("%d%% of `-stream-bytes`", streamShares[i]); !strings.Contains(r[2], share) {
			t.Errorf("row of %s does not say %s", sc.Name, share)
		}
		for _, subj := range sc.Subjects {
			if strings.HasPrefix(subj, maxDeliveriesTopic) {
				continue // written with the ORDERS stream's name as a placeholder
			}
			if !strings.Contains(r[1], "`"+subj+"`") {
				t.Errorf("row of %s does not list subject %s", sc.Name, subj)
			}
		}
		if sc.Storage != jetstream.FileStorage || sc.Retention != jetstream.LimitsPolicy || sc.Replicas != s.StreamReplicas {
			t.Errorf("stream %s: storage %v, retention %v, %d replicas; the page says file storage, limits retention and -stream-replicas (%d)",
				sc.Name, sc.Storage, sc.Retention, sc.Replicas, s.StreamReplicas)
		}
	}
	if len(d.rows) != len(configs) {
		t.Errorf("%d rows, %d streams", len(d.rows), len(configs))
	}
	if !strings.Contains(d.intro, "All use file storage, limits retention and `-stream-replicas` replicas") {
		t.Errorf("the paragraph before the table no longer says what all streams share:\n%s", d.intro)
	}
	var sum int64
	for _, p := range streamShares {
		sum += p
	}
	if sum != 100 || len(streamShares) != len(configs) {
		t.Errorf("shares %v: want one per stream, 100%% in all", streamShares)
	}
}

// TestStreamTableMatchesTheServer sets the streams and consumers up on a real server and checks
// the stream table, and the paragraph on the consumers after it, against what the server holds:
// limits, duplicate windows (the server's default included), what a full stream does, the
// consumers and their settings.
func TestStreamTableMatchesTheServer(t *testing.T) {
	t.Parallel()
	d := readStreamDoc(t)
	_, js := testenv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := config.DefaultSettings()
	s.StreamBytes = 64 << 20 // the shares are what the page states; the test server's disk is small
	if _, err := setup(ctx, js, s); err != nil {
		t.Fatal(err)
	}

	durables := map[string][]jetstream.ConsumerConfig{}
	for _, c := range []struct{ stream, name string }{
		{s.OrdersStream, ordersConsumer}, {PollStream, pollConsumer}, {AdvisoryStream, advisoryConsumer},
	} {
		cons, err := js.Consumer(ctx, c.stream, c.name)
		if err != nil {
			t.Fatal(err)
		}
		durables[c.stream] = append(durables[c.stream], cons.CachedInfo().Config)
	}

	for _, want := range streamConfigs(s, js.Conn().MaxPayload()) {
		st, err := js.Stream(ctx, want.Name)
		if err != nil {
			t.Fatal(err)
		}
		sc := st.CachedInfo().Config
		r := d.row(t, sc.Name)
		if r == nil {
			continue
		}
		limits, consumer := r[2], r[4]
		check := func(ok bool, format string, args ...any) {
			t.Helper()
			if !ok {
				t.Errorf("row of %s: %s\n%s", sc.Name, fmt.Sprintf(format, args...), limits)
			}
		}
		if sc.MaxAge%(24*time.Hour) != 0 {
			t.Errorf("stream %s: max age %v, not whole days: teach this test how the page writes it", sc.Name, sc.MaxAge)
		} else {
			days := fmt.Sprintf("(%d days)", sc.MaxAge/(24*time.Hour))
			check(strings.Contains(limits, "max age") && strings.Contains(limits, days), "max age %v, but the row does not say %s", sc.MaxAge, days)
		}
		window := fmt.Sprintf("(%d min)", sc.Duplicates/time.Minute)
		check(sc.Duplicates%time.Minute == 0 && strings.Contains(limits, "duplicate window") && strings.Contains(limits, window),
			"duplicate window %v, but the row does not say duplicate window … %s", sc.Duplicates, window)
		switch sc.Discard {
		case jetstream.DiscardNew:
			check(says(limits, "refuses new messages when full"), "discards new messages when full")
		case jetstream.DiscardOld:
			check(says(limits, "drops its oldest messages when full"), "discards old messages when full")
		}
		check((sc.MaxMsgsPerSubject == 1) == says(limits, "one message per subject"), "%d messages per subject", sc.MaxMsgsPerSubject)
		check(sc.AllowMsgSchedules == says(limits, "message schedules allowed"), "message schedules allowed: %v", sc.AllowMsgSchedules)
		check((sc.MaxMsgSize > 0) == strings.Contains(limits, "`max_payload`"), "largest message %d", sc.MaxMsgSize)

		cs := durables[sc.Name]
		if len(cs) == 0 && !strings.HasPrefix(consumer, "none") {
			t.Errorf("row of %s names a consumer, but the worker has none on it: %s", sc.Name, consumer)
		}
		for _, c := range cs {
			filter := "all subjects"
			if c.FilterSubject != "" {
				filter = "filter `" + c.FilterSubject + "`"
			}
			if !strings.Contains(consumer, "`"+c.Durable+"`, "+filter) {
				t.Errorf("row of %s does not say `%s`, %s: %s", sc.Name, c.Durable, filter, consumer)
			}
		}
	}

	// The paragraph on the consumers, against each consumer as the server holds it.
	for _, cs := range durables {
		for _, c := range cs {
			checkConsumerParagraph(t, d.consumers, c, s)
		}
	}
}

// checkConsumerParagraph checks what the page says all consumers share against one of them.
func checkConsumerParagraph(t *testing.T, p string, c jetstream.ConsumerConfig, s config.Settings) {
	t.Helper()
	wrong := func(format string, args ...any) {
		t.Helper()
		t.Errorf("consumer %s: %s; the page says:\n%s", c.Durable, fmt.Sprintf(format, args...), p)
	}
	if c.AckPolicy != jetstream.AckExplicitPolicy || !says(p, "explicit acks") {
		wrong("ack policy %v", c.AckPolicy)
	}
	if c.DeliverPolicy != jetstream.DeliverAllPolicy || !says(p, "deliver-all") {
		wrong("deliver policy %v", c.DeliverPolicy)
	}
	if ack := fmt.Sprintf("`AckWait` = `-ack-wait` (%d min)", s.AckWait/time.Minute); c.AckWait != s.AckWait || !strings.Contains(p, ack) {
		wrong("AckWait %v, -ack-wait %v: want %q", c.AckWait, s.AckWait, ack)
	}
	if md := fmt.Sprintf("`MaxDeliver` = `-max-deliveries` (%d)", s.MaxDeliveries); c.MaxDeliver != s.MaxDeliveries || !strings.Contains(p, md) {
		wrong("MaxDeliver %d, -max-deliveries %d: want %q", c.MaxDeliver, s.MaxDeliveries, md)
	}
	switch k := c.MaxAckPending / s.Concurrency; {
	case c.MaxAckPending%s.Concurrency != 0 || k == 0:
		wrong("MaxAckPending %d is not a multiple of -concurrency %d: say how it follows from the settings, and teach this test", c.MaxAckPending, s.Concurrency)
	case k == 1:
		if !strings.Contains(p, "`MaxAckPending` = `-concurrency`") {
			wrong("MaxAckPending %d = -concurrency", c.MaxAckPending)
		}
	default:
		if want := fmt.Sprintf("`MaxAckPending` = %d × `-concurrency`", k); !strings.Contains(p, want) {
			wrong("MaxAckPending %d: want %q", c.MaxAckPending, want)
		}
	}
}
