package host

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agenthost/agenthost/internal/obs"
	"github.com/agenthost/agenthost/internal/obs/runobs"
)

// observability is the host's metrics registry and the observers that
// feed it (docs/operations.md lists the metrics).
type observability struct {
	reg   *prometheus.Registry
	runs  *runobs.Runs
	trust *obs.TrustMetrics
	ws    prometheus.Gauge
}

func newObservability(agentName func() string) *observability {
	reg := obs.NewRegistry()
	o := &observability{reg: reg, trust: obs.NewTrustMetrics(reg),
		ws: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: obs.Namespace, Name: "websocket_connections",
			Help: "WebSocket connections open now."})}
	o.runs = runobs.NewRuns(reg, agentName)
	reg.MustRegister(o.ws)
	return o
}

// MetricsHandler serves the host's Prometheus metrics: HTTP requests,
// runs, model and tool calls, trust decisions, sessions, workers and
// WebSocket connections, and the Go and process collectors. The Server
// does not mount it on its own API, which anyone who can reach the agent
// may call: serve it on an address only operators reach (agenthost serve
// --metrics-addr).
func (s *Server) MetricsHandler() http.Handler { return obs.MetricsHandler(s.obs.reg) }

// WithMetricsAddr serves the host's metrics (MetricsHandler) at /metrics
// on a listener of their own at addr ("127.0.0.1:9464", ":9464"), opened
// by Start and closed by Shutdown, so that the agent's public address
// does not show them. Empty: no metrics listener.
func WithMetricsAddr(addr string) Option { return func(s *settings) { s.metricsAddr = addr } }

// MetricsAddr returns the address of the metrics listener (nil without
// one, or before Start).
func (s *Server) MetricsAddr() net.Addr {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	return s.metricsAddr
}

// startMetrics opens the metrics listener, when there is one; it is served
// until the background context ends.
func (s *Server) startMetrics() error {
	if s.set.metricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.set.metricsAddr)
	if err != nil {
		return fmt.Errorf("host: metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.MetricsHandler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	s.srvMu.Lock()
	s.metricsAddr = ln.Addr()
	s.srvMu.Unlock()
	s.bgWG.Add(2)
	go func() { defer s.bgWG.Done(); hs.Serve(ln) }()
	go func() {
		defer s.bgWG.Done()
		<-s.bg.Done()
		hs.Close()
	}()
	s.log.Info("metrics listening", "addr", ln.Addr().String())
	return nil
}

// admit asks the gate in force and counts its decision.
func (s *Server) admit(ctx context.Context, r *Request) (Caller, error) {
	c, err := s.current().gate.Admit(ctx, r)
	s.obs.trust.Decided(err == nil)
	return c, err
}

// countWS keeps agenthost_websocket_connections while a WebSocket
// upgrade's handler, which serves the connection, runs.
func (s *Server) countWS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			s.obs.ws.Inc()
			defer s.obs.ws.Dec()
		}
		h.ServeHTTP(w, r)
	})
}
