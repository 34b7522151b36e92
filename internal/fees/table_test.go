package fees

import (
	"errors"
	"strings"
	"testing"
)

// tiers is a table with gaps and unused rows: 1–999 → 150, 1000–9999 → 250, 20000–999999 → 0.
func tiers(m Mode) Table {
	return Table{Mode: m, Rows: []Row{
		{Min: 1, Max: 999, Fee: 150},
		{},
		{Min: 1000, Max: 9999, Fee: 250},
		{Min: 20000, Max: 999999, Fee: 0},
		{},
	}}
}

func TestApply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		table       Table
		fee, billed int64
		want        Result
	}{
		// Boundaries of row 1 (1–999) and row 3 (1000–9999), add mode.
		{"add below row 1", tiers(ModeAdd), 0, 0, Result{Fee: 0, BilledAmount: 0}},
		{"add row 1 min", tiers(ModeAdd), 0, 1, Result{Fee: 150, BilledAmount: 151, Row: 1, TableFee: 150}},
		{"add row 1 max", tiers(ModeAdd), 0, 999, Result{Fee: 150, BilledAmount: 1149, Row: 1, TableFee: 150}},
		{"add row 3 min", tiers(ModeAdd), 0, 1000, Result{Fee: 250, BilledAmount: 1250, Row: 3, TableFee: 250}},
		{"add row 3 max", tiers(ModeAdd), 0, 9999, Result{Fee: 250, BilledAmount: 10249, Row: 3, TableFee: 250}},
		{"add gap after row 3", tiers(ModeAdd), 0, 10000, Result{Fee: 0, BilledAmount: 10000}},
		{"add gap before row 4", tiers(ModeAdd), 0, 19999, Result{Fee: 0, BilledAmount: 19999}},
		{"add row 4 min, fee 0", tiers(ModeAdd), 0, 20000, Result{Fee: 0, BilledAmount: 20000, Row: 4}},
		{"add to an existing fee", tiers(ModeAdd), 100, 2100, Result{Fee: 350, BilledAmount: 2350, Row: 3, TableFee: 250}},
		{"add at the 6-digit limit", Table{Mode: ModeAdd, Rows: []Row{{Min: 1, Max: 999999, Fee: 205}}}, 0, 999794,
			Result{Fee: 205, BilledAmount: 999999, Row: 1, TableFee: 205}},

		// Overwrite: the row is chosen by the billed amount before the change.
		{"overwrite below row 1", tiers(ModeOverwrite), 0, 0, Result{}},
		{"overwrite row 1 min", tiers(ModeOverwrite), 0, 1, Result{Fee: 150, BilledAmount: 151, Row: 1, TableFee: 150}},
		{"overwrite row 1 max", tiers(ModeOverwrite), 300, 999, Result{Fee: 150, BilledAmount: 849, Row: 1, TableFee: 150}},
		{"overwrite row 3 min", tiers(ModeOverwrite), 300, 1000, Result{Fee: 250, BilledAmount: 950, Row: 3, TableFee: 250}},
		{"overwrite row 3 max", tiers(ModeOverwrite), 300, 9999, Result{Fee: 250, BilledAmount: 9949, Row: 3, TableFee: 250}},
		{"overwrite row 3 max+1, no row", tiers(ModeOverwrite), 300, 10000, Result{Fee: 300, BilledAmount: 10000}},
		{"overwrite to fee 0", tiers(ModeOverwrite), 330, 50330, Result{Fee: 0, BilledAmount: 50000, Row: 4}},

		// Keep: the row is reported but nothing changes.
		{"keep row 1 min", tiers(ModeKeep), 0, 1, Result{Fee: 0, BilledAmount: 1, Row: 1, TableFee: 150}},
		{"keep row 3 max", tiers(ModeKeep), 100, 9999, Result{Fee: 100, BilledAmount: 9999, Row: 3, TableFee: 250}},
		{"keep no row", tiers(ModeKeep), 100, 15000, Result{Fee: 100, BilledAmount: 15000}},
		{"keep without rows", Table{Mode: ModeKeep}, 100, 15000, Result{Fee: 100, BilledAmount: 15000}},

		// Unused rows never match, even for a billed amount of 0.
		{"only unused rows", Table{Mode: ModeAdd, Rows: []Row{{}, {}, {}, {}, {}}}, 0, 0, Result{}},
		{"0–0 with a fee is a used row", Table{Mode: ModeAdd, Rows: []Row{{Min: 0, Max: 0, Fee: 100}}}, 0, 0,
			Result{Fee: 100, BilledAmount: 100, Row: 1, TableFee: 100}},
		{"no rows at all", Table{Mode: ModeAdd}, 0, 5000, Result{Fee: 0, BilledAmount: 5000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.table.Apply(tt.fee, tt.billed)
			if err != nil {
				t.Fatalf("Apply(%d, %d): %v", tt.fee, tt.billed, err)
			}
			if got != tt.want {
				t.Errorf("Apply(%d, %d) = %+v, want %+v", tt.fee, tt.billed, got, tt.want)
			}
		})
	}
}

func TestApplyOutOfRange(t *testing.T) {
	t.Parallel()
	flat := func(m Mode, fee int64) Table { return Table{Mode: m, Rows: []Row{{Min: 0, Max: 999999, Fee: fee}}} }
	tests := []struct {
		name        string
		table       Table
		fee, billed int64
		want        AmountError
		wantMsg     string
	}{
		{"add past 6 digits", flat(ModeAdd, 205), 0, 999795, AmountError{Field: FieldBilledAmount, Value: 1000000, Before: 999795},
			"billed_amount 1000000 after the fee table (999795 before) exceeds 999999, ATODENE's 6-digit limit"},
		{"overwrite past 6 digits", flat(ModeOverwrite, 500), 100, 999600, AmountError{Field: FieldBilledAmount, Value: 1000000, Before: 999600}, ""},
		{"overwrite below zero", flat(ModeOverwrite, 0), 500, 100, AmountError{Field: FieldBilledAmount, Value: -400, Before: 100},
			"billed_amount -400 after the fee table (100 before) is negative"},
		{"fee past 6 digits", flat(ModeAdd, 999999), 1, 0, AmountError{Field: FieldFee, Value: 1000000, Before: 1}, ""},
		{"billed given too large", flat(ModeKeep, 0), 0, 1000000, AmountError{Field: FieldBilledAmount, Value: 1000000, Before: 1000000},
			"billed_amount 1000000 exceeds 999999, ATODENE's 6-digit limit"},
		{"billed given negative", flat(ModeKeep, 0), 0, -1, AmountError{Field: FieldBilledAmount, Value: -1, Before: -1}, "billed_amount -1 is negative"},
		{"fee given negative", flat(ModeAdd, 0), -5, 100, AmountError{Field: FieldFee, Value: -5, Before: -5}, "fee -5 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.table.Apply(tt.fee, tt.billed)
			if !errors.Is(err, ErrAmountOutOfRange) {
				t.Fatalf("Apply(%d, %d) = %v, want ErrAmountOutOfRange", tt.fee, tt.billed, err)
			}
			var ae *AmountError
			if !errors.As(err, &ae) || *ae != tt.want {
				t.Fatalf("Apply(%d, %d) error = %#v, want %#v", tt.fee, tt.billed, ae, tt.want)
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("message = %q, want %q", err, tt.wantMsg)
			}
		})
	}
}

func TestApplyInvalidTable(t *testing.T) {
	t.Parallel()
	_, err := Table{Mode: ModeAdd, Rows: []Row{{Min: 10, Max: 1, Fee: 100}}}.Apply(0, 5)
	if err == nil || errors.Is(err, ErrAmountOutOfRange) {
		t.Fatalf("Apply on an invalid table = %v, want a table error", err)
	}
	var re *RowError
	if !errors.As(err, &re) || re.Row != 1 {
		t.Errorf("Apply on an invalid table = %v, want a *RowError for row 1", err)
	}
	if _, err := (Table{}).Apply(0, 5); err == nil {
		t.Error("Apply on the zero Table (no mode) succeeded, want an error")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		table Table
		want  []string // the problems, in order; none for a valid table
	}{
		{"common default", Table{Mode: ModeAdd, Rows: []Row{{Min: 1, Max: 999999, Fee: 205}}}, nil},
		{"keep without rows", Table{Mode: ModeKeep}, nil},
		{"five rows, mostly unused", tiers(ModeOverwrite), nil},
		{"adjacent rows", Table{Mode: ModeAdd, Rows: []Row{{Min: 0, Max: 999, Fee: 1}, {Min: 1000, Max: 1000, Fee: 2}}}, nil},
		{"single-value row", Table{Mode: ModeAdd, Rows: []Row{{Min: 500, Max: 500, Fee: 0}}}, nil},
		{"unused rows do not overlap", Table{Mode: ModeAdd, Rows: []Row{{}, {Min: 0, Max: 10, Fee: 1}, {}}}, nil},
		{"unknown mode", Table{Mode: "double"}, []string{`unknown fee mode "double"`}},
		{"no mode", Table{}, []string{`unknown fee mode ""`}},
		{"min > max", Table{Mode: ModeAdd, Rows: []Row{{Min: 1, Max: 9, Fee: 1}, {Min: 500, Max: 100, Fee: 205}}},
			[]string{"row 2: min 500 > max 100"}},
		{"negative values", Table{Mode: ModeAdd, Rows: []Row{{Min: -1, Max: -1, Fee: -1}}},
			[]string{"row 1: min -1 is negative", "row 1: max -1 is negative", "row 1: fee -1 is negative"}},
		{"over 6 digits", Table{Mode: ModeAdd, Rows: []Row{{Min: 1, Max: 1000000, Fee: 1000000}}},
			[]string{"row 1: max 1000000 exceeds 999999", "row 1: fee 1000000 exceeds 999999"}},
		{"overlap at one point", Table{Mode: ModeAdd, Rows: []Row{{Min: 1, Max: 1000, Fee: 1}, {}, {Min: 1000, Max: 2000, Fee: 2}}},
			[]string{"row 3: 1000–2000 → 2 overlaps row 1 (1–1000 → 1)"}},
		{"contained row", Table{Mode: ModeAdd, Rows: []Row{{Min: 1, Max: 999999, Fee: 1}, {Min: 50, Max: 60, Fee: 2}}},
			[]string{"row 2: 50–60 → 2 overlaps row 1"}},
		{"overlaps two rows", Table{Mode: ModeAdd, Rows: []Row{{Min: 1, Max: 10, Fee: 1}, {Min: 20, Max: 30, Fee: 1}, {Min: 5, Max: 25, Fee: 1}}},
			[]string{"row 3: 5–25 → 1 overlaps row 1", "row 3: 5–25 → 1 overlaps row 2"}},
		{"everything at once", Table{Mode: "x", Rows: []Row{{Min: 5, Max: 1, Fee: 0}, {Min: 0, Max: 0, Fee: -2}}},
			[]string{`unknown fee mode "x"`, "row 1: min 5 > max 1", "row 2: fee -2 is negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.table.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("Validate() = %d problems:\n%v\nwant %d: %q", len(lines), err, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i+1, lines[i], w)
				}
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Mode
	}{
		{"keep", ModeKeep}, {"overwrite", ModeOverwrite}, {"add", ModeAdd},
		{"ADD", ModeAdd}, {" Overwrite ", ModeOverwrite},
		{"変更しない", ModeKeep}, {"上書きする", ModeOverwrite}, {"加算する", ModeAdd},
	}
	for _, tt := range tests {
		got, err := ParseMode(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if got.Label() == "" || !got.Valid() {
			t.Errorf("mode %q has no label", got)
		}
	}
	for _, bad := range []string{"", "replace", "加算", "keep!"} {
		if m, err := ParseMode(bad); err == nil {
			t.Errorf("ParseMode(%q) = %q, want an error", bad, m)
		}
	}
	if Mode("x").Valid() || Mode("x").Label() != "" {
		t.Error(`Mode("x") is valid, want invalid`)
	}
}
