package reliability

import (
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// ev makes an accepted event with one message at seq.
func ev(key, typ, order string, seq uint64, want Want) *Event {
	return &Event{Key: key, Type: typ, Shop: shopA, Order: order, Msgs: []Msg{{Seq: seq, MsgID: key}}, Want: want}
}

// out makes an outcome naming the order's transaction that ends OK (tx).
func out(seq uint64, typ, order, causation string) Outcome {
	return Outcome{Seq: seq, MsgID: order + ":" + typ + ":" + causation, Type: typ, Shop: shopA, Order: order, Causation: causation,
		TxID: order + "-OK"}
}

// tx makes a sandbox transaction of shopA, its invoice enclosed; one decided OK holds the
// lifecycle's shipment report.
func tx(order, state, decision string, at int) sandbox.TransactionView {
	t := sandbox.TransactionView{TransactionID: order + "-" + decision, ShopCode: codeA, ShopOrderID: order, State: state,
		Decision: decision, Service: atodene.ServiceEnclosed, RegisteredAt: time.Unix(int64(at), 0)}
	if decision == "OK" {
		t.Shipment = &sandbox.ShipmentView{DeliveryType: "1", DeliveryCompanyCode: "12", DeliverySlipNo: "400000010001"}
	}
	return t
}

// lifecycle is a clean run of one order: created (review, then OK), a shipment and an invoice.
func lifecycle() Observed {
	tracking := ev("t1", events.TypeTrackingEntered, "A", 2, Want{Direct: []string{events.TypeShipmentOK}})
	tracking.Tracking = "400000010001"
	ship := out(3, events.TypeShipmentOK, "A", "c1")
	ship.Tracking = "400000010001"
	hold := out(2, events.TypeCreditPending, "A", "c1")
	hold.Review, hold.MsgID = "hold", "A:credit.pending:hold"
	return Observed{
		Events: []*Event{
			ev("c1", events.TypeOrderCreated, "A", 1, Want{Direct: []string{events.TypeCreditPending}, Final: events.TypeCreditOK}),
			tracking,
			ev("i1", events.TypeInvoiceRequested, "A", 3, Want{Direct: []string{events.TypeInvoiceOK}}),
		},
		Outcomes: []Outcome{
			out(1, events.TypeCreditPending, "A", "c1"), hold, out(4, events.TypeCreditOK, "A", "c1"),
			ship, out(5, events.TypeInvoiceOK, "A", "i1"),
		},
		Transactions: []sandbox.TransactionView{tx("A", "active", "OK", 1)},
		Healthy:      true,
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(o *Observed)
		pass   bool
		want   string // a violation or note containing this, or "" for none
		check  func(t *testing.T, v Verdict)
	}{
		{name: "clean lifecycle", change: func(*Observed) {}, pass: true,
			check: func(t *testing.T, v Verdict) {
				if v.Accepted != 3 || v.Events != 3 || v.Outcomes != 5 || v.Lost != 0 {
					t.Errorf("verdict %+v", v)
				}
			}},
		{name: "an event without outcome or dead letter is lost", change: func(o *Observed) {
			o.Outcomes = o.Outcomes[:4]
		}, want: "lost: order.invoice_requested A i1",
			check: func(t *testing.T, v Verdict) {
				if v.Lost != 1 {
					t.Errorf("lost = %d, want 1", v.Lost)
				}
			}},
		{name: "a credit check left pending is lost", change: func(o *Observed) {
			o.Outcomes = o.Outcomes[:2]
			o.Events = o.Events[:1]
		}, want: "unresolved"},
		{name: "a pending check ended by a later cancel is fine", change: func(o *Observed) {
			o.Outcomes = append(o.Outcomes[:2], out(9, events.TypeCreditCancelled, "A", "x1"))
			o.Events = append(o.Events[:1], ev("x1", events.TypeOrderCancelled, "A", 9, Want{Direct: []string{events.TypeCreditCancelled}}))
			o.Transactions = []sandbox.TransactionView{tx("A", "cancelled", "OK", 1)}
		}, pass: true},
		{name: "the same Nats-Msg-Id twice", change: func(o *Observed) {
			o.Outcomes = append(o.Outcomes, o.Outcomes[4])
		}, want: "stored twice",
			check: func(t *testing.T, v Verdict) {
				if v.DupOutcomes == 0 {
					t.Error("no duplicate counted")
				}
			}},
		{name: "the same outcome under two ids", change: func(o *Observed) {
			again := o.Outcomes[3]
			again.MsgID, again.Seq = "other", 9
			o.Outcomes = append(o.Outcomes, again)
		}, want: "published twice with the same content"},
		{name: "two decisions for one registration", change: func(o *Observed) {
			o.Outcomes = append(o.Outcomes, out(9, events.TypeCreditNG, "A", "c1"))
		}, want: "more than one decision"},
		{name: "the wrong decision", change: func(o *Observed) {
			o.Outcomes[2].Type = events.TypeCreditNG
		}, want: "decided credit.ng, want credit.ok"},
		{name: "the wrong kind of outcome", change: func(o *Observed) {
			o.Events[2].Want.Direct = []string{events.TypeInvoiceNG}
		}, want: "its outcome is invoice.ok, want invoice.ng"},
		{name: "an outcome nobody asked for", change: func(o *Observed) {
			o.Outcomes = append(o.Outcomes, out(9, events.TypeCreditOK, "A", "nobody"))
		}, want: "orphan outcome"},
		{name: "an outcome and a dead letter", change: func(o *Observed) {
			o.DeadLetters = []DeadLetter{{Reason: "exhausted", OrigStream: "ORDERS", OrigSeq: 3, Event: "i1"}}
		}, want: "outcome and dead letter"},
		{name: "outcome-unknown where it may be", change: func(o *Observed) {
			o.Events[0].Want.MayBeUnknown = true
			o.Outcomes = o.Outcomes[3:]
			o.DeadLetters = []DeadLetter{{Reason: "outcome-unknown", OrigStream: "ORDERS", OrigSeq: 1, Event: "c1"}}
		}, pass: true, want: "1 outcome-unknown dead letters"},
		{name: "outcome-unknown where it may not be", change: func(o *Observed) {
			o.Outcomes = o.Outcomes[3:]
			o.DeadLetters = []DeadLetter{{Reason: "outcome-unknown", OrigStream: "ORDERS", OrigSeq: 1}}
		}, want: "wrong dead letter"},
		{name: "a dead letter found by sequence", change: func(o *Observed) {
			o.Events[0].Want.MayBeUnknown = true
			o.Outcomes = o.Outcomes[3:]
			o.DeadLetters = []DeadLetter{{Reason: "outcome-unknown", OrigStream: "ORDERS", OrigSeq: 1}}
		}, pass: true},
		{name: "a dead letter of no event", change: func(o *Observed) {
			o.DeadLetters = []DeadLetter{{Subject: "dlq.atodene.poll.due.rel-a.QQ", Reason: "poll-deadline", OrigStream: "ATODENE_POLLS", OrigSeq: 1}}
		}, want: "unexpected dead letter"},
		{name: "the same message dead-lettered twice", change: func(o *Observed) {
			o.Events[0].Want.MayBeUnknown = true
			o.Outcomes = o.Outcomes[3:]
			d := DeadLetter{Reason: "outcome-unknown", OrigStream: "ORDERS", OrigSeq: 1, Event: "c1"}
			o.DeadLetters = []DeadLetter{d, d}
		}, want: "dead-lettered twice"},
		{name: "a registered twice while live", change: func(o *Observed) {
			o.Transactions = []sandbox.TransactionView{tx("A", "active", "OK", 1), tx("A", "active", "審査中", 2)}
		}, want: "registered twice while live",
			check: func(t *testing.T, v Verdict) {
				if v.DoubleReg != 1 {
					t.Errorf("double = %d", v.DoubleReg)
				}
			}},
		{name: "registered again after a lost NG answer", change: func(o *Observed) {
			o.Transactions = []sandbox.TransactionView{tx("A", "active", "NG", 1), tx("A", "active", "OK", 2)}
		}, pass: true, want: "1 orders registered again",
			check: func(t *testing.T, v Verdict) {
				if v.DoubleReg != 0 || v.Reregistered != 1 || v.Registrations != 2 {
					t.Errorf("double %d, again %d, registrations %d", v.DoubleReg, v.Reregistered, v.Registrations)
				}
			}},
		{name: "a cancel answered by a re-check", change: func(o *Observed) {
			o.Events = append(o.Events[:1], ev("x1", events.TypeOrderCancelled, "A", 9, Want{Direct: []string{events.TypeCreditCancelled}}))
			o.Outcomes = append(o.Outcomes[:1], out(7, events.TypeCreditCancelled, "A", "c1"))
			o.Transactions = []sandbox.TransactionView{tx("A", "cancelled", "OK", 1)}
		}, pass: true, want: "names the credit check's event"},
		{name: "a bad message with the right reason", change: func(o *Observed) {
			o.Events = append(o.Events, ev("b1", events.TypeOrderCreated, "B", 7, Want{Reason: "invalid", Field: "buyer.zip", Corpus: "zip"}))
			o.DeadLetters = []DeadLetter{{Reason: "invalid", Error: "invalid event: buyer.zip: must be 7 digits", OrigStream: "ORDERS", OrigSeq: 7, Event: "b1"}}
		}, pass: true,
			check: func(t *testing.T, v Verdict) {
				if v.BadExpected != 1 || v.BadRight != 1 {
					t.Errorf("bad %d/%d", v.BadRight, v.BadExpected)
				}
			}},
		{name: "a bad message naming another field", change: func(o *Observed) {
			o.Events = append(o.Events, ev("b1", events.TypeOrderCreated, "B", 7, Want{Reason: "invalid", Field: "buyer.zip", Corpus: "zip"}))
			o.DeadLetters = []DeadLetter{{Reason: "invalid", Error: "invalid event: buyer.phone: bad", OrigStream: "ORDERS", OrigSeq: 7, Event: "b1"}}
		}, want: `want invalid naming "buyer.zip"`},
		{name: "a bad message that succeeded", change: func(o *Observed) {
			o.Events = append(o.Events, ev("b1", events.TypeOrderCreated, "B", 7, Want{Reason: "invalid", Field: "buyer.name", Corpus: "utf8"}))
			o.Outcomes = append(o.Outcomes, Outcome{Seq: 9, MsgID: "x", Type: events.TypeCreditOK, Shop: shopA, Order: "B", Causation: "b1"})
		}, want: "not dead-lettered"},
		{name: "personal data in a log", change: func(o *Observed) {
			o.LogHits = []Hit{{File: "worker-1.log", Line: 3, Kind: "email", Excerpt: "taro@example.jp"}}
		}, want: "worker-1.log:3: email"},
		{name: "unhealthy at the end", change: func(o *Observed) {
			o.Healthy, o.HealthDetail = false, "worker-1: /readyz 503"
		}, want: "/readyz 503"},
		{name: "a crash", change: func(o *Observed) { o.Crashes = 1 }, want: "exited 1 times"},
		{name: "a scenario's own finding", change: func(o *Observed) {
			o.Findings = []Finding{{Kind: "slow shutdown", Text: "the worker exited 31s after SIGTERM"}}
			o.Notes = []string{"measured"}
		}, want: "slow shutdown: the worker exited 31s"},

		// False outcomes: the outcomes against ATODENE's own state at the end.
		{name: "cancelled while ATODENE holds it live", change: func(o *Observed) {
			o.Events = append(o.Events, ev("x1", events.TypeOrderCancelled, "A", 9, Want{Direct: []string{events.TypeCreditCancelled}}))
			o.Outcomes = append(o.Outcomes, out(9, events.TypeCreditCancelled, "A", "x1"))
		}, want: "false outcome: credit.cancelled of rel-a/A (seq 9",
			check: func(t *testing.T, v Verdict) {
				if v.FalseOutcomes != 1 {
					t.Errorf("false outcomes = %d, want 1", v.FalseOutcomes)
				}
			}},
		{name: "a decision naming a transaction ATODENE does not hold", change: func(o *Observed) {
			o.Outcomes[2].TxID = "99999999999"
		}, want: "ATODENE holds no such transaction"},
		{name: "a transaction of another order", change: func(o *Observed) {
			o.Transactions[0].ShopOrderID = "B"
		}, want: "ATODENE holds no such transaction"},
		{name: "OK while ATODENE holds it cancelled", change: func(o *Observed) {
			o.Transactions[0].State = "cancelled"
		}, want: "ATODENE holds the transaction cancelled, decided OK"},
		{name: "OK while ATODENE declined it", change: func(o *Observed) {
			o.Transactions[0].Decision = "NG"
		}, want: "decided NG"},
		{name: "an amount ATODENE does not hold", change: func(o *Observed) {
			o.Outcomes[2].Billed = 3155
			o.Transactions[0].BilledAmount = 2950
		}, want: "states billed amount 3155, but ATODENE holds 2950"},
		{name: "a shipment ATODENE never got", change: func(o *Observed) {
			o.Transactions[0].Shipment = nil
		}, want: "ATODENE holds no shipment report"},
		{name: "a shipment with a number ATODENE does not hold", change: func(o *Observed) {
			o.Transactions[0].Shipment.DeliverySlipNo = "400000019999"
		}, want: "ATODENE holds slip number 400000019999"},
		{name: "a change that reached ATODENE without its answer, for an operator", change: func(o *Observed) {
			o.Outcomes[2].Billed = 3155
			o.Transactions[0].BilledAmount = 2950
			o.Events = append(o.Events, ev("u1", events.TypeOrderUpdated, "A", 9, Want{Direct: []string{events.TypeCreditOK}, MayBeUnknown: true}))
			o.DeadLetters = []DeadLetter{{Reason: "outcome-unknown", OrigStream: "ORDERS", OrigSeq: 9, Event: "u1"}}
		}, pass: true, want: "1 orders whose last credit or shipment outcome ATODENE no longer agrees with"},
		{name: "a tracking number whose report reached ATODENE and whose record Redis lost, for an operator", change: func(o *Observed) {
			o.Allowed = stateLost
			o.Transactions[0].Shipment.DeliverySlipNo = "400000019999"
			late := ev("t2", events.TypeTrackingEntered, "A", 9, Want{Direct: []string{events.TypeShipmentOK}})
			late.Tracking = "400000019999"
			o.Events = append(o.Events, late)
			o.DeadLetters = []DeadLetter{{Reason: "no-transaction", OrigStream: "ORDERS", OrigSeq: 9, Event: "t2"}}
		}, pass: true, want: "1 orders whose last credit or shipment outcome ATODENE no longer agrees with"},
		{name: "an invoice ATODENE mails itself", change: func(o *Observed) {
			o.Transactions[0].Service = atodene.ServiceSeparate
		}, want: `invoice service "2"`},
		{name: "invoice.ng for credit ATODENE approved", change: func(o *Observed) {
			o.Events[2].Want.Direct = []string{events.TypeInvoiceNG}
			o.Outcomes[4].Type, o.Outcomes[4].Problem = events.TypeInvoiceNG, "credit"
		}, want: "says the credit is not ok, but ATODENE holds the transaction active, decided OK"},
		{name: "an invoice superseded by a later cancel", change: func(o *Observed) {
			o.Transactions[0].State = "cancelled"
			o.Outcomes = append(o.Outcomes, out(9, events.TypeCreditCancelled, "A", "x1"))
			o.Events = append(o.Events, ev("x1", events.TypeOrderCancelled, "A", 9, Want{Direct: []string{events.TypeCreditCancelled}}))
		}, pass: true},

		// The worker lost its state: dead letters for an operator instead of made-up outcomes.
		{name: "no-transaction where the worker lost its state", change: func(o *Observed) {
			o.Allowed = []string{"no-transaction"}
			o.Events = append(o.Events, ev("x1", events.TypeOrderCancelled, "A", 9, Want{Direct: []string{events.TypeCreditCancelled}}))
			o.DeadLetters = []DeadLetter{{Reason: "no-transaction", OrigStream: "ORDERS", OrigSeq: 9, Event: "x1"}}
		}, pass: true, want: "1 no-transaction dead letters (allowed"},
		{name: "no-transaction elsewhere", change: func(o *Observed) {
			o.Events = append(o.Events, ev("x1", events.TypeOrderCancelled, "A", 9, Want{Direct: []string{events.TypeCreditCancelled}}))
			o.DeadLetters = []DeadLetter{{Reason: "no-transaction", OrigStream: "ORDERS", OrigSeq: 9, Event: "x1"}}
		}, want: "wrong dead letter"},
		{name: "a re-check of an order the worker forgot, handed to an operator", change: func(o *Observed) {
			o.Allowed = []string{"no-transaction"}
			o.Outcomes = o.Outcomes[:1]
			o.Events = o.Events[:1]
			o.DeadLetters = []DeadLetter{{Subject: "dlq.atodene.poll.due.rel-a.QQ", Reason: "no-transaction", OrigStream: "ATODENE_POLLS", OrigSeq: 1}}
		}, pass: true, want: "1 credit checks left pending and handed to an operator"},
		{name: "an outcome and a dead letter for an operator where the state was lost", change: func(o *Observed) {
			o.Allowed = []string{"no-transaction"}
			o.DeadLetters = []DeadLetter{{Reason: "no-transaction", OrigStream: "ORDERS", OrigSeq: 2, Event: "t1"}}
		}, pass: true, want: "1 events have an outcome and a dead letter"},
		{name: "a silent event its order's history records", change: func(o *Observed) {
			o.Events = append(o.Events, ev("s1", events.TypeOrderCreated, "A", 9, Want{Direct: []string{events.TypeCreditCancelled}, Silent: true}))
			o.Handled = map[string]bool{"s1": true}
		}, pass: true, want: "1 events ended with no outcome"},
		{name: "a silent event beyond its order's full history", change: func(o *Observed) {
			o.Events = append(o.Events, ev("s1", events.TypeOrderCreated, "A", 9, Want{Direct: []string{events.TypeCreditCancelled}, Silent: true}))
			o.HistoryFull = map[string]bool{shopA + "/A": true}
		}, pass: true, want: "1 events ended with no outcome where their order's history no longer reaches"},
		{name: "a silent event its order's history does not record", change: func(o *Observed) {
			o.Events = append(o.Events, ev("s1", events.TypeOrderCreated, "A", 9, Want{Direct: []string{events.TypeCreditCancelled}, Silent: true}))
		}, want: "lost: order.created A s1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			obs := lifecycle()
			tt.change(&obs)
			v := Check(obs)
			if v.Pass() != tt.pass {
				t.Errorf("pass = %v, want %v; violations:\n%s", v.Pass(), tt.pass, strings.Join(v.Violations, "\n"))
			}
			if tt.want != "" {
				all := strings.Join(append(v.Violations, v.Notes...), "\n")
				if !strings.Contains(all, tt.want) {
					t.Errorf("no violation or note contains %q:\n%s", tt.want, all)
				}
			}
			if tt.check != nil {
				tt.check(t, v)
			}
		})
	}
}

func TestCheckListsAtMostEightPerKind(t *testing.T) {
	t.Parallel()
	var obs Observed
	obs.Healthy = true
	for i := range 20 {
		obs.Events = append(obs.Events, ev(string(rune('a'+i)), events.TypeOrderCancelled, "A", uint64(i+1), Want{}))
	}
	v := Check(obs)
	if v.Lost != 20 {
		t.Errorf("lost = %d, want 20", v.Lost)
	}
	if len(v.Violations) != maxListed+1 || !strings.Contains(v.Violations[maxListed], "12 more") {
		t.Errorf("violations:\n%s", strings.Join(v.Violations, "\n"))
	}
}

// TestReauthorizedTransactions: a re-authorization's transaction (<id>_R<n>) goes with its
// order's; the order's own cancelled before it is no double registration, both live at the end
// is one, and a re-authorization is no registration again after a lost NG answer.
func TestReauthorizedTransactions(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]string{"A-1": "A-1", "A-1_R1": "A-1", "A-1_R12": "A-1", "A-1_R": "A-1_R", "A-1_Rx": "A-1_Rx", "A_R1_R2": "A_R1"} {
		if got := orderOfShopOrderID(id); got != want {
			t.Errorf("orderOfShopOrderID(%q) = %q, want %q", id, got, want)
		}
	}
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tx := func(id, shopOrderID, state string, n int) sandbox.TransactionView {
		return sandbox.TransactionView{TransactionID: id, ShopCode: codeA, ShopOrderID: shopOrderID, State: state, Decision: "OK",
			Registrations: 1, RegisteredAt: at.Add(time.Duration(n) * time.Second)}
	}
	created := []*Event{{Key: "e1", Type: events.TypeOrderCreated, Shop: shopA, Order: "A-1", Msgs: []Msg{{Seq: 1}}}}
	for _, tt := range []struct {
		name        string
		txs         []sandbox.TransactionView
		double, reg int
	}{
		{"re-authorized twice", []sandbox.TransactionView{tx("1", "A-1", "cancelled", 0), tx("2", "A-1_R1", "cancelled", 1), tx("3", "A-1_R2", "active", 2)}, 0, 0},
		{"the old one left live", []sandbox.TransactionView{tx("1", "A-1", "active", 0), tx("2", "A-1_R1", "active", 1)}, 1, 0},
	} {
		var vs violations
		regs, double, again := checkRegistrations(created, tt.txs, &vs)
		if regs != len(tt.txs) || double != tt.double || again != tt.reg {
			t.Errorf("%s: registrations %d, double %d, again %d; want %d, %d, %d (%v)", tt.name, regs, double, again, len(tt.txs), tt.double, tt.reg, vs.result())
		}
	}
}

// TestReauthorizationLeftTheOrderOnItsTransaction: a re-authorization's credit.pending whose new
// transaction was cancelled since (the order shipped on its old one meanwhile) is no false outcome:
// the order's standing is its last credit.ok. A credit.pending of the order's own is.
func TestReauthorizationLeftTheOrderOnItsTransaction(t *testing.T) {
	t.Parallel()
	txs := []sandbox.TransactionView{
		{TransactionID: "1", ShopCode: codeA, ShopOrderID: "A-1", State: "active", Decision: "OK"},
		{TransactionID: "2", ShopCode: codeA, ShopOrderID: "A-1_R1", State: "cancelled", Decision: "審査中"},
	}
	for _, reauth := range []bool{true, false} {
		outs := []Outcome{
			{Seq: 1, Type: events.TypeCreditOK, Shop: shopA, Order: "A-1", TxID: "1"},
			{Seq: 2, Type: events.TypeCreditPending, Shop: shopA, Order: "A-1", TxID: "2", Reauthorized: reauth},
		}
		var vs violations
		if n, _ := checkFalseOutcomes(outs, txs, nil, nil, &vs); (n == 0) != reauth {
			t.Errorf("reauthorized %v: %d false outcomes (%v)", reauth, n, vs.result())
		}
	}
}

// TestLastCreditOK: the order's last credit.ok names its live transaction, and only a
// re-authorization's outcomes naming a transaction no longer live may follow it.
func TestLastCreditOK(t *testing.T) {
	t.Parallel()
	old := sandbox.TransactionView{TransactionID: "1", ShopOrderID: "A-1", State: "active", Decision: "OK"}
	dropped := sandbox.TransactionView{TransactionID: "2", ShopOrderID: "A-1_R1", State: "cancelled", Decision: "審査中"}
	adopted := sandbox.TransactionView{TransactionID: "2", ShopOrderID: "A-1_R1", State: "active", Decision: "OK"}
	ok1 := Outcome{Type: events.TypeCreditOK, TxID: "1"}
	for _, tt := range []struct {
		name string
		outs []Outcome
		live sandbox.TransactionView
		ts   []sandbox.TransactionView
		bad  bool
	}{
		{"on its own", []Outcome{ok1}, old, []sandbox.TransactionView{old}, false},
		{"review dropped as it shipped", []Outcome{ok1, {Type: events.TypeCreditPending, TxID: "2", Reauthorized: true}}, old, []sandbox.TransactionView{old, dropped}, false},
		{"moved onto the new one", []Outcome{ok1, {Type: events.TypeCreditOK, TxID: "2", Reauthorized: true}}, adopted, []sandbox.TransactionView{{TransactionID: "1", State: "cancelled", Decision: "OK"}, adopted}, false},
		{"a pending of its own after it", []Outcome{ok1, {Type: events.TypeCreditPending, TxID: "1"}}, old, []sandbox.TransactionView{old}, true},
		{"the new one live, no credit.ok for it", []Outcome{ok1, {Type: events.TypeCreditPending, TxID: "2", Reauthorized: true}}, adopted, []sandbox.TransactionView{adopted}, true},
		{"no credit.ok", nil, old, []sandbox.TransactionView{old}, true},
	} {
		if why := lastCreditOK(tt.outs, tt.live, tt.ts); (why != "") != tt.bad {
			t.Errorf("%s: %q, want bad %v", tt.name, why, tt.bad)
		}
	}
}
