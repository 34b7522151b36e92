package fees

import (
	"errors"
	"fmt"
)

// Field names used in an AmountError: the order fields of the inbound event contract.
const (
	FieldFee          = "fee"
	FieldBilledAmount = "billed_amount"
)

// ErrAmountOutOfRange matches every *AmountError with errors.Is.
var ErrAmountOutOfRange = errors.New("fees: amount out of range")

// AmountError means an order's fee or billed amount, as given or after the fee table, is outside
// 0–MaxAmount, so ATODENE cannot accept the order. The order is invalid input; the caller names
// Field when it rejects it.
type AmountError struct {
	Field  string // FieldFee or FieldBilledAmount
	Value  int64  // the offending amount
	Before int64  // the amount as given; equal to Value when the input itself was out of range
}

func (e *AmountError) Error() string {
	what := fmt.Sprintf("%s %d", e.Field, e.Value)
	if e.Before != e.Value {
		what = fmt.Sprintf("%s %d after the fee table (%d before)", e.Field, e.Value, e.Before)
	}
	if e.Value < 0 {
		return what + " is negative"
	}
	return fmt.Sprintf("%s exceeds %d, ATODENE's 6-digit limit", what, MaxAmount)
}

// Is makes errors.Is(err, ErrAmountOutOfRange) true for an *AmountError.
func (e *AmountError) Is(target error) bool { return target == ErrAmountOutOfRange }

// RowError is a problem with one row of a fee table.
type RowError struct {
	Row     int    // 1-based, counting unused rows, as the table is written
	Problem string // what is wrong, e.g. "min 500 > max 100"
}

func (e *RowError) Error() string { return fmt.Sprintf("row %d: %s", e.Row, e.Problem) }
