package normalize

import (
	"strings"
	"testing"
)

// sink keeps the compiler from dropping calls whose results the tests only count.
var sink string

// perf lists, for each function, a value already in normal form and one that needs work.
var perf = []struct {
	name         string
	f            func(string) string
	normal, work string
}{
	{"Zip", Zip, "150-0001", "〒 １５０ー０００１"},
	{"Phone", Phone, "03-1234-5678", "+81 (0)90-1234-5678"},
	{"Kana", Kana, "カトウ タロウ", "ｶﾄｳ　ﾀﾛｳ"},
	{"TrackingNumber", TrackingNumber, "1234-5678-9012", "１２３４ ５６７８ ９０１２"},
	{"Date", Date, "2026-11-27", "２０２６／１１／２７"},
	{"Email", Email, "taro@example.jp", "ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ"},
	{"Text", Text, "東京都渋谷区神宮前1-1-1 髙橋ビル", "\uFA19田 カ\u3099トウ"},
	{"Cut", func(s string) string { return Cut(s, 150) }, "緑茶ティーバッグ 50包", strings.Repeat("緑茶", 100)},
}

// A value already in normal form comes back without an allocation: these run for every field of
// every order. Not parallel: testing.AllocsPerRun refuses to run in a parallel test.
func TestNoAllocationWhenNormal(t *testing.T) {
	normal := map[string][]string{
		"Zip":            {"150-0001", "1500001"},
		"Phone":          {"03-1234-5678", "09012345678", "0120-123-456"},
		"Kana":           {"カトウ タロウ", "ヤマダ・ハナコ"},
		"TrackingNumber": {"1234-5678-9012", "123456789012"},
		"Date":           {"2026-11-27"},
		"Email":          {"taro@example.jp"},
		"Text":           {"加藤 太郎", "東京都渋谷区　神宮前１－１－１", "髙橋 﨑 ㈱ ① 😀", "Green tea"},
	}
	for name, inputs := range normal {
		f := funcs[name]
		for _, s := range inputs {
			if got := f(s); got != s {
				t.Fatalf("%s(%q) = %q: not a normal form", name, s, got)
			}
			if n := testing.AllocsPerRun(100, func() { sink = f(s) }); n != 0 {
				t.Errorf("%s(%q): %v allocations, want 0", name, s, n)
			}
		}
	}
	long := strings.Repeat("緑茶", 100)
	if n := testing.AllocsPerRun(100, func() { sink = Cut(long, 150) }); n != 0 {
		t.Errorf("Cut: %v allocations, want 0", n)
	}
}

func BenchmarkNormalize(b *testing.B) {
	for _, p := range perf {
		b.Run(p.name+"/normal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = p.f(p.normal)
			}
		})
		b.Run(p.name+"/work", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = p.f(p.work)
			}
		})
	}
}
