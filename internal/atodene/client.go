// Package atodene is a client for ATODENE's XML-over-HTTP merchant API (取引登録, 与信審査結果取得,
// 出荷報告, 取引変更・取消, 請求書印字データ取得), as described in docs/protocol.md.
//
// Each operation takes a context and typed values, and returns typed results or one of the typed
// errors of errors.go, which say what the caller may do next: retry safely (NotSentError), treat
// the outcome as unknown (OutcomeUnknownError, StatusError, MalformedResponseError), act on the
// provider's refusal (RejectedError), or fix the data (InvalidRequestError).
//
// The client retries on its own only where a retry cannot cause a second effect: read-only
// operations (getauthori.do, getinvoicedata.do) on any transport failure, and every operation
// when the request provably never reached the server. Credentials never appear in errors or logs.
package atodene

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/tracing"
)

// Operation names, as the path of each endpoint.
const (
	opRegister = "transaction.do"
	opAuthori  = "getauthori.do"
	opShipment = "shippingrequest.do"
	opModify   = "modifytransaction.do"
	opInvoice  = "getinvoicedata.do"
)

// Credentials identify a merchant (linkInfo). Their String method masks the password.
type Credentials struct {
	ShopCode     string // 加盟店コード
	LinkID       string // 接続先特定ID; default "original00"
	LinkPassword string // 連携パスワード
}

// String prints the credentials with the password masked.
func (c Credentials) String() string {
	return fmt.Sprintf("{ShopCode:%s LinkID:%s LinkPassword:****}", c.ShopCode, c.LinkID)
}

// DefaultLinkID is the connection ID every known client sends.
const DefaultLinkID = "original00"

// Config configures a Client.
type Config struct {
	// BaseURL is the API root, e.g. https://www.manage.atodene.jp/api/. Required; it must not
	// carry credentials.
	BaseURL string
	// Credentials are the merchant's linkInfo. ShopCode and LinkPassword are required.
	Credentials Credentials
	// HTTPClient sends the requests. Default: a new http.Client with no overall timeout (the
	// per-attempt Timeout applies).
	HTTPClient *http.Client
	// Timeout bounds one attempt: sending the request and reading the answer. Default 30s.
	Timeout time.Duration
	// MaxResponseBytes limits the size of a response body. Default 1 MiB.
	MaxResponseBytes int64
	// MaxRetries is how many times a retry-safe failure is retried. Default 2; negative disables.
	MaxRetries int
	// RetryInterval is the first wait between attempts; later waits grow 1.5 times, capped at 2s,
	// each randomised by ±50%. Default 200ms.
	RetryInterval time.Duration
	// Logger receives debug lines about retries. Default: no logging.
	Logger *zap.Logger
	// Observe, if set, is called after every attempt with the operation, its duration and its
	// error (nil on success, a *RejectedError on NG), e.g. to record metrics.
	Observe func(op string, d time.Duration, err error)
}

func (c Config) withDefaults() Config {
	if c.Credentials.LinkID == "" {
		c.Credentials.LinkID = DefaultLinkID
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = 1 << 20
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 2
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 200 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

func (c Config) validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("atodene: base URL %q is not an absolute http(s) URL", c.BaseURL)
	}
	if u.User != nil {
		return fmt.Errorf("atodene: base URL must not carry credentials")
	}
	if c.Credentials.ShopCode == "" {
		return fmt.Errorf("atodene: credentials: shop code is required")
	}
	if c.Credentials.LinkPassword == "" {
		return fmt.Errorf("atodene: credentials: link password is required")
	}
	return nil
}

// Client calls ATODENE for one merchant. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base string
	host string // the base URL's host name, for spans
}

// New returns a client, or an error naming the configuration field at fault.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.BaseURL) // validated above
	return &Client{cfg: cfg, base: strings.TrimSuffix(cfg.BaseURL, "/") + "/", host: u.Hostname()}, nil
}

func (c *Client) linkInfo() linkInfoXML {
	return linkInfoXML{
		ShopCode:     c.cfg.Credentials.ShopCode,
		LinkID:       c.cfg.Credentials.LinkID,
		LinkPassword: c.cfg.Credentials.LinkPassword,
	}
}

// The attributes of an operation's span.
var (
	attrOperation = attribute.Key("atodene.operation")
	attrResult    = attribute.Key("atodene.result")
	attrAttempts  = attribute.Key("atodene.attempts")
)

// readOnly operations may be retried after any transport failure: repeating them changes nothing.
// getinvoicedata.do fixes the payment deadline on its first call; later calls return the same data.
func readOnly(op string) bool { return op == opAuthori || op == opInvoice }

// call sends one request document (rendered by wire.go) and returns the parsed answer. A result NG becomes a
// *RejectedError. Retries follow the rules of the package comment; cancelling ctx stops them.
//
// Within a traced message's span, the call is a client span "atodene <op>" (traceCall), with a
// "retry" event for each attempt that failed and was retried.
func (c *Client) call(ctx context.Context, op string, body []byte) (resp *responseXML, err error) {
	span := trace.SpanFromContext(ctx)
	attempt := 0
	if span.IsRecording() { // the name and attributes are built only then: they allocate
		ctx, span = c.traceCall(ctx, op)
		defer func() { endCall(span, resp, err, attempt) }()
	}
	var policy backoff.BackOff = &backoff.StopBackOff{}
	if c.cfg.MaxRetries > 0 {
		exp := backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(c.cfg.RetryInterval),
			backoff.WithMaxInterval(2*time.Second),
			backoff.WithMaxElapsedTime(0),
		)
		policy = backoff.WithMaxRetries(exp, uint64(c.cfg.MaxRetries))
	}
	var last error // the last attempt's error, which carries the classification
	resp, err = backoff.RetryNotifyWithData(func() (*responseXML, error) {
		attempt++
		resp, err := c.attempt(ctx, op, body)
		last = err
		switch {
		case err == nil:
			return resp, nil
		case ctx.Err() != nil, !IsRetrySafe(err) && !(readOnly(op) && OutcomeUnknown(err)):
			return resp, backoff.Permanent(err)
		}
		return nil, err
	}, backoff.WithContext(policy, ctx), func(err error, wait time.Duration) {
		traceRetry(span, attempt, err)
		c.cfg.Logger.Debug("atodene: retrying", zap.String("op", op), zap.Int("attempt", attempt),
			zap.Duration("wait", wait), zap.Error(err))
	})
	if err != nil && last != nil && !errors.Is(err, last) {
		// ctx ended while waiting to retry, and backoff returned the bare context error: keep the
		// last attempt's typed error, which still says what happened to the request.
		err = fmt.Errorf("%w (%w)", last, err)
	}
	return resp, err
}

func (c *Client) attempt(ctx context.Context, op string, body []byte) (resp *responseXML, err error) {
	start := time.Now()
	defer func() {
		if c.cfg.Observe != nil {
			c.cfg.Observe(op, time.Since(start), err)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	var written atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) { written.Store(info.Err == nil) },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+op, bytes.NewReader(body))
	if err != nil {
		return nil, &NotSentError{Op: op, Err: err}
	}
	req.Header.Set("Content-Type", "application/xml; charset=UTF-8")
	httpResp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		err = withoutURL(err)
		if !written.Load() {
			return nil, &NotSentError{Op: op, Err: err}
		}
		return nil, &OutcomeUnknownError{Op: op, Err: err}
	}
	defer httpResp.Body.Close()
	if httpResp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(httpResp.Body, 64<<10)) // lets the connection be reused
		return nil, &StatusError{Op: op, StatusCode: httpResp.StatusCode}
	}
	data, err := io.ReadAll(io.LimitReader(httpResp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, &OutcomeUnknownError{Op: op, Err: fmt.Errorf("reading response: %w", err)}
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return nil, &MalformedResponseError{Op: op, Reason: fmt.Sprintf("body larger than %d bytes", c.cfg.MaxResponseBytes)}
	}
	r, err := parseResponse(data)
	if err != nil {
		return nil, &MalformedResponseError{Op: op, Reason: err.Error()}
	}
	if !r.ok() {
		return r, &RejectedError{Op: op, Errors: r.providerErrors()}
	}
	return r, nil
}

// The HTTP attributes of an operation's span (OpenTelemetry's HTTP client conventions).
var (
	attrHTTPMethod = attribute.Key("http.request.method").String(http.MethodPost)
	attrHTTPStatus = attribute.Key("http.response.status_code")
	attrURL        = attribute.Key("url.full")
	attrServer     = attribute.Key("server.address")
	attrRetryError = attribute.Key("exception.message")
)

// traceCall starts the span of one ATODENE operation, "atodene <op>": a client span with the
// operation and the HTTP client attributes of its request (the URL has no user information: New
// refuses one). One span covers the operation's attempts rather than one child per HTTP request: a
// span costs the worker as much as its Redis script (cmd/bench -only tracing), and the attempts
// are the span's "retry" events. The request carries no trace context: ATODENE is not part of the
// trace.
func (c *Client) traceCall(ctx context.Context, op string) (context.Context, trace.Span) {
	return tracing.Start(ctx, "atodene "+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrOperation.String(op), attrHTTPMethod, attrURL.String(c.base+op), attrServer.String(c.host)))
}

// endCall ends an operation's span with its result (OK or NG; none when no answer was read), its
// attempts, the last attempt's HTTP status when one came, and its error.
func endCall(span trace.Span, resp *responseXML, err error, attempts int) {
	attrs := make([]attribute.KeyValue, 1, 3) // one SetAttributes call: the SDK grows and locks per call
	attrs[0] = attrAttempts.Int(attempts)
	if resp != nil && resp.Result != nil {
		attrs = append(attrs, attrResult.String(strings.TrimSpace(*resp.Result)))
	}
	if status, ok := httpStatus(resp, err); ok {
		attrs = append(attrs, attrHTTPStatus.Int(status))
	}
	span.SetAttributes(attrs...)
	tracing.Fail(span, err)
	span.End()
}

// traceRetry records on span that attempt failed with err and is retried. It does nothing outside
// a recording span.
func traceRetry(span trace.Span, attempt int, err error) {
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{tracing.Attempt.Int(attempt), attrRetryError.String(tracing.Clip(err.Error()))}
	if status, ok := httpStatus(nil, err); ok {
		attrs = append(attrs, attrHTTPStatus.Int(status))
	}
	span.AddEvent("retry", trace.WithAttributes(attrs...))
}

// httpStatus is the HTTP status of the attempt that returned resp and err, and whether one came:
// a StatusError's, or 200 for an answer read (parsed, refused or malformed).
func httpStatus(resp *responseXML, err error) (int, bool) {
	status, isStatus := errors.AsType[*StatusError](err)
	switch {
	case isStatus:
		return status.StatusCode, true
	case resp != nil || isType[*RejectedError](err) || isType[*MalformedResponseError](err):
		return http.StatusOK, true
	}
	return 0, false
}

// withoutURL drops the *url.Error wrapper, whose message repeats the request URL.
func withoutURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
