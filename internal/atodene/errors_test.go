package atodene

import (
	"errors"
	"fmt"
	"testing"
)

// TestRejectedErrorIs: each sentinel matches a rejection that carries its code (or, for
// ErrAccountRefused, its point), among other errors and through wrapping, and no other.
func TestRejectedErrorIs(t *testing.T) {
	t.Parallel()
	sentinels := []error{ErrAlreadyCancelled, ErrAlreadyRegistered, ErrAuthorizationExpired, ErrUnknownTransaction, ErrAccountRefused}
	tests := []struct {
		pe   ProviderError
		want error // the one sentinel it matches; nil: none
	}{
		{ProviderError{Point: "transactionId", Code: CodeAlreadyCancelled}, ErrAlreadyCancelled},
		{ProviderError{Point: "shopOrderId", Code: CodeAlreadyRegistered}, ErrAlreadyRegistered},
		{ProviderError{Point: "transactionId", Code: CodeAuthorizationExpired}, ErrAuthorizationExpired},
		{ProviderError{Point: "transactionId", Code: CodeUnknownTransaction}, ErrUnknownTransaction},
		{ProviderError{Point: "linkPassword", Code: "er000003"}, ErrAccountRefused},
		{ProviderError{Point: "deliveryType", Code: "er000302"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.pe.Code, func(t *testing.T) {
			t.Parallel()
			other := ProviderError{Point: "tel", Code: "er000001"}
			err := fmt.Errorf("wrapped: %w", &RejectedError{Op: "shippingrequest.do", Errors: []ProviderError{other, tt.pe}})
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
				}
			}
		})
	}
}
