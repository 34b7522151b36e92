package events_test

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// The CloudEvents Go SDK is an oracle here, and only here: the worker writes and reads its events
// with its own code (envelope.go, outcome.go), and these tests check that what it writes is a
// CloudEvent as the SDK reads it, and that what an importer writes with the SDK is an event the
// worker reads. The SDK is a dependency of the tests alone.

// outcomeID is the form of an outcome's id (docs/lifecycle.md#message-ids):
// <shop>:<order>:<epoch>:<version>:<type>.
var outcomeID = regexp.MustCompile(`^([A-Za-z0-9_-]{1,32}):([A-Za-z0-9_-]{1,50}):([0-9a-f]{8}):([1-9][0-9]*):([a-z]+\.[a-z]+)$`)

// sdkRead reads a structured-mode CloudEvent with the SDK and validates it as the SDK does.
func sdkRead(t testing.TB, name string, raw []byte) event.Event {
	t.Helper()
	var e event.Event
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("%s: the CloudEvents SDK cannot read it: %v", name, err)
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("%s: the CloudEvents SDK finds it invalid: %v", name, err)
	}
	return e
}

// TestOutcomeGoldensAreCloudEvents: every golden outcome file reads with the CloudEvents SDK as a
// valid CloudEvent 1.0 whose attributes are those of docs/events.md#outcome-events, whose data is
// the file's data, and which the SDK writes back with nothing lost.
func TestOutcomeGoldensAreCloudEvents(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "*.golden.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden outcome files: %v", err)
	}
	outcomeTypes := map[string]bool{}
	for _, ty := range []string{events.TypeCreditOK, events.TypeCreditNG, events.TypeCreditPending, events.TypeCreditCancelled,
		events.TypeCreditInvalid, events.TypeShipmentOK, events.TypeShipmentNG, events.TypeInvoiceOK, events.TypeInvoiceNG} {
		outcomeTypes[ty] = true
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			raw := mustRead(t, f)
			e := sdkRead(t, f, raw)

			var file map[string]any
			if err := json.Unmarshal(raw, &file); err != nil {
				t.Fatal(err)
			}
			if e.SpecVersion() != event.CloudEventsVersionV1 {
				t.Errorf("specversion %q, want %q", e.SpecVersion(), event.CloudEventsVersionV1)
			}
			if e.Source() != events.WorkerSource {
				t.Errorf("source %q, want %q", e.Source(), events.WorkerSource)
			}
			if !outcomeTypes[e.Type()] || !strings.HasPrefix(filepath.Base(f), e.Type()+".") {
				t.Errorf("type %q: not an outcome type, or not the file's", e.Type())
			}
			if m := outcomeID.FindStringSubmatch(e.ID()); m == nil || m[5] != e.Type() {
				t.Errorf("id %q is not <shop>:<order>:<epoch>:<version>:%s", e.ID(), e.Type())
			}
			if e.DataContentType() != "application/json" || e.DataMediaType() != "application/json" {
				t.Errorf("datacontenttype %q, want application/json", e.DataContentType())
			}
			at, err := time.Parse(time.RFC3339, file["time"].(string))
			if err != nil || !e.Time().Equal(at) {
				t.Errorf("time %v as the SDK reads it, %q in the file (%v)", e.Time(), file["time"], err)
			}
			var causation string
			if err := e.ExtensionAs("causationid", &causation); err != nil || causation == "" || causation != file["causationid"] {
				t.Errorf("extension causationid %q (%v), want the file's %q", causation, err, file["causationid"])
			}
			if len(e.Extensions()) != 1 {
				t.Errorf("extensions %v, want causationid alone", e.Extensions())
			}

			// The data as the SDK hands it over is the file's data, and decodes as the
			// worker's own decoder decodes it.
			var data map[string]any
			if err := e.DataAs(&data); err != nil {
				t.Fatalf("the SDK cannot read the data: %v", err)
			}
			if !reflect.DeepEqual(data, file["data"]) {
				t.Errorf("data as the SDK reads it:\n%v\nin the file:\n%v", data, file["data"])
			}
			shop, _ := data["shop_id"].(string)
			env, err := events.DecodeEnvelope(events.Subject(e.Type(), shop), raw)
			if err != nil {
				t.Fatalf("the worker's own decoder refuses it: %v", err)
			}
			if env.ID != e.ID() || env.Source != e.Source() || env.Type != e.Type() || env.CausationID != causation {
				t.Errorf("the worker reads %+v, the SDK id %q source %q type %q causationid %q", env, e.ID(), e.Source(), e.Type(), causation)
			}

			// Written back by the SDK, the event holds the same attributes and data: the SDK
			// dropped or misread nothing of the file.
			again, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			var back map[string]any
			if err := json.Unmarshal(again, &back); err != nil {
				t.Fatal(err)
			}
			for _, m := range []map[string]any{file, back} {
				delete(m, "time") // compared above: the SDK writes it in UTC
			}
			if !reflect.DeepEqual(back, file) {
				t.Errorf("written back by the SDK:\n%s\nthe file:\n%s", again, raw)
			}
		})
	}
}

// TestInboundExampleIsACloudEvent: the inbound example of the test corpus reads with the SDK as the
// worker reads it.
func TestInboundExampleIsACloudEvent(t *testing.T) {
	t.Parallel()
	raw := mustRead(t, filepath.Join("testdata", "order.created.json"))
	e := sdkRead(t, "order.created.json", raw)
	env, err := events.DecodeEnvelope(events.Subject(events.TypeOrderCreated, testShop), raw)
	if err != nil {
		t.Fatal(err)
	}
	at, _ := time.Parse(time.RFC3339, env.Time)
	if env.ID != e.ID() || env.Source != e.Source() || env.Type != e.Type() || !at.Equal(e.Time()) ||
		env.DataContentType != e.DataContentType() {
		t.Errorf("the worker reads %+v; the SDK id %q source %q type %q time %v datacontenttype %q",
			env, e.ID(), e.Source(), e.Type(), e.Time(), e.DataContentType())
	}
	var sdkData, ownData any
	if err := e.DataAs(&sdkData); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(env.Data, &ownData); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sdkData, ownData) {
		t.Errorf("data: the SDK reads %v, the worker %v", sdkData, ownData)
	}
}

// TestEventsWrittenWithTheSDKAreRead: an importer that writes its events with the CloudEvents SDK,
// extensions included, publishes events the worker reads, and the worker's outcomes, caused by
// them, name them in causationid as the SDK reads it.
func TestEventsWrittenWithTheSDKAreRead(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 26, 10, 15, 0, 0, time.FixedZone("JST", 9*60*60))
	e := event.New()
	e.SetID("7f1c0a52-3c55-4c3e-9d49-1b1b6c1f0e21")
	e.SetSource("mall-importer/rakuten")
	e.SetType(events.TypeOrderCreated)
	e.SetTime(at)
	e.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if err := e.SetData(event.ApplicationJSON, json.RawMessage(dataOf(t, mustRead(t, filepath.Join("testdata", "order.created.json"))))); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	env, err := events.DecodeEnvelope(events.Subject(events.TypeOrderCreated, testShop), body)
	if err != nil {
		t.Fatalf("an event written with the SDK is refused: %v\n%s", err, body)
	}
	o, err := events.DecodeCreated(env, testShop)
	if err != nil {
		t.Fatalf("its data is refused: %v", err)
	}
	if got, _ := time.Parse(time.RFC3339, env.Time); !got.Equal(at) || env.ID != e.ID() || env.Source != e.Source() {
		t.Errorf("read as %+v", env)
	}

	out, err := events.NewOutcome("rakuten-01:"+o.OrderID+":5f3a9c01:2:credit.ok", events.TypeCreditOK, env.ID, at,
		events.Credit{ShopID: testShop, OrderID: o.OrderID, Result: "ok", DecidedAt: at.Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	reply := sdkRead(t, "the outcome", out)
	var causation string
	if err := reply.ExtensionAs("causationid", &causation); err != nil || causation != e.ID() {
		t.Errorf("causationid %q (%v), want %q", causation, err, e.ID())
	}

	// Without a cause, the outcome carries no causationid at all, rather than an empty one.
	out, err = events.NewOutcome("rakuten-01:A1:5f3a9c01:2:credit.ok", events.TypeCreditOK, "", at, events.Credit{ShopID: testShop, OrderID: "A1"})
	if err != nil {
		t.Fatal(err)
	}
	if ext := sdkRead(t, "an outcome without a cause", out).Extensions(); len(ext) != 0 {
		t.Errorf("extensions %v, want none", ext)
	}
}

// TestOutcomeTraceContextIsTheSDKsExtension: an outcome with its trace context added
// (WithTraceContext) carries the CloudEvents distributed-tracing extension as the SDK reads it, and
// is the same outcome otherwise; without a traceparent it is unchanged.
func TestOutcomeTraceContextIsTheSDKsExtension(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 26, 10, 15, 0, 0, time.FixedZone("JST", 9*60*60))
	out, err := events.NewOutcome("rakuten-01:A1:5f3a9c01:2:credit.ok", events.TypeCreditOK, "ev-1", at,
		events.Credit{ShopID: testShop, OrderID: "A1", Result: "ok", DecidedAt: at.Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	if got := events.WithTraceContext(out, "", "x=1"); string(got) != string(out) {
		t.Errorf("without a traceparent: %s", got)
	}
	const parent, state = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=a1,other=b2"
	for _, tc := range []struct{ name, state string }{{"traceparent", ""}, {"traceparent and tracestate", state}} {
		t.Run(tc.name, func(t *testing.T) {
			traced := events.WithTraceContext(out, parent, tc.state)
			e := sdkRead(t, "the traced outcome", traced)
			var gotParent, gotState string
			if err := e.ExtensionAs("traceparent", &gotParent); err != nil || gotParent != parent {
				t.Errorf("traceparent %q (%v), want %q", gotParent, err, parent)
			}
			if err := e.ExtensionAs("tracestate", &gotState); tc.state != "" && (err != nil || gotState != tc.state) {
				t.Errorf("tracestate %q (%v), want %q", gotState, err, tc.state)
			}
			if _, ok := e.Extensions()["tracestate"]; tc.state == "" && ok {
				t.Error("an empty tracestate is written")
			}
			var a, b map[string]any
			_ = json.Unmarshal(out, &a)
			if err := json.Unmarshal(traced, &b); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, traced)
			}
			delete(b, "traceparent")
			delete(b, "tracestate")
			if !reflect.DeepEqual(a, b) {
				t.Errorf("the trace context changed the outcome:\n%s\n%s", out, traced)
			}
			if _, err := events.DecodeEnvelope(events.Subject(events.TypeCreditOK, testShop), traced); err != nil {
				t.Errorf("the traced outcome does not decode: %v", err)
			}
		})
	}
	if got := string(events.WithTraceContext([]byte(`{}`), parent, "")); got != `{"traceparent":"`+parent+`"}` {
		t.Errorf("an empty object: %s", got)
	}
}
