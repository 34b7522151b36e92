package normalize

import (
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/width"
)

// FuzzNormalize checks every function on arbitrary strings: no panic; invalid UTF-8 comes back
// unchanged and valid UTF-8 stays valid; the result is a fixed point (idempotence). It also
// checks what each function promises beyond that: Text is canonically equivalent to its input,
// Phone adds or drops no digit but a +81 number's country code and trunk 0, and Cut returns a
// prefix of at most n characters.
func FuzzNormalize(f *testing.F) {
	const maxFuzzLen = 256
	for _, c := range readCorpus(f) {
		f.Add(c.in, 5)
	}
	f.Add("ｶ゛゛\u0334\u3099゛", 150)
	f.Add("+81 (0)0\xff", -1)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if len(s) > maxFuzzLen {
			// Order fields are short, and the rules look at few characters at a time. Long
			// inputs cost the fuzzer its time in minimising them, not in finding anything.
			t.Skip()
		}
		valid := utf8.ValidString(s)
		for name, fn := range funcs {
			got := fn(s)
			if !valid {
				if got != s {
					t.Fatalf("%s(%q) = %q: invalid UTF-8 changed", name, s, got)
				}
				continue
			}
			if !utf8.ValidString(got) {
				t.Fatalf("%s(%q) = %q: invalid UTF-8 out of valid UTF-8 in", name, s, got)
			}
			if again := fn(got); again != got {
				t.Fatalf("%s(%q) = %q, but %s(%q) = %q: not idempotent", name, s, got, name, got, again)
			}
		}
		if valid {
			checkFold(t, s)
			checkText(t, s)
			checkPhoneDigits(t, s)
		}
		checkCut(t, s, n)
	})
}

// checkFold: fold is width.Fold, without the allocation when nothing folds.
func checkFold(t *testing.T, s string) {
	if got, want := fold(s), width.Fold.String(s); got != want {
		t.Fatalf("fold(%q) = %q, width.Fold gives %q", s, got, want)
	}
}

// checkText: Text changes nothing but the canonical form.
func checkText(t *testing.T, s string) {
	got := Text(s)
	if norm.NFC.String(got) != norm.NFC.String(s) {
		t.Fatalf("Text(%q) = %q: not canonically equivalent", s, got)
	}
	if indexCompatIdeograph(s) < 0 && got != norm.NFC.String(s) {
		t.Fatalf("Text(%q) = %q, want the NFC %q", s, got, norm.NFC.String(s))
	}
}

// checkPhoneDigits: Phone keeps the digits, except that a +81 number loses 81 and one trunk 0 and
// gains a leading 0.
func checkPhoneDigits(t *testing.T, s string) {
	before, got := safe(s), Phone(s)
	if got == before {
		return
	}
	want := digits(before)
	if strings.HasPrefix(before, "+") || strings.HasPrefix(before, "(+") {
		want = "0" + strings.TrimPrefix(want[len("81"):], "0")
	}
	if digits(got) != want {
		t.Fatalf("Phone(%q) = %q: digits %q, want %q", s, got, digits(got), want)
	}
}

func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if '0' <= r && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// checkCut: a prefix of s, at most n characters, s itself when s is no longer, never a split
// sequence, and idempotent.
func checkCut(t *testing.T, s string, n int) {
	got := Cut(s, n)
	count := utf8.RuneCountInString(got)
	switch {
	case !strings.HasPrefix(s, got):
		t.Fatalf("Cut(%q, %d) = %q: not a prefix", s, n, got)
	case count > max(n, 0):
		t.Fatalf("Cut(%q, %d) = %q: %d characters", s, n, got, count)
	case utf8.RuneCountInString(s) <= n && got != s:
		t.Fatalf("Cut(%q, %d) = %q: cut a string that is no longer than n", s, n, got)
	case utf8.ValidString(s) && !utf8.ValidString(got):
		t.Fatalf("Cut(%q, %d) = %q: split a UTF-8 sequence", s, n, got)
	case Cut(got, n) != got:
		t.Fatalf("Cut(%q, %d) = %q: not idempotent", s, n, got)
	}
}
