package sandbox

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/atodene-worker/atodene-worker/internal/jst"
)

// paymentDays is the payment term printed on an invoice (docs/protocol.md#business-rules: 14 days).
const paymentDays = 14

// invoiceInfo builds the print data of docs/protocol.md#invoice-print-data for t, in the table's order, and fixes
// t's invoice dates on its first call. All values are display strings. Reserved fields (expand1–10, expand17–20) are present and empty, as a real invoice's would be.
func (s *Server) invoiceInfo(t *transaction, now time.Time) *xmlNode {
	c := t.order.customer
	if t.invoiceSent.IsZero() {
		t.invoiceSent = now.In(jst.Zone)
		if d, err := time.ParseInLocation("2006/01/02", shipInvoiceDate(t), jst.Zone); err == nil {
			t.invoiceSent = d
		}
	}
	sendDate := t.invoiceSent
	deadline := sendDate.AddDate(0, 0, paymentDays)
	amount := yen(t.order.billed)
	tax := fmt.Sprintf("内消費税：%d円", t.order.billed*10/110)
	addr1, addr2 := splitAddress(c.Address)
	barcode := invoiceBarcode(t.id, t.order.billed, deadline)

	var n []xmlNode
	add := func(pairs ...string) {
		for i := 0; i+1 < len(pairs); i += 2 {
			n = append(n, leaf(pairs[i], pairs[i+1]))
		}
	}
	add("zip", formatZip(c.Zip), "address1", addr1, "address2", addr2,
		"companyName", c.CompanyName, "sectionName", c.SectionName, "name", c.Name,
		"siteNameTitle", "ご購入店", "siteName", "サンドボックスショップ "+t.shopCode,
		"shopOrderIdTitle", "ご購入店受注番号", "shopOrderId", t.shopOrderID,
		"descriptionText1", "この請求書はATODENEサンドボックスの見本です。",
		"descriptionText2", "お支払期限日までにお支払いください。",
		"descriptionText3", "コンビニエンスストア・銀行・郵便局でお支払いいただけます。",
		"descriptionText4", "お支払い後の領収書は大切に保管してください。",
		"descriptionText5", "ご不明な点はお問合せ番号をお知らせください。",
		"billServiceName", "ATODENEサンドボックス請求センター",
		"billServiceInfo1", "〒100-0000 東京都千代田区サンドボックス1-1",
		"billServiceInfo2", "TEL 0120-000-000",
		"billServiceInfo3", "受付時間 平日9:00～18:00",
		"billServiceInfo4", "https://sandbox.invalid/",
		"billState1", "ご請求書",
		"billFirstGreet1", "拝啓 平素は格別のお引き立てを賜り、",
		"billFirstGreet2", "厚く御礼申し上げます。",
		"billFirstGreet3", "下記の通りご請求申し上げます。",
		"billFirstGreet4", "敬具")
	for i := 1; i <= 10; i++ {
		add("expand"+strconv.Itoa(i), "")
	}
	add("billedAmountTitle", "ご請求金額", "billedAmount", amount, "billedFeeTax", tax,
		"billOrderdayTitle", "ご注文日", "shopOrderDate", jpDateString(c.ShopOrderDate),
		"billSendDateTitle", "請求書発行日", "billSendDate", jpDate(sendDate),
		"billDeadlineDateTitle", "お支払期限日", "billDeadlineDate", jpDate(deadline),
		"transactionIdTitle", "お問合せ番号", "transactionId", t.id,
		"billBankInfomation", "銀行振込の場合は下記口座へお振込みください。振込手数料はお客様のご負担となります。",
		"bankNameTitle", "銀行名", "bankName", "サンドボックス銀行", "bankCode", "9999",
		"branchNameTitle", "支店名", "branchName", "本店", "branchCode", "001",
		"bankAccountNumberTitle", "口座番号", "bankAccountKind", "（普通）", "bankAccountNumber", t.id[len(t.id)-7:],
		"bankAccountNameTitle", "口座名義", "bankAccountName", "ｻﾝﾄﾞﾎﾞｯｸｽｾｲｷｭｳｾﾝﾀｰ",
		"receiptBillDeadlineDate", jpDate(deadline), "receiptName", c.Name,
		"invoiceBarcode", barcode,
		"receiptCompanyTitle", "収納代行会社", "receiptCompany", "サンドボックス収納代行株式会社",
		"docketbilledAmount", amount,
		"docketCompanyName", c.CompanyName, "docketSectionName", c.SectionName, "docketName", c.Name,
		"docketTransactionIdTitle", "お問合せ番号", "docketTransactionId", t.id,
		"voucherCompanyName", c.CompanyName, "voucherSectionName", c.SectionName, "voucherCustomerFullName", c.Name,
		"voucherTransactionIdTitle", "お問合せ番号", "voucherTransactionId", t.id,
		"voucherBilledAmount", amount, "voucherBilledFeeTax", tax,
		"revenueStampRequired", "収入印紙不要",
		"goodsTitle", "商品名", "goodsAmountTitle", "数量", "goodsPriceTitle", "単価", "goodsSubtotalTitle", "小計")
	n = append(n, invoiceDetails(t.order.details))
	add("detailInfomation", "※表示金額はすべて税込です。",
		"expand11", "00100-0-"+t.id[len(t.id)-6:], "expand12", "ｻﾝﾄﾞﾎﾞｯｸｽｼｭｳﾉｳ",
		"expand13", ocrUpper(t.id, t.order.billed), "expand14", barcode,
		"expand15", firstRunes(c.Address, 30), "expand16", "*")
	for i := 17; i <= 20; i++ {
		add("expand"+strconv.Itoa(i), "")
	}
	return &xmlNode{Children: n}
}

func shipInvoiceDate(t *transaction) string {
	if t.shipment == nil {
		return ""
	}
	return t.shipment.invoiceDate
}

func invoiceDetails(rows []detailXML) xmlNode {
	details := xmlNode{XMLName: xml.Name{Local: "details"}}
	for _, r := range rows {
		price, _ := strconv.ParseInt(r.GoodsPrice, 10, 64)
		amount, _ := strconv.ParseInt(r.GoodsAmount, 10, 64)
		details.Children = append(details.Children, xmlNode{
			XMLName: xml.Name{Local: "detail"},
			Children: []xmlNode{
				leaf("goods", r.Goods),
				leaf("goodsAmount", r.GoodsAmount),
				leaf("goodsPrice", grouped(price)),
				leaf("goodsSubtotal", grouped(price*amount)),
				leaf("goodsExpand", ""),
			},
		})
	}
	return details
}

// yen prints an amount as the service's invoices did: 3155円, without separators.
func yen(n int64) string { return strconv.FormatInt(n, 10) + "円" }

// grouped prints n with thousands separators, as detail prices are: 1,200 or -1,200.
func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func jpDate(t time.Time) string {
	return fmt.Sprintf("%d年%d月%d日", t.Year(), int(t.Month()), t.Day())
}

// jpDateString reprints a yyyy/MM/dd date; the order passed the field rules, so it parses.
func jpDateString(s string) string {
	t, err := time.Parse("2006/01/02", s)
	if err != nil {
		return s
	}
	return jpDate(t)
}

func formatZip(z string) string {
	if len(z) == 7 {
		return z[:3] + "-" + z[3:]
	}
	return z
}

// splitAddress splits one address line into the invoice's address1 (30 characters) and address2
// (25): before and after the first digit, where the town ends and the block number begins, when
// that fits; otherwise at the 30th character.
func splitAddress(addr string) (string, string) {
	r := []rune(addr)
	cut := min(len(r), 30)
	for i, c := range r {
		if unicode.IsDigit(c) {
			if i > 0 && i <= 30 && len(r)-i <= 25 {
				cut = i
			}
			break
		}
	}
	return string(r[:cut]), firstRunes(string(r[cut:]), 25)
}

func firstRunes(s string, n int) string {
	r := []rune(s)
	return string(r[:min(len(r), n)])
}

// invoiceBarcode makes the 44 digits of a convenience-store barcode: a fixed prefix, the transaction
// ID, the deadline, the amount, padding, and a modulus-10 check digit.
func invoiceBarcode(txID string, amount int64, deadline time.Time) string {
	body := fmt.Sprintf("91999999%s%s%06d", txID, deadline.Format("060102"), amount)
	body += strings.Repeat("0", 43-len(body))
	return body + checkDigit(body)
}

// ocrUpper makes the 39-digit OCR-B upper line.
func ocrUpper(txID string, amount int64) string {
	body := fmt.Sprintf("0010%s%08d", txID, amount)
	body += strings.Repeat("0", 38-len(body))
	return body + checkDigit(body)
}

// checkDigit is the GS1 modulus-10 check digit (weights 3 and 1 from the right).
func checkDigit(digits string) string {
	sum := 0
	for i := range len(digits) {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 0 {
			d *= 3
		}
		sum += d
	}
	return strconv.Itoa((10 - sum%10) % 10)
}
