package obs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// ErrTracingConfig is a tracing configuration this build cannot honour.
var ErrTracingConfig = errors.New("tracing configuration")

// TracingEnabled reports whether the standard variables ask for traces:
// an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER=otlp, and
// neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none.
func TracingEnabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch strings.ToLower(getenv("OTEL_TRACES_EXPORTER")) {
	case "none":
		return false
	case "otlp":
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// SetupTracing installs, when TracingEnabled, a global tracer provider
// that batches spans to an OTLP/HTTP exporter configured by the standard
// OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout,
// compression), with the resource of OTEL_SERVICE_NAME (default service)
// and OTEL_RESOURCE_ATTRIBUTES, sampled as OTEL_TRACES_SAMPLER says; and
// the W3C traceparent and baggage propagators in any case. The returned
// function flushes and stops the exporter (a no-op when tracing is off).
// OTLP over gRPC is refused with ErrTracingConfig: this build speaks
// OTLP/HTTP (http/protobuf).
func SetupTracing(ctx context.Context, getenv func(string) string, service string) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagator)
	if !TracingEnabled(getenv) {
		return func(context.Context) error { return nil }, nil
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		return nil, fmt.Errorf("%w: OTEL_EXPORTER_OTLP_PROTOCOL=%s: agenthost exports OTLP over HTTP; set it to http/protobuf (or unset it) and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port (4318)", ErrTracingConfig, proto)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: OTLP exporter: %w", ErrTracingConfig, err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("%w: resource: %w", ErrTracingConfig, err)
	}
	if getenv("OTEL_SERVICE_NAME") != "" || getenv("OTEL_RESOURCE_ATTRIBUTES") != "" {
		// The environment wins over the default service name.
		if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
			if merged, err := resource.Merge(res, env); err == nil {
				res = merged
			}
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// propagator reads and writes W3C traceparent and baggage headers, whether
// or not spans are exported: a server without an exporter still passes
// its caller's trace on.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Transport wraps next (nil: http.DefaultTransport) so that outgoing
// requests carry the traceparent and X-Request-Id of the context they are
// made with: the platform's calls to runtimes continue its traces.
func Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return propagating{next}
}

type propagating struct{ next http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (p propagating) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	id := RequestID(ctx)
	carrier := propagation.HeaderCarrier{}
	propagator.Inject(ctx, carrier)
	if id == "" && len(carrier) == 0 {
		return p.next.RoundTrip(r)
	}
	r = r.Clone(ctx)
	for k, v := range carrier {
		r.Header[k] = v
	}
	if id != "" && r.Header.Get(RequestIDHeader) == "" {
		r.Header.Set(RequestIDHeader, id)
	}
	return p.next.RoundTrip(r)
}
