// Package obs is where agenthost's servers get their observability, one
// home per job: a Prometheus registry with the Go and process collectors
// (NewRegistry), the HTTP middleware every server wraps its handler in
// (Middleware: request id, access log, request metrics, a trace span),
// the slog handler that puts a request's id and trace on its log lines
// (LogHandler), the OpenTelemetry set-up from the standard OTEL_*
// variables (SetupTracing), and the count of trust decisions; runobs
// observes a session engine's runs, model calls and tool calls. The host, the coding runtime and the
// platform use it; the relay keeps its own relay_* metrics but shares the
// collectors.
package obs

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric of the host, runtime and platform.
const Namespace = "agenthost"

// NewRegistry returns a registry holding the Go runtime and process
// collectors (go_*, process_*), the base of every /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsHandler serves g in the Prometheus text format, or OpenMetrics
// when the scraper asks for it.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Latency buckets, in seconds: HTTP answers span from well under a
// millisecond (health) to minutes (a synchronous run); runs, model and
// tool calls from milliseconds to an hour.
var (
	httpBuckets = prometheus.ExponentialBucketsRange(0.0005, 120, 14)
	// RunBuckets are the buckets of runs, model calls and tool calls.
	RunBuckets = prometheus.ExponentialBucketsRange(0.01, 3600, 14)
)
