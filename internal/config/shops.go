// Package config loads the worker's configuration: the shops file, which lists every shop with
// its ATODENE credentials and fee table, and the connection Settings, which come from flags
// and ATODENE_WORKER_* environment variables.
//
// Every problem is reported at once, each naming the file, the shop and the field, so that an
// operator fixes a file in one pass. Secrets never sit in the shops file: a link password is a
// ${ENV_VAR} reference or a file, and is held in a Secret, which never prints its value.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/atodene-worker/atodene-worker/internal/atodene"
	"github.com/atodene-worker/atodene-worker/internal/fees"
)

// DefaultLinkID is the link ID (接続先特定ID) every known ATODENE client sends.
const DefaultLinkID = "original00"

// InvoiceDelivery says how the buyer gets the invoice.
type InvoiceDelivery string

// The invoice delivery methods.
const (
	// InvoiceSeparate (別送): ATODENE mails the invoice to the buyer. The default.
	InvoiceSeparate InvoiceDelivery = "separate"
	// InvoiceEnclosed (同梱): the shop prints the invoice and puts it in the parcel.
	InvoiceEnclosed InvoiceDelivery = "enclosed"
)

// Shop is one shop's configuration.
type Shop struct {
	// ID identifies the shop in events and subjects: 1–32 of [A-Za-z0-9_-], unique.
	ID      string
	Atodene Atodene
	// Fees is the shop's fee table; a shop without one has mode keep and no rows.
	Fees fees.Table
	// ReauthorizeAfter is how long after ATODENE approved an order's transaction (its registration,
	// or the re-check that turned it OK; a change approved later does not count) the worker
	// registers the order again if it is not shipped, to hold a fresh authorization before the old
	// one expires, and cancels the old transaction (docs/lifecycle.md#re-authorization). It must be
	// shorter than -retention. w2 Commerce treats an authorization as expiring 88
	// days after it was given and re-authorizes the same way (docs/protocol.md#changes-and-cancels);
	// the service's real limit is unknown. 0 turns re-authorization off; negative is refused. In
	// the shops file it is reauthorize_after, default DefaultReauthorizeAfter (88 days), written
	// "88d" or "2112h", and at least 1 hour unless 0. NewShops applies no default: a Shop built in
	// code with 0 does not re-authorize.
	ReauthorizeAfter time.Duration
}

// Atodene holds a shop's ATODENE account.
type Atodene struct {
	BaseURL      string // the API root, an absolute http or https URL
	ShopCode     string // 加盟店コード
	LinkID       string // 接続先特定ID; default DefaultLinkID
	LinkPassword Secret // 連携パスワード
	// LinkPasswordFrom says where the password came from, for display: "${NAME}" or the path
	// of the password file as written. It is never the password.
	LinkPasswordFrom string
	// InvoiceDelivery is the shop's default when an order does not say; default separate.
	InvoiceDelivery InvoiceDelivery
	// OrderIDPrefix is written before every order_id of the shop to make its shopOrderId, for
	// shops that share one ATODENE account (the same ShopCode): 0–49 of [A-Za-z0-9_-], counted in
	// shopOrderId's 50 characters (docs/protocol.md#field-limits). Default "": the order_id alone.
	OrderIDPrefix string
}

// Shops is a validated list of shops, looked up by ID. It is read-only and safe for
// concurrent use.
type Shops struct {
	file string
	list []Shop
	byID map[string]int
}

// NewShops validates list and indexes it by ID. Defaults are not applied: a shop built in code
// must be complete. The error joins every problem as a *FieldError.
func NewShops(list []Shop) (*Shops, error) {
	return newShops("", list, nil, nil)
}

// newShops validates list. probs holds what decoding found about each shop and top about the
// file as a whole, when the shops come from a file; otherwise both are nil.
func newShops(file string, list []Shop, probs []*problems, top *problems) (*Shops, error) {
	if top == nil {
		top = newProblems(file, 0)
	}
	s := &Shops{file: file, list: list, byID: make(map[string]int, len(list))}
	errs := top.errs
	for i, sh := range list {
		p := newProblems(file, i+1)
		if probs != nil {
			p = probs[i]
		}
		p.named(sh.ID)
		validateShop(p, sh)
		if j, dup := s.byID[sh.ID]; dup && sh.ID != "" {
			p.checkf("id", "duplicate: shop #%d has the same id", j+1)
		} else {
			s.byID[sh.ID] = i
			for _, other := range list[:i] {
				if err := sharedAccount(sh, other); err != nil {
					p.check("atodene.order_id_prefix", err)
				}
			}
		}
		errs = append(errs, p.errs...)
	}
	if len(list) == 0 && len(top.errs) == 0 {
		errs = append(errs, &FieldError{File: file, Field: "shops", Err: errors.New("no shops listed")})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Lookup returns the shop with the given ID.
func (s *Shops) Lookup(id string) (Shop, bool) {
	i, ok := s.byID[id]
	if !ok {
		return Shop{}, false
	}
	return s.list[i], true
}

// All returns the shops in the order of the file. The caller must not modify them.
func (s *Shops) All() []Shop { return s.list }

// LongestReauthorizeAfter is the longest ReauthorizeAfter of the shops; 0 when none re-authorizes.
func (s *Shops) LongestReauthorizeAfter() time.Duration {
	var d time.Duration
	for _, sh := range s.list {
		d = max(d, sh.ReauthorizeAfter)
	}
	return d
}

// File returns the path of the shops file they were loaded from, or "" for NewShops.
func (s *Shops) File() string { return s.file }

func validateShop(p *problems, sh Shop) {
	if err := checkShopID(sh.ID); err != nil {
		p.check("id", err)
	}
	a := sh.Atodene
	if err := checkBaseURL(a.BaseURL); err != nil {
		p.check("atodene.base_url", err)
	}
	if err := checkToken(a.ShopCode); err != nil {
		p.check("atodene.shop_code", err)
	}
	if err := checkToken(a.LinkID); err != nil {
		p.check("atodene.link_id", err)
	}
	if a.LinkPassword.IsZero() {
		p.checkf("atodene.link_password", "required: a ${ENV_VAR} reference, or link_password_file")
	}
	if a.InvoiceDelivery != InvoiceSeparate && a.InvoiceDelivery != InvoiceEnclosed {
		p.checkf("atodene.invoice_delivery", "%q: want separate or enclosed", a.InvoiceDelivery)
	}
	if err := checkPrefix(a.OrderIDPrefix); err != nil {
		p.check("atodene.order_id_prefix", err)
	}
	if err := checkReauthorizeAfter(sh.ReauthorizeAfter); err != nil {
		p.check("reauthorize_after", err)
	}
	for _, err := range unjoin(sh.Fees.Validate()) {
		if re := (*fees.RowError)(nil); errors.As(err, &re) {
			p.check(fmt.Sprintf("fees.table[%d]", re.Row), errors.New(re.Problem))
		} else {
			p.check("fees.mode", err)
		}
	}
}

// checkShopID enforces [A-Za-z0-9_-]{1,32}: shop IDs are NATS subject tokens.
func checkShopID(id string) error {
	if id == "" {
		return errors.New("required")
	}
	if len(id) > 32 {
		return fmt.Errorf("%q is %d characters long; at most 32", id, len(id))
	}
	for _, c := range id {
		if !isIDChar(c) {
			return fmt.Errorf("%q: only letters A–Z a–z, digits, '_' and '-' are allowed", id)
		}
	}
	return nil
}

// checkPrefix enforces 0–49 of [A-Za-z0-9_-]: what shopOrderId takes, leaving room for an order_id.
func checkPrefix(prefix string) error {
	if len(prefix) >= atodene.MaxShopOrderID {
		return fmt.Errorf("%q is %d characters long; at most %d, so that an order_id still fits in shopOrderId's %d", prefix, len(prefix), atodene.MaxShopOrderID-1, atodene.MaxShopOrderID)
	}
	for _, c := range prefix {
		if !isIDChar(c) {
			return fmt.Errorf("%q: only letters A–Z a–z, digits, '_' and '-' are allowed", prefix)
		}
	}
	return nil
}

// sharedAccount refuses two shops that share an ATODENE account (the same shop_code) unless
// their order numbers cannot collide as shopOrderId: each needs an order_id_prefix, and neither
// prefix may begin the other (with "R" and "R1", order "1A" of the first and "A" of the second
// would both be sent as "R1A"; the empty prefix begins every other).
func sharedAccount(sh, other Shop) error {
	a, b := sh.Atodene, other.Atodene
	if a.ShopCode == "" || a.ShopCode != b.ShopCode {
		return nil
	}
	if !strings.HasPrefix(a.OrderIDPrefix, b.OrderIDPrefix) && !strings.HasPrefix(b.OrderIDPrefix, a.OrderIDPrefix) {
		return nil
	}
	return fmt.Errorf("%q shares the ATODENE account %s (shop_code) with shop %q, whose prefix is %q: their order numbers can be sent as the same shopOrderId; give each shop a prefix that does not begin the other's",
		a.OrderIDPrefix, a.ShopCode, other.ID, b.OrderIDPrefix)
}

func isIDChar(c rune) bool {
	return c == '_' || c == '-' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func checkBaseURL(s string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Errorf("%q is not an absolute http or https URL", s)
	case u.User != nil:
		// Do not echo the URL: its user info may hold a password.
		return errors.New("must not carry credentials (user info)")
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q: must not have a query or fragment", s)
	}
	return nil
}

// checkToken accepts a non-empty value without spaces or control characters, as the codes and
// IDs ATODENE issues are.
func checkToken(s string) error {
	if s == "" {
		return errors.New("required")
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
		return fmt.Errorf("%q contains a space or control character", s)
	}
	return nil
}

// unjoin returns the errors joined in err (one level), or err alone.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
