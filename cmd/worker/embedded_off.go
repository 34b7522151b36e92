//go:build noembedded

package main

import (
	"context"
	"errors"
	"io"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/config"
	"github.com/atodene-worker/atodene-worker/internal/worker"
)

var errNoEmbedded = errors.New("-embedded: this worker was built without the embedded mode (-tags noembedded); give -nats-url and -redis-url, or build without the tag")

func startEmbedded(*config.Settings, *config.Shops, io.Writer, *zap.Logger, trace.TracerProvider) (*config.Shops, func(), error) {
	return nil, nil, errNoEmbedded
}

func withDemo(context.Context, worker.Deps, io.Writer) error { return errNoEmbedded }

func publishSamples(context.Context, string, string, io.Writer, *zap.Logger) {}
