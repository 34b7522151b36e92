package sandbox

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/jst"
)

func TestNewRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	bad := map[string]Config{
		"negative delay":    {ReviewDelay: -time.Second},
		"incomplete shop":   {Shops: []Shop{{ShopCode: "a", LinkID: "b"}}},
		"shop twice":        {Shops: []Shop{DemoShop, DemoShop}},
		"negative slow":     {SlowDelay: -2},
		"negative hold":     {HoldDelay: -time.Second},
		"negative lifetime": {AuthorizationLifetime: -time.Hour},
		"empty shop code":   {Shops: []Shop{{LinkID: "b", LinkPassword: "c"}}},
		"empty link ID":     {Shops: []Shop{{ShopCode: "a", LinkPassword: "c"}}},
		"empty password":    {Shops: []Shop{{ShopCode: "a", LinkID: "b"}}},
		"second shop bad":   {Shops: []Shop{DemoShop, {}}},
		"all delays wrong":  {ReviewDelay: -2, HoldDelay: -2, SlowDelay: -2},
	}
	for name, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.shops[DemoShop.ShopCode]; !ok || s.cfg.ReviewDelay != 30*time.Second || s.cfg.HoldDelay != time.Minute || s.cfg.SlowDelay != 5*time.Second {
		t.Errorf("defaults: %+v", s.cfg)
	}
	// NoDelay means none: a zero delay is the default.
	s, err = New(Config{ReviewDelay: NoDelay, HoldDelay: NoDelay, SlowDelay: NoDelay})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.ReviewDelay != 0 || s.cfg.HoldDelay != 0 || s.cfg.SlowDelay != 0 {
		t.Errorf("NoDelay delays: %+v, want all 0", s.cfg)
	}
}

// TestErrorCodesTable checks that every Code constant is documented in ErrorCodes, once, in the
// er + 6 digits format.
func TestErrorCodesTable(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var consts []string
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
			for _, spec := range g.Specs {
				for _, v := range spec.(*ast.ValueSpec).Values {
					code, _ := strconv.Unquote(v.(*ast.BasicLit).Value)
					consts = append(consts, code)
				}
			}
		}
	}
	format := regexp.MustCompile(`^er\d{6}$`)
	seen := map[string]bool{}
	for _, c := range ErrorCodes {
		if !format.MatchString(c.Code) || seen[c.Code] || c.Meaning == "" || c.Point == "" {
			t.Errorf("bad or repeated entry %+v", c)
		}
		seen[c.Code] = true
	}
	for _, c := range consts {
		if !seen[c] {
			t.Errorf("code %s is not in ErrorCodes", c)
		}
	}
	if len(consts) != len(ErrorCodes) {
		t.Errorf("%d constants, %d table entries", len(consts), len(ErrorCodes))
	}
}

func TestProfileOf(t *testing.T) {
	t.Parallel()
	tests := map[string]profile{
		"ng@x": profileNG, "ngx@x": profileNG, "NG-1@x": profileNG, "review-ok@x": profileReviewOK,
		"review-ng-2@x": profileReviewNG, "hold@x": profileHold, "slow@x": profileSlow, "review@x": profileDefault,
		"taro@ng.jp": profileDefault, "": profileDefault, "a-ng@x": profileDefault,
	}
	for email, want := range tests {
		if got := profileOf(email); got != want {
			t.Errorf("profileOf(%q) = %d, want %d", email, got, want)
		}
	}
}

func TestSplitAddress(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("あ", 40)
	tests := []struct{ in, a1, a2 string }{
		{"東京都渋谷区神宮前1-1-1", "東京都渋谷区神宮前", "1-1-1"},
		{"東京都渋谷区神宮前１丁目", "東京都渋谷区神宮前", "１丁目"},
		{"北海道札幌市", "北海道札幌市", ""},
		{long, strings.Repeat("あ", 30), strings.Repeat("あ", 10)},
		{"1-2-3 東京", "1-2-3 東京", ""},
		{strings.Repeat("い", 35) + "1-1", strings.Repeat("い", 30), strings.Repeat("い", 5) + "1-1"},
	}
	for _, tt := range tests {
		a1, a2 := splitAddress(tt.in)
		if a1 != tt.a1 || a2 != tt.a2 {
			t.Errorf("splitAddress(%q) = %q, %q; want %q, %q", tt.in, a1, a2, tt.a1, tt.a2)
		}
	}
}

func TestGrouped(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 999: "999", 1200: "1,200", -1200: "-1,200", 1234567: "1,234,567", -100: "-100"} {
		if got := grouped(n); got != want {
			t.Errorf("grouped(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestBarcode(t *testing.T) {
	t.Parallel()
	bc := invoiceBarcode("12345678901", 3155, time.Date(2026, 12, 10, 0, 0, 0, 0, jst.Zone))
	if len(bc) != 44 || strings.Trim(bc, "0123456789") != "" {
		t.Fatalf("barcode %q is not 44 digits", bc)
	}
	if checkDigit(bc[:43]) != bc[43:] {
		t.Errorf("check digit of %q is wrong", bc)
	}
	if got := checkDigit("4901234567894"[:12]); got != "4" { // a known EAN-13
		t.Errorf("checkDigit of an EAN-13 = %s, want 4", got)
	}
	if ocr := ocrUpper("12345678901", 3155); len(ocr) != 39 {
		t.Errorf("OCR line %q is not 39 digits", ocr)
	}
}

func TestFaultDraw(t *testing.T) {
	t.Parallel()
	f := Faults{LatencyMS: 10, JitterMS: 5, ErrorRate: 0.2, TimeoutRate: 0.3, GarbageRate: 0.1}
	a, b := newLockedRand(7), newLockedRand(7)
	counts := map[fault]int{}
	for range 2000 {
		fa, da := f.draw(a)
		fb, db := f.draw(b)
		if fa != fb || da != db {
			t.Fatal("the same seed drew different faults")
		}
		if da < 5*time.Millisecond || da > 15*time.Millisecond {
			t.Fatalf("latency %v outside 10±5ms", da)
		}
		counts[fa]++
	}
	for fl, want := range map[fault]int{faultError: 400, faultTimeout: 600, faultGarbage: 200, faultNone: 800} {
		if got := counts[fl]; got < want*3/4 || got > want*5/4 {
			t.Errorf("%q drawn %d times in 2000, want about %d", fl, got, want)
		}
	}
	// Jitter wider than the latency: about half the draws fall below zero and are clamped to it.
	clamped := 0
	for range 100 {
		_, d := (Faults{LatencyMS: 1, JitterMS: 50}).draw(a)
		if d < 0 {
			t.Fatalf("negative latency %v", d)
		}
		if d == 0 {
			clamped++
		}
	}
	if clamped == 0 {
		t.Error("no draw of 1±50ms came to zero: the clamp was not exercised")
	}
	// The largest valid faults draw within bounds.
	for range 100 {
		_, d := (Faults{LatencyMS: MaxFaultMS, JitterMS: MaxFaultMS}).draw(a)
		if d < 0 || d > 2*MaxFaultMS*time.Millisecond {
			t.Fatalf("latency %v outside 0..%v", d, 2*MaxFaultMS*time.Millisecond)
		}
	}
}

func TestAddressOnlyChange(t *testing.T) {
	t.Parallel()
	base := order{
		customer: customerXML{ShopOrderID: "1", Zip: "1000001", Address: "東京都", Email: "a@b", BilledAmount: "100"},
		ship:     shipXML{ShipZip: "1000001", ShipAddress: "東京都"},
		details:  []detailXML{{Goods: "品", GoodsPrice: "100", GoodsAmount: "1"}},
	}
	moved := base
	moved.customer.ShopOrderID, moved.customer.Zip, moved.customer.Address = "1-base", "5300001", "大阪府"
	moved.ship.ShipZip, moved.ship.ShipAddress = "5300001", "大阪府"
	if !base.addressOnlyChange(moved) {
		t.Error("a change of zip and address only should not re-screen")
	}
	renamed := moved
	renamed.customer.Name = "別人"
	more := base
	more.details = append([]detailXML{{Goods: "品", GoodsPrice: "50", GoodsAmount: "2"}}, base.details[1:]...)
	for name, o := range map[string]order{"name": renamed, "details": more} {
		if base.addressOnlyChange(o) {
			t.Errorf("a change of %s should re-screen", name)
		}
	}
}
