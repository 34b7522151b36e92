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
	maxGoodsPrice   = 999999 // goodsPrice is 6 digits and a sign (docs/protocol.md#field-limits)
)

// BuildDetails turns an order into detail lines the way ATODENE accepts them: at most 12 product
// lines, then shipping, fee and 割引等 lines where they are not zero. The 割引等 line carries the
// discount and any other balance, so Σ(Price × Amount) always equals BilledAmount; at most 15
// lines result.
//
// With more than 12 products, or fewer lines to spare, the last products are rolled up into
// その他ご購入商品 lines at quantity 1: as many lines as their sum needs for each Price to stay within
// goodsPrice's ±999999 (their sum split evenly), more products rolled up when those lines would
// not fit (docs/atodene.md#detail-lines-builddetails). An amount line (shipping, fee, balance)
// over 999999 is split the same way. An order whose amounts cannot be written in 15 such lines
// (far beyond any order the event contract accepts) gets the reference client's lines, one of
// them out of range, and Check refuses it.
func BuildDetails(o Order) []Detail {
	lines, _ := buildDetails(o)
	return lines
}

// buildDetails is BuildDetails that also reports whether its roll-up and amount lines fit
// goodsPrice. A product's own line is the product as it is: one whose unit price is out of range
// (the event contract allows none) is named by Check as that line.
func buildDetails(o Order) (lines []Detail, fits bool) {
	var subtotal int64
	for _, it := range o.Items {
		subtotal += it.UnitPrice * it.Quantity
	}
	balance := o.BilledAmount - (subtotal + o.ShippingFee + o.Fee)
	var extras []Detail
	extras = appendSplit(extras, LabelShipping, o.ShippingFee, splitCount(o.ShippingFee))
	extras = appendSplit(extras, LabelFee, o.Fee, splitCount(o.Fee))
	extras = appendSplit(extras, LabelDiscount, balance, splitCount(balance))
	if budget := min(maxProductLines, maxDetailLines-len(extras)); budget > 0 {
		if products, ok := productLines(o.Items, budget); ok {
			return append(products, extras...), true
		}
	}
	return referenceLines(o, subtotal, balance), false
}

// productLines returns at most budget lines for items: each item as it is, or, when they are more
// than budget or their roll-up needs more lines, the first k as they are and the rest as
// その他ご購入商品 lines, k as large as fits. ok is false when not even k = 0 fits.
func productLines(items []Item, budget int) (lines []Detail, ok bool) {
	k := min(len(items), budget)
	var rolled int64 // Σ of items[k:]
	for _, it := range items[k:] {
		rolled += it.UnitPrice * it.Quantity
	}
	for {
		n := 0 // the roll-up lines items[k:] needs
		if k < len(items) {
			n = max(1, splitCount(rolled))
		}
		if k+n <= budget {
			lines = make([]Detail, 0, k+n+3)
			for _, it := range items[:k] {
				lines = append(lines, Detail{Goods: it.Name, Price: it.UnitPrice, Amount: it.Quantity})
			}
			return appendSplit(lines, LabelOtherItems, rolled, n), true
		}
		if k == 0 {
			return nil, false
		}
		k--
		rolled += items[k].UnitPrice * items[k].Quantity
	}
}

// splitCount is how many lines of at most ±maxGoodsPrice an amount needs: 0 for 0.
func splitCount(v int64) int {
	if v < 0 {
		v = -v
	}
	return int((v + maxGoodsPrice - 1) / maxGoodsPrice)
}

// appendSplit appends n lines labelled label at quantity 1 whose prices add up to v, as equal as
// integers allow (1,000,001 over two lines is 500,001 and 500,000). n = 0 appends nothing.
func appendSplit(lines []Detail, label string, v int64, n int) []Detail {
	if n <= 0 {
		return lines
	}
	q, r := v/int64(n), v%int64(n) // r has v's sign
	for i := range int64(n) {
		price := q
		if i < r {
			price++
		} else if i < -r {
			price--
		}
		lines = append(lines, Detail{Goods: label, Price: price, Amount: 1})
	}
	return lines
}

// referenceLines are the lines of the reference client (docs/protocol.md#detail-lines): 11
// products, one その他ご購入商品 line for the rest, one line each for shipping, fee and balance. They
// are what BuildDetails returns for an order it cannot fit, so that Σ and the 15 lines hold and
// Check names the line out of range.
func referenceLines(o Order, subtotal, balance int64) []Detail {
	lines := make([]Detail, 0, maxDetailLines)
	if len(o.Items) <= maxProductLines {
		for _, it := range o.Items {
			lines = append(lines, Detail{Goods: it.Name, Price: it.UnitPrice, Amount: it.Quantity})
		}
	} else {
		rest := subtotal
		for _, it := range o.Items[:maxProductLines-1] {
			lines = append(lines, Detail{Goods: it.Name, Price: it.UnitPrice, Amount: it.Quantity})
			rest -= it.UnitPrice * it.Quantity
		}
		lines = append(lines, Detail{Goods: LabelOtherItems, Price: rest, Amount: 1})
	}
	for _, x := range []struct {
		label string
		v     int64
	}{{LabelShipping, o.ShippingFee}, {LabelFee, o.Fee}, {LabelDiscount, balance}} {
		lines = appendSplit(lines, x.label, x.v, min(1, splitCount(x.v)))
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

// detailsXML is the order's detail lines; fits is false when BuildDetails could not keep every
// line within goodsPrice's range.
func (o Order) detailsXML() (d detailsXML, fits bool) {
	lines, fits := buildDetails(o)
	d = detailsXML{Detail: make([]detailXML, len(lines))}
	for i, l := range lines {
		d.Detail[i] = detailXML{
			Goods:       l.Goods,
			GoodsPrice:  strconv.FormatInt(l.Price, 10),
			GoodsAmount: strconv.FormatInt(l.Amount, 10),
			Expand2:     strconv.Itoa(i + 1),
		}
	}
	return d, fits
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
