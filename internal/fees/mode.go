// Package fees applies a shop's ATODENE handling-fee table (手数料テーブル) to an order.
//
// A Table holds rows {min, max, fee}: billed-amount ranges in yen, inclusive, tax included, each
// with the handling fee that applies to it. Its Mode says what to do with that fee: keep the order
// as it is, overwrite the order's fee with the table's, or add the table's fee to the order's.
// The row is chosen by the billed amount as received; a row 0–0 → 0 is unused and ignored.
//
// Everything here is a pure function of its arguments, safe for concurrent use.
package fees

import (
	"fmt"
	"strings"
)

// Mode says how a table's fee changes an order's fee and billed amount.
type Mode string

// The fee modes, with the labels of ATODENE's management screen.
const (
	// ModeKeep (変更しない) leaves the fee and the billed amount unchanged.
	ModeKeep Mode = "keep"
	// ModeOverwrite (上書きする) replaces the order's fee by the table's fee:
	// fee := table fee; billed := billed − old fee + table fee.
	ModeOverwrite Mode = "overwrite"
	// ModeAdd (加算する) adds the table's fee to the order's fee and billed amount:
	// fee := old fee + table fee; billed := billed + table fee.
	ModeAdd Mode = "add"
)

// ParseMode returns the mode named by s: "keep", "overwrite" or "add" (any case), or the
// Japanese label "変更しない", "上書きする" or "加算する". Surrounding spaces are ignored.
// Anything else, the empty string included, is an error that lists the accepted names.
func ParseMode(s string) (Mode, error) {
	t := strings.TrimSpace(s)
	for _, m := range [...]Mode{ModeKeep, ModeOverwrite, ModeAdd} {
		if strings.EqualFold(t, string(m)) || t == m.Label() {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown fee mode %q: want keep, overwrite or add (変更しない, 上書きする, 加算する)", s)
}

// Valid reports whether m is one of the three modes.
func (m Mode) Valid() bool {
	return m.Label() != ""
}

// Label returns the Japanese label of m as ATODENE's screen shows it, or "" for an unknown mode.
func (m Mode) Label() string {
	switch m {
	case ModeKeep:
		return "変更しない"
	case ModeOverwrite:
		return "上書きする"
	case ModeAdd:
		return "加算する"
	}
	return ""
}
