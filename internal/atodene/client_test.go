package atodene

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// scriptedServer answers attempt n with handlers[min(n, len-1)] and counts attempts.
func scriptedServer(t *testing.T, handlers ...http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		handlers[min(i, len(handlers)-1)](w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func respondFile(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := os.ReadFile("testdata/" + name)
		_, _ = w.Write(b)
	}
}

func respondStatus(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
}

func respondBody(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) }
}

// hang waits until the client gives up: the request was received, the answer never comes.
// The body is read first: the server notices a closed connection only after that.
func hang(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

func TestTransportErrors(t *testing.T) {
	req := mustCheck(t, sampleOrder())
	register := func(ctx context.Context, c *Client) error { _, err := c.Register(ctx, req); return err }
	authori := func(ctx context.Context, c *Client) error { _, err := c.GetAuthori(ctx, "12345678902"); return err }
	invoice := func(ctx context.Context, c *Client) error { _, err := c.InvoiceData(ctx, "12345678901"); return err }
	cancel := func(ctx context.Context, c *Client) error { return c.Cancel(ctx, "12345678901") }

	tests := []struct {
		name         string
		handlers     []http.HandlerFunc
		call         func(context.Context, *Client) error
		wantAttempts int32
		check        func(error) bool
	}{
		{"register 500 is not retried", []http.HandlerFunc{respondStatus(500)}, register, 1,
			func(err error) bool {
				var se *StatusError
				return errors.As(err, &se) && se.StatusCode == 500 && OutcomeUnknown(err)
			}},
		{"register timeout is outcome unknown, not retried", []http.HandlerFunc{hang}, register, 1,
			func(err error) bool {
				var ou *OutcomeUnknownError
				return errors.As(err, &ou) && errors.Is(err, context.DeadlineExceeded) && !IsRetrySafe(err)
			}},
		{"register garbage is malformed", []http.HandlerFunc{respondBody("<html>oops")}, register, 1,
			func(err error) bool {
				var me *MalformedResponseError
				return errors.As(err, &me) && OutcomeUnknown(err)
			}},
		{"register echo mismatch is malformed", []http.HandlerFunc{respondBody(`<response><result>OK</result><transactionInfo><shopOrderId>other</shopOrderId><transactionId>1</transactionId><autoAuthoriresult>OK</autoAuthoriresult></transactionInfo></response>`)}, register, 1,
			func(err error) bool {
				var me *MalformedResponseError
				return errors.As(err, &me) && strings.Contains(err.Error(), "shopOrderId")
			}},
		{"register with a transactionId no later call can name is malformed", []http.HandlerFunc{respondBody(`<response><result>OK</result><transactionInfo><shopOrderId>100000123</shopOrderId><transactionId>TX-0001</transactionId><autoAuthoriresult>OK</autoAuthoriresult></transactionInfo></response>`)}, register, 1,
			func(err error) bool {
				var me *MalformedResponseError
				return errors.As(err, &me) && OutcomeUnknown(err) && strings.Contains(err.Error(), `transactionId "TX-0001" must be digits`)
			}},
		{"register unknown auto result is malformed", []http.HandlerFunc{respondBody(`<response><result>OK</result><transactionInfo><shopOrderId>100000123</shopOrderId><transactionId>1</transactionId><autoAuthoriresult>MAYBE</autoAuthoriresult></transactionInfo></response>`)}, register, 1,
			func(err error) bool { var me *MalformedResponseError; return errors.As(err, &me) }},
		{"NG without errors is malformed", []http.HandlerFunc{respondBody(`<response><result>NG</result></response>`)}, cancel, 1,
			func(err error) bool { var me *MalformedResponseError; return errors.As(err, &me) }},
		{"wrong root is malformed", []http.HandlerFunc{respondBody(`<request><result>OK</result></request>`)}, cancel, 1,
			func(err error) bool { var me *MalformedResponseError; return errors.As(err, &me) }},
		{"getauthori 500 then OK is retried", []http.HandlerFunc{respondStatus(502), respondStatus(500), respondFile("getauthori_hold.response.xml")}, authori, 3,
			func(err error) bool { return err == nil }},
		{"getauthori gives up after the retries", []http.HandlerFunc{respondStatus(503)}, authori, 3,
			func(err error) bool { var se *StatusError; return errors.As(err, &se) && se.StatusCode == 503 }},
		{"getauthori timeout then OK is retried", []http.HandlerFunc{hang, respondFile("getauthori_hold.response.xml")}, authori, 2,
			func(err error) bool { return err == nil }},
		{"invoice garbage then OK is retried", []http.HandlerFunc{respondBody("\x00\x01"), respondFile("getinvoicedata.response.xml")}, invoice, 2,
			func(err error) bool { return err == nil }},
		{"rejection is never retried", []http.HandlerFunc{respondFile("getauthori_cancelled.response.xml")}, authori, 1,
			func(err error) bool { return errors.Is(err, ErrAlreadyCancelled) && !OutcomeUnknown(err) }},
		{"body over the limit", []http.HandlerFunc{respondBody(`<response><result>OK</result>` + strings.Repeat(" ", 5000) + `</response>`)}, cancel, 1,
			func(err error) bool {
				var me *MalformedResponseError
				return errors.As(err, &me) && strings.Contains(me.Reason, "larger")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, attempts := scriptedServer(t, tt.handlers...)
			c, err := New(Config{
				BaseURL:          srv.URL,
				Credentials:      Credentials{ShopCode: "abc123456789", LinkPassword: "secret-pw1"},
				Timeout:          200 * time.Millisecond,
				RetryInterval:    time.Millisecond,
				MaxResponseBytes: 4000,
			})
			if err != nil {
				t.Fatal(err)
			}
			err = tt.call(context.Background(), c)
			if !tt.check(err) {
				t.Errorf("unexpected error: %#v (%v)", err, err)
			}
			if got := attempts.Load(); got != tt.wantAttempts {
				t.Errorf("%d attempts, want %d", got, tt.wantAttempts)
			}
			if err != nil && strings.Contains(err.Error(), "secret-pw1") {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}

func TestNotSentIsRetried(t *testing.T) {
	// A listener that is closed at once: connections are refused, so nothing reaches a server.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var observed atomic.Int32
	c, err := New(Config{
		BaseURL:       "http://" + addr + "/api/",
		Credentials:   Credentials{ShopCode: "abc123456789", LinkPassword: "secret-pw1"},
		RetryInterval: time.Millisecond,
		MaxRetries:    3,
		Observe:       func(op string, d time.Duration, err error) { observed.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Register(context.Background(), mustCheck(t, sampleOrder()))
	if !IsRetrySafe(err) || OutcomeUnknown(err) {
		t.Fatalf("error = %v, want a NotSentError", err)
	}
	if got := observed.Load(); got != 4 {
		t.Errorf("%d attempts, want 1 + 3 retries", got)
	}
	if strings.Contains(err.Error(), "secret-pw1") || strings.Contains(err.Error(), "http://") {
		t.Errorf("error reveals the password or URL: %v", err)
	}
}

func TestCancelledContextStopsRetries(t *testing.T) {
	srv, attempts := scriptedServer(t, respondStatus(500))
	c := newTestClient(t, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.GetAuthori(ctx, "12345678902")
	if !errors.Is(err, context.Canceled) || !IsRetrySafe(err) {
		t.Fatalf("error = %v, want a not-sent context.Canceled", err)
	}
	if attempts.Load() != 0 {
		t.Errorf("%d requests reached the server", attempts.Load())
	}
}

func TestInvalidRequestsAreNotSent(t *testing.T) {
	srv, attempts := scriptedServer(t, respondFile("shippingrequest.response.xml"))
	c := newTestClient(t, srv.URL)
	ctx := context.Background()
	var ie *InvalidRequestError
	if _, err := c.Modify(ctx, "TX-1", mustCheck(t, sampleOrder())); !errors.As(err, &ie) || ie.Op != "modifytransaction.do" || ie.Fields[0].Field != "transactionId" {
		t.Errorf("Modify with a malformed transaction ID: %v", err)
	}
	if err := c.ReportShipment(ctx, Shipment{Type: DeliveryNew, TransactionID: "1", CarrierCode: "1", SlipNo: "12"}); !errors.As(err, &ie) || len(ie.Fields) != 2 {
		t.Errorf("ReportShipment: %v", err)
	}
	if err := c.ReportShipment(ctx, Shipment{Type: "9", TransactionID: "1", CarrierCode: "12", SlipNo: "12345"}); !errors.As(err, &ie) || ie.Fields[0].Field != "deliveryType" {
		t.Errorf("ReportShipment type: %v", err)
	}
	if _, err := c.GetAuthori(ctx, ""); !errors.As(err, &ie) || ie.Fields[0].Field != "transactionId" {
		t.Errorf("GetAuthori: %v", err)
	}
	if attempts.Load() != 0 {
		t.Errorf("%d invalid requests were sent", attempts.Load())
	}
}

func TestNewValidatesConfig(t *testing.T) {
	good := Config{BaseURL: "https://example.test/api/", Credentials: Credentials{ShopCode: "abc", LinkPassword: "pw-secret"}}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"relative URL", func(c *Config) { c.BaseURL = "/api/" }, "base URL"},
		{"credentials in URL", func(c *Config) { c.BaseURL = "https://u:pw-secret@example.test/api/" }, "must not carry credentials"},
		{"no shop code", func(c *Config) { c.Credentials.ShopCode = "" }, "shop code"},
		{"no password", func(c *Config) { c.Credentials.LinkPassword = "" }, "link password"},
	}
	for _, tt := range tests {
		cfg := good
		tt.mutate(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "pw-secret") {
			t.Errorf("%s: error = %v, want one about %q without the password", tt.name, err, tt.want)
		}
	}
	if s := good.Credentials.String(); strings.Contains(s, "pw-secret") {
		t.Errorf("Credentials.String reveals the password: %s", s)
	}
}

func TestScreeningDecision(t *testing.T) {
	tests := []struct {
		auto, manual, want Decision
	}{
		{DecisionOK, DecisionNone, DecisionOK},
		{DecisionNG, DecisionNone, DecisionNG},
		{DecisionReview, DecisionNone, DecisionReview},
		{DecisionReview, DecisionHold, DecisionHold},
		{DecisionReview, DecisionOK, DecisionOK},
		{DecisionReview, DecisionNG, DecisionNG},
	}
	for _, tt := range tests {
		if got := (Screening{Auto: tt.auto, Manual: tt.manual}).Decision(); got != tt.want {
			t.Errorf("auto %q manual %q: %q, want %q", tt.auto, tt.manual, got, tt.want)
		}
	}
}

// FuzzParseResponse feeds arbitrary bodies to the parser: it must never panic, and whatever it
// accepts has a result of OK, or NG with at least one error.
func FuzzParseResponse(f *testing.F) {
	for _, name := range []string{"register_ok", "register_ng", "getauthori_hold", "getinvoicedata", "modifytransaction_change"} {
		b, err := os.ReadFile("testdata/" + name + ".response.xml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<response><result>NG</result><errors></errors></response>`))
	f.Add([]byte(`<?xml version="1.0" encoding="Shift_JIS"?><response><result>OK</result></response>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseResponse(body)
		if err != nil {
			return
		}
		if !r.ok() && len(r.providerErrors()) == 0 {
			t.Fatalf("accepted NG without errors: %q", body)
		}
	})
}

// TestErrorsQuoteNoAnswerText: an answer's text may hold the buyer's data (getinvoicedata.do's
// print data), and ATODENE's messages may quote a request's values. encoding/xml's messages quote
// what they stumble on ("invalid character entity &雅之介 (no semicolon)"), so no error built from an
// answer carries its text: it keeps a fixed description, the line and the byte offset, and short
// codes (no personal data in logs, operations-worker.md; the error reaches logs, spans and dead letters).
func TestErrorsQuoteNoAnswerText(t *testing.T) {
	t.Parallel()
	const marker = "雅之介"
	invoice := func(ctx context.Context, c *Client) error { _, err := c.InvoiceData(ctx, "12345678901"); return err }
	register := func(ctx context.Context, c *Client) error {
		_, err := c.Register(ctx, mustCheck(t, sampleOrder()))
		return err
	}
	for _, tt := range []struct {
		name, body, want string
		call             func(context.Context, *Client) error
	}{
		{"an unescaped ampersand", "<response>\n<result>OK</result>\n<invoiceInfo><name>加藤 &" + marker + "</name></invoiceInfo></response>", "XML syntax error on line 3", invoice},
		{"a bad character reference", "<response><result>OK</result><invoiceInfo><name>&#" + marker + ";</name></invoiceInfo></response>", "XML syntax error on line 1", invoice},
		{"a mismatched end tag", "<response><result>OK</result><invoiceInfo><" + marker + "></name></invoiceInfo></response>", "XML syntax error", invoice},
		{"a wrong root", "<" + marker + "><result>OK</result></" + marker + ">", "not a <response> document", invoice},
		{"another encoding", `<?xml version="1.0" encoding="` + marker + `"?><response/>`, "an encoding other than UTF-8", invoice},
		{"a cut answer", "<response><result>OK</result><invoiceInfo><name>" + marker, "XML ends early", invoice},
		{"a result neither OK nor NG", "<response><result>" + marker + "</result></response>", "result of 3 characters (not quoted)", invoice},
		{"an unknown screening result", `<response><result>OK</result><transactionInfo><shopOrderId>100000123</shopOrderId><transactionId>1</transactionId><autoAuthoriresult>` + marker + `</autoAuthoriresult></transactionInfo></response>`, "unexpected screening result of 3 characters", register},
		{"a transactionId of text", `<response><result>OK</result><transactionInfo><shopOrderId>100000123</shopOrderId><transactionId>` + marker + `</transactionId><autoAuthoriresult>OK</autoAuthoriresult></transactionInfo></response>`, "transactionId of 3 characters (not quoted)", register},
		{"a rejection quoting the value", `<response><result>NG</result><errors><error><errorPoint>name</errorPoint><errorCode>er000001</errorCode><errorMessage>氏名「加藤 ` + marker + `」の形式が正しくありません。</errorMessage></error></errors></response>`, "rejected: name er000001", register},
		{"a rejection with a point of text", `<response><result>NG</result><errors><error><errorPoint>` + marker + `</errorPoint><errorCode>er000001</errorCode><errorMessage>x</errorMessage></error></errors></response>`, "rejected: ? er000001", register},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := scriptedServer(t, respondBody(tt.body))
			c, err := New(Config{BaseURL: srv.URL, Credentials: Credentials{ShopCode: "abc123456789", LinkPassword: "secret-pw1"},
				Timeout: time.Second, RetryInterval: time.Millisecond, MaxRetries: 0})
			if err != nil {
				t.Fatal(err)
			}
			err = tt.call(context.Background(), c)
			if err == nil || strings.Contains(err.Error(), marker) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v: want %q and no %q", err, tt.want, marker)
			}
		})
	}
}

// Points, what the handlers write of a rejection in a log line, a history entry or a refused
// shop's detail, quotes what Error quotes: short codes, never an answer's free text.
func TestRejectedPointsQuoteNoText(t *testing.T) {
	t.Parallel()
	e := &RejectedError{Op: "transaction.do", Errors: []ProviderError{
		{Point: "linkPassword", Code: "er000003"},
		{Point: "山田 太郎 東京都", Code: "er000001", Message: "山田"},
	}}
	if got, want := e.Points(", "), "linkPassword er000003, ? er000001"; got != want {
		t.Errorf("Points = %q, want %q", got, want)
	}
}
