package events

import "testing"

// FuzzTraceContext: looking for the name before decoding never changes TraceContext's answer.
func FuzzTraceContext(f *testing.F) {
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, seed := range []string{
		`{"specversion":"1.0","traceparent":"` + parent + `","tracestate":"k=v","data":{}}`,
		`{"TRACEPARENT":"` + parent + `"}`,
		`{"\u0074raceparent":"` + parent + `"}`,
		`{"subject":"traceparent","data":{"traceparent":"` + parent + `"}}`,
		`{"traceparent" : "` + parent + `"}`,
		`["traceparent"]`,
		`{}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		gotParent, gotState := TraceContext(body)
		wantParent, wantState := decodeTraceContext(body)
		if gotParent != wantParent || gotState != wantState {
			t.Errorf("TraceContext(%q) = (%q, %q), decoding gives (%q, %q)", body, gotParent, gotState, wantParent, wantState)
		}
	})
}
