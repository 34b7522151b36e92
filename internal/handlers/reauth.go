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

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Re-authorization (docs/lifecycle.md#re-authorization): an approval does not last forever (w2
// Commerce treats one as expiring 88 days after it was given, docs/protocol.md#changes-and-cancels),
// so an order OK for Shop.ReauthorizeAfter without a shipment report is registered again under a
// derived shopOrderId. The order stays on its old transaction until the new one is OK, and the
// old one is cancelled then.

// How a re-authorization ended (OrdersConfig.Reauthorized).
const (
	ReauthOK             = "ok"              // the order is on the new transaction; the old one is cancelled
	ReauthPending        = "pending"         // the new one is under review (counted again when decided)
	ReauthNG             = "ng"              // the new one was declined; the order stays on the old one
	ReauthInvalid        = "invalid"         // ATODENE refused the new registration itself
	ReauthUnknown        = "unknown"         // ATODENE already holds the derived shopOrderId
	ReauthNoData         = "no-data"         // Redis holds no usable data of the order to register
	ReauthReviewDeadline = "review-deadline" // the new one was still under review at the poll deadline
)

// ReauthResults are the results OrdersConfig.Reauthorized is told, in the order the docs list them.
func ReauthResults() []string {
	return []string{ReauthOK, ReauthPending, ReauthNG, ReauthInvalid, ReauthUnknown, ReauthNoData, ReauthReviewDeadline}
}

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

// authorized records that ATODENE approved the order's transaction at now: the re-authorization
// counts from it, and a timer scheduled before is stale. The cancel of a re-authorization's old
// transaction still to do is due now, under the new series (finishReauth), so that the state
// still relies on the re-authorization's timer for it.
func authorized(st *orderstate.State, now time.Time) {
	st.AuthorizedAt = now.UTC()
	if st.Reauth != nil {
		rs := reauthOf(st)
		rs.Seq++
		rs.Scheduled, rs.At = false, time.Time{}
		if rs.Phase == orderstate.ReauthCancelling {
			rs.At = now.UTC()
		}
	}
}

// reauthOf returns a copy of st's re-authorization to change (the state's may be shared with the
// state before), made if st has none.
func reauthOf(st *orderstate.State) *orderstate.Reauth {
	rs := orderstate.Reauth{}
	if st.Reauth != nil {
		rs = *st.Reauth
	}
	st.Reauth = &rs
	return &rs
}

// refusedLater makes a refusal of the shop's account met by a timer's apply no dead letter: the
// timer is scheduled again for when the shop's calls resume (timerRefused), on the state apply
// left (c.next, when it wrote one first, as an intent), else on st.
func (o *Orders) refusedLater(p PollRequest, apply func(context.Context, *run, orderstate.State) change) func(context.Context, *run, orderstate.State) change {
	return func(ctx context.Context, r *run, st orderstate.State) change {
		c := apply(ctx, r, st)
		if !accountRefused(c.err) {
			return c
		}
		if c.next != nil {
			st = *c.next
		}
		return o.timerRefused(ctx, r, p, st, c.err)
	}
}

// reauthDue handles a due re-authorization timer of series p.Seq: it begins the re-authorization
// of an order still OK, unshipped and approved ReauthorizeAfter ago, re-checks its new
// transaction under review, or sends again a registration that settle could not (the shop's
// account refused). Anything else makes it stale.
func (o *Orders) reauthDue(p PollRequest) func(context.Context, *run, orderstate.State) change {
	return func(ctx context.Context, r *run, st orderstate.State) change {
		rs := st.Reauth
		switch {
		case rs != nil && rs.Seq == p.Seq && rs.Phase == orderstate.ReauthCancelling && rs.Scheduled && o.Now().Before(rs.At):
			// Handled a moment early (the NATS server's clock ahead of the worker's): finishReauth
			// waits for At, so the timer is scheduled again for it, or nothing would come then.
			if err := o.Polls.Schedule(ctx, PollRequest{Shop: r.shop.ID, OrderID: p.OrderID, Seq: rs.Seq, Kind: TimerReauth}, o.earlyAgain(rs.At)); err != nil {
				return fail(err)
			}
			return keep("")
		case rs == nil || rs.Seq != p.Seq || rs.Failed != "" || rs.Phase == orderstate.ReauthCancelling:
			return keep("") // stale, ended, or carried on by settle already
		case rs.Phase == orderstate.ReauthRegistering:
			return o.reauthResend(ctx, r, p.OrderID, st)
		case rs.Phase == orderstate.ReauthPending:
			if why := stalePending(st); why != "" {
				// Never re-checked: an OK would move a shipped, cancelled or changed order onto it.
				return o.reauthDrop(ctx, r, st, why)
			}
			return o.reauthCheck(ctx, r, p.OrderID, st)
		case st.Shipment != nil && st.Shipment.Reported:
			return keep("no re-authorization: the shipment is reported")
		case st.Status != orderstate.StatusOK || r.shop.ReauthorizeAfter <= 0:
			// Not OK now (a change under review): scheduled again once it is OK.
			reauthOf(&st).Scheduled = false
			return write(st, "")
		}
		if due := st.AuthorizedAt.Add(r.shop.ReauthorizeAfter); o.Now().Before(due) {
			rs := reauthOf(&st)
			if due.Sub(o.Now()) > reauthHeldAhead {
				rs.Scheduled = false // -reauthorize-after lengthened: settle holds it for its time
				return write(st, "")
			}
			// Handled a moment early: scheduled again for its time, no sooner than
			// EarlyTimerAgain from now (settle's schedule for its time would fire again at once).
			rs.Scheduled, rs.At, rs.Held = true, due, false
			if err := o.Polls.Schedule(ctx, PollRequest{Shop: r.shop.ID, OrderID: p.OrderID, Seq: rs.Seq, Kind: TimerReauth}, o.earlyAgain(due)); err != nil {
				return fail(err)
			}
			return write(st, "")
		}
		return o.reauthorize(ctx, r, p.OrderID, st)
	}
}

// reauthDrop cancels the new transaction of a re-authorization under review that no longer fits
// the order (why: stalePending), as settleReauth does. A refusal of the shop's account is
// returned, for the timer to be scheduled again for the stop's end (refusedLater); it is never
// re-checked meanwhile.
func (o *Orders) reauthDrop(ctx context.Context, r *run, st orderstate.State, why string) change {
	did := "re-authorization dropped (" + why + "): its new transaction " + st.Reauth.New + " cancelled"
	if err := dropNew(ctx, r, &st); err != nil {
		return fail(err)
	}
	return write(st, did)
}

// reauthorize begins a re-authorization: it writes the intent (the derived shopOrderId, waited for
// by the replicas as any registration's, docs/lifecycle.md#re-authorization) and registers the
// order's kept data under it.
func (o *Orders) reauthorize(ctx context.Context, r *run, order string, st orderstate.State) change {
	req, fault := o.reauthRequest(ctx, r, order, st, ReauthShopOrderID(r.shop.OrderIDPrefix+order, reauthN(st)+1))
	if fault != nil {
		return *fault
	}
	rs := reauthOf(&st)
	rs.N++
	rs.Phase, rs.ShopOrderID, rs.DataHash, rs.Scheduled, rs.At = orderstate.ReauthRegistering, req.Sent().ShopOrderID, st.DataHash, false, o.Now()
	st, err := o.Store.PutIntent(ctx, r.shop.ID, order, st, o.Now())
	if err != nil {
		return fail(err)
	}
	c := o.reauthRegister(ctx, r, order, st, req, false)
	if accountRefused(c.err) {
		c.next = &st // the intent written, which the timer scheduled again sends
	}
	return c
}

// reauthResend sends again the registration of a re-authorization whose intent st holds, and
// whose answer is not recorded.
func (o *Orders) reauthResend(ctx context.Context, r *run, order string, st orderstate.State) change {
	req, fault := o.reauthRequest(ctx, r, order, st, st.Reauth.ShopOrderID)
	if fault != nil {
		return *fault
	}
	return o.reauthRegister(ctx, r, order, st, req, true)
}

func reauthN(st orderstate.State) int {
	if st.Reauth == nil {
		return 0
	}
	return st.Reauth.N
}

// reauthRequest builds the registration of a re-authorization under shopOrderID from the data
// Redis keeps of the order, with the fee and billed amount ATODENE approved (not the fee table's
// today). An order without usable kept data ends the re-authorization (fault: the change to
// return).
func (o *Orders) reauthRequest(ctx context.Context, r *run, order string, st orderstate.State, shopOrderID string) (atodene.Request, *change) {
	raw, err := o.Store.OrderData(ctx, r.shop.ID, order)
	if err != nil {
		c := fail(err)
		return atodene.Request{}, &c
	}
	var data events.Order
	if raw == nil && st.Reauth != nil && st.Reauth.Phase == orderstate.ReauthRegistering && stalePending(st) != "" {
		// The order shipped or was cancelled with the registration's answer unrecorded: its data
		// went with it. Whether that registration reached ATODENE only its screen tells.
		c := o.reauthEnded(st, r.shop.ID, order, ReauthUnknown, "re-authorization not sent again ("+stalePending(st)+"; Redis no longer keeps its data): "+
			"whether its registration under the derived shopOrderId "+shopOrderID+" reached ATODENE is unknown; look it up in ATODENE's screen and resolve the order; it stays on its transaction")
		return atodene.Request{}, &c
	}
	if raw == nil {
		c := o.reauthEnded(st, r.shop.ID, order, ReauthNoData, "re-authorization impossible: Redis holds no data of the order to register it with")
		return atodene.Request{}, &c
	}
	if err := json.Unmarshal(raw, &data); err != nil || data.Buyer == nil {
		c := o.reauthEnded(st, r.shop.ID, order, ReauthNoData, fmt.Sprintf("re-authorization impossible: the order's kept data does not decode (%v)", err))
		return atodene.Request{}, &c
	}
	ord, _ := toProviderOrder(r.shop, data, st.Fee, st.BilledAmount)
	ord.ShopOrderID, ord.Service = shopOrderID, st.Service
	req, err := ord.Check()
	if err != nil {
		c := o.reauthEnded(st, r.shop.ID, order, ReauthNoData, "re-authorization impossible: the order's kept data no longer passes ATODENE's field rules: "+err.Error())
		return atodene.Request{}, &c
	}
	return req, nil
}

// reauthEnded leaves the order on its transaction for good: no re-authorization is scheduled again
// and its data is not kept, until it is registered anew; the history says why and the metric
// counts it.
func (o *Orders) reauthEnded(st orderstate.State, shop, order, result, did string) change {
	o.Logger.Warn("re-authorization ended with the order on its old transaction: see the order's history",
		zap.String("shop", shop), zap.String("order", order), zap.String("result", result))
	rs := reauthOf(&st)
	rs.Phase, rs.ShopOrderID, rs.New, rs.Review, rs.Failed, rs.Scheduled, rs.At = "", "", "", "", result, false, time.Time{}
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
	rejected, isRejected := errors.AsType[*atodene.RejectedError](err)
	switch {
	case errors.Is(err, atodene.ErrAlreadyRegistered):
		why := "ATODENE already holds a live transaction for the derived shopOrderId " + req.Sent().ShopOrderID
		if resent {
			why += " (an earlier attempt, whose answer was lost, may have registered it: look it up in ATODENE's screen and cancel it there)"
		}
		return o.reauthEnded(st, r.shop.ID, order, ReauthUnknown, "re-authorization not done: "+why+"; the order stays on its transaction")
	case isRejected:
		return o.reauthEnded(st, r.shop.ID, order, ReauthInvalid, "re-authorization refused by ATODENE ("+rejected.Points(", ")+"); the order stays on its transaction")
	case err != nil:
		return fail(err) // transient: the intent stays, and the retry sends the same shopOrderId
	}
	return o.reauthDecided(st, r.shop.ID, order, reg.TransactionID, atodene.Screening{Auto: reg.Auto}, st.CausedBy, "re-authorized under shopOrderId "+req.Sent().ShopOrderID)
}

// reauthCheck re-checks the new transaction of a re-authorization under review (its timer is due).
func (o *Orders) reauthCheck(ctx context.Context, r *run, order string, st orderstate.State) change {
	rs := st.Reauth
	scr, err := r.shop.Provider.GetAuthori(ctx, rs.New)
	switch {
	case errors.Is(err, atodene.ErrAlreadyCancelled):
		return o.reauthEnded(st, r.shop.ID, order, ReauthNG, "re-authorization ended: ATODENE holds its new transaction "+rs.New+" as cancelled; the order stays on its transaction")
	case noTransaction(err):
		// As a registration whose answer is unknown: whatever ATODENE holds under the derived
		// shopOrderId, only its screen can tell, and the operator's resolution settles it.
		return o.reauthEnded(st, r.shop.ID, order, ReauthUnknown, "re-authorization not done: ATODENE has no transaction "+rs.New+
			" (er000002), the new one under review under the derived shopOrderId "+rs.ShopOrderID+"; look it up in ATODENE's screen and resolve the order; it stays on its transaction")
	case err != nil:
		return fail(err)
	}
	rs = reauthOf(&st)
	rs.Attempt++
	rs.Scheduled = false // settle schedules the next re-check
	if d := scr.Decision(); d == atodene.DecisionOK || d == atodene.DecisionNG || d == atodene.DecisionHold && rs.Review != "hold" {
		return o.reauthDecided(st, r.shop.ID, order, rs.New, scr, st.CausedBy, "re-authorization re-checked")
	}
	if o.Now().Sub(rs.Since) > o.Poll.Deadline {
		if err := r.shop.Provider.Cancel(ctx, rs.New); err != nil && !errors.Is(err, atodene.ErrAlreadyCancelled) {
			return fail(err)
		}
		return o.reauthEnded(st, r.shop.ID, order, ReauthReviewDeadline, fmt.Sprintf("re-authorization given up: its new transaction %s still under review after %s, cancelled; the order stays on its transaction", rs.New, o.Poll.Deadline))
	}
	return write(st, "")
}

// reauthDecided records the screening of a re-authorization's new transaction tx: OK moves the
// order onto it (the old one to cancel), NG leaves the order on the old one, under review waits.
// Its outcome says reauthorized, names tx, and names causedBy as its cause: the event that started
// the order's credit check for the re-authorization's timer, the operator's request for a
// resolution.
func (o *Orders) reauthDecided(st orderstate.State, shop, order, tx string, scr atodene.Screening, causedBy, did string) change {
	rs := reauthOf(&st)
	if why := stalePending(st); why != "" && scr.Decision() != atodene.DecisionNG {
		// The order shipped, was cancelled or changed while the registration was under way: the
		// new transaction is not adopted but cancelled (settleReauth, or the timer's reauthDrop
		// once the shop's calls resume), whatever ATODENE decided.
		o.Logger.Warn("a re-authorization's new transaction no longer fits the order: it is cancelled, not adopted",
			zap.String("shop", shop), zap.String("order", order), zap.String("transaction", tx), zap.String("why", why))
		rs.Phase, rs.New, rs.Review, rs.Scheduled = orderstate.ReauthPending, tx, "", false
		if rs.Since.IsZero() {
			rs.Since = o.Now()
		}
		return write(st, did+": new transaction "+tx+" not adopted ("+why+"): it is cancelled; the order stays on its transaction "+st.TransactionID)
	}
	switch scr.Decision() {
	case atodene.DecisionOK:
		rs.Old, rs.Phase, rs.New, rs.Review = st.TransactionID, orderstate.ReauthCancelling, "", ""
		st.TransactionID, st.ShopOrderID, rs.ShopOrderID = tx, rs.ShopOrderID, ""
		st.Review, st.Reasons = "", nil
		authorized(&st, o.Now())
		// The old transaction's cancel is due now (finishReauth): the state relies on the timer
		// for it, so that the reconciler carries it on if the settle step that follows never runs.
		rs = reauthOf(&st)
		rs.At, rs.Attempt, rs.Held = o.Now(), 0, false
		o.emitReauth(&st, shop, order, events.TypeCreditOK, tx, "", causedBy, nil)
		o.reauthorized(ReauthOK)
		return write(st, did+": ok; the order is on transaction "+tx)
	case atodene.DecisionNG:
		o.emitReauth(&st, shop, order, events.TypeCreditNG, tx, "", causedBy, scr.Reasons)
		return o.reauthEnded(st, shop, order, ReauthNG, did+": ng; the order stays on its transaction "+st.TransactionID+" until it expires")
	}
	review := ""
	if scr.Decision() == atodene.DecisionHold {
		review = "hold"
	}
	if rs.Phase == orderstate.ReauthPending && rs.New == tx && rs.Review == review {
		return write(st, "") // the review goes on as it was
	}
	if rs.Phase != orderstate.ReauthPending {
		rs.Since, rs.Attempt = o.Now(), 0
		o.reauthorized(ReauthPending)
	}
	rs.Phase, rs.New, rs.Review, rs.Scheduled = orderstate.ReauthPending, tx, review, false
	o.emitReauth(&st, shop, order, events.TypeCreditPending, tx, review, causedBy, nil)
	return write(st, did+": under review ("+tx+"); the order stays on its transaction meanwhile")
}

// emitReauth emits the credit outcome of a re-authorization's new transaction tx, caused by causedBy.
func (o *Orders) emitReauth(st *orderstate.State, shop, order, eventType, tx, review, causedBy string, reasons []string) {
	data := o.creditData(st, shop, order, eventType)
	data.TransactionID, data.Review, data.Reasons, data.Reauthorized = tx, review, reasons, true
	o.emit(st, shop, order, eventType, causedBy, data)
}

// settleReauth carries a re-authorization on from where an earlier handler left it: a
// registration whose answer is not recorded is sent again (same shopOrderId; its answer written at
// once, as it must not be lost), a new transaction under review that no longer fits the order (the
// order changed, shipped or was cancelled since) is cancelled, and the kept data of a shop that no
// longer re-authorizes is dropped. It returns st with what it did, and whether
// that differs from st. The old transaction's cancel comes after the outbox is published
// (finishReauth), and the next timer after that (scheduleReauth).
func (o *Orders) settleReauth(ctx context.Context, r *run, order string, st orderstate.State) (orderstate.State, bool, error) {
	dirty := false
	if rs := st.Reauth; rs != nil && rs.Phase == orderstate.ReauthRegistering {
		c := o.reauthResend(ctx, r, order, st)
		switch {
		case accountRefused(c.err):
			// The shop's calls are stopped: the re-authorization's timer sends it again once they
			// resume (reauthDue), and the order's own work goes on meanwhile.
		case c.err != nil:
			return st, false, c.err
		default:
			next := *c.next
			next.History = append(next.History, o.entry(Meta{Type: "reauthorization"}, c, r, st))
			written, err := o.Store.Put(ctx, r.shop.ID, order, next, o.Now())
			if err != nil {
				return st, false, err
			}
			st, dirty = written, true
		}
	}
	if rs := st.Reauth; rs != nil && rs.Phase == orderstate.ReauthPending {
		if why := stalePending(st); why != "" {
			before := st
			did := "re-authorization dropped (" + why + "): its new transaction " + rs.New + " cancelled"
			switch err := dropNew(ctx, r, &st); {
			case accountRefused(err):
				// Cancelled by the settle step after the shop's calls resume (the timer's, at the latest).
			case err != nil:
				return st, false, err
			default:
				st.History = append(st.History, o.entry(Meta{Type: "reauthorization"}, change{next: &st, did: did}, r, before))
				dirty = true
			}
		}
	}
	if r.shop.ReauthorizeAfter <= 0 && st.HasData {
		st.DropData, dirty = true, true
	}
	return st, dirty, nil
}

// reauthHeldAhead is how far ahead a re-authorization timer is only held in the timer index (its
// state's ReauthDue, written in the state's own atomic step) rather than scheduled in JetStream: the
// reconciler hands it to JetStream once it is due. An approval lasts months, and a message
// schedule for each order approved, kept until it fires, would cost a JetStream write per order
// and a stream holding every unshipped order (docs/benchmarks.md).
const reauthHeldAhead = time.Hour

// scheduleReauth sets st's re-authorization timer when it needs one (reauthTime): held in the timer
// index when it is due more than reauthHeldAhead from now, else scheduled in JetStream.
func (o *Orders) scheduleReauth(ctx context.Context, r *run, order string, st orderstate.State) (orderstate.State, bool, error) {
	at, ok := o.reauthTime(r.shop, st)
	if !ok {
		return st, false, nil
	}
	rs := reauthOf(&st)
	rs.Scheduled, rs.At, rs.Held = true, at, at.Sub(o.Now()) > reauthHeldAhead
	if !rs.Held {
		if err := o.Polls.Schedule(ctx, PollRequest{Shop: r.shop.ID, OrderID: order, Seq: rs.Seq, Kind: TimerReauth}, at); err != nil {
			return st, false, err
		}
	}
	return st, true, nil
}

// dropNew cancels the new transaction of st's re-authorization under review and ends that step.
// ATODENE refusing the cancel for good (it does not know the transaction) ends it too; a refused
// account, or any other failure, is returned to be retried.
func dropNew(ctx context.Context, r *run, st *orderstate.State) error {
	if err := r.shop.Provider.Cancel(ctx, st.Reauth.New); err != nil && !errors.Is(err, atodene.ErrAlreadyCancelled) {
		if reason, permanent := DeadLetterReason(err); !permanent || reason == ReasonAccountRefused {
			return err
		}
	}
	rs := reauthOf(st)
	rs.Phase, rs.New, rs.Review, rs.ShopOrderID, rs.Scheduled, rs.At = "", "", "", "", false, time.Time{}
	return nil
}

// stalePending says why a re-authorization's new transaction under review no longer fits the
// order, or "".
func stalePending(st orderstate.State) string {
	switch {
	case st.Status != orderstate.StatusOK:
		return "the order is " + statusWord(st.Status)
	case st.Shipment != nil && st.Shipment.Reported:
		return "the order shipped on its transaction"
	case st.DataHash != st.Reauth.DataHash:
		return "the order changed since"
	}
	return ""
}

// finishReauth sends the cancel of the transaction a re-authorization replaced, after the outbox
// (the new transaction's credit.ok) is published. ATODENE's refusal of it (the transaction unknown)
// ends it too, noted in the history: the order is on its new transaction either way. A failure a
// retry may mend leaves it to the re-authorization's timer (cancelOldLater), which it waits for.
func (o *Orders) finishReauth(ctx context.Context, r *run, order string, st orderstate.State) (orderstate.State, bool, error) {
	rs := st.Reauth
	if rs == nil || rs.Phase != orderstate.ReauthCancelling || (rs.Scheduled && o.Now().Before(rs.At)) {
		return st, false, nil
	}
	did := "re-authorized: cancelled the old transaction " + rs.Old
	if err := r.shop.Provider.Cancel(ctx, rs.Old); err != nil && !errors.Is(err, atodene.ErrAlreadyCancelled) {
		if reason, permanent := DeadLetterReason(err); !permanent || reason == ReasonAccountRefused {
			return o.cancelOldLater(ctx, r, order, st, err)
		}
		did = "re-authorized; ATODENE refused the cancel of the old transaction " + rs.Old + " (" + err.Error() + "): check it in ATODENE's screen"
	}
	before := st
	rs = reauthOf(&st)
	// Done: the next re-authorization is scheduled afresh (scheduleReauth) over the retry's timer.
	rs.Phase, rs.Old, rs.Attempt, rs.Scheduled, rs.At, rs.Held = "", "", 0, false, time.Time{}, false
	st.History = append(st.History, o.entry(Meta{Type: "reauthorization"}, change{next: &st, did: did}, r, before))
	return st, true, nil
}

// cancelOldLater leaves the cancel of the transaction a re-authorization replaced, which failed
// with cause (ATODENE unreachable, the shop's account refused), to the re-authorization's timer:
// due when the shop's calls resume, or after the re-check delay. It fails no step: the handler of
// the order's next event goes on with its own work, and the credit.ok of the new transaction,
// published already, is not held up. Only the first failure is noted in the history; the timer
// (or the reconciler, if it is lost) tries again until ATODENE answers.
func (o *Orders) cancelOldLater(ctx context.Context, r *run, order string, st orderstate.State, cause error) (orderstate.State, bool, error) {
	before := st
	rs := reauthOf(&st)
	at := o.retryAt(r.shop.ID, cause, rs.Attempt)
	if err := o.Polls.Schedule(ctx, PollRequest{Shop: r.shop.ID, OrderID: order, Seq: rs.Seq, Kind: TimerReauth}, at); err != nil {
		return before, false, err
	}
	if rs.Attempt == 0 {
		did := "re-authorized; the cancel of the old transaction " + rs.Old + " failed (" + cause.Error() + "): the re-authorization's timer tries again"
		st.History = append(st.History, o.entry(Meta{Type: "reauthorization"}, change{next: &st, did: did}, r, before))
	}
	o.Logger.Warn("the cancel of a re-authorized order's old transaction failed; its timer tries again",
		zap.String("shop", r.shop.ID), zap.String("order", order), zap.Time("retry_at", at), zap.Error(cause))
	rs.Attempt++
	rs.Scheduled, rs.At, rs.Held = true, at, false
	return st, true, nil
}

// reauthTime says when st's re-authorization timer is to be scheduled, if it is to be now: the
// next re-check of a new transaction under review, or, for an order OK on a transaction approved
// at AuthorizedAt whose data is kept and that is not shipped, AuthorizedAt + ReauthorizeAfter. A
// re-authorization that ended (Failed) has none: an unknown one waits for the operator's
// resolution, which schedules the next.
func (o *Orders) reauthTime(shop *Shop, st orderstate.State) (time.Time, bool) {
	rs := st.Reauth
	switch {
	case rs != nil && (rs.Scheduled || rs.Failed != ""):
		return time.Time{}, false
	case rs != nil && rs.Phase == orderstate.ReauthPending:
		return o.Now().Add(o.Poll.Delay(rs.Attempt)), true
	case shop.ReauthorizeAfter <= 0 || st.Status != orderstate.StatusOK || !st.HasData || !st.KeepsData() || st.DropData ||
		(rs != nil && rs.Phase != ""):
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
