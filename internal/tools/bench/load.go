package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// Buyer e-mails that pick the sandbox's decision (docs/atodene.md#decisions).
const (
	emailOK     = "taro@example.jp"      // auto OK
	emailReview = "review-ok@example.jp" // 審査中, then OK after the review delay
)

// orderSpec says which orders a publish makes: IDs prefix + zero-padded index from..from+n-1.
type orderSpec struct {
	shop string
	// shops, if set, replaces shop: order i goes to shops[i % len(shops)], so that the shops'
	// orders are interleaved in the stream.
	shops  []string
	prefix string
	from   int
	n      int
	email  string
}

func (o orderSpec) id(i int) string { return fmt.Sprintf("%s%07d", o.prefix, o.from+i) }

// shopOf is the shop of order i.
func (o orderSpec) shopOf(i int) string {
	if len(o.shops) > 0 {
		return o.shops[i%len(o.shops)]
	}
	return o.shop
}

// orderEvent is an order.created event as a mall importer publishes it: 2 × 1,200 yen + 550
// shipping = 2,950 billed, which the shop's fee table (add 205) sends as 3,155.
func orderEvent(shop, order, email string, at time.Time) (id string, body []byte) {
	data, _ := json.Marshal(map[string]any{
		"shop_id": shop, "order_id": order, "ordered_at": at.Format(time.RFC3339),
		"buyer": map[string]any{"name": "加藤 太郎", "name_kana": "カトウ タロウ", "zip": "150-0001",
			"address": "東京都渋谷区神宮前1-1-1", "phone": "03-1234-5678", "email": email},
		"items":        []any{map[string]any{"name": "緑茶ティーバッグ 50包", "unit_price": 1200, "quantity": 2}},
		"shipping_fee": 550, "billed_amount": 2950, "invoice_delivery": "separate",
	})
	id = "bench-" + shop + "-" + order
	body, _ = json.Marshal(events.Envelope{SpecVersion: events.SpecVersion, ID: id, Source: "atodene-bench",
		Type: events.TypeOrderCreated, Time: at.Format(time.RFC3339), DataContentType: "application/json", Data: data})
	return id, body
}

// publisher publishes orders asynchronously, a bounded number in flight, and counts failures.
type publisher struct {
	js     jetstream.JetStream
	failed atomic.Int64
	// noTimes makes publish keep no send times (it returns nil): a million orders' map would
	// cost the bench a hundred megabytes.
	noTimes bool
}

func newPublisher(nc *nats.Conn) (*publisher, error) {
	p := &publisher{}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { p.failed.Add(1) }))
	p.js = js
	return p, err
}

// publish sends the orders of spec. With rate > 0 it paces them at rate per second and returns
// each order's intended send time (the schedule, so that a stalled publisher cannot hide
// latency); with rate 0 it sends as fast as the server acknowledges and returns the send times.
// It returns once every publish is acknowledged.
func (p *publisher) publish(ctx context.Context, spec orderSpec, rate float64) (map[string]time.Time, error) {
	var sent map[string]time.Time
	if !p.noTimes {
		sent = make(map[string]time.Time, spec.n)
	}
	start := time.Now()
	for i := range spec.n {
		at := time.Now()
		if rate > 0 {
			at = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if wait := time.Until(at); wait > time.Millisecond {
				if err := childproc.Sleep(ctx, wait); err != nil {
					return sent, err
				}
			}
		}
		order, shop := spec.id(i), spec.shopOf(i)
		id, body := orderEvent(shop, order, spec.email, at)
		msg := nats.NewMsg(events.Subject(events.TypeOrderCreated, shop))
		msg.Data = body
		msg.Header.Set("Content-Type", events.ContentType)
		// A full window of unacknowledged publishes waits for acknowledgements (up to 30 s) rather
		// than failing after the client's default 200 ms: an R3 stream on a loaded machine
		// acknowledges more slowly.
		if _, err := p.js.PublishMsgAsync(msg, jetstream.WithMsgID(id), jetstream.WithStallWait(30*time.Second)); err != nil {
			return sent, fmt.Errorf("publishing order %s: %w", order, err)
		}
		if sent != nil {
			sent[order] = at
		}
		if i%1024 == 0 && ctx.Err() != nil {
			return sent, ctx.Err()
		}
	}
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return sent, ctx.Err()
	case <-time.After(2 * time.Minute):
		return sent, errors.New("publishes not acknowledged after 2 minutes")
	}
	if n := p.failed.Load(); n > 0 {
		return sent, fmt.Errorf("%d publishes failed", n)
	}
	return sent, nil
}

// outcome is a credit.* event as the bench sees it.
type outcome struct {
	typ string    // credit.ok, credit.pending, ...
	at  time.Time // when RESULTS stored it (the server's clock, the machine's clock)
	tx  string    // transaction ID, when the collector reads the data
}

func (o outcome) final() bool { return o.typ != events.TypeCreditPending }

// collector follows RESULTS from its start and keeps, per order, the first final credit outcome
// and the first credit.pending.
type collector struct {
	readTx bool
	// dense, if set, keeps the outcomes of the orders it numbers 0..len(denseFinal)-1 in
	// denseFinal and densePending (stored time, Unix ns; 0 for none) instead of the maps: 16
	// bytes an order rather than a hundred and more.
	dense                    func(order string) (int, bool)
	denseFinal, densePending []int64
	nPending                 atomic.Int64 // orders with a credit.pending, in dense mode

	mu       sync.Mutex
	finals   map[string]outcome
	pendings map[string]outcome
	extra    int // final outcomes beyond the first of an order: published twice
	changed  chan struct{}

	nFinal atomic.Int64
	cc     jetstream.ConsumeContext
}

// collect starts a collector on the stack's RESULTS stream. readTx also decodes each outcome's
// data for its transaction ID (the latency scenario joins it with the sandbox's own timings).
func (s *benchStack) collect(ctx context.Context, readTx bool) (*collector, error) {
	return s.collectInto(ctx, &collector{readTx: readTx})
}

// collectDense starts a collector that keeps the outcomes of n orders numbered by index (a
// number in 0..n-1, false for an order of no interest) in two slices.
func (s *benchStack) collectDense(ctx context.Context, n int, index func(order string) (int, bool)) (*collector, error) {
	return s.collectInto(ctx, &collector{dense: index, denseFinal: make([]int64, n), densePending: make([]int64, n)})
}

func (s *benchStack) collectInto(ctx context.Context, c *collector) (*collector, error) {
	c.finals, c.pendings, c.changed = map[string]outcome{}, map[string]outcome{}, make(chan struct{}, 1)
	cons, err := s.JS.OrderedConsumer(ctx, resultsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"credit.>"}})
	if err != nil {
		return nil, fmt.Errorf("following %s: %w", resultsStream, err)
	}
	c.cc, err = cons.Consume(c.handle)
	if err != nil {
		return nil, fmt.Errorf("following %s: %w", resultsStream, err)
	}
	return c, nil
}

// outcomeOrder reads the order of an outcome from its message ID,
// <shop>:<order>:<epoch>:<version>:<type> (docs/architecture.md), without decoding the body.
func outcomeOrder(msgID string) (string, bool) {
	parts := strings.Split(msgID, ":")
	if len(parts) != 5 {
		return "", false
	}
	return parts[1], true
}

func (c *collector) handle(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	typ, _, err := events.ParseSubject(m.Subject())
	if err != nil {
		return
	}
	order, ok := outcomeOrder(m.Headers().Get(jetstream.MsgIDHeader))
	if !ok {
		return
	}
	if c.dense != nil {
		c.handleDense(order, typ, md.Timestamp)
		return
	}
	o := outcome{typ: typ, at: md.Timestamp}
	if c.readTx {
		var env events.Envelope
		var data events.Credit
		if json.Unmarshal(m.Data(), &env) == nil && json.Unmarshal(env.Data, &data) == nil {
			o.tx = data.TransactionID
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !o.final() {
		if _, seen := c.pendings[order]; !seen {
			c.pendings[order] = o
		}
		return
	}
	if _, seen := c.finals[order]; seen {
		c.extra++
		return
	}
	c.finals[order] = o
	c.nFinal.Add(1)
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *collector) handleDense(order, typ string, at time.Time) {
	i, ok := c.dense(order)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if typ == events.TypeCreditPending {
		if c.densePending[i] == 0 {
			c.densePending[i] = at.UnixNano()
			c.nPending.Add(1)
		}
		return
	}
	if c.denseFinal[i] != 0 {
		c.extra++
		return
	}
	c.denseFinal[i] = at.UnixNano()
	c.nFinal.Add(1)
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// stop stops following RESULTS.
func (c *collector) stop() { c.cc.Stop() }

// wait returns once n orders have a final outcome, or fails after timeout without progress.
func (c *collector) wait(ctx context.Context, n int, idle time.Duration) error {
	last, lastProgress := c.nFinal.Load(), time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		got := c.nFinal.Load()
		if got >= int64(n) {
			return nil
		}
		if got != last {
			last, lastProgress = got, time.Now()
		}
		if time.Since(lastProgress) > idle {
			return fmt.Errorf("%d of %d orders have a final outcome; none for %s", got, n, idle)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.changed:
		case <-tick.C:
		}
	}
}

// finalsOf returns the final outcomes of the orders whose ID starts with prefix.
func (c *collector) finalsOf(prefix string) map[string]outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]outcome{}
	for k, v := range c.finals {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

// span returns the first and last stored time of the final outcomes of orders starting with
// prefix, and their number.
func span(finals map[string]outcome) (first, last time.Time, n int) {
	for _, o := range finals {
		if first.IsZero() || o.at.Before(first) {
			first = o.at
		}
		if o.at.After(last) {
			last = o.at
		}
		n++
	}
	return first, last, n
}
