package reliability

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sampledata"
)

// TestGeneratedOrdersAreValid: every order, update and fix the workload sends passes the worker's
// validation, so that whatever the suite reports is about the worker, not the workload.
func TestGeneratedOrdersAreValid(t *testing.T) {
	t.Parallel()
	g := newGenerator(42, "T0001", newPIIIndex())
	rules := map[rule]int{}
	for _, p := range g.plans(2000) {
		rules[p.Rule]++
		o := g.order(p)
		for _, variant := range []events.Order{o, g.update(o), g.fix(p, o)} {
			if err := variant.Validate(p.Shop); err != nil {
				t.Fatalf("%s (%s): %v", p.OrderID, p.Rule, err)
			}
		}
		billed := *o.BilledAmount + 205
		switch over := billed > 55000; {
		case p.Rule == sampledata.OverLimit && !over, p.Rule != sampledata.OverLimit && over:
			t.Errorf("%s (%s) billed %d", p.OrderID, p.Rule, billed)
		}
		if !strings.HasPrefix(o.Buyer.Email, p.Rule.EmailPrefix()) {
			t.Errorf("%s (%s): e-mail %s", p.OrderID, p.Rule, o.Buyer.Email)
		}
		if fixed := g.fix(p, o); *fixed.BilledAmount+205 > 55000 || fixed.Buyer.Email == o.Buyer.Email && p.Rule != sampledata.Ordinary && p.Rule != sampledata.OverLimit {
			t.Errorf("%s (%s): the fix is not an order the sandbox approves", p.OrderID, p.Rule)
		}
	}
	for _, m := range ruleMix {
		if rules[m.rule] == 0 {
			t.Errorf("no order of rule %s in 2000", m.rule)
		}
	}
}

func TestPlansAreDeterministic(t *testing.T) {
	t.Parallel()
	a, b := newGenerator(7, "T0001", newPIIIndex()), newGenerator(7, "T0001", newPIIIndex())
	pa, pb := a.plans(300), b.plans(300)
	for i := range pa {
		if *pa[i] != *pb[i] {
			t.Fatalf("plan %d differs: %+v vs %+v", i, pa[i], pb[i])
		}
		oa, _ := json.Marshal(a.order(pa[i]))
		ob, _ := json.Marshal(b.order(pb[i]))
		if string(oa) != string(ob) {
			t.Fatalf("order %d differs", i)
		}
	}
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	if n := badKinds(); n < 30 {
		t.Errorf("%d kinds of bad messages, want at least 30", n)
	}
	g := newGenerator(1, "T0001", newPIIIndex())
	seen := map[string]bool{}
	for _, c := range corpus() {
		if seen[c.name] {
			t.Errorf("case %q twice", c.name)
		}
		seen[c.name] = true
		if ends := btoi(c.reason != "") + btoi(c.outcome != "") + btoi(c.refused); ends != 1 {
			t.Errorf("case %q: want exactly one of a dead-letter reason, an outcome and refused", c.name)
		}
		if c.reason != "" && c.field == "" {
			t.Errorf("case %q: no field for Dlq-Error to name", c.name)
		}
		p := &plan{Shop: shopA, OrderID: "T0001-X001", Rule: sampledata.Ordinary}
		var data map[string]any
		_ = json.Unmarshal(encode(g.order(p)), &data)
		env := map[string]any{"specversion": "1.0", "id": "x", "source": "s", "type": events.TypeOrderCreated}
		body := withData(env, data)
		if c.body != nil {
			body = c.body(env, data)
		}
		if len(body) >= maxPayload-100 {
			t.Errorf("case %q: body of %d bytes does not fit max_payload %d with its headers", c.name, len(body), maxPayload)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
