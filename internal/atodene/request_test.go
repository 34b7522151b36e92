package atodene

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/testenv/golden"
)

// TestCheckKeepsItsOwnOrder: a Request is what was checked, whatever happens afterwards to the
// order it was made from or to the copies Order returns; it still sends the golden bytes.
func TestCheckKeepsItsOwnOrder(t *testing.T) {
	o := shipToManyItemsOrder()
	req := mustCheck(t, o)
	want := shipToManyItemsOrder()
	if got := req.Order(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Order() = %+v, want the order checked %+v", got, want)
	}

	o.Items[0].Name, o.ShipTo.Zip = "changed after Check", "x"
	copied := req.Order()
	copied.Items[1].Name, copied.ShipTo.Name = "changed in a copy", "x"
	if got := req.Order(); !reflect.DeepEqual(got, want) {
		t.Errorf("the request's order changed with the order it was made from or a copy of it: %+v", got)
	}

	srv, body, _ := goldenServer(t, "register_review.response.xml")
	if _, err := newTestClient(t, srv.URL).Register(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "register_ship_to_many_items.request.xml", *body)
}

// TestCheckRefusesAndReturnsNoRequest: an order that breaks a rule gives an *InvalidRequestError
// and the zero Request, which the client will not send.
func TestCheckRefusesAndReturnsNoRequest(t *testing.T) {
	bad := sampleOrder()
	bad.Buyer.Zip = "x"
	req, err := bad.Check()
	var ie *InvalidRequestError
	if !errors.As(err, &ie) || ie.Op != opRegister || len(ie.Fields) != 2 || ie.Fields[0].Field != "zip" || ie.Fields[1].Field != "shipZip" {
		t.Fatalf("Check() error = %v, want an *InvalidRequestError for zip and shipZip", err)
	}
	if !reflect.DeepEqual(req, Request{}) {
		t.Errorf("Check() of an invalid order returned a request: %+v", req)
	}
}

// TestUncheckedRequestIsNotSent: a Request that Check did not make is refused by Register and
// Modify with ErrUncheckedRequest, before anything reaches the server.
func TestUncheckedRequestIsNotSent(t *testing.T) {
	srv, attempts := scriptedServer(t, respondFile("register_ok.response.xml"))
	c := newTestClient(t, srv.URL)
	ctx := context.Background()
	_, regErr := c.Register(ctx, Request{})
	_, modErr := c.Modify(ctx, "12345678901", Request{})
	for op, err := range map[string]error{"Register": regErr, "Modify": modErr} {
		if !errors.Is(err, ErrUncheckedRequest) {
			t.Errorf("%s(Request{}) error = %v, want ErrUncheckedRequest", op, err)
		}
		if IsRetrySafe(err) || OutcomeUnknown(err) {
			t.Errorf("%s(Request{}): %v is classed as retry-safe or outcome unknown", op, err)
		}
	}
	if !strings.Contains(regErr.Error(), opRegister) || !strings.Contains(modErr.Error(), opModify) {
		t.Errorf("the errors do not name the operation: %v; %v", regErr, modErr)
	}
	if n := attempts.Load(); n != 0 {
		t.Errorf("%d unchecked requests reached the server", n)
	}
}

// TestClientDoesNotCheckAgain: Register and Modify send a checked Request as it is. The test
// breaks the rules inside a checked Request, in its order and in its prebuilt parts alike; a
// client that applied the rules again, to either, would refuse it instead of sending it.
func TestClientDoesNotCheckAgain(t *testing.T) {
	tampered := func() Request {
		req := mustCheck(t, sampleOrder())
		req.order.Buyer.Zip, req.customer.Zip = "x", "x"
		req.order.Items[0].Quantity, req.details.Detail[0].GoodsAmount = 0, "0"
		return req
	}
	if _, err := tampered().order.Check(); err == nil {
		t.Fatal("the tampered order passes the rules: the test proves nothing")
	}
	calls := []struct {
		name, response string
		call           func(context.Context, *Client, Request) error
	}{
		{"Register", "register_ok.response.xml", func(ctx context.Context, c *Client, req Request) error {
			_, err := c.Register(ctx, req)
			return err
		}},
		{"Modify", "modifytransaction_change.response.xml", func(ctx context.Context, c *Client, req Request) error {
			_, err := c.Modify(ctx, "12345678901", req)
			return err
		}},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			srv, body, _ := goldenServer(t, tt.response)
			if err := tt.call(context.Background(), newTestClient(t, srv.URL), tampered()); err != nil {
				t.Fatalf("the checked request was not sent: %v", err)
			}
			for _, el := range []string{"<zip>x</zip>", "<goodsAmount>0</goodsAmount>"} {
				if !strings.Contains(string(*body), el) {
					t.Errorf("the request sent lacks %s: it was not the checked request's parts\n%s", el, *body)
				}
			}
		})
	}
}
