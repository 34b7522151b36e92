package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
)

// envelope returns a CloudEvent body of the given type, id and data.
func envelope(typ, id, data string) []byte {
	return []byte(`{"specversion":"1.0","id":"` + id + `","source":"test","type":"` + typ +
		`","time":"2026-11-26T10:15:00+09:00","datacontenttype":"application/json","data":` + data + `}`)
}

// Personal data of the buyer in orderBody: none of it may ever reach a log.
var personalData = []string{"山田 花子", "ヤマダ ハナコ", "hanako.yamada@example.jp", "090-8765-4321",
	"大阪府大阪市北区梅田9-9-9", "530-0001"}

// orderBody is a valid order.created event for shop-a whose buyer is personalData.
func orderBody(id string) []byte {
	return envelope(events.TypeOrderCreated, id, `{
		"shop_id": "shop-a", "order_id": "o-1", "ordered_at": "2026-11-26T10:14:03+09:00",
		"buyer": {"name": "山田 花子", "name_kana": "ヤマダ ハナコ", "zip": "530-0001",
			"address": "大阪府大阪市北区梅田9-9-9", "phone": "090-8765-4321", "email": "hanako.yamada@example.jp"},
		"items": [{"name": "緑茶", "unit_price": 1200, "quantity": 2}],
		"shipping_fee": 550, "fee": 0, "discount": 0, "billed_amount": 2950,
		"browser": {"http_header": "", "device_info": ""}}`)
}

// cancelBody is a valid order.cancelled event for shop-a.
func cancelBody(id string) []byte {
	return envelope(events.TypeOrderCancelled, id, `{"shop_id":"shop-a","order_id":"o-1","reason":"buyer"}`)
}

func nop(context.Context, *handlers.Message) error { return nil }

// serveTyped is what the worker runs for a typed handler: a Mux with its one route, decoding each
// message once before mws.
func serveTyped[T any](eventType string, decode handlers.EventDecoder[T], h func(context.Context, handlers.Event[T]) error, mws ...handlers.Middleware) handlers.Handler {
	mux := handlers.NewMux()
	mux.Handle(eventType, handlers.Typed(decode, h))
	return handlers.Serve(mux.Decode, mux.Handler, mws...)
}

// anyData decodes no data: for tests of routing and middleware.
func anyData(events.Envelope, string) (struct{}, error) { return struct{}{}, nil }

func TestChainRunsFirstMiddlewareOutermost(t *testing.T) {
	t.Parallel()
	var trace []string
	mw := func(name string) handlers.Middleware {
		return func(next handlers.Handler) handlers.Handler {
			return func(ctx context.Context, m *handlers.Message) error {
				trace = append(trace, name+">")
				err := next(ctx, m)
				trace = append(trace, "<"+name)
				return err
			}
		}
	}
	h := handlers.Chain(func(context.Context, *handlers.Message) error {
		trace = append(trace, "handler")
		return nil
	}, mw("a"), mw("b"), mw("c"))
	if err := h(t.Context(), &handlers.Message{}); err != nil {
		t.Fatal(err)
	}
	want := "a> b> c> handler <c <b <a"
	if got := strings.Join(trace, " "); got != want {
		t.Errorf("order %q, want %q", got, want)
	}
	if err := handlers.Chain(nop)(t.Context(), &handlers.Message{}); err != nil {
		t.Errorf("Chain without middleware: %v", err)
	}
}

func TestMuxDispatchesBySubjectEventType(t *testing.T) {
	t.Parallel()
	var got []string
	record := func(name string) handlers.Route {
		return handlers.Typed(anyData, func(_ context.Context, ev handlers.Event[struct{}]) error {
			got = append(got, name+" "+ev.Subject)
			return nil
		})
	}
	mux := handlers.NewMux()
	mux.Handle(events.TypeOrderCreated, record("created"))
	mux.Handle(events.TypeOrderCancelled, record("cancelled"))
	h := handlers.Serve(mux.Decode, mux.Handler)

	for _, tc := range []struct {
		subject string
		want    string // the handler that ran; empty: none, the message is invalid
	}{
		{"orders.created.shop-a", "created orders.created.shop-a"},
		{"orders.cancelled.shop-b", "cancelled orders.cancelled.shop-b"},
		{"orders.updated.shop-a", ""},   // a contract type with no handler
		{"credit.ok.shop-a", ""},        // an outcome type
		{"orders.created", ""},          // no shop
		{"orders.created.bad shop", ""}, // not a shop ID
		{"orders.unknown.shop-a", ""},   // not a contract type
		{"", ""},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			got = nil
			// An envelope of the subject's type, or of order.created where the subject has none.
			typ, _, _ := events.ParseSubject(tc.subject)
			if typ == "" {
				typ = events.TypeOrderCreated
			}
			err := h(t.Context(), &handlers.Message{Subject: tc.subject, Body: envelope(typ, "e-1", `{}`)})
			if tc.want != "" {
				if err != nil || len(got) != 1 || got[0] != tc.want {
					t.Fatalf("err %v, ran %q, want %q", err, got, tc.want)
				}
				return
			}
			if len(got) != 0 {
				t.Errorf("ran %q for an unroutable subject", got)
			}
			if reason, ok := handlers.DeadLetterReason(err); !ok || reason != handlers.ReasonInvalid {
				t.Errorf("err %v: want a permanent error with reason invalid", err)
			}
		})
	}
}

func TestMuxDuplicateRegistrationPanics(t *testing.T) {
	t.Parallel()
	mux := handlers.NewMux()
	route := handlers.Typed(anyData, func(context.Context, handlers.Event[struct{}]) error { return nil })
	mux.Handle(events.TypeOrderCreated, route)
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("registering order.created twice did not panic")
		}
		if !strings.Contains(fmt.Sprint(r), events.TypeOrderCreated) {
			t.Errorf("panic %q does not name the type", r)
		}
	}()
	mux.Handle(events.TypeOrderCreated, route)
}

func TestDecodeRejectsBadEnvelopesNamingTheField(t *testing.T) {
	t.Parallel()
	good := `"specversion":"1.0","id":"e-1","source":"test"`
	for _, tc := range []struct {
		name, subject, body, field string
	}{
		{"not JSON", "orders.created.shop-a", `{"specversion":`, "body"},
		{"not an object", "orders.created.shop-a", `[1,2]`, "body"},
		{"wrong JSON type", "orders.created.shop-a", `{"specversion":1.0,"id":"e-1","source":"s","type":"order.created","data":{}}`, "specversion"},
		{"spec version", "orders.created.shop-a", `{"specversion":"0.3","id":"e-1","source":"s","type":"order.created","data":{}}`, "specversion"},
		{"no id", "orders.created.shop-a", `{"specversion":"1.0","source":"s","type":"order.created","data":{}}`, "id"},
		{"no source", "orders.created.shop-a", `{"specversion":"1.0","id":"e-1","type":"order.created","data":{}}`, "source"},
		{"bad time", "orders.created.shop-a", `{` + good + `,"type":"order.created","time":"yesterday","data":{}}`, "time"},
		{"content type", "orders.created.shop-a", `{` + good + `,"type":"order.created","datacontenttype":"text/xml","data":{}}`, "datacontenttype"},
		{"type contradicts subject", "orders.created.shop-a", `{` + good + `,"type":"order.cancelled","data":{}}`, "type"},
		{"no type", "orders.created.shop-a", `{` + good + `,"data":{}}`, "type"},
		{"subject not of the contract", "orders.created", `{` + good + `,"type":"order.created","data":{}}`, "subject"},
		{"no data", "orders.created.shop-a", `{` + good + `,"type":"order.created"}`, "data"},
		{"data not an object", "orders.created.shop-a", `{` + good + `,"type":"order.created","data":"x"}`, "data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			called := false
			h := serveTyped(events.TypeOrderCreated, anyData, func(context.Context, handlers.Event[struct{}]) error { called = true; return nil })
			err := h(t.Context(), &handlers.Message{Subject: tc.subject, Body: []byte(tc.body)})
			if called {
				t.Fatal("the handler ran for a bad envelope")
			}
			if reason, ok := handlers.DeadLetterReason(err); !ok || reason != handlers.ReasonInvalid {
				t.Fatalf("err %v: want a permanent error with reason invalid", err)
			}
			var inv *events.InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("err %v does not wrap an *events.InvalidError", err)
			}
			var fields []string
			for _, p := range inv.Problems {
				fields = append(fields, p.Field)
			}
			if !strings.Contains(strings.Join(fields, " "), tc.field) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("err %q (fields %v) does not name %s", err, fields, tc.field)
			}
		})
	}
}

func TestTypedFillsEventFromTheEnvelope(t *testing.T) {
	t.Parallel()
	var got handlers.Event[events.Cancel]
	h := serveTyped(events.TypeOrderCancelled, events.DecodeCancel, func(_ context.Context, ev handlers.Event[events.Cancel]) error {
		got = ev
		return nil
	})
	body := cancelBody("e-42")
	m := &handlers.Message{Subject: "orders.cancelled.shop-a", Body: body, Attempt: 3}
	if err := h(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	want := handlers.Event[events.Cancel]{Meta: handlers.Meta{ID: "e-42", Source: "test", Type: events.TypeOrderCancelled, Shop: "shop-a", Attempt: 3,
		Subject: "orders.cancelled.shop-a", Body: body, Data: []byte(`{"shop_id":"shop-a","order_id":"o-1","reason":"buyer"}`)},
		Data: events.Cancel{ShopID: "shop-a", OrderID: "o-1", Reason: "buyer"}}
	if at, _ := time.Parse(time.RFC3339, "2026-11-26T10:15:00+09:00"); !got.Time.Equal(at) {
		t.Errorf("event time %v, want %v", got.Time, at)
	}
	got.Time = time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("event %+v, want %+v", got, want)
	}
	if m.Head.Kind != events.TypeOrderCancelled || m.Head.Event.ID != "e-42" || m.Head.Shop != "shop-a" || m.Head.Order != "o-1" {
		t.Errorf("decoding left Head %+v", m.Head)
	}
}

func TestTypedInvalidDataIsPermanentInvalid(t *testing.T) {
	t.Parallel()
	called := false
	h := serveTyped(events.TypeOrderCancelled, events.DecodeCancel, func(context.Context, handlers.Event[events.Cancel]) error {
		called = true
		return nil
	})
	for _, tc := range []struct{ name, data, field string }{
		{"shop of another subject", `{"shop_id":"shop-b","order_id":"o-1"}`, "shop_id"},
		{"bad order id", `{"shop_id":"shop-a","order_id":"o 1"}`, "order_id"},
		{"wrong JSON type", `{"shop_id":"shop-a","order_id":12}`, "order_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := h(t.Context(), &handlers.Message{Subject: "orders.cancelled.shop-a",
				Body: envelope(events.TypeOrderCancelled, "e-1", tc.data)})
			if reason, ok := handlers.DeadLetterReason(err); !ok || reason != handlers.ReasonInvalid {
				t.Fatalf("err %v: want a permanent error with reason invalid", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("err %q does not name %s", err, tc.field)
			}
		})
	}
	if called {
		t.Error("the typed handler ran on invalid data")
	}

	sentinel := errors.New("decoder says no")
	h = serveTyped(events.TypeOrderCancelled, func(events.Envelope, string) (int, error) { return 0, sentinel },
		func(context.Context, handlers.Event[int]) error { return nil })
	err := h(t.Context(), &handlers.Message{Subject: "orders.cancelled.shop-a", Body: cancelBody("e-1")})
	if reason, _ := handlers.DeadLetterReason(err); reason != handlers.ReasonInvalid || !errors.Is(err, sentinel) {
		t.Errorf("err %v: want Permanent(invalid) wrapping the decoder's error", err)
	}
}

// codedError is an error type to find with errors.As through the wrappers.
type codedError struct{ code string }

func (e *codedError) Error() string { return "code " + e.code }

func TestErrorsWrapAndClassify(t *testing.T) {
	t.Parallel()
	cause := &codedError{code: "E01"}
	for _, tc := range []struct {
		name    string
		err     error
		reason  handlers.Reason // dead-letter reason; zero: not permanent
		delay   time.Duration
		outcome string
	}{
		{"nil", nil, handlers.Reason{}, 0, "ok"},
		{"plain", cause, handlers.Reason{}, 0, "retry"},
		{"permanent", handlers.Permanent(handlers.ReasonUnknownShop, cause), handlers.ReasonUnknownShop, 0, "dead-letter:unknown-shop"},
		{"permanent wrapped", fmt.Errorf("registering: %w", handlers.Permanent(handlers.ReasonOutcomeUnknown, cause)),
			handlers.ReasonOutcomeUnknown, 0, "dead-letter:outcome-unknown"},
		{"retry after", handlers.RetryAfter(3*time.Second, cause), handlers.Reason{}, 3 * time.Second, "retry-after"},
		{"retry after wrapped", fmt.Errorf("lease: %w", handlers.RetryAfter(time.Second, cause)), handlers.Reason{}, time.Second, "retry-after"},
		{"joined", errors.Join(errors.New("other"), handlers.Permanent(handlers.ReasonPollDeadline, cause)),
			handlers.ReasonPollDeadline, 0, "dead-letter:poll-deadline"},
		{"every reason: invalid", handlers.Permanent(handlers.ReasonInvalid, cause), handlers.ReasonInvalid, 0, "dead-letter:invalid"},
		{"every reason: exhausted", handlers.Permanent(handlers.ReasonExhausted, cause), handlers.ReasonExhausted, 0, "dead-letter:exhausted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, permanent := handlers.DeadLetterReason(tc.err)
			if permanent != (tc.reason != handlers.Reason{}) || reason != tc.reason {
				t.Errorf("DeadLetterReason = %q, %v; want %q", reason, permanent, tc.reason)
			}
			delay, retry := handlers.RetryDelay(tc.err)
			if retry != (tc.delay != 0) || delay != tc.delay {
				t.Errorf("RetryDelay = %s, %v; want %s", delay, retry, tc.delay)
			}
			if got := handlers.Outcome(tc.err); got != tc.outcome {
				t.Errorf("Outcome = %q, want %q", got, tc.outcome)
			}
			if tc.err == nil {
				return
			}
			var ce *codedError
			if !errors.Is(tc.err, cause) || !errors.As(tc.err, &ce) || ce.code != "E01" {
				t.Errorf("errors.Is/As do not find the cause through %v", tc.err)
			}
			if !strings.Contains(tc.err.Error(), cause.Error()) {
				t.Errorf("message %q hides the cause", tc.err)
			}
		})
	}

	// The classification survives the standard library's sentinel errors too.
	err := handlers.Permanent(handlers.ReasonInvalid, fmt.Errorf("opening: %w", fs.ErrNotExist))
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != "opening: file does not exist" {
		t.Errorf("Permanent: %q", err)
	}
	err = handlers.RetryAfter(1500*time.Millisecond, context.DeadlineExceeded)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "1.5s") {
		t.Errorf("RetryAfter: %q", err)
	}
}

// logText returns everything a set of log entries says: messages and every field's value.
func logText(entries []observer.LoggedEntry) string {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%s\n", e.Message)
		for k, v := range e.ContextMap() {
			fmt.Fprintf(&b, "%s=%v\n", k, v)
		}
	}
	return b.String()
}

// assertNoPersonalData fails when the logs hold any of the body or the buyer's personal data.
func assertNoPersonalData(t *testing.T, logs *observer.ObservedLogs, body []byte) {
	t.Helper()
	text := logText(logs.All())
	if strings.Contains(text, string(body)) {
		t.Error("the message body was logged")
	}
	for _, p := range personalData {
		if strings.Contains(text, p) {
			t.Errorf("personal data %q was logged:\n%s", p, text)
		}
	}
}

// TestKeptForRetryHidesItsCause: the failure of an event kept for its retry says its cause but
// does not unwrap to it: a failure of Redis kept so is no outage to try again in place (the event
// would wait twice in the inbox), nor a timed-out try (OfTry) to hand back.
func TestKeptForRetryHidesItsCause(t *testing.T) {
	t.Parallel()
	cause := handlers.Infrastructure(errors.New("redis: replicas did not acknowledge"))
	err := handlers.KeptForRetry(cause)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if !handlers.RetriedLater(err) || handlers.IsInfrastructure(err) || errors.Is(err, cause) || handlers.OfTry(ctx, err) != err ||
		handlers.Outcome(err) != "retry-kept" || !strings.Contains(err.Error(), cause.Error()) {
		t.Errorf("%v: RetriedLater %v, IsInfrastructure %v, Is(cause) %v, Outcome %q; want kept, not the infrastructure's, the cause hidden but named, retry-kept",
			err, handlers.RetriedLater(err), handlers.IsInfrastructure(err), errors.Is(err, cause), handlers.Outcome(err))
	}
	if handlers.RetriedLater(cause) || handlers.RetriedLater(nil) {
		t.Error("RetriedLater is true of an error not kept")
	}
}

func TestRecoverTurnsAPanicIntoAnError(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	body := orderBody("e-panic")
	h := handlers.Chain(func(_ context.Context, m *handlers.Message) error {
		words := strings.Fields(string(m.Body))
		return errors.New(words[len(words)+1]) // index out of range: panics
	}, handlers.Recover(zap.New(core)))
	err := h(t.Context(), &handlers.Message{Subject: "orders.created.shop-a", Sequence: 7, Body: body})
	if err == nil || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("err %v, want an error saying the handler panicked", err)
	}
	if _, permanent := handlers.DeadLetterReason(err); permanent {
		t.Errorf("a panic is dead-lettered at once (%v); it should be retried", err)
	}
	entries := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(entries) != 1 {
		t.Fatalf("%d error lines, want 1: %v", len(entries), logs.All())
	}
	if f := entries[0].ContextMap(); f["subject"] != "orders.created.shop-a" || f["seq"] != uint64(7) {
		t.Errorf("the panic line does not say which message: %v", f)
	}
	assertNoPersonalData(t, logs, body)

	// A panic's value of any length (a message's text in it) is clipped in the line and the error.
	long := strings.Repeat("x", 10000)
	core2, logs2 := observer.New(zapcore.DebugLevel)
	h2 := handlers.Recover(zap.New(core2))(func(context.Context, *handlers.Message) error { panic(long) })
	if err := h2(t.Context(), &handlers.Message{}); err == nil || len(err.Error()) > 1000 {
		t.Errorf("the error of a panic of 10,000 characters holds %d", len(fmt.Sprint(err)))
	}
	if all := logs2.All(); len(all) != 1 || len(fmt.Sprint(all[0].ContextMap()["panic"])) > 1000 {
		t.Errorf("the panic line holds the panic's value whole: %d lines", len(all))
	}

	// A panic with a nil value or an error value is caught too.
	for _, v := range []any{nil, errors.New("boom")} {
		h := handlers.Recover(zap.NewNop())(func(context.Context, *handlers.Message) error { panic(v) })
		if err := h(t.Context(), &handlers.Message{}); err == nil {
			t.Errorf("panic(%v) returned nil", v)
		}
	}
}

func TestLoggingWritesOneLinePerMessageWithoutTheBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		body    []byte
		handler func(context.Context, handlers.Event[events.Order]) error
		level   zapcore.Level
		outcome string
		typ     string
		id      string
	}{
		{"ok", orderBody("e-ok"), func(context.Context, handlers.Event[events.Order]) error { return nil },
			zapcore.InfoLevel, "ok", events.TypeOrderCreated, "e-ok"},
		{"transient", orderBody("e-tr"), func(context.Context, handlers.Event[events.Order]) error { return errors.New("connection refused") },
			zapcore.WarnLevel, "retry", events.TypeOrderCreated, "e-tr"},
		{"retry after", orderBody("e-ra"), func(context.Context, handlers.Event[events.Order]) error {
			return handlers.RetryAfter(time.Second, errors.New("order leased"))
		}, zapcore.WarnLevel, "retry-after", events.TypeOrderCreated, "e-ra"},
		{"permanent", orderBody("e-pm"), func(context.Context, handlers.Event[events.Order]) error {
			return handlers.Permanent(handlers.ReasonUnknownShop, errors.New("no shop shop-a"))
		}, zapcore.WarnLevel, "dead-letter:unknown-shop", events.TypeOrderCreated, "e-pm"},
		{"panic", orderBody("e-pa"), func(_ context.Context, ev handlers.Event[events.Order]) error {
			return errors.New(ev.Data.Items[len(ev.Data.Items)].Name) // index out of range: panics
		}, zapcore.WarnLevel, "retry", events.TypeOrderCreated, "e-pa"},
		{"invalid data", bytesReplace(orderBody("e-iv"), `"zip": "530-0001"`, `"zip": "530-0001-大阪"`), nil,
			zapcore.WarnLevel, "dead-letter:invalid", events.TypeOrderCreated, "e-iv"},
		{"invalid email", bytesReplace(orderBody("e-em"), `"hanako.yamada@example.jp"`, `"hanako.yamada@example.jp 090-8765-4321"`), nil,
			zapcore.WarnLevel, "dead-letter:invalid", events.TypeOrderCreated, "e-em"},
		{"bad envelope", bytesReplace(orderBody("e-be"), `"specversion":"1.0"`, `"specversion":"0.3"`), nil,
			zapcore.WarnLevel, "dead-letter:invalid", "", ""},
		{"not JSON", []byte(`{"buyer":{"name":"山田 花子","email":"hanako.yamada@example.jp"`), nil,
			zapcore.WarnLevel, "dead-letter:invalid", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.DebugLevel)
			log := zap.New(core)
			typed := tc.handler
			if typed == nil {
				typed = func(context.Context, handlers.Event[events.Order]) error {
					t.Error("the handler ran on invalid input")
					return nil
				}
			}
			h := serveTyped(events.TypeOrderCreated, events.DecodeOrder, typed, handlers.Logging(log), handlers.Recover(log))
			m := &handlers.Message{Subject: "orders.created.shop-a", Body: tc.body, Stream: "ORDERS", Sequence: 12, Attempt: 2}
			before := time.Now()
			err := h(t.Context(), m)
			elapsed := time.Since(before)
			if (err == nil) != (tc.outcome == "ok") {
				t.Errorf("err %v for outcome %s", err, tc.outcome)
			}

			lines := logs.FilterMessage("message handled").All()
			if len(lines) != 1 {
				t.Fatalf("%d lines for one message, want 1: %v", len(lines), logs.All())
			}
			line := lines[0]
			if line.Level != tc.level {
				t.Errorf("level %s, want %s", line.Level, tc.level)
			}
			f := line.ContextMap()
			for k, want := range map[string]any{"event_id": tc.id, "type": tc.typ, "outcome": tc.outcome,
				"attempt": int64(2), "subject": "orders.created.shop-a"} {
				if f[k] != want {
					t.Errorf("field %s = %#v, want %#v", k, f[k], want)
				}
			}
			if tc.typ != "" && f["shop"] != "shop-a" {
				t.Errorf("field shop = %#v, want shop-a", f["shop"])
			}
			// The handling of this message, timed inside the call: more than nothing (time.Since on
			// the monotonic clock is never negative, so only a lower bound above zero can fail) and
			// no more than the call took (a start taken earlier, say at the message's publication,
			// would exceed it).
			if d, ok := f["duration"].(time.Duration); !ok || d <= 0 || d > elapsed {
				t.Errorf("field duration = %#v, want within (0, %v]", f["duration"], elapsed)
			}
			assertNoPersonalData(t, logs, tc.body)
		})
	}
}

func bytesReplace(b []byte, old, new string) []byte {
	s := string(b)
	if !strings.Contains(s, old) {
		panic("bytesReplace: " + old + " not found")
	}
	return []byte(strings.Replace(s, old, new, 1))
}

func TestMetricsCountByTypeAndOutcome(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	mt := handlers.NewMetrics(reg)
	results := map[string]error{
		"e-1": nil, "e-2": nil, "e-3": errors.New("timeout"),
		"e-4": handlers.Permanent(handlers.ReasonUnknownShop, errors.New("no shop")),
		"e-5": handlers.RetryAfter(time.Second, errors.New("leased")),
	}
	mux := handlers.NewMux()
	result := handlers.Typed(anyData, func(_ context.Context, ev handlers.Event[struct{}]) error { return results[ev.ID] })
	mux.Handle(events.TypeOrderCancelled, result)
	mux.Handle(events.TypeOrderCreated, result)
	h := handlers.Serve(mux.Decode, mux.Handler, mt.Middleware())
	for _, id := range []string{"e-1", "e-2", "e-3", "e-4", "e-5"} {
		_ = h(t.Context(), &handlers.Message{Subject: "orders.cancelled.shop-a", Body: cancelBody(id)})
	}
	_ = h(t.Context(), &handlers.Message{Subject: "orders.cancelled.shop-a", Body: []byte("not json")})
	_ = h(t.Context(), &handlers.Message{Subject: "orders.created.shop-a", Body: orderBody("e-6")})

	families := gather(t, reg)
	for _, tc := range []struct {
		typ, outcome, reason string
		want                 float64
	}{
		{"order.cancelled", "ok", "", 2},
		{"order.cancelled", "retry", "", 1},
		{"order.cancelled", "dead-letter", "unknown-shop", 1},
		{"order.cancelled", "retry-after", "", 1},
		{"undecoded", "dead-letter", "invalid", 1},
		{"order.created", "ok", "", 1},
	} {
		m := series(families["atodene_worker_messages_total"], map[string]string{"type": tc.typ, "outcome": tc.outcome, "reason": tc.reason})
		if got := m.GetCounter().GetValue(); got != tc.want {
			t.Errorf("messages{type=%s,outcome=%s,reason=%s} = %v, want %v", tc.typ, tc.outcome, tc.reason, got, tc.want)
		}
	}
	if n := len(families["atodene_worker_messages_total"].GetMetric()); n != 6 {
		t.Errorf("%d message series, want 6", n)
	}
	latency := families["atodene_worker_handler_seconds"]
	if n := len(latency.GetMetric()); n != 3 {
		t.Errorf("%d latency series, want 3 (one per type)", n)
	}
	if got := series(latency, map[string]string{"type": "order.cancelled"}).GetHistogram().GetSampleCount(); got != 5 {
		t.Errorf("order.cancelled latency observations = %d, want 5", got)
	}
}

// TestMetricsStartWithEveryDeadLetterAtZero: the dead-letter series of every known reason exist
// at zero from the start, for each type the worker handles, so that an alert on any increase fires
// on the first dead letter after a restart (a series born at 1 shows no increase).
func TestMetricsStartWithEveryDeadLetterAtZero(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	handlers.NewMetrics(reg, "order.created", "poll")
	messages := gather(t, reg)["atodene_worker_messages_total"]
	reasons := handlers.Reasons()
	if len(reasons) != 7 {
		t.Errorf("reasons %v, want the 7 of errors.go", reasons)
	}
	for _, typ := range []string{"order.created", "poll"} {
		for _, reason := range reasons {
			m := series(messages, map[string]string{"type": typ, "outcome": "dead-letter", "reason": reason})
			if m.GetCounter() == nil || m.GetCounter().GetValue() != 0 {
				t.Errorf("messages{type=%s,outcome=dead-letter,reason=%s}: %v, want a series at 0", typ, reason, m)
			}
		}
	}
	if n := len(messages.GetMetric()); n != 2*len(reasons) {
		t.Errorf("%d series, want %d", n, 2*len(reasons))
	}
}

// gather returns the registry's metric families by name.
func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return byName
}

// series returns the metric of a family with exactly these labels, or an empty one.
func series(mf *dto.MetricFamily, labels map[string]string) *dto.Metric {
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		if fmt.Sprint(got) == fmt.Sprint(labels) {
			return m
		}
	}
	return &dto.Metric{}
}

func TestPollPolicyDelay(t *testing.T) {
	t.Parallel()
	const m = time.Minute
	defaults := config.DefaultSettings()
	for _, tc := range []struct {
		name   string
		policy handlers.PollPolicy
		want   []time.Duration // by attempt, before jitter
	}{
		{"the settings' defaults", handlers.PollPolicy{First: defaults.PollFirstDelay, Max: defaults.PollMaxInterval, Deadline: defaults.PollDeadline},
			[]time.Duration{m, 2 * m, 4 * m, 8 * m, 16 * m, 30 * m, 30 * m, 30 * m}},
		{"custom", handlers.PollPolicy{First: 10 * time.Second, Max: 25 * time.Second},
			[]time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second, 25 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for attempt, want := range tc.want {
				lo, hi := want-want/10, want+want/10+time.Nanosecond
				seen := map[time.Duration]bool{}
				for range 200 {
					d := tc.policy.Delay(attempt)
					if d < lo || d > hi {
						t.Fatalf("Delay(%d) = %s, want %s ±10%%", attempt, d, want)
					}
					seen[d] = true
				}
				if len(seen) < 10 {
					t.Errorf("Delay(%d) took only %d values in 200 calls: no jitter", attempt, len(seen))
				}
			}
			if d := tc.policy.Delay(1000); d > 33*m {
				t.Errorf("Delay(1000) = %s: not capped", d)
			}
		})
	}
}

// An event id of a megabyte is invalid, and its log line quotes no more than a bounded part of it.
func TestHugeIDIsInvalidAndLoggedCut(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	huge := strings.Repeat("x", 1<<20)
	h := serveTyped(events.TypeOrderCancelled, anyData, func(context.Context, handlers.Event[struct{}]) error { return nil }, handlers.Logging(zap.New(core)))
	err := h(t.Context(), &handlers.Message{Subject: "orders.cancelled.shop-a", Body: cancelBody(huge)})
	if reason, _ := handlers.DeadLetterReason(err); reason != handlers.ReasonInvalid || !strings.Contains(err.Error(), "id: is 1048576 bytes") {
		t.Fatalf("err %v, want invalid naming id", err)
	}
	for _, e := range logs.All() {
		if id, _ := e.ContextMap()["event_id"].(string); len(id) > 300 {
			t.Errorf("logged an event_id of %d bytes", len(id))
		}
	}
}

// A decoder that panics is caught by Recover as a handler that panics is: an error line with the
// stack, a retry, and the log line and metric still name what was decoded before the panic.
func TestDecoderPanicIsRecoveredAndLogged(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	reg := prometheus.NewRegistry()
	mt := handlers.NewMetrics(reg)
	panicky := func(events.Envelope, string) (struct{}, error) { panic("decoder bug") }
	h := serveTyped(events.TypeOrderCancelled, panicky, func(context.Context, handlers.Event[struct{}]) error {
		t.Error("the handler ran after its decoder panicked")
		return nil
	}, handlers.Logging(log), mt.Middleware(), handlers.Recover(log))
	err := h(t.Context(), &handlers.Message{Subject: "orders.cancelled.shop-a", Body: cancelBody("e-dp")})
	if err == nil || !strings.Contains(err.Error(), "decoder bug") {
		t.Fatalf("err %v, want the panic as an error", err)
	}
	if _, permanent := handlers.DeadLetterReason(err); permanent {
		t.Errorf("err %v is permanent: a panic is retried", err)
	}
	panics := logs.FilterMessage("handler panicked").All()
	if len(panics) != 1 || panics[0].ContextMap()["stack"] == nil {
		t.Errorf("panic lines %v, want one with its stack", panics)
	}
	handled := logs.FilterMessage("message handled").All()
	if len(handled) != 1 {
		t.Fatalf("%d handled lines, want 1", len(handled))
	}
	f := handled[0].ContextMap()
	if f["type"] != events.TypeOrderCancelled || f["shop"] != "shop-a" || f["event_id"] != "e-dp" || f["outcome"] != "retry" {
		t.Errorf("handled line %v, want the type, shop and event id decoded before the panic, outcome retry", f)
	}
	m := series(gather(t, reg)["atodene_worker_messages_total"], map[string]string{"type": events.TypeOrderCancelled, "outcome": "retry", "reason": ""})
	if got := m.GetCounter().GetValue(); got != 1 {
		t.Errorf("messages{type=order.cancelled,outcome=retry} = %v, want 1", got)
	}
}

// The zero Reason is no reason: Permanent refuses it, so no dead letter goes out without one.
func TestPermanentNeedsAReason(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("Permanent(Reason{}, err) did not panic")
		}
	}()
	_ = handlers.Permanent(handlers.Reason{}, errors.New("x"))
}
