package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// The baseline is the bare-bones program the worker is measured against: per order it does the
// same I/O as the worker's happy path, once each and with no framework: it takes the message
// from a JetStream pull consumer, writes the order's state to Redis (one round trip), POSTs the
// registration XML to the sandbox, publishes credit.ok to RESULTS waiting for the stream's
// acknowledgement, and acks. No validation, no fee table, no lease, no idempotency record, no
// compare-and-set, no outbox, no logging, no metrics.

const baselineConsumer = "baseline"

// registrationXML is transaction.do for one order of orderEvent, after the fee table: the
// document the worker sends for the same order, with the order ID in the middle.
var registrationXML = [2]string{`<?xml version="1.0" encoding="UTF-8"?>
<request>
  <linkInfo>
    <shopCode>` + sandbox.DemoShop.ShopCode + `</shopCode>
    <linkId>` + sandbox.DemoShop.LinkID + `</linkId>
    <linkPassword>` + sandbox.DemoShop.LinkPassword + `</linkPassword>
  </linkInfo>
  <browserInfo>
    <httpHeader></httpHeader>
    <deviceInfo></deviceInfo>
  </browserInfo>
  <customer>
    <shopOrderId>`, `</shopOrderId>
    <shopOrderDate>2026/11/26</shopOrderDate>
    <name>加藤 太郎</name>
    <kanaName>カトウ タロウ</kanaName>
    <zip>150-0001</zip>
    <address>東京都渋谷区神宮前1-1-1</address>
    <companyName></companyName>
    <sectionName></sectionName>
    <tel>03-1234-5678</tel>
    <email>taro@example.jp</email>
    <billedAmount>3155</billedAmount>
    <expand1></expand1>
    <service>2</service>
  </customer>
  <ship>
    <shipName>加藤 太郎</shipName>
    <shipKananame>カトウ タロウ</shipKananame>
    <shipZip>150-0001</shipZip>
    <shipAddress>東京都渋谷区神宮前1-1-1</shipAddress>
    <shipCompanyName></shipCompanyName>
    <shipSectionName></shipSectionName>
    <shipTel>03-1234-5678</shipTel>
  </ship>
  <details>
    <detail>
      <goods>緑茶ティーバッグ 50包</goods>
      <goodsPrice>1200</goodsPrice>
      <goodsAmount>2</goodsAmount>
      <expand2>1</expand2>
      <expand3></expand3>
      <expand4></expand4>
    </detail>
    <detail>
      <goods>送料</goods>
      <goodsPrice>550</goodsPrice>
      <goodsAmount>1</goodsAmount>
      <expand2>2</expand2>
      <expand3></expand3>
      <expand4></expand4>
    </detail>
    <detail>
      <goods>後払い手数料</goods>
      <goodsPrice>205</goodsPrice>
      <goodsAmount>1</goodsAmount>
      <expand2>3</expand2>
      <expand3></expand3>
      <expand4></expand4>
    </detail>
  </details>
</request>
`}

// xmlElement returns the text of the first <name> element of doc, without parsing the rest.
func xmlElement(doc []byte, name string) string {
	open, end := []byte("<"+name+">"), []byte("</"+name+">")
	i := bytes.Index(doc, open)
	if i < 0 {
		return ""
	}
	rest := doc[i+len(open):]
	j := bytes.Index(rest, end)
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// RunBaselineWorker runs the baseline until ctx ends: bench baseline-worker [flags].
func RunBaselineWorker(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("baseline-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats-url", "", "NATS server URL")
	redisURL := fs.String("redis-url", "redis://127.0.0.1:6379", "Redis URL")
	prefix := fs.String("redis-prefix", "bench:", "prefix of the Redis keys")
	sandboxURL := fs.String("sandbox-url", "", "sandbox base URL (http://host:port)")
	concurrency := fs.Int("concurrency", 256, "messages handled at once")
	httpAddr := fs.String("http-addr", "127.0.0.1:0", "address of /readyz")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nc, err := nats.Connect(*natsURL, nats.Name("atodene-bench-baseline"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ropts, err := redis.ParseURL(*redisURL)
	if err != nil {
		return err
	}
	ropts.Protocol = 2 // as the worker (worker.NewRedis)
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost, t.MaxIdleConns = max(64, *concurrency), 0 // as the worker
	b := &baseline{js: js, rdb: rdb, prefix: *prefix, http: &http.Client{Transport: t, Timeout: 30 * time.Second},
		url: strings.TrimSuffix(*sandboxURL, "/") + "/api/transaction.do"}

	cons, err := js.CreateOrUpdateConsumer(ctx, ordersStream, jetstream.ConsumerConfig{
		Durable: baselineConsumer, FilterSubject: "orders.>", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 2 * time.Minute, MaxDeliver: 10, MaxAckPending: 4 * *concurrency,
	})
	if err != nil {
		return fmt.Errorf("creating the baseline consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(*concurrency))
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	srv := &http.Server{Addr: *httpAddr, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, Handler: http.HandlerFunc(
		func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })}
	go func() { _ = srv.ListenAndServe() }()
	defer srv.Close()

	slots := make(chan struct{}, *concurrency)
	var wg sync.WaitGroup
	for {
		msg, err := it.Next()
		if err != nil {
			break
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := b.handle(ctx, msg); err != nil {
				fmt.Fprintf(stderr, "baseline: %v\n", err)
				_ = msg.NakWithDelay(time.Second)
				return
			}
			_ = msg.Ack()
		})
	}
	wg.Wait()
	return nil
}

type baseline struct {
	js     jetstream.JetStream
	rdb    *redis.Client
	prefix string
	http   *http.Client
	url    string
}

// handle does one order's I/O: Redis, sandbox, RESULTS.
func (b *baseline) handle(ctx context.Context, msg jetstream.Msg) error {
	var env struct {
		ID   string `json:"id"`
		Data struct {
			ShopID  string `json:"shop_id"`
			OrderID string `json:"order_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(msg.Data(), &env); err != nil {
		return err
	}
	shop, order := env.Data.ShopID, env.Data.OrderID
	state := fmt.Sprintf(`{"version":1,"status":"registering","fee":205,"billed_amount":3155,"caused_by":%q}`, env.ID)
	if err := b.rdb.Set(ctx, b.prefix+"order:{"+shop+"}:"+order, state, 0).Err(); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url,
		strings.NewReader(registrationXML[0]+order+registrationXML[1]))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/xml; charset=UTF-8")
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if xmlElement(body, "result") != "OK" {
		return errors.New("sandbox refused the registration: " + string(body))
	}
	typ := "credit.ok"
	if xmlElement(body, "autoAuthoriresult") != "OK" {
		typ = "credit.ng"
	}
	msgID := shop + ":" + order + ":baseline:1:" + typ // the worker's form: <shop>:<order>:<epoch>:<version>:<type>
	data := fmt.Sprintf(`{"shop_id":%q,"order_id":%q,"transaction_id":%q,"result":%q,"review":"","fee":205,"billed_amount":3155,"errors":[],"reasons":[],"decided_at":%q}`,
		shop, order, xmlElement(body, "transactionId"), typ[len("credit."):], time.Now().Format(time.RFC3339))
	out := nats.NewMsg(typ + "." + shop)
	out.Data = fmt.Appendf(nil, `{"specversion":"1.0","id":%q,"source":"atodene-bench-baseline","type":%q,"time":%q,"datacontenttype":"application/json","causationid":%q,"data":%s}`,
		msgID, typ, time.Now().Format(time.RFC3339), env.ID, data)
	out.Header.Set("Content-Type", "application/cloudevents+json")
	_, err = b.js.PublishMsg(ctx, out, jetstream.WithMsgID(msgID))
	return err
}
