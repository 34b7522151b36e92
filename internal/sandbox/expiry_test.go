package sandbox_test

import (
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// TestAuthorizationLifetime: with Config.AuthorizationLifetime set, shipment reports (1, 2) and
// changes are refused with er000102 once the lifetime has passed since the last OK decision; a
// cancel, a shipment cancel and getauthori still work, and a lifetime of 0 never expires.
func TestAuthorizationLifetime(t *testing.T) {
	t.Parallel()
	const lifetime = 88 * 24 * time.Hour
	expired := []string{"transactionId:er000102"}
	tests := []struct {
		name     string
		lifetime time.Duration
		email    string
		wantAuto string
		// before runs after registration, before the clock moves by wait.
		before func(e *env, id string)
		wait   time.Duration
		// after runs once the clock has moved.
		after func(e *env, id string)
	}{
		{
			name: "a report just before expiry is accepted", lifetime: lifetime, email: "taro@example.jp", wantAuto: "OK",
			wait: lifetime - time.Nanosecond,
			after: func(e *env, id string) {
				wantOK(e.t, e.ship(id, "1", "11", "1111-2222-3333"))
				wantOK(e.t, e.ship(id, "2", "12", "1111-2222-3334"))
				wantOK(e.t, e.change(id, newOrder("X-1", "taro@example.jp").withLines(line{"品", 2000, 1})))
			},
		},
		{
			name: "a report once the lifetime has passed is refused", lifetime: lifetime, email: "taro@example.jp", wantAuto: "OK",
			wait: lifetime,
			after: func(e *env, id string) {
				wantNG(e.t, e.ship(id, "1", "11", "1111-2222-3333"), expired...)
				if v := e.transactions("X-1")[0]; v.Shipment != nil {
					e.t.Errorf("a refused report was recorded: %+v", v.Shipment)
				}
			},
		},
		{
			name: "a change of report and a credit change are refused, a shipment cancel is not", lifetime: lifetime,
			email: "taro@example.jp", wantAuto: "OK",
			before: func(e *env, id string) { wantOK(e.t, e.ship(id, "1", "11", "1111-2222-3333")) },
			wait:   lifetime + 24*time.Hour,
			after: func(e *env, id string) {
				wantNG(e.t, e.ship(id, "2", "12", "1111-2222-3334"), expired...)
				wantNG(e.t, e.change(id, newOrder("X-1", "taro@example.jp").withLines(line{"品", 2000, 1})), expired...)
				// Even a change of nothing but the addresses, which would not re-screen.
				wantNG(e.t, e.change(id, newOrder("X-1", "taro@example.jp").set("zip", "1000001")), expired...)
				// Field errors still come first.
				wantNG(e.t, e.change(id, newOrder("X-1", "taro@example.jp").set("tel", "")), "tel:er000001")
				wantNG(e.t, e.ship(id, "2", "12", "x"), "deliverySlipNo:er000001")
				if v := e.transactions("X-1")[0]; v.BilledAmount != 3055 || v.Shipment.DeliveryCompanyCode != "11" {
					e.t.Errorf("a refused call altered the transaction: %+v", v)
				}
				wantOK(e.t, e.ship(id, "3", "", ""))
			},
		},
		{
			name: "getauthori still answers and a cancel is accepted after expiry", lifetime: lifetime,
			email: "taro@example.jp", wantAuto: "OK",
			wait: lifetime,
			after: func(e *env, id string) {
				if r := e.authori(id); r.Result != "OK" || r.auto() != "OK" {
					e.t.Errorf("getauthori: %s auto %s %v", r.Result, r.auto(), r.errs())
				}
				wantOK(e.t, e.cancel(id))
				wantNG(e.t, e.ship(id, "1", "11", "1111-2222-3333"), "transactionId:er000033")
				// The order can then be registered again, with a fresh authorization.
				id2 := e.registerOK(newOrder("X-1", "taro@example.jp"), "OK")
				wantOK(e.t, e.ship(id2, "1", "11", "1111-2222-3333"))
			},
		},
		{
			name: "a lifetime of 0 never expires", lifetime: 0, email: "taro@example.jp", wantAuto: "OK",
			wait: 10 * 365 * 24 * time.Hour,
			after: func(e *env, id string) {
				wantOK(e.t, e.ship(id, "1", "11", "1111-2222-3333"))
				wantOK(e.t, e.ship(id, "2", "12", "1111-2222-3334"))
				wantOK(e.t, e.change(id, newOrder("X-1", "taro@example.jp").withLines(line{"品", 2000, 1})))
			},
		},
		{
			name: "a review that turns OK late counts from the OK", lifetime: lifetime, email: "review-ok@example.jp", wantAuto: "審査中",
			// The review turns OK reviewDelay after registration: lifetime after registration is not yet expiry.
			wait: lifetime,
			after: func(e *env, id string) {
				wantOK(e.t, e.ship(id, "1", "11", "1111-2222-3333"))
				e.clock.Advance(reviewDelay - time.Nanosecond)
				wantOK(e.t, e.ship(id, "2", "12", "1111-2222-3334"))
				e.clock.Advance(time.Nanosecond)
				wantNG(e.t, e.ship(id, "2", "13", "1111-2222-3335"), expired...)
			},
		},
		{
			name: "a review decided OK by the admin API counts from the decision", lifetime: lifetime, email: "review-ok@example.jp", wantAuto: "審査中",
			before: func(e *env, id string) {
				e.clock.Advance(time.Second)
				if code := e.admin("POST", "/sandbox/transactions/"+id+"/decision", `{"result": "OK"}`, nil); code != 200 {
					e.t.Fatalf("decision: HTTP %d", code)
				}
			},
			wait: lifetime - time.Nanosecond,
			after: func(e *env, id string) {
				wantOK(e.t, e.ship(id, "1", "11", "1111-2222-3333"))
				e.clock.Advance(time.Nanosecond)
				wantNG(e.t, e.ship(id, "2", "12", "1111-2222-3334"), expired...)
			},
		},
		{
			name: "a pending review never expires", lifetime: time.Minute, email: "hold@example.jp", wantAuto: "審査中",
			wait: 24 * time.Hour,
			after: func(e *env, id string) {
				// The hold turned NG: the shipment is refused for the decision, not for expiry.
				wantNG(e.t, e.ship(id, "1", "11", "1111-2222-3333"), "transactionId:er000301")
			},
		},
		{
			name: "a re-screening change that answers OK renews the authorization", lifetime: lifetime,
			email: "taro@example.jp", wantAuto: "OK",
			before: func(e *env, id string) {
				e.clock.Advance(lifetime - time.Hour)
				r := e.change(id, newOrder("X-1", "taro@example.jp").withLines(line{"品", 2000, 1}))
				if r.Result != "OK" || r.auto() != "OK" {
					e.t.Fatalf("change: %s auto %s %v", r.Result, r.auto(), r.errs())
				}
			},
			wait: lifetime - time.Nanosecond,
			after: func(e *env, id string) {
				wantOK(e.t, e.ship(id, "1", "11", "1111-2222-3333"))
				e.clock.Advance(time.Nanosecond)
				wantNG(e.t, e.ship(id, "2", "12", "1111-2222-3334"), expired...)
			},
		},
		{
			name: "a change of nothing but the addresses does not renew it", lifetime: lifetime,
			email: "taro@example.jp", wantAuto: "OK",
			before: func(e *env, id string) {
				e.clock.Advance(lifetime - time.Hour)
				r := e.change(id, newOrder("X-1", "taro@example.jp").set("zip", "1000001"))
				if r.Result != "OK" || r.auto() != "" {
					e.t.Fatalf("change: %s auto %q %v", r.Result, r.auto(), r.errs())
				}
			},
			wait: time.Hour,
			after: func(e *env, id string) {
				wantNG(e.t, e.ship(id, "1", "11", "1111-2222-3333"), expired...)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *sandbox.Config) { c.AuthorizationLifetime = tt.lifetime })
			id := e.registerOK(newOrder("X-1", tt.email), tt.wantAuto)
			if tt.before != nil {
				tt.before(e, id)
			}
			e.clock.Advance(tt.wait)
			tt.after(e, id)
		})
	}
}
