package sandbox

import (
	"strconv"
	"time"
)

// Operation names, used as keys in per-transaction call counts and in stats.
const (
	opRegister = "transaction"
	opAuthori  = "getauthori"
	opShipment = "shippingrequest"
	opModify   = "modifytransaction"
	opInvoice  = "getinvoicedata"
)

var operations = []string{opRegister, opAuthori, opShipment, opModify, opInvoice}

// order is the buyer data of a registration or change, as sent.
type order struct {
	customer customerXML
	ship     shipXML
	details  []detailXML
	billed   int64
}

// addressOnlyChange reports whether next differs from o in nothing but the buyer's and the ship-to
// address (zip and address), which the service is taken to accept without a new screening
// (docs/protocol.md#modifytransactiondo-change-or-cancel).
// shopOrderId is not compared: it does not identify the transaction in a change.
func (o order) addressOnlyChange(next order) bool {
	a, b := o, next
	a.customer.ShopOrderID = b.customer.ShopOrderID
	a.customer.Zip, a.customer.Address = b.customer.Zip, b.customer.Address
	a.ship.ShipZip, a.ship.ShipAddress = b.ship.ShipZip, b.ship.ShipAddress
	if a.customer != b.customer || a.ship != b.ship || len(a.details) != len(b.details) {
		return false
	}
	for i := range a.details {
		if a.details[i] != b.details[i] {
			return false
		}
	}
	return true
}

type shipment struct {
	deliveryType string // the report's last type: 1 (reported) or 2 (changed)
	companyCode  string
	slipNo       string
	invoiceDate  string
}

type transaction struct {
	id           string
	shopCode     string
	shopOrderID  string
	seq          int // registration order, for stable listings
	registeredAt time.Time
	order        order
	screening    screening
	cancelled    bool
	shipment     *shipment
	calls        map[string]int
	// invoiceSent is the invoice's issue date, fixed by the first getinvoicedata.do: the call
	// fixes the payment deadline (docs/protocol.md#invoice-print-data), and later calls answer the same
	// dates and barcode.
	invoiceSent time.Time
}

func (t *transaction) slow() bool { return profileOf(t.order.customer.Email) == profileSlow }

// live transactions block a new registration of the same shopOrderId.
func (t *transaction) live(now time.Time) bool {
	return !t.cancelled && t.screening.decision(now) != resultNG
}

type orderKey struct{ shopCode, shopOrderID string }

// orderHistory is what the sandbox remembers about one shopOrderId of one shop.
type orderHistory struct {
	transactions []*transaction // in registration order
	rejected     int            // transaction.do calls for it that were answered NG
}

// store holds every transaction. It is guarded by Server.mu.
type store struct {
	byID   map[string]*transaction
	orders map[orderKey]*orderHistory
	seq    int
}

func newStore() *store {
	return &store{byID: map[string]*transaction{}, orders: map[orderKey]*orderHistory{}}
}

func (st *store) history(k orderKey) *orderHistory {
	h := st.orders[k]
	if h == nil {
		h = &orderHistory{}
		st.orders[k] = h
	}
	return h
}

func (st *store) hasLive(k orderKey, now time.Time) bool {
	h := st.orders[k]
	if h == nil {
		return false
	}
	for _, t := range h.transactions {
		if t.live(now) {
			return true
		}
	}
	return false
}

// hasLiveOther reports whether a transaction of t's shop and shopOrderId other than t is live.
func (st *store) hasLiveOther(t *transaction, now time.Time) bool {
	h := st.orders[orderKey{t.shopCode, t.shopOrderID}]
	if h == nil {
		return false
	}
	for _, o := range h.transactions {
		if o != t && o.live(now) {
			return true
		}
	}
	return false
}

func (st *store) add(t *transaction) {
	st.seq++
	t.seq = st.seq
	st.byID[t.id] = t
	h := st.history(orderKey{t.shopCode, t.shopOrderID})
	h.transactions = append(h.transactions, t)
}

// idGenerator hands out 11-digit transaction IDs. It counts up from a random start and is never reset,
// so IDs stay unique for the life of the process, even across POST /sandbox/reset.
type idGenerator struct{ next int64 }

const (
	minTxID = 10_000_000_000
	maxTxID = 99_999_999_999
)

func newIDGenerator(r *lockedRand) *idGenerator {
	// Start low in the range so that the counter cannot run past 11 digits in practice.
	return &idGenerator{next: minTxID + r.Int64N(40_000_000_000)}
}

func (g *idGenerator) newID() string {
	id := g.next
	g.next++
	if g.next > maxTxID {
		g.next = minTxID
	}
	return strconv.FormatInt(id, 10)
}
