package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/dlq"
	"github.com/atodene-worker/atodene-worker/internal/testenv/wait"
)

// A shop's order_id_prefix counts in ATODENE's 50 characters of shopOrderId
// (docs/configuration.md#shops-that-share-an-atodene-account): an order_id that fits alone but not
// behind the prefix is dead-lettered invalid, with the reason in the order's history, and never
// sent; one that makes exactly 50 with it is registered as prefix + order_id.
func TestOrderIDPrefixCountsInShopOrderID(t *testing.T) {
	t.Parallel()
	const prefix = "RAKUTEN-"
	h := newHarnessWith(t, harnessOpts{shopsEdit: func(list []config.Shop) { list[0].Atodene.OrderIDPrefix = prefix }})

	long := "274555-20170615-0823997264-" + strings.Repeat("9", 18) // 45: a valid order_id on its own
	if len(prefix+long) != 53 {
		t.Fatalf("test data: prefix + order_id is %d characters, want 53", len(prefix+long))
	}
	h.publish("order.created", "shop-a", "ev-long", orderData("shop-a", long, "taro@example.jp"))
	wait.For(t, 10*time.Second, "an invalid dead letter", func() bool { return deadLettersByReason(h)["invalid"] == 1 })
	const want = `order_id: with the shop's order_id_prefix "RAKUTEN-", shopOrderId would be 53 characters, more than ATODENE's 50`
	if got := h.deadLetters()[0].Headers().Get(dlq.HeaderError); !strings.Contains(got, want) {
		t.Errorf("Dlq-Error %q, want it to say %q", got, want)
	}
	wait.For(t, 10*time.Second, "the dead letter in the order's history", func() bool {
		return h.historySays(long, "ev-long", "dead-lettered: invalid: "+want)
	})
	for _, id := range []string{prefix + long, long} {
		if txs := h.sandboxTransactions(id); len(txs) != 0 {
			t.Errorf("the sandbox holds %s: %+v", id, txs)
		}
	}

	fits := "274555-20170615-0823997264-" + strings.Repeat("9", 15) // 42: 50 with the prefix
	if len(prefix+fits) != 50 {
		t.Fatalf("test data: prefix + order_id is %d characters, want 50", len(prefix+fits))
	}
	h.publish("order.created", "shop-a", "ev-fits", orderData("shop-a", fits, "taro@example.jp"))
	ok := h.waitOutcomes(fits, "credit.ok", 10*time.Second)[0]
	tx := h.tx(prefix + fits)
	if tx.ShopOrderID != prefix+fits || tx.Registrations != 1 || tx.TransactionID != ok.Credit.TransactionID {
		t.Errorf("sandbox: %+v, want shopOrderId %s registered once as transaction %s", tx, prefix+fits, ok.Credit.TransactionID)
	}
	if txs := h.sandboxTransactions(fits); len(txs) != 0 {
		t.Errorf("the order_id was sent without its prefix: %+v", txs)
	}
	if n := deadLettersByReason(h)["invalid"]; n != 1 {
		t.Errorf("%d invalid dead letters, want only the first order's", n)
	}
}
