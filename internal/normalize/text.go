package normalize

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Text returns the free text s (a name, an address, a company, an item name) in Unicode NFC,
// except that CJK compatibility ideographs (U+F900–U+FAFF, U+2F800–U+2FA1F) are kept exactly as
// written: NFC would replace 神 (U+FA19) by 神 (U+795E) and so change the glyph of a person's
// name. Nothing else changes: 髙, 﨑, ㈱, ①, emoji, full-width spaces, letters and digits all stay
// as written, since ATODENE takes them and they are how the buyer writes the name or address.
// What changes is what NFC changes: decomposed sequences (カ followed by U+3099, e followed by
// U+0301, as macOS and some mobile keyboards give them) are composed, and the few singletons
// outside those blocks are replaced by their canonical equivalent (Å U+212B by Å U+00C5).
//
// Text returns s without allocating when it is ASCII or passes NFC's quick check, as Japanese
// text in NFC does.
//
//	カ\u3099トウ → ガトウ
//	神 (U+FA19) → 神 (U+FA19)
//	東京都渋谷区　神宮前１－１－１ → unchanged
//
// Source: docs/events.md#normalisation: "Unicode NFC"; UAX #15 for the forms.
func Text(s string) string {
	if !utf8.ValidString(s) {
		return s
	}
	return nfc(s)
}

// nfc puts the valid UTF-8 s in NFC except for its CJK compatibility ideographs. It normalises
// the runs between them on their own, which gives the same result as normalising the whole: a
// compatibility ideograph, and the unified ideograph NFC would put in its place, is a starter that
// composes with nothing, so no normalisation crosses it. It returns s itself when s is ASCII or
// already NFC by the quick check (norm.NFC.IsNormalString would allocate).
func nfc(s string) string {
	if isASCII(s) || norm.NFC.QuickSpanString(s) == len(s) {
		return s
	}
	i := indexCompatIdeograph(s)
	if i < 0 {
		return norm.NFC.String(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		_, size := utf8.DecodeRuneInString(s[i:])
		b.WriteString(norm.NFC.String(s[:i]))
		b.WriteString(s[i : i+size])
		s = s[i+size:]
		i = indexCompatIdeograph(s)
	}
	b.WriteString(norm.NFC.String(s))
	return b.String()
}

// indexCompatIdeograph returns the byte index of the first CJK compatibility ideograph in s, or -1.
func indexCompatIdeograph(s string) int {
	for i, r := range s {
		if '\uF900' <= r && r <= '\uFAFF' || '\U0002F800' <= r && r <= '\U0002FA1F' {
			return i
		}
	}
	return -1
}

// Cut returns the first n characters (Unicode code points) of s, or s itself when it has no more
// than n; "" when n ≤ 0. It never splits a UTF-8 sequence; a byte of invalid UTF-8 counts as one
// character, as in utf8.RuneCountInString. It is for display and screening text that ATODENE's own
// clients cut rather than refuse: item names over 150 characters, browser data over 1000. A buyer's
// name, address or phone is never cut (docs/events.md#inbound-payloads).
//
// Cut counts code points, as the field rules of package atodene do: a character written with a
// combining mark counts as two, so pass text through Text before cutting it.
//
// Source: docs/events.md#normalisation; the limits are docs/protocol.md#field-limits, goods, httpHeader and deviceInfo.
func Cut(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n { // a code point is at least one byte
		return s
	}
	count := 0
	for i := range s {
		if count == n {
			return s[:i]
		}
		count++
	}
	return s
}
