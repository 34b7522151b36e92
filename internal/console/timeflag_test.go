package console

import (
	"testing"
	"time"
)

// The dead-letter page's time bounds take RFC 3339 as §5.6 allows it: lower-case t and z too.
func TestWhenTakesLowerCaseRFC3339(t *testing.T) {
	t.Parallel()
	want := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for _, v := range []string{"2026-11-30t09:00:00+09:00", "2026-11-30t00:00:00z"} {
		if got, err := parseWhen(v, false); err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", v, got, err, want)
		}
	}
}
