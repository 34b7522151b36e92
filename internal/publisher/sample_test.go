package publisher

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sampledata"
)

// sandboxRule classifies an order as the ATODENE sandbox decides it (docs/atodene.md#decisions), with the
// handling fee the worker may add.
func sandboxRule(t *testing.T, o events.Order) rule {
	t.Helper()
	local, _, _ := strings.Cut(o.Buyer.Email, "@")
	for _, r := range []rule{sampledata.NG, sampledata.ReviewOK, sampledata.ReviewNG, sampledata.Hold, sampledata.Slow} {
		if strings.HasPrefix(local, strings.TrimSuffix(r.EmailPrefix(), "-")) {
			return r
		}
	}
	if *o.BilledAmount > 55000 {
		return sampledata.OverLimit
	}
	return sampledata.Ordinary
}

// sampleOrders runs sample and decodes every line with the worker's validation.
func sampleOrders(t *testing.T, args ...string) ([]events.Order, runResult) {
	t.Helper()
	r := runPublisher(t, "nats://127.0.0.1:1", "", false, append([]string{"sample"}, args...)...)
	if r.err != nil {
		t.Fatalf("sample %v: %v\n%s", args, r.err, r.stderr)
	}
	want := events.TypeOrderCreated
	for i, a := range args {
		if a == "-type" {
			want = args[i+1]
		}
	}
	var out []events.Order
	for i, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var env events.Envelope
		if err := json.Unmarshal([]byte(line), &env); err != nil || env.Type != want || env.SpecVersion != "1.0" {
			t.Fatalf("line %d is not a CloudEvent of type %s (%v):\n%s", i+1, want, err, line)
		}
		o, err := events.DecodeOrder(env, "shop-1")
		if err != nil {
			t.Fatalf("line %d is not a valid order: %v\n%s", i+1, err, line)
		}
		out = append(out, o)
	}
	return out, r
}

func TestSampleOrdersAreValidAndCoverEveryRule(t *testing.T) {
	t.Parallel()
	orders, _ := sampleOrders(t, "-n", "2000", "-shop", "shop-1", "-seed", "42")
	if len(orders) != 2000 {
		t.Fatalf("%d orders, want 2000", len(orders))
	}
	counts := map[rule]int{}
	ids := map[string]bool{}
	var shipTo, enclosed, discount, fee, multi int
	for _, o := range orders {
		rl := sandboxRule(t, o)
		counts[rl]++
		billed := *o.BilledAmount
		switch {
		case rl == sampledata.OverLimit && billed > 999999-1000:
			t.Errorf("order %s: billed %d leaves no room for a handling fee", o.OrderID, billed)
		case rl != sampledata.OverLimit && billed > 50000:
			t.Errorf("order %s (rule %d): billed %d, too close to the sandbox's limit", o.OrderID, rl, billed)
		}
		if ids[o.OrderID] {
			t.Errorf("order ID %s twice", o.OrderID)
		}
		ids[o.OrderID] = true
		if o.ShipTo != nil {
			shipTo++
		}
		if o.InvoiceDelivery == events.DeliveryEnclosed {
			enclosed++
		}
		if o.Discount > 0 {
			discount++
		}
		if o.Fee > 0 {
			fee++
		}
		if len(o.Items) > 1 {
			multi++
		}
	}
	want := map[rule]int{sampledata.Ordinary: 1440, sampledata.NG: 100, sampledata.ReviewOK: 100, sampledata.ReviewNG: 100, sampledata.Hold: 100, sampledata.Slow: 60, sampledata.OverLimit: 100}
	for rl, n := range want {
		if counts[rl] != n {
			t.Errorf("rule %d: %d orders, want %d (mix %v)", rl, counts[rl], n, counts)
		}
	}
	for name, n := range map[string]int{"ship_to": shipTo, "enclosed": enclosed, "discount": discount, "fee": fee, "several items": multi} {
		if n < 100 || n > 1900 {
			t.Errorf("%d orders with %s, want some but not all", n, name)
		}
	}

	// Any run's first seven orders cover every rule.
	first := map[rule]bool{}
	for _, o := range orders[:7] {
		first[sandboxRule(t, o)] = true
	}
	if len(first) != 7 {
		t.Errorf("the first 7 orders cover %d rules, want 7", len(first))
	}
}

func TestSamplePersonsLookReal(t *testing.T) {
	t.Parallel()
	orders, _ := sampleOrders(t, "-n", "300", "-shop", "shop-1", "-seed", "3")
	zip := regexp.MustCompile(`^\d{3}-\d{4}$`)
	phone := regexp.MustCompile(`^0\d{1,3}-[1-9]\d{1,3}-\d{4}$`)
	for _, o := range orders {
		for _, p := range []*events.Person{o.Buyer, o.ShipTo} {
			if p == nil {
				continue
			}
			if !zip.MatchString(p.Zip) || !phone.MatchString(p.Phone) {
				t.Errorf("order %s: zip %q, phone %q", o.OrderID, p.Zip, p.Phone)
			}
			if strings.Count(p.Name, " ") != 1 || strings.Count(p.NameKana, " ") != 1 {
				t.Errorf("order %s: name %q, kana %q: want family and given names", o.OrderID, p.Name, p.NameKana)
			}
			if !strings.Contains(p.Address, "都") && !strings.Contains(p.Address, "道") && !strings.Contains(p.Address, "府") && !strings.Contains(p.Address, "県") {
				t.Errorf("order %s: address %q has no prefecture", o.OrderID, p.Address)
			}
		}
		// The kana is the reading of the name: the same family and given name as the table.
		if !readsAs(o.Buyer.Name, o.Buyer.NameKana) {
			t.Errorf("order %s: %q is not read %q", o.OrderID, o.Buyer.NameKana, o.Buyer.Name)
		}
	}
}

// readsAs reports whether kana is the sample tables' reading of fullName.
func readsAs(fullName, kana string) bool {
	f, g, _ := strings.Cut(fullName, " ")
	fk, gk, _ := strings.Cut(kana, " ")
	ok := func(table []sampledata.Name, kanji, reading string) bool {
		for _, n := range table {
			if n.Kanji == kanji {
				return n.Kana == reading
			}
		}
		return false
	}
	return ok(sampledata.FamilyNames, f, fk) && ok(sampledata.GivenNames, g, gk)
}

func TestSampleIsDeterministic(t *testing.T) {
	t.Parallel()
	oa, a := sampleOrders(t, "-n", "250", "-shop", "shop-1", "-seed", "9")
	_, b := sampleOrders(t, "-n", "250", "-shop", "shop-1", "-seed", "9")
	oc, c := sampleOrders(t, "-n", "250", "-shop", "shop-1", "-seed", "10")
	if a.stdout != b.stdout {
		t.Error("the same seed wrote different orders")
	}
	if a.stdout == c.stdout || oa[0].OrderID == oc[0].OrderID {
		t.Error("different seeds wrote the same orders (or order IDs)")
	}
	// Order i does not depend on -n.
	_, short := sampleOrders(t, "-n", "120", "-shop", "shop-1", "-seed", "9")
	if !strings.HasPrefix(a.stdout, short.stdout) {
		t.Error("-n 120 wrote other orders than the first 120 of -n 250")
	}

	// Without -seed, the seed is printed and repeats the run.
	_, random := sampleOrders(t, "-n", "20", "-shop", "shop-1")
	m := regexp.MustCompile(`-seed (\d+)`).FindStringSubmatch(random.stderr)
	if m == nil {
		t.Fatalf("no seed printed: %q", random.stderr)
	}
	if _, again := sampleOrders(t, "-n", "20", "-shop", "shop-1", "-seed", m[1]); again.stdout != random.stdout {
		t.Error("the printed seed does not repeat the run")
	}
}

func TestSampleUpdatedOrders(t *testing.T) {
	t.Parallel()
	created, _ := sampleOrders(t, "-n", "500", "-shop", "shop-1", "-seed", "5")
	updated, _ := sampleOrders(t, "-n", "500", "-shop", "shop-1", "-seed", "5", "-type", "order.updated")
	for i := range created {
		c, u := created[i], updated[i]
		if c.OrderID != u.OrderID || c.Buyer.Email != u.Buyer.Email {
			t.Fatalf("line %d: updated order %s (%s) is not order %s (%s)", i+1, u.OrderID, u.Buyer.Email, c.OrderID, c.Buyer.Email)
		}
		if mustJSON(t, c) == mustJSON(t, u) {
			t.Errorf("order %s unchanged", c.OrderID)
		}
		if sandboxRule(t, c) != sandboxRule(t, u) {
			t.Errorf("order %s: the change moved it to another sandbox rule (billed %d → %d)", c.OrderID, *c.BilledAmount, *u.BilledAmount)
		}
	}
}

func TestSampleUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-n", "0"}, {"-shop", "a b"}, {"-type", "order.cancelled"}, {"-date", "26/11/2026"}, {"x"}} {
		r := runPublisher(t, "nats://127.0.0.1:1", "", false, append([]string{"sample"}, args...)...)
		if !errors.As(r.err, new(UsageError)) {
			t.Errorf("sample %v: err = %v, want a usage error", args, r.err)
		}
	}
}

// TestSampleTypeTravelsToBatch: the lines of `sample -type order.updated` are published by
// `batch` as order.updated without -type being given again (they went out as order.created).
func TestSampleTypeTravelsToBatch(t *testing.T) {
	t.Parallel()
	url, s := ordersStream(t)
	for _, typ := range []string{events.TypeOrderCreated, events.TypeOrderUpdated} {
		lines := runPublisher(t, url, "", false, "sample", "-n", "3", "-shop", "shop-1", "-seed", "3", "-type", typ)
		if lines.err != nil {
			t.Fatalf("sample: %v", lines.err)
		}
		if r := runPublisher(t, url, lines.stdout, false, "batch", "-file", "-"); r.err != nil {
			t.Fatalf("batch: %v\n%s", r.err, r.stderr)
		}
	}
	var got []string
	for _, m := range storedMsgs(t, s) {
		var env events.Envelope
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Subject+" "+env.Type)
	}
	want := []string{"orders.created.shop-1 order.created", "orders.created.shop-1 order.created", "orders.created.shop-1 order.created",
		"orders.updated.shop-1 order.updated", "orders.updated.shop-1 order.updated", "orders.updated.shop-1 order.updated"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("published:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestBatchTypeContradictingTheLines: a -type given on the command line that contradicts the type
// a line carries rejects the line instead of picking one of the two.
func TestBatchTypeContradictingTheLines(t *testing.T) {
	t.Parallel()
	url, s := ordersStream(t)
	lines := runPublisher(t, url, "", false, "sample", "-n", "1", "-shop", "shop-1", "-seed", "3")
	r := runPublisher(t, url, lines.stdout, false, "batch", "-file", "-", "-type", "order.updated")
	if r.err == nil || !strings.Contains(r.stderr, `"order.created" contradicts -type order.updated`) {
		t.Errorf("batch -type order.updated of order.created lines: err %v, stderr %q; want the line rejected", r.err, r.stderr)
	}
	if n := len(storedMsgs(t, s)); n != 0 {
		t.Errorf("%d events published, want none", n)
	}
}
