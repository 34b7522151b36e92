package events_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// mallCase is one real-shaped input of testdata/mall_orders.json: edits on the order.created
// example of docs/events.md, and either the values sent (after normalisation) or the problems,
// each a field and a part of its reason.
type mallCase struct {
	Name       string            `json:"name"`
	Edits      [][2]any          `json:"edits"`
	Sent       map[string]string `json:"sent"`
	SentLength map[string]int    `json:"sentLength"`
	Normalized []string          `json:"normalized"`
	Problems   map[string]string `json:"problems"`
}

// TestMallOrders drives DecodeOrder with the order data of real malls and shops: what is
// unambiguous is sent in ATODENE's form and listed as normalized; what is not is refused with a
// reason that says what is wrong with the form.
func TestMallOrders(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("testdata", "mall_orders.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []mallCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			edits := make([]edit, len(c.Edits))
			for i, e := range c.Edits {
				edits[i] = edit{path: e[0].(string), value: e[1]}
			}
			o, err := decodeOrder(t, edits...)
			if c.Problems != nil {
				checkReasons(t, err, c.Problems)
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			sent := flatten(t, o)
			for field, want := range c.Sent {
				if sent[field] != want {
					t.Errorf("%s sent as %q, want %q", field, sent[field], want)
				}
			}
			for field, n := range c.SentLength {
				if got := utf8.RuneCountInString(sent[field]); got != n {
					t.Errorf("%s sent with %d characters, want %d", field, got, n)
				}
			}
			var got []string
			for _, n := range o.Normalized {
				got = append(got, n.Field)
				if sent[n.Field] != n.Value {
					t.Errorf("normalized %s lists %q, but %q is sent", n.Field, n.Value, sent[n.Field])
				}
			}
			if !slices.Equal(got, c.Normalized) {
				t.Errorf("normalized fields %q, want %q", got, c.Normalized)
			}
		})
	}
}

func checkReasons(t *testing.T, err error, want map[string]string) {
	t.Helper()
	var ie *events.InvalidError
	if !asInvalid(err, &ie) {
		t.Fatalf("error %v, want an *InvalidError", err)
	}
	if len(ie.Problems) != len(want) {
		t.Errorf("problems %v, want one for each of %v", ie.Problems, want)
	}
	for _, p := range ie.Problems {
		if w, ok := want[p.Field]; !ok || !strings.Contains(p.Reason, w) {
			t.Errorf("%s: %q, want it to contain %q", p.Field, p.Reason, w)
		}
	}
}

func asInvalid(err error, ie **events.InvalidError) bool {
	v, ok := err.(*events.InvalidError)
	*ie = v
	return ok
}

// flatten maps the JSON paths of an order's string fields (buyer.zip, items[0].name) to their values.
func flatten(t *testing.T, o events.Order) map[string]string {
	t.Helper()
	raw, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return leaves(v)
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// A parcel is a gift when it goes to someone else or somewhere else than the buyer: width and
// spacing aside, but never by dropping what tells two addresses apart.
func TestIsGift(t *testing.T) {
	t.Parallel()
	buyer := events.Person{Name: "加藤 太郎", Zip: "150-0001", Address: "東京都渋谷区神宮前1-2-13"}
	tests := []struct {
		name string
		to   *events.Person
		gift bool
	}{
		{"no ship_to", nil, false},
		{"the buyer, written the same", &events.Person{Name: "加藤 太郎", Zip: "150-0001", Address: "東京都渋谷区神宮前1-2-13"}, false},
		{"the buyer, in full width, without spaces and hyphens in the zip", &events.Person{Name: "加藤　太郎", Zip: "1500001", Address: "東京都渋谷区　神宮前１－２－１３"}, false},
		{"the buyer, with another dash", &events.Person{Name: "加藤太郎", Zip: "１５０－０００１", Address: "東京都渋谷区神宮前1ー2ー13"}, false},
		{"another block of the same street", &events.Person{Name: "加藤 太郎", Zip: "150-0001", Address: "東京都渋谷区神宮前1-21-3"}, true},
		{"another person at the same address", &events.Person{Name: "加藤 花子", Zip: "150-0001", Address: "東京都渋谷区神宮前1-2-13"}, true},
		{"another postal code", &events.Person{Name: "加藤 太郎", Zip: "150-0002", Address: "東京都渋谷区神宮前1-2-13"}, true},
		{"the address written another way", &events.Person{Name: "加藤 太郎", Zip: "150-0001", Address: "東京都渋谷区神宮前1丁目2番13号"}, true},
	}
	for _, tt := range tests {
		b := buyer
		o := events.Order{Buyer: &b, ShipTo: tt.to}
		if got := o.IsGift(); got != tt.gift {
			t.Errorf("%s: IsGift() = %v, want %v", tt.name, got, tt.gift)
		}
	}
}
