package handlers

import (
	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// The outcome contract is events' own types; these functions map the client's and the state's
// types to them field by field, so that a field added to atodene.ProviderError or
// atodene.Invoice (or to their JSON tags) stays out of the published events until it is mapped
// here on purpose.

// outcomeErrors maps the errors of an ATODENE answer to the errors of an outcome. nil stays nil.
func outcomeErrors(errs []atodene.ProviderError) []events.ProviderError {
	if errs == nil {
		return nil
	}
	out := make([]events.ProviderError, len(errs))
	for i, e := range errs {
		out[i] = events.ProviderError{Point: e.Point, Code: e.Code, Message: e.Message}
	}
	return out
}

// recordedErrors maps the errors recorded in an order's state to the errors of an outcome; none
// is nil.
func recordedErrors(errs []orderstate.Error) []events.ProviderError {
	if len(errs) == 0 {
		return nil
	}
	out := make([]events.ProviderError, len(errs))
	for i, e := range errs {
		out[i] = events.ProviderError{Point: e.Point, Code: e.Code, Message: e.Message}
	}
	return out
}

// invoicePrintData maps the print data ATODENE returned to the invoice of invoice.ok.
func invoicePrintData(inv atodene.Invoice) *events.InvoicePrintData {
	return &events.InvoicePrintData{Fields: inv.Fields, Details: inv.Details}
}
