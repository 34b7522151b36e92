package normalize

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Kana returns the name in katakana (氏名カナ) s in the form ATODENE takes: full-width katakana and
// spaces.
//
// The steps: half-width katakana become full-width, with their voiced marks (ﾔﾏﾀﾞ → ヤマダ), and
// full-width spaces and every other space separator (U+00A0 no-break space, U+2000–U+200A...)
// become ASCII spaces; hiragana become katakana (ぁ–ゖ, ゝ and ゞ
// become ァ–ヶ, ヽ and ヾ); a hyphen or dash right after a kana becomes the long vowel mark ー (in a
// katakana name it can be nothing else); a spacing voiced or semi-voiced mark (゛ U+309B, ゜ U+309C) written
// after a kana, or after a kana and the marks already on it, becomes the combining one (U+3099,
// U+309A); the result is put in Unicode NFC, so that カ followed by a combining mark becomes ガ;
// spaces are trimmed at both ends. Kanji, letters and digits are left for the validator to refuse
// (full-width letters and digits made ASCII), and compatibility ideographs are kept as written, as
// in Text. A mark that no kana takes stays, combining, for the validator to refuse (ア゛).
//
//	ﾔﾏﾀﾞ ﾊﾅｺ    → ヤマダ ハナコ
//	やまだ はなこ → ヤマダ ハナコ
//	カ゛トウ     → ガトウ
//	ｳﾞｧｲｵﾘﾝ     → ヴァイオリン
//	ヤマダ\u00a0ハナコ → ヤマダ ハナコ
//	加藤         → 加藤 (refused by the validator)
//
// Source: docs/events.md#normalisation; the form is docs/protocol.md#field-limits, kanaName and shipKananame.
func Kana(s string) string {
	if kanaForm(s) || !utf8.ValidString(s) {
		return s
	}
	t := fold(s)
	var b strings.Builder
	b.Grow(len(t))
	afterKana := false // the last starter written was a kana
	for i, r := range t {
		switch {
		case 'ぁ' <= r && r <= 'ゖ', r == 'ゝ', r == 'ゞ':
			r += 'ァ' - 'ぁ'
			afterKana = true
		case (r == '゛' || r == '゜') && afterKana:
			r += '\u3099' - '゛' // a combining mark: the kana is still the last starter
		case r != ' ' && isSpace(r):
			r = ' ' // a no-break or other space between the names is the space the request uses
			afterKana = false
		case isDash(r) && afterKana:
			r = 'ー' // a hyphen or dash written for the long vowel (ｻﾄ-, サト－): the kana goes on
		case norm.NFC.PropertiesString(t[i:]).CCC() == 0:
			afterKana = isKana(r)
		}
		b.WriteRune(r)
	}
	return trimSpace(nfc(b.String()))
}

// isKana reports whether r is a katakana that a voiced or semi-voiced mark can follow. Hiragana
// have been turned into katakana when it is asked.
func isKana(r rune) bool {
	return 'ァ' <= r && r <= 'ヺ' || r == 'ヽ' || r == 'ヾ'
}

// kanaForm reports whether s is already normal: full-width katakana (ァ–ヾ, with ー and ・) and
// ASCII spaces, not at either end. Those are all NFC starters that compose with nothing.
func kanaForm(s string) bool {
	if s == "" || s[0] == ' ' || s[len(s)-1] == ' ' {
		return s == ""
	}
	for _, r := range s {
		if (r < 'ァ' || r > 'ヾ') && r != ' ' {
			return false
		}
	}
	return true
}
