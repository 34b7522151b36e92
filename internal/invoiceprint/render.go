package invoiceprint

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/termtable"
)

// The layout of the print elements of getinvoicedata.do (docs/protocol.md#invoice-print-data),
// each with its Japanese label: as an A4 invoice (HTML), or listed by group (text).

// Field is one print element (its name in getinvoicedata.do's invoiceInfo) and its Japanese label.
type Field struct{ Name, Label string }

// Group is a group of print elements, as the protocol's table groups them, under its heading.
type Group struct {
	Heading string
	Fields  []Field
}

// numbered returns the elements prefix<from>…prefix<to>, labelled label<n>.
func numbered(prefix, label string, from, to int) []Field {
	var out []Field
	for i := from; i <= to; i++ {
		out = append(out, Field{prefix + strconv.Itoa(i), label + strconv.Itoa(i)})
	}
	return out
}

func fields(groups ...[]Field) []Field {
	var out []Field
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// layout lists every element of invoiceInfo but the detail lines, in the protocol's order.
var layout = []Group{
	{"宛先", []Field{{"zip", "郵便番号"}, {"address1", "住所1"}, {"address2", "住所2"}, {"companyName", "会社名"},
		{"sectionName", "部署名"}, {"name", "氏名"}}},
	{"ご購入店", []Field{{"siteNameTitle", "加盟店名タイトル"}, {"siteName", "請求書記載店舗名"},
		{"shopOrderIdTitle", "加盟店取引IDタイトル"}, {"shopOrderId", "ご購入店受注番号"}}},
	{"請求書記載事項・発行元", fields(numbered("descriptionText", "請求書記載事項", 1, 5),
		[]Field{{"billServiceName", "請求書発行元企業名"}}, numbered("billServiceInfo", "発行元情報", 1, 4),
		[]Field{{"billState1", "請求書ステータス（表題）"}}, numbered("billFirstGreet", "宛名欄挨拶文", 1, 4))},
	{"予備項目", numbered("expand", "予備項目", 1, 10)},
	{"ご請求金額・日付", []Field{{"billedAmountTitle", "請求金額タイトル"}, {"billedAmount", "請求金額"},
		{"billedFeeTax", "消費税"}, {"billOrderdayTitle", "注文日タイトル"}, {"shopOrderDate", "注文日"},
		{"billSendDateTitle", "請求書発行日タイトル"}, {"billSendDate", "請求書発行日"},
		{"billDeadlineDateTitle", "お支払期限日タイトル"}, {"billDeadlineDate", "お支払期限日"},
		{"transactionIdTitle", "お問合せ番号タイトル"}, {"transactionId", "お問合せ番号"}}},
	{"銀行振込", []Field{{"billBankInfomation", "銀行振込注意文言"}, {"bankNameTitle", "銀行名タイトル"},
		{"bankName", "銀行名"}, {"bankCode", "銀行コード"}, {"branchNameTitle", "支店名タイトル"}, {"branchName", "支店名"},
		{"branchCode", "支店コード"}, {"bankAccountNumberTitle", "口座番号タイトル"}, {"bankAccountKind", "預金種別"},
		{"bankAccountNumber", "口座番号"}, {"bankAccountNameTitle", "口座名義タイトル"}, {"bankAccountName", "口座名義"}}},
	{"払込票", []Field{{"receiptBillDeadlineDate", "払込取扱用 お支払期限日"}, {"receiptName", "払込取扱用 購入者名"},
		{"invoiceBarcode", "バーコード情報"}, {"receiptCompanyTitle", "収納代行会社名タイトル"}, {"receiptCompany", "収納代行会社名"}}},
	{"受領証・払込受領書", []Field{{"docketbilledAmount", "受領証用 請求金額"}, {"docketCompanyName", "受領証用 会社名"},
		{"docketSectionName", "受領証用 部署名"}, {"docketName", "受領証用 氏名"},
		{"docketTransactionIdTitle", "受領証用 お問合せ番号タイトル"}, {"docketTransactionId", "受領証用 お問合せ番号"},
		{"voucherCompanyName", "払込受領書用 会社名"}, {"voucherSectionName", "払込受領書用 部署名"},
		{"voucherCustomerFullName", "払込受領書用 氏名"}, {"voucherTransactionIdTitle", "払込受領書用 お問合せ番号タイトル"},
		{"voucherTransactionId", "払込受領書用 お問合せ番号"}, {"voucherBilledAmount", "払込受領書用 金額"},
		{"voucherBilledFeeTax", "払込受領書用 消費税"}, {"revenueStampRequired", "収入印紙文言"}}},
	{"明細", []Field{{"goodsTitle", "商品名タイトル"}, {"goodsAmountTitle", "数量タイトル"}, {"goodsPriceTitle", "単価タイトル"},
		{"goodsSubtotalTitle", "小計タイトル"}, {"detailInfomation", "明細注意事項"}}},
	{"ゆうちょ口座・OCR", []Field{{"expand11", "ゆうちょ口座番号"}, {"expand12", "ゆうちょ加入者名"}, {"expand13", "OCR-B 上段"},
		{"expand14", "OCR-B 下段"}, {"expand15", "払込取扱用 購入者住所"}, {"expand16", "印字ズレチェックマーク"}}},
	{"予備項目", numbered("expand", "予備項目", 17, 20)},
}

// detailLayout lists the elements of a detail line.
var detailLayout = []Field{{"goods", "商品名"}, {"goodsAmount", "数量"}, {"goodsPrice", "単価"}, {"goodsSubtotal", "小計"},
	{"goodsExpand", "明細予備項目"}}

// knownField reports whether the layout has the element.
func knownField(name string) bool {
	for _, g := range layout {
		for _, f := range g.Fields {
			if f.Name == name {
				return true
			}
		}
	}
	return false
}

// otherFields returns the elements of the print data that the layout does not have (ones ATODENE
// added), sorted, so that the document leaves nothing out.
func otherFields(p Invoice) []Field {
	var out []Field
	for name := range p.Invoice.Fields {
		if !knownField(name) {
			out = append(out, Field{name, name})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// knownDetail reports whether a detail line of the layout has the element.
func knownDetail(name string) bool {
	for _, f := range detailLayout {
		if f.Name == name {
			return true
		}
	}
	return false
}

// otherDetails returns the elements of the invoice's detail lines that detailLayout does not have
// (ones ATODENE added to a line, a tax-rate column say), of any line, sorted: each is a column of
// its own in the HTML lines table and a row under its line in the text, labelled その他 <element>,
// so that no element of a line is left out either.
func otherDetails(p Invoice) []Field {
	var out []Field
	seen := map[string]bool{}
	for _, line := range p.Invoice.Details {
		for name := range line {
			if !knownDetail(name) && !seen[name] {
				seen[name] = true
				out = append(out, Field{name, "その他 " + name})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Layout returns the groups of the print elements of invoiceInfo but the detail lines, in the
// protocol's order, each element with its Japanese label: the text document's order.
func Layout() []Group {
	out := make([]Group, len(layout))
	for i, g := range layout {
		out[i] = Group{Heading: g.Heading, Fields: append([]Field(nil), g.Fields...)}
	}
	return out
}

// DetailLayout returns the elements of a detail line (明細), with their labels.
func DetailLayout() []Field { return append([]Field(nil), detailLayout...) }

// sheet is an invoice embedded in a view, whose fields (Invoice: the print data) it promotes.
type sheet = Invoice

// view is one invoice as the HTML template sees it.
type view struct {
	sheet
	Number, Of int
}

// field is text in a span marked with the element's name, both escaped: a name comes from the
// print data too (Others).
func field(name, text string) template.HTML {
	return template.HTML(`<span data-field="` + template.HTMLEscapeString(name) + `">` + template.HTMLEscapeString(text) + `</span>`)
}

// F is an element's value, marked with its name.
func (v view) F(name string) template.HTML { return field(name, v.Invoice.Fields[name]) }

// T is a title element's value, or fallback when ATODENE sent it empty.
func (v view) T(name, fallback string) template.HTML {
	text := v.Invoice.Fields[name]
	if strings.TrimSpace(text) == "" {
		text = fallback
	}
	return field(name, text)
}

// D is an element of a detail line.
func (v view) D(line map[string]string, name string) template.HTML {
	return field(name, line[name])
}

// Reserved lists the reserved elements (予備項目), printed small at the foot of the page.
func (v view) Reserved() []Field {
	return fields(numbered("expand", "予備項目", 1, 10), numbered("expand", "予備項目", 17, 20))
}

// Others lists the elements the layout does not know.
func (v view) Others() []Field { return otherFields(v.sheet) }

// DetailOthers lists the elements of the detail lines that the layout does not know: a column each.
func (v view) DetailOthers() []Field { return otherDetails(v.sheet) }

// When is when the invoice.ok was published, in Japan's time.
func (v view) When() string { return jst.Format(v.Published) }

// sheetCSS styles the sheets (every rule under .invoice), so that a page embedding them keeps its
// own style: A4 sheets of 186 mm by 270 mm within the page's margins, one per printed page, and
// on a screen white sheets of 210 mm by 297 mm. The 払込票 takes two thirds of the slip, so that
// its 44-digit barcode lines keep to one line each and a sheet fits one A4 page (the browser test
// TestConsoleInBrowser prints two invoices on two pages).
const sheetCSS = `.invoice, .invoice * { box-sizing: border-box; }
.invoice { width: 186mm; min-height: 270mm; margin: 0 auto; position: relative; break-after: page; page-break-after: always; color: #000; font: 9pt/1.35 "Noto Sans JP", "Hiragino Kaku Gothic ProN", "Yu Gothic", Meiryo, sans-serif; text-align: left; }
.invoice:last-of-type { break-after: auto; page-break-after: auto; }
@media screen { .invoice { background: #fff; padding: 10mm; margin: 8mm auto; width: 210mm; min-height: 297mm; } }
.invoice .top { display: flex; justify-content: space-between; gap: 8mm; }
.invoice .addressee { width: 95mm; font-size: 10.5pt; }
.invoice .addressee .name { font-size: 13pt; margin-top: 2mm; }
.invoice .issuer { width: 75mm; font-size: 8.5pt; text-align: right; }
.invoice .issuer .service { font-size: 10pt; font-weight: bold; }
.invoice p { margin: 0; }
.invoice h1 { text-align: center; font-size: 18pt; letter-spacing: .5em; margin: 6mm 0 3mm; }
.invoice h2 { font-size: 9.5pt; margin: 0 0 1mm; border-bottom: 1px solid #000; }
.invoice .greet { margin-bottom: 3mm; }
.invoice .notes { font-size: 8pt; }
.invoice .details tr { break-inside: avoid; page-break-inside: avoid; }
.invoice table { border-collapse: collapse; width: 100%; }
.invoice th, .invoice td { border: 1px solid #000; padding: .8mm 1.5mm; vertical-align: top; text-align: left; }
.invoice th { background: #eee; font-weight: normal; white-space: nowrap; }
.invoice .summary th { width: 35mm; }
.invoice .amount { font-size: 14pt; font-weight: bold; }
.invoice .amount small { font-size: 8.5pt; font-weight: normal; margin-left: 3mm; }
.invoice .details { margin-top: 3mm; }
.invoice .details td.num { text-align: right; white-space: nowrap; }
.invoice .note, .invoice .notes, .invoice .bank, .invoice .stamp { margin-top: 2mm; }
.invoice .bank table th { width: 30mm; }
.invoice .slip { margin-top: 5mm; padding-top: 3mm; border-top: 1px dashed #000; display: flex; gap: 3mm; }
.invoice .slip > div { flex: 1; border: 1px solid #000; padding: 1.5mm; font-size: 8pt; }
.invoice .slip > div:first-child { flex: 2; }
.invoice .slip .digits { font-family: "OCR B", "OCRB", monospace; letter-spacing: .05em; word-break: break-all; }
.invoice .reserved { margin-top: 3mm; font-size: 7pt; color: #555; }
.invoice .reserved th, .invoice .reserved td { border-color: #999; padding: .3mm 1mm; white-space: normal; }
.invoice .meta { position: absolute; right: 0; bottom: 0; font-size: 7pt; color: #555; }
@media screen { .invoice .meta { right: 10mm; bottom: 5mm; } }
`

// documentCSS is the stylesheet of the document around the sheets: A4 pages, and a grey desk on
// a screen.
const documentCSS = `@page { size: A4; margin: 12mm; }
body { margin: 0; }
@media screen { body { background: #ddd; } }
`

// sheetsHTML lays out each invoice as a section of class "invoice" (data-shop, data-order), each
// element's value in a span whose data-field names it.
const sheetsHTML = `{{define "sheets"}}{{range .}}<section class="invoice" data-shop="{{.Shop}}" data-order="{{.Order}}">
<div class="top">
<div class="addressee">
<p>〒{{.F "zip"}}</p>
<p>{{.F "address1"}}</p>
<p>{{.F "address2"}}</p>
<p>{{.F "companyName"}}</p>
<p>{{.F "sectionName"}}</p>
<p class="name">{{.F "name"}} 様</p>
</div>
<div class="issuer">
<p class="service">{{.F "billServiceName"}}</p>
<p>{{.F "billServiceInfo1"}}</p>
<p>{{.F "billServiceInfo2"}}</p>
<p>{{.F "billServiceInfo3"}}</p>
<p>{{.F "billServiceInfo4"}}</p>
</div>
</div>
<h1>{{.T "billState1" "ご請求書"}}</h1>
<div class="greet">
<p>{{.F "billFirstGreet1"}}</p>
<p>{{.F "billFirstGreet2"}}</p>
<p>{{.F "billFirstGreet3"}}</p>
<p>{{.F "billFirstGreet4"}}</p>
</div>
<table class="summary">
<tr><th>{{.T "billedAmountTitle" "ご請求金額"}}</th><td class="amount">{{.F "billedAmount"}}<small>{{.F "billedFeeTax"}}</small></td></tr>
<tr><th>{{.T "billDeadlineDateTitle" "お支払期限日"}}</th><td>{{.F "billDeadlineDate"}}</td></tr>
<tr><th>{{.T "billOrderdayTitle" "ご注文日"}}</th><td>{{.F "shopOrderDate"}}</td></tr>
<tr><th>{{.T "billSendDateTitle" "請求書発行日"}}</th><td>{{.F "billSendDate"}}</td></tr>
<tr><th>{{.T "transactionIdTitle" "お問合せ番号"}}</th><td>{{.F "transactionId"}}</td></tr>
<tr><th>{{.T "siteNameTitle" "ご購入店"}}</th><td>{{.F "siteName"}}</td></tr>
<tr><th>{{.T "shopOrderIdTitle" "ご購入店受注番号"}}</th><td>{{.F "shopOrderId"}}</td></tr>
</table>
<p class="stamp">{{.F "revenueStampRequired"}}</p>
<table class="details">
<thead><tr><th>{{.T "goodsTitle" "商品名"}}</th><th>{{.T "goodsAmountTitle" "数量"}}</th><th>{{.T "goodsPriceTitle" "単価"}}</th><th>{{.T "goodsSubtotalTitle" "小計"}}</th><th>備考</th>{{range .DetailOthers}}<th>{{.Label}}</th>{{end}}</tr></thead>
<tbody>
{{$v := .}}{{range $line := .Invoice.Details}}<tr><td>{{$v.D . "goods"}}</td><td class="num">{{$v.D . "goodsAmount"}}</td><td class="num">{{$v.D . "goodsPrice"}}</td><td class="num">{{$v.D . "goodsSubtotal"}}</td><td>{{$v.D . "goodsExpand"}}</td>{{range $v.DetailOthers}}<td>{{$v.D $line .Name}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
<p class="note">{{.F "detailInfomation"}}</p>
<div class="notes">
<p>{{.F "descriptionText1"}}</p>
<p>{{.F "descriptionText2"}}</p>
<p>{{.F "descriptionText3"}}</p>
<p>{{.F "descriptionText4"}}</p>
<p>{{.F "descriptionText5"}}</p>
</div>
<div class="bank">
<p>{{.F "billBankInfomation"}}</p>
<table>
<tr><th>{{.T "bankNameTitle" "銀行名"}}</th><td>{{.F "bankName"}}（銀行コード {{.F "bankCode"}}）</td></tr>
<tr><th>{{.T "branchNameTitle" "支店名"}}</th><td>{{.F "branchName"}}（支店コード {{.F "branchCode"}}）</td></tr>
<tr><th>{{.T "bankAccountNumberTitle" "口座番号"}}</th><td>{{.F "bankAccountKind"}} {{.F "bankAccountNumber"}}</td></tr>
<tr><th>{{.T "bankAccountNameTitle" "口座名義"}}</th><td>{{.F "bankAccountName"}}</td></tr>
</table>
</div>
<div class="slip">
<div>
<h2>払込票</h2>
<p>お支払期限日 {{.F "receiptBillDeadlineDate"}}</p>
<p>お名前 {{.F "receiptName"}} 様</p>
<p>ご住所 {{.F "expand15"}}</p>
<p>{{.T "receiptCompanyTitle" "収納代行会社"}} {{.F "receiptCompany"}}</p>
<p>ゆうちょ口座 {{.F "expand11"}} {{.F "expand12"}}</p>
<p class="digits">{{.F "invoiceBarcode"}}</p>
<p class="digits">{{.F "expand13"}}</p>
<p class="digits">{{.F "expand14"}}</p>
<p>{{.F "expand16"}}</p>
</div>
<div>
<h2>受領証</h2>
<p>ご請求金額 {{.F "docketbilledAmount"}}</p>
<p>{{.F "docketCompanyName"}}</p>
<p>{{.F "docketSectionName"}}</p>
<p>{{.F "docketName"}} 様</p>
<p>{{.T "docketTransactionIdTitle" "お問合せ番号"}} {{.F "docketTransactionId"}}</p>
</div>
<div>
<h2>払込受領書</h2>
<p>金額 {{.F "voucherBilledAmount"}} {{.F "voucherBilledFeeTax"}}</p>
<p>{{.F "voucherCompanyName"}}</p>
<p>{{.F "voucherSectionName"}}</p>
<p>{{.F "voucherCustomerFullName"}} 様</p>
<p>{{.T "voucherTransactionIdTitle" "お問合せ番号"}} {{.F "voucherTransactionId"}}</p>
</div>
</div>
<table class="reserved">
<tr>{{range .Reserved}}<th>{{.Label}}</th>{{end}}</tr>
<tr>{{$v := .}}{{range .Reserved}}<td>{{$v.F .Name}}</td>{{end}}</tr>
</table>
{{with .Others}}<table class="reserved">{{range .}}<tr><th>その他 {{.Name}}</th><td>{{$v.F .Name}}</td></tr>{{end}}</table>{{end}}
<p class="meta">{{.Number}}/{{.Of}} · shop {{.Shop}} · order {{.Order}} · invoice.ok {{.EventID}} ({{.When}} JST, sequence {{.Seq}})</p>
</section>
{{end}}{{end}}`

var templates = template.Must(template.Must(template.New("document").Parse(`<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<title>請求書 {{(index . 0).Shop}} {{range $i, $v := .}}{{if $i}}, {{end}}{{$v.Order}}{{end}}</title>
<style>
` + documentCSS + sheetCSS + `</style>
</head>
<body>
{{template "sheets" .}}</body>
</html>
`)).Parse(sheetsHTML))

func views(invoices []Invoice) []view {
	out := make([]view, len(invoices))
	for i, p := range invoices {
		out[i] = view{sheet: p, Number: i + 1, Of: len(invoices)}
	}
	return out
}

// WriteDocument writes the invoices as one HTML document (UTF-8, lang ja) for A4 paper, one
// invoice per page, numbered n/N in the order given. invoices must not be empty. An error is w's.
func WriteDocument(w io.Writer, invoices []Invoice) error {
	if len(invoices) == 0 {
		return fmt.Errorf("invoiceprint: no invoice to print")
	}
	return templates.ExecuteTemplate(w, "document", views(invoices))
}

// Sheets returns the invoices as an HTML fragment to embed in another page: one section of class
// "invoice" per invoice, numbered n/N in the order given, styled by Style (put it in the page's
// <style>). The page breaks after each sheet when printed.
func Sheets(invoices []Invoice) (template.HTML, error) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, "sheets", views(invoices)); err != nil {
		return "", err
	}
	return template.HTML(b.String()), nil
}

// Style returns the stylesheet of Sheets: every rule applies under .invoice only.
func Style() template.CSS { return template.CSS(sheetCSS) }

// labelWidth is the width, in terminal columns, of the label column of the text document.
const labelWidth = 34

// pad pads s with spaces to n terminal columns (a wide character takes two).
func pad(s string, n int) string {
	cols := termtable.Width(s)
	if cols >= n {
		return s + " "
	}
	return s + strings.Repeat(" ", n-cols)
}

// WriteText writes the invoices as plain text: per invoice a heading line, then every element
// under its label, by group, the detail lines under 明細 (each with the elements of a line the
// layout does not know, as その他 <element>), and the elements the layout does not know under
// その他; a form feed starts each invoice after the first, so that a plain-text printer starts
// each on a new page. The values, from ATODENE and the shop's buyer, are written
// termtable.Visible: a control character in one neither drives the terminal nor breaks the lines.
// An error is w's.
func WriteText(w io.Writer, invoices []Invoice) error {
	var b bytes.Buffer
	for i, p := range invoices {
		if i > 0 {
			fmt.Fprint(&b, "\f\n")
		}
		termtable.Fprintf(&b, "請求書 %d/%d  shop %s  order %s  お問合せ番号 %s\n", i+1, len(invoices), p.Shop, p.Order, p.TransactionID)
		termtable.Fprintf(&b, "(invoice.ok %s, %s JST, sequence %d)\n", p.EventID, jst.Format(p.Published), p.Seq)
		lineOthers := otherDetails(p)
		for _, g := range layout {
			termtable.Fprintf(&b, "\n[%s]\n", g.Heading)
			for _, f := range g.Fields {
				termtable.Fprintf(&b, "  %s%s\n", pad(f.Label, labelWidth), p.Invoice.Fields[f.Name])
			}
			if g.Heading == "明細" {
				for n, line := range p.Invoice.Details {
					termtable.Fprintf(&b, "  明細%d\n", n+1)
					for _, f := range detailLayout {
						termtable.Fprintf(&b, "    %s%s\n", pad(f.Label, labelWidth-2), line[f.Name])
					}
					for _, f := range lineOthers {
						if v, ok := line[f.Name]; ok {
							termtable.Fprintf(&b, "    %s%s\n", pad(f.Label, labelWidth-2), v)
						}
					}
				}
			}
		}
		if others := otherFields(p); len(others) > 0 {
			fmt.Fprint(&b, "\n[その他]\n")
			for _, f := range others {
				termtable.Fprintf(&b, "  %s%s\n", pad(f.Name, labelWidth), p.Invoice.Fields[f.Name])
			}
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}
