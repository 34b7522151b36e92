package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Re-authorization (docs/lifecycle.md#re-authorization): an approval does not last forever (w2
// Commerce treats one as expiring 88 days after it was given, docs/protocol.md#changes-and-cancels),
// so an order OK for Shop.ReauthorizeAfter without a shipment report is registered again under a
// derived shopOrderId, and its old transaction is cancelled once the new one is OK.

// How a re-authorization ended (OrdersConfig.Reauthorized).
const (
	ReauthOK      = "ok"      // the new transaction is OK; the old one is cancelled
	ReauthNG      = "ng"      // the new one was declined; the old one is kept until it expires
	ReauthPending = "pending" // the new one is under review, polled as usual
	ReauthInvalid = "invalid" // ATODENE refused the new registration itself; the old one stands
	ReauthUnknown = "unknown" // ATODENE already holds the derived shopOrderId; the old one stands
	ReauthNoData  = "no-data" // Redis holds no data of the order to register it with
)

// reauthMark ends every derived shopOrderId: "_R" and the re-authorization's number. An order_id
// of a shop that re-authorizes may not end so (prepare), so a derived shopOrderId is never a mall
// order's.
const reauthMark = "_R"

// ReauthShopOrderID returns the shopOrderId of re-authorization n (1, 2...) of an order whose own
// shopOrderId is base: base + "_R" + n, within ATODENE's 50 characters. When that is longer, base
// is cut and followed by "_" and 10 base32 characters of its SHA-256, so that two long order IDs
// that share their first characters still differ.
func ReauthShopOrderID(base string, n int) string {
	suffix := reauthMark + strconv.Itoa(n)
	if len(base)+len(suffix) <= atodene.MaxShopOrderID {
		return base + suffix
	}
	sum := sha256.Sum256([]byte(base))
	hash := base32.StdEncoding.EncodeToString(sum[:])[:10]
	return base[:atodene.MaxShopOrderID-len(suffix)-len(hash)-1] + "_" + hash + suffix
}

// reservedOrderID reports whether an order_id ends as a derived shopOrderId does: "_R" and digits.
func reservedOrderID(id string) bool {
	i := strings.LastIndex(id, reauthMark)
	if i < 0 || i+len(reauthMark) == len(id) {
		return false
	}
	for _, c := range id[i+len(reauthMark):] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// authorized records that ATODENE approved the live transaction at now: the re-authorization
// counts from it, and a timer scheduled for an earlier approval is stale.
func authorized(st *orderstate.State, now time.Time) {
	st.AuthorizedAt = now.UTC()
	if st.Reauth != nil {
		rs := *st.Reauth
		rs.Seq++
		rs.Scheduled, rs.At = false, time.Time{}
		st.Reauth = &rs
	}
}

// reauthOf returns a copy of st's re-authorization to change, made if st has none.
func reauthOf(st *orderstate.State) *orderstate.Reauth {
	rs := orderstate.Reauth{}
	if st.Reauth != nil {
		rs = *st.Reauth
	}
	st.Reauth = &rs
	return &rs
}

// reauthDue handles a due re-authorization timer: an order still OK, unshipped and approved
// ReauthorizeAfter ago is registered again; a timer of another series is stale.
func (o *Orders) reauthDue(p PollRequest) func(context.Context, *run, orderstate.State) change {
	return func(ctx context.Context, r *run, st orderstate.State) change {
		rs := st.Reauth
		switch {
		case rs == nil || rs.Seq != p.Seq || rs.Phase != "" || rs.Failed != "":
			return keep("") // stale, or under way (settle carries it on)
		case st.Status != orderstate.StatusOK:
			return keep("")
		case st.Shipment != nil && st.Shipment.Reported:
			return keep("no re-authorization: the shipment is reported")
		case r.shop.ReauthorizeAfter <= 0:
			return keep("no re-authorization: the shop's reauthorize_after is 0")
		}
		if due := st.AuthorizedAt.Add(r.shop.ReauthorizeAfter); o.Now().Before(due) {
			reauthOf(&st).Scheduled = false // settle schedules it for its time
			return write(st, "")
		}
		return o.reauthorize(ctx, r, p.OrderID, st)
	}
}

// reauthorize begins a re-authorization: it writes the intent (the derived shopOrderId, as for
// any registration, docs/lifecycle.md#re-authorization) and registers the order's kept data under it.
func (o *Orders) reauthorize(ctx context.Context, r *run, order string, st orderstate.State) change {
	req, fault := o.reauthRequest(ctx, r, order, st, ReauthShopOrderID(r.shop.OrderIDPrefix+order, reauthN(st)+1))
	if fault != nil {
		return *fault
	}
	rs := reauthOf(&st)
	rs.N++
	rs.Phase, rs.ShopOrderID, rs.Scheduled = orderstate.ReauthRegistering, req.Sent().ShopOrderID, false
	st, err := o.Store.PutIntent(ctx, r.shop.ID, order, st, o.Now())
	if err != nil {
		return fail(err)
	}
	return o.reauthRegister(ctx, r, order, st, req, false)
}

func reauthN(st orderstate.State) int {
	if st.Reauth == nil {
		return 0
	}
	return st.Reauth.N
}

// reauthRequest builds the registration of a re-authorization under shopOrderID from the data
// Redis keeps of the order, with the fee and billed amount ATODENE approved (not the fee table's
// today). An order without kept data, or whose data no longer makes a request, ends the
// re-authorization (fault: the change to return).
func (o *Orders) reauthRequest(ctx context.Context, r *run, order string, st orderstate.State, shopOrderID string) (atodene.Request, *change) {
	raw, err := o.Store.OrderData(ctx, r.shop.ID, order)
	if err != nil {
		c := fail(err)
		return atodene.Request{}, &c
	}
	var data events.Order
	if raw == nil {
		c := o.reauthEnded(st, ReauthNoData, "re-authorization impossible: Redis holds no data of the order to register it with")
		return atodene.Request{}, &c
	}
	if err := json.Unmarshal(raw, &data); err != nil || data.Buyer == nil {
		c := o.reauthEnded(st, ReauthNoData, fmt.Sprintf("re-authorization impossible: the order's kept data does not decode: %v", err))
		return atodene.Request{}, &c
	}
	ord, _ := toProviderOrder(r.shop, data, st.Fee, st.BilledAmount)
	ord.ShopOrderID, ord.Service = shopOrderID, st.Service
	req, err := ord.Check()
	if err != nil {
		c := o.reauthEnded(st, ReauthInvalid, "re-authorization impossible: the order's kept data no longer passes ATODENE's field rules: "+err.Error())
		return atodene.Request{}, &c
	}
	return req, nil
}

// reauthEnded leaves the order on its transaction: no re-authorization is scheduled again until
// it is registered anew; the history says why and the metric counts it.
func (o *Orders) reauthEnded(st orderstate.State, result, did string) change {
	rs := reauthOf(&st)
	rs.Phase, rs.ShopOrderID, rs.Failed, rs.Scheduled = "", "", result, false
	o.reauthorized(result)
	return write(st, did)
}

func (o *Orders) reauthorized(result string) {
	if o.Reauthorized != nil {
		o.Reauthorized(result)
	}
}

// reauthRegister sends the registration of a re-authorization whose intent st holds, and records
// the answer. resent says an earlier attempt may have reached ATODENE.
func (o *Orders) reauthRegister(ctx context.Context, r *run, order string, st orderstate.State, req atodene.Request, resent bool) change {
	reg, err := r.shop.Provider.Register(ctx, req)
	var rejected *atodene.RejectedError
	switch {
	case errors.Is(err, atodene.ErrAlreadyRegistered):
		why := "ATODENE already holds a live transaction for the derived shopOrderId " + req.Sent().ShopOrderID
		if resent {
			why += " (an earlier attempt, whose answer was lost, may have registered it: cancel it at ATODENE by hand)"
		}
		return o.reauthEnded(st, ReauthUnknown, "re-authorization not done: "+why+"; the old transaction stands")
	case errors.As(err, &rejected):
		st.Errors = nil
		return o.reauthEnded(st, ReauthInvalid, "re-authorization refused by ATODENE ("+errorCodes(rejected.Errors)+"); the old transaction stands")
	case err != nil:
		return fail(err) // transient: the intent stays, and the retry sends the same shopOrderId
	}
	rs := reauthOf(&st)
	rs.Old, rs.ShopOrderID = st.TransactionID, ""
	st.TransactionID, st.ShopOrderID = reg.TransactionID, req.Sent().ShopOrderID
	st.AuthorizedAt, st.Reasons, st.Review = time.Time{}, nil, ""
	st.Status = decisionStatus(reg.Auto)
	if st.Status == orderstate.StatusPending {
		o.startPolling(&st)
	}
	o.emitCredit(&st, r.shop.ID, order, creditType(st.Status), st.CausedBy)
	rs = st.Reauth // emitCredit may have replaced it
	switch st.Status {
	case orderstate.StatusOK:
		rs.Phase = orderstate.ReauthCancelling
		o.reauthorized(ReauthOK)
	case orderstate.StatusPending:
		rs.Phase = orderstate.ReauthPending
		o.reauthorized(ReauthPending)
	default:
		rs.Phase, rs.Failed = orderstate.ReauthKept, ReauthNG
		o.reauthorized(ReauthNG)
	}
	return write(st, "re-authorized under shopOrderId "+st.ShopOrderID+": "+string(st.Status))
}

func errorCodes(errs []atodene.ProviderError) string {
	codes := make([]string, len(errs))
	for i, e := range errs {
		codes[i] = e.Point + ":" + e.Code
	}
	return strings.Join(codes, ", ")
}

// settleReauth carries a re-authorization on from where an earlier handler left it, and schedules
// the next: a registration whose answer is not recorded is sent again (same shopOrderId), a new
// transaction decided by its re-check either has the old one cancelled (OK) or kept (NG), and the
// cancel of the old one is sent. It returns st with what it did (and, for a registration, written
// at once: its answer must not be lost), and whether that differs from st.
func (o *Orders) settleReauth(ctx context.Context, r *run, order string, st orderstate.State) (orderstate.State, bool, error) {
	dirty := false
	if rs := st.Reauth; rs != nil && rs.Phase == orderstate.ReauthRegistering {
		req, fault := o.reauthRequest(ctx, r, order, st, rs.ShopOrderID)
		c := change{}
		if fault != nil {
			c = *fault
		} else {
			c = o.reauthRegister(ctx, r, order, st, req, true)
		}
		if c.err != nil {
			return st, false, c.err
		}
		next := *c.next
		next.History = append(next.History, o.entry(Meta{Type: "reauthorization"}, c, r, st))
		written, err := o.Store.Put(ctx, r.shop.ID, order, next, o.Now())
		if err != nil {
			return st, false, err
		}
		st, dirty = written, true
	}
	if rs := st.Reauth; rs != nil && rs.Phase == orderstate.ReauthPending && st.Status != orderstate.StatusPending {
		rs := reauthOf(&st)
		switch st.Status {
		case orderstate.StatusOK:
			rs.Phase = orderstate.ReauthCancelling
			o.reauthorized(ReauthOK)
		case orderstate.StatusNG:
			rs.Phase, rs.Failed = orderstate.ReauthKept, ReauthNG
			o.reauthorized(ReauthNG)
		default: // ATODENE cancelled the new one (er000033): the old one goes too
			rs.Phase = orderstate.ReauthCancelling
		}
		dirty = true
	}
	if rs := st.Reauth; rs != nil && rs.Phase == orderstate.ReauthCancelling {
		err := r.shop.Provider.Cancel(ctx, rs.Old)
		if err != nil && !errors.Is(err, atodene.ErrAlreadyCancelled) {
			return st, false, err
		}
		before := st
		rs := reauthOf(&st)
		did := "re-authorized: cancelled the old transaction " + rs.Old
		rs.Phase, rs.Old = "", ""
		st.History = append(st.History, o.entry(Meta{Type: "reauthorization"}, change{next: &st, did: did}, r, before))
		dirty = true
	}
	if at, ok := o.reauthTime(r.shop, st); ok {
		rs := reauthOf(&st)
		if err := o.Polls.Schedule(ctx, PollRequest{Shop: r.shop.ID, OrderID: order, Seq: rs.Seq, Kind: TimerReauth}, at); err != nil {
			return st, false, err
		}
		rs.Scheduled, rs.At, dirty = true, at, true
	}
	return st, dirty, nil
}

// reauthTime says when st's re-authorization is to be scheduled, if it is to be now: the order is
// OK on a transaction approved at AuthorizedAt, its data is kept, no shipment is reported, none is
// under way or ended, and none is scheduled yet.
func (o *Orders) reauthTime(shop *Shop, st orderstate.State) (time.Time, bool) {
	rs := st.Reauth
	if shop.ReauthorizeAfter <= 0 || st.Status != orderstate.StatusOK || !st.HasData || st.AuthorizedAt.IsZero() ||
		(st.Shipment != nil && st.Shipment.Reported) || (rs != nil && (rs.Scheduled || rs.Phase != "" || rs.Failed != "")) {
		return time.Time{}, false
	}
	return st.AuthorizedAt.Add(shop.ReauthorizeAfter), true
}

// keptData is the order's data to keep for a re-authorization, for a shop that re-authorizes.
func keptData(shop *Shop, data events.Order) []byte {
	if shop.ReauthorizeAfter <= 0 {
		return nil
	}
	raw, err := json.Marshal(data)
	if err != nil {
		panic(fmt.Sprintf("handlers: encoding an order's data: %v", err)) // plain structs always encode
	}
	return raw
}
