package console

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"go.uber.org/zap"
	"golang.org/x/text/encoding/japanese"

	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// maxExport bounds the orders of one export.
const maxExport = 200000

// CSVHeader is the header row of an export: the columns of `publisher order export`.
var CSVHeader = []string{"order_id", "status", "review", "transaction_id", "fee", "billed_amount", "shipment", "ordered_at", "changed_at"}

// utf8BOM heads a UTF-8 export: spreadsheets read a CSV file without one in the system's code page.
const utf8BOM = "\uFEFF"

// CSVExport is the console's Exporter: a header row, then one order a row (status "none" for an
// order never registered, review "review" or "hold" for a pending one, times in JST), lines ending
// CRLF, in UTF-8 with a BOM or in Shift_JIS (CP932). An order CP932 cannot hold is an error naming
// it; nothing is written then.
func CSVExport(w io.Writer, orders []orderstate.Summary, shiftJIS bool) error {
	var buf bytes.Buffer
	if !shiftJIS {
		buf.WriteString(utf8BOM)
	}
	cw := csv.NewWriter(&buf)
	cw.UseCRLF = true
	_ = cw.Write(CSVHeader)
	for _, o := range orders {
		review := ""
		switch o.Bucket() {
		case orderstate.BucketReview:
			review = "review"
		case orderstate.BucketHold:
			review = "hold"
		}
		status := string(o.Status)
		if o.Status == orderstate.StatusNone {
			status = "none"
		}
		_ = cw.Write([]string{o.OrderID, status, review, o.TransactionID, strconv.FormatInt(o.Fee, 10),
			strconv.FormatInt(o.BilledAmount, 10), string(o.Shipment), jstTime(o.OrderedAt), jstTime(o.ChangedAt)})
	}
	if cw.Flush(); cw.Error() != nil {
		return cw.Error()
	}
	out := buf.Bytes()
	if shiftJIS {
		enc, err := japanese.ShiftJIS.NewEncoder().Bytes(out)
		if err != nil {
			for _, o := range orders {
				if _, err := japanese.ShiftJIS.NewEncoder().String(o.TransactionID); err != nil {
					return fmt.Errorf("order %s: its transaction ID holds a character Shift_JIS (CP932) cannot hold; export in UTF-8", o.OrderID)
				}
			}
			return fmt.Errorf("the export cannot be written in Shift_JIS (CP932): %w; export in UTF-8", err)
		}
		out = enc
	}
	_, err := w.Write(out)
	return err
}

// export sends the orders of the list's filter, every page, as CSV (encoding=utf-8 with a BOM, or
// shift_jis).
func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	f := parseListForm(r.URL.Query())
	f.Cursor = ""
	enc := r.URL.Query().Get("encoding")
	if enc == "" {
		enc = "utf-8"
	}
	if enc != "utf-8" && enc != "shift_jis" {
		s.problem(w, r, http.StatusBadRequest, "export.encoding", enc)
		return
	}
	if f.Shop == "" {
		s.problem(w, r, http.StatusBadRequest, "export.shop", "")
		return
	}
	filter, probs := f.filter()
	if len(probs) > 0 {
		s.problem(w, r, http.StatusBadRequest, "export.filter", probs[0].Field+": "+probs[0].Problem)
		return
	}
	filter.Limit = orderstate.MaxLimit
	var orders []orderstate.Summary
	for {
		page, err := s.cfg.Store.ListOrders(r.Context(), filter)
		if errors.Is(err, orderstate.ErrFilter) {
			s.problem(w, r, http.StatusBadRequest, "export.filter", err.Error())
			return
		}
		if err != nil {
			s.problem(w, r, http.StatusServiceUnavailable, "error.redis", err.Error())
			return
		}
		orders = append(orders, page.Orders...)
		if len(orders) > maxExport {
			s.problem(w, r, http.StatusBadRequest, "export.toomany", strconv.Itoa(maxExport))
			return
		}
		if page.Next == "" {
			break
		}
		filter.Cursor = page.Next
	}
	var buf bytes.Buffer
	if err := s.cfg.Export(&buf, orders, enc == "shift_jis"); err != nil {
		s.problem(w, r, http.StatusBadRequest, "export.failed", err.Error())
		return
	}
	charset := "utf-8"
	if enc == "shift_jis" {
		charset = "Shift_JIS"
	}
	name := fmt.Sprintf("orders-%s-%s.csv", f.Shop, s.cfg.Now().In(jst).Format("20060102-150405"))
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset="+charset)
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
	s.log.Info("orders exported", zap.String("operator", sessionOf(r).Operator), zap.String("shop", f.Shop), zap.Int("orders", len(orders)), zap.String("encoding", enc))
}
