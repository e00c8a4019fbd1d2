package obs

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HTTPConfig configures Middleware.
type HTTPConfig struct {
	// Metrics records the requests (NewHTTPMetrics); nil records none.
	Metrics *HTTPMetrics
	// Logger writes the access log, one Info line per request; nil
	// writes none.
	Logger *slog.Logger
	// Quiet lists paths whose requests are logged at Debug only (probes
	// and scrapes: /health, /ready, /metrics).
	Quiet []string
}

// HTTPMetrics are the request metrics of one server.
type HTTPMetrics struct {
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// NewHTTPMetrics registers agenthost_http_request_duration_seconds (by
// route pattern, method and status code; its _count is the request rate)
// and agenthost_http_requests_in_flight in reg.
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	m := &HTTPMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern, method and status code (streams and WebSockets: until they end).",
			Buckets: httpBuckets}, []string{"route", "method", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "http_requests_in_flight",
			Help: "HTTP requests being answered now, streams and WebSockets included."}),
	}
	reg.MustRegister(m.duration, m.inFlight)
	return m
}

// methods are the method label's values; anything else is "other", so a
// caller cannot grow the label set.
var methods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

func methodLabel(m string) string {
	if methods[m] {
		return m
	}
	return "other"
}

// routeOf is the route pattern the mux matched, without its method: the
// route label and the span's http.route. Requests no pattern matched are
// "unmatched".
func routeOf(rq *request, r *http.Request) string {
	rq.mu.Lock()
	p := rq.route
	rq.mu.Unlock()
	if p == "" {
		p = r.Pattern
	}
	if i := strings.IndexByte(p, ' '); i >= 0 {
		p = p[i+1:]
	}
	if p == "" {
		return "unmatched"
	}
	return p
}

// Middleware wraps a server's handler: each request gets an id (the
// caller's X-Request-Id when ValidRequestID, else a fresh one) returned in
// the X-Request-Id response header and carried by its context; a server
// span (continuing the caller's traceparent); its duration in the metrics
// by route pattern, method and status; and one access log line with the
// id, method, route, path, status, bytes and duration — never a query,
// a body or a header.
func Middleware(cfg HTTPConfig, next http.Handler) http.Handler {
	m := cfg.Metrics
	quiet := map[string]bool{}
	for _, p := range cfg.Quiet {
		quiet[p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if !ValidRequestID(id) {
			id = NewRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		rq := &request{id: id}
		ctx := withRequest(r.Context(), rq)
		ctx = propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
		ctx, span := Tracer().Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
				attribute.String("agenthost.request_id", id)))
		defer span.End()
		if m != nil {
			m.inFlight.Inc()
			defer m.inFlight.Dec()
		}
		sw := &statusWriter{ResponseWriter: w}
		r2 := r.WithContext(ctx)
		next.ServeHTTP(sw, r2)
		code := sw.status()
		route := routeOf(rq, r2)
		elapsed := time.Since(start)
		span.SetName(r.Method + " " + route)
		span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", code))
		if code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(code))
		}
		if m != nil {
			m.duration.WithLabelValues(route, methodLabel(r.Method), strconv.Itoa(code)).Observe(elapsed.Seconds())
		}
		if cfg.Logger == nil {
			return
		}
		level := slog.LevelInfo
		if quiet[r.URL.Path] {
			level = slog.LevelDebug
		}
		if !cfg.Logger.Enabled(ctx, level) {
			return
		}
		attrs := []slog.Attr{slog.String("method", r.Method), slog.String("route", route), slog.String("path", r.URL.Path),
			slog.Int("status", code), slog.Int64("bytes", sw.bytes), slog.Duration("duration", elapsed.Round(time.Microsecond))}
		rq.mu.Lock()
		attrs = append(attrs, rq.attrs...)
		rq.mu.Unlock()
		cfg.Logger.LogAttrs(ctx, level, "request", attrs...)
	})
}

// Tracer is agenthost's tracer, from the global provider (a no-op until
// SetupTracing or a test installs one).
func Tracer() trace.Tracer { return otel.Tracer("github.com/agenthost/agenthost") }

// statusWriter records the status and size of an answer.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

// WriteHeader records the first status (101 for a WebSocket upgrade).
func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 and counts bytes.
func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Flush lets streams through writers that only look for http.Flusher.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController (and WebSocket upgrades) reach the
// connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
