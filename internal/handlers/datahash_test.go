package handlers

import (
	"reflect"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/fees"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// hashShop and hashOrder are the order of the golden request hashes: every field of the request
// set, a consignee, two lines, and browser data (which the hash leaves out).
var hashShop = &Shop{ID: "shop-a", Service: atodene.ServiceSeparate, Fees: fees.Table{Mode: fees.ModeKeep}, OrderIDPrefix: "A-"}

func hashOrder() events.Order {
	billed := int64(3155)
	return events.Order{ShopID: "shop-a", OrderID: "H-1", OrderedAt: "2026-11-26T10:14:03+09:00",
		Buyer: &events.Person{Name: "加藤 太郎", NameKana: "カトウ タロウ", Zip: "150-0001", Address: "東京都渋谷区神宮前1-1-1",
			Phone: "03-1234-5678", Email: "taro@example.jp", Company: "加藤商店", Department: "経理部"},
		ShipTo: &events.Person{Name: "加藤 花子", NameKana: "カトウ ハナコ", Zip: "530-0001", Address: "大阪府大阪市北区梅田1-1-1",
			Phone: "06-1234-5678"},
		Items:       []events.Item{{Name: "緑茶ティーバッグ 50包", UnitPrice: 1200, Quantity: 2}, {Name: "湯呑み", UnitPrice: 400, Quantity: 1}},
		ShippingFee: 550, Fee: 205, Discount: 400, BilledAmount: &billed,
		InvoiceDelivery: events.DeliverySeparate,
		Browser:         events.Browser{HTTPHeader: "User-Agent: test", DeviceInfo: "device"}}
}

// Hashes of hashOrder. goldenHashV1 is the v1 canonical form's; goldenHashLegacy is what workers
// stored before hashes had a version (json.Marshal of atodene.Order as it was then, browser data
// cleared), computed by that code. Neither may ever change: states in Redis hold them.
const (
	goldenHashV1     = "v1:6064a607c23b1413356bc26347dd9caea60730f37792479acc62a0c39f61348a"
	goldenHashLegacy = "50dcc64b4662a41c70de14c4e996daa9a9d2a90ed155265e60a095a53b33645e"
)

// TestRequestHashGolden: the hash stored in State.DataHash is of an explicit, versioned canonical
// form, so that changing the Go struct atodene.Order (a field added or renamed) does not move it:
// a moved hash makes a re-sent order.created register an NG or cancelled order again and an
// order.updated screen an unchanged order again. It was json.Marshal of atodene.Order.
func TestRequestHashGolden(t *testing.T) {
	t.Parallel()
	req, err := prepare(hashShop, hashOrder())
	if err != nil {
		t.Fatal(err)
	}
	if req.hash != goldenHashV1 {
		t.Errorf("request hash %s, want the golden %s", req.hash, goldenHashV1)
	}
	// Browser data changes between events of the same order, so it is not part of the hash.
	other := hashOrder()
	other.Browser = events.Browser{HTTPHeader: "User-Agent: other"}
	if r, _ := prepare(hashShop, other); r.hash != req.hash {
		t.Errorf("browser data moved the hash: %s", r.hash)
	}
}

// TestStoredRequestHashesOfEveryVersionCompare: a stored hash is compared by the computation of its
// own version, so that after an upgrade an unchanged order is still unchanged. The legacy
// computation is frozen too: it must give what the old code stored, whatever atodene.Order becomes.
func TestStoredRequestHashesOfEveryVersionCompare(t *testing.T) {
	t.Parallel()
	req, err := prepare(hashShop, hashOrder())
	if err != nil {
		t.Fatal(err)
	}
	if got := legacyDataHash(req.checked.Order()); got != goldenHashLegacy {
		t.Errorf("legacy hash %s, want the golden %s (what workers stored before versions)", got, goldenHashLegacy)
	}
	changed := hashOrder()
	changed.Items[1].Quantity = 2
	*changed.BilledAmount += 400
	other, err := prepare(hashShop, changed)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stored string
		same   bool
	}{
		{goldenHashV1, true},
		{goldenHashLegacy, true},
		{"", false},
		{"v2:" + goldenHashV1[3:], false}, // a version this worker does not know: sent again
		{goldenHashV1[3:], false},         // a v1 digest without its prefix is no legacy hash of it
	} {
		if got := req.sameAs(orderstate.State{DataHash: tc.stored}); got != tc.same {
			t.Errorf("same data as stored %q: %v, want %v", tc.stored, got, tc.same)
		}
		if other.sameAs(orderstate.State{DataHash: tc.stored}) {
			t.Errorf("changed data is the same as stored %q", tc.stored)
		}
	}
}

// TestRequestHashCoversTheRequest: every field of atodene.Order is in the canonical form or left
// out on purpose. A field added to the request would otherwise go unseen: an order.updated
// changing only it would change nothing at ATODENE. Such a field needs a new version of the form.
func TestRequestHashCoversTheRequest(t *testing.T) {
	t.Parallel()
	covered := map[reflect.Type][]string{
		reflect.TypeFor[atodene.Order](): {"ShopOrderID", "OrderedAt", "Buyer", "ShipTo", "Items", "ShippingFee", "Fee",
			"Discount", "BilledAmount", "Service",
			"Browser"}, // left out: browser data changes between events of the same order
		reflect.TypeFor[atodene.Person](): {"Name", "NameKana", "Zip", "Address", "Company", "Department", "Phone", "Email"},
		reflect.TypeFor[atodene.Item]():   {"Name", "UnitPrice", "Quantity"},
	}
	for typ, names := range covered {
		known := map[string]bool{}
		for _, n := range names {
			known[n] = true
		}
		for f := range typ.Fields() {
			if !known[f.Name] {
				t.Errorf("%s.%s is not in the request hash: add it to a new version of the canonical form (orderV2), or list it as left out", typ, f.Name)
			}
		}
	}
}
