package atodene

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/testenv/golden"
)

func sampleOrder() Order {
	return Order{
		ShopOrderID: "100000123",
		OrderedAt:   time.Date(2026, 11, 26, 1, 14, 3, 0, time.UTC), // 10:14 in Japan
		Buyer: Person{
			Name: "加藤 太郎", NameKana: "カトウ タロウ", Zip: "150-0001",
			Address: "東京都渋谷区神宮前1-1-1", Phone: "03-1234-5678", Email: "taro@example.jp",
		},
		Items:        []Item{{Name: "<特選> 緑茶 & 煎茶", UnitPrice: 1200, Quantity: 2}},
		ShippingFee:  550,
		Fee:          205,
		Discount:     100,
		BilledAmount: 3055,
		Service:      ServiceSeparate,
		Browser:      Browser{HTTPHeader: "User-Agent: test", DeviceInfo: ""},
	}
}

// shipToManyItemsOrder is sampleOrder shipped to someone else, with 14 products (rolled up to 12
// lines) and the invoice enclosed.
func shipToManyItemsOrder() Order {
	many := sampleOrder()
	many.ShipTo = &Person{Name: "山田 花子", NameKana: "ヤマダ ハナコ", Zip: "5300001", Address: "大阪府大阪市北区梅田1-1", Company: "株式会社テスト", Department: "総務部", Phone: "0612345678"}
	many.Items = nil
	for i := range 14 {
		many.Items = append(many.Items, Item{Name: "商品" + string(rune('A'+i)), UnitPrice: int64(100 * (i + 1)), Quantity: 1})
	}
	many.BilledAmount = 10500 + 550 + 205 - 100
	many.Service = ServiceEnclosed
	return many
}

func newTestClient(t testing.TB, url string) *Client {
	t.Helper()
	c, err := New(Config{
		BaseURL:       url + "/api/",
		Credentials:   Credentials{ShopCode: "abc123456789", LinkPassword: "secret-pw1"},
		Timeout:       2 * time.Second,
		RetryInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// goldenServer answers every request with testdata/<response> and records the request body.
func goldenServer(t *testing.T, response string) (*httptest.Server, *[]byte, *string) {
	t.Helper()
	var body []byte
	var path string
	answer, err := os.ReadFile(filepath.Join("testdata", response))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		path = r.URL.Path
		_, _ = w.Write(answer)
	}))
	t.Cleanup(srv.Close)
	return srv, &body, &path
}

// mustCheck returns o checked, as the handlers pass it to Register and Modify.
func mustCheck(t testing.TB, o Order) Request {
	t.Helper()
	req, err := o.Check()
	if err != nil {
		t.Fatalf("the test order is invalid: %v", err)
	}
	return req
}

func TestGolden(t *testing.T) {
	order, many := mustCheck(t, sampleOrder()), mustCheck(t, shipToManyItemsOrder())

	tests := []struct {
		name     string // request golden file: testdata/<name>.request.xml
		path     string
		response string
		call     func(context.Context, *Client) (any, error)
		want     any
		wantErr  error
	}{
		{
			name: "register_ok", path: "/api/transaction.do", response: "register_ok.response.xml",
			call: func(ctx context.Context, c *Client) (any, error) { return c.Register(ctx, order) },
			want: Registration{TransactionID: "12345678901", Auto: DecisionOK},
		},
		{
			name: "register_ship_to_many_items", path: "/api/transaction.do", response: "register_review.response.xml",
			call: func(ctx context.Context, c *Client) (any, error) { return c.Register(ctx, many) },
			want: Registration{TransactionID: "12345678902", Auto: DecisionReview},
		},
		{
			name: "register_ng", path: "/api/transaction.do", response: "register_ng.response.xml",
			call: func(ctx context.Context, c *Client) (any, error) { return c.Register(ctx, order) },
			wantErr: &RejectedError{Op: "transaction.do", Errors: []ProviderError{
				{Point: "zip", Code: "er000001", Message: "郵便番号の形式が正しくありません。"},
				{Point: "kanaName", Code: "er000001", Message: "氏名（カナ）は全角カナで入力してください。"},
				{Point: "shopOrderId", Code: "er000101", Message: "既に登録済みの受注番号です。"},
			}},
		},
		{
			name: "getauthori", path: "/api/getauthori.do", response: "getauthori_hold.response.xml",
			call: func(ctx context.Context, c *Client) (any, error) { return c.GetAuthori(ctx, "12345678902") },
			want: Screening{TransactionID: "12345678902", Auto: DecisionReview, Manual: DecisionHold, Reasons: []string{"本人確認中", "住所確認中"}},
		},
		{
			name: "getauthori", path: "/api/getauthori.do", response: "getauthori_review.response.xml",
			call: func(ctx context.Context, c *Client) (any, error) { return c.GetAuthori(ctx, "12345678902") },
			want: Screening{TransactionID: "12345678902", Auto: DecisionReview, Manual: DecisionNone},
		},
		{
			name: "getauthori", path: "/api/getauthori.do", response: "getauthori_cancelled.response.xml",
			call:    func(ctx context.Context, c *Client) (any, error) { return c.GetAuthori(ctx, "12345678902") },
			wantErr: &RejectedError{Op: "getauthori.do", Errors: []ProviderError{{Point: "transactionId", Code: "er000033", Message: "該当の取引はキャンセル済みです。"}}},
		},
		{
			name: "shippingrequest_new", path: "/api/shippingrequest.do", response: "shippingrequest.response.xml",
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.ReportShipment(ctx, Shipment{Type: DeliveryNew, TransactionID: "12345678901", CarrierCode: "12", SlipNo: "1234-5678-9012", InvoiceDate: time.Date(2026, 11, 27, 0, 0, 0, 0, jst.Zone)})
			},
		},
		{
			name: "shippingrequest_change", path: "/api/shippingrequest.do", response: "shippingrequest_ng.response.xml",
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.ReportShipment(ctx, Shipment{Type: DeliveryChange, TransactionID: "12345678901", CarrierCode: "11", SlipNo: "987654321"})
			},
			wantErr: &RejectedError{Op: "shippingrequest.do", Errors: []ProviderError{
				{Point: "deliveryType", Code: "er000103", Message: "既に出荷報告済みです。"},
				{Point: "deliverySlipNo", Code: "er000001", Message: "配送伝票番号の形式が正しくありません。"},
			}},
		},
		{
			name: "shippingrequest_cancel", path: "/api/shippingrequest.do", response: "shippingrequest.response.xml",
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.ReportShipment(ctx, Shipment{Type: DeliveryCancel, TransactionID: "12345678901", CarrierCode: "12", SlipNo: "1234"})
			},
		},
		{
			name: "modifytransaction_change", path: "/api/modifytransaction.do", response: "modifytransaction_change.response.xml",
			call: func(ctx context.Context, c *Client) (any, error) { return c.Modify(ctx, "12345678901", order) },
			want: Change{TransactionID: "12345678901", Auto: DecisionNone},
		},
		{
			name: "modifytransaction_cancel", path: "/api/modifytransaction.do", response: "modifytransaction_cancel.response.xml",
			call: func(ctx context.Context, c *Client) (any, error) { return nil, c.Cancel(ctx, "12345678901") },
		},
		{
			name: "modifytransaction_cancel", path: "/api/modifytransaction.do", response: "modifytransaction_cancelled.response.xml",
			call:    func(ctx context.Context, c *Client) (any, error) { return nil, c.Cancel(ctx, "12345678901") },
			wantErr: ErrAlreadyCancelled,
		},
		{
			name: "getinvoicedata", path: "/api/getinvoicedata.do", response: "getinvoicedata.response.xml",
			call: func(ctx context.Context, c *Client) (any, error) { return c.InvoiceData(ctx, "12345678901") },
			want: Invoice{
				Fields: map[string]string{
					"zip": "150-0001", "address1": "東京都渋谷区神宮前", "address2": "1-1-1", "companyName": "", "sectionName": "",
					"name": "加藤 太郎", "siteNameTitle": "ご購入店", "siteName": "デモショップ", "shopOrderIdTitle": "ご購入店受注番号",
					"shopOrderId": "100000123", "billState1": "ご請求書", "billedAmountTitle": "ご請求金額", "billedAmount": "3155円",
					"billedFeeTax": "内消費税：286円", "billDeadlineDateTitle": "お支払期限日", "billDeadlineDate": "2026年12月10日",
					"transactionIdTitle": "お問合せ番号", "transactionId": "12345678901", "bankAccountKind": "（普通）",
					"invoiceBarcode": "91912345678901234567890123456789012345678901", "revenueStampRequired": "収入印紙不要", "expand16": "*",
				},
				Details: []map[string]string{
					{"goods": "<特選> 緑茶 & 煎茶", "goodsAmount": "2", "goodsPrice": "1,200", "goodsSubtotal": "2,400", "goodsExpand": ""},
					{"goods": "送料", "goodsAmount": "1", "goodsPrice": "550", "goodsSubtotal": "550", "goodsExpand": ""},
				},
			},
		},
		{
			name: "getinvoicedata", path: "/api/getinvoicedata.do", response: "getinvoicedata_ng.response.xml",
			call: func(ctx context.Context, c *Client) (any, error) { return c.InvoiceData(ctx, "12345678901") },
			wantErr: &RejectedError{Op: "getinvoicedata.do", Errors: []ProviderError{
				{Point: "service", Code: "er000201", Message: "同梱ではない取引です。"},
				{Point: "linkPassword", Code: "er000003", Message: "連携パスワードが正しくありません。"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.response, func(t *testing.T) {
			srv, body, path := goldenServer(t, tt.response)
			got, err := tt.call(context.Background(), newTestClient(t, srv.URL))
			golden.Check(t, tt.name+".request.xml", *body)
			if *path != tt.path {
				t.Errorf("path = %s, want %s", *path, tt.path)
			}
			switch want := tt.wantErr.(type) {
			case nil:
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
					t.Errorf("result:\n got %#v\nwant %#v", got, tt.want)
				}
			case *RejectedError:
				var re *RejectedError
				if !errors.As(err, &re) || !reflect.DeepEqual(re, want) {
					t.Errorf("error = %#v, want %#v", err, want)
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("error = %v, want %v", err, want)
				}
			}
		})
	}
}

// The hand-written request writer escapes text exactly as encoding/xml does.
func FuzzAppendEscaped(f *testing.F) {
	for _, s := range []string{"", "加藤 太郎", `<特選> "緑茶" & '煎茶'`, "a\tb\nc\rd", "\x00\x1f\x7f", "\xff\xfe", "\uFFFE\uFFFD\U0010FFFF", "\ufffd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want bytes.Buffer
		_ = xml.EscapeText(&want, []byte(s))
		if got := appendEscaped([]byte("x"), s); string(got) != "x"+want.String() {
			t.Fatalf("appendEscaped(%q) = %q, xml.EscapeText gives %q", s, got[1:], want.String())
		}
	})
}
