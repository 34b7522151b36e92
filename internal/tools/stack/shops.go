package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Shop is one shop of the workers' shops file (docs/configuration.md), with one fee for every
// amount.
type Shop struct {
	ID string
	// BaseURL is the shop's ATODENE base URL, without /api/. Default: the stack's sandbox.
	BaseURL string
	// ShopCode and LinkID are the merchant's at ATODENE (the sandbox's Shops).
	ShopCode, LinkID string
	// PasswordEnv names the variable that holds the merchant's link password: the file says
	// ${PasswordEnv}, and the workers get the value through WorkerOptions.Env, so that the
	// password is in no file and no command line.
	PasswordEnv string
	// OrderIDPrefix goes before every order ID of the shop at ATODENE; shops that share a
	// merchant need one each. Default: none.
	OrderIDPrefix string
	// InvoiceDelivery is atodene.invoice_delivery (separate, enclosed). Default: the worker's.
	InvoiceDelivery string
	// FeeMode is fees.mode (add, keep); Fee the fee, in yen, for every amount from 1 to 999,999.
	FeeMode string
	Fee     int
	// ReauthorizeAfter is reauthorize_after as the file writes it ("4s"; a value under 1h needs
	// the workers' -min-reauthorize-after). Default: none, the worker's 88d.
	ReauthorizeAfter string
}

// WriteShops writes the shops file of the given shops to the stack's directory and returns its
// path, for WorkerOptions.Shops. The file is named for the number of shops, so that a worker
// restarted with one more shop leaves the first file beside the logs.
func (s *Stack) WriteShops(shops ...Shop) (string, error) {
	var b strings.Builder
	b.WriteString("shops:\n")
	for _, shop := range shops {
		base := shop.BaseURL
		if base == "" {
			base = s.SandboxURL
		}
		fmt.Fprintf(&b, "  - id: %s\n    atodene:\n      base_url: %s/api/\n      shop_code: %s\n      link_id: %s\n      link_password: ${%s}\n",
			shop.ID, base, shop.ShopCode, shop.LinkID, shop.PasswordEnv)
		if shop.OrderIDPrefix != "" {
			fmt.Fprintf(&b, "      order_id_prefix: %q\n", shop.OrderIDPrefix)
		}
		if shop.InvoiceDelivery != "" {
			fmt.Fprintf(&b, "      invoice_delivery: %s\n", shop.InvoiceDelivery)
		}
		fmt.Fprintf(&b, "    fees:\n      mode: %s\n      table:\n        - {min: 1, max: 999999, fee: %d}\n", shop.FeeMode, shop.Fee)
		if shop.ReauthorizeAfter != "" {
			fmt.Fprintf(&b, "    reauthorize_after: %s\n", shop.ReauthorizeAfter)
		}
	}
	path := filepath.Join(s.Dir, fmt.Sprintf("shops-%d.yaml", len(shops)))
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}
