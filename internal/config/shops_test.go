package config

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/testenv/golden"
	"go.yaml.in/yaml/v3"
)

// env returns a lookup function over vars, like os.LookupEnv.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

var testdataEnv = env(map[string]string{
	"ATODENE_RAKUTEN01_PASSWORD": "envSecret01",
	"ATODENE_YAHOO01_PASSWORD":   "envSecret02",
})

func TestLoadShops(t *testing.T) {
	t.Parallel()
	shops, err := LoadShops("testdata/shops.yaml", testdataEnv)
	if err != nil {
		t.Fatalf("LoadShops: %v", err)
	}
	want := []Shop{
		{ID: "rakuten-01", Atodene: Atodene{
			BaseURL: "https://www.manage.atodene.jp/api/", ShopCode: "abc123456789", LinkID: "original00",
			LinkPassword: NewSecret("envSecret01"), LinkPasswordFrom: "${ATODENE_RAKUTEN01_PASSWORD}",
			InvoiceDelivery: InvoiceSeparate,
		}, Fees: fees.Table{Mode: fees.ModeAdd, Rows: []fees.Row{{Min: 1, Max: 999999, Fee: 205}}}, ReauthorizeAfter: DefaultReauthorizeAfter},
		{ID: "own_cart-2", Atodene: Atodene{
			BaseURL: "http://127.0.0.1:8089/api", ShopCode: "000000000042", LinkID: "original00",
			LinkPassword: NewSecret("fileSecret9"), LinkPasswordFrom: "secrets/own-cart.txt",
			InvoiceDelivery: InvoiceEnclosed,
		}, Fees: fees.Table{Mode: fees.ModeOverwrite, Rows: []fees.Row{{Min: 1, Max: 9999, Fee: 330}, {Min: 10000, Max: 999999, Fee: 0}, {}}}, ReauthorizeAfter: 60 * 24 * time.Hour},
		{ID: "yahoo-01", Atodene: Atodene{
			BaseURL: "https://www.manage.atodene.jp/api/", ShopCode: "yah000000001", LinkID: "original00",
			LinkPassword: NewSecret("envSecret02"), LinkPasswordFrom: "${ATODENE_YAHOO01_PASSWORD}",
			InvoiceDelivery: InvoiceSeparate,
		}, Fees: fees.Table{Mode: fees.ModeKeep}},
	}
	if got := shops.All(); !reflect.DeepEqual(got, want) {
		t.Errorf("All() =\n%#v\nwant\n%#v", got, want)
	}
	if sh, ok := shops.Lookup("own_cart-2"); !ok || sh.Atodene.LinkPassword.Reveal() != "fileSecret9" {
		t.Errorf(`Lookup("own_cart-2") = %v, %v; want the shop with the file's password`, sh, ok)
	}
	if _, ok := shops.Lookup("nope"); ok {
		t.Error(`Lookup("nope") found a shop`)
	}
	if shops.File() != "testdata/shops.yaml" {
		t.Errorf("File() = %q", shops.File())
	}
}

func TestShopsMarshalYAML(t *testing.T) {
	t.Parallel()
	shops, err := LoadShops("testdata/shops.yaml", testdataEnv)
	if err != nil {
		t.Fatalf("LoadShops: %v", err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(shops); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	golden.Check(t, "shops.golden", buf.Bytes())
	for _, secret := range []string{"envSecret01", "envSecret02", "fileSecret9"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("printed shops contain the secret %q", secret)
		}
	}
}

// loadString writes content as shops.yaml, plus extra files, in a fresh directory and loads
// it. Error messages have the directory stripped, so they read "shops.yaml: ...".
func loadString(t *testing.T, content string, vars map[string]string, files map[string]string) (*Shops, error) {
	t.Helper()
	dir := t.TempDir()
	files = mapWith(files, "shops.yaml", content)
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	shops, err := LoadShops(filepath.Join(dir, "shops.yaml"), env(vars))
	if err != nil {
		err = errors.New(strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""))
	}
	return shops, err
}

func mapWith(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for mk, mv := range m {
		out[mk] = mv
	}
	return out
}

// validShop is a valid one-shop file. Its lines: 2 id, 3 atodene, 4 base_url, 5 shop_code,
// 6 link_password, 7 fees, 8 mode, 9 table, 10 the row; the tests' messages quote them.
const validShop = `shops:
  - id: rakuten-01
    atodene:
      base_url: https://www.manage.atodene.jp/api/
      shop_code: abc123456789
      link_password: ${PW}
    fees:
      mode: add
      table:
        - {min: 1, max: 999999, fee: 205}
`

const (
	row1         = "        - {min: 1, max: 999999, fee: 205}\n"
	atodeneLines = "    atodene:\n      base_url: https://www.manage.atodene.jp/api/\n      shop_code: abc123456789\n      link_password: ${PW}\n"
	feesLines    = "    fees:\n      mode: add\n      table:\n" + row1
)

// edit returns validShop with each old text replaced by the new text that follows it.
func edit(oldNew ...string) string {
	s := validShop
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			panic("edit: " + oldNew[i] + " is not in validShop")
		}
		s = strings.Replace(s, oldNew[i], oldNew[i+1], 1)
	}
	return s
}

var pwEnv = map[string]string{"PW": "envSecret01"}

func TestLoadShopsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    []string // every problem, in order, each a part of its line; nil for a valid file
	}{
		{"empty file", "", []string{"shops.yaml: shops: no shops listed"}},
		{"empty list", "shops: []\n", []string{"shops.yaml: shops: no shops listed"}},
		{"not YAML", "shops: [\n", []string{"shops.yaml: yaml: line"}},
		{"top level not a mapping", "- a\n", []string{"shops.yaml: want a mapping with shops, got a list (line 1)"}},
		{"unknown top-level key", validShop + "shop:\n  - x\n", []string{"shops.yaml: shop: unknown field (want one of shops) (line 11)"}},
		{"shops not a list", "shops: {id: a}\n", []string{"shops.yaml: shops: want a list, got a mapping (line 1)"}},
		{"shop not a mapping", "shops:\n  - rakuten-01\n", []string{"shops.yaml: shop #1: want a mapping with id, atodene, fees or reauthorize_after, got a single value (line 2)"}},
		{"typo in a field", edit("shop_code:", "shop_cod:"), []string{
			`shops.yaml: shop "rakuten-01": atodene.shop_cod: unknown field (want one of base_url, shop_code, link_id, link_password, link_password_file, invoice_delivery or order_id_prefix) (line 5)`,
			`shops.yaml: shop "rakuten-01": atodene.shop_code: required (line 3)`}},
		{"typo in a shop key", edit("    fees:", "    fee:"), []string{`shops.yaml: shop "rakuten-01": fee: unknown field (want one of id, atodene, fees or reauthorize_after) (line 7)`}},
		{"key given twice", edit("      link_password:", "      link_id: a\n      link_id: b\n      link_password:"), []string{
			`shops.yaml: shop "rakuten-01": atodene.link_id: given twice (line 7)`}},
		{"id missing", edit("  - id: rakuten-01\n    atodene:", "  - atodene:"), []string{`shops.yaml: shop #1: id: required (line 2)`}},
		{"id bad characters", edit("id: rakuten-01", "id: rakuten.01"), []string{
			`shops.yaml: shop "rakuten.01": id: "rakuten.01": only letters A–Z a–z, digits, '_' and '-' are allowed (line 2)`}},
		{"id too long", edit("id: rakuten-01", "id: "+strings.Repeat("a", 33)), []string{`id: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" is 33 characters long; at most 32`}},
		{"id not a scalar", edit("id: rakuten-01", "id: [a]"), []string{`shops.yaml: shop #1: id: want a single value, got a list (line 2)`}},
		{"duplicate id", validShop + strings.TrimPrefix(validShop, "shops:\n"), []string{
			`shops.yaml: shop "rakuten-01": id: duplicate: shop #1 has the same id (line 11)`}},
		{"base_url missing", edit(" https://www.manage.atodene.jp/api/", ""), []string{`shops.yaml: shop "rakuten-01": atodene.base_url: required (line 4)`}},
		{"base_url relative", edit("https://www.manage.atodene.jp/api/", "/api/"), []string{`atodene.base_url: "/api/" is not an absolute http or https URL (line 4)`}},
		{"base_url not http", edit("https://www.manage.atodene.jp/api/", "ftp://example.jp/"), []string{`atodene.base_url: "ftp://example.jp/" is not an absolute http or https URL`}},
		{"base_url with credentials", edit("https://www.manage.atodene.jp/api/", "https://u:hunter2@example.jp/"), []string{`atodene.base_url: must not carry credentials (user info)`}},
		{"base_url with query", edit("https://www.manage.atodene.jp/api/", "https://example.jp/?a=1"), []string{`atodene.base_url: "https://example.jp/?a=1": must not have a query or fragment`}},
		{"shop_code empty", edit("abc123456789", `""`), []string{`shops.yaml: shop "rakuten-01": atodene.shop_code: required (line 5)`}},
		{"shop_code with a space", edit("abc123456789", "abc 123"), []string{`atodene.shop_code: "abc 123" contains a space or control character`}},
		{"link_id with a space", edit("      link_password:", "      link_id: original 00\n      link_password:"), []string{
			`atodene.link_id: "original 00" contains a space or control character (line 6)`}},
		{"invoice_delivery unknown", edit("      link_password: ${PW}", "      link_password: ${PW}\n      invoice_delivery: both"), []string{
			`atodene.invoice_delivery: "both": want separate or enclosed (line 7)`}},
		{"atodene missing", edit(atodeneLines, ""), []string{
			`atodene.base_url: required (line 2)`, `atodene.shop_code: required (line 2)`,
			`atodene.link_password: required: a ${ENV_VAR} reference, or link_password_file (line 2)`}},
		{"atodene not a mapping", edit(atodeneLines, "    atodene: yes\n"), []string{
			`shops.yaml: shop "rakuten-01": atodene: want a mapping with base_url, shop_code, link_id, link_password, link_password_file, invoice_delivery or order_id_prefix, got a single value (line 3)`}},
		{"fees absent", edit(feesLines, ""), nil},
		{"fees null", edit(feesLines, "    fees:\n"), nil},
		{"fees mode missing", edit("      mode: add\n", ""), []string{`shops.yaml: shop "rakuten-01": fees.mode: required: keep, overwrite or add (line 7)`}},
		{"fees mode unknown", edit("mode: add", "mode: double"), []string{`shops.yaml: shop "rakuten-01": fees.mode: unknown fee mode "double"`}},
		{"fees mode in Japanese", edit("mode: add", "mode: 加算する"), nil},
		{"fees not a mapping", edit(feesLines, "    fees: add\n"), []string{
			`shops.yaml: shop "rakuten-01": fees: want a mapping with mode or table, got a single value (line 7)`}},
		{"table not a list", edit("      table:\n"+row1, "      table: 205\n"), []string{`shops.yaml: shop "rakuten-01": fees.table: want a list, got a single value (line 9)`}},
		{"min > max", edit(row1, "        - {min: 1, max: 100, fee: 205}\n        - {min: 500, max: 100, fee: 205}\n"), []string{
			`shops.yaml: shop "rakuten-01": fees.table[2]: min 500 > max 100 (line 11)`}},
		{"overlap and negative", edit(row1, "        - {min: 1, max: 1000, fee: 205}\n        - {min: 1000, max: 2000, fee: -5}\n"), []string{
			`fees.table[2]: fee -5 is negative (line 11)`, `fees.table[2]: 1000–2000 → -5 overlaps row 1 (1–1000 → 205) (line 11)`}},
		{"row value not a number", edit(row1, "        - {min: one, max: 1.5, fee: '205'}\n"), []string{
			`fees.table[1].min: want a whole number of yen, got "one" (line 10)`,
			`fees.table[1].max: want a whole number of yen, got "1.5" (line 10)`,
			`fees.table[1].fee: want a whole number of yen, got "205" (line 10)`}},
		{"row value with a leading zero or in hexadecimal", edit(row1, "        - {min: 01000, max: 0x1000, fee: 0330}\n"), []string{
			`fees.table[1].min: want a whole number of yen in decimal digits without leading zeros, got "01000" (YAML would read it as 512) (line 10)`,
			`fees.table[1].max: want a whole number of yen in decimal digits without leading zeros, got "0x1000" (YAML would read it as 4096) (line 10)`,
			`fees.table[1].fee: want a whole number of yen in decimal digits without leading zeros, got "0330" (YAML would read it as 216) (line 10)`}},
		{"row value missing", edit(", fee: 205}", "}"), []string{`fees.table[1].fee: required (line 10)`}},
		{"row typo", edit("fee: 205}", "fees: 205}"), []string{
			`fees.table[1].fees: unknown field (want one of min, max or fee) (line 10)`, `fees.table[1].fee: required (line 10)`}},
		{"row not a mapping", edit(row1, "        - [1, 999999, 205]\n"), []string{
			`fees.table[1]: want a mapping with min, max or fee, got a list (line 10)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadString(t, tt.content, pwEnv, nil)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("LoadShops: %v", err)
				}
				return
			}
			checkProblems(t, err, tt.want)
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error quotes a password: %v", err)
			}
		})
	}
}

// checkProblems checks that err lists exactly the problems want, in order, each line
// containing its expected text.
func checkProblems(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d problems:\n%v\nwant %d:\n%s", len(lines), err, len(want), strings.Join(want, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("problem %d:\n  %s\nwant it to contain\n  %s", i+1, lines[i], w)
		}
	}
}

func TestLoadShopsReportsEveryProblem(t *testing.T) {
	t.Parallel()
	content := `shops:
  - id: rakuten-01
    atodene:
      base_url: https://www.manage.atodene.jp/api/
      shop_code: abc123456789
      link_password: ${MISSING}
    fees:
      mode: add
      table:
        - {min: 500, max: 100, fee: 205}
  - id: yahoo 01
    atodene:
      base_url: www.example.jp
      shop_code: yah000000001
      link_password: plain-text-pw
  - id: amazon-01
    atodene:
      base_url: https://www.manage.atodene.jp/api/
      shop_code: amz000000001
      link_password_file: nowhere.txt
      invoice_delivery: mail
`
	_, err := loadString(t, content, nil, nil)
	checkProblems(t, err, []string{
		`shops.yaml: shop "rakuten-01": atodene.link_password: environment variable MISSING is not set (line 6)`,
		`shops.yaml: shop "rakuten-01": fees.table[1]: min 500 > max 100 (line 10)`,
		`shops.yaml: shop "yahoo 01": atodene.link_password: plain-text passwords are not allowed`,
		`shops.yaml: shop "yahoo 01": id: "yahoo 01": only letters`,
		`shops.yaml: shop "yahoo 01": atodene.base_url: "www.example.jp" is not an absolute http or https URL (line 13)`,
		`shops.yaml: shop "amazon-01": atodene.link_password_file: open nowhere.txt`,
		`shops.yaml: shop "amazon-01": atodene.invoice_delivery: "mail": want separate or enclosed (line 21)`,
	})
	if strings.Contains(err.Error(), "plain-text-pw") {
		t.Errorf("the error quotes the plain-text password: %v", err)
	}
}

func TestLoadShopsSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		password  string // the atodene lines that give the password
		vars      map[string]string
		files     map[string]string
		want      string // the revealed password
		wantFrom  string
		wantError string // instead of want
	}{
		{name: "env set", password: "link_password: ${PW}", vars: map[string]string{"PW": "s3cret-Pass"},
			want: "s3cret-Pass", wantFrom: "${PW}"},
		{name: "env missing", password: "link_password: ${PW}",
			wantError: `shops.yaml: shop "rakuten-01": atodene.link_password: environment variable PW is not set (line 6)`},
		{name: "env empty", password: "link_password: ${PW}", vars: map[string]string{"PW": ""},
			wantError: `shops.yaml: shop "rakuten-01": atodene.link_password: environment variable PW is empty (line 6)`},
		{name: "env ending in a line break, as a secret made from a file", password: "link_password: ${PW}", vars: map[string]string{"PW": "s3cret-Pass\r\n"},
			want: "s3cret-Pass", wantFrom: "${PW}"},
		{name: "env of a line break only", password: "link_password: ${PW}", vars: map[string]string{"PW": "\n"},
			wantError: `shops.yaml: shop "rakuten-01": atodene.link_password: environment variable PW is empty (line 6)`},
		{name: "env of spaces only", password: "link_password: ${PW}", vars: map[string]string{"PW": "  "},
			wantError: `atodene.link_password: environment variable PW is empty (line 6)`},
		{name: "env with a line break inside", password: "link_password: ${PW}", vars: map[string]string{"PW": "s3c\nret"},
			wantError: `atodene.link_password: environment variable PW holds a control character (a line break inside, a NUL): not a password (line 6)`},
		{name: "file with a NUL", password: "link_password_file: pw.txt", files: map[string]string{"pw.txt": "a\x00b\n"},
			wantError: `atodene.link_password_file: file pw.txt holds a control character`},
		{name: "file", password: "link_password_file: pw.txt", files: map[string]string{"pw.txt": "fromFile01\n"},
			want: "fromFile01", wantFrom: "pw.txt"},
		{name: "file with CRLF, in a subdirectory", password: "link_password_file: secrets/pw.txt",
			files: map[string]string{"secrets/pw.txt": "fromFile02\r\n"}, want: "fromFile02", wantFrom: "secrets/pw.txt"},
		{name: "file keeps inner spaces", password: "link_password_file: pw.txt", files: map[string]string{"pw.txt": " a b \n"},
			want: " a b ", wantFrom: "pw.txt"},
		{name: "file missing", password: "link_password_file: pw.txt",
			wantError: `shops.yaml: shop "rakuten-01": atodene.link_password_file: open pw.txt: no such file or directory (line 6)`},
		{name: "file empty", password: "link_password_file: pw.txt", files: map[string]string{"pw.txt": "\n"},
			wantError: `shops.yaml: shop "rakuten-01": atodene.link_password_file: file pw.txt is empty (line 6)`},
		{name: "file path not a scalar", password: "link_password_file: [pw.txt]",
			wantError: `atodene.link_password_file: want a single value, got a list (line 6)`},
		{name: "plain text refused", password: "link_password: hunter2",
			wantError: `shops.yaml: shop "rakuten-01": atodene.link_password: plain-text passwords are not allowed: write ${ENV_VAR} and set that variable, or use link_password_file (line 6)`},
		{name: "reference without braces refused", password: "link_password: $PW", vars: map[string]string{"PW": "x"},
			wantError: `atodene.link_password: plain-text passwords are not allowed`},
		{name: "reference with extra text refused", password: "link_password: ${PW}x", vars: map[string]string{"PW": "x"},
			wantError: `atodene.link_password: plain-text passwords are not allowed`},
		{name: "reference to a bad name refused", password: "link_password: ${1PW}",
			wantError: `atodene.link_password: plain-text passwords are not allowed`},
		{name: "empty reference", password: `link_password: ""`,
			wantError: `atodene.link_password: empty: want a ${ENV_VAR} reference (line 6)`},
		{name: "empty file path", password: `link_password_file: ""`,
			wantError: `atodene.link_password_file: empty: want the path of a file holding the password (line 6)`},
		{name: "password as a mapping", password: "link_password: {env: PW}",
			wantError: `atodene.link_password: want a ${ENV_VAR} reference, got a mapping (line 6)`},
		{name: "both given", password: "link_password: ${PW}\n      link_password_file: pw.txt",
			vars: map[string]string{"PW": "x"}, files: map[string]string{"pw.txt": "y"},
			wantError: `shops.yaml: shop "rakuten-01": atodene.link_password: give link_password or link_password_file, not both (line 6)`},
		{name: "neither given", password: "link_id: original00",
			wantError: `shops.yaml: shop "rakuten-01": atodene.link_password: required: a ${ENV_VAR} reference, or link_password_file (line 3)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			content := edit("link_password: ${PW}", tt.password)
			shops, err := loadString(t, content, tt.vars, tt.files)
			if tt.wantError != "" {
				checkProblems(t, err, []string{tt.wantError})
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("the error quotes the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadShops: %v", err)
			}
			a := shops.All()[0].Atodene
			if a.LinkPassword.Reveal() != tt.want || a.LinkPasswordFrom != tt.wantFrom {
				t.Errorf("password %q from %q, want %q from %q", a.LinkPassword.Reveal(), a.LinkPasswordFrom, tt.want, tt.wantFrom)
			}
		})
	}
}

func TestLoadShopsErrorTypes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "shops.yaml")
	content := edit("link_password: ${PW}", "link_password_file: pw.txt")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadShops(path, env(nil))
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("LoadShops error %v is not a *FieldError", err)
	}
	if fe.File != path || fe.Shop != "rakuten-01" || fe.Index != 1 || fe.Field != "atodene.link_password_file" || fe.Line != 6 {
		t.Errorf("FieldError = %+v", fe)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false, want true", err)
	}
	if _, err := LoadShops(filepath.Join(dir, "absent.yaml"), env(nil)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadShops(absent file) = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadShopsAnchors(t *testing.T) {
	t.Parallel()
	content := edit("    fees:\n", "    fees: &flat\n") + `  - id: yahoo-01
    atodene: {base_url: 'https://example.jp/', shop_code: x1, link_password: '${PW}'}
    fees: *flat
`
	shops, err := loadString(t, content, pwEnv, nil)
	if err != nil {
		t.Fatalf("LoadShops: %v", err)
	}
	if sh, _ := shops.Lookup("yahoo-01"); sh.Fees.Mode != fees.ModeAdd || len(sh.Fees.Rows) != 1 {
		t.Errorf("yahoo-01 fees = %+v, want the anchored table", sh.Fees)
	}
}

func TestNewShops(t *testing.T) {
	t.Parallel()
	good := Shop{ID: "a", Atodene: Atodene{
		BaseURL: "http://127.0.0.1:8089/", ShopCode: "abc", LinkID: DefaultLinkID,
		LinkPassword: NewSecret("pw"), InvoiceDelivery: InvoiceSeparate,
	}, Fees: fees.Table{Mode: fees.ModeKeep}}
	if _, err := NewShops([]Shop{good}); err != nil {
		t.Fatalf("NewShops(valid) = %v", err)
	}
	bad := good
	bad.Atodene.LinkID = ""
	bad.Fees = fees.Table{}
	_, err := NewShops([]Shop{good, bad, {}})
	checkProblems(t, err, []string{
		`shop "a": atodene.link_id: required`,
		`shop "a": fees.mode: unknown fee mode ""`,
		`shop "a": id: duplicate: shop #1 has the same id`,
		`shop #3: id: required`,
		`shop #3: atodene.base_url: required`,
		`shop #3: atodene.shop_code: required`,
		`shop #3: atodene.link_id: required`,
		`shop #3: atodene.link_password: required`,
		`shop #3: atodene.invoice_delivery: "": want separate or enclosed`,
		`shop #3: fees.mode: unknown fee mode ""`,
	})
	if _, err := NewShops(nil); err == nil || err.Error() != "shops: no shops listed" {
		t.Errorf("NewShops(nil) = %v, want no shops listed", err)
	}
}

// Shops that share an ATODENE account (one contract, several mall stores) need order_id_prefixes
// that keep their order numbers apart as shopOrderId: two stores that both number an order
// 100001 would otherwise meet ATODENE's "already registered" on a first attempt.
func TestSharedAccountNeedsPrefixes(t *testing.T) {
	t.Parallel()
	shop := func(id, code, prefix string) Shop {
		return Shop{ID: id, Atodene: Atodene{BaseURL: "https://www.manage.atodene.jp/api/", ShopCode: code, LinkID: DefaultLinkID,
			LinkPassword: NewSecret("pw"), InvoiceDelivery: InvoiceSeparate, OrderIDPrefix: prefix}, Fees: fees.Table{Mode: fees.ModeKeep}}
	}
	tests := []struct {
		name    string
		shops   []Shop
		problem string // "" when accepted
	}{
		{"own accounts, no prefixes", []Shop{shop("rakuten-01", "abc123456789", ""), shop("yahoo-01", "yah000000001", "")}, ""},
		{"shared account, distinct prefixes", []Shop{shop("rakuten-01", "abc123456789", "R-"), shop("yahoo-01", "abc123456789", "Y-")}, ""},
		{"shared account, no prefixes", []Shop{shop("rakuten-01", "abc123456789", ""), shop("yahoo-01", "abc123456789", "")},
			`shop "yahoo-01": atodene.order_id_prefix: "" shares the ATODENE account abc123456789 (shop_code) with shop "rakuten-01", whose prefix is ""`},
		{"shared account, one prefix", []Shop{shop("rakuten-01", "abc123456789", ""), shop("yahoo-01", "abc123456789", "Y-")},
			`shop "yahoo-01": atodene.order_id_prefix: "Y-" shares the ATODENE account abc123456789 (shop_code) with shop "rakuten-01", whose prefix is ""`},
		{"shared account, one prefix begins the other", []Shop{shop("a", "abc123456789", "R"), shop("b", "abc123456789", "R1")},
			`shop "b": atodene.order_id_prefix: "R1" shares the ATODENE account abc123456789`},
		{"shared account, same prefix", []Shop{shop("a", "abc123456789", "R-"), shop("b", "abc123456789", "R-")},
			`shop "b": atodene.order_id_prefix: "R-" shares the ATODENE account abc123456789`},
		{"prefix with a bad character", []Shop{shop("a", "abc123456789", "R/")},
			`shop "a": atodene.order_id_prefix: "R/": only letters`},
		{"prefix leaving no room", []Shop{shop("a", "abc123456789", strings.Repeat("R", 50))},
			`shop "a": atodene.order_id_prefix: "RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR" is 50 characters long; at most 49`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewShops(tt.shops)
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			checkProblems(t, err, []string{tt.problem})
		})
	}
}

// The prefix is read from the shops file and printed back by config check.
func TestLoadShopsOrderIDPrefix(t *testing.T) {
	t.Parallel()
	content := `shops:
  - id: rakuten-01
    atodene:
      base_url: https://www.manage.atodene.jp/api/
      shop_code: abc123456789
      link_password: ${PW}
      order_id_prefix: R-
  - id: yahoo-01
    atodene:
      base_url: https://www.manage.atodene.jp/api/
      shop_code: abc123456789
      link_password: ${PW}
      order_id_prefix: Y-
`
	shops, err := loadString(t, content, map[string]string{"PW": "secret-pw1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sh, _ := shops.Lookup("yahoo-01"); sh.Atodene.OrderIDPrefix != "Y-" {
		t.Errorf("yahoo-01 prefix %q, want Y-", sh.Atodene.OrderIDPrefix)
	}
	out, err := yaml.Marshal(shops)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "order_id_prefix: R-") {
		t.Errorf("printed shops lack the prefix:\n%s", out)
	}
}
