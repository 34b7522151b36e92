package handlers_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/events"
)

// refusingChanges is sentProvider whose changes (modifytransaction.do updateTypeFlag 2) ATODENE
// refuses, result NG with an error on billedAmount.
type refusingChanges struct{ sentProvider }

func (p *refusingChanges) Modify(_ context.Context, _ string, req atodene.Request) (atodene.Change, error) {
	p.record(req.Order().BilledAmount, "")
	return atodene.Change{}, &atodene.RejectedError{Op: "modifytransaction.do",
		Errors: []atodene.ProviderError{{Point: "billedAmount", Code: "er000200", Message: "請求金額が不正です"}}}
}

// TestRefusedChangeReportsTheAmountsSent: a change of an approved order from 2,950 to 3,950 (each
// plus the table's 205) that ATODENE refuses is answered credit.invalid with the fee and billed
// amount the change sent, 205 and 4,155, as a refused registration's credit.invalid is (docs/events.md:
// the values actually sent); the order keeps the amounts of the transaction that stands, 3,155.
// The credit.invalid carried the state's amounts, those of the registration.
func TestRefusedChangeReportsTheAmountsSent(t *testing.T) {
	t.Parallel()
	store, ctx := newStore(t), context.Background()
	prov := &refusingChanges{}
	outs := &resultsStream{byID: map[string]string{}}
	o := tableOrders(t, store, prov, outs, addTable(205))
	handled(t,
		o.OrderCreated(ctx, orderEvent(events.TypeOrderCreated, "c-1", "RC-1", 1, orderedAt, 2950)),
		o.OrderUpdated(ctx, orderEvent(events.TypeOrderUpdated, "u-2", "RC-1", 2, orderedAt.Add(time.Minute), 3950)))
	if len(prov.billed) != 2 || prov.billed[1] != 4155 {
		t.Fatalf("amounts sent %v, want the registration's 3155 and the change's 4155", prov.billed)
	}
	var invalid []events.Credit
	for _, id := range outs.published {
		if !strings.HasSuffix(id, events.TypeCreditInvalid) {
			continue
		}
		var env struct{ Data events.Credit }
		if err := json.Unmarshal([]byte(outs.byID[id]), &env); err != nil {
			t.Fatal(err)
		}
		invalid = append(invalid, env.Data)
	}
	if len(invalid) != 1 {
		t.Fatalf("%d credit.invalid published (outcomes %v), want 1", len(invalid), outs.published)
	}
	if got := invalid[0]; got.Fee != 205 || got.BilledAmount != 4155 || len(got.Errors) != 1 {
		t.Errorf("credit.invalid of the refused change: fee %d, billed_amount %d, errors %v; want what the change sent, 205 and 4155, and ATODENE's error",
			got.Fee, got.BilledAmount, got.Errors)
	}
	st, _ := store.Get(ctx, "shop-a", "RC-1")
	if st.Fee != 205 || st.BilledAmount != 3155 || len(st.Errors) != 0 {
		t.Errorf("state fee %d, billed %d, errors %v; want the standing transaction's 205 and 3155, no errors kept", st.Fee, st.BilledAmount, st.Errors)
	}
}
