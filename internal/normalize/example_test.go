package normalize_test

import (
	"fmt"

	"github.com/atodene-worker/atodene-worker/internal/normalize"
)

// A buyer from a mall's order CSV, typed with the IME in full-width mode: each value comes out in
// the form ATODENE takes.
func Example() {
	fmt.Println(normalize.Zip("〒 １５０ー０００１"))
	fmt.Println(normalize.Phone("+81 (0)90-1234-5678"))
	fmt.Println(normalize.Phone("０３（１２３４）５６７８"))
	fmt.Println(normalize.Kana("ｶﾄｳ　ﾀﾛｳ"))
	fmt.Println(normalize.Kana("かとう たろう"))
	fmt.Println(normalize.Email("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ"))
	fmt.Println(normalize.TrackingNumber("１２３４ ５６７８ ９０１２"))
	fmt.Println(normalize.Date("2026/11/27"))
	// Output:
	// 150-0001
	// 090-1234-5678
	// 03-1234-5678
	// カトウ タロウ
	// カトウ タロウ
	// taro@example.jp
	// 1234-5678-9012
	// 2026-11-27
}

// A value whose meaning is not unambiguous comes back after only the safe steps (width folding,
// trimming, dashes), so that the validator refuses it with a message about its form.
func Example_ambiguous() {
	fmt.Println(normalize.Zip("１５０－００００１"))           // eight digits
	fmt.Println(normalize.Phone("+1 415 555 0100"))   // not a Japanese number
	fmt.Println(normalize.Phone("03-1234-5678 内線12")) // an extension
	fmt.Println(normalize.Date("2026/1/7"))           // not zero-padded
	// Output:
	// 150-00001
	// +1 415 555 0100
	// 03-1234-5678 内線12
	// 2026/1/7
}

// Text composes decomposed characters and keeps everything else as written, the compatibility
// ideograph of a person's name included.
func ExampleText() {
	fmt.Println(normalize.Text("カ\u3099トウ") == "ガトウ")
	fmt.Printf("%U\n", []rune(normalize.Text("\uFA19田")))
	fmt.Println(normalize.Text("㈱アトデネ　髙橋①"))
	// Output:
	// true
	// [U+FA19 U+7530]
	// ㈱アトデネ　髙橋①
}

// An item name over ATODENE's 150 characters is cut, never split inside a character.
func ExampleCut() {
	fmt.Println(normalize.Cut("緑茶ティーバッグ 50包", 8))
	// Output: 緑茶ティーバッグ
}
