// Package normalize puts the values of real mall orders (Rakuten, Yahoo!, own carts) into the form
// ATODENE takes, where their meaning is unambiguous (docs/events.md#normalisation): full-width
// digits and dashes in postal codes, phone and tracking numbers, a leading 〒, +81 phone numbers,
// half-width katakana and hiragana in kana names, dates written with slashes or dots, and Unicode
// NFC in free text.
//
// Each function takes a string and returns its normal form. None returns an error: a value whose
// meaning is not unambiguous comes back after only the safe steps (width folding, trimming, dash
// mapping), so that the caller's validator refuses it with a message about its form. Every
// function is idempotent (f(f(x)) == f(x)), never panics, returns invalid UTF-8 unchanged (Cut
// aside, which only cuts) and returns its input without allocating when it is already in normal
// form, so it can run on every order.
//
// Everything here is a pure function of its arguments, safe for concurrent use.
package normalize

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// isASCII reports whether s has only ASCII bytes.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// fold maps full-width ASCII and U+3000 to ASCII and half-width katakana to full-width katakana,
// as width.Fold does (the half-width voiced marks ﾞ and ﾟ become the combining U+3099 and U+309A).
// It reads the same table rune by rune, which returns s itself when nothing folds and allocates
// once otherwise; width.Fold.String allocates its buffers in either case. The fuzz test checks
// that the two agree. Invalid UTF-8 is returned as it is.
func fold(s string) string {
	if isASCII(s) || !utf8.ValidString(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if f := width.LookupRune(r).Folded(); f != 0 {
			return f
		}
		return r
	}, s)
}

// trimSpace removes space separators (Unicode category Zs: ASCII and ideographic spaces, the
// no-break space U+00A0 a web form leaves for &nbsp;, U+2000–U+200A...) from both ends of s. Tabs
// and line breaks are kept: the validator refuses control characters by name.
func trimSpace(s string) string {
	if s == "" || s[0] != ' ' && s[len(s)-1] != ' ' && isASCII(s) {
		return s // the usual case, without a look at each rune
	}
	return strings.TrimFunc(s, isSpace)
}

// isSpace reports whether r is a space separator (Unicode category Zs).
func isSpace(r rune) bool { return unicode.Is(unicode.Zs, r) }

// isDash reports whether r is one of the dash-like characters that shops, IMEs and mall CSV
// exports put in numbers: hyphen-minus and hyphen (U+002D, U+2010, U+2011), figure, en, em dash and
// horizontal bar (U+2012–U+2015), hyphen bullet (U+2043), minus sign (U+2212), the katakana
// prolonged sound mark (U+30FC ー) an IME gives for '-' in kana mode, and the small, full-width and
// half-width forms (U+FE63, U+FF0D, U+FF70).
func isDash(r rune) bool {
	switch r {
	case '-', '\u2010', '\u2011', '\u2012', '\u2013', '\u2014', '\u2015', '\u2043', '\u2212',
		'\u30FC', '\uFE63', '\uFF0D', '\uFF70':
		return true
	}
	return false
}

// mapSeparators replaces every dash-like character of s by '-' and every space separator inside it
// (a no-break space a web form leaves for &nbsp;, U+2000–U+200A...) by ' ', so that the numeric
// fields split at them as at an ASCII space. It returns s itself when s is ASCII.
func mapSeparators(s string) string {
	if isASCII(s) {
		return s // '-' is the only ASCII dash, ' ' the only ASCII space separator
	}
	return strings.Map(func(r rune) rune {
		switch {
		case isDash(r):
			return '-'
		case isSpace(r):
			return ' '
		}
		return r
	}, s)
}

// safe applies the safe steps of the numeric fields: width folding, trimming, dash and space
// mapping.
func safe(s string) string {
	return mapSeparators(trimSpace(fold(s)))
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// allDigits reports whether s is non-empty and only ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
