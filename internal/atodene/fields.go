package atodene

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// FieldError says that one request element breaks ATODENE's field rules
// (docs/protocol.md#field-limits).
// Field is the element's local name, the same name ATODENE reports as errorPoint.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// fieldKind is how a value must be shaped, beyond its length.
type fieldKind int

const (
	kindText    fieldKind = iota // any printable text
	kindKana                     // full-width katakana and spaces
	kindZip                      // 123-4567 or 1234567
	kindTel                      // digits and hyphens, 10 or 11 digits
	kindEmail                    // local@domain
	kindAmount                   // integer, 0..999999
	kindPrice                    // integer, -999999..999999 (discount lines are negative)
	kindCount                    // integer, 1..99999
	kindDate                     // yyyy/MM/dd
	kindOrderID                  // 1-50 of [A-Za-z0-9_-]
	kindService                  // 2 (separate) or 3 (enclosed)
	kindExpand1                  // empty, 00, 01 or 02
	kindCarrier                  // two digits
	kindSlipNo                   // 5-20 of digits and '-'
	kindTxID                     // digits
)

type fieldRule struct {
	max      int // in characters; 0 = no length rule beyond the kind's
	required bool
	kind     fieldKind
}

// fieldRules are the limits the public clients enforce (docs/protocol.md#field-limits and
// docs/protocol.md#shippingrequestdo-shipment-report). The sandbox checks the
// same table, so the client refuses locally what the service would refuse remotely.
var fieldRules = map[string]fieldRule{
	"shopOrderId":         {max: MaxShopOrderID, required: true, kind: kindOrderID},
	"shopOrderDate":       {max: 10, required: true, kind: kindDate},
	"name":                {max: 21, required: true},
	"kanaName":            {max: 25, required: true, kind: kindKana},
	"zip":                 {max: 8, required: true, kind: kindZip},
	"address":             {max: 55, required: true},
	"companyName":         {max: 30},
	"sectionName":         {max: 30},
	"tel":                 {max: 15, required: true, kind: kindTel},
	"email":               {max: 100, required: true, kind: kindEmail},
	"billedAmount":        {max: 6, required: true, kind: kindAmount},
	"expand1":             {max: 2, kind: kindExpand1},
	"service":             {max: 2, required: true, kind: kindService},
	"shipName":            {max: 21, required: true},
	"shipKananame":        {max: 25, required: true, kind: kindKana},
	"shipZip":             {max: 8, required: true, kind: kindZip},
	"shipAddress":         {max: 55, required: true},
	"shipCompanyName":     {max: 30},
	"shipSectionName":     {max: 30},
	"shipTel":             {max: 15, required: true, kind: kindTel},
	"goods":               {max: 150, required: true},
	"goodsPrice":          {max: 7, required: true, kind: kindPrice},
	"goodsAmount":         {max: 5, required: true, kind: kindCount},
	"httpHeader":          {max: 1000},
	"deviceInfo":          {max: 1000},
	"transactionId":       {max: 20, required: true, kind: kindTxID},
	"deliveryCompanyCode": {max: 2, required: true, kind: kindCarrier},
	"deliverySlipNo":      {max: 20, required: true, kind: kindSlipNo},
	"invoiceDate":         {max: 10, kind: kindDate},
}

// MaxShopOrderID is the length of shopOrderId, which no source states (docs/protocol.md#field-limits:
// w2 stores 50 characters, the invoice prints 50, and mall order numbers are up to 50).
const MaxShopOrderID = 50

// The character classes of the patterns below, byte by byte: a byte of a multi-byte character
// is in none of them. Loops rather than regular expressions, which took half of the checking
// time of an order.
func digit(b byte) bool { return '0' <= b && b <= '9' }
func orderID(b byte) bool {
	return digit(b) || 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || b == '_' || b == '-'
}
func slip(b byte) bool { return digit(b) || b == '-' }

// all reports whether v has lo to hi bytes, all in class.
func all(v string, lo, hi int, class func(byte) bool) bool {
	if len(v) < lo || len(v) > hi {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !class(v[i]) {
			return false
		}
	}
	return true
}

// zip matches 1234567 or 123-4567.
func zip(v string) bool {
	if len(v) == 8 {
		return v[3] == '-' && all(v[:3], 3, 3, digit) && all(v[4:], 4, 4, digit)
	}
	return all(v, 7, 7, digit)
}

// CheckField reports whether value is acceptable for the request element named field, using the
// rules of docs/protocol.md#field-limits and docs/protocol.md#shippingrequestdo-shipment-report. It returns a *FieldError naming the field, or nil. Fields it does
// not know are accepted.
func CheckField(field, value string) error {
	if reason := FieldReason(field, value); reason != "" {
		return &FieldError{Field: field, Reason: reason}
	}
	return nil
}

// FieldReason is CheckField's reason alone: why value breaks the rule of the request element
// named field, or "" when it does not (or the field is not known). It allocates nothing for a
// valid value, which every field of every order is checked as.
func FieldReason(field, value string) string {
	rule, ok := fieldRules[field]
	if !ok {
		return ""
	}
	return rule.check(value)
}

func (r fieldRule) check(v string) string {
	if v == "" {
		if r.required {
			return "is required"
		}
		return ""
	}
	// A required value of spaces alone (a family and a given name, both empty, joined by U+3000)
	// would be sent blank: it is as absent as "" (docs/events.md#inbound-payloads).
	if r.required && blank(v) {
		return "is required"
	}
	if !utf8.ValidString(v) {
		return "is not valid UTF-8"
	}
	// One pass over the value for both: every field of every order is checked.
	if i := strings.IndexFunc(v, unsendable); i >= 0 {
		r, _ := utf8.DecodeRuneInString(v[i:])
		if strings.IndexFunc(v[i:], unicode.IsControl) >= 0 { // a control character is told first
			return "contains a control character"
		}
		// U+FFFE, U+FFFF: the request's XML cannot carry them, and its writer would send U+FFFD.
		return fmt.Sprintf("contains %U, which XML 1.0 cannot carry", r)
	}
	// The form first: a value of the wrong form is told what is wrong with it, not that it is
	// long (+1-415-555-0123-4567 is a number outside Japan, not a number of 20 characters).
	if reason := r.kind.check(v); reason != "" {
		return reason
	}
	if n := utf8.RuneCountInString(v); r.max > 0 && n > r.max {
		return fmt.Sprintf("is %d characters, more than the limit of %d", n, r.max)
	}
	return ""
}

func (k fieldKind) check(v string) string {
	switch k {
	case kindKana:
		if i := strings.IndexFunc(v, func(r rune) bool { return !isKana(r) }); i >= 0 {
			if r, _ := utf8.DecodeRuneInString(v[i:]); unicode.IsSpace(r) {
				// "and spaces, but holds a space" would contradict itself: name the space taken.
				return fmt.Sprintf("must be full-width katakana and spaces (U+0020 or U+3000), but holds another space (%U)", r)
			}
			return "must be full-width katakana and spaces, but holds " + charClass(v[i:])
		}
	case kindZip:
		return checkZip(v)
	case kindTel:
		return checkTel(v)
	case kindEmail:
		local, domain, ok := strings.Cut(v, "@")
		if !ok || local == "" || domain == "" || strings.ContainsAny(v, " \u3000") || strings.Contains(domain, "@") {
			return "is not an e-mail address"
		}
	case kindAmount:
		return checkInt(v, 0, 999999)
	case kindPrice:
		return checkInt(v, -999999, 999999)
	case kindCount:
		return checkInt(v, 1, 99999)
	case kindDate:
		if _, err := time.Parse("2006/01/02", v); err != nil {
			return "must be a date written yyyy/MM/dd"
		}
	case kindOrderID:
		if !all(v, 1, MaxShopOrderID, orderID) {
			return "must be 1-50 of A-Z, a-z, 0-9, '_' and '-'"
		}
	case kindService:
		if v != ServiceSeparate && v != ServiceEnclosed {
			return "must be 2 (separate) or 3 (enclosed)"
		}
	case kindExpand1:
		if v != "00" && v != "01" && v != "02" {
			return "must be 00, 01 or 02"
		}
	case kindCarrier:
		if !all(v, 2, 2, digit) {
			return "must be a two-digit carrier code"
		}
	case kindSlipNo:
		if !all(v, 5, 20, slip) {
			return "must be 5-20 of digits and '-'"
		}
	case kindTxID:
		if !all(v, 1, len(v), digit) {
			return "must be digits"
		}
	}
	return ""
}

// offending returns v from its first character that is not a digit or a hyphen, spaces aside
// (they are a problem only when nothing else is).
func offending(v string) string {
	if i := strings.IndexFunc(v, func(r rune) bool { return !(r == '-' || r == ' ' || '0' <= r && r <= '9') }); i >= 0 {
		return v[i:]
	}
	return v[strings.IndexFunc(v, func(r rune) bool { return r != '-' && (r < '0' || r > '9') }):]
}

// checkZip says what is wrong with the form of a postal code: 7 digits, written 1234567 or
// 123-4567.
func checkZip(v string) string {
	const form = "must be a postal code of 7 digits, written 123-4567 or 1234567"
	switch digits := countDigits(v); {
	case strings.Trim(v, "0123456789-") != "":
		return form + ", but holds " + charClass(offending(v))
	case digits != 7:
		return fmt.Sprintf("%s, but has %d digits", form, digits)
	case !zip(v):
		return form + ": the hyphen is misplaced"
	}
	return ""
}

// checkTel says what is wrong with the form of a phone number: a Japanese number of 10 or 11
// digits, with or without hyphens (+81 numbers are made national before this check).
func checkTel(v string) string {
	switch digits := countDigits(v); {
	case strings.HasPrefix(v, "+"):
		return "must be a Japanese phone number, but has the country code of another country (ATODENE takes numbers in Japan only)"
	case strings.Trim(v, "0123456789-") != "":
		return "must be a phone number of digits and hyphens, but holds " + charClass(offending(v))
	case digits < 10 || digits > 11:
		return fmt.Sprintf("must be a phone number of 10 or 11 digits, but has %d", digits)
	}
	return ""
}

func countDigits(v string) int {
	n := 0
	for i := 0; i < len(v); i++ {
		if digit(v[i]) {
			n++
		}
	}
	return n
}

// charClass names the kind of the first character of v, for an error message that must not
// quote the value (it is personal data).
func charClass(v string) string {
	r, _ := utf8.DecodeRuneInString(v)
	switch {
	case unicode.Is(unicode.Han, r):
		return "kanji"
	case unicode.Is(unicode.Hiragana, r):
		return "hiragana"
	case r >= '\uFF61' && r <= '\uFF9F':
		return "half-width katakana"
	case unicode.Is(unicode.Katakana, r):
		return fmt.Sprintf("a katakana sign not taken (%U)", r)
	case r < utf8.RuneSelf && unicode.IsLetter(r):
		return "Latin letters"
	case unicode.IsLetter(r):
		return "letters"
	case unicode.IsDigit(r):
		return "digits"
	case unicode.IsSpace(r):
		return "a space"
	}
	return fmt.Sprintf("a symbol or other character (%U)", r)
}

// checkInt accepts ASCII digits, with a leading '-' only where lo is negative: amounts are integers with
// no sign or separators (docs/protocol.md#field-limits). strconv.ParseInt alone would take a '+'.
func checkInt(v string, lo, hi int64) string {
	digits := v
	if lo < 0 {
		digits = strings.TrimPrefix(v, "-")
	}
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return "must be an integer"
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return "must be an integer"
	}
	if n < lo || n > hi {
		return fmt.Sprintf("must be between %d and %d", lo, hi)
	}
	return ""
}

// blank reports whether v holds only space separators (Unicode category Zs: U+0020, U+00A0,
// U+3000...). A tab or line break is not blank: it is refused as a control character.
func blank(v string) bool {
	return strings.IndexFunc(v, func(r rune) bool { return !unicode.Is(unicode.Zs, r) }) < 0
}

// isKana accepts full-width katakana (including the prolonged sound mark and middle dot) and spaces.
func isKana(r rune) bool {
	return (r >= '\u30A1' && r <= '\u30FC') || r == ' ' || r == '\u3000'
}

// Invoice delivery (the customer/service element).
const (
	ServiceSeparate = "2" // 別送: ATODENE mails the invoice
	ServiceEnclosed = "3" // 同梱: the shop encloses it with the goods
)

// unsendable reports whether a field may not hold r: a control character, or one XML 1.0 cannot carry.
func unsendable(r rune) bool { return unicode.IsControl(r) || !xmlChar(r) }
