package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// TestReauthorizationThroughJetStream: the re-authorization timer is a JetStream message schedule.
// With reauthorize_after 4 s and a sandbox whose approvals last 8 s, an OK order not shipped is
// registered again under R-1_R1 when the schedule fires (credit.ok reauthorized, the old
// transaction cancelled), and the tracking number that follows is reported on the new
// transaction, which the sandbox still honours.
func TestReauthorizationThroughJetStream(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, harnessOpts{
		shopsEdit: func(list []config.Shop) { list[0].ReauthorizeAfter = 4 * time.Second },
		sandbox:   sandbox.Config{AuthorizationLifetime: 8 * time.Second},
	})
	h.publish("order.created", "shop-a", "ev-1", orderData("shop-a", "R-1", "taro@example.jp"))
	outs := h.waitOutcomes("R-1", "credit.ok,credit.ok", 30*time.Second)
	first, again := outs[0].Credit, outs[1].Credit
	if first.Reauthorized || !again.Reauthorized || again.TransactionID == first.TransactionID {
		t.Fatalf("credit outcomes %+v then %+v; want the second reauthorized, on a new transaction", first, again)
	}
	wait.For(t, 10*time.Second, "the old transaction cancelled", func() bool {
		return h.tx("R-1").State == "cancelled"
	})
	if tx := h.tx("R-1_R1"); tx.TransactionID != again.TransactionID || tx.Registrations != 1 {
		t.Fatalf("sandbox R-1_R1: %+v, want transaction %s registered once", tx, again.TransactionID)
	}

	h.publish("order.tracking_entered", "shop-a", "ev-t", tracking("shop-a", "R-1", "yamato", "1234-5678-9012"))
	wait.For(t, 20*time.Second, "shipment.ok", func() bool { return strings.Contains(typesOf(of(h.results(), "R-1")), "shipment.") })
	outs = of(h.results(), "R-1")
	if last := outs[len(outs)-1]; last.Env.Type != "shipment.ok" {
		t.Fatalf("outcomes %s, want the tracking number reported", typesOf(outs))
	}
	live := ""
	for _, o := range outs {
		if o.Env.Type == "credit.ok" {
			live = o.Credit.TransactionID
		}
	}
	for _, tx := range append(h.sandboxTransactions("R-1"), h.sandboxTransactions("R-1_R1")...) {
		if tx.TransactionID == live && tx.Shipment == nil {
			t.Errorf("the live transaction %s holds no shipment report", live)
		}
		if tx.TransactionID != live && tx.State != "cancelled" {
			t.Errorf("transaction %s (%s) is %s, want cancelled", tx.TransactionID, tx.ShopOrderID, tx.State)
		}
	}
}
