package sandbox

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"
)

// TransactionView is one element of GET /sandbox/transactions.
type TransactionView struct {
	TransactionID string `json:"transactionId"`
	ShopCode      string `json:"shopCode"`
	ShopOrderID   string `json:"shopOrderId"`
	// State is active or cancelled.
	State string `json:"state"`
	// Decision is the effective screening result now: OK, NG, 審査中 or 保留.
	Decision string `json:"decision"`
	// AutoResult and ManualResult are what getauthori.do answers now.
	AutoResult   string `json:"autoResult"`
	ManualResult string `json:"manualResult"`
	// Registrations counts the accepted registrations of this shop's shopOrderId (all its
	// transactions); RejectedRegistrations counts those answered NG, duplicates included.
	Registrations         int `json:"registrations"`
	RejectedRegistrations int `json:"rejectedRegistrations"`
	// BilledAmount and Service are the order's current values.
	BilledAmount int64  `json:"billedAmount"`
	Service      string `json:"service"`
	// Shipment is the current shipment report, or null.
	Shipment *ShipmentView `json:"shipment"`
	// Calls counts the calls that named this transaction, per operation.
	Calls        map[string]int `json:"calls"`
	RegisteredAt time.Time      `json:"registeredAt"`
}

// ShipmentView is a transaction's shipment report.
type ShipmentView struct {
	DeliveryType        string `json:"deliveryType"` // 1 reported, 2 changed
	DeliveryCompanyCode string `json:"deliveryCompanyCode"`
	DeliverySlipNo      string `json:"deliverySlipNo"`
	InvoiceDate         string `json:"invoiceDate"`
}

// view describes t at time now. s.mu must be held.
func (s *Server) view(t *transaction, now time.Time) TransactionView {
	h := s.store.orders[orderKey{t.shopCode, t.shopOrderID}]
	v := TransactionView{
		TransactionID: t.id, ShopCode: t.shopCode, ShopOrderID: t.shopOrderID, State: "active",
		Decision: t.screening.decision(now), AutoResult: t.screening.auto,
		Registrations: len(h.transactions), RejectedRegistrations: h.rejected,
		BilledAmount: t.order.billed, Service: t.order.customer.Service,
		Calls: maps.Clone(t.calls), RegisteredAt: t.registeredAt,
	}
	v.ManualResult, _ = t.screening.manual(now)
	if t.cancelled {
		v.State = "cancelled"
	}
	if sh := t.shipment; sh != nil {
		v.Shipment = &ShipmentView{sh.deliveryType, sh.companyCode, sh.slipNo, sh.invoiceDate}
	}
	return v
}

// listTransactions answers the transactions of ?shopOrderId= (every shop), or all of them when it is
// absent, in registration order, as a JSON array.
func (s *Server) listTransactions(w http.ResponseWriter, r *http.Request) {
	orderID, filtered := r.URL.Query()["shopOrderId"]
	now := s.cfg.Now()
	s.mu.Lock()
	var ts []*transaction
	for _, t := range s.store.byID {
		if !filtered || t.shopOrderID == orderID[0] {
			ts = append(ts, t)
		}
	}
	slices.SortFunc(ts, func(a, b *transaction) int { return a.seq - b.seq })
	views := make([]TransactionView, 0, len(ts))
	for _, t := range ts {
		views = append(views, s.view(t, now))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, views)
}

// decide sets the manual result of a transaction under review, from now on. A 保留 still turns NG
// after the hold delay, as a hold does by itself.
func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Result string `json:"result"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body); err != nil {
		writeJSONError(w, http.StatusBadRequest, "body must be {\"result\": \"OK\"|\"NG\"|\"保留\"}")
		return
	}
	if !slices.Contains([]string{resultOK, resultNG, resultHold}, body.Result) {
		writeJSONError(w, http.StatusBadRequest, "result must be OK, NG or 保留")
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.store.byID[r.PathValue("id")]
	switch {
	case t == nil:
		writeJSONError(w, http.StatusNotFound, "no such transaction")
		return
	case t.cancelled:
		writeJSONError(w, http.StatusConflict, "the transaction is cancelled")
		return
	case t.screening.auto != resultReview:
		writeJSONError(w, http.StatusConflict, "the transaction is not under review: its automatic result is "+t.screening.auto)
		return
	}
	t.screening.steps = s.manualSteps(body.Result, now)
	s.log.Info("decision", zap.String("transaction_id", t.id), zap.String("result", body.Result))
	writeJSON(w, http.StatusOK, s.view(t, now))
}

func (s *Server) manualSteps(result string, now time.Time) []step {
	switch result {
	case resultHold:
		return s.holdSteps(now)
	case resultNG:
		return []step{{at: now, result: resultNG, reasons: reasonManualNG}}
	}
	return []step{{at: now, result: resultOK}}
}

func (s *Server) getStats(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	st := s.stats.clone()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) getFaults(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	f := s.faults
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, f)
}

// putFaults replaces the faults; fields left out of the body become zero.
func (s *Server) putFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeJSONError(w, http.StatusBadRequest, "body must be a faults object: "+err.Error())
		return
	}
	if err := f.validate(); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
	s.log.Info("faults", zap.Any("faults", f))
	writeJSON(w, http.StatusOK, f)
}

// reset forgets transactions, stats and faults. Transaction IDs keep counting, so an ID a client
// still holds never names a new transaction.
func (s *Server) reset(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	s.store = newStore()
	s.stats = newStats()
	s.faults = Faults{}
	s.mu.Unlock()
	s.log.Info("reset")
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client may be gone; nothing to do about it
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
