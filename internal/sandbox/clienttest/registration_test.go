package clienttest

import (
	"errors"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// TestLinkInfoRejected checks that a wrong linkInfo is refused as a *RejectedError naming the element
// at fault, is not retried, registers nothing, and that the error never carries a password.
func TestLinkInfoRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		creds func(*atodene.Credentials)
		point string
	}{
		{"wrong password", func(c *atodene.Credentials) { c.LinkPassword = "wrongpass01" }, "linkPassword"},
		{"unknown shopCode", func(c *atodene.Credentials) { c.ShopCode = "xyz000000009" }, "shopCode"},
		{"wrong linkId", func(c *atodene.Credentials) { c.LinkID = "eccubeid01" }, "linkId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			creds := demoCredentials()
			tt.creds(&creds)
			client := e.newClient(func(c *atodene.Config) { c.Credentials = creds })

			_, err := client.Register(t.Context(), request(newOrder("L-1", "taro@example.jp", 3000)))
			wantRejected(t, err, tt.point, sandbox.CodeAuth)
			for _, secret := range []string{creds.LinkPassword, sandbox.DemoShop.LinkPassword} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows a password: %v", err)
				}
			}
			if v := e.transactions("L-1"); len(v) != 0 {
				t.Errorf("a registration with a wrong linkInfo was kept: %+v", v)
			}

			// The same credentials are refused on a transaction that exists, without revealing it.
			reg := e.register(newOrder("L-2", "taro@example.jp", 3000))
			_, err = client.GetAuthori(t.Context(), reg.TransactionID)
			wantRejected(t, err, tt.point, sandbox.CodeAuth)

			if st := e.statsAfter("getauthori", 1); st.Operations["transaction"].Calls != 2 || st.Operations["getauthori"].Calls != 1 {
				t.Errorf("rejections were retried: %d transaction and %d getauthori calls, want 2 and 1",
					st.Operations["transaction"].Calls, st.Operations["getauthori"].Calls)
			}
		})
	}
}

// TestDuplicateRegistration checks the duplicate rule through the client: a shopOrderId with a live
// transaction (OK, under review, on hold) cannot be registered again, and errors.Is matches
// ErrAlreadyRegistered; after an automatic NG, a manual NG or a cancel it can, under a new
// transaction ID. The admin API counts the registrations and the refusals.
func TestDuplicateRegistration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		email string
		// settle brings the first transaction into the state under test.
		settle    func(e *env, txID string)
		duplicate bool
	}{
		{"live OK", "taro@example.jp", nil, true},
		{"under review", "review-ok@example.jp", nil, true},
		{"on hold", "hold@example.jp", func(e *env, _ string) { e.clock.Advance(reviewDelay) }, true},
		{"automatic NG", "ng@example.jp", nil, false},
		{"manual NG", "review-ng@example.jp", func(e *env, _ string) { e.clock.Advance(reviewDelay) }, false},
		{"hold turned NG", "hold@example.jp", func(e *env, _ string) { e.clock.Advance(reviewDelay + holdDelay) }, false},
		{"cancelled", "taro@example.jp", func(e *env, txID string) {
			if err := e.client.Cancel(e.t.Context(), txID); err != nil {
				e.t.Fatal(err)
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			first := e.register(newOrder("R-1", tt.email, 3000))
			if tt.settle != nil {
				tt.settle(e, first.TransactionID)
			}

			again, err := e.client.Register(t.Context(), request(newOrder("R-1", "taro@example.jp", 3000)))
			if tt.duplicate {
				if !errors.Is(err, atodene.ErrAlreadyRegistered) || errors.Is(err, atodene.ErrAlreadyCancelled) {
					t.Fatalf("second registration: %v, want ErrAlreadyRegistered only", err)
				}
				wantRejected(t, err, "shopOrderId", atodene.CodeAlreadyRegistered)
				v := e.onlyTransaction("R-1")
				if v.TransactionID != first.TransactionID || v.Registrations != 1 || v.RejectedRegistrations != 1 || v.State != "active" {
					t.Errorf("admin view %+v, want the first transaction, 1 registration, 1 refused", v)
				}
				return
			}
			if err != nil {
				t.Fatalf("registering again: %v", err)
			}
			if again.TransactionID == first.TransactionID || again.Auto != atodene.DecisionOK {
				t.Fatalf("registering again: %+v, want a new transaction ID (first %s) and OK", again, first.TransactionID)
			}
			v := e.transactions("R-1")
			if len(v) != 2 || v[0].TransactionID != first.TransactionID || v[1].TransactionID != again.TransactionID {
				t.Fatalf("admin lists %+v, want the two transactions in order", v)
			}
			for _, tv := range v {
				if tv.Registrations != 2 || tv.RejectedRegistrations != 0 {
					t.Errorf("admin view %+v, want 2 registrations, none refused", tv)
				}
			}
			if v[1].State != "active" || v[1].Decision != "OK" {
				t.Errorf("the new transaction is %+v, want active and OK", v[1])
			}
			// The new transaction is live: a third registration is a duplicate.
			if _, err := e.client.Register(t.Context(), request(newOrder("R-1", "taro@example.jp", 3000))); !errors.Is(err, atodene.ErrAlreadyRegistered) {
				t.Errorf("third registration: %v, want ErrAlreadyRegistered", err)
			}
		})
	}
}

// TestInvalidOrderIsNotSent checks that an order that breaks the field rules fails Order.Check with
// an *InvalidRequestError naming the fields, and that the client sends nothing for the request
// the failed check leaves (the zero Request) or for a malformed transaction ID.
func TestInvalidOrderIsNotSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := newOrder("I-1", "taro@example.jp", 3000)
	o.Buyer.Zip = "150-00011"
	o.Buyer.NameKana = "かとう たろう"
	req, err := o.Check()
	var inv *atodene.InvalidRequestError
	if !errors.As(err, &inv) {
		t.Fatalf("got %T %v, want *atodene.InvalidRequestError", err, err)
	}
	var fields []string
	for _, f := range inv.Fields {
		fields = append(fields, f.Field)
	}
	if got := strings.Join(fields, ","); got != "kanaName,zip,shipKananame,shipZip" {
		t.Errorf("fields at fault: %s, want kanaName,zip,shipKananame,shipZip", got)
	}
	if atodene.IsRetrySafe(err) || atodene.OutcomeUnknown(err) {
		t.Errorf("an invalid request is classed as retry-safe or outcome unknown: %v", err)
	}

	if _, err := e.client.Register(t.Context(), req); !errors.Is(err, atodene.ErrUncheckedRequest) {
		t.Errorf("Register of what the failed check returned: %v, want ErrUncheckedRequest", err)
	}
	reg := e.register(newOrder("I-2", "taro@example.jp", 3000))
	if _, err := e.client.Modify(t.Context(), reg.TransactionID, req); !errors.Is(err, atodene.ErrUncheckedRequest) {
		t.Errorf("Modify with what the failed check returned: %v, want ErrUncheckedRequest", err)
	}
	if _, err := e.client.GetAuthori(t.Context(), "TX-1"); !errors.As(err, &inv) {
		t.Errorf("GetAuthori with a malformed transaction ID: %v, want an *InvalidRequestError", err)
	}

	st := e.statsAfter("transaction", 1)
	if st.Operations["transaction"].Calls != 1 || st.Operations["modifytransaction"].Calls != 0 || st.Operations["getauthori"].Calls != 0 {
		t.Errorf("invalid requests reached the sandbox: %+v", st.Operations)
	}
}
