// Package ordercsv writes a shop's credit results as CSV for spreadsheets
// (docs/operations.md#order-export--shop-s): one order of the order index a row, under a header
// row, in UTF-8 with a byte order mark or in Shift_JIS as Windows extends it (CP932), lines ending
// CRLF and fields quoted only where CSV needs it. A field a spreadsheet would read as a formula
// (starting with =, +, -, @, a tab or a carriage return: an order ID "-1-2" shows as -3) is
// written behind a ' (spreadsheetSafe), which Excel and LibreOffice show as text without it. The
// order index holds no personal data, and neither do the rows.
package ordercsv

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/japanese"

	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Header is the header row: the columns of a row (Record).
var Header = []string{"order_id", "status", "review", "transaction_id", "fee", "billed_amount", "shipment", "ordered_at", "changed_at"}

// Record is an order as a row of Header: its order ID; its credit status ("none" for an order
// never registered); "review" (審査中) or "hold" (保留) for a pending order, empty otherwise; its
// transaction ID (empty before one is known); its fee and billed amount in yen; its shipment
// status; and the times it was ordered and last changed, in JST to the second
// ("2026-11-30 14:18:55"; "-" when unknown).
func Record(o orderstate.Summary) []string {
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
	return []string{o.OrderID, status, review, o.TransactionID, strconv.FormatInt(o.Fee, 10),
		strconv.FormatInt(o.BilledAmount, 10), string(o.Shipment), jst.Format(o.OrderedAt), jst.Format(o.ChangedAt)}
}

// Encoding is the character encoding of a file.
type Encoding string

// The encodings.
const (
	// UTF8 is UTF-8 with a byte order mark (EF BB BF), without which Excel reads a CSV file in
	// the system's code page.
	UTF8 Encoding = "utf-8"
	// ShiftJIS is Shift_JIS as Windows extends it (CP932), which Excel on Japanese Windows opens
	// as is; no byte order mark.
	ShiftJIS Encoding = "shift_jis"
)

// bom heads a UTF-8 file.
const bom = "\uFEFF"

// UnencodableError is an order whose row holds a character Shift_JIS (CP932) cannot hold (an
// emoji in a transaction ID, say): the file cannot hold it without a silent replacement.
type UnencodableError struct {
	Shop, Order string
	Column      string // its column in Header
	Value       string
}

func (e *UnencodableError) Error() string {
	return fmt.Sprintf("order %s of shop %s: %s %q holds a character Shift_JIS (CP932) cannot hold", e.Order, e.Shop, e.Column, e.Value)
}

// Writer writes the rows of a file, one order at a time: for a listing read page by page.
type Writer struct {
	w    io.Writer
	enc  *encoding.Encoder // nil for UTF-8
	line bytes.Buffer
	csv  *csv.Writer
}

// NewWriter starts a file of encoding enc on w: it writes the byte order mark (UTF8) and the
// header row. An encoding that is neither UTF8 nor ShiftJIS is an error; so is one of w.
func NewWriter(w io.Writer, enc Encoding) (*Writer, error) {
	cw := &Writer{w: w}
	cw.csv = csv.NewWriter(&cw.line)
	cw.csv.UseCRLF = true
	switch enc {
	case UTF8:
		if _, err := io.WriteString(w, bom); err != nil {
			return nil, err
		}
	case ShiftJIS:
		cw.enc = japanese.ShiftJIS.NewEncoder()
	default:
		return nil, fmt.Errorf("ordercsv: encoding %q: want %s or %s", enc, UTF8, ShiftJIS)
	}
	return cw, cw.put(Header, orderstate.Summary{})
}

// Write writes the orders' rows. An order Shift_JIS cannot hold is an *UnencodableError, and
// nothing of its row is written; an error of the underlying writer is returned as it is.
func (w *Writer) Write(orders ...orderstate.Summary) error {
	for _, o := range orders {
		if err := w.put(spreadsheetSafe(Record(o)), o); err != nil {
			return err
		}
	}
	return nil
}

// spreadsheetSafe puts a ' before each field a spreadsheet would take for a formula (OWASP's
// advice for CSV injection), but the "-" of a time unknown, which none does; the fields are the
// record's, changed in place.
func spreadsheetSafe(record []string) []string {
	for i, f := range record {
		if f != "" && f != "-" && strings.ContainsRune("=+-@\t\r", rune(f[0])) {
			record[i] = "'" + f
		}
	}
	return record
}

// put writes one row.
func (w *Writer) put(record []string, o orderstate.Summary) error {
	w.line.Reset()
	_ = w.csv.Write(record)
	if w.csv.Flush(); w.csv.Error() != nil {
		return w.csv.Error()
	}
	b := w.line.Bytes()
	if w.enc != nil {
		var err error
		if b, err = w.enc.Bytes(b); err != nil {
			for i, field := range record {
				if _, ferr := w.enc.String(field); ferr != nil {
					return &UnencodableError{Shop: o.Shop, Order: o.OrderID, Column: Header[i], Value: field}
				}
			}
			return fmt.Errorf("order %s of shop %s: cannot be written in Shift_JIS (CP932): %w", o.OrderID, o.Shop, err)
		}
	}
	_, err := w.w.Write(b)
	return err
}

// Write writes the orders as a whole file of encoding enc to w: the byte order mark (UTF8), the
// header row, one row an order in the order given. The file is built first: on an error (an
// *UnencodableError, an encoding that is none) nothing is written to w.
func Write(w io.Writer, enc Encoding, orders []orderstate.Summary) error {
	var buf bytes.Buffer
	cw, err := NewWriter(&buf, enc)
	if err != nil {
		return err
	}
	if err := cw.Write(orders...); err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}
