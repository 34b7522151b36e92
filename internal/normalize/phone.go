package normalize

import (
	"strings"
	"unicode/utf8"
)

// Phone returns the Japanese phone number (電話番号) s in the form ATODENE takes: digits, with
// hyphens between the groups the buyer wrote.
//
// The steps: full-width digits, dashes, spaces and parentheses become ASCII; spaces are trimmed;
// every dash-like character becomes '-' and every space separator (a no-break space...) ' '. The separators are then '-', ' ', '.', '(' and ')': the
// number is split into digit groups at them (a run of separators is one boundary; leading and
// trailing ones are dropped).
//
// A domestic number (no '+') is its groups joined with '-'. A number with no separator stays
// without one: ATODENE accepts both.
//
//	03(1234)5678      → 03-1234-5678
//	(03)1234-5678     → 03-1234-5678
//	０３－１２３４－５６７８ → 03-1234-5678
//	09012345678       → 09012345678
//
// A number for Japan in international form (+81) gets its trunk prefix back: the country code is
// dropped, a redundant trunk 0 after it is removed (a first group that is exactly 0, as in
// +81 (0)90…, or the leading 0 of the first group, as in +81-090…), and 0 is put before the first
// group. When the national number had separators, the groups are joined with '-'. When it was one
// run of digits, an 11-digit mobile, IP or M2M number (020, 050, 060, 070, 080, 090, but not the
// free-dial 0800) is written 3-4-4; any other is left without hyphens, since the length of a
// landline's area code cannot be told from its digits alone.
//
//	+81-90-1234-5678    → 090-1234-5678
//	+81 (0)90-1234-5678 → 090-1234-5678
//	+819012345678       → 090-1234-5678
//	+81312345678        → 0312345678
//
// Anything else is returned after the safe steps (width folding, trimming, dash and space mapping), for the
// validator to refuse: another country code (+1 415…; ATODENE takes Japanese numbers only), or
// letters and other characters (03-1234-5678 ext. 12, 内線). Phone never adds or drops a digit
// other than the country code and trunk prefix of a +81 number.
//
// Source: docs/events.md#normalisation; the form is docs/protocol.md#field-limits, tel and shipTel.
func Phone(s string) string {
	if !utf8.ValidString(s) {
		return s
	}
	t := safe(s)
	if phoneForm(t) {
		return t
	}
	body := t
	if rest, ok := strings.CutPrefix(t, "(+"); ok { // (+81)90-1234-5678: the country code in parentheses
		if cc, national, ok := strings.Cut(rest, ")"); ok && cc == "81" {
			body = "+81 " + national
		}
	}
	intl := strings.HasPrefix(body, "+")
	if intl {
		body = body[1:]
	}
	var buf [8]string
	groups, ok := digitGroups(buf[:0], body)
	if !ok || len(groups) == 0 {
		return t
	}
	if !intl {
		return strings.Join(groups, "-")
	}
	if n, ok := japanese(groups); ok {
		return n
	}
	return t
}

// phoneForm reports whether t is already a normal domestic number: digit groups joined by single
// hyphens.
func phoneForm(t string) bool {
	if t == "" || !isDigit(t[0]) || !isDigit(t[len(t)-1]) {
		return false
	}
	for i := 1; i < len(t); i++ {
		if t[i] == '-' {
			if t[i-1] == '-' {
				return false
			}
		} else if !isDigit(t[i]) {
			return false
		}
	}
	return true
}

// isPhoneSeparator reports whether b separates the digit groups of a phone number.
func isPhoneSeparator(b byte) bool {
	return b == '-' || b == ' ' || b == '.' || b == '(' || b == ')'
}

// digitGroups appends the runs of digits of s to groups. It reports false when s holds anything
// but digits and separators.
func digitGroups(groups []string, s string) ([]string, bool) {
	start := -1
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case isDigit(b):
			if start < 0 {
				start = i
			}
		case isPhoneSeparator(b):
			if start >= 0 {
				groups = append(groups, s[start:i])
				start = -1
			}
		default:
			return groups, false
		}
	}
	if start >= 0 {
		groups = append(groups, s[start:])
	}
	return groups, true
}

// japanese returns the national form of the digit groups of a number written after '+', or false
// when the country code is not 81 or nothing follows it. It may change groups.
func japanese(groups []string) (string, bool) {
	cc := groups[0]
	if !strings.HasPrefix(cc, "81") {
		return "", false
	}
	national := groups[1:]
	if cc != "81" { // +8190…: the national number starts in the same group
		groups[0] = cc[len("81"):]
		national = groups
	}
	if len(national) > 0 && national[0] == "0" { // +81 (0)90…
		national = national[1:]
	} else if len(national) > 0 && national[0][0] == '0' { // +81-090…
		national[0] = national[0][1:]
	}
	if len(national) == 0 {
		return "", false
	}
	national[0] = "0" + national[0]
	if len(national) > 1 {
		return strings.Join(national, "-"), true
	}
	n := national[0]
	if len(n) == 11 && nonGeographic(n) {
		return n[:3] + "-" + n[3:7] + "-" + n[7:], true
	}
	return n, true
}

// nonGeographic reports whether the national number n starts with a prefix whose 11-digit numbers
// are always written 3-4-4: 020 (pagers, M2M), 050 (IP phones), 060 (FMC), 070, 080, 090
// (mobiles). 0800 is free dial, written 0800-xxx-xxxx.
func nonGeographic(n string) bool {
	switch n[:3] {
	case "020", "050", "060", "070", "090":
		return true
	case "080":
		return n[3] != '0'
	}
	return false
}
