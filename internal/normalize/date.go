package normalize

import "unicode/utf8"

// Date returns the date s (an invoice date) written YYYY-MM-DD, the form of the event contract.
//
// The steps: full-width digits and punctuation become ASCII; spaces are trimmed. Then four digits,
// a separator, two digits, the same separator and two digits, the separator being '-', '/' or '.',
// are written with '-'. Anything else is returned after those steps, for the validator to refuse:
// in particular a date without zero padding (2026/1/7), which is not the form ATODENE and EC-CUBE
// use. Date does not check that the date exists; the validator does.
//
//	2026/11/27 → 2026-11-27
//	２０２６／１１／２７ → 2026-11-27
//	2026.11.27 → 2026-11-27
//	2026/1/7   → 2026/1/7 (refused by the validator)
//
// Source: docs/events.md#normalisation; docs/events.md#ordertracking_entered-eventsdecodetracking.
func Date(s string) string {
	if !utf8.ValidString(s) {
		return s
	}
	t := trimSpace(fold(s))
	if len(t) != len("2006-01-02") || t[4] != t[7] || t[4] != '/' && t[4] != '.' {
		return t // YYYY-MM-DD already, or not a date this function can read
	}
	if !allDigits(t[:4]) || !allDigits(t[5:7]) || !allDigits(t[8:]) {
		return t
	}
	return t[:4] + "-" + t[5:7] + "-" + t[8:]
}
