package stack

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/fees"
)

// TestWriteShopsLoads: the file WriteShops writes is one the worker loads, with every field as
// given, the password taken from the variable, and the sandbox as the default base URL.
func TestWriteShopsLoads(t *testing.T) {
	t.Parallel()
	const sandboxURL = "http://127.0.0.1:8089"
	tests := map[string]struct {
		shops []Shop
		file  string
		want  []config.Shop
	}{
		"one shop, defaults": {
			shops: []Shop{{ID: "bench", ShopCode: "demo00000001", LinkID: "original00", PasswordEnv: "PW_A", FeeMode: "add", Fee: 205}},
			file:  "shops-1.yaml",
			want: []config.Shop{{ID: "bench",
				Atodene:          config.Atodene{BaseURL: sandboxURL + "/api/", ShopCode: "demo00000001", LinkID: "original00", InvoiceDelivery: config.InvoiceSeparate},
				Fees:             fees.Table{Mode: fees.ModeAdd, Rows: []fees.Row{{Min: 1, Max: 999999, Fee: 205}}},
				ReauthorizeAfter: config.DefaultReauthorizeAfter}},
		},
		"two shops, every field": {
			shops: []Shop{
				{ID: "rel-a", BaseURL: "http://127.0.0.1:9000", ShopCode: "relshop00001", LinkID: "original00", PasswordEnv: "PW_A",
					OrderIDPrefix: "A-", InvoiceDelivery: "separate", FeeMode: "add", Fee: 205, ReauthorizeAfter: "4s"},
				{ID: "rel-b", ShopCode: "relshop00002", LinkID: "original00", PasswordEnv: "PW_B",
					InvoiceDelivery: "enclosed", FeeMode: "keep", Fee: 330},
			},
			file: "shops-2.yaml",
			want: []config.Shop{
				{ID: "rel-a", Atodene: config.Atodene{BaseURL: "http://127.0.0.1:9000/api/", ShopCode: "relshop00001", LinkID: "original00",
					InvoiceDelivery: config.InvoiceSeparate, OrderIDPrefix: "A-"},
					Fees: fees.Table{Mode: fees.ModeAdd, Rows: []fees.Row{{Min: 1, Max: 999999, Fee: 205}}}, ReauthorizeAfter: 4 * time.Second},
				{ID: "rel-b", Atodene: config.Atodene{BaseURL: sandboxURL + "/api/", ShopCode: "relshop00002", LinkID: "original00",
					InvoiceDelivery: config.InvoiceEnclosed},
					Fees: fees.Table{Mode: fees.ModeKeep, Rows: []fees.Row{{Min: 1, Max: 999999, Fee: 330}}}, ReauthorizeAfter: config.DefaultReauthorizeAfter},
			},
		},
	}
	env := map[string]string{"PW_A": "secret-a", "PW_B": "secret-b"}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := &Stack{Dir: t.TempDir(), SandboxURL: sandboxURL}
			path, err := s.WriteShops(tt.shops...)
			if err != nil {
				t.Fatal(err)
			}
			if path != filepath.Join(s.Dir, tt.file) {
				t.Errorf("path %s, want %s in the stack's directory", path, tt.file)
			}
			// The suite's workers run with -min-reauthorize-after 1s (the reauthorization scenario).
			got, err := config.LoadShops(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, config.MinReauthorizeAfter(time.Second))
			if err != nil {
				t.Fatalf("the worker refuses the file: %v", err)
			}
			if len(got.All()) != len(tt.want) {
				t.Fatalf("%d shops, want %d", len(got.All()), len(tt.want))
			}
			for i, want := range tt.want {
				shop := got.All()[i]
				if pw, wantPW := shop.Atodene.LinkPassword.Reveal(), env[tt.shops[i].PasswordEnv]; pw != wantPW {
					t.Errorf("%s: password %q, want %q from the variable", want.ID, pw, wantPW)
				}
				a := shop.Atodene
				a.LinkPassword, a.LinkPasswordFrom = config.Secret{}, ""
				if shop.ID != want.ID || a != want.Atodene || shop.Fees.Mode != want.Fees.Mode ||
					len(shop.Fees.Rows) != 1 || shop.Fees.Rows[0] != want.Fees.Rows[0] || shop.ReauthorizeAfter != want.ReauthorizeAfter {
					t.Errorf("shop %d:\n got %+v %+v %v\nwant %+v %+v %v", i, shop.ID, a, shop.ReauthorizeAfter, want.ID, want.Atodene, want.ReauthorizeAfter)
				}
			}
		})
	}
}
