// Package jst is Japan Standard Time, the time of ATODENE, of the malls and of the operators:
// UTC+9 all year (Japan keeps no daylight saving time).
package jst

import "time"

// Zone is JST, a fixed zone, so that no time zone database is needed.
var Zone = time.FixedZone("JST", 9*60*60)

// Format prints t in JST to the second, as the operators' tables show times:
// "2026-11-30 14:18:55"; "-" for the zero time (no time).
func Format(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(Zone).Format(time.DateTime)
}
