package reliability

import (
	"cmp"
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
	// designed answer when a registration's answer was lost (DESIGN.md §7).
	MayBeUnknown bool
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
}

// Verdict is the checked result of a scenario.
type Verdict struct {
	Accepted      int // messages the stream accepted
	Dropped       int // copies the stream dropped within its duplicate window
	Events        int // distinct events
	Outcomes      int
	DeadByReason  map[string]int
	Lost          int
	DupOutcomes   int
	DoubleReg     int
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

// Check applies the invariants of docs/reliability.md to what a scenario left behind.
func Check(obs Observed) Verdict {
	v := Verdict{DeadByReason: map[string]int{}, Healthy: obs.Healthy, Outcomes: len(obs.Outcomes)}
	var vs violations

	byKey := map[string]*Event{}
	byTracking := map[string]*Event{}
	bySeq := map[uint64]*Event{}
	for _, e := range obs.Events {
		byKey[e.Key] = e
		if e.Tracking != "" {
			byTracking[e.Shop+"/"+e.Order+"/"+e.Tracking] = e
		}
		for _, m := range e.Msgs {
			bySeq[m.Seq] = e
		}
		v.Accepted += len(e.Msgs)
		v.Dropped += e.Dropped
		if len(e.Msgs) > 0 {
			v.Events++
		}
	}

	// Attribute every outcome to the event it answers.
	outs := slices.Clone(obs.Outcomes)
	slices.SortFunc(outs, func(a, b Outcome) int { return cmp.Compare(a.Seq, b.Seq) })
	attributed := map[string][]Outcome{}
	for _, o := range outs {
		e := attribute(o, byKey, byTracking)
		if e == nil {
			vs.add("orphan outcome", "%s %s (id %s, causation %s) answers no event the workload sent", o.Type, o.Order, o.MsgID, o.Causation)
			v.DupOutcomes++
			continue
		}
		attributed[e.Key] = append(attributed[e.Key], o)
	}

	// A cancel whose first attempt reached ATODENE without an answer can find, on its retry, that
	// a re-check of the order already saw the transaction cancelled and published credit.cancelled
	// under the credit check's cause: that outcome is the cancel's.
	borrowed := 0
	for _, e := range obs.Events {
		if e.Type != events.TypeOrderCancelled || len(e.Msgs) == 0 || len(attributed[e.Key]) > 0 {
			continue
		}
		if o, ok := cancelledByRecheck(e, outs, byKey); ok {
			attributed[e.Key] = []Outcome{o}
			borrowed++
		}
	}
	if borrowed > 0 {
		v.Notes = append(v.Notes, fmt.Sprintf("%d order.cancelled whose credit.cancelled names the credit check's event as its cause: a re-check found the transaction cancelled before the cancel's retry", borrowed))
	}

	// No outcome published twice: by message ID, and by content.
	msgIDs := map[string]int{}
	contents := map[string]Outcome{}
	for _, o := range outs {
		if msgIDs[o.MsgID]++; msgIDs[o.MsgID] == 2 {
			v.DupOutcomes++
			vs.add("duplicate outcome", "Nats-Msg-Id %s stored twice in RESULTS", o.MsgID)
		}
		key := strings.Join([]string{o.Type, o.Shop, o.Order, o.Causation, o.Review, o.TxID, fmt.Sprint(o.Billed), o.Tracking, o.Report}, "|")
		if prev, ok := contents[key]; ok && prev.MsgID != o.MsgID {
			v.DupOutcomes++
			vs.add("duplicate outcome", "%s of %s published twice with the same content (ids %s and %s)", o.Type, o.Order, prev.MsgID, o.MsgID)
		}
		contents[key] = o
	}

	// Dead letters by event.
	dead := map[string][]DeadLetter{}
	perMsg := map[uint64]int{}
	for _, d := range obs.DeadLetters {
		v.DeadByReason[d.Reason]++
		if d.OrigStream == "ORDERS" {
			if perMsg[d.OrigSeq]++; perMsg[d.OrigSeq] == 2 {
				vs.add("duplicate dead letter", "ORDERS seq %d dead-lettered twice", d.OrigSeq)
			}
		}
		key := d.Event
		if key == "" {
			if e := bySeq[d.OrigSeq]; e != nil && d.OrigStream == "ORDERS" {
				key = e.Key
			}
		}
		if key == "" {
			vs.add("unexpected dead letter", "%s reason %s: %s", d.Subject, d.Reason, d.Error)
			continue
		}
		dead[key] = append(dead[key], d)
	}

	// Every accepted event ended as exactly one outcome or dead letters; the right ones.
	lastCredit := map[string]Outcome{} // order → its last credit.* outcome
	for _, o := range outs {
		if strings.HasPrefix(o.Type, "credit.") {
			lastCredit[o.Shop+"/"+o.Order] = o
		}
	}
	for _, e := range obs.Events {
		if len(e.Msgs) == 0 {
			continue
		}
		os, ds := attributed[e.Key], dead[e.Key]
		if e.Want.Corpus != "" {
			v.BadExpected++
		}
		switch {
		case len(os) == 0 && len(ds) == 0:
			v.Lost++
			vs.add("lost", "%s %s %s (ORDERS seq %s): no outcome and no dead letter", e.Type, e.Order, e.Key, seqs(e))
			continue
		case len(os) > 0 && len(ds) > 0:
			vs.add("outcome and dead letter", "%s %s %s: %s and a dead letter (%s)", e.Type, e.Order, e.Key, types(os), ds[0].Reason)
			continue
		case len(ds) > 0:
			ok := true
			for _, d := range ds {
				if !deadLetterWanted(e.Want, d) {
					ok = false
					vs.add("wrong dead letter", "%s %s %s: dead letter %s (%s), want %s", e.Type, e.Order, e.Key, d.Reason, clip(d.Error), wantText(e.Want))
					break
				}
			}
			if ok && e.Want.Corpus != "" {
				v.BadRight++
			}
			continue
		}
		// Outcomes, and no dead letter.
		if e.Want.Reason != "" {
			vs.add("not dead-lettered", "%s %s (%s): %s, want dead letter %s", e.Type, e.Order, e.Want.Corpus, types(os), e.Want.Reason)
			continue
		}
		if problem := checkChain(e, os, lastCredit[e.Shop+"/"+e.Order]); problem != "" {
			if strings.HasPrefix(problem, "unresolved") {
				v.Lost++
				vs.add("lost", "%s %s %s: %s", e.Type, e.Order, e.Key, problem)
			} else {
				vs.add("wrong outcomes", "%s %s %s: %s", e.Type, e.Order, e.Key, problem)
			}
			continue
		}
		if e.Want.Corpus != "" {
			v.BadRight++
		}
	}

	// No order registered twice while live.
	v.Registrations, v.DoubleReg, v.Reregistered = checkRegistrations(obs.Events, obs.Transactions, &vs)
	if v.Reregistered > 0 {
		v.Notes = append(v.Notes, fmt.Sprintf("%d orders registered again after their NG answer was lost (allowed: an NG transaction is not live; ATODENE holds two NG-then-new transactions)", v.Reregistered))
	}
	if n := v.DeadByReason["outcome-unknown"]; n > 0 {
		v.Notes = append(v.Notes, fmt.Sprintf("%d outcome-unknown dead letters: a registration reached ATODENE but its answer was not recorded, and the retry found the order registered (DESIGN.md §7); each needs an operator", n))
	}

	v.LogHits = len(obs.LogHits)
	for _, h := range obs.LogHits {
		vs.add("personal data or secret in a log", "%s", h)
	}
	if !obs.Healthy {
		vs.add("unhealthy", "the worker is not ready at the end: %s", obs.HealthDetail)
	}
	if obs.Crashes > 0 {
		vs.add("crash", "the worker exited %d times without being told to", obs.Crashes)
	}
	v.Violations = vs.result()
	return v
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

// deadLetterWanted reports whether a dead letter is what the event may end as.
func deadLetterWanted(w Want, d DeadLetter) bool {
	if w.Reason != "" {
		return d.Reason == w.Reason && strings.Contains(d.Error, w.Field)
	}
	return w.MayBeUnknown && d.Reason == "outcome-unknown"
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

// checkRegistrations checks the sandbox's transactions: per order, every transaction but the
// last has ended (cancelled, or declined), so no two were live at once. An order with more
// registrations than the workload sent order.created and order.updated events for it was
// registered again after a lost NG answer. It returns the registrations, the orders registered
// twice while live, and the orders registered again.
func checkRegistrations(evs []*Event, txs []sandbox.TransactionView, vs *violations) (regs, double, again int) {
	sent := map[string]int{}
	for _, e := range evs {
		if len(e.Msgs) > 0 && (e.Type == events.TypeOrderCreated || e.Type == events.TypeOrderUpdated) {
			sent[e.Order]++
		}
	}
	byOrder := map[string][]sandbox.TransactionView{}
	for _, t := range txs {
		key := t.ShopCode + "/" + t.ShopOrderID
		byOrder[key] = append(byOrder[key], t)
		regs++
	}
	for _, key := range slices.Sorted(maps.Keys(byOrder)) {
		ts := byOrder[key]
		slices.SortFunc(ts, func(a, b sandbox.TransactionView) int { return a.RegisteredAt.Compare(b.RegisteredAt) })
		for _, t := range ts[:len(ts)-1] {
			if t.State != "cancelled" && t.Decision != "NG" {
				double++
				vs.add("registered twice while live", "%s: transaction %s is %s/%s and a later one was registered", key, t.TransactionID, t.State, t.Decision)
				break
			}
		}
		if len(ts) > sent[ts[0].ShopOrderID] {
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
