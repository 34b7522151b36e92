package sandbox

import (
	"crypto/subtle"
	"slices"
	"strconv"
)

// authenticate finds the shop named by linkInfo. The three checks run in order and the first failure
// is the only error, since nothing else in a request from an unknown party is worth reporting.
func (s *Server) authenticate(li linkInfoXML) (Shop, *apiError) {
	shop, ok := s.shops[li.ShopCode]
	switch {
	case !ok:
		return Shop{}, &errUnknownShop
	case li.LinkID != shop.LinkID:
		return Shop{}, &errWrongLinkID
	case subtle.ConstantTimeCompare([]byte(li.LinkPassword), []byte(shop.LinkPassword)) != 1:
		return Shop{}, &errWrongPassword
	}
	return shop, nil
}

// field is one element to run through the field rules.
type field struct{ name, value string }

func checkFields(fields []field, row int) []apiError {
	var errs []apiError
	for _, f := range fields {
		if e, ok := checkField(f.name, f.value, row); !ok {
			errs = append(errs, e)
		}
	}
	return errs
}

func (b *browserInfoXML) fields() []field {
	return []field{{"httpHeader", b.HTTPHeader}, {"deviceInfo", b.DeviceInfo}}
}

func (c *customerXML) fields() []field {
	return []field{
		{"shopOrderId", c.ShopOrderID}, {"shopOrderDate", c.ShopOrderDate}, {"name", c.Name},
		{"kanaName", c.KanaName}, {"zip", c.Zip}, {"address", c.Address}, {"companyName", c.CompanyName},
		{"sectionName", c.SectionName}, {"tel", c.Tel}, {"email", c.Email}, {"billedAmount", c.BilledAmount},
		{"expand1", c.Expand1}, {"service", c.Service},
	}
}

func (sh *shipXML) fields() []field {
	return []field{
		{"shipName", sh.ShipName}, {"shipKananame", sh.ShipKananame}, {"shipZip", sh.ShipZip},
		{"shipAddress", sh.ShipAddress}, {"shipCompanyName", sh.ShipCompanyName},
		{"shipSectionName", sh.ShipSectionName}, {"shipTel", sh.ShipTel},
	}
}

func (d *detailXML) fields() []field {
	return []field{
		{"goods", d.Goods}, {"goodsPrice", d.GoodsPrice}, {"goodsAmount", d.GoodsAmount},
		{"expand2", d.Expand2}, {"expand3", d.Expand3}, {"expand4", d.Expand4},
	}
}

// checkBrowser validates the optional browserInfo block; clients that omit it are accepted.
func checkBrowser(b *browserInfoXML) []apiError {
	if b == nil {
		return nil
	}
	return checkFields(b.fields(), 0)
}

// checkOrder validates the customer, ship and details blocks of a registration or a change and
// reports every failure together, as the service did (docs/protocol.md#the-response-envelope).
func checkOrder(c *customerXML, sh *shipXML, d *detailsXML) (order, []apiError) {
	var errs []apiError
	var o order
	if c == nil {
		errs = append(errs, missingBlock("customer", "購入者情報"))
	} else {
		o.customer = *c
		errs = append(errs, checkFields(c.fields(), 0)...)
	}
	if sh == nil {
		errs = append(errs, missingBlock("ship", "配送先情報"))
	} else {
		o.ship = *sh
		errs = append(errs, checkFields(sh.fields(), 0)...)
	}
	if d == nil {
		errs = append(errs, missingBlock("details", "明細詳細情報"))
	} else {
		o.details = d.Detail
		errs = append(errs, checkDetails(d.Detail)...)
	}
	// The sum is checked whenever the amounts themselves are valid, so that a wrong sum is reported
	// together with unrelated field errors.
	if c != nil && d != nil && !hasPoint(errs, "billedAmount", "goodsPrice", "goodsAmount") {
		o.billed, _ = strconv.ParseInt(o.customer.BilledAmount, 10, 64)
		if sumDetails(o.details) != o.billed {
			errs = append(errs, errSumMismatch)
		}
	}
	return o, errs
}

func hasPoint(errs []apiError, points ...string) bool {
	for _, e := range errs {
		if slices.Contains(points, e.Point) {
			return true
		}
	}
	return false
}

func checkDetails(rows []detailXML) []apiError {
	var errs []apiError
	for i := range rows {
		errs = append(errs, checkFields(rows[i].fields(), i+1)...)
	}
	switch {
	case len(rows) == 0:
		errs = append(errs, errNoDetails)
	case len(rows) > maxDetailRows:
		errs = append(errs, errTooManyRows)
	}
	return errs
}

// maxDetailRows is the line cap of docs/protocol.md#detail-lines.
const maxDetailRows = 15

// sumDetails is Σ(goodsPrice × goodsAmount); the rows have passed the field rules, so they parse.
func sumDetails(rows []detailXML) int64 {
	var sum int64
	for _, r := range rows {
		price, _ := strconv.ParseInt(r.GoodsPrice, 10, 64)
		amount, _ := strconv.ParseInt(r.GoodsAmount, 10, 64)
		sum += price * amount
	}
	return sum
}
