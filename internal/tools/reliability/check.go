package reliability

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/sandbox"
)

// Event is one inbound event the workload published: one CloudEvent id, possibly in several
// copies (messages).
type Event struct {
	Key      string // the CloudEvent id (for the corpus: the id the case's body started from)
	Type     string // the inbound type its subject names ("" when the subject names none)
	Subject  string
	Shop     string
	Order    string
	Tracking string // order.tracking_entered: the tracking number, which names its shipment.* outcome
	// Msgs are the copies the stream accepted; Dropped counts copies the stream dropped as
	// duplicates within its window (same Nats-Msg-Id).
	Msgs    []Msg
	Dropped int
	Want    Want
}

// Msg is one accepted copy of an event.
type Msg struct {
	Seq   uint64 // sequence in ORDERS
	MsgID string // Nats-Msg-Id
}

// Want is what an event must end as.
type Want struct {
	// Reason, when set, is the dead-letter reason the event must end with, and Field a text its
	// Dlq-Error must contain (the field it names).
	Reason string
	Field  string
	// Direct lists the acceptable types of the event's own outcome (the first one); Final is the
	// credit decision the credit check it starts must end in ("" when not known in advance).
	Direct []string
	Final  string
	// MayBeUnknown allows the event to end as an outcome-unknown dead letter instead: the
	// designed answer when a registration's answer was lost (docs/architecture.md#idempotency-and-exactly-once-effect).
	MayBeUnknown bool
	// Silent allows the event to end with no outcome and no dead letter when its order's history
	// records it (docs/architecture.md#promises: an entry that says why nothing else was needed), e.g. an
	// importer's late retry of an order.created after the order's cancel.
	Silent bool
	// Corpus names the bad-input case the event is.
	Corpus string
}

// Outcome is one message of RESULTS.
type Outcome struct {
	Seq       uint64
	MsgID     string // Nats-Msg-Id
	Subject   string
	Type      string
	ID        string // CloudEvent id
	Causation string
	Shop      string
	Order     string
	TxID      string
	Review    string
	Billed    int64
	Tracking  string
	Report    string
	// Problem is the point of the outcome's first error (invoice.ng: "credit", "invoice_delivery").
	Problem string
	// Reauthorized marks a credit outcome of a re-authorization (docs/lifecycle.md#re-authorization):
	// it answers no event of the workload, and is checked against the order's transactions.
	Reauthorized bool
}

// DeadLetter is one message of DLQ.
type DeadLetter struct {
	Seq        uint64
	Subject    string
	Reason     string
	Error      string
	OrigStream string
	OrigSeq    uint64
	// Event is the key of the event whose body it holds ("" when it holds none of them).
	Event string
}

// Observed is everything a scenario left behind, read after it went quiet.
type Observed struct {
	Events       []*Event
	Outcomes     []Outcome
	DeadLetters  []DeadLetter
	Transactions []sandbox.TransactionView
	LogHits      []Hit
	Healthy      bool
	HealthDetail string
	// Crashes counts worker exits the suite did not cause.
	Crashes int
	// Allowed lists dead-letter reasons that any event of the workload may end with, in a
	// scenario where the worker lost its state: an event that needs a transaction the worker has
	// no record of goes to an operator (no-transaction), never gets a made-up outcome.
	Allowed []string
	// Handled holds the keys of the Silent events their order's history records; HistoryFull the
	// orders (shop/order) whose history reached its limit, so that older entries are gone.
	Handled     map[string]bool
	HistoryFull map[string]bool
	// Findings are what the scenario itself measured and found wrong (a slow shutdown, a latency
	// out of bounds); Notes what it measured that breaks nothing.
	Findings []Finding
	Notes    []string
}

// Finding is a violation a scenario found by its own measure.
type Finding struct {
	Kind, Text string
}

// Verdict is the checked result of a scenario.
type Verdict struct {
	Accepted     int // messages the stream accepted
	Dropped      int // copies the stream dropped within its duplicate window
	Events       int // distinct events
	Outcomes     int
	DeadByReason map[string]int
	Lost         int
	DupOutcomes  int
	DoubleReg    int
	// FalseOutcomes counts outcomes that contradict ATODENE's own state at the end of the run.
	FalseOutcomes int
	Registrations int
	// Reregistered counts orders registered again after an NG answer that was lost: allowed (an
	// NG transaction is not live), but ATODENE then holds two transactions for the order.
	Reregistered int
	LogHits      int
	Healthy      bool
	BadExpected  int // corpus events
	BadRight     int // corpus events that ended as they should
	Violations   []string
	// Notes are observations that break no invariant.
	Notes []string
}

// Pass reports whether every invariant holds.
func (v Verdict) Pass() bool { return len(v.Violations) == 0 }

// maxListed bounds the violations listed per kind; the counts stay exact.
const maxListed = 8

type violations struct {
	list   []string
	counts map[string]int
}

func (vs *violations) add(kind, format string, args ...any) {
	if vs.counts == nil {
		vs.counts = map[string]int{}
	}
	vs.counts[kind]++
	if vs.counts[kind] <= maxListed {
		vs.list = append(vs.list, kind+": "+fmt.Sprintf(format, args...))
	}
}

func (vs *violations) result() []string {
	out := slices.Clone(vs.list)
	for _, kind := range slices.Sorted(maps.Keys(vs.counts)) {
		if n := vs.counts[kind]; n > maxListed {
			out = append(out, fmt.Sprintf("%s: … %d more", kind, n-maxListed))
		}
	}
	return out
}

// checker holds what Check works out, step by step, from one Observed.
type checker struct {
	obs Observed
	v   Verdict
	vs  violations

	byKey      map[string]*Event // by CloudEvent id
	byTracking map[string]*Event // shop/order/tracking number
	bySeq      map[uint64]*Event // ORDERS sequence
	outs       []Outcome         // in stream order
	attributed map[string][]Outcome
	allowed    map[string]bool         // Observed.Allowed
	dead       map[string][]DeadLetter // by event key
	operator   map[string]bool         // shop/order handed to an operator by an allowed dead letter
	creditDead map[string]bool         // shop/order one of whose credit events ended as a dead letter alone
	shipDead   map[string]bool         // shop/order one of whose tracking numbers ended as a dead letter alone
	lastCredit map[string]Outcome      // shop/order → its last credit.* outcome
	// silent, beyond, handed, both and withOperator count what the notes report (see event and
	// checkFalseOutcomes).
	silent, beyond, handed, both, withOperator int
	// reauthorized counts the outcomes of re-authorizations.
	reauthorized int
}

// Check applies the invariants of docs/reliability.md to what a scenario left behind.
func Check(obs Observed) Verdict {
	c := &checker{obs: obs, v: Verdict{DeadByReason: map[string]int{}, Healthy: obs.Healthy, Outcomes: len(obs.Outcomes)}}
	c.index()
	c.attributeOutcomes()
	c.duplicateOutcomes()
	c.sortDeadLetters()
	for _, e := range obs.Events {
		if len(e.Msgs) > 0 {
			c.event(e)
		}
	}
	c.v.Registrations, c.v.DoubleReg, c.v.Reregistered = checkRegistrations(obs.Events, obs.Transactions, &c.vs)
	c.v.FalseOutcomes, c.withOperator = checkFalseOutcomes(c.outs, obs.Transactions, c.creditDead, c.shipDead, &c.vs)
	c.health()
	c.notes()
	c.v.Violations = c.vs.result()
	return c.v
}

// index maps the events by id, tracking number and sequence, and counts what the stream accepted.
func (c *checker) index() {
	c.byKey, c.byTracking, c.bySeq = map[string]*Event{}, map[string]*Event{}, map[uint64]*Event{}
	for _, e := range c.obs.Events {
		c.byKey[e.Key] = e
		if e.Tracking != "" {
			c.byTracking[e.Shop+"/"+e.Order+"/"+e.Tracking] = e
		}
		for _, m := range e.Msgs {
			c.bySeq[m.Seq] = e
		}
		c.v.Accepted += len(e.Msgs)
		c.v.Dropped += e.Dropped
		if len(e.Msgs) > 0 {
			c.v.Events++
		}
	}
	c.allowed, c.creditDead, c.shipDead = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, r := range c.obs.Allowed {
		c.allowed[r] = true
	}
}

// attributeOutcomes gives every outcome to the event it answers; one that answers none is a
// duplicate of sorts (it was not asked for).
func (c *checker) attributeOutcomes() {
	c.outs = sortBySeq(c.obs.Outcomes)
	c.attributed = map[string][]Outcome{}
	c.lastCredit = map[string]Outcome{}
	for _, o := range c.outs {
		if strings.HasPrefix(o.Type, "credit.") {
			c.lastCredit[o.Shop+"/"+o.Order] = o
		}
		if o.Reauthorized {
			c.reauthorized++ // the worker's own doing: checked with the transactions
			continue
		}
		e := attribute(o, c.byKey, c.byTracking)
		if e == nil {
			c.vs.add("orphan outcome", "%s %s (id %s, causation %s) answers no event the workload sent", o.Type, o.Order, o.MsgID, o.Causation)
			c.v.DupOutcomes++
			continue
		}
		c.attributed[e.Key] = append(c.attributed[e.Key], o)
	}
	// A cancel whose first attempt reached ATODENE without an answer can find, on its retry, that
	// a re-check of the order already saw the transaction cancelled and published credit.cancelled
	// under the credit check's cause: that outcome is the cancel's.
	borrowed := 0
	for _, e := range c.obs.Events {
		if e.Type != events.TypeOrderCancelled || len(e.Msgs) == 0 || len(c.attributed[e.Key]) > 0 {
			continue
		}
		if o, ok := cancelledByRecheck(e, c.outs, c.byKey); ok {
			c.attributed[e.Key] = []Outcome{o}
			borrowed++
		}
	}
	if borrowed > 0 {
		c.v.Notes = append(c.v.Notes, fmt.Sprintf("%d order.cancelled whose credit.cancelled names the credit check's event as its cause: a re-check found the transaction cancelled before the cancel's retry", borrowed))
	}
}

// duplicateOutcomes finds outcomes published twice: by message ID, and by content under another ID.
func (c *checker) duplicateOutcomes() {
	msgIDs := map[string]int{}
	contents := map[string]Outcome{}
	for _, o := range c.outs {
		if msgIDs[o.MsgID]++; msgIDs[o.MsgID] == 2 {
			c.v.DupOutcomes++
			c.vs.add("duplicate outcome", "Nats-Msg-Id %s stored twice in RESULTS", o.MsgID)
		}
		key := strings.Join([]string{o.Type, o.Shop, o.Order, o.Causation, o.Review, o.TxID, fmt.Sprint(o.Billed), o.Tracking, o.Report}, "|")
		if prev, ok := contents[key]; ok && prev.MsgID != o.MsgID {
			c.v.DupOutcomes++
			c.vs.add("duplicate outcome", "%s of %s published twice with the same content (ids %s and %s)", o.Type, o.Order, prev.MsgID, o.MsgID)
		}
		contents[key] = o
	}
}

// sortDeadLetters gives every dead letter to the event whose body it holds. Where the worker lost
// its state, an allowed dead letter hands its order to an operator, also when it is a timer's (a
// due re-check of an order it has no record of) rather than an event's.
func (c *checker) sortDeadLetters() {
	c.dead, c.operator = map[string][]DeadLetter{}, map[string]bool{}
	perMsg := map[string]int{} // ORDERS seq and event: a recreated stream numbers from 1 again
	for _, d := range c.obs.DeadLetters {
		c.v.DeadByReason[d.Reason]++
		if d.OrigStream == "ORDERS" {
			k := fmt.Sprintf("%d/%s", d.OrigSeq, d.Event)
			if perMsg[k]++; perMsg[k] == 2 {
				c.vs.add("duplicate dead letter", "ORDERS seq %d dead-lettered twice", d.OrigSeq)
			}
		}
		key := d.Event
		if e := c.bySeq[d.OrigSeq]; key == "" && e != nil && d.OrigStream == "ORDERS" {
			key = e.Key
		}
		if key == "" {
			if order := timerOrder(d.Subject); order != "" && c.allowed[d.Reason] {
				c.operator[order] = true
				continue
			}
			c.vs.add("unexpected dead letter", "%s reason %s: %s", d.Subject, d.Reason, d.Error)
			continue
		}
		c.dead[key] = append(c.dead[key], d)
		if e := c.byKey[key]; e != nil && c.allowed[d.Reason] && e.Want.Reason == "" {
			c.operator[e.Shop+"/"+e.Order] = true
		}
	}
}

// event checks that an accepted event ended as it must: its outcome, or a dead letter, not both
// (except a dead letter for an operator where the worker lost its state), or nothing if it is
// silent and its order's history records it.
func (c *checker) event(e *Event) {
	os, ds := c.attributed[e.Key], c.dead[e.Key]
	if e.Want.Corpus != "" {
		c.v.BadExpected++
	}
	right := false
	switch {
	case len(os) == 0 && len(ds) == 0:
		switch {
		case e.Want.Silent && c.obs.Handled[e.Key]:
			c.silent++
			return
		case e.Want.Silent && c.obs.HistoryFull[e.Shop+"/"+e.Order]:
			c.beyond++ // older than the history reaches: it cannot be told from a lost one
			return
		}
		c.v.Lost++
		c.vs.add("lost", "%s %s %s (ORDERS seq %s): no outcome and no dead letter", e.Type, e.Order, e.Key, seqs(e))
		return
	case len(ds) == 0:
		right = c.outcomesRight(e, os)
	case len(os) == 0:
		right = c.deadLettersRight(e, ds)
		switch e.Type { // what it did at ATODENE is an operator's to find out
		case events.TypeOrderCreated, events.TypeOrderUpdated, events.TypeOrderCancelled:
			c.creditDead[e.Shop+"/"+e.Order] = true
		case events.TypeTrackingEntered:
			c.shipDead[e.Shop+"/"+e.Order] = true
		}
	case e.Want.Reason == "" && allAllowed(ds, c.allowed):
		// The state that recorded the outcome was lost while the event was handled: the outcome
		// stands, and the letter is the worker saying it has no record. The outcome is checked.
		c.both++
		right = c.outcomesRight(e, os)
	default:
		c.vs.add("outcome and dead letter", "%s %s %s: %s and a dead letter (%s)", e.Type, e.Order, e.Key, types(os), ds[0].Reason)
	}
	if right && e.Want.Corpus != "" {
		c.v.BadRight++
	}
}

// deadLettersRight checks an event's dead letters against what it may end as.
func (c *checker) deadLettersRight(e *Event, ds []DeadLetter) bool {
	for _, d := range ds {
		if !deadLetterWanted(e.Want, d, c.allowed) {
			c.vs.add("wrong dead letter", "%s %s %s: dead letter %s (%s), want %s", e.Type, e.Order, e.Key, d.Reason, clip(d.Error), wantText(e.Want))
			return false
		}
	}
	return true
}

// outcomesRight checks an event's outcomes against its Want. A credit check left unresolved is
// lost, unless an allowed dead letter handed its order to an operator.
func (c *checker) outcomesRight(e *Event, os []Outcome) bool {
	if e.Want.Reason != "" {
		c.vs.add("not dead-lettered", "%s %s (%s): %s, want dead letter %s", e.Type, e.Order, e.Want.Corpus, types(os), e.Want.Reason)
		return false
	}
	problem := checkChain(e, os, c.lastCredit[e.Shop+"/"+e.Order])
	switch {
	case problem == "":
		return true
	case !strings.HasPrefix(problem, "unresolved"):
		c.vs.add("wrong outcomes", "%s %s %s: %s", e.Type, e.Order, e.Key, problem)
	case c.operator[e.Shop+"/"+e.Order]:
		c.handed++
		return true
	default:
		c.v.Lost++
		c.vs.add("lost", "%s %s %s: %s", e.Type, e.Order, e.Key, problem)
	}
	return false
}

// health adds the violations of the logs, the worker's health and the scenario's own measures.
func (c *checker) health() {
	c.v.LogHits = len(c.obs.LogHits)
	for _, h := range c.obs.LogHits {
		c.vs.add("personal data or secret in a log", "%s", h)
	}
	if !c.obs.Healthy {
		c.vs.add("unhealthy", "the worker is not ready at the end: %s", c.obs.HealthDetail)
	}
	if c.obs.Crashes > 0 {
		c.vs.add("crash", "the worker exited %d times without being told to", c.obs.Crashes)
	}
	for _, f := range c.obs.Findings {
		c.vs.add(f.Kind, "%s", f.Text)
	}
}

// notes adds the observations that break no invariant.
func (c *checker) notes() {
	v := &c.v
	add := func(n int, format string) {
		if n > 0 {
			v.Notes = append(v.Notes, fmt.Sprintf(format, n))
		}
	}
	add(c.reauthorized, "%d credit outcomes of re-authorizations (reauthorized: true; they answer no event, and name the order's transactions under derived shopOrderIds)")
	add(v.Reregistered, "%d orders registered again after their NG answer was lost (allowed: an NG transaction is not live; ATODENE holds two NG-then-new transactions)")
	add(c.silent, "%d events ended with no outcome, as their order's history records (they changed nothing)")
	add(c.beyond, "%d events ended with no outcome where their order's history no longer reaches (it keeps the last "+fmt.Sprint(historyLimit)+" entries): counted as silent, unverified")
	for _, r := range c.obs.Allowed {
		add(v.DeadByReason[r], "%d "+r+" dead letters (allowed: the worker lost its state; an operator settles each order)")
	}
	add(c.both, "%d events have an outcome and a dead letter for an operator (allowed: the state that recorded the outcome was lost while they were handled)")
	add(c.handed, "%d credit checks left pending and handed to an operator by a dead letter of their order (allowed: the worker lost its state)")
	add(c.withOperator, "%d orders whose last credit or shipment outcome ATODENE no longer agrees with, after a later event of theirs of that kind was dead-lettered for an operator (a change that reached ATODENE without its answer, or whose record Redis lost; not a false outcome)")
	if !c.allowed["outcome-unknown"] {
		add(v.DeadByReason["outcome-unknown"], "%d outcome-unknown dead letters: a registration reached ATODENE but its answer was not recorded, and the retry found the order registered (docs/architecture.md#idempotency-and-exactly-once-effect); each needs an operator")
	}
	v.Notes = append(v.Notes, c.obs.Notes...)
}

// attribute returns the event an outcome answers: a shipment.* answers the tracking event with
// its tracking number (a queued shipment is reported under the credit check's causation); any
// other outcome answers the event its causationid names.
func attribute(o Outcome, byKey, byTracking map[string]*Event) *Event {
	if strings.HasPrefix(o.Type, "shipment.") {
		return byTracking[o.Shop+"/"+o.Order+"/"+o.Tracking]
	}
	e := byKey[o.Causation]
	if e == nil {
		return nil
	}
	switch e.Type {
	case events.TypeOrderCreated, events.TypeOrderUpdated, events.TypeOrderCancelled:
		if !strings.HasPrefix(o.Type, "credit.") {
			return nil
		}
	case events.TypeInvoiceRequested:
		if !strings.HasPrefix(o.Type, "invoice.") {
			return nil
		}
	default:
		return nil
	}
	return e
}

// checkChain checks the outcomes attributed to an event (in stream order) against its type's
// definition of "its outcome" (docs/reliability.md) and its Want. last is the order's last
// credit outcome. It returns "" when they are right.
func checkChain(e *Event, os []Outcome, last Outcome) string {
	first := os[0].Type
	if len(e.Want.Direct) > 0 && !slices.Contains(e.Want.Direct, first) {
		return fmt.Sprintf("its outcome is %s, want %s", first, strings.Join(e.Want.Direct, " or "))
	}
	switch e.Type {
	case events.TypeOrderCreated, events.TypeOrderUpdated:
		// One answer of the registration or change; if it is credit.pending, the re-checks add at
		// most one credit.pending (hold) and one decision.
		switch first {
		case events.TypeCreditOK, events.TypeCreditNG, events.TypeCreditInvalid, events.TypeCreditCancelled:
			if len(os) > 1 {
				return "more than one outcome: " + types(os)
			}
			if e.Want.Final != "" && first != e.Want.Final && first != events.TypeCreditInvalid {
				return fmt.Sprintf("decided %s, want %s", first, e.Want.Final)
			}
			return ""
		case events.TypeCreditPending:
		default:
			return "its first outcome is " + first
		}
		rest := os[1:]
		if len(rest) > 0 && rest[0].Type == events.TypeCreditPending {
			if rest[0].Review != "hold" {
				return "a second credit.pending that is not a hold: " + types(os)
			}
			rest = rest[1:]
		}
		switch {
		case len(rest) > 1:
			return "more than one decision: " + types(os)
		case len(rest) == 1:
			switch rest[0].Type {
			case events.TypeCreditOK, events.TypeCreditNG:
				if e.Want.Final != "" && rest[0].Type != e.Want.Final {
					return fmt.Sprintf("decided %s, want %s", rest[0].Type, e.Want.Final)
				}
			case events.TypeCreditCancelled:
			default:
				return "not a decision after credit.pending: " + types(os)
			}
			return ""
		}
		// Still pending: fine only if a later credit outcome of the order (a cancel, a change)
		// took over.
		if last.Seq == os[len(os)-1].Seq {
			return "unresolved: the credit check never ended (" + types(os) + ")"
		}
		return ""
	case events.TypeOrderCancelled:
		if len(os) != 1 || first != events.TypeCreditCancelled {
			return "want one credit.cancelled, got " + types(os)
		}
	case events.TypeTrackingEntered:
		if len(os) != 1 {
			return "want one shipment outcome, got " + types(os)
		}
	case events.TypeInvoiceRequested:
		if len(os) != 1 {
			return "want one invoice outcome, got " + types(os)
		}
	}
	return ""
}

// deadLetterWanted reports whether a dead letter is what the event may end as: the corpus's
// reason, outcome-unknown where allowed, or a reason the scenario allows for any workload event.
func deadLetterWanted(w Want, d DeadLetter, allowed map[string]bool) bool {
	if w.Reason != "" {
		return d.Reason == w.Reason && strings.Contains(d.Error, w.Field)
	}
	return w.MayBeUnknown && d.Reason == "outcome-unknown" || allowed[d.Reason]
}

// allAllowed reports whether every dead letter has an allowed reason.
func allAllowed(ds []DeadLetter, allowed map[string]bool) bool {
	for _, d := range ds {
		if !allowed[d.Reason] {
			return false
		}
	}
	return true
}

// timerOrder returns the order (shop/order) a dead-lettered timer of the worker names by its
// subject, dlq.atodene.poll.due.<shop>.<order, base64url>[.<kind>], or "".
func timerOrder(subject string) string {
	rest, ok := strings.CutPrefix(subject, "dlq.atodene.poll.due.")
	if !ok {
		return ""
	}
	tokens := strings.Split(rest, ".")
	if len(tokens) < 2 {
		return ""
	}
	order, err := base64.RawURLEncoding.DecodeString(tokens[1])
	if err != nil {
		return ""
	}
	return tokens[0] + "/" + string(order)
}

// cancelledByRecheck finds the credit.cancelled of a cancel event's order that a re-check or a
// change published under the cause of the order's credit check.
func cancelledByRecheck(e *Event, outs []Outcome, byKey map[string]*Event) (Outcome, bool) {
	for _, o := range outs {
		if o.Type != events.TypeCreditCancelled || o.Shop != e.Shop || o.Order != e.Order {
			continue
		}
		if c := byKey[o.Causation]; c != nil && (c.Type == events.TypeOrderCreated || c.Type == events.TypeOrderUpdated) {
			return o, true
		}
	}
	return Outcome{}, false
}

// checkRegistrations checks the sandbox's transactions: per order, every transaction registered
// under the order's own shopOrderId but the last has ended (cancelled, or declined), so no two were
// live at once; and, with the re-authorizations under derived shopOrderIds (<id>_R<n>) counted,
// at most one is live at the end (a re-authorization cancels the old transaction once the new one
// is OK). An order with more registrations under its own shopOrderId than the workload sent
// order.created and order.updated events for it was registered again after a lost NG answer. It
// returns the registrations, the orders registered twice while live, and the orders registered
// again.
func checkRegistrations(evs []*Event, txs []sandbox.TransactionView, vs *violations) (regs, double, again int) {
	sent := map[string]int{}
	for _, e := range evs {
		if len(e.Msgs) > 0 && (e.Type == events.TypeOrderCreated || e.Type == events.TypeOrderUpdated) {
			sent[e.Shop+"/"+e.Order]++
		}
	}
	byOrder := txsByOrder(txs)
	for _, key := range slices.Sorted(maps.Keys(byOrder)) {
		ts := byOrder[key]
		regs += len(ts)
		var own, live []sandbox.TransactionView
		for _, t := range ts {
			if !derivedShopOrderID(t.ShopOrderID) {
				own = append(own, t)
			}
			if txLive(t) {
				live = append(live, t)
			}
		}
		switch {
		case len(own) > 0 && slices.ContainsFunc(own[:len(own)-1], txLive):
			double++
			t := own[slices.IndexFunc(own[:len(own)-1], txLive)]
			vs.add("registered twice while live", "%s: transaction %s is %s/%s and a later one was registered", key, t.TransactionID, t.State, t.Decision)
		case len(live) > 1:
			double++
			vs.add("registered twice while live", "%s: %d transactions live at the end (%s and %s, shopOrderIds %s and %s)", key, len(live),
				live[0].TransactionID, live[1].TransactionID, live[0].ShopOrderID, live[1].ShopOrderID)
		}
		if len(own) > sent[key] {
			again++
		}
	}
	return regs, double, again
}

func seqs(e *Event) string {
	s := make([]string, len(e.Msgs))
	for i, m := range e.Msgs {
		s[i] = fmt.Sprint(m.Seq)
	}
	return strings.Join(s, ",")
}

func types(os []Outcome) string {
	s := make([]string, len(os))
	for i, o := range os {
		s[i] = o.Type
		if o.Review != "" {
			s[i] += "(" + o.Review + ")"
		}
	}
	return strings.Join(s, " → ")
}

func wantText(w Want) string {
	switch {
	case w.Reason != "":
		return fmt.Sprintf("%s naming %q", w.Reason, w.Field)
	case w.MayBeUnknown:
		return "an outcome, or outcome-unknown"
	}
	return "an outcome"
}

func clip(s string) string {
	if r := []rune(s); len(r) > 120 {
		return string(r[:120]) + "…"
	}
	return s
}
