package console

import (
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/invoiceprint"
)

// TestUnverifiedNamesTheCheckLimit: the invoices page says, in both languages, the number of credit
// outcomes it checks as invoiceprint.DefaultCheck is, with its thousands grouped.
func TestUnverifiedNamesTheCheckLimit(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 20000: "20,000", 1234567: "1,234,567"} {
		if got := grouped(n); got != want {
			t.Errorf("grouped(%d) = %q, want %q", n, got, want)
		}
	}
	m := messages["invoices.unverified"]
	limit := grouped(invoiceprint.DefaultCheck)
	if !strings.Contains(m.ja, "最新の与信結果"+limit+"件まで") || !strings.Contains(m.en, "the shop's newest "+limit+")") {
		t.Errorf("invoices.unverified does not name %s: %+v", limit, m)
	}
}
