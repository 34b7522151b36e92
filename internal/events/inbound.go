package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/normalize"
)

// Order is the data of order.created and order.updated
// (docs/events.md#ordercreated-and-orderupdated-eventsdecodeorder-ordervalidate).
type Order struct {
	ShopID          string  `json:"shop_id"`
	OrderID         string  `json:"order_id"`
	OrderedAt       string  `json:"ordered_at"`
	Buyer           *Person `json:"buyer"`
	ShipTo          *Person `json:"ship_to"`
	Items           []Item  `json:"items"`
	ShippingFee     int64   `json:"shipping_fee"`
	Fee             int64   `json:"fee"`
	Discount        int64   `json:"discount"`
	BilledAmount    *int64  `json:"billed_amount"`
	InvoiceDelivery string  `json:"invoice_delivery,omitempty"`
	Browser         Browser `json:"browser"`
	// Normalized lists the values DecodeOrder put into ATODENE's form (docs/events.md#normalisation), with the
	// form they are sent in. It is not part of the event.
	Normalized []Normalized `json:"-"`
}

// Person is a buyer or a consignee.
type Person struct {
	Name       string `json:"name"`
	NameKana   string `json:"name_kana"`
	Zip        string `json:"zip"`
	Address    string `json:"address"`
	Phone      string `json:"phone"`
	Email      string `json:"email,omitempty"`
	Company    string `json:"company,omitempty"`
	Department string `json:"department,omitempty"`
}

// Item is one product of an order.
type Item struct {
	Name      string `json:"name"`
	UnitPrice int64  `json:"unit_price"`
	Quantity  int64  `json:"quantity"`
}

// Browser is the shopper's browser data, passed to ATODENE's fraud screening.
type Browser struct {
	HTTPHeader string `json:"http_header"`
	DeviceInfo string `json:"device_info"`
}

// Invoice delivery values.
const (
	DeliverySeparate = "separate" // 別送
	DeliveryEnclosed = "enclosed" // 同梱
)

// Cancel is the data of order.cancelled.
type Cancel struct {
	ShopID  string `json:"shop_id"`
	OrderID string `json:"order_id"`
	Reason  string `json:"reason,omitempty"`
}

// Tracking is the data of order.tracking_entered.
type Tracking struct {
	ShopID         string `json:"shop_id"`
	OrderID        string `json:"order_id"`
	Carrier        string `json:"carrier"`
	TrackingNumber string `json:"tracking_number"`
	InvoiceDate    string `json:"invoice_date,omitempty"`
}

// InvoiceRequest is the data of order.invoice_requested.
type InvoiceRequest struct {
	ShopID  string `json:"shop_id"`
	OrderID string `json:"order_id"`
}

// RecheckRequest is the data of order.recheck_requested (与信結果確認): an operator asks for the
// screening result of an order under review now, outside the re-check schedule.
type RecheckRequest struct {
	ShopID   string `json:"shop_id"`
	OrderID  string `json:"order_id"`
	Operator string `json:"operator"`
}

// ResolveRequest is the data of order.resolve_requested: an operator settles an order in the
// unknown state, with the transaction ATODENE holds for it (TransactionID) or by saying ATODENE
// holds none (NotRegistered). Exactly one of the two is given.
type ResolveRequest struct {
	ShopID        string `json:"shop_id"`
	OrderID       string `json:"order_id"`
	Operator      string `json:"operator"`
	TransactionID string `json:"transaction_id,omitempty"`
	NotRegistered bool   `json:"not_registered,omitempty"`
}

// MaxOperatorLen is the limit of an operator event's operator, in characters: a staff identifier
// (a login name), recorded in the order's history.
const MaxOperatorLen = 64

// Carriers maps the carrier names of docs/events.md#ordertracking_entered-eventsdecodetracking to
// ATODENE's codes.
var Carriers = map[string]string{
	"sagawa": "11", "yamato": "12", "nittsu": "13", "seino": "14", "japanpost_registered": "15",
	"yupack": "16", "fukuyama": "18", "meitetsu": "21", "toll_express": "26", "ecohai": "27",
	"tonami": "29", "seino_super_express": "30",
}

// CarrierCodes are ATODENE's carrier codes (docs/protocol.md#carrier-codes), accepted raw as well
// as by name.
var CarrierCodes = map[string]bool{
	"11": true, "12": true, "13": true, "14": true, "15": true, "16": true, "18": true, "20": true, "21": true,
	"23": true, "26": true, "27": true, "28": true, "29": true, "30": true, "31": true, "32": true,
}

// CarrierCode returns ATODENE's code for a carrier name or raw code.
func CarrierCode(carrier string) (string, bool) {
	if code, ok := Carriers[carrier]; ok {
		return code, true
	}
	return carrier, CarrierCodes[carrier]
}

var (
	orderIDPattern  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,50}$`)
	trackingPattern = regexp.MustCompile(`^[0-9-]{5,20}$`)
)

// ValidOrderID reports whether id is a valid order ID: 1–50 of [A-Za-z0-9_-] (docs/events.md#inbound-payloads).
func ValidOrderID(id string) bool { return orderIDPattern.MatchString(id) }

// OrderRef returns the order an event is about, for logs.
func (o Order) OrderRef() string { return o.OrderID }

// OrderRef returns the order an event is about, for logs.
func (c Cancel) OrderRef() string { return c.OrderID }

// OrderRef returns the order an event is about, for logs.
func (t Tracking) OrderRef() string { return t.OrderID }

// OrderRef returns the order an event is about, for logs.
func (r InvoiceRequest) OrderRef() string { return r.OrderID }

// OrderRef returns the order an event is about, for logs.
func (r RecheckRequest) OrderRef() string { return r.OrderID }

// OrderRef returns the order an event is about, for logs.
func (r ResolveRequest) OrderRef() string { return r.OrderID }

// RequestedBy returns the operator who asked, for the order's history.
func (r RecheckRequest) RequestedBy() string { return r.Operator }

// RequestedBy returns the operator who asked, for the order's history.
func (r ResolveRequest) RequestedBy() string { return r.Operator }

// DecodeOrder decodes order.created / order.updated data for the shop of the subject, puts its
// values into ATODENE's form where their meaning is unambiguous (Normalize), and validates it.
func DecodeOrder(env Envelope, shop string) (Order, error) {
	var o Order
	if err := decodeData(env.Data, &o); err != nil {
		return o, indexItemPath(env.Data, err)
	}
	o.Normalize()
	return o, o.Validate(shop)
}

// DecodeCreated decodes order.created data as DecodeOrder does, and refuses an order with nothing
// to bill: billed_amount 0 is invalid for a new order, while an order.updated that brings an order
// to 0 cancels its transaction (docs/events.md#ordercreated-and-orderupdated-eventsdecodeorder-ordervalidate).
func DecodeCreated(env Envelope, shop string) (Order, error) {
	o, err := DecodeOrder(env, shop)
	if err == nil && *o.BilledAmount == 0 {
		err = &InvalidError{Problems: []Problem{{Field: "billed_amount", Reason: "is 0: a new order with nothing to bill is not registered"}}}
	}
	return o, err
}

// Limits of the texts that are cut rather than refused (docs/protocol.md#field-limits): item names
// are display text on the invoice; browser data is screening input that EC-CUBE cuts to 1000
// characters.
const (
	maxItemName   = 150
	maxBrowserLen = 1000
)

// Normalize puts the order's values into the form ATODENE takes where their meaning is
// unambiguous (docs/events.md#normalisation, package normalize): full-width digits and dashes, a leading 〒 and
// +81 numbers in postal codes and phones, half-width katakana and hiragana in kana names, Unicode
// NFC in text; item names over 150 characters and browser data over 1000 are cut; a lower-case 't'
// or 'z' of ordered_at (RFC 3339 §5.6) is written upper-case. A buyer's name, address or phone is
// never cut: Validate refuses them. Every value changed, browser data and ordered_at aside (neither
// is sent as received), is listed in o.Normalized with the form it is sent in.
func (o *Order) Normalize() {
	var out []Normalized
	// The field's name is built only for a value that changed: every order passes here.
	set := func(prefix, name string, v *string, f func(string) string) {
		if n := f(*v); n != *v {
			*v = n
			out = append(out, Normalized{Field: prefix + name, Value: n})
		}
	}
	for _, p := range []struct {
		prefix string
		x      *Person
	}{{"buyer.", o.Buyer}, {"ship_to.", o.ShipTo}} {
		if p.x == nil {
			continue
		}
		set(p.prefix, "name", &p.x.Name, normalize.Text)
		set(p.prefix, "name_kana", &p.x.NameKana, normalize.Kana)
		set(p.prefix, "zip", &p.x.Zip, normalize.Zip)
		set(p.prefix, "address", &p.x.Address, normalize.Text)
		set(p.prefix, "phone", &p.x.Phone, normalize.Phone)
		set(p.prefix, "email", &p.x.Email, normalize.Email)
		set(p.prefix, "company", &p.x.Company, normalize.Text)
		set(p.prefix, "department", &p.x.Department, normalize.Text)
	}
	for i := range o.Items {
		if n := normalize.Cut(normalize.Text(o.Items[i].Name), maxItemName); n != o.Items[i].Name {
			o.Items[i].Name = n
			out = append(out, Normalized{Field: "items[" + strconv.Itoa(i) + "].name", Value: n})
		}
	}
	o.OrderedAt = upperTZ(o.OrderedAt) // the form the handlers parse; sent as a date, so not listed
	o.Browser.HTTPHeader = normalize.Cut(o.Browser.HTTPHeader, maxBrowserLen)
	o.Browser.DeviceInfo = normalize.Cut(o.Browser.DeviceInfo, maxBrowserLen)
	o.Normalized = out
}

// indexItemPath puts the element's index into a type error inside items: encoding/json names
// the field items.quantity, the contract's path is items[1].quantity. The first element that
// does not decode is the one encoding/json reported, as it reports the earliest error.
func indexItemPath(data json.RawMessage, err error) error {
	var ie *InvalidError
	if !errors.As(err, &ie) || len(ie.Problems) != 1 {
		return err
	}
	var rest string // the path inside the element; "" when the element itself has the wrong type
	switch field := ie.Problems[0].Field; {
	case strings.HasPrefix(field, "items."):
		rest = strings.TrimPrefix(field, "items")
	case field != "items":
		return err
	}
	var raw struct {
		Items []json.RawMessage `json:"items"`
	}
	if json.Unmarshal(data, &raw) != nil {
		return err // items itself is not an array
	}
	for i, it := range raw.Items {
		if json.Unmarshal(it, new(Item)) != nil {
			ie.Problems[0].Field = "items[" + strconv.Itoa(i) + "]" + rest
			break
		}
	}
	return err
}

// DecodeCancel decodes and validates order.cancelled data.
func DecodeCancel(env Envelope, shop string) (Cancel, error) {
	var c Cancel
	if err := decodeData(env.Data, &c); err != nil {
		return c, err
	}
	var p problems
	p.ids(c.ShopID, c.OrderID, shop)
	return c, p.err()
}

// DecodeTracking decodes order.tracking_entered data, puts its values into the form ATODENE takes
// where their meaning is unambiguous (full-width digits and dashes in the tracking number, a date
// written YYYY/MM/DD, a carrier name in capitals), and validates it.
func DecodeTracking(env Envelope, shop string) (Tracking, error) {
	var t Tracking
	if err := decodeData(env.Data, &t); err != nil {
		return t, err
	}
	t.Carrier = strings.ToLower(normalize.Email(t.Carrier)) // width-folded and trimmed, as an address is
	t.TrackingNumber = normalize.TrackingNumber(t.TrackingNumber)
	t.InvoiceDate = normalize.Date(t.InvoiceDate)
	var p problems
	p.ids(t.ShopID, t.OrderID, shop)
	if _, ok := CarrierCode(t.Carrier); !ok {
		p.add("carrier", "must be a carrier name or an ATODENE two-digit carrier code, got %q", clip(t.Carrier))
	}
	if !trackingPattern.MatchString(t.TrackingNumber) {
		p.add("tracking_number", "must be 5-20 of digits and '-'")
	}
	if t.InvoiceDate != "" {
		if _, err := time.Parse(time.DateOnly, t.InvoiceDate); err != nil {
			p.add("invoice_date", "must be a date written YYYY-MM-DD")
		}
	}
	return t, p.err()
}

// DecodeInvoiceRequest decodes and validates order.invoice_requested data.
func DecodeInvoiceRequest(env Envelope, shop string) (InvoiceRequest, error) {
	var r InvoiceRequest
	if err := decodeData(env.Data, &r); err != nil {
		return r, err
	}
	var p problems
	p.ids(r.ShopID, r.OrderID, shop)
	return r, p.err()
}

// DecodeRecheckRequest decodes and validates order.recheck_requested data.
func DecodeRecheckRequest(env Envelope, shop string) (RecheckRequest, error) {
	var r RecheckRequest
	if err := decodeData(env.Data, &r); err != nil {
		return r, err
	}
	var p problems
	p.ids(r.ShopID, r.OrderID, shop)
	p.operator(r.Operator)
	return r, p.err()
}

// DecodeResolveRequest decodes order.resolve_requested data, puts transaction_id into ATODENE's
// form (full-width digits made ASCII, spaces at the ends dropped), and validates it: exactly one of
// transaction_id and not_registered (true) is given.
func DecodeResolveRequest(env Envelope, shop string) (ResolveRequest, error) {
	var r ResolveRequest
	if err := decodeData(env.Data, &r); err != nil {
		return r, err
	}
	r.TransactionID = normalize.Email(r.TransactionID) // width-folded and trimmed, as an address is
	var p problems
	p.ids(r.ShopID, r.OrderID, shop)
	p.operator(r.Operator)
	switch {
	case r.TransactionID != "" && r.NotRegistered:
		p.add("not_registered", "must not be true with a transaction_id: give one of the two")
	case r.TransactionID != "":
		p.field("transaction_id", "transactionId", r.TransactionID)
	case !r.NotRegistered:
		p.add("transaction_id", "is required, unless not_registered is true")
	}
	return r, p.err()
}

// operator checks the operator of an operator event: a staff identifier of 1 to MaxOperatorLen
// characters without control characters (it is printed in the order's history).
func (p *problems) operator(op string) {
	switch n := utf8.RuneCountInString(op); {
	case strings.TrimFunc(op, func(r rune) bool { return unicode.Is(unicode.Zs, r) }) == "":
		p.add("operator", "is required") // spaces alone name nobody
	case strings.IndexFunc(op, unicode.IsControl) >= 0:
		p.add("operator", "contains a control character")
	case n > MaxOperatorLen:
		p.add("operator", "is %d characters, more than the limit of %d", n, MaxOperatorLen)
	}
}

// ids checks shop_id and order_id, and that shop_id names the shop of the subject.
func (p *problems) ids(shopID, orderID, subjectShop string) {
	switch {
	case shopID == "":
		p.add("shop_id", "is required")
	case shopID != subjectShop:
		p.add("shop_id", "%q does not match the subject's shop %q", clip(shopID), subjectShop)
	}
	if !orderIDPattern.MatchString(orderID) {
		p.add("order_id", "must be 1-50 of A-Z, a-z, 0-9, '_' and '-'")
	}
}

// personFields maps a person's JSON fields to the ATODENE elements whose rules they follow.
var personFields = []struct {
	json, element string
	value         func(*Person) string
}{
	{"name", "name", func(x *Person) string { return x.Name }},
	{"name_kana", "kanaName", func(x *Person) string { return x.NameKana }},
	{"zip", "zip", func(x *Person) string { return x.Zip }},
	{"address", "address", func(x *Person) string { return x.Address }},
	{"phone", "tel", func(x *Person) string { return x.Phone }},
	{"email", "email", func(x *Person) string { return x.Email }},
	{"company", "companyName", func(x *Person) string { return x.Company }},
	{"department", "sectionName", func(x *Person) string { return x.Department }},
}

func (p *problems) person(prefix string, x *Person, isBuyer bool) {
	if x == nil {
		p.add(prefix, "is required")
		return
	}
	for _, f := range personFields {
		v := f.value(x)
		if f.json == "email" && !isBuyer && v == "" {
			continue // a consignee needs no e-mail address
		}
		// The field's name is built only for a problem: every order passes here.
		if reason := textReason(f.element, v); reason != "" {
			p.add(prefix+"."+f.json, "%s", reason)
		}
	}
}

// field applies an ATODENE field rule to a JSON field, reporting it under the JSON name.
func (p *problems) field(name, element, value string) {
	if reason := textReason(element, value); reason != "" {
		p.add(name, "%s", reason)
	}
}

// textReason is why the text value of an inbound field breaks the rule of the ATODENE element it
// is sent as (atodene.FieldReason), or holds U+FFFD; "" when it does neither.
//
// U+FFFD, the replacement character, is what encoding/json puts for a lone surrogate escape
// ("\ud83d", an emoji cut in half by JavaScript) as it would for invalid UTF-8, which
// DecodeEnvelope refuses: the buyer's text was lost before it reached the worker, and sending it
// would send it altered without anyone being told (docs/events.md#inbound-payloads).
func textReason(element, value string) string {
	if strings.ContainsRune(value, utf8.RuneError) {
		return "contains U+FFFD, the replacement character: the text was damaged before it was received (invalid UTF-8 or a lone surrogate such as \\ud83d)"
	}
	return atodene.FieldReason(element, value)
}

// Validate checks every rule of docs/events.md#ordercreated-and-orderupdated-eventsdecodeorder-ordervalidate for an order of the given shop.
func (o Order) Validate(shop string) error {
	var p problems
	p.ids(o.ShopID, o.OrderID, shop)
	if _, err := ParseTime(o.OrderedAt); err != nil {
		p.add("ordered_at", "must be an RFC 3339 time")
	}
	p.person("buyer", o.Buyer, true)
	if o.ShipTo != nil {
		p.person("ship_to", o.ShipTo, false)
	}
	if len(o.Items) == 0 {
		p.add("items", "must hold at least one item")
	}
	var sum int64
	for i, it := range o.Items {
		item := func(field string) string { return "items[" + strconv.Itoa(i) + "]." + field }
		if reason := textReason("goods", it.Name); reason != "" {
			p.add(item("name"), "%s", reason)
		}
		if it.UnitPrice < 0 || it.UnitPrice > 999999 {
			p.add(item("unit_price"), "must be between 0 and 999999")
		}
		if it.Quantity < 1 || it.Quantity > 99999 {
			p.add(item("quantity"), "must be between 1 and 99999")
		}
		sum += it.UnitPrice * it.Quantity
	}
	for _, f := range []struct {
		name  string
		value int64
	}{{"shipping_fee", o.ShippingFee}, {"fee", o.Fee}, {"discount", o.Discount}} {
		if f.value < 0 || f.value > 999999 {
			p.add(f.name, "must be between 0 and 999999")
		}
	}
	switch {
	case o.BilledAmount == nil:
		p.add("billed_amount", "is required")
	case *o.BilledAmount < 0 || *o.BilledAmount > 999999:
		p.add("billed_amount", "must be between 0 and 999999")
	case len(p) == 0 && *o.BilledAmount != sum+o.ShippingFee+o.Fee-o.Discount:
		p.add("billed_amount", "%d does not equal items %d + shipping_fee %d + fee %d - discount %d",
			*o.BilledAmount, sum, o.ShippingFee, o.Fee, o.Discount)
	}
	if d := o.InvoiceDelivery; d != "" && d != DeliverySeparate && d != DeliveryEnclosed {
		p.add("invoice_delivery", "must be %q or %q", DeliverySeparate, DeliveryEnclosed)
	}
	p.field("browser.http_header", "httpHeader", o.Browser.HTTPHeader)
	p.field("browser.device_info", "deviceInfo", o.Browser.DeviceInfo)
	return p.err()
}

// IsGift reports whether the parcel goes to someone else or somewhere else than the buyer:
// ship_to is given and its name, postal code or address differs from the buyer's, beyond width
// and spacing. Such a parcel never carries the invoice (docs/protocol.md#business-rules: the
// invoice is enclosed only when the goods go to the buyer's own address; w2 never encloses it in a
// gift).
func (o Order) IsGift() bool {
	if o.ShipTo == nil || o.Buyer == nil {
		return false
	}
	b, s := o.Buyer, o.ShipTo
	return textKey(b.Name, false) != textKey(s.Name, false) || zipKey(b.Zip) != zipKey(s.Zip) ||
		textKey(b.Address, true) != textKey(s.Address, true)
}

// textKey is s width-folded, then composed (NFC, compatibility ideographs kept as normalize.Text
// keeps them), without spaces and, for an address (dashes true), with every hyphen-like mark
// written '-': "東京都渋谷区神宮前１－１－１" and "東京都渋谷区 神宮前1-1-1" are one address, while
// "1-2-13" and "1-21-3" stay two. Names keep their marks: "サトー" is not "サト-". The composition
// is what makes ｶﾞ equal ガ: folding gives カ and a combining voiced mark (U+3099), which NFC puts
// together (UAX #15).
func textKey(s string, dashes bool) string {
	return strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return -1
		case dashes && (unicode.Is(unicode.Dash, r) || r == 'ー'):
			return '-'
		}
		return r
	}, normalize.Text(width.Fold.String(s)))
}

// ParseTime parses an RFC 3339 time of an inbound event (ordered_at, the envelope's time). RFC
// 3339 §5.6 lets the 'T' and 'Z' be written 't' and 'z', which Go's time.RFC3339 layout refuses;
// ParseTime takes both. The error is time.Parse's.
func ParseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339, upperTZ(s)) }

// upperTZ writes the ASCII letters 't' and 'z' of s upper-case, so that an RFC 3339 time written
// with the lower-case letters §5.6 allows is one time.RFC3339 parses; s itself when it has none.
func upperTZ(s string) string {
	if !strings.ContainsAny(s, "tz") {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case 't':
			return 'T'
		case 'z':
			return 'Z'
		}
		return r
	}, s)
}

// zipKey is the digits of a postal code: "150-0001" and "1500001" are one code.
func zipKey(zip string) string { return strings.ReplaceAll(normalize.Zip(zip), "-", "") }

// DecodeData decodes and validates the data of an inbound event of the given type, with that
// type's decoder (DecodeCreated, DecodeOrder, ...), for tools that take any inbound type. An
// outcome type or an unknown one is an error.
func DecodeData(eventType string, env Envelope, shop string) (any, error) {
	switch eventType {
	case TypeOrderCreated:
		return DecodeCreated(env, shop)
	case TypeOrderUpdated:
		return DecodeOrder(env, shop)
	case TypeOrderCancelled:
		return DecodeCancel(env, shop)
	case TypeTrackingEntered:
		return DecodeTracking(env, shop)
	case TypeInvoiceRequested:
		return DecodeInvoiceRequest(env, shop)
	case TypeRecheckRequested:
		return DecodeRecheckRequest(env, shop)
	case TypeResolveRequested:
		return DecodeResolveRequest(env, shop)
	}
	return nil, fmt.Errorf("%q is not an inbound event type", eventType)
}
