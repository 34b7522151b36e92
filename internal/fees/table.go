package fees

import (
	"errors"
	"fmt"
)

// MaxAmount is the largest amount ATODENE accepts: billedAmount has at most 6 digits.
const MaxAmount = 999999

// Row is one line of a fee table: orders billed Min to Max yen (inclusive) get the handling fee
// Fee. The zero Row (0–0 → 0) is an unused row: the operators' screen has five rows, and the
// ones left blank read as zeros.
type Row struct {
	Min, Max, Fee int64
}

// Unused reports whether r is the blank row 0–0 → 0, which never matches.
func (r Row) Unused() bool { return r == Row{} }

func (r Row) contains(billed int64) bool { return r.Min <= billed && billed <= r.Max }

// String prints the row as min–max → fee, the form error messages use.
func (r Row) String() string { return fmt.Sprintf("%d–%d → %d", r.Min, r.Max, r.Fee) }

// Table is a shop's fee table and the mode that applies it. The zero Table is invalid (it has
// no mode); Table{Mode: ModeKeep} changes nothing.
type Table struct {
	Mode Mode
	Rows []Row
}

// Result is what Apply made of an order's fee and billed amount.
type Result struct {
	Fee          int64 // the order's fee after the table
	BilledAmount int64 // the order's billed amount after the table
	// Row is the 1-based number of the row chosen by the billed amount, or 0 when no row
	// matched. In ModeKeep the row is still reported, but not applied.
	Row int
	// TableFee is the fee of the chosen row; 0 when no row matched.
	TableFee int64
}

// Validate checks the table: a known mode; in every row min ≤ max, no negative value and no
// value above MaxAmount; no two used rows overlapping. It returns nil or every problem found,
// joined, each row problem a *RowError naming the row.
func (t Table) Validate() error {
	var errs []error
	if !t.Mode.Valid() {
		_, err := ParseMode(string(t.Mode))
		errs = append(errs, err)
	}
	for i, r := range t.Rows {
		errs = append(errs, t.rowProblems(i)...)
		if r.Unused() || !r.wellFormed() {
			continue
		}
		// Naming the later row and the earlier one it overlaps lets the operator see both.
		for j, earlier := range t.Rows[:i] {
			if !earlier.Unused() && earlier.wellFormed() && r.Min <= earlier.Max && earlier.Min <= r.Max {
				errs = append(errs, &RowError{Row: i + 1, Problem: fmt.Sprintf("%v overlaps row %d (%v)", r, j+1, earlier)})
			}
		}
	}
	return errors.Join(errs...)
}

// wellFormed reports whether r's bounds are in order, so that an overlap check makes sense.
func (r Row) wellFormed() bool {
	return 0 <= r.Min && r.Min <= r.Max
}

func (t Table) rowProblems(i int) []error {
	r := t.Rows[i]
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, &RowError{Row: i + 1, Problem: fmt.Sprintf(format, args...)})
	}
	for _, v := range [...]struct {
		name  string
		value int64
	}{{"min", r.Min}, {"max", r.Max}, {"fee", r.Fee}} {
		switch {
		case v.value < 0:
			add("%s %d is negative", v.name, v.value)
		case v.value > MaxAmount:
			add("%s %d exceeds %d (ATODENE amounts have at most 6 digits)", v.name, v.value, MaxAmount)
		}
	}
	if r.Min > r.Max {
		add("min %d > max %d", r.Min, r.Max)
	}
	return errs
}

// Apply applies the table to an order whose handling fee is fee and whose billed amount is
// billed (tax included, yen). The row is chosen by billed as received, first match; with no
// match, or in ModeKeep, the order is returned unchanged.
//
// Errors: an invalid table (see Validate) is an error wrapping the problems. An amount outside
// 0–MaxAmount, given or resulting, is an *AmountError (errors.Is ErrAmountOutOfRange) naming
// the field, fee or billed_amount: ATODENE could not accept that order.
func (t Table) Apply(fee, billed int64) (Result, error) {
	// Validating on every call keeps Apply total (no overflow, no unknown mode) at the cost of
	// a few comparisons per row; tables are a handful of rows.
	if err := t.Validate(); err != nil {
		return Result{}, fmt.Errorf("fees: invalid table: %w", err)
	}
	if err := inRange(FieldFee, fee, fee); err != nil {
		return Result{}, err
	}
	if err := inRange(FieldBilledAmount, billed, billed); err != nil {
		return Result{}, err
	}
	res := Result{Fee: fee, BilledAmount: billed}
	i := t.match(billed)
	if i < 0 {
		return res, nil
	}
	res.Row, res.TableFee = i+1, t.Rows[i].Fee
	switch t.Mode {
	case ModeOverwrite:
		res.Fee = res.TableFee
		res.BilledAmount = billed - fee + res.TableFee
	case ModeAdd:
		res.Fee = fee + res.TableFee
		res.BilledAmount = billed + res.TableFee
	}
	if err := inRange(FieldFee, res.Fee, fee); err != nil {
		return Result{}, err
	}
	if err := inRange(FieldBilledAmount, res.BilledAmount, billed); err != nil {
		return Result{}, err
	}
	return res, nil
}

// match returns the index of the first used row containing billed, or -1.
func (t Table) match(billed int64) int {
	for i, r := range t.Rows {
		if !r.Unused() && r.contains(billed) {
			return i
		}
	}
	return -1
}

func inRange(field string, value, before int64) error {
	if value < 0 || value > MaxAmount {
		return &AmountError{Field: field, Value: value, Before: before}
	}
	return nil
}
