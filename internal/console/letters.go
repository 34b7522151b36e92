package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/jst"
)

// letterForm is the dead-letter list's filter as its form sends it.
type letterForm struct {
	Reason, Shop, Since, Until string
}

type reasonTab struct {
	Reason, URL string
	Count       int
	Active      bool
}

// MaxLetters bounds the dead letters the list shows: the newest of those that match.
const MaxLetters = 1000

type lettersData struct {
	Form    letterForm
	Letters []letterRow
	// Matching is how many letters match the filter; Capped says the list shows only the newest
	// of them.
	Matching int
	Capped   bool
	Tabs     []reasonTab
	Total    int
	Reasons  []string
	Problems []string
	Error    string
	NotWired bool
}

type letterRow struct {
	Letter   Letter
	OrderURL string
}

// lettersPage lists the dead letters by reason, shop and time, with the counts per reason.
func (s *Server) lettersPage(w http.ResponseWriter, r *http.Request) {
	l := langOf(r)
	q := r.URL.Query()
	d := lettersData{Form: letterForm{Reason: q.Get("reason"), Shop: q.Get("shop"), Since: q.Get("since"), Until: q.Get("until")},
		Reasons: handlers.Reasons()}
	f := LetterFilter{Reason: d.Form.Reason, Shop: d.Form.Shop}
	if f.Reason != "" && !contains(d.Reasons, f.Reason) {
		d.Problems = append(d.Problems, l.F("dlq.badreason", f.Reason))
	}
	if f.Shop != "" && !events.ValidShopID(f.Shop) {
		d.Problems = append(d.Problems, l.T("dlq.badshop"))
	}
	for _, b := range []struct {
		v   string
		end bool
		to  *time.Time
	}{{d.Form.Since, false, &f.Since}, {d.Form.Until, true, &f.Until}} {
		if b.v == "" {
			continue
		}
		t, err := parseWhen(b.v, b.end)
		if err != nil {
			d.Problems = append(d.Problems, l.F("dlq.badtime", b.v))
			continue
		}
		*b.to = t
	}
	if len(d.Problems) > 0 {
		s.render(w, r, http.StatusBadRequest, "letters.html", "dlq.title", d)
		return
	}
	letters, counts, err := s.cfg.DeadLetters.List(r.Context(), f)
	if err != nil {
		s.log.Error("listing dead letters failed", zap.Error(err))
		d.Error, d.NotWired = err.Error(), errors.Is(err, ErrNotWired)
		s.render(w, r, http.StatusServiceUnavailable, "letters.html", "dlq.title", d)
		return
	}
	if len(letters) > MaxLetters {
		letters = letters[len(letters)-MaxLetters:]
	}
	for _, lt := range letters {
		lt.Body = nil
		row := letterRow{Letter: lt}
		if events.ValidShopID(lt.Shop) && events.ValidOrderID(lt.Order) {
			row.OrderURL = orderURL(lt.Shop, lt.Order)
		}
		d.Letters = append(d.Letters, row)
	}
	reasons := make([]string, 0, len(counts))
	for reason, n := range counts {
		reasons = append(reasons, reason)
		d.Total += n
	}
	sort.Strings(reasons)
	d.Matching = d.Total
	if d.Form.Reason != "" {
		d.Matching = counts[d.Form.Reason]
	}
	d.Capped = d.Matching > len(d.Letters)
	base := url.Values{}
	for k, v := range map[string]string{"shop": d.Form.Shop, "since": d.Form.Since, "until": d.Form.Until} {
		if v != "" {
			base.Set(k, v)
		}
	}
	d.Tabs = append(d.Tabs, reasonTab{Reason: "", URL: pathWith("/dlq", base), Count: d.Total, Active: d.Form.Reason == ""})
	for _, reason := range reasons {
		q := url.Values{}
		for k, v := range base {
			q[k] = v
		}
		q.Set("reason", reason)
		d.Tabs = append(d.Tabs, reasonTab{Reason: reason, URL: pathWith("/dlq", q), Count: counts[reason], Active: d.Form.Reason == reason})
	}
	s.render(w, r, http.StatusOK, "letters.html", "dlq.title", d)
}

// parseWhen reads a time bound: RFC 3339, or a date in JST (an upper bound takes the whole day).
func parseWhen(v string, end bool) (time.Time, error) {
	if t, err := events.ParseTime(v); err == nil { // RFC 3339, its lower-case t and z too
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", time.DateOnly} {
		t, err := time.ParseInLocation(layout, v, jst.Zone)
		if err != nil {
			continue
		}
		if end && layout == time.DateOnly {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	return time.Time{}, errors.New("not a time")
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

type letterData struct {
	Letter   Letter
	OrderURL string
	Body     string
	Revealed bool
	JSON     bool
	Error    string
	NotWired bool
	// Edited is the body an edit proposes, on the confirmation of an edit.
	Edited   string
	Confirm  bool
	Problems []string
	Outcome  *Outcome
	// EditFailed says Error is the edit's (after its publish, when Outcome says published), not
	// the reading of the letter.
	EditFailed bool
}

// letter reads the dead letter of the request's {seq}; nil when it answered the request itself.
func (s *Server) letter(w http.ResponseWriter, r *http.Request) (*letterData, bool) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		s.problem(w, r, http.StatusNotFound, "dlq.missing", r.PathValue("seq"))
		return nil, false
	}
	lt, err := s.cfg.DeadLetters.Get(r.Context(), seq)
	if err != nil {
		s.log.Warn("reading a dead letter failed", zap.Uint64("seq", seq), zap.Error(err))
		d := &letterData{Letter: Letter{Seq: seq}, Error: err.Error(), NotWired: errors.Is(err, ErrNotWired)}
		s.render(w, r, http.StatusServiceUnavailable, "letter.html", "dlq.letter", d)
		return nil, false
	}
	d := &letterData{Letter: lt}
	if events.ValidShopID(lt.Shop) && events.ValidOrderID(lt.Order) {
		d.OrderURL = orderURL(lt.Shop, lt.Order)
	}
	return d, true
}

// letterPage shows a dead letter with its body's personal data masked.
func (s *Server) letterPage(w http.ResponseWriter, r *http.Request) {
	d, ok := s.letter(w, r)
	if !ok {
		return
	}
	d.Body, d.JSON = maskBody(langOf(r), d.Letter.Body)
	s.render(w, r, http.StatusOK, "letter.html", "dlq.letter", d)
}

// revealLetter shows a dead letter's body whole, after recording who looked: a log line without
// the body, and an entry in the history of the order it names.
func (s *Server) revealLetter(w http.ResponseWriter, r *http.Request) {
	d, ok := s.letter(w, r)
	if !ok {
		return
	}
	if !s.auditLetter(w, r, d.Letter) {
		return
	}
	d.Body, d.JSON = prettyBody(d.Letter.Body)
	d.Revealed = true
	s.render(w, r, http.StatusOK, "letter.html", "dlq.letter", d)
}

// auditLetter records an operator's look at a dead letter's body; false when it answered the
// request itself (the history entry could not be written).
func (s *Server) auditLetter(w http.ResponseWriter, r *http.Request, lt Letter) bool {
	ss := sessionOf(r)
	s.log.Info("dead letter revealed", zap.String("operator", ss.Operator), zap.Uint64("seq", lt.Seq),
		zap.String("reason", lt.Reason), zap.String("shop", lt.Shop), zap.String("order", lt.Order))
	if !events.ValidShopID(lt.Shop) || !events.ValidOrderID(lt.Order) {
		return true
	}
	st, err := s.cfg.Store.Get(r.Context(), lt.Shop, lt.Order)
	if err == nil {
		err = s.audit(r, lt.Shop, lt.Order, st, "dead letter "+strconv.FormatUint(lt.Seq, 10)+" ("+lt.Reason+") revealed in the console")
	}
	if err != nil {
		s.problem(w, r, http.StatusServiceUnavailable, "error.audit", err.Error())
		return false
	}
	return true
}

// editLetter publishes an edited body in place of a dead letter (edit, then replay): the first
// POST shows the confirmation, the second (confirm=yes) publishes through DeadLetters.
func (s *Server) editLetter(w http.ResponseWriter, r *http.Request) {
	l := langOf(r)
	d, ok := s.letter(w, r)
	if !ok {
		return
	}
	body := r.PostFormValue("body")
	// The page shows the letter's body whole, as the reveal does: recorded first, the same way.
	if !s.auditLetter(w, r, d.Letter) {
		return
	}
	d.Edited, d.Revealed = body, true
	d.Body, d.JSON = prettyBody(d.Letter.Body)
	switch {
	case strings.TrimSpace(body) == "":
		d.Problems = append(d.Problems, l.T("dlq.edit.empty"))
	case !json.Valid([]byte(body)):
		d.Problems = append(d.Problems, l.T("dlq.edit.json"))
	}
	if len(d.Problems) > 0 {
		s.render(w, r, http.StatusBadRequest, "letter.html", "dlq.letter", d)
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		d.Confirm = true
		s.render(w, r, http.StatusOK, "letter.html", "dlq.letter", d)
		return
	}
	ss := sessionOf(r)
	r = s.markSince(r)
	o, err := s.cfg.DeadLetters.EditReplay(r.Context(), ss.Operator, d.Letter.Seq, []byte(body))
	if err != nil {
		// An error after the publish (the letter not removed) comes with the published Outcome:
		// the page says the event went out, with its message ID, so that nobody publishes it again.
		s.log.Error("dead letter edit failed", zap.String("operator", ss.Operator), zap.Uint64("seq", d.Letter.Seq),
			zap.Bool("published", o.Published), zap.String("msg_id", o.MsgID), zap.Error(err))
		d.Error, d.NotWired, d.EditFailed = err.Error(), errors.Is(err, ErrNotWired), true
		if o.Published {
			d.Outcome = &o
		}
		s.render(w, r, http.StatusServiceUnavailable, "letter.html", "dlq.letter", d)
		return
	}
	s.log.Info("dead letter edited and replayed", zap.String("operator", ss.Operator), zap.Uint64("seq", d.Letter.Seq), zap.Bool("published", o.Published))
	d.Outcome = &o
	s.render(w, r, http.StatusOK, "letter.html", "dlq.letter", d)
}

// letterAction is a dead-letter action of the list.
type letterAction string

const (
	letterReplay letterAction = "replay"
	letterDryRun letterAction = "dryrun"
	letterPurge  letterAction = "purge"
)

type letterResult struct {
	Seq     uint64
	Outcome Outcome
}

type letterActionsData struct {
	Action   letterAction
	Label    string
	Seqs     []uint64
	Done     bool
	Results  []letterResult
	Error    string
	NotWired bool
	Keys     string
}

// letterActions replays (or counts in a dry run) or purges the checked dead letters, after a
// confirmation that states the count.
func (s *Server) letterActions(w http.ResponseWriter, r *http.Request) {
	l := langOf(r)
	a := letterAction(r.PostFormValue("action"))
	switch a {
	case letterReplay, letterDryRun, letterPurge:
	default:
		s.problem(w, r, http.StatusBadRequest, "action.unknown", string(a))
		return
	}
	d := letterActionsData{Action: a, Label: l.T("dlq.action." + string(a))}
	seen := map[uint64]bool{}
	for _, v := range r.PostForm["seq"] {
		seq, err := strconv.ParseUint(v, 10, 64)
		if err != nil || seq == 0 {
			s.problem(w, r, http.StatusBadRequest, "dlq.missing", v)
			return
		}
		if !seen[seq] {
			seen[seq] = true
			d.Seqs = append(d.Seqs, seq)
		}
	}
	switch {
	case len(d.Seqs) == 0:
		s.problem(w, r, http.StatusBadRequest, "action.none", "")
		return
	case len(d.Seqs) > maxTargets:
		s.problem(w, r, http.StatusBadRequest, "action.toomany", strconv.Itoa(maxTargets))
		return
	}
	// A dry run changes nothing: it needs no confirmation.
	if a != letterDryRun && r.PostFormValue("confirm") != "yes" {
		s.render(w, r, http.StatusOK, "letter-actions.html", "action.confirm", d)
		return
	}
	ss := sessionOf(r)
	var outcomes []Outcome
	var err error
	switch a {
	case letterReplay, letterDryRun:
		r = s.markSince(r)
		outcomes, err = s.cfg.DeadLetters.Replay(r.Context(), ss.Operator, d.Seqs, a == letterDryRun)
	case letterPurge:
		outcomes, err = s.cfg.DeadLetters.Purge(r.Context(), ss.Operator, d.Seqs)
	}
	d.Done = true
	// The outcomes say what was done, also those returned with an error (the action stopped
	// part-way): a purge deletes for good, and every letter replayed or purged is listed as such
	// beside the error.
	var keys []string
	published := 0
	for i, seq := range d.Seqs {
		if i >= len(outcomes) {
			break
		}
		d.Results = append(d.Results, letterResult{Seq: seq, Outcome: outcomes[i]})
		if o := outcomes[i]; o.Published {
			published++
			if a == letterReplay && o.Shop != "" {
				keys = append(keys, o.Shop+"/"+o.Order)
			}
		}
	}
	d.Keys = strings.Join(keys, " ")
	if err != nil {
		s.log.Error("dead-letter action failed", zap.String("operator", ss.Operator), zap.String("action", string(a)), zap.Int("letters", len(d.Seqs)),
			zap.Int("published", published), zap.Error(err))
		d.Error, d.NotWired = err.Error(), errors.Is(err, ErrNotWired)
		s.render(w, r, http.StatusServiceUnavailable, "letter-actions.html", "action.result", d)
		return
	}
	s.log.Info("dead-letter action", zap.String("operator", ss.Operator), zap.String("action", string(a)),
		zap.Int("letters", len(d.Seqs)), zap.Int("published", published))
	s.render(w, r, http.StatusOK, "letter-actions.html", "action.result", d)
}

// shownKeys are the fields of a dead letter's body the masked view shows (compared in lower
// case): the envelope's, identifiers, amounts, dates and codes, nothing that could name or reach a
// person. Every other field's text or number is masked, wherever it is; true, false and null stay.
var shownKeys = map[string]bool{
	"specversion": true, "type": true, "id": true, "source": true, "time": true, "subject": true,
	"datacontenttype": true, "dataschema": true, "causationid": true,
	"shop_id": true, "order_id": true, "transaction_id": true, "ordered_at": true, "decided_at": true, "reported_at": true,
	"billed_amount": true, "shipping_fee": true, "unit_price": true, "quantity": true, "fee": true, "discount": true,
	"amount": true, "amounts": true, "fees": true, "tax": true, "total": true,
	"carrier": true, "carrier_code": true, "invoice_date": true, "invoice_delivery": true,
	"operator": true, "review": true, "result": true, "code": true, "point": true, "field": true,
}

// openKeys are the fields whose object or array the masked view goes into, masking field by
// field; under any other field (buyer, ship_to, consignee…) everything is masked.
var openKeys = map[string]bool{
	"data": true, "items": true, "errors": true, "problems": true, "fields": true, "edits": true,
	"details": true, "amounts": true, "fees": true,
}

// shown reports whether the value of key (lower case), a field of an object under parent, is
// shown masked-view: a key of shownKeys, or an item's name (the product's).
func shown(key, parent string) bool {
	return shownKeys[key] || (key == "name" && parent == "items")
}

// maskMark replaces a masked value.
const maskMark = "●●●●"

// maskBody renders a dead letter's body with its personal data masked: a JSON body pretty-printed
// with the values of personal fields replaced; any other body not at all (its size only).
func maskBody(l locale, body []byte) (string, bool) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return l.F("dlq.notjson", len(body)), false
	}
	if _, err := dec.Token(); err != io.EOF { // more after the value: not one JSON value
		return l.F("dlq.notjson", len(body)), false
	}
	v = mask(v, "", "")
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return l.F("dlq.notjson", len(body)), false
	}
	return jsonBidi(string(out)), true
}

// jsonBidi writes the bidirectional controls of a JSON text as JSON escapes (\u202e): in valid
// JSON they are inside strings, where the escape means the same, so an edited body keeps them while
// the page shows them inert.
func jsonBidi(s string) string {
	return jsonBidiReplacer.Replace(s)
}

var jsonBidiReplacer = strings.NewReplacer(
	"\u202A", `\u202a`, "\u202B", `\u202b`, "\u202C", `\u202c`, "\u202D", `\u202d`, "\u202E", `\u202e`,
	"\u2066", `\u2066`, "\u2067", `\u2067`, "\u2068", `\u2068`, "\u2069", `\u2069`,
	"\u200E", `\u200e`, "\u200F", `\u200f`, "\u061C", `\u061c`)

// mask replaces the personal values of v, the value of key (lower case; "" for the body itself)
// of an object under parent; an array's elements count as values of its key. A text that reads
// as a JSON object or array (a body inside a body) is masked as JSON, and written back as text.
func mask(v any, key, parent string) any {
	switch x := v.(type) {
	case map[string]any:
		if key != "" && !openKeys[key] && !shownKeys[key] {
			return maskAll(x)
		}
		for k, e := range x {
			x[k] = mask(e, strings.ToLower(k), key)
		}
		return x
	case []any:
		if key != "" && !openKeys[key] && !shownKeys[key] {
			return maskAll(x)
		}
		for i, e := range x {
			x[i] = mask(e, key, parent)
		}
		return x
	case string:
		if inner, ok := jsonText(x); ok {
			out, err := json.Marshal(mask(inner, key, parent))
			if err != nil {
				return maskMark
			}
			return string(out)
		}
		if shown(key, parent) {
			return x
		}
		return maskMark
	case json.Number:
		if shown(key, parent) {
			return x
		}
		return maskMark
	}
	return v // true, false, null
}

// maskAll masks every text and number of v.
func maskAll(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = maskAll(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = maskAll(e)
		}
		return x
	case string, json.Number:
		return maskMark
	}
	return v
}

// jsonText reads s as a JSON object or array; ok is false for any other text.
func jsonText(s string) (any, bool) {
	t := strings.TrimSpace(s)
	if t == "" || (t[0] != '{' && t[0] != '[') {
		return nil, false
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(t))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return v, true
}

// prettyBody renders a body whole: JSON indented, other text as it is (invalid UTF-8 as escapes).
func prettyBody(body []byte) (string, bool) {
	var buf bytes.Buffer
	if json.Indent(&buf, body, "", "  ") == nil {
		return jsonBidi(buf.String()), true
	}
	if utf8.Valid(body) {
		return string(body), false
	}
	return strconv.Quote(string(body)), false
}
