package normalize

import "unicode/utf8"

// Email returns the e-mail address s with full-width ASCII made ASCII (an address typed with the
// IME in full-width mode) and spaces trimmed at both ends. Nothing else changes: the local part is
// case-sensitive (RFC 5321 §2.4), so no case is folded, and an address with a space inside is left
// for the validator to refuse.
//
//	ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ → taro@example.jp
//	 taro@example.jp　           → taro@example.jp
//
// Source: docs/events.md#normalisation; the form is docs/protocol.md#field-limits, email.
func Email(s string) string {
	if !utf8.ValidString(s) {
		return s
	}
	return trimSpace(fold(s))
}
