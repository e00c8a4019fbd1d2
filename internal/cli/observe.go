package cli

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/agenthost/agenthost/internal/obs"
)

// otelEnv are the OpenTelemetry variables the platform passes on to the
// agent loops of its runtimes (never to their tools), so that runtimes
// export their spans where the platform does.
var otelEnv = []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
	"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_TRACES_EXPORTER",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SDK_DISABLED", "OTEL_RESOURCE_ATTRIBUTES"}

// startTracing installs the OTLP exporter the OTEL_* variables ask for
// (none when they ask for none); the returned function flushes it.
func startTracing(ctx context.Context, env *Env, service string) (func(), error) {
	shutdown, err := obs.SetupTracing(ctx, env.Getenv, service)
	if err != nil {
		return nil, err
	}
	if obs.TracingEnabled(env.Getenv) {
		env.Logger.Info("exporting traces over OTLP", "service", service)
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown(sctx)
	}, nil
}

// serveMetrics serves h at /metrics on addr until the returned function
// is called.
func serveMetrics(env *Env, addr string, h http.Handler) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, Usagef("--metrics-addr: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			env.Logger.Warn("metrics listener", "err", err)
		}
	}()
	env.Logger.Info("metrics listening", "url", "http://"+strings.Replace(ln.Addr().String(), "[::]", "localhost", 1)+"/metrics")
	return func() { srv.Close(); <-done }, nil
}
