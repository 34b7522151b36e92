package worker

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
	"github.com/atodene-worker/atodene-worker/internal/orderstate"
)

// reconcile runs at start-up and then every -reconcile-interval until ctx ends: it creates missing
// streams and consumers again (a NATS store lost, a stream deleted), schedules again the timers
// JetStream lost (handlers.Reconciler), publishes again the events Redis lost that were kept
// only there (handlers.Kept), and trims the order index of the orders past -retention (trim).
// Failures are logged and tried at the next run.
func reconcile(ctx context.Context, streams *streamSetup, s config.Settings, rec *handlers.Reconciler, k kept, trim func(context.Context) (int, error), log *zap.Logger) {
	for {
		if made, err := streams.ensure(ctx); err != nil {
			log.Warn("checking the streams failed; retried at the next reconciliation", zap.Error(err))
		} else if made {
			log.Warn("a stream of the worker was missing (deleted, or the NATS store lost): streams and consumers created again")
		}
		if n, err := rec.Once(ctx); err != nil {
			log.Warn("re-creating lost timers failed; retried at the next reconciliation", zap.Int("scheduled", n), zap.Error(err))
		} else if n > 0 {
			log.Warn("timers lost by JetStream scheduled again", zap.Int("timers", n))
		}
		if n, err := k.reconcile(ctx, rec.KeptFates(), s.ReconcileInterval, keptRenewAge(s), rec.Now(), log); err != nil {
			log.Warn("checking the kept copies of events failed; retried at the next reconciliation", zap.Int("published", n), zap.Error(err))
		}
		if n, err := trim(ctx); err != nil {
			log.Warn("trimming the order index failed; retried at the next reconciliation", zap.Int("removed", n), zap.Error(err))
		} else if n > 0 {
			log.Info("orders past -retention removed from the order index", zap.Int("orders", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.ReconcileInterval):
		}
	}
}

// trimBatch and trimMost bound the index entries one reconciliation removes per shop: a script
// removes at most trimBatch (a few milliseconds of Redis's time), and the run goes on while it
// finds as many, up to trimMost. The writes of a shop trim as they go; this catches the rest.
const (
	trimBatch = 500
	trimMost  = 20000
)

// trimIndex returns the index trim of a reconciliation: each shop's orders past the retention,
// which listings already hide, removed from its index.
func trimIndex(store *orderstate.Store, shops []string) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		removed := 0
		for _, shop := range shops {
			for n := trimBatch; n == trimBatch && removed < trimMost; {
				var err error
				if n, err = store.TrimIndex(ctx, shop, trimBatch); err != nil {
					return removed, err
				}
				removed += n
			}
		}
		return removed, nil
	}
}

// handoff runs h every fifth of h.Ahead (at most every 2 s, at least every 50 ms) until ctx ends:
// a held re-check reaches JetStream between four and five fifths of h.Ahead before it is due.
// Failures are logged once until a run works again; what a failed run claimed is taken again once
// its claim runs out.
func handoff(ctx context.Context, h *handlers.Handoff, log *zap.Logger) {
	every := min(max(h.Ahead/5, 50*time.Millisecond), 2*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := h.Once(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			log.Warn("handing held re-checks to JetStream failed; retried every run, logged again once it works", zap.Error(err))
		case err == nil && failing:
			log.Info("handing held re-checks to JetStream works again")
		}
		failing = err != nil
	}
}
