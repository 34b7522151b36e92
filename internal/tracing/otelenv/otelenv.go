// Package otelenv sets up OpenTelemetry tracing from the standard OTEL_* environment variables:
// off unless they ask for it, then a batch span processor to the OTLP/HTTP exporter (or to the
// console, for debugging).
package otelenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Mode is how Setup exports spans.
type Mode string

// The modes of Setup.
const (
	Off     Mode = ""        // no provider: nothing traced
	OTLP    Mode = "otlp"    // OTLP over HTTP/protobuf to OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT
	Console Mode = "console" // JSON lines on the console writer, for debugging
)

// ModeOf says how the environment asks for spans to be exported: OTLP when OTEL_TRACES_EXPORTER is
// otlp or is unset while OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set,
// Console when it is console, Off otherwise and whenever OTEL_SDK_DISABLED is true. An exporter it
// does not know, or an OTLP protocol other than http/protobuf, is an error naming the variable.
func ModeOf(getenv func(string) string) (Mode, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return Off, nil
	}
	mode := Off
	switch exp := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); exp {
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
			mode = OTLP
		}
	case "none":
	case "otlp":
		mode = OTLP
	case "console":
		return Console, nil
	default:
		return Off, fmt.Errorf("OTEL_TRACES_EXPORTER %q: want otlp, console or none", exp)
	}
	if mode == OTLP {
		for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
			if p := strings.TrimSpace(getenv(name)); p != "" {
				if p != "http/protobuf" {
					return Off, fmt.Errorf("%s %q: only http/protobuf is supported (an OTel collector or Jaeger listens for it on port 4318)", name, p)
				}
				break // the traces' own setting wins
			}
		}
	}
	return mode, nil
}

// Setup makes the tracer provider the environment asks for (ModeOf), for a program named service
// (the service.name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES set one). Off, it returns a
// nil provider and a shutdown that does nothing. On, spans go through a batch span processor
// (OTEL_BSP_* tune it) to the OTLP exporter, which reads OTEL_EXPORTER_OTLP_* itself, or to console
// (stderr); OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG choose the sampler (default
// parentbased_always_on).
//
// shutdown flushes the spans not yet exported and stops the exporter; it gives up after
// FlushTimeout. An error is a setting that is not valid: the program should not start.
func Setup(ctx context.Context, getenv func(string) string, service string, console io.Writer) (tp trace.TracerProvider, shutdown func() error, err error) {
	nothing := func() error { return nil }
	mode, err := ModeOf(getenv)
	if err != nil || mode == Off {
		return nil, nothing, err
	}
	var exp sdktrace.SpanExporter
	switch mode {
	case Console:
		exp, err = stdouttrace.New(stdouttrace.WithWriter(console))
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, nothing, fmt.Errorf("tracing: %w", err)
	}
	// Later detectors win: the environment's service name over the program's.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(semconv.ServiceName(service)), resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, nothing, fmt.Errorf("tracing: OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	p := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return p, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), FlushTimeout)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			return fmt.Errorf("tracing: exporting the last spans: %w", err)
		}
		return nil
	}, nil
}

// FlushTimeout bounds the export of the last spans when a program stops.
const FlushTimeout = 5 * time.Second
