package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/atodene-worker/atodene-worker/internal/events"
	"github.com/atodene-worker/atodene-worker/internal/streamscan"
)

// Bulk runs the requests, at most Config.Concurrency at once, and returns their results in the
// order of reqs: one action on many orders (a console's bulk button), or any mix. The options
// apply to every request; with Key, each event's id is derived from the key and the request's
// own action, operator, shop and order, so that the same Bulk call again publishes nothing twice
// (its results say Duplicate) and a request repeated within reqs is published once.
//
// A refusal is a result, and the others go on. The first failure of Redis or NATS (or the end of
// ctx) stops the requests not yet started and is returned with the results: a request it stopped,
// or whose publish it interrupted, has Outcome "" (with Key, running the call again is safe).
func (o *Operator) Bulk(ctx context.Context, reqs []Request, opts ...Option) ([]Result, error) {
	results := make([]Result, len(reqs))
	for i, req := range reqs {
		results[i] = Result{Action: req.Action, Shop: req.Shop, Order: req.Order, Operator: req.Operator}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		slots = make(chan struct{}, o.concurrency)
	)
	for i, req := range reqs {
		if ctx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			r, err := o.Do(ctx, req, opts...)
			results[i] = r
			if err != nil {
				once.Do(func() { first = fmt.Errorf("order %s of shop %s: %w", req.Order, req.Shop, err); cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err() // the caller's ctx ended before every request started
	}
	return results, first
}

// Answer is an outcome event the worker published in answer to an action's event: its type
// (credit.ok, shipment.ng, invoice.ok, …), id, where RESULTS holds it, and its data as published
// (an invoice.ok's holds the invoice's addressee).
type Answer struct {
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	Sequence uint64          `json:"sequence"`
	Stored   time.Time       `json:"stored_at"`
	Data     json.RawMessage `json:"data"`
}

// Answers returns, by event id (Result.ID), the outcomes the worker published in answer to the
// published results' events (those whose causationid is the event's id), oldest first. An event
// without any is not handled yet, or changed nothing (a rerun with unchanged data, a recheck of an
// order still under review: the order's history says so). It reads the outcome stream from a
// minute before the earliest event's time (clocks differ) to its end, at most limit messages (0:
// 10,000): an event may cause several outcomes (an invoice request that finds the credit decided
// answers credit.ok, then invoice.ok). Results not published are left out. Errors are
// NATS failures and ctx's end.
func (o *Operator) Answers(ctx context.Context, results []Result, limit int) (map[string][]Answer, error) {
	if limit <= 0 {
		limit = 10000
	}
	want := map[string]bool{}
	var since time.Time
	for _, r := range results {
		if r.Outcome != Published || r.ID == "" {
			continue
		}
		want[r.ID] = true
		if since.IsZero() || r.Time.Before(since) {
			since = r.Time
		}
	}
	found := map[string][]Answer{}
	if len(want) == 0 {
		return found, nil
	}
	s, err := o.js.Stream(ctx, o.results)
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", o.results, err)
	}
	filters := []string{"credit.>", "shipment.>", "invoice.>"}
	first, err := streamscan.FirstSince(ctx, s, filters, since.Add(-time.Minute))
	if err != nil || first == 0 {
		return found, err
	}
	left := limit
	_, err = streamscan.Range(ctx, s, filters, first, 0, func(m jetstream.Msg, seq uint64) (bool, error) {
		left--
		var env events.Envelope
		if json.Unmarshal(m.Data(), &env) == nil && want[env.CausationID] {
			md, _ := m.Metadata()
			typ, _, _ := events.ParseSubject(m.Subject())
			found[env.CausationID] = append(found[env.CausationID], Answer{Type: typ, ID: env.ID, Sequence: seq, Stored: md.Timestamp, Data: env.Data})
		}
		return left == 0, nil
	})
	return found, err
}
