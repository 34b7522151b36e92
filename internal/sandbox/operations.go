package sandbox

import (
	"slices"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
)

// Each operation decodes its request, authenticates it, then does all its reading and writing of
// state under s.mu, so that a check (say, the duplicate rule) and the change it guards are atomic.
// Errors about the addressed transaction (unknown, cancelled) are reported alone and before any
// field error, so that er000033 reliably answers any call on a cancelled transaction.

func ng(e apiError) outcome { return outcome{resp: ngResponse(e)} }

// request is a decoded request document; every one starts with linkInfo.
type request interface{ link() linkInfoXML }

func (r *registerRequest) link() linkInfoXML { return r.LinkInfo }
func (r *txRefRequest) link() linkInfoXML    { return r.LinkInfo }
func (r *shipmentRequest) link() linkInfoXML { return r.LinkInfo }
func (r *modifyRequest) link() linkInfoXML   { return r.LinkInfo }

// txRequest is a request addressed to an existing transaction.
type txRequest interface {
	request
	txID() string
}

func (r *txRefRequest) txID() string    { return r.TransactionInfo.TransactionID }
func (r *shipmentRequest) txID() string { return r.TransactionInfo.TransactionID }
func (r *modifyRequest) txID() string   { return r.TransactionInfo.TransactionID }

// begin decodes body into req and finds the shop it comes from. A non-nil error is the whole answer.
func (s *Server) begin(body []byte, req request) (Shop, *apiError) {
	if decodeRequest(body, req) != nil {
		return Shop{}, &errRequest
	}
	return s.authenticate(req.link())
}

// about starts the outcome of a request addressed to t.
func about(t *transaction) outcome {
	if t == nil {
		return outcome{}
	}
	return outcome{txID: t.id, slow: t.slow()}
}

// lookup finds the transaction a request names and counts the call on it. It returns the transaction
// even when it is cancelled, with errCancelled, so that the call is still counted and logged.
// s.mu must be held.
func (s *Server) lookup(shop Shop, id, op string) (*transaction, *apiError) {
	if e, ok := checkField("transactionId", id, 0); !ok {
		return nil, &e
	}
	t := s.store.byID[id]
	if t == nil || t.shopCode != shop.ShopCode {
		return nil, &errUnknownTx
	}
	t.calls[op]++
	if t.cancelled {
		return t, &errCancelled
	}
	return t, nil
}

// onTransaction runs an operation on the transaction req names: begin, then under s.mu lookup
// (counting the call as op) and apply, whose answer is the response. A failed begin or lookup is
// the whole answer, before any field check of the operation (see the top of this file).
func (s *Server) onTransaction(body []byte, req txRequest, op string, apply func(t *transaction, now time.Time) *responseXML) outcome {
	shop, beginErr := s.begin(body, req)
	if beginErr != nil {
		return ng(*beginErr)
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t, lookupErr := s.lookup(shop, req.txID(), op)
	out := about(t)
	if lookupErr != nil {
		out.resp = ngResponse(*lookupErr)
		return out
	}
	out.resp = apply(t, now)
	out.slow = out.slow || t.slow() // a change may bring a slow profile's email
	return out
}

// register is transaction.do: validate, apply the duplicate rule, create and screen.
func (s *Server) register(body []byte) outcome {
	var req registerRequest
	shop, beginErr := s.begin(body, &req)
	if beginErr != nil {
		return ng(*beginErr)
	}
	errs := checkBrowser(req.BrowserInfo)
	o, orderErrs := checkOrder(req.Customer, req.Ship, req.Details)
	errs = append(errs, orderErrs...)
	out := outcome{slow: profileOf(o.customer.Email) == profileSlow}
	key := orderKey{shop.ShopCode, o.customer.ShopOrderID}
	// Only a well-formed shopOrderId can be a duplicate or be counted in the order's history.
	knownOrder := req.Customer != nil && !hasPoint(errs, "shopOrderId")
	now := s.cfg.Now()

	s.mu.Lock()
	defer s.mu.Unlock()
	if knownOrder && s.store.hasLive(key, now) {
		errs = append(errs, errDuplicate)
	}
	if len(errs) > 0 {
		if knownOrder {
			s.store.history(key).rejected++
		}
		out.resp = ngResponse(errs...)
		return out
	}
	t := &transaction{
		id: s.ids.newID(), shopCode: shop.ShopCode, shopOrderID: key.shopOrderID, registeredAt: now,
		order: o, screening: s.screen(o.customer.Email, o.billed, now), calls: map[string]int{opRegister: 1},
	}
	s.store.add(t)
	out.txID = t.id
	out.resp = okResponse(&registerInfoXML{ShopOrderID: t.shopOrderID, TransactionID: t.id, AutoAuthoriresult: t.screening.auto})
	return out
}

// getAuthori is getauthori.do: the screening result as of now.
func (s *Server) getAuthori(body []byte) outcome {
	return s.onTransaction(body, &txRefRequest{}, opAuthori, func(t *transaction, now time.Time) *responseXML {
		info := &authoriInfoXML{TransactionID: t.id, AutoAuthoriresult: t.screening.auto}
		info.ManualAuthoriresult, _ = t.screening.manual(now)
		info.ManualReasons.Reason = t.screening.reasons(now)
		return okResponse(info)
	})
}

// shipment is shippingrequest.do: report (1), change (2) or cancel (3) the shipment report.
func (s *Server) shipment(body []byte) outcome {
	var req shipmentRequest
	return s.onTransaction(body, &req, opShipment, func(t *transaction, now time.Time) *responseXML {
		ti := req.TransactionInfo
		next := shipment{deliveryType: ti.DeliveryType, companyCode: ti.DeliveryCompanyCode, slipNo: ti.DeliverySlipNo, invoiceDate: ti.InvoiceDate}
		if errs := next.check(); len(errs) > 0 {
			return ngResponse(errs...)
		}
		if next.deliveryType != "3" && s.authorizationExpired(t, now) {
			return ngResponse(errExpired) // a shipment cancel (3) is still accepted
		}
		if e := t.applyShipment(next, now); e != nil {
			return ngResponse(*e)
		}
		return okResponse(&txIDInfoXML{TransactionID: t.id})
	})
}

// carriers are the carrier codes of docs/protocol.md#carrier-codes.
var carriers = []string{"11", "12", "13", "14", "15", "16", "18", "20", "21", "23", "26", "27", "28", "29", "30", "31", "32"}

// check validates a shipment report. A cancel (3) may leave company and slip empty, as
// EC-CUBE sends them (docs/protocol.md#shippingrequestdo-shipment-report).
func (sh shipment) check() []apiError {
	var errs []apiError
	if !slices.Contains([]string{"1", "2", "3"}, sh.deliveryType) {
		errs = append(errs, fieldError("deliveryType", sh.deliveryType, 0))
	}
	fields := []field{{"deliveryCompanyCode", sh.companyCode}, {"deliverySlipNo", sh.slipNo}, {"invoiceDate", sh.invoiceDate}}
	if sh.deliveryType == "3" {
		fields = slices.DeleteFunc(fields, func(f field) bool { return f.value == "" })
	}
	errs = append(errs, checkFields(fields, 0)...)
	if sh.companyCode != "" && !hasPoint(errs, "deliveryCompanyCode") && !slices.Contains(carriers, sh.companyCode) {
		errs = append(errs, errCarrier)
	}
	return errs
}

func (t *transaction) applyShipment(next shipment, now time.Time) *apiError {
	switch next.deliveryType {
	case "1":
		if t.shipment != nil {
			return &errShipped
		}
		if t.screening.decision(now) != resultOK {
			return &errShipNotOK
		}
		t.shipment = &next
	case "2":
		if t.shipment == nil {
			return &errNoShipment
		}
		t.shipment = &next
	case "3":
		if t.shipment == nil {
			return &errNoShipment
		}
		t.shipment = nil
	}
	return nil
}

// authorizationExpired reports whether t's authorization has outlived Config.AuthorizationLifetime
// at now, counted from its last OK decision (screening.authorizedAt). A transaction whose decision
// is not OK has no authorization, so it never expires; a lifetime of 0 never expires either.
func (s *Server) authorizationExpired(t *transaction, now time.Time) bool {
	if s.cfg.AuthorizationLifetime <= 0 {
		return false
	}
	at, ok := t.screening.authorizedAt(now)
	return ok && !now.Before(at.Add(s.cfg.AuthorizationLifetime))
}

// modify is modifytransaction.do: cancel (updateTypeFlag 1) or change (2). A cancel is accepted
// even after the authorization expired: a re-authorization registers anew and cancels the old one.
func (s *Server) modify(body []byte) outcome {
	var req modifyRequest
	return s.onTransaction(body, &req, opModify, func(t *transaction, now time.Time) *responseXML {
		switch flag := req.TransactionInfo.UpdateTypeFlag; flag {
		case "1":
			t.cancelled = true
			return okResponse(&txIDInfoXML{TransactionID: t.id})
		case "2":
			return s.change(t, &req, now)
		default:
			return ngResponse(fieldError("updateTypeFlag", flag, 0))
		}
	})
}

// change replaces the order, unless the authorization has expired (er000102). It re-screens unless only the addresses changed; then it answers an
// empty autoAuthoriresult and keeps the decision (docs/protocol.md#modifytransactiondo-change-or-cancel).
// A change that would re-screen t while another transaction of its shopOrderId is live is refused
// with er000101, as a registration would be, and leaves t as it was: the duplicate rule holds
// through changes, so one order never has two live transactions.
// A re-screen that comes back 審査中 starts a new review, so the review clock restarts. The
// transaction keeps the shopOrderId it was registered with, since w2 sends a different (base) order
// ID in changes.
func (s *Server) change(t *transaction, req *modifyRequest, now time.Time) *responseXML {
	o, errs := checkOrder(req.Customer, req.Ship, req.Details)
	if len(errs) > 0 {
		return ngResponse(errs...)
	}
	if s.authorizationExpired(t, now) {
		return ngResponse(errExpired)
	}
	info := &changeInfoXML{TransactionID: t.id}
	if !t.order.addressOnlyChange(o) {
		if s.store.hasLiveOther(t, now) {
			// Only an NG transaction can have a live sibling (the duplicate rule let the order be
			// registered again); re-screening it could revive it into a second live transaction.
			return ngResponse(errDuplicate)
		}
		t.screening = s.screen(o.customer.Email, o.billed, now)
		info.AutoAuthoriresult = t.screening.auto
	}
	t.order = o
	return okResponse(info)
}

// invoice is getinvoicedata.do: print data for an enclosed invoice of an approved transaction.
func (s *Server) invoice(body []byte) outcome {
	return s.onTransaction(body, &txRefRequest{}, opInvoice, func(t *transaction, now time.Time) *responseXML {
		var errs []apiError
		if t.screening.decision(now) != resultOK {
			errs = append(errs, errInvoiceNotOK)
		}
		if t.order.customer.Service != atodene.ServiceEnclosed {
			errs = append(errs, errNotEnclosed)
		}
		if len(errs) > 0 {
			return ngResponse(errs...)
		}
		return &responseXML{Result: "OK", Invoice: s.invoiceInfo(t, now)}
	})
}
