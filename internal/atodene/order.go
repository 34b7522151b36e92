package atodene

import (
	"fmt"
	"strconv"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/jst"
)

// Order is what a registration or a change sends: the buyer, where the goods go, the lines and
// the amounts. Amounts are integer yen, tax included.
type Order struct {
	ShopOrderID  string    // the shop's order number (shopOrderId), 1-50 of [A-Za-z0-9_-]
	OrderedAt    time.Time // sent as the date in Japan (shopOrderDate)
	Buyer        Person
	ShipTo       *Person // nil ships to the buyer
	Items        []Item
	ShippingFee  int64
	Fee          int64 // the handling fee, after the shop's fee table
	Discount     int64 // points, coupons and the like; a positive number
	BilledAmount int64
	Service      string  // ServiceSeparate or ServiceEnclosed
	Browser      Browser // registration only
}

// Person is a buyer or a consignee.
type Person struct {
	Name       string
	NameKana   string
	Zip        string
	Address    string
	Company    string
	Department string
	Phone      string
	Email      string // buyer only
}

// Item is one product line of an order.
type Item struct {
	Name      string
	UnitPrice int64
	Quantity  int64
}

// Browser is the shopper's browser data for fraud screening (browserInfo).
type Browser struct {
	HTTPHeader string
	DeviceInfo string
}

// Detail is one detail line as sent to ATODENE.
type Detail struct {
	Goods  string
	Price  int64
	Amount int64
}

// Labels of the lines that BuildDetails adds after the products.
const (
	LabelOtherItems = "その他ご購入商品"
	LabelShipping   = "送料"
	LabelFee        = "後払い手数料"
	LabelDiscount   = "割引等"
)

const (
	maxDetailLines  = 15
	maxProductLines = 12
)

// BuildDetails turns an order into detail lines the way ATODENE accepts them: at most 12 product
// lines (the 12th rolls up the 12th and later products as その他ご購入商品), then shipping, fee and
// 割引等 lines where they are not zero. The 割引等 line carries the discount and any other balance,
// so Σ(Price × Amount) always equals BilledAmount; at most 15 lines result.
func BuildDetails(o Order) []Detail {
	lines := make([]Detail, 0, min(len(o.Items), maxProductLines)+3)
	var subtotal int64
	for i, it := range o.Items {
		sum := it.UnitPrice * it.Quantity
		subtotal += sum
		switch {
		case len(o.Items) <= maxProductLines || i < maxProductLines-1:
			lines = append(lines, Detail{Goods: it.Name, Price: it.UnitPrice, Amount: it.Quantity})
		case i == maxProductLines-1:
			lines = append(lines, Detail{Goods: LabelOtherItems, Price: sum, Amount: 1})
		default:
			lines[maxProductLines-1].Price += sum
		}
	}
	if o.ShippingFee != 0 {
		lines = append(lines, Detail{Goods: LabelShipping, Price: o.ShippingFee, Amount: 1})
	}
	if o.Fee != 0 {
		lines = append(lines, Detail{Goods: LabelFee, Price: o.Fee, Amount: 1})
	}
	if balance := o.BilledAmount - (subtotal + o.ShippingFee + o.Fee); balance != 0 {
		lines = append(lines, Detail{Goods: LabelDiscount, Price: balance, Amount: 1})
	}
	return lines
}

func (o Order) customerXML() customerXML {
	return customerXML{
		ShopOrderID:   o.ShopOrderID,
		ShopOrderDate: o.OrderedAt.In(jst.Zone).Format("2006/01/02"),
		Name:          o.Buyer.Name,
		KanaName:      o.Buyer.NameKana,
		Zip:           o.Buyer.Zip,
		Address:       o.Buyer.Address,
		CompanyName:   o.Buyer.Company,
		SectionName:   o.Buyer.Department,
		Tel:           o.Buyer.Phone,
		Email:         o.Buyer.Email,
		BilledAmount:  strconv.FormatInt(o.BilledAmount, 10),
		Service:       o.Service,
	}
}

func (o Order) shipXML() shipXML {
	p := o.Buyer
	if o.ShipTo != nil {
		p = *o.ShipTo
	}
	return shipXML{
		ShipName:        p.Name,
		ShipKananame:    p.NameKana,
		ShipZip:         p.Zip,
		ShipAddress:     p.Address,
		ShipCompanyName: p.Company,
		ShipSectionName: p.Department,
		ShipTel:         p.Phone,
	}
}

func (o Order) detailsXML() detailsXML {
	lines := BuildDetails(o)
	d := detailsXML{Detail: make([]detailXML, len(lines))}
	for i, l := range lines {
		d.Detail[i] = detailXML{
			Goods:       l.Goods,
			GoodsPrice:  strconv.FormatInt(l.Price, 10),
			GoodsAmount: strconv.FormatInt(l.Amount, 10),
			Expand2:     strconv.Itoa(i + 1),
		}
	}
	return d
}

// fieldChecker collects field-rule failures in request order.
type fieldChecker struct{ errs []FieldError }

func (c *fieldChecker) check(prefix, field, value string) {
	if err := CheckField(field, value); err != nil {
		fe := *err.(*FieldError)
		fe.Field = prefix + fe.Field
		c.errs = append(c.errs, fe)
	}
}

func (c *fieldChecker) customer(x customerXML) {
	for _, f := range [...]struct{ name, value string }{
		{"shopOrderId", x.ShopOrderID}, {"shopOrderDate", x.ShopOrderDate}, {"name", x.Name},
		{"kanaName", x.KanaName}, {"zip", x.Zip}, {"address", x.Address}, {"companyName", x.CompanyName},
		{"sectionName", x.SectionName}, {"tel", x.Tel}, {"email", x.Email},
		{"billedAmount", x.BilledAmount}, {"expand1", x.Expand1}, {"service", x.Service},
	} {
		c.check("", f.name, f.value)
	}
}

func (c *fieldChecker) ship(x shipXML) {
	for _, f := range [...]struct{ name, value string }{
		{"shipName", x.ShipName}, {"shipKananame", x.ShipKananame}, {"shipZip", x.ShipZip},
		{"shipAddress", x.ShipAddress}, {"shipCompanyName", x.ShipCompanyName},
		{"shipSectionName", x.ShipSectionName}, {"shipTel", x.ShipTel},
	} {
		c.check("", f.name, f.value)
	}
}

func (c *fieldChecker) details(x detailsXML) {
	if len(x.Detail) == 0 {
		c.errs = append(c.errs, FieldError{Field: "details", Reason: "has no lines"})
	}
	if len(x.Detail) > maxDetailLines {
		c.errs = append(c.errs, FieldError{Field: "details", Reason: fmt.Sprintf("has %d lines, more than %d", len(x.Detail), maxDetailLines)})
	}
	for i, d := range x.Detail {
		prefix := fmt.Sprintf("detail[%d].", i+1)
		c.check(prefix, "goods", d.Goods)
		c.check(prefix, "goodsPrice", d.GoodsPrice)
		c.check(prefix, "goodsAmount", d.GoodsAmount)
	}
}

func (c *fieldChecker) browser(x browserInfoXML) {
	c.check("", "httpHeader", x.HTTPHeader)
	c.check("", "deviceInfo", x.DeviceInfo)
}

func (c *fieldChecker) err(op string) error {
	if len(c.errs) == 0 {
		return nil
	}
	return &InvalidRequestError{Op: op, Fields: c.errs}
}
