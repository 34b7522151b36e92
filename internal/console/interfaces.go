package console

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/operator"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// Action is an operator's action on an order: each publishes one inbound event for it
// (docs/events.md#operator-events).
type Action string

// The actions, with the labels of the 後払い panel.
const (
	ActionRerun   Action = "rerun"   // 与信を実行: order.created with the order's latest received data
	ActionRecheck Action = "recheck" // 与信結果確認: order.recheck_requested
	ActionCancel  Action = "cancel"  // 与信キャンセル: order.cancelled
	ActionTrack   Action = "track"   // 伝票番号同期: order.tracking_entered (Target.Carrier, Target.Number)
	ActionInvoice Action = "invoice" // 請求書ダウンロード: order.invoice_requested
	ActionResolve Action = "resolve" // settle an unknown order: order.resolve_requested
)

// AllActions lists every action, in the order of the panel's buttons.
var AllActions = []Action{ActionRerun, ActionRecheck, ActionCancel, ActionTrack, ActionInvoice, ActionResolve}

// bulkActions are the actions the order list offers on the checked orders; resolve needs what
// ATODENE holds for one order, and is on the order's page only.
var bulkActions = []Action{ActionRerun, ActionRecheck, ActionCancel, ActionTrack, ActionInvoice}

// valid reports whether a is one of the actions.
func (a Action) valid() bool {
	for _, x := range AllActions {
		if a == x {
			return true
		}
	}
	return false
}

// Target is one order an action is run on, with what the action needs besides: the carrier and
// tracking number of ActionTrack, the transaction ID or NotRegistered of ActionResolve.
type Target struct {
	Shop, Order     string
	Carrier, Number string
	TransactionID   string
	NotRegistered   bool
}

// Outcome is what became of one target of an action (or one dead letter of a replay or purge):
// published, or refused and why. MsgID is the Nats-Msg-Id of the event published.
type Outcome struct {
	Shop, Order string
	Action      Action
	Published   bool
	Reason      string
	MsgID       string
}

// Actions are the operator's actions on orders. Every event they publish has the source
// console/operator/NAME, which the worker records in the order's history.
type Actions interface {
	// Allowed lists the actions valid for an order in its state (buttons are enabled from it).
	Allowed(st orderstate.State) []Action
	// Do runs one action on each target as operator; results in input order. error only for
	// infrastructure failures. key is the form's idempotency key (a random token the
	// confirmation carries): the same form sent again publishes nothing twice. "" for none.
	Do(ctx context.Context, operator, key string, a Action, targets []Target) ([]Outcome, error)
	// Received returns the order's latest received event data (JSON, holds personal data), or an error naming why it is gone.
	Received(ctx context.Context, shop, order string) (json.RawMessage, error)
}

// Letter is a dead letter: its sequence in the dead-letter stream, why it failed, where it came
// from and when, and its body byte for byte (empty in listings).
type Letter struct {
	Seq                                 uint64
	Reason, Shop, Order, Subject, Error string
	At                                  time.Time
	Body                                []byte
}

// LetterFilter selects dead letters; empty fields select all. Since is inclusive, Until
// exclusive.
type LetterFilter struct {
	Reason, Shop string
	Since, Until time.Time
}

// DeadLetters look after the dead-letter stream with the guards of `publisher dlq`. Replay and
// Purge return one Outcome per sequence, in the order given; EditReplay publishes body in place
// of the letter seq.
type DeadLetters interface {
	List(ctx context.Context, f LetterFilter) ([]Letter, map[string]int, error) // letters (bodies empty) and counts per reason
	Get(ctx context.Context, seq uint64) (Letter, error)
	Replay(ctx context.Context, operator string, seqs []uint64, dryRun bool) ([]Outcome, error)
	Purge(ctx context.Context, operator string, seqs []uint64) ([]Outcome, error)
	EditReplay(ctx context.Context, operator string, seq uint64, body []byte) (Outcome, error)
}

// Invoices render enclosed invoices for printing.
type Invoices interface {
	// Sheets renders the invoices of the orders as HTML sheets (one per A4 page) and their CSS;
	// missing lists, in the order given, the orders without a sheet: those with no print data, and
	// those whose print data is stale (older than the order's last change) or whose order was
	// cancelled since.
	//
	// The console serves the CSS as a stylesheet of its own (its Content-Security-Policy allows no
	// inline styles), from a call with no orders: Sheets(ctx, shop, nil) must return the CSS. The
	// sheets must carry no style attributes nor scripts.
	Sheets(ctx context.Context, shop string, orders []string) (sheets template.HTML, css template.CSS, missing []MissingInvoice, err error)
}

// MissingInvoice is an order of the invoice page without a sheet, and why.
type MissingInvoice struct {
	Order string
	// Stale: the order's latest print data predates its last change (a later credit outcome: a
	// change of the amount or the data, a new registration), so it may bill another amount or
	// transaction; 請求書ダウンロード fetches it again. Cancelled: the order was cancelled after its
	// print data was fetched; its invoice is not printed at all. Neither: no print data was found.
	// Unverified (with Stale): the print data is older than the credit outcomes the check read
	// (it reads a bounded number, invoiceprint.DefaultCheck): whether the order changed since is
	// not known, so it is not printed either; 請求書ダウンロード fetches it again.
	Stale, Cancelled, Unverified bool
	// Reason names the outcomes that made the print data stale (English), for the operator; ""
	// when none was found.
	Reason string
}

// Exporter writes orders as CSV: UTF-8 with a byte order mark, or Shift_JIS (CP932) when
// shiftJIS is set. An order the encoding cannot hold is an error; the console then sends nothing.
type Exporter func(w io.Writer, orders []orderstate.Summary, shiftJIS bool) error

// ErrNotWired is the error of the placeholders (NotWired): the console runs without the operator
// actions, dead letters or invoices, and says so where they would be.
var ErrNotWired = errors.New("not wired in this build of the console: the operator actions, dead letters and invoices are not connected yet")

// NotWired is a placeholder for Actions, DeadLetters and Invoices: every call that would act or
// read fails with ErrNotWired. Allowed answers from the order's status alone, as the worker's
// rules have it (docs/lifecycle.md#what-each-event-does), so that the pages show which buttons
// apply.
type NotWired struct{}

// Allowed lists the actions the worker takes for an order in st's status.
func (NotWired) Allowed(st orderstate.State) []Action { return StatusActions(st) }

// Do fails with ErrNotWired.
func (NotWired) Do(context.Context, string, string, Action, []Target) ([]Outcome, error) {
	return nil, ErrNotWired
}

// Received fails with ErrNotWired.
func (NotWired) Received(context.Context, string, string) (json.RawMessage, error) {
	return nil, ErrNotWired
}

// List fails with ErrNotWired.
func (NotWired) List(context.Context, LetterFilter) ([]Letter, map[string]int, error) {
	return nil, nil, ErrNotWired
}

// Get fails with ErrNotWired.
func (NotWired) Get(context.Context, uint64) (Letter, error) { return Letter{}, ErrNotWired }

// Replay fails with ErrNotWired.
func (NotWired) Replay(context.Context, string, []uint64, bool) ([]Outcome, error) {
	return nil, ErrNotWired
}

// Purge fails with ErrNotWired.
func (NotWired) Purge(context.Context, string, []uint64) ([]Outcome, error) {
	return nil, ErrNotWired
}

// EditReplay fails with ErrNotWired.
func (NotWired) EditReplay(context.Context, string, uint64, []byte) (Outcome, error) {
	return Outcome{}, ErrNotWired
}

// Sheets fails with ErrNotWired.
func (NotWired) Sheets(context.Context, string, []string) (template.HTML, template.CSS, []MissingInvoice, error) {
	return "", "", nil, ErrNotWired
}

// StatusActions lists the actions the operator's rules (operator.Allowed, the rules of the
// publisher's commands and of the actions themselves) allow for an order in its state: 与信を実行
// for an order whose credit is ng, cancelled or invalid; 与信結果確認 for one under review;
// 与信キャンセル for a registered order but a cancelled or unknown one; 伝票番号同期 for an OK or
// pending order; 請求書ダウンロード for an OK order whose invoice is enclosed; resolve for an
// unknown one. An order the worker has no state of gets none.
func StatusActions(st orderstate.State) []Action {
	var out []Action
	for _, a := range operator.Allowed(st) {
		out = append(out, Action(a)) // the same names: TestStatusActions
	}
	return out
}
