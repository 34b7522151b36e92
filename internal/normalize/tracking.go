package normalize

import (
	"strings"
	"unicode/utf8"
)

// TrackingNumber returns the tracking number (伝票番号) s in the form ATODENE takes: digits and
// hyphens.
//
// The steps: full-width digits and dashes become ASCII; spaces are trimmed at both ends; every
// dash-like character becomes '-'. Then, when the number is only digits, hyphens and spaces, each
// run of spaces inside it (together with any hyphens in the run) becomes one '-'. A number with
// other characters is returned after the first steps, for the validator to refuse.
//
//	１２３４－５６７８－９０１２ → 1234-5678-9012
//	1234 5678 9012        → 1234-5678-9012
//	1234 - 5678 - 9012    → 1234-5678-9012
//
// Source: docs/events.md#normalisation; the form is docs/protocol.md#shippingrequestdo-shipment-report, deliverySlipNo.
func TrackingNumber(s string) string {
	if !utf8.ValidString(s) {
		return s
	}
	t := safe(s)
	if strings.IndexByte(t, ' ') < 0 || strings.Trim(t, "0123456789- ") != "" {
		return t
	}
	b := make([]byte, 0, len(t))
	for i := 0; i < len(t); {
		if t[i] != ' ' && t[i] != '-' {
			b = append(b, t[i])
			i++
			continue
		}
		j := i
		for j < len(t) && (t[j] == ' ' || t[j] == '-') {
			j++
		}
		if strings.IndexByte(t[i:j], ' ') >= 0 {
			b = append(b, '-')
		} else {
			b = append(b, t[i:j]...) // hyphens only: as written
		}
		i = j
	}
	return string(b)
}
