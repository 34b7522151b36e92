package jst

import (
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 11, 30, 5, 18, 55, 999, time.UTC), "2026-11-30 14:18:55"},
		{time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC), "2026-12-01 00:00:00"}, // the next day in Japan
		{time.Time{}, "-"},
	} {
		if got := Format(tc.in); got != tc.want {
			t.Errorf("Format(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
