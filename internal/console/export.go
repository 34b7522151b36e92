package console

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/ordercsv"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// maxExport bounds the orders of one export.
const maxExport = 200000

// CSVExport is the console's Exporter: the CSV of `publisher order export` (internal/ordercsv:
// its columns, JST times, CRLF lines), in UTF-8 with a BOM or in Shift_JIS (CP932). An order CP932
// cannot hold is an error naming it; nothing is written then.
func CSVExport(w io.Writer, orders []orderstate.Summary, shiftJIS bool) error {
	enc := ordercsv.UTF8
	if shiftJIS {
		enc = ordercsv.ShiftJIS
	}
	return ordercsv.Write(w, enc, orders)
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
	// An export holds up to maxExport orders in memory: one at a time per operator.
	op := sessionOf(r).Operator
	if !s.startExport(op) {
		w.Header().Set("Retry-After", "10")
		s.problem(w, r, http.StatusTooManyRequests, "export.busy", "")
		return
	}
	defer s.endExport(op)
	orders, err := s.cfg.Store.AllOrders(r.Context(), filter, maxExport)
	switch {
	case errors.Is(err, orderstate.ErrFilter):
		s.problem(w, r, http.StatusBadRequest, "export.filter", err.Error())
		return
	case errors.Is(err, orderstate.ErrTooManyOrders):
		s.problem(w, r, http.StatusBadRequest, "export.toomany", strconv.Itoa(maxExport))
		return
	case err != nil:
		s.problem(w, r, http.StatusServiceUnavailable, "error.redis", err.Error())
		return
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
	name := fmt.Sprintf("orders-%s-%s.csv", f.Shop, s.cfg.Now().In(jst.Zone).Format("20060102-150405"))
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset="+charset)
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
	s.log.Info("orders exported", zap.String("operator", sessionOf(r).Operator), zap.String("shop", f.Shop), zap.Int("orders", len(orders)), zap.String("encoding", enc))
}

// startExport marks operator's export as running; false when one is running already.
func (s *Server) startExport(operator string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exporting[operator] {
		return false
	}
	s.exporting[operator] = true
	return true
}

func (s *Server) endExport(operator string) {
	s.mu.Lock()
	delete(s.exporting, operator)
	s.mu.Unlock()
}
