package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// DefaultReauthorizeAfter is a shop's reauthorize_after when the shops file does not give one:
// 88 days, the time after which w2 Commerce takes an ATODENE authorization to expire
// (docs/protocol.md#changes-and-cancels).
const DefaultReauthorizeAfter = 88 * 24 * time.Hour

// minReauthorizeAfter is the shortest reauthorize_after the shops file accepts, 0 (off) aside
// (reauthorizeTooShort says it; the worker's -min-reauthorize-after lowers it). An authorization is taken to last months, so a shorter value
// is most probably a wrong unit ("88s" or "30m" meant as days); shops built in code (tests,
// demos) are not held to it.
const minReauthorizeAfter = time.Hour

// parseDays reads a duration of the shops file: a Go duration ("2112h", "1h30m"), a whole
// number of days ("88d"), or 0. A number without a unit other than 0 is refused: it is not
// clear whether it counts days or hours.
func parseDays(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q: want a whole number of days such as 88d, or a duration such as 2112h", s)
		}
		if n > math.MaxInt64/int64(24*time.Hour) || n < math.MinInt64/int64(24*time.Hour) {
			return 0, fmt.Errorf("%q: too long", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a duration such as 88d or 2112h, or 0 for off", s)
	}
	return d, nil
}

// formatDays writes d as parseDays reads it: whole days as "88d", 0 as "0", anything else as
// a Go duration.
func formatDays(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == 0:
		return "0"
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

// checkReauthorizeAfter refuses a negative reauthorize_after; 0 turns re-authorization off.
func checkReauthorizeAfter(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%q: must not be negative (0 turns re-authorization off)", formatDays(d))
	}
	return nil
}

// reauthorizeTooShort is the loader's answer to a reauthorize_after below least
// (minReauthorizeAfter, or the worker's -min-reauthorize-after).
func reauthorizeTooShort(least time.Duration) error {
	s := least.String() // 1h0m0s, 30m0s: written 1h, 30m
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return fmt.Errorf("shorter than %s, probably a wrong unit: want 0 (off) or at least %s, e.g. 88d", s, s)
}
