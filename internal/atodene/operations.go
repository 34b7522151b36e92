package atodene

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Decision is a screening result: the auto result of a registration or change, or the state a
// getauthori answer resolves to.
type Decision string

// Decisions. DecisionNone is an empty autoAuthoriresult of a change (no new screening: the
// earlier decision stands) or an empty manual result (review not finished).
const (
	DecisionOK     Decision = "OK"
	DecisionNG     Decision = "NG"
	DecisionReview Decision = "審査中"
	DecisionHold   Decision = "保留"
	DecisionNone   Decision = ""
)

// Registration is the answer to Register.
type Registration struct {
	TransactionID string
	Auto          Decision // OK, NG or 審査中
}

// Register sends 取引登録 (transaction.do) for the order that Order.Check made req from: it
// registers the transaction and returns the automatic screening result. req is sent as checked,
// without checking it again; a zero Request is refused with ErrUncheckedRequest and nothing is
// sent. Only a request that never reached ATODENE is retried: after an OutcomeUnknown error the
// order may be registered.
func (c *Client) Register(ctx context.Context, req Request) (Registration, error) {
	if err := req.sendable(opRegister); err != nil {
		return Registration{}, err
	}
	r, err := c.call(ctx, opRegister, registerRequest(c.linkInfo(), req.browser, req.customer, req.ship, req.details))
	if err != nil {
		return Registration{}, err
	}
	ti := r.TransactionInfo
	if ti == nil || strings.TrimSpace(ti.TransactionID) == "" {
		return Registration{}, &MalformedResponseError{Op: opRegister, Reason: "no transactionId"}
	}
	// One no later call could name (each checks it, and sends nothing) would leave the order
	// registered and stuck: the outcome is unknown, for an operator.
	if reason := FieldReason("transactionId", strings.TrimSpace(ti.TransactionID)); reason != "" {
		return Registration{}, &MalformedResponseError{Op: opRegister, Reason: fmt.Sprintf("transactionId %s %s", quoteToken(ti.TransactionID, 40), reason)}
	}
	if strings.TrimSpace(ti.ShopOrderID) != req.customer.ShopOrderID {
		return Registration{}, &MalformedResponseError{Op: opRegister, Reason: "shopOrderId echoed back differs from the one sent"}
	}
	auto, err := parseDecision(opRegister, ti.AutoAuthoriresult, DecisionOK, DecisionNG, DecisionReview)
	if err != nil {
		return Registration{}, err
	}
	return Registration{TransactionID: strings.TrimSpace(ti.TransactionID), Auto: auto}, nil
}

// Screening is the answer to GetAuthori.
type Screening struct {
	TransactionID string
	Auto          Decision // OK, NG or 審査中
	Manual        Decision // OK, NG, 保留, or none while the manual review is not finished
	Reasons       []string // the manual review's reasons, verbatim
}

// Decision resolves a screening the way docs/protocol.md#screening-results describes: the auto
// result when it is final, otherwise the manual one; DecisionReview while the review is not
// finished.
func (s Screening) Decision() Decision {
	if s.Auto != DecisionReview {
		return s.Auto
	}
	if s.Manual == DecisionNone {
		return DecisionReview
	}
	return s.Manual
}

// GetAuthori sends 与信審査結果取得 (getauthori.do) and returns the screening state of a
// transaction. It is read-only, so every transport failure is retried.
func (c *Client) GetAuthori(ctx context.Context, transactionID string) (Screening, error) {
	if err := checkTransactionID(opAuthori, transactionID); err != nil {
		return Screening{}, err
	}
	r, err := c.call(ctx, opAuthori, txRefRequest(c.linkInfo(), transactionID))
	if err != nil {
		return Screening{}, err
	}
	ti := r.TransactionInfo
	if ti == nil {
		return Screening{}, &MalformedResponseError{Op: opAuthori, Reason: "no transactionInfo"}
	}
	s := Screening{TransactionID: strings.TrimSpace(ti.TransactionID)}
	if s.Auto, err = parseDecision(opAuthori, ti.AutoAuthoriresult, DecisionOK, DecisionNG, DecisionReview); err != nil {
		return Screening{}, err
	}
	if s.Manual, err = parseDecision(opAuthori, ti.ManualAuthoriresult, DecisionOK, DecisionNG, DecisionHold, DecisionNone); err != nil {
		return Screening{}, err
	}
	for _, reason := range ti.ManualReasons {
		if reason = strings.TrimSpace(reason); reason != "" {
			s.Reasons = append(s.Reasons, reason)
		}
	}
	return s, nil
}

// DeliveryType says what a shipment report does (deliveryType).
type DeliveryType string

// Shipment report kinds.
const (
	DeliveryNew    DeliveryType = "1" // 出荷報告
	DeliveryChange DeliveryType = "2" // 出荷報告変更
	DeliveryCancel DeliveryType = "3" // 出荷報告取消し
)

// Shipment is a shipment report (出荷報告).
type Shipment struct {
	Type          DeliveryType
	TransactionID string
	CarrierCode   string    // two digits, docs/protocol.md#carrier-codes; empty for a cancel
	SlipNo        string    // the tracking number; empty for a cancel
	InvoiceDate   time.Time // the date the enclosed invoice is issued; zero for none
}

// ReportShipment sends 出荷報告 (shippingrequest.do): a new report, a change of it or its cancel.
// Only a request that never reached ATODENE is retried.
func (c *Client) ReportShipment(ctx context.Context, s Shipment) error {
	ti := shipmentXML{DeliveryType: string(s.Type), TransactionID: s.TransactionID}
	if s.Type != DeliveryCancel {
		ti.DeliveryCompanyCode, ti.DeliverySlipNo = s.CarrierCode, s.SlipNo
		if !s.InvoiceDate.IsZero() {
			ti.InvoiceDate = s.InvoiceDate.Format("2006/01/02")
		}
	}
	var fc fieldChecker
	if s.Type != DeliveryNew && s.Type != DeliveryChange && s.Type != DeliveryCancel {
		fc.errs = append(fc.errs, FieldError{Field: "deliveryType", Reason: "must be 1, 2 or 3"})
	}
	fc.check("", "transactionId", ti.TransactionID)
	if s.Type != DeliveryCancel {
		fc.check("", "deliveryCompanyCode", ti.DeliveryCompanyCode)
		fc.check("", "deliverySlipNo", ti.DeliverySlipNo)
	}
	if err := fc.err(opShipment); err != nil {
		return err
	}
	_, err := c.call(ctx, opShipment, shipmentRequest(c.linkInfo(), ti))
	return err
}

// Change is the answer to Modify.
type Change struct {
	TransactionID string
	// Auto is the new screening result: OK, NG, 審査中, or none when the change needed no new
	// screening and the earlier decision stands.
	Auto Decision
}

// Modify sends 取引変更 (modifytransaction.do, updateTypeFlag 2): a full replacement of the
// transaction's buyer, consignee, lines and billed amount, from the order that Order.Check made
// req from. req is sent as checked, as for Register (a zero Request is refused with
// ErrUncheckedRequest); transactionID is checked here, and a malformed one is an
// *InvalidRequestError. Nothing is sent after either failure. Only a request that never reached
// ATODENE is retried.
func (c *Client) Modify(ctx context.Context, transactionID string, req Request) (Change, error) {
	if err := req.sendable(opModify); err != nil {
		return Change{}, err
	}
	if err := checkTransactionID(opModify, transactionID); err != nil {
		return Change{}, err
	}
	body := modifyRequest(c.linkInfo(), "2", transactionID, func(d *xmlDoc) {
		req.customer.write(d)
		req.ship.write(d)
		req.details.write(d)
	})
	r, err := c.call(ctx, opModify, body)
	if err != nil {
		return Change{}, err
	}
	if r.TransactionInfo == nil {
		return Change{}, &MalformedResponseError{Op: opModify, Reason: "no transactionInfo"}
	}
	auto, err := parseDecision(opModify, r.TransactionInfo.AutoAuthoriresult, DecisionOK, DecisionNG, DecisionReview, DecisionNone)
	if err != nil {
		return Change{}, err
	}
	return Change{TransactionID: strings.TrimSpace(r.TransactionInfo.TransactionID), Auto: auto}, nil
}

// Cancel sends 取引キャンセル (modifytransaction.do, updateTypeFlag 1). A transaction that was
// already cancelled yields a *RejectedError matching ErrAlreadyCancelled, which callers usually
// count as success. Only a request that never reached ATODENE is retried.
func (c *Client) Cancel(ctx context.Context, transactionID string) error {
	if err := checkTransactionID(opModify, transactionID); err != nil {
		return err
	}
	_, err := c.call(ctx, opModify, modifyRequest(c.linkInfo(), "1", transactionID, nil))
	return err
}

// Invoice is the print data of an enclosed invoice (docs/protocol.md#invoice-print-data): every element of invoiceInfo as
// the display string ATODENE sent, and the detail lines.
type Invoice struct {
	Fields  map[string]string   `json:"fields"`
	Details []map[string]string `json:"details"`
}

// InvoiceData sends 請求書印字データ取得 (getinvoicedata.do). It is retried like a read-only
// operation: the first call fixes the payment deadline and later calls return the same data.
func (c *Client) InvoiceData(ctx context.Context, transactionID string) (Invoice, error) {
	if err := checkTransactionID(opInvoice, transactionID); err != nil {
		return Invoice{}, err
	}
	r, err := c.call(ctx, opInvoice, txRefRequest(c.linkInfo(), transactionID))
	if err != nil {
		return Invoice{}, err
	}
	if r.InvoiceInfo == nil {
		return Invoice{}, &MalformedResponseError{Op: opInvoice, Reason: "no invoiceInfo"}
	}
	inv := Invoice{Fields: map[string]string{}}
	for _, el := range r.InvoiceInfo.Elements {
		if el.XMLName.Local != "details" {
			inv.Fields[el.XMLName.Local] = el.Text
			continue
		}
		for _, d := range el.Children {
			line := map[string]string{}
			for _, f := range d.Children {
				line[f.XMLName.Local] = f.Text
			}
			inv.Details = append(inv.Details, line)
		}
	}
	return inv, nil
}

func checkTransactionID(op, id string) error {
	if err := CheckField("transactionId", id); err != nil {
		return &InvalidRequestError{Op: op, Fields: []FieldError{*err.(*FieldError)}}
	}
	return nil
}

// parseDecision reads a result element, accepting only the given values.
func parseDecision(op, raw string, allowed ...Decision) (Decision, error) {
	d := Decision(strings.TrimSpace(raw))
	for _, a := range allowed {
		if d == a {
			return d, nil
		}
	}
	return "", &MalformedResponseError{Op: op, Reason: fmt.Sprintf("unexpected screening result %s", quoteToken(raw, 20))}
}
