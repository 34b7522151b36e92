package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/jst"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
	"github.com/atodene-worker/atodene-worker/internal/streamscan"
)

// liveOutcome is an outcome event as the live stream sends it to the pages: who it is about and
// the badge it gives, in the page's language. No personal data: an invoice.ok's print data stays
// out.
type liveOutcome struct {
	Seq         uint64 `json:"seq"`
	Type        string `json:"type"`
	Shop        string `json:"shop"`
	Order       string `json:"order"`
	Key         string `json:"key"` // shop/order
	Transaction string `json:"transaction,omitempty"`
	Kind        string `json:"kind"` // credit, shipment or invoice
	Class       string `json:"class"`
	Label       string `json:"label"`
	Text        string `json:"text,omitempty"`
	Time        string `json:"time"` // JST
}

// heartbeat is how often an idle live stream sends a comment, so that proxies keep it open.
const heartbeat = 20 * time.Second

// events is the live stream (server-sent events) of the outcome events the worker publishes from
// now on: credit.*, shipment.* and invoice.* of the shop given (shop=S), or of every shop. It
// follows the RESULTS stream with an ordered consumer of its own, and sends "ready" once it
// follows, then one "outcome" event per outcome.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if s.cfg.JetStream == nil {
		http.Error(w, "live updates are off: the console has no NATS connection", http.StatusServiceUnavailable)
		return
	}
	shop := r.URL.Query().Get("shop")
	token := "*"
	if shop != "" {
		if !events.ValidShopID(shop) {
			http.Error(w, "shop: not a shop ID", http.StatusBadRequest)
			return
		}
		token = shop
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ss := sessionOf(r)
	switch err := s.openStream(ss.ID); {
	case errors.Is(err, errTooManyStreams):
		s.log.Warn("live stream refused: too many open", zap.String("operator", ss.Operator))
		w.Header().Set("Retry-After", "30")
		http.Error(w, "too many live streams open: close some of the console's tabs", http.StatusTooManyRequests)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer s.closeStream(ss.ID)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// The stream ends with its session: the page's reconnection is then identified anew.
	expiry := time.AfterFunc(s.expiry(ss).Sub(s.cfg.Now()), cancel)
	defer expiry.Stop()
	go func() { // the server's Close ends the stream
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	filters := []string{"credit.*." + token, "shipment.*." + token, "invoice.*." + token}
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverNewPolicy, InactiveThreshold: time.Minute}
	// A position past the stream's end is one of a stream since deleted and created again (its
	// sequences start afresh): the stream then starts with what comes next, as without one.
	if after, ok := startAfter(r); ok && after <= s.resultsSeq(ctx) {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	// Followed across the stream deleted and created again, from the new stream's first outcome.
	stream, err := s.cfg.JetStream.Stream(ctx, s.cfg.ResultsStream)
	var it *streamscan.Follower
	if err == nil {
		it, err = streamscan.Follow(ctx, stream, cc, func(created time.Time) {
			s.log.Info("the outcome stream was created again: following it from its first outcome", zap.String("stream", s.cfg.ResultsStream))
		})
	}
	if err != nil {
		s.log.Warn("following the outcomes failed", zap.String("stream", s.cfg.ResultsStream), zap.Error(err))
		http.Error(w, "following the outcomes failed: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 3000\nevent: ready\ndata: {}\n\n")
	flusher.Flush()

	l := langOf(r)
	msgs := make(chan jetstream.Msg)
	done := make(chan struct{})
	go func() { // the iterator's owner: it ends when the iterator stops
		defer close(done)
		for {
			m, err := it.Next(ctx)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					s.log.Warn("following the outcomes stopped", zap.Error(err))
				}
				cancel()
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { cancel(); it.Stop(); <-done }()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case m := <-msgs:
			o, ok := readLive(l, m)
			if !ok {
				continue
			}
			raw, _ := json.Marshal(o)
			if _, err := fmt.Fprintf(w, "event: outcome\nid: %d\ndata: %s\n\n", o.Seq, raw); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

// readLive reads an outcome message into what the pages show of it; ok is false for a message
// that is no outcome of the contract.
func readLive(l locale, m jetstream.Msg) (liveOutcome, bool) {
	typ, shop, err := events.ParseSubject(m.Subject())
	if err != nil {
		return liveOutcome{}, false
	}
	var env events.Envelope
	if json.Unmarshal(m.Data(), &env) != nil {
		return liveOutcome{}, false
	}
	var data struct {
		OrderID       string                 `json:"order_id"`
		TransactionID string                 `json:"transaction_id"`
		Review        string                 `json:"review"`
		Reasons       []string               `json:"reasons"`
		Errors        []events.ProviderError `json:"errors"`
	}
	if json.Unmarshal(env.Data, &data) != nil || !events.ValidOrderID(data.OrderID) {
		return liveOutcome{}, false
	}
	o := liveOutcome{Type: typ, Shop: shop, Order: data.OrderID, Key: shop + "/" + data.OrderID, Transaction: data.TransactionID}
	if md, err := m.Metadata(); err == nil {
		o.Seq, o.Time = md.Sequence.Stream, jst.Format(md.Timestamp)
	}
	text := make([]string, 0, len(data.Reasons)+len(data.Errors))
	text = append(text, data.Reasons...)
	for _, e := range data.Errors {
		text = append(text, errorText(e.Point, e.Code, e.Message))
	}
	kind, _, _ := strings.Cut(typ, ".")
	o.Kind = kind
	switch typ {
	case events.TypeCreditOK, events.TypeCreditNG, events.TypeCreditCancelled, events.TypeCreditInvalid, events.TypeCreditPending:
		b := orderstate.Bucket(strings.TrimPrefix(typ, "credit."))
		if typ == events.TypeCreditPending {
			b = orderstate.BucketReview
			if data.Review == "hold" {
				b = orderstate.BucketHold
			}
		}
		cb := creditBadge(l, b, "")
		o.Class, o.Label = cb.Class, cb.Label
		if b == orderstate.BucketNG || b == orderstate.BucketInvalid {
			o.Text = strings.Join(text, "; ")
		}
	case events.TypeShipmentOK, events.TypeShipmentNG:
		sh := orderstate.ShipmentReported
		if typ == events.TypeShipmentNG {
			sh = orderstate.ShipmentRefused
			o.Text = strings.Join(text, "; ")
		}
		sb := shipmentBadge(l, sh)
		o.Class, o.Label = sb.Class, sb.Label
	case events.TypeInvoiceOK, events.TypeInvoiceNG:
		o.Class, o.Label = "i-"+strings.TrimPrefix(typ, "invoice."), l.T("badge."+typ)
		if typ == events.TypeInvoiceNG {
			o.Text = strings.Join(text, "; ")
		}
	default:
		return liveOutcome{}, false
	}
	o.Text = bidiControls.Replace(o.Text)
	return o, true
}

// startAfter is the outcome stream's sequence a live stream starts after: the last event the
// browser received (Last-Event-ID, sent when it reconnects by itself), else the page's since (the
// stream's last sequence when the page was made); none for a stream of what comes next.
func startAfter(r *http.Request) (uint64, bool) {
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("since")} {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > 0 {
			return n, true
		}
	}
	return 0, false
}
