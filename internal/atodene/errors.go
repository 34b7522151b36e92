package atodene

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes that ATODENE (or the sandbox, for er000101 and er000102) returns and callers act on.
const (
	CodeAlreadyCancelled     = "er000033" // the transaction is cancelled; a cancel of it counts as done
	CodeAlreadyRegistered    = "er000101" // the shopOrderId has a live transaction (sandbox code)
	CodeAuthorizationExpired = "er000102" // the transaction's authorization has expired (sandbox code)
	CodeUnknownTransaction   = "er000002" // no such transaction for the merchant (sandbox code)
)

// Sentinel errors matched by errors.Is against a *RejectedError.
var (
	// ErrAlreadyCancelled matches a rejection carrying er000033.
	ErrAlreadyCancelled = errors.New("atodene: transaction already cancelled (" + CodeAlreadyCancelled + ")")
	// ErrAlreadyRegistered matches a rejection carrying er000101: the order is already registered.
	ErrAlreadyRegistered = errors.New("atodene: order already registered (" + CodeAlreadyRegistered + ")")
	// ErrAuthorizationExpired matches a rejection carrying er000102: the transaction's authorization
	// has expired, so a shipment report or a change of it is refused. The transaction can still be
	// cancelled; to go on, register the order again (a new authorization) and cancel the old
	// transaction, as w2 Commerce does (docs/protocol.md#changes-and-cancels). Only the sandbox
	// sends this code (with its authorization lifetime set): the real service's answer is unknown.
	ErrAuthorizationExpired = errors.New("atodene: authorization expired (" + CodeAuthorizationExpired + ")")
	// ErrUnknownTransaction matches a rejection carrying er000002: ATODENE has no such transaction.
	ErrUnknownTransaction = errors.New("atodene: no such transaction (" + CodeUnknownTransaction + ")")
	// ErrAccountRefused matches a rejection of the merchant's account or of the request as a whole
	// rather than of the order: an error on linkInfo, shopCode, linkId, linkPassword or request
	// (the public clients count these as the merchant's side:
	// docs/protocol.md#errorpoint-the-merchant-or-the-order). No order of the merchant can
	// succeed until it is fixed.
	ErrAccountRefused = errors.New("atodene: the merchant's account or request was refused")
)

// accountPoints are the errorPoints that concern the merchant's account or the request as a whole.
var accountPoints = map[string]bool{"linkInfo": true, "shopCode": true, "linkId": true, "linkPassword": true, "request": true}

// NotSentError means the request provably never reached ATODENE (it was not completely written):
// nothing was processed, and sending it again is safe.
type NotSentError struct {
	Op  string
	Err error
}

func (e *NotSentError) Error() string {
	return fmt.Sprintf("atodene: %s: request not sent: %v", e.Op, e.Err)
}
func (e *NotSentError) Unwrap() error { return e.Err }

// OutcomeUnknownError means the request was sent but no answer came back (a timeout or a broken
// connection after the request was written). ATODENE may or may not have processed it.
type OutcomeUnknownError struct {
	Op  string
	Err error
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("atodene: %s: request sent, outcome unknown: %v", e.Op, e.Err)
}
func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// StatusError means ATODENE answered with an HTTP status other than 200. Business errors come as
// 200 with result NG, so this is a server or gateway failure; whether the request was processed
// is unknown.
type StatusError struct {
	Op         string
	StatusCode int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("atodene: %s: HTTP status %d", e.Op, e.StatusCode)
}

// MalformedResponseError means the answer could not be read as a valid response for the operation
// (not XML, wrong root, missing result, an NG without errors, a body over the size limit, an echo
// that does not match). The request was sent, so its outcome is unknown.
type MalformedResponseError struct {
	Op     string
	Reason string
}

func (e *MalformedResponseError) Error() string {
	return fmt.Sprintf("atodene: %s: malformed response: %s", e.Op, e.Reason)
}

// ProviderError is one entry of a response's errors block.
type ProviderError struct {
	Point   string `json:"point"`   // errorPoint: the request element at fault
	Code    string `json:"code"`    // errorCode
	Message string `json:"message"` // errorMessage, Japanese text
}

// RejectedError means ATODENE processed the request and refused it (result NG). Errors holds every
// error of the response, in order. Nothing changed on ATODENE's side; sending the same request again
// would be refused again.
type RejectedError struct {
	Op     string
	Errors []ProviderError
}

// Error names each error by its point and code. ATODENE's messages are left out, and a point or
// code that is not a short code is not quoted: what ATODENE's messages say is not known
// (docs/protocol.md), and a message about a field may quote the field's value, the buyer's data,
// which no error, log line, span or dead letter carries (docs/operations-worker.md). Errors keeps
// them whole.
func (e *RejectedError) Error() string {
	return fmt.Sprintf("atodene: %s: rejected: %s (ATODENE's messages are not quoted)", e.Op, e.Points("; "))
}

// Points names each error by its point and code ("linkPassword er000003"), joined by sep, as
// Error does: a point or code that is not a short code is written "?". It is what a log line,
// a history entry or a dead letter may say of a rejection.
func (e *RejectedError) Points(sep string) string {
	parts := make([]string, len(e.Errors))
	for i, pe := range e.Errors {
		parts[i] = codeText(pe.Point) + " " + codeText(pe.Code)
	}
	return strings.Join(parts, sep)
}

func codeText(v string) string {
	if isToken(v, 40) {
		return v
	}
	return "?"
}

// HasCode reports whether any error of the rejection carries code.
func (e *RejectedError) HasCode(code string) bool {
	for _, pe := range e.Errors {
		if pe.Code == code {
			return true
		}
	}
	return false
}

// Is matches ErrAlreadyCancelled, ErrAlreadyRegistered, ErrAuthorizationExpired and
// ErrUnknownTransaction by error code, and ErrAccountRefused by error point.
func (e *RejectedError) Is(target error) bool {
	switch target {
	case ErrAlreadyCancelled:
		return e.HasCode(CodeAlreadyCancelled)
	case ErrAlreadyRegistered:
		return e.HasCode(CodeAlreadyRegistered)
	case ErrAuthorizationExpired:
		return e.HasCode(CodeAuthorizationExpired)
	case ErrUnknownTransaction:
		return e.HasCode(CodeUnknownTransaction)
	case ErrAccountRefused:
		for _, pe := range e.Errors {
			if accountPoints[pe.Point] {
				return true
			}
		}
	}
	return false
}

// InvalidRequestError means the request broke ATODENE's field rules and was not sent. Fields lists
// every problem, each naming its element.
type InvalidRequestError struct {
	Op     string
	Fields []FieldError
}

func (e *InvalidRequestError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return fmt.Sprintf("atodene: %s: invalid request: %s", e.Op, strings.Join(parts, "; "))
}

// IsRetrySafe reports whether err proves the request never reached ATODENE, so that sending it
// again cannot cause a second effect.
func IsRetrySafe(err error) bool {
	return isType[*NotSentError](err)
}

// OutcomeUnknown reports whether err leaves open whether ATODENE processed the request: it was
// sent, but no valid answer came back (no answer, an HTTP error status, or a malformed answer).
func OutcomeUnknown(err error) bool {
	return isType[*OutcomeUnknownError](err) || isType[*StatusError](err) || isType[*MalformedResponseError](err)
}

// isType reports whether err's tree holds an error of type E. Unlike errors.As with a target
// variable, it allocates nothing: it runs for every call's answer.
func isType[E error](err error) bool {
	_, ok := errors.AsType[E](err)
	return ok
}
