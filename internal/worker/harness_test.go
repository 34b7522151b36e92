package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// harness runs a worker against an in-process NATS server, the shared Redis (own key prefix) and
// a sandbox, with a poll schedule of seconds.
type harness struct {
	t       *testing.T
	nats    *testenv.NATS
	nc      *nats.Conn
	js      jetstream.JetStream
	sandbox *httptest.Server
	sbURL   string
	deps    Deps
	stop    context.CancelFunc
	done    chan error
}

// harnessOpts change the defaults of newHarness.
type harnessOpts struct {
	shops     []string               // default: shop-a
	sandbox   sandbox.Config         // default: review 1.5s, hold 4s, slow 3s
	settings  func(*config.Settings) // applied last
	redis     redis.UniversalClient  // default: the shared Redis
	logger    *zap.Logger            // default: the test's log
	invoice   config.InvoiceDelivery // the shops' invoice delivery; default separate
	natsStore int64                  // the JetStream store's size; default the server's
	// shopsEdit, if set, changes the shops before they are validated.
	shopsEdit func([]config.Shop)
	tracing   trace.TracerProvider // Deps.Tracing; default nil: tracing off
}

func newHarness(t *testing.T) *harness { return newHarnessWith(t, harnessOpts{}) }

func newHarnessWith(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	if len(o.shops) == 0 {
		o.shops = []string{"shop-a"}
	}
	if o.invoice == "" {
		o.invoice = config.InvoiceSeparate
	}
	if o.sandbox.ReviewDelay == 0 {
		o.sandbox.ReviewDelay, o.sandbox.HoldDelay, o.sandbox.SlowDelay = 1500*time.Millisecond, 4*time.Second, 3*time.Second
	}
	h := &harness{t: t, nats: testenv.StartNATSStore(t, o.natsStore)}
	// Each shop its own ATODENE account, as shops that share one need order_id_prefixes.
	accounts := make([]sandbox.Shop, len(o.shops))
	for i := range o.shops {
		accounts[i] = sandbox.DemoShop
		if i > 0 {
			accounts[i].ShopCode = fmt.Sprintf("demo%08d", i+1)
		}
	}
	if len(o.sandbox.Shops) == 0 {
		o.sandbox.Shops = accounts
	}
	sb, err := sandbox.New(o.sandbox)
	if err != nil {
		t.Fatal(err)
	}
	h.sandbox = httptest.NewServer(sb)
	t.Cleanup(func() { sb.Close(); h.sandbox.Close() })
	h.sbURL = h.sandbox.URL

	var list []config.Shop
	for i, id := range o.shops {
		list = append(list, config.Shop{ID: id, Atodene: config.Atodene{
			BaseURL: h.sbURL + "/api/", ShopCode: accounts[i].ShopCode, LinkID: sandbox.DemoShop.LinkID,
			LinkPassword: config.NewSecret(sandbox.DemoShop.LinkPassword), InvoiceDelivery: o.invoice,
		}, Fees: fees.Table{Mode: fees.ModeAdd, Rows: []fees.Row{{Min: 1, Max: 999999, Fee: 205}}}})
	}
	if o.shopsEdit != nil {
		o.shopsEdit(list)
	}
	shops, err := config.NewShops(list)
	if err != nil {
		t.Fatal(err)
	}
	rdb, prefix := testenv.Redis(t)
	if o.redis != nil {
		rdb = o.redis
	}
	s := config.DefaultSettings()
	s.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s.PollFirstDelay, s.PollMaxInterval, s.PollDeadline = time.Second, time.Second, time.Hour
	s.AckWait, s.ProviderTimeout, s.MaxDeliveries = 10*time.Second, 2*time.Second, 5
	s.ShutdownGrace = 5 * time.Second
	if o.settings != nil {
		o.settings(&s)
	}
	log := o.logger
	if log == nil {
		log = zaptest.NewLogger(t)
	}
	h.deps = Deps{Settings: s, Shops: shops, Redis: rdb, KeyPrefix: prefix, Logger: log, Tracing: o.tracing}
	h.connect()
	h.start()
	t.Cleanup(h.shutdown)
	return h
}

// setFaults sets the sandbox's fault injection.
func (h *harness) setFaults(faults string) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, h.sbURL+"/sandbox/faults", strings.NewReader(faults))
	resp, err := h.sandbox.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		h.t.Fatalf("setting faults %s: HTTP %d", faults, resp.StatusCode)
	}
}

func (h *harness) connect() {
	nc, err := nats.Connect(h.nats.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(nc.Close)
	h.nc = nc
	h.js, _ = jetstream.New(nc)
	h.deps.NATS = nc
}

func (h *harness) start() { h.startUntil("/readyz") }

// startUntil starts the worker and waits until path answers 200: /readyz (streams, consumers and
// connections up), or /healthz for a worker whose failing writes may make it unready at once.
func (h *harness) startUntil(path string) {
	ctx, cancel := context.WithCancel(context.Background())
	h.stop, h.done = cancel, make(chan error, 1)
	go func() { h.done <- Run(ctx, h.deps) }()
	var err error
	ready := wait.Until(30*time.Second, func() bool {
		var resp *http.Response
		if resp, err = http.Get("http://" + h.deps.Settings.HTTPAddr + path); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case runErr := <-h.done:
			h.stop = nil
			h.t.Fatalf("the worker stopped while starting: %v", runErr)
		default:
		}
		return false
	})
	if !ready {
		h.t.Fatalf("worker's %s not 200 in 30s: %v", path, err)
	}
}

func (h *harness) shutdown() {
	if h.stop == nil {
		return
	}
	h.stop()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("worker returned %v", err)
		}
	case <-time.After(20 * time.Second):
		h.t.Error("worker did not stop in 20s")
	}
	h.stop = nil
}

// orderData is a valid order.created payload for a buyer e-mail (which drives the sandbox).
func orderData(shop, order, email string) map[string]any {
	return map[string]any{
		"shop_id": shop, "order_id": order, "ordered_at": "2026-11-26T10:14:03+09:00",
		"buyer": map[string]any{"name": "加藤 太郎", "name_kana": "カトウ タロウ", "zip": "150-0001",
			"address": "東京都渋谷区神宮前1-1-1", "phone": "03-1234-5678", "email": email},
		"items":        []any{map[string]any{"name": "緑茶ティーバッグ 50包", "unit_price": 1200, "quantity": 2}},
		"shipping_fee": 550, "fee": 0, "discount": 0, "billed_amount": 2950,
	}
}

// publish sends an inbound event with the given id, from source "test", with the Nats-Msg-Id
// publishers set (events.MsgID).
func (h *harness) publish(eventType, shop, id string, data any) {
	h.t.Helper()
	h.publishFrom("test", eventType, shop, id, "2026-11-26T10:15:00+09:00", data)
}

// publishAt sends an inbound event whose CloudEvents time is at.
func (h *harness) publishAt(eventType, shop, id, at string, data any) {
	h.t.Helper()
	h.publishFrom("test", eventType, shop, id, at, data)
}

// publishFrom sends an inbound event of a given source and time.
func (h *harness) publishFrom(source, eventType, shop, id, at string, data any) {
	h.t.Helper()
	raw, _ := json.Marshal(data)
	body, _ := json.Marshal(events.Envelope{SpecVersion: "1.0", ID: id, Source: source, Type: eventType,
		Time: at, DataContentType: "application/json", Data: raw})
	h.publishRaw(events.Subject(eventType, shop), events.MsgID(source, id), body)
}

// history returns an order's history as the worker recorded it.
func (h *harness) history(order string) []orderstate.Entry {
	h.t.Helper()
	return h.historyOf("shop-a", order)
}

func (h *harness) historyOf(shop, order string) []orderstate.Entry {
	h.t.Helper()
	store := orderstate.New(h.deps.Redis, h.deps.KeyPrefix, time.Hour)
	defer store.Close()
	entries, err := store.History(context.Background(), shop, order)
	if err != nil {
		h.t.Fatal(err)
	}
	return entries
}

// historySays reports whether the order's history holds an entry of the event whose did starts
// with did.
func (h *harness) historySays(order, eventID, did string) bool {
	h.t.Helper()
	for _, e := range h.history(order) {
		if e.ID == eventID && strings.HasPrefix(e.Did, did) {
			return true
		}
	}
	return false
}

// ordersMsg returns the inbound message at a sequence of ORDERS, as stored.
func (h *harness) ordersMsg(seq uint64) *jetstream.RawStreamMsg {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), h.deps.Settings.OrdersStream)
	if err != nil {
		h.t.Fatal(err)
	}
	m, err := s.GetMsg(context.Background(), seq)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

func (h *harness) publishRaw(subject, msgID string, body []byte) {
	h.t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = body
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	// Bursts of thousands of events on a loaded machine can take the server longer than the
	// client's default 5 s to acknowledge one.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.js.PublishMsg(ctx, msg, opts...); err != nil {
		h.t.Fatalf("publishing to %s: %v", subject, err)
	}
}

// outcome is a received outcome event.
type outcome struct {
	Subject string
	MsgID   string
	Env     events.Envelope
	Credit  events.Credit
}

// results reads everything in RESULTS so far.
func (h *harness) results() []outcome {
	h.t.Helper()
	return readAll(h.t, h.js, "RESULTS", func(m jetstream.Msg) outcome {
		o := outcome{Subject: m.Subject(), MsgID: m.Headers().Get(nats.MsgIdHdr)}
		if err := json.Unmarshal(m.Data(), &o.Env); err != nil {
			h.t.Fatalf("outcome on %s is not a CloudEvent: %v", m.Subject(), err)
		}
		_ = json.Unmarshal(o.Env.Data, &o.Credit)
		return o
	})
}

// deadLetters reads everything in DLQ so far.
func (h *harness) deadLetters() []jetstream.Msg {
	return readAll(h.t, h.js, "DLQ", func(m jetstream.Msg) jetstream.Msg { return m })
}

func readAll[T any](t *testing.T, js jetstream.JetStream, stream string, conv func(jetstream.Msg) T) []T {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil // not created (again) yet: it holds nothing
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for uint64(len(out)) < info.State.Msgs {
		batch, err := c.Fetch(int(info.State.Msgs)-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, conv(m))
		}
		if batch.Error() != nil {
			t.Fatal(batch.Error())
		}
	}
	return out
}

// sandboxTransactions returns the sandbox's view of an order's transactions.
func (h *harness) sandboxTransactions(order string) []sandbox.TransactionView {
	h.t.Helper()
	resp, err := h.sandbox.Client().Get(h.sbURL + "/sandbox/transactions?shopOrderId=" + order)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []sandbox.TransactionView
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		h.t.Fatalf("sandbox transactions of %s: %v", order, err)
	}
	return out
}
