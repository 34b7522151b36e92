package normalize

import (
	"strings"
	"testing"
)

func TestCut(t *testing.T) {
	t.Parallel()
	item := strings.Repeat("緑茶", 75) // 150 characters, 450 bytes
	tests := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"empty", "", 3, ""},
		{"shorter", "緑茶", 3, "緑茶"},
		{"exactly", "緑茶ティ", 4, "緑茶ティ"},
		{"longer", "緑茶ティーバッグ", 4, "緑茶ティ"},
		{"ascii", "Green tea", 5, "Green"},
		{"emoji kept whole", "😀😀😀", 2, "😀😀"},
		{"combining mark counts", "カ\u3099トウ", 1, "カ"},
		{"item name at the limit", item, 150, item},
		{"item name over the limit", item + "50包", 150, item},
		{"zero", "緑茶", 0, ""},
		{"negative", "緑茶", -1, ""},
		{"invalid bytes count one each", "a\xff\xfeb", 3, "a\xff\xfe"},
		{"truncated sequence", "緑\xe8\x8c", 2, "緑\xe8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Cut(tt.s, tt.n); got != tt.want {
				t.Errorf("Cut(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
			}
		})
	}
}

// Invalid UTF-8 comes back as it is from every function.
func TestInvalidUTF8Unchanged(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"\xff", "１５０\xff０００１", "ｶﾄｳ\xe3\x82", "\xed\xa0\x80", "+81\xc0\x80"} {
		for name, f := range funcs {
			if got := f(s); got != s {
				t.Errorf("%s(%q) = %q, want the input unchanged", name, s, got)
			}
		}
	}
}
