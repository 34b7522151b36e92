package otelenv_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/tracing/otelenv"
)

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

func TestModeOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		vars map[string]string
		want otelenv.Mode
		err  string
	}{
		{"nothing set: off", nil, otelenv.Off, ""},
		{"otlp", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, otelenv.OTLP, ""},
		{"console", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, otelenv.Console, ""},
		{"an endpoint alone", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, otelenv.OTLP, ""},
		{"a traces endpoint alone", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/v1/traces"}, otelenv.OTLP, ""},
		{"none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, otelenv.Off, ""},
		{"disabled wins", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, otelenv.Off, ""},
		{"disabled false", map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, otelenv.OTLP, ""},
		{"http/protobuf", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, otelenv.OTLP, ""},
		{"grpc", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, otelenv.Off, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"the traces' protocol wins", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, otelenv.OTLP, ""},
		{"an unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, otelenv.Off, "OTEL_TRACES_EXPORTER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := otelenv.ModeOf(env(tc.vars))
			if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("ModeOf = %q, %v; want %q, an error naming %q", got, err, tc.want, tc.err)
			}
		})
	}
}

// TestSetup: off, no provider and nothing to flush; console, a provider whose spans are written
// when shutdown flushes them.
func TestSetup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tp, shutdown, err := otelenv.Setup(ctx, env(nil), "test", nil)
	if err != nil || tp != nil || shutdown() != nil {
		t.Errorf("off: provider %v, error %v", tp, err)
	}
	var out bytes.Buffer
	tp, shutdown, err = otelenv.Setup(ctx, env(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), "atodene-test", &out)
	if err != nil || tp == nil {
		t.Fatalf("console: provider %v, error %v", tp, err)
	}
	_, span := tp.Tracer("test").Start(ctx, "a span")
	span.End()
	if err := shutdown(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"a span"`) || !strings.Contains(out.String(), "atodene-test") {
		t.Errorf("console output lacks the span or the service name:\n%s", out.String())
	}
}
