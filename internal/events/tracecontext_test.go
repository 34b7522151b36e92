package events_test

import (
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// TestTraceContext: the CloudEvents distributed-tracing attributes of an inbound body are read as
// strings within their limits; anything else is left out, and none of it makes the event invalid.
func TestTraceContext(t *testing.T) {
	t.Parallel()
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	state := strings.Repeat("v", events.MaxTraceStateLen-2)
	body := func(attrs string) string {
		return `{"specversion":"1.0","id":"e-1","source":"test","type":"order.cancelled",` + attrs +
			`"data":{"shop_id":"rakuten-01","order_id":"o-1"}}`
	}
	for _, tc := range []struct {
		name, body            string
		wantParent, wantState string
	}{
		{"both", body(`"traceparent":"` + parent + `","tracestate":"k=` + state + `",`), parent, "k=" + state},
		{"traceparent alone", body(`"traceparent":"` + parent + `",`), parent, ""},
		{"none", body(``), "", ""},
		{"tracestate alone", body(`"tracestate":"k=v",`), "", ""},
		{"name escaped", body(`"\u0074raceparent":"` + parent + `","trace\u0073tate":"k=v",`), parent, "k=v"},
		{"name in another case", body(`"TraceParent":"` + parent + `",`), parent, ""},
		{"the word elsewhere", body(`"subject":"traceparent",`), "", ""},
		{"none, escapes elsewhere", body(`"subject":"\u6ce8\u6587",`), "", ""},
		{"escaped", body(`"traceparent":"\u0030` + parent[1:] + `",`), parent, ""},
		{"not a string", body(`"traceparent":55,"tracestate":"k=v",`), "", ""},
		{"null", body(`"traceparent":null,`), "", ""},
		{"object", body(`"traceparent":{"a":"` + parent + `"},`), "", ""},
		{"traceparent too long", body(`"traceparent":"` + parent + `-00",`), "", ""},
		{"huge traceparent", body(`"traceparent":"` + strings.Repeat("0", 1<<20) + `",`), "", ""},
		{"tracestate too long", body(`"traceparent":"` + parent + `","tracestate":"k=` + state + `x",`), parent, ""},
		{"tracestate not a string", body(`"traceparent":"` + parent + `","tracestate":["k=v"],`), parent, ""},
		{"not JSON", `{"traceparent":"` + parent + `"`, "", ""},
		{"not an object", `["` + parent + `"]`, "", ""},
	} {
		gotParent, gotState := events.TraceContext([]byte(tc.body))
		if gotParent != tc.wantParent || gotState != tc.wantState {
			t.Errorf("%s: (%.60q, %.60q), want (%.60q, %.60q)", tc.name, gotParent, gotState, tc.wantParent, tc.wantState)
		}
		if !strings.HasPrefix(tc.body, "{\"specversion") {
			continue
		}
		if _, err := events.DecodeEnvelope("orders.cancelled.rakuten-01", []byte(tc.body)); err != nil {
			t.Errorf("%s: the attributes made the envelope invalid: %v", tc.name, err)
		}
	}
}

// TestTraceContextOfAPlainBodyDoesNotParseIt: a body without the attribute (most events: their
// producers put the trace context in headers, or none) is answered without decoding it.
func TestTraceContextOfAPlainBodyDoesNotParseIt(t *testing.T) {
	body := []byte(`{"specversion":"1.0","id":"e-1","source":"test","type":"order.cancelled","data":{"shop_id":"rakuten-01","order_id":"o-1"}}`)
	if allocs := testing.AllocsPerRun(100, func() { events.TraceContext(body) }); allocs != 0 {
		t.Errorf("TraceContext of a body without traceparent: %v allocations, want 0", allocs)
	}
}
