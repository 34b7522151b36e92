package fees

import (
	"errors"
	"testing"
)

// FuzzApply checks the invariants of each mode on arbitrary tables and orders:
// keep changes nothing; overwrite keeps billed − fee; add raises both by the table fee; no row
// means no change; and every failure is either an invalid table or an out-of-range amount.
func FuzzApply(f *testing.F) {
	f.Add(int64(1), int64(999999), int64(205), int64(0), int64(2950), int64(500), int64(100), int64(0))
	f.Add(int64(0), int64(0), int64(0), int64(330), int64(3330), int64(0), int64(0), int64(7))
	f.Add(int64(1000), int64(9999), int64(300), int64(330), int64(999999), int64(10), int64(20), int64(1))
	f.Add(int64(-1), int64(5), int64(1), int64(0), int64(0), int64(-3), int64(1<<62), int64(2))
	f.Fuzz(func(t *testing.T, min1, max1, fee1, fee, billed, min2, max2, extra int64) {
		rows := []Row{{Min: min1, Max: max1, Fee: fee1}, {}, {Min: min2, Max: max2, Fee: extra}}
		for _, mode := range []Mode{ModeKeep, ModeOverwrite, ModeAdd} {
			table := Table{Mode: mode, Rows: rows}
			res, err := table.Apply(fee, billed)
			if err != nil {
				checkApplyError(t, table, fee, billed, err)
				continue
			}
			checkInvariants(t, table, fee, billed, res)
		}
	})
}

func checkApplyError(t *testing.T, table Table, fee, billed int64, err error) {
	t.Helper()
	if table.Validate() != nil {
		return // an invalid table is refused, whatever the order
	}
	var ae *AmountError
	if !errors.As(err, &ae) || !errors.Is(err, ErrAmountOutOfRange) {
		t.Fatalf("%+v.Apply(%d, %d): unexpected error %v", table, fee, billed, err)
	}
	if 0 <= ae.Value && ae.Value <= MaxAmount {
		t.Fatalf("%+v.Apply(%d, %d): AmountError for an in-range value: %v", table, fee, billed, err)
	}
}

func checkInvariants(t *testing.T, table Table, fee, billed int64, res Result) {
	t.Helper()
	for _, v := range []int64{res.Fee, res.BilledAmount} {
		if v < 0 || v > MaxAmount {
			t.Fatalf("%+v.Apply(%d, %d) = %+v: amount out of range without an error", table, fee, billed, res)
		}
	}
	if res.Row-1 != table.match(billed) {
		t.Fatalf("%+v.Apply(%d, %d) = %+v: want the first matching row, %d", table, fee, billed, res, table.match(billed)+1)
	}
	if res.Row == 0 || table.Mode == ModeKeep {
		if res.Fee != fee || res.BilledAmount != billed {
			t.Fatalf("%+v.Apply(%d, %d) = %+v: changed the order without applying a row", table, fee, billed, res)
		}
		return
	}
	row := table.Rows[res.Row-1]
	if res.TableFee != row.Fee {
		t.Fatalf("%+v.Apply(%d, %d) = %+v: chose a row that does not match", table, fee, billed, res)
	}
	switch table.Mode {
	case ModeOverwrite:
		if res.Fee != row.Fee || res.BilledAmount-res.Fee != billed-fee {
			t.Fatalf("overwrite %+v.Apply(%d, %d) = %+v: want fee %d and billed − fee %d", table, fee, billed, res, row.Fee, billed-fee)
		}
	case ModeAdd:
		if res.Fee != fee+row.Fee || res.BilledAmount != billed+row.Fee {
			t.Fatalf("add %+v.Apply(%d, %d) = %+v: want both raised by %d", table, fee, billed, res, row.Fee)
		}
	}
}
