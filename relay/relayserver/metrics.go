package relayserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agenthost/agenthost/internal/obs"
)

// counterVec is a Prometheus counter with at most one label. Label values
// listed up front are exported from the start at 0, so dashboards and
// alerts see every series before its first event.
type counterVec struct {
	vec   *prometheus.CounterVec
	plain prometheus.Counter // when there is no label
}

func newCounterVec(reg *prometheus.Registry, name, help, label string, preset ...string) *counterVec {
	c := &counterVec{}
	if label == "" {
		c.plain = prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(c.plain)
		return c
	}
	c.vec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	for _, v := range preset {
		c.vec.WithLabelValues(v)
	}
	reg.MustRegister(c.vec)
	return c
}

func (c *counterVec) add(value string, n int64) {
	if c.plain != nil {
		c.plain.Add(float64(n))
		return
	}
	c.vec.WithLabelValues(value).Add(float64(n))
}

func (c *counterVec) inc(value string) { c.add(value, 1) }

// Latency buckets, in seconds. forwardBuckets span the relay's own added
// latency (tens of microseconds idle, up to the write timeout when a peer
// stalls); httpBuckets the API's answers; lifetimeBuckets a connection's
// life, from a refused first frame to days.
var (
	forwardBuckets  = prometheus.ExponentialBucketsRange(25e-6, 30, 16)
	httpBuckets     = prometheus.ExponentialBucketsRange(100e-6, 10, 12)
	announceBuckets = prometheus.ExponentialBucketsRange(50e-6, 1, 10)
	lifetimeBuckets = prometheus.ExponentialBucketsRange(0.1, 7*24*3600, 14)
)

// metrics holds everything /metrics exports. Label values are fixed words
// chosen by the relay, never anything a peer sent.
type metrics struct {
	reg *prometheus.Registry

	connections      *counterVec
	rejected         *counterVec
	forwarded        *counterVec
	forwardedBytes   *counterVec
	dropped          *counterVec
	slowConsumers    *counterVec
	rateLimited      *counterVec
	announces        *counterVec
	announceFailures *counterVec
	disconnects      *counterVec
	tooLarge         *counterVec
	lookups          *counterVec
	searches         *counterVec

	// forwardSeconds is, by direction, the time from a frame's arrival to
	// its write to the other peer's socket: the relay's added latency.
	forwardSeconds  *prometheus.HistogramVec
	toAgent         prometheus.Observer
	toClient        prometheus.Observer
	announceSeconds prometheus.Histogram
	httpSeconds     *prometheus.HistogramVec
	// connectionSeconds is, by kind, how long WebSocket connections
	// lasted.
	connectionSeconds *prometheus.HistogramVec
}

func newMetrics() *metrics {
	reg := obs.NewRegistry() // with the Go and process collectors
	m := &metrics{
		reg: reg,
		connections: newCounterVec(reg, "relay_connections_total",
			"WebSocket connections accepted, by kind.", "kind", "agent", "client"),
		rejected: newCounterVec(reg, "relay_connections_rejected_total",
			"Connections refused before or at upgrade, by reason.", "reason",
			"ip_limit", "rate_limited", "shutting_down", "session_limit", "agent_offline", "bad_first_frame", "session_conflict", "agent_limit"),
		forwarded: newCounterVec(reg, "relay_frames_forwarded_total",
			"Frames forwarded between clients and agents, by direction.", "direction", "to_agent", "to_client"),
		forwardedBytes: newCounterVec(reg, "relay_bytes_forwarded_total",
			"Bytes of frames forwarded, by direction.", "direction", "to_agent", "to_client"),
		dropped: newCounterVec(reg, "relay_frames_dropped_total",
			"Frames not forwarded, by reason.", "reason",
			"agent_queue_full", "unknown_session", "no_session_id", "malformed", "binary", "rate_limited"),
		slowConsumers: newCounterVec(reg, "relay_slow_consumer_disconnects_total",
			"Peers disconnected because they did not read their frames fast enough, by kind.", "kind", "agent", "client"),
		rateLimited: newCounterVec(reg, "relay_rate_limited_total",
			"Events refused by a rate limit, by kind.", "kind",
			"connection", "client_frame", "agent_frame", "announce", "session_open"),
		announces: newCounterVec(reg, "relay_announces_total",
			"ANNOUNCE messages accepted.", ""),
		announceFailures: newCounterVec(reg, "relay_announce_failures_total",
			"ANNOUNCE messages refused, by reason.", "reason",
			"malformed", "bad_address", "bad_signature", "stale_timestamp", "replayed", "summary_too_long",
			"invalid_field", "too_large", "address_changed", "timeout", "rate_limited", "agent_limit"),
		disconnects: newCounterVec(reg, "relay_disconnects_total",
			"Connections ended by the relay, by reason.", "reason",
			"agent_silent", "client_idle", "replaced", "agent_gone", "too_large", "shutdown"),
		tooLarge: newCounterVec(reg, "relay_frames_too_large_total",
			"Frames over the size limit (the sender is disconnected), by kind.", "kind", "agent", "client"),
		lookups: newCounterVec(reg, "relay_lookups_total",
			"Agent lookups, by result.", "result", "found", "not_found"),
		searches: newCounterVec(reg, "relay_searches_total",
			"Discovery searches served.", ""),
		forwardSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "relay_forward_duration_seconds",
			Help:    "Time from a frame's arrival at the relay to its write to the other peer's socket, by direction.",
			Buckets: forwardBuckets}, []string{"direction"}),
		announceSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "relay_announce_duration_seconds",
			Help:    "Time to verify and register one ANNOUNCE, accepted or refused.",
			Buckets: announceBuckets}),
		httpSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "relay_http_request_duration_seconds",
			Help:    "Time to answer an HTTP API request (lookups, searches, health, readiness, metrics), by route and status code.",
			Buckets: httpBuckets}, []string{"route", "code"}),
		connectionSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "relay_connection_duration_seconds",
			Help:    "How long WebSocket connections lasted, by kind.",
			Buckets: lifetimeBuckets}, []string{"kind"}),
	}
	m.toAgent = m.forwardSeconds.WithLabelValues("to_agent")
	m.toClient = m.forwardSeconds.WithLabelValues("to_client")
	m.connectionSeconds.WithLabelValues("agent")
	m.connectionSeconds.WithLabelValues("client")
	reg.MustRegister(m.forwardSeconds, m.announceSeconds, m.httpSeconds, m.connectionSeconds)
	return m
}

// gauge registers a gauge read at scrape time.
func (m *metrics) gauge(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// handler serves the registry in the Prometheus text format (or
// OpenMetrics, when the scraper asks for it).
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// timed wraps an API route: its answer's duration goes to
// relay_http_request_duration_seconds under route and the status code.
func (m *metrics) timed(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		begin := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(sw, r)
		m.httpSeconds.WithLabelValues(route, strconv.Itoa(sw.code)).Observe(time.Since(begin).Seconds())
	}
}

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
