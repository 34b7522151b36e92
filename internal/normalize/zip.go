package normalize

import (
	"strings"
	"unicode/utf8"
)

// Zip returns the postal code (郵便番号) s in the form ATODENE takes: 123-4567, or 1234567 when it
// was written without a separator.
//
// The steps: full-width digits and dashes become ASCII; spaces (any space separator, Zs: ASCII, U+3000, a no-break space) are trimmed;
// a leading 〒 (U+3012) and the spaces (any Zs) after it are dropped; every dash-like character (see the
// list at isDash: ‐ – — ― − ー － ｰ and others) becomes '-', and every space separator inside it
// becomes ' '. Then three digits, one separator ('-'
// or a single space) and four digits are written 123-4567. Seven digits alone stay as they are:
// ATODENE accepts both forms (docs/protocol.md#field-limits), and adding the hyphen would change the hash of orders
// already sent. Anything else is returned after those steps, for the validator to refuse.
//
//	１５０－０００１   → 150-0001
//	〒 １５０ー０００１ → 150-0001
//	150−0001         → 150-0001 (U+2212)
//	150 0001         → 150-0001
//	150\u00a00001    → 150-0001 (a no-break space, as a web form's &nbsp; leaves)
//	1500001          → 1500001
//	150-00001        → 150-00001 (refused by the validator)
//
// Source: docs/events.md#normalisation; the form is docs/protocol.md#field-limits, zip and shipZip.
func Zip(s string) string {
	if !utf8.ValidString(s) {
		return s
	}
	t := trimSpace(fold(s))
	for strings.HasPrefix(t, "〒") {
		t = strings.TrimLeftFunc(t[len("〒"):], isSpace) // any space separator, as trimSpace takes
	}
	t = mapSeparators(t)
	if len(t) == 8 && t[3] == ' ' && allDigits(t[:3]) && allDigits(t[4:]) {
		return t[:3] + "-" + t[4:]
	}
	return t // 123-4567, 1234567, or a form the validator refuses
}
