package sandbox

import (
	"errors"
	"fmt"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
)

// The sandbox's error codes. The real service's codes are unknown apart from er000033
// (docs/protocol.md#error-codes), so these are invented, in the real format: "er" followed by 6
// digits.
const (
	CodeFieldFormat          = "er000001" // a field is missing or breaks the field rules (atodene.CheckField)
	CodeUnknownTx            = "er000002" // no such transactionId for this shop
	CodeAuth                 = "er000003" // linkInfo rejected: shopCode, linkId or linkPassword
	CodeRequest              = "er000004" // the body is not a <request> XML document
	CodeMissingBlock         = "er000006" // a required block (customer, ship, details) is absent
	CodeDetailRows           = "er000010" // no detail row, or more than 15
	CodeAmountMismatch       = "er000011" // Σ(goodsPrice × goodsAmount) differs from billedAmount
	CodeCancelled            = "er000033" // the transaction is cancelled (the one real code)
	CodeDuplicateOrder       = "er000101" // shopOrderId already has a live transaction (registration, or re-screening change)
	CodeAuthorizationExpired = "er000102" // the authorization is older than Config.AuthorizationLifetime
	CodeNotEnclosed          = "er000201" // invoice data asked for a transaction whose service is not 3
	CodeInvoiceNotOK         = "er000202" // invoice data asked for a transaction whose decision is not OK
	CodeShipNotOK            = "er000301" // shipment report for a transaction whose decision is not OK
	CodeAlreadyShipped       = "er000302" // a second deliveryType 1 for the same transaction
	CodeNoShipment           = "er000303" // deliveryType 2 or 3 without a shipment report to change
	CodeUnknownCarrier       = "er000304" // deliveryCompanyCode not one of docs/protocol.md#carrier-codes
)

// ErrorCode describes one of the sandbox's error codes.
type ErrorCode struct {
	Code    string // er + 6 digits
	Point   string // the errorPoint it comes with; "(field)" when it names the offending element
	Meaning string
}

// ErrorCodes lists every code the sandbox returns, for documentation and for tests that want to match
// on them.
var ErrorCodes = []ErrorCode{
	{CodeFieldFormat, "(field)", "a field is missing or breaks the field rules; also an unknown updateTypeFlag or deliveryType"},
	{CodeUnknownTx, "transactionId", "no such transaction for this shop"},
	{CodeAuth, "shopCode | linkId | linkPassword", "linkInfo does not match a configured shop"},
	{CodeRequest, "request", "the body is not a well-formed UTF-8 <request> document"},
	{CodeMissingBlock, "customer | ship | details", "a required block is absent"},
	{CodeDetailRows, "details", "no detail row, or more than 15"},
	{CodeAmountMismatch, "billedAmount", "Σ(goodsPrice × goodsAmount) differs from billedAmount"},
	{CodeCancelled, "transactionId", "the transaction is cancelled"},
	{CodeDuplicateOrder, "shopOrderId", "the shopOrderId already has a live (not cancelled, not NG) transaction: a registration, or a change that would re-screen another of its transactions"},
	{CodeAuthorizationExpired, "transactionId", "the authorization has expired (Config.AuthorizationLifetime): no shipment report or change; cancel and register again"},
	{CodeNotEnclosed, "service", "invoice data exists only for enclosed invoices (service 3)"},
	{CodeInvoiceNotOK, "transactionId", "invoice data exists only once the decision is OK"},
	{CodeShipNotOK, "transactionId", "a shipment can be reported only once the decision is OK"},
	{CodeAlreadyShipped, "deliveryType", "the shipment is already reported; send deliveryType 2 to change it"},
	{CodeNoShipment, "deliveryType", "there is no shipment report to change or cancel"},
	{CodeUnknownCarrier, "deliveryCompanyCode", "the carrier code is not one of the 17 carriers (docs/protocol.md#carrier-codes)"},
}

// apiError is one errors/error element of an NG response.
type apiError struct {
	Point   string
	Code    string
	Message string
}

// fieldLabels are the Japanese names used in error messages, as the real service's messages were
// Japanese (docs/protocol.md#the-response-envelope).
var fieldLabels = map[string]string{
	"shopOrderId": "ご購入店受注番号", "shopOrderDate": "購入者注文日", "name": "氏名（漢字）",
	"kanaName": "氏名（カナ）", "zip": "郵便番号", "address": "住所", "companyName": "会社名",
	"sectionName": "部署名", "tel": "電話番号", "email": "メールアドレス", "billedAmount": "顧客請求金額",
	"expand1": "拡張審査パラメータ", "service": "請求書送付方法",
	"shipName": "配送先氏名（漢字）", "shipKananame": "配送先氏名（カナ）", "shipZip": "配送先郵便番号",
	"shipAddress": "配送先住所", "shipCompanyName": "配送先会社名", "shipSectionName": "配送先部署名",
	"shipTel": "配送先電話番号", "goods": "明細名", "goodsPrice": "単価", "goodsAmount": "数量",
	"httpHeader": "HTTPヘッダー情報", "deviceInfo": "デバイス情報", "transactionId": "お問い合わせ番号",
	"deliveryType": "出荷報告種別", "deliveryCompanyCode": "運送会社コード", "deliverySlipNo": "配送伝票番号",
	"invoiceDate": "請求書発行日", "updateTypeFlag": "更新種別フラグ",
}

// checkField runs the shared field rules on one element and turns a failure into an NG error.
// row is the 1-based detail row, or 0 outside details.
func checkField(name, value string, row int) (apiError, bool) {
	err := atodene.CheckField(name, value)
	if err == nil {
		return apiError{}, true
	}
	var fe *atodene.FieldError
	if errors.As(err, &fe) {
		name = fe.Field
	}
	return fieldError(name, value, row), false
}

func fieldError(name, value string, row int) apiError {
	label := fieldLabels[name]
	if label == "" {
		label = name
	}
	msg := label + "の形式が正しくありません。"
	if value == "" {
		msg = label + "が入力されていません。"
	}
	if row > 0 {
		msg = fmt.Sprintf("明細%d行目：%s", row, msg)
	}
	return apiError{Point: name, Code: CodeFieldFormat, Message: msg}
}

var (
	errRequest       = apiError{"request", CodeRequest, "リクエストの形式が正しくありません。"}
	errUnknownShop   = apiError{"shopCode", CodeAuth, "加盟店コードが正しくありません。"}
	errWrongLinkID   = apiError{"linkId", CodeAuth, "接続先特定IDが正しくありません。"}
	errWrongPassword = apiError{"linkPassword", CodeAuth, "連携パスワードが正しくありません。"}
	errUnknownTx     = apiError{"transactionId", CodeUnknownTx, "該当の取引が存在しません。"}
	errCancelled     = apiError{"transactionId", CodeCancelled, "該当の取引はキャンセル済みです。"}
	errDuplicate     = apiError{"shopOrderId", CodeDuplicateOrder, "既に登録済みの受注番号です。"}
	errExpired       = apiError{"transactionId", CodeAuthorizationExpired, "与信の有効期限が切れています。再度与信を取得してください。"}
	errNoDetails     = apiError{"details", CodeDetailRows, "明細が1行もありません。"}
	errTooManyRows   = apiError{"details", CodeDetailRows, "明細は15行までです。"}
	errSumMismatch   = apiError{"billedAmount", CodeAmountMismatch, "明細の合計金額と顧客請求金額が一致しません。"}
	errNotEnclosed   = apiError{"service", CodeNotEnclosed, "同梱ではない取引です。"}
	errInvoiceNotOK  = apiError{"transactionId", CodeInvoiceNotOK, "与信審査結果がOKではない取引です。"}
	errShipNotOK     = apiError{"transactionId", CodeShipNotOK, "与信審査結果がOKではないため出荷報告できません。"}
	errShipped       = apiError{"deliveryType", CodeAlreadyShipped, "既に出荷報告済みです。"}
	errNoShipment    = apiError{"deliveryType", CodeNoShipment, "出荷報告が登録されていません。"}
	errCarrier       = apiError{"deliveryCompanyCode", CodeUnknownCarrier, "運送会社コードが正しくありません。"}
)

func missingBlock(name, label string) apiError {
	return apiError{name, CodeMissingBlock, label + "がありません。"}
}
