package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReauthorizeAfter: reauthorize_after defaults to 88 days, 0 turns it off, days and Go
// durations are read alike, and a bad value is reported naming the file, shop, field and line.
func TestReauthorizeAfter(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	// with puts reauthorize_after: value at the end of validShop's shop (line 11).
	with := func(value string) string { return validShop + "    reauthorize_after: " + value + "\n" }
	tests := []struct {
		name    string
		content string
		want    time.Duration
		wantErr string // a part of the only error; "" for a valid file
	}{
		{"absent: 88 days", validShop, 88 * day, ""},
		{"null: 88 days", validShop + "    reauthorize_after:\n", 88 * day, ""},
		{"empty: 88 days", with(`""`), 88 * day, ""},
		{"0 turns it off", with("0"), 0, ""},
		{"0s turns it off", with("0s"), 0, ""},
		{"0d turns it off", with("0d"), 0, ""},
		{"days", with("88d"), 88 * day, ""},
		{"hours", with("2112h"), 88 * day, ""},
		{"a Go duration", with("1000h30m"), 1000*time.Hour + 30*time.Minute, ""},
		{"quoted", with(`"30d"`), 30 * day, ""},
		{"exactly 1 hour", with("1h"), time.Hour, ""},
		{"negative", with("-1h"), 0, `shops.yaml: shop "rakuten-01": reauthorize_after: "-1h0m0s": must not be negative (0 turns re-authorization off) (line 11)`},
		{"negative days", with("-3d"), 0, `reauthorize_after: "-3d": must not be negative`},
		{"shorter than 1 hour", with("59m"), 0, `shops.yaml: shop "rakuten-01": reauthorize_after: "59m": shorter than 1h, probably a wrong unit: want 0 (off) or at least 1h, e.g. 88d (line 11)`},
		{"seconds", with("88s"), 0, `reauthorize_after: "88s": shorter than 1h`},
		{"a number without a unit", with("88"), 0, `shops.yaml: shop "rakuten-01": reauthorize_after: "88": want a duration such as 88d or 2112h, or 0 for off (line 11)`},
		{"fractional days", with("1.5d"), 0, `reauthorize_after: "1.5d": want a whole number of days such as 88d, or a duration such as 2112h`},
		{"words", with("88 days"), 0, `reauthorize_after: "88 days": want a duration`},
		{"too many days", with("200000d"), 0, `reauthorize_after: "200000d": too long`},
		{"not a scalar", with("[88d]"), 0, `shops.yaml: shop "rakuten-01": reauthorize_after: want a single value, got a list (line 11)`},
		{"under atodene", strings.Replace(validShop, "      link_password:", "      reauthorize_after: 88d\n      link_password:", 1), 0,
			`atodene.reauthorize_after: unknown field`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			shops, err := loadString(t, tt.content, pwEnv, nil)
			if tt.wantErr != "" {
				if err == nil || strings.Count(err.Error(), "\n") > 0 || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := shops.All()[0].ReauthorizeAfter; got != tt.want {
				t.Errorf("ReauthorizeAfter = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMinReauthorizeAfter: the worker's -min-reauthorize-after lowers the shortest
// reauthorize_after the shops file accepts (the reliability suite's 4s), and the refusal names the
// lowered minimum.
func TestMinReauthorizeAfter(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "shops.yaml")
	load := func(value string, opts ...LoadOption) (*Shops, error) {
		if err := os.WriteFile(path, []byte(validShop+"    reauthorize_after: "+value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return LoadShops(path, env(pwEnv), opts...)
	}
	shops, err := load("4s", MinReauthorizeAfter(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := shops.All()[0].ReauthorizeAfter; got != 4*time.Second {
		t.Errorf("ReauthorizeAfter = %v, want 4s", got)
	}
	for _, tt := range []struct {
		opts []LoadOption
		want string
	}{
		{nil, `reauthorize_after: "4s": shorter than 1h, probably a wrong unit: want 0 (off) or at least 1h, e.g. 88d`},
		{[]LoadOption{MinReauthorizeAfter(0)}, `"4s": shorter than 1h,`},
		{[]LoadOption{MinReauthorizeAfter(30 * time.Minute)}, `"4s": shorter than 30m, probably a wrong unit: want 0 (off) or at least 30m,`},
		{[]LoadOption{MinReauthorizeAfter(5 * time.Second)}, `"4s": shorter than 5s,`},
	} {
		if _, err := load("4s", tt.opts...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("4s with %d options: %v, want %q", len(tt.opts), err, tt.want)
		}
	}
}

// TestNewShopsReauthorizeAfter: shops built in code take ReauthorizeAfter as it is (no default,
// no minimum: 0 is off, a second is allowed for tests) but never negative.
func TestNewShopsReauthorizeAfter(t *testing.T) {
	t.Parallel()
	shop := func(d time.Duration) Shop {
		sh, err := loadString(t, validShop, pwEnv, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := sh.All()[0]
		s.ReauthorizeAfter = d
		return s
	}
	for _, d := range []time.Duration{0, time.Second, DefaultReauthorizeAfter} {
		if _, err := NewShops([]Shop{shop(d)}); err != nil {
			t.Errorf("ReauthorizeAfter %v: %v", d, err)
		}
	}
	_, err := NewShops([]Shop{shop(-time.Nanosecond)})
	if want := `shop "rakuten-01": reauthorize_after: "-1ns": must not be negative`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("ReauthorizeAfter -1ns: %v, want %q", err, want)
	}
}

func TestFormatDays(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0: "0", DefaultReauthorizeAfter: "88d", time.Hour: "1h0m0s", 36 * time.Hour: "36h0m0s", -48 * time.Hour: "-2d",
	} {
		if got := formatDays(d); got != want {
			t.Errorf("formatDays(%v) = %q, want %q", d, got, want)
		}
		if back, err := parseDays(want); err != nil || back != d {
			t.Errorf("parseDays(%q) = %v, %v; want %v", want, back, err, d)
		}
	}
}
