package handlers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// legacyHash2950 and legacyHash3000 are the request hashes that workers stored before hashes had a
// version (json.Marshal of atodene.Order), computed by that code, of testOrder("U-1", 2950) and
// testOrder("U-1", 3000) of newEnv's shop.
const (
	legacyHash2950 = "9c50468a25d926db7cdfc9374ee4caca759142ec6ac7d71bf2b349dc0ef1557f"
	legacyHash3000 = "4dd62a03e02c49c64a54ae17ff985439c07078875dc1ae1cdadb1c2f9a0484ae"
)

// TestLegacyRequestHashIsRecognised: after an upgrade, Redis holds states whose request hash was
// computed the old way. Unchanged data must still be recognised as unchanged (no registration of
// an NG or refused order, no change of an OK one), and changed data as changed; a state written
// anew gets the versioned hash.
func TestLegacyRequestHashIsRecognised(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		status  orderstate.Status
		stored  string // the legacy hash in the state
		typ     string
		billed  int64
		call    string // the provider call expected, "" for none
		newHash bool   // the state then holds a v1 hash
	}{
		{"created, NG, same data", orderstate.StatusNG, legacyHash2950, events.TypeOrderCreated, 2950, "", false},
		{"created, refused, same data", orderstate.StatusInvalid, legacyHash2950, events.TypeOrderCreated, 2950, "", false},
		{"updated, NG, same data", orderstate.StatusNG, legacyHash2950, events.TypeOrderUpdated, 2950, "", false},
		{"updated, OK, same data", orderstate.StatusOK, legacyHash2950, events.TypeOrderUpdated, 2950, "", false},
		{"created, NG, new data", orderstate.StatusNG, legacyHash3000, events.TypeOrderCreated, 2950, "register", true},
		{"updated, OK, new data", orderstate.StatusOK, legacyHash3000, events.TypeOrderUpdated, 2950, "modify", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prov := &fakeProvider{}
			e, ctx := newEnv(t, prov), context.Background()
			if _, err := e.store.Put(ctx, "shop-a", "U-1", orderstate.State{Status: tc.status, TransactionID: "12345678901", DataHash: tc.stored}, time.Now()); err != nil {
				t.Fatal(err)
			}
			ev := handlers.Event[events.Order]{Meta: handlers.Meta{ID: "ev-1", Source: "test", Type: tc.typ, Shop: "shop-a", Seq: 1, Attempt: 1},
				Data: testOrder("U-1", tc.billed)}
			handle := e.o.OrderCreated
			if tc.typ == events.TypeOrderUpdated {
				handle = e.o.OrderUpdated
			}
			if err := handle(ctx, ev); err != nil {
				t.Fatal(err)
			}
			calls := prov.calls["register"] + prov.calls["modify"]
			switch {
			case tc.call == "" && calls != 0:
				t.Errorf("%v calls for unchanged data, want none", prov.calls)
			case tc.call != "" && (calls != 1 || prov.calls[tc.call] != 1):
				t.Errorf("%v calls for changed data, want one %s", prov.calls, tc.call)
			}
			st, err := e.store.Get(ctx, "shop-a", "U-1")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.HasPrefix(st.DataHash, "v1:"); got != tc.newHash {
				t.Errorf("stored hash %q afterwards; a v1 hash: %v, want %v", st.DataHash, got, tc.newHash)
			}
		})
	}
}
