package reliability

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/operator"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
	"github.com/atodene-worker/atodene-worker/internal/tools/childproc"
)

// The operator of the reauthorization scenario. A re-authorization whose registration's answer died
// with a killed worker ends unknown (docs/lifecycle.md#re-authorization): the order stays ok on its
// old transaction, ATODENE may hold the new one beside it, and only an operator can say which, with
// order.resolve_requested. The worker logs each such ending at warn level; the suite's operator
// acts on that line as soon as it sees it, as one paged by the alert would: it reads the order's
// state, looks up in ATODENE's screen (the sandbox's admin API) the transaction registered under the
// derived shopOrderId, and publishes the resolution as `publisher order resolve -transaction-id`
// does (internal/operator), or -not-registered when ATODENE holds none. Acting at once matters: an
// order left on its old transaction is not re-authorized again, and its approval expires
// (authorizationLifetime) before the long waits ship.

// reauthUnknownLine is the worker's warn line for a re-authorization that left the order on its old
// transaction (handlers' reauthEnded); its result field says how it ended.
const reauthUnknownLine = "re-authorization ended with the order on its old transaction: see the order's history"

// operatorName is the suite's operator, recorded in the orders' histories.
const operatorName = "reliability"

// operatorSourcePrefix is the source of the events of `publisher order resolve`
// (internal/publisher), whose resolutions the suite's operator publishes.
const operatorSourcePrefix = "publisher/operator/"

// resolution is what the suite's operator did for one order.
type resolution struct {
	seen, at    time.Time // the warn line written; the resolution published
	shopOrderID string    // the derived shopOrderId looked up
	tx          string    // the transaction found under it ("" : resolved as not registered)
	after       bool      // resolved after the workload, not on the warn line (a line missed)
}

// reauthOperator follows the worker's log and resolves the orders whose re-authorization ended
// unknown while the workload runs; checkReauthorizations stops it.
type reauthOperator struct {
	x     *run
	ops   *operator.Operator
	store *orderstate.Store
	stop  context.CancelFunc
	done  chan struct{}

	offset  int64
	partial []byte
	pending map[[2]string]time.Time // shop, order → when its warn line was read

	mu       sync.Mutex
	resolved map[string][]resolution // shop/order → its resolutions, in order
	refused  []string                // resolutions the operator's rules refused
	failed   int
	lastErr  error
}

// startReauthOperator starts the suite's operator.
func startReauthOperator(ctx context.Context, x *run) (*reauthOperator, error) {
	rdb, err := x.s.RedisClient()
	if err != nil {
		return nil, err
	}
	store := orderstate.New(rdb, x.s.Prefix, 0)
	ops, err := operator.New(operator.Config{JetStream: x.s.JS, Store: store, SourcePrefix: operatorSourcePrefix})
	if err != nil {
		store.Close()
		return nil, err
	}
	octx, cancel := context.WithCancel(ctx)
	op := &reauthOperator{x: x, ops: ops, store: store, stop: cancel, done: make(chan struct{}),
		pending: map[[2]string]time.Time{}, resolved: map[string][]resolution{}}
	go func() {
		defer close(op.done)
		for octx.Err() == nil {
			op.round(octx)
			_ = childproc.Sleep(octx, 500*time.Millisecond)
		}
	}()
	return op, nil
}

// round reads the log's new lines and acts on the orders they name.
func (op *reauthOperator) round(ctx context.Context) {
	if err := op.readLog(); err != nil {
		op.fail(err)
	}
	now := time.Now()
	byOrder := func(a, b [2]string) int { return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1])) }
	for _, o := range slices.SortedFunc(maps.Keys(op.pending), byOrder) {
		done, err := op.act(ctx, o[0], o[1], op.pending[o], false)
		if err != nil && ctx.Err() == nil {
			op.fail(err)
		}
		// The line comes just before the state's write: a worker killed between the two leaves
		// the re-authorization registering, and its retry logs the line again.
		if done || now.Sub(op.pending[o]) > twoLiveWindow {
			delete(op.pending, o)
		}
	}
}

// readLog reads what the worker's log (appended to across restarts) gained since the last round,
// and adds the orders of its lines of a re-authorization ended unknown to pending.
func (op *reauthOperator) readLog() error {
	f, err := os.Open(op.x.s.Workers[0].Log)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(op.offset, io.SeekStart); err != nil {
		return err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	op.offset += int64(len(data))
	data = append(op.partial, data...)
	end := bytes.LastIndexByte(data, '\n') + 1
	op.partial = bytes.Clone(data[end:])
	for line := range bytes.Lines(data[:end]) {
		if !bytes.Contains(line, []byte(`"result":"unknown"`)) {
			continue
		}
		var l struct {
			Time   time.Time `json:"time"`
			Msg    string    `json:"msg"`
			Shop   string    `json:"shop"`
			Order  string    `json:"order"`
			Result string    `json:"result"`
		}
		if json.Unmarshal(line, &l) != nil || l.Msg != reauthUnknownLine || l.Result != handlers.ReauthUnknown {
			continue
		}
		if o := [2]string{l.Shop, l.Order}; op.pending[o].IsZero() {
			op.pending[o] = cmp.Or(l.Time, time.Now()) // when the worker wrote it
		}
	}
	return nil
}

// act resolves the order if its state says its re-authorization ended unknown; done is false when
// it does not (yet).
func (op *reauthOperator) act(ctx context.Context, shop, order string, seen time.Time, after bool) (done bool, err error) {
	st, err := op.store.Get(ctx, shop, order)
	if err != nil {
		return false, err
	}
	if st.Status != orderstate.StatusOK || st.Reauth == nil || st.Reauth.Failed != handlers.ReauthUnknown {
		return false, nil
	}
	// What ATODENE's screen shows under the derived shopOrderId (the suite's shops have no
	// order_id_prefix): the transaction the lost answer was about, or none.
	derived := handlers.ReauthShopOrderID(order, st.Reauth.N)
	var txs []sandbox.TransactionView
	if err := op.x.s.SandboxJSON(ctx, "/sandbox/transactions?shopOrderId="+url.QueryEscape(derived), &txs); err != nil {
		return false, fmt.Errorf("looking up %s in the sandbox: %w", derived, err)
	}
	res := operator.Resolution{NotRegistered: true}
	for _, t := range txs {
		if shopOfCode[t.ShopCode] == shop {
			res = operator.Resolution{TransactionID: t.TransactionID} // the last registered
		}
	}
	r, err := op.ops.Resolve(ctx, operatorName, shop, order, res, operator.Key(fmt.Sprintf("reauth-%d", st.Reauth.N)))
	if err != nil {
		return false, err
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if r.Outcome != operator.Published {
		op.refused = append(op.refused, fmt.Sprintf("%s/%s: %s", shop, order, r.Reason))
		return true, nil
	}
	if r.Duplicate {
		return true, nil // published already (the same key), not yet handled
	}
	key := shop + "/" + order
	op.resolved[key] = append(op.resolved[key], resolution{seen: seen, at: time.Now(), shopOrderID: derived, tx: res.TransactionID, after: after})
	return true, nil
}

func (op *reauthOperator) fail(err error) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.failed, op.lastErr = op.failed+1, err
}

// finish stops following the log, then resolves the orders of the workload whose re-authorization
// still ended unknown (a warn line the operator missed), and returns how many it resolved so.
func (op *reauthOperator) finish(ctx context.Context, ledger []*Event) (int, error) {
	op.stop()
	<-op.done
	n, seen := 0, map[string]bool{}
	for _, e := range ledger {
		if e.Type != events.TypeOrderCreated || seen[e.Shop+"/"+e.Order] {
			continue
		}
		seen[e.Shop+"/"+e.Order] = true
		done, err := op.act(ctx, e.Shop, e.Order, time.Time{}, true)
		if err != nil {
			return n, err
		}
		if done {
			n++
		}
	}
	return n, nil
}

// transactionsLocked returns the transactions the operator's resolutions named; op.mu is held.
func (op *reauthOperator) transactionsLocked() map[string]bool {
	out := map[string]bool{}
	for _, rs := range op.resolved {
		for _, r := range rs {
			if r.tx != "" {
				out[r.tx] = true
			}
		}
	}
	return out
}
