package inbound

import (
	"encoding/json"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

func TestWrapKeepsExtensionsAndFillsMissing(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 10, 15, 0, 0, time.FixedZone("JST", 9*3600))
	raw := `{"type": "order.invoice_requested", "traceparent": "00-abc-01", "data": {"shop_id": "demo", "order_id": "A-1"}}`
	ev, err := Wrap([]byte(raw), Fill{Source: "s", ID: "e-1", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(ev.Body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"specversion": "1.0", "id": "e-1", "source": "s", "type": "order.invoice_requested",
		"time": "2026-11-26T10:15:00+09:00", "datacontenttype": "application/json", "traceparent": "00-abc-01",
		"data": map[string]any{"shop_id": "demo", "order_id": "A-1"}}
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Errorf("body = %s\nwant   %s", g, w)
	}
	if ev.Subject != "orders.invoice_requested.demo" || ev.ID != "e-1" || ev.Type() != "order.invoice_requested" {
		t.Errorf("subject %q, id %q", ev.Subject, ev.ID)
	}

	// An attribute of the wrong JSON type is named once, by the worker's own check.
	_, err = Wrap([]byte(`{"type": 5, "data": {}}`), Fill{Source: "s", Now: now})
	var ie *events.InvalidError
	if !errors.As(err, &ie) || len(ie.Problems) != 1 || ie.Problems[0].Field != "type" {
		t.Errorf("err = %v, want one problem naming type", err)
	}
	if p := Problems(err); len(p) != 1 || p[0].Field != "type" {
		t.Errorf("Problems = %v", p)
	}
	if _, err := Wrap([]byte(`{"shop_id": "demo"}`), Fill{Source: "s", Now: now}); !errors.Is(err, ErrNeedType) {
		t.Errorf("a data object without a type: %v", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestIDs: random ids are version 4 UUIDs; keyed ids are version 8 UUIDs, the same for the same
// parts and different for others, and the event's Nats-Msg-Id is the id itself.
func TestIDs(t *testing.T) {
	t.Parallel()
	v4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	v8 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if a, b := NewID(), NewID(); !v4.MatchString(a) || a == b {
		t.Errorf("NewID: %s, %s", a, b)
	}
	k := KeyedID("form-1", "cancel", "demo", "A-1")
	if !v8.MatchString(k) || k != KeyedID("form-1", "cancel", "demo", "A-1") || k == KeyedID("form-1", "cancel", "demo", "A-2") ||
		KeyedID("ab", "c") == KeyedID("a", "bc") {
		t.Errorf("KeyedID: %s", k)
	}
	if events.MsgID("console/operator/alice", k) != k {
		t.Errorf("a keyed id is not its own Nats-Msg-Id")
	}
}
