package console

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/fees"
)

// shopView is a shop's settings as the page shows them: the password masked.
type shopView struct {
	ID, BaseURL, ShopCode, LinkID string
	PasswordFrom                  string
	Delivery                      string
	Prefix                        string
	Mode                          fees.Mode
	ModeLabel                     string
	Rows                          []rowView
	Calc                          *calcView
}

type rowView struct {
	N             int
	Min, Max, Fee int64
	Unused        bool
}

// calcView is the calculator's answer: the fee and billed amount the worker sends ATODENE for an
// order of the shop, by the worker's own fee logic (internal/fees).
type calcView struct {
	Fee, Billed       string // as entered
	SentFee, SentBill int64
	Row               int
	Error             string
}

type shopsData struct {
	Shops []shopView
	File  string
}

// shopsPage shows every shop as loaded (加盟店コード, 連携パスワード masked, the fee table and its
// mode), with a calculator per shop: billed amount in, the fee and amount sent out.
func (s *Server) shopsPage(w http.ResponseWriter, r *http.Request) {
	l := langOf(r)
	q := r.URL.Query()
	d := shopsData{}
	status := http.StatusOK
	if s.cfg.Shops != nil {
		d.File = s.cfg.Shops.File()
		for _, sh := range s.cfg.Shops.All() {
			v := shopView{ID: sh.ID, BaseURL: sh.Atodene.BaseURL, ShopCode: sh.Atodene.ShopCode, LinkID: sh.Atodene.LinkID,
				PasswordFrom: sh.Atodene.LinkPasswordFrom, Prefix: sh.Atodene.OrderIDPrefix, Mode: sh.Fees.Mode,
				ModeLabel: l.T("fees.mode." + string(sh.Fees.Mode))}
			v.Delivery = l.T("delivery.separate")
			if sh.Atodene.InvoiceDelivery == config.InvoiceEnclosed {
				v.Delivery = l.T("delivery.enclosed")
			}
			for i, row := range sh.Fees.Rows {
				v.Rows = append(v.Rows, rowView{N: i + 1, Min: row.Min, Max: row.Max, Fee: row.Fee, Unused: row.Unused()})
			}
			if q.Get("calc") == sh.ID {
				v.Calc = calculate(l, sh.Fees, q.Get("fee"), q.Get("billed"))
				if v.Calc.Error != "" {
					status = http.StatusBadRequest
				}
			}
			d.Shops = append(d.Shops, v)
		}
	}
	s.render(w, r, status, "shops.html", "shops.title", d)
}

// calculate applies a shop's fee table to an order's fee and billed amount as entered.
func calculate(l locale, t fees.Table, feeIn, billedIn string) *calcView {
	c := &calcView{Fee: feeIn, Billed: billedIn}
	if strings.TrimSpace(feeIn) == "" {
		feeIn = "0"
	}
	fee, err1 := strconv.ParseInt(strings.TrimSpace(feeIn), 10, 64)
	billed, err2 := strconv.ParseInt(strings.TrimSpace(billedIn), 10, 64)
	if err1 != nil || err2 != nil {
		c.Error = l.T("calc.notnumber")
		return c
	}
	res, err := t.Apply(fee, billed)
	var ae *fees.AmountError
	switch {
	case errors.As(err, &ae):
		c.Error = l.T("calc.range") + " (" + err.Error() + ")"
		return c
	case err != nil:
		c.Error = err.Error()
		return c
	}
	c.SentFee, c.SentBill, c.Row = res.Fee, res.BilledAmount, res.Row
	return c
}
