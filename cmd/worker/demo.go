//go:build !noembedded

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/termtable"
)

// demoOrder is one order of the demo batch and the sandbox rule it meets.
type demoOrder struct {
	id, rule, email string
	billed          int64 // before the fee table; 0 = 2,950
	bad             bool  // invalid input: ends as a dead letter
}

var demoBatch = []demoOrder{
	{id: "DEMO-OK", rule: "default: auto OK", email: "taro@example.jp"},
	{id: "DEMO-NG", rule: "ng…: auto NG", email: "ng-hanako@example.jp"},
	{id: "DEMO-LIMIT", rule: "billed over 55,000: NG", email: "jiro@example.jp", billed: 60000},
	{id: "DEMO-REVIEW-OK", rule: "review-ok…: 審査中, then OK", email: "review-ok@example.jp"},
	{id: "DEMO-REVIEW-NG", rule: "review-ng…: 審査中, then NG", email: "review-ng@example.jp"},
	{id: "DEMO-HOLD", rule: "hold…: 審査中, 保留, then NG", email: "hold@example.jp"},
	{id: "DEMO-SLOW", rule: "slow…: OK after the slow delay", email: "slow@example.jp"},
	{id: "DEMO-BAD-ZIP", rule: "invalid zip: dead letter", email: "taro@example.jp", bad: true},
}

// demoSandbox shortens the sandbox's delays so that the demo ends in seconds.
var demoSandbox = sandbox.Config{ReviewDelay: 3 * time.Second, HoldDelay: 3 * time.Second, SlowDelay: 2 * time.Second}

// runDemo publishes the demo batch to the demo shop, waits until every order is settled (a final
// outcome or a dead letter), prints a table of what happened to each and returns.
func runDemo(ctx context.Context, natsURL string, out io.Writer) error {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return fmt.Errorf("demo: connecting to NATS: %w", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	// A suffix per run keeps order IDs (and so outcome message IDs) apart from earlier runs
	// stored in the same data directory.
	run := strconv.FormatInt(time.Now().Unix()%(36*36*36*36*36), 36)
	for _, o := range demoBatch {
		o.id += "-" + run
		if err := publishDemoOrder(ctx, js, o, demoMsgID(o)); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "demo: published %d orders to orders.created.%s; waiting for their outcomes\n", len(demoBatch), DemoShopID)
	history, err := watchDemo(ctx, js, run)
	if err != nil {
		return err
	}
	var tb termtable.Table // the rules hold Japanese text (審査中, 保留)
	tb.Row("ORDER", "SANDBOX RULE", "OUTCOMES", "FEE", "BILLED")
	for _, o := range demoBatch {
		h := history[o.id+"-"+run]
		tb.Row(o.id, o.rule, strings.Join(h.steps, " → "), h.fee, h.billed)
	}
	return tb.Write(out)
}

// publishSamples publishes the demo batch once the worker has made its inbound stream (named
// stream), so that the embedded console shows orders in every state from the start; it gives up
// when ctx ends. Each order keeps its message ID across tries: a publish whose
// acknowledgement was lost and is tried again is dropped by the stream as a duplicate.
func publishSamples(ctx context.Context, natsURL, stream string, out io.Writer, log *zap.Logger) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		log.Warn("sample orders: connecting to NATS", zap.Error(err))
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for {
		_, err := js.Stream(ctx, stream)
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			log.Warn("sample orders: looking for the inbound stream", zap.String("stream", stream), zap.Error(err))
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return
		}
	}
	run := strconv.FormatInt(time.Now().Unix()%(36*36*36*36*36), 36)
	for _, o := range demoBatch {
		o.id += "-" + run
		msgID := demoMsgID(o)
		for try := 1; ; try++ {
			err := publishDemoOrder(ctx, js, o, msgID)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			if try == 5 {
				log.Warn("sample orders: publishing", zap.Int("tries", try), zap.Error(err))
				return
			}
			if !sleep(ctx, 200*time.Millisecond) {
				return
			}
		}
	}
	fmt.Fprintf(out, "published %d sample orders to orders.created.%s, one for each rule of the sandbox: the console shows them\n", len(demoBatch), DemoShopID)
}

// demoMsgID is the message ID of a publish of o, the same for each of its tries.
func demoMsgID(o demoOrder) string { return fmt.Sprintf("demo-%s-%d", o.id, time.Now().UnixNano()) }

// sleep waits for d and says whether ctx is still on.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func publishDemoOrder(ctx context.Context, js jetstream.JetStream, o demoOrder, id string) error {
	billed := o.billed
	if billed == 0 {
		billed = 2950
	}
	zip := "150-0001"
	if o.bad {
		zip = "1500"
	}
	data, _ := json.Marshal(map[string]any{
		"shop_id": DemoShopID, "order_id": o.id, "ordered_at": time.Now().Format(time.RFC3339),
		"buyer": map[string]any{"name": "加藤 太郎", "name_kana": "カトウ タロウ", "zip": zip,
			"address": "東京都渋谷区神宮前1-1-1", "phone": "03-1234-5678", "email": o.email},
		"items":        []any{map[string]any{"name": "緑茶ティーバッグ 50包", "unit_price": billed - 550, "quantity": 1}},
		"shipping_fee": 550, "billed_amount": billed,
	})
	body, _ := json.Marshal(events.Envelope{SpecVersion: events.SpecVersion, ID: id, Source: "worker-demo",
		Type: events.TypeOrderCreated, Time: time.Now().Format(time.RFC3339), DataContentType: "application/json", Data: data})
	if _, err := js.Publish(ctx, events.Subject(events.TypeOrderCreated, DemoShopID), body, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("demo: publishing %s: %w", o.id, err)
	}
	return nil
}

type demoHistory struct {
	steps       []string
	fee, billed string
	settled     bool
}

// watchDemo follows RESULTS and DLQ from their start (so an outcome published before it
// subscribed is not missed; the run suffix tells this run's orders apart) until every demo order
// is settled or ctx ends.
func watchDemo(ctx context.Context, js jetstream.JetStream, run string) (map[string]*demoHistory, error) {
	history := map[string]*demoHistory{}
	for _, o := range demoBatch {
		history[o.id+"-"+run] = &demoHistory{}
	}
	msgs := make(chan jetstream.Msg, 64)
	for _, stream := range []string{"RESULTS", "DLQ"} {
		c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return nil, fmt.Errorf("demo: following %s: %w", stream, err)
		}
		cc, err := c.Consume(func(m jetstream.Msg) { msgs <- m })
		if err != nil {
			return nil, fmt.Errorf("demo: following %s: %w", stream, err)
		}
		defer cc.Stop()
	}
	timeout := time.After(2 * time.Minute)
	for pending := len(demoBatch); pending > 0; {
		select {
		case <-ctx.Done():
			return history, ctx.Err()
		case <-timeout:
			return history, fmt.Errorf("demo: %d orders not settled after 2 minutes", pending)
		case m := <-msgs:
			if h, order, step := demoStep(m); h != nil && history[order] != nil && !history[order].settled {
				dh := history[order]
				dh.steps = append(dh.steps, step)
				dh.fee, dh.billed = h.fee, h.billed
				if h.settled {
					dh.settled = true
					pending--
				}
			}
		}
	}
	return history, nil
}

// demoStep reads one outcome or dead letter.
func demoStep(m jetstream.Msg) (*demoHistory, string, string) {
	if strings.HasPrefix(m.Subject(), "dlq.") {
		var env events.Envelope
		var o struct {
			OrderID string `json:"order_id"`
		}
		_ = json.Unmarshal(m.Data(), &env)
		_ = json.Unmarshal(env.Data, &o)
		return &demoHistory{settled: true, fee: "-", billed: "-"}, o.OrderID, "dead letter (" + m.Headers().Get("Dlq-Reason") + ")"
	}
	var env events.Envelope
	var c events.Credit
	if json.Unmarshal(m.Data(), &env) != nil || json.Unmarshal(env.Data, &c) != nil {
		return nil, "", ""
	}
	step := env.Type
	if c.Review != "" {
		step += "(" + c.Review + ")"
	}
	settled := env.Type != events.TypeCreditPending
	return &demoHistory{settled: settled, fee: fmt.Sprint(c.Fee), billed: fmt.Sprint(c.BilledAmount)}, c.OrderID, step
}
