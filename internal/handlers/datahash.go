package handlers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
)

// The request hash (orderstate.State.DataHash) tells whether an order's data is the data last sent
// to ATODENE: an order.updated with it changes nothing, and an order.created or order.updated with
// the data ATODENE answered NG or refused is not sent again.
//
// Hashes are stored in Redis and outlive the code that computed them, so a hash is of an explicit
// canonical form named by a version, never of the encoding of a Go struct: adding or renaming a
// field of atodene.Order must not change the hash of an order whose data did not change (it would
// register NG and cancelled orders again and screen unchanged ones again after an upgrade). A
// stored hash is compared with the computation of its own version.

// dataHashV1 prefixes a hash of the v1 canonical form.
const dataHashV1 = "v1:"

// dataHash returns the hash of o to store: "v1:" followed by the SHA-256 of o's v1 canonical form
// in lower-case hex (67 characters). Browser data is not part of it: it changes between events of
// the same order.
func dataHash(o atodene.Order) string {
	raw, _ := json.Marshal(canonicalV1(o)) // strings, numbers and slices only: it cannot fail
	sum := sha256.Sum256(raw)
	return dataHashV1 + hex.EncodeToString(sum[:])
}

// sameData reports whether stored, a State.DataHash, is the hash of o by the computation that
// produced it: v1, or the legacy one for a hash written before hashes had a version. An empty
// hash, or one of a version this worker does not know (written by a newer one), is never the same:
// a needless call is the price, where taking changed data for the same would lose the change.
func sameData(stored string, o atodene.Order) bool {
	switch {
	case strings.HasPrefix(stored, dataHashV1):
		return stored == dataHash(o)
	case len(stored) == sha256.Size*2 && !strings.Contains(stored, ":"):
		return stored == legacyDataHash(o)
	}
	return false
}

// orderV1 is the v1 canonical form of a request, encoded with encoding/json: these fields, in this
// order, under these names. It is frozen: a change to what it holds is a new version (orderV2,
// "v2:"), and v1 stays to compare the hashes stored with it.
type orderV1 struct {
	ShopOrderID  string    `json:"shop_order_id"`
	OrderedAt    string    `json:"ordered_at"` // RFC 3339 with nanoseconds, UTC
	Buyer        personV1  `json:"buyer"`
	ShipTo       *personV1 `json:"ship_to"` // null when the goods go to the buyer
	Items        []itemV1  `json:"items"`   // never null
	ShippingFee  int64     `json:"shipping_fee"`
	Fee          int64     `json:"fee"`
	Discount     int64     `json:"discount"`
	BilledAmount int64     `json:"billed_amount"`
	Service      string    `json:"service"`
}

type personV1 struct {
	Name       string `json:"name"`
	NameKana   string `json:"name_kana"`
	Zip        string `json:"zip"`
	Address    string `json:"address"`
	Company    string `json:"company"`
	Department string `json:"department"`
	Phone      string `json:"phone"`
	Email      string `json:"email"`
}

type itemV1 struct {
	Name      string `json:"name"`
	UnitPrice int64  `json:"unit_price"`
	Quantity  int64  `json:"quantity"`
}

func canonicalV1(o atodene.Order) orderV1 {
	person := func(p atodene.Person) personV1 {
		return personV1{Name: p.Name, NameKana: p.NameKana, Zip: p.Zip, Address: p.Address,
			Company: p.Company, Department: p.Department, Phone: p.Phone, Email: p.Email}
	}
	c := orderV1{ShopOrderID: o.ShopOrderID, OrderedAt: o.OrderedAt.UTC().Format(time.RFC3339Nano), Buyer: person(o.Buyer),
		Items: make([]itemV1, len(o.Items)), ShippingFee: o.ShippingFee, Fee: o.Fee, Discount: o.Discount,
		BilledAmount: o.BilledAmount, Service: o.Service}
	if o.ShipTo != nil {
		p := person(*o.ShipTo)
		c.ShipTo = &p
	}
	for i, it := range o.Items {
		c.Items[i] = itemV1{Name: it.Name, UnitPrice: it.UnitPrice, Quantity: it.Quantity}
	}
	return c
}

// legacyOrder is atodene.Order as it was when hashes had no version, field for field and without
// tags, so that encoding/json gives the bytes those workers hashed; its browser data was cleared.
// Frozen, like orderV1.
type legacyOrder struct {
	ShopOrderID  string
	OrderedAt    time.Time
	Buyer        legacyPerson
	ShipTo       *legacyPerson
	Items        []legacyItem
	ShippingFee  int64
	Fee          int64
	Discount     int64
	BilledAmount int64
	Service      string
	Browser      struct{ HTTPHeader, DeviceInfo string }
}

type legacyPerson struct {
	Name, NameKana, Zip, Address, Company, Department, Phone, Email string
}

type legacyItem struct {
	Name      string
	UnitPrice int64
	Quantity  int64
}

// legacyDataHash returns the hash of o as workers computed it before hashes had a version: the
// SHA-256 of legacyOrder in lower-case hex.
func legacyDataHash(o atodene.Order) string {
	person := func(p atodene.Person) legacyPerson {
		return legacyPerson{Name: p.Name, NameKana: p.NameKana, Zip: p.Zip, Address: p.Address,
			Company: p.Company, Department: p.Department, Phone: p.Phone, Email: p.Email}
	}
	l := legacyOrder{ShopOrderID: o.ShopOrderID, OrderedAt: o.OrderedAt, Buyer: person(o.Buyer),
		ShippingFee: o.ShippingFee, Fee: o.Fee, Discount: o.Discount, BilledAmount: o.BilledAmount, Service: o.Service}
	if o.ShipTo != nil {
		p := person(*o.ShipTo)
		l.ShipTo = &p
	}
	if o.Items != nil { // nil was encoded as null, an empty slice as []
		l.Items = make([]legacyItem, len(o.Items))
		for i, it := range o.Items {
			l.Items[i] = legacyItem{Name: it.Name, UnitPrice: it.UnitPrice, Quantity: it.Quantity}
		}
	}
	raw, _ := json.Marshal(l)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}
