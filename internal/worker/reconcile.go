package worker

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/handlers"
)

// reconcile runs at start-up and then every -reconcile-interval until ctx ends: it creates missing
// streams and consumers again (a NATS store lost, a stream deleted), schedules again the timers
// JetStream lost (handlers.Reconciler), and publishes again the events Redis lost that were kept
// only there (handlers.Kept). Failures are logged and tried at the next run.
func reconcile(ctx context.Context, js jetstream.JetStream, s config.Settings, rec *handlers.Reconciler, k kept, log *zap.Logger) {
	for {
		if made, err := ensureStreams(ctx, js, s); err != nil {
			log.Warn("checking the streams failed; retried at the next reconciliation", zap.Error(err))
		} else if made {
			log.Warn("a stream of the worker was missing (deleted, or the NATS store lost): streams and consumers created again")
		}
		if n, err := rec.Once(ctx); err != nil {
			log.Warn("re-creating lost timers failed; retried at the next reconciliation", zap.Int("scheduled", n), zap.Error(err))
		} else if n > 0 {
			log.Warn("timers lost by JetStream scheduled again", zap.Int("timers", n))
		}
		if n, err := k.reconcile(ctx, rec.KeptFates(), s.ReconcileInterval, rec.Now(), log); err != nil {
			log.Warn("checking the kept copies of events failed; retried at the next reconciliation", zap.Int("published", n), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.ReconcileInterval):
		}
	}
}
