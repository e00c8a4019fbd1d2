package platform

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agenthost/agenthost/internal/obs"
	"github.com/agenthost/agenthost/internal/platform/store"
)

// metrics are the platform's: the HTTP middleware's, the agents of this
// node by status (read from the store at scrape time), how long
// provisioning took, and the runtimes' crashes and restarts.
type metrics struct {
	reg        *prometheus.Registry
	http       *obs.HTTPMetrics
	provision  *prometheus.HistogramVec
	crashes    prometheus.Counter
	restarts   *prometheus.CounterVec
	agentsDesc *prometheus.Desc
	st         store.Store
	node       func() string
}

var provisionBuckets = prometheus.ExponentialBucketsRange(0.05, 120, 12)

func newMetrics(st store.Store, node func() string) *metrics {
	reg := obs.NewRegistry()
	m := &metrics{reg: reg, http: obs.NewHTTPMetrics(reg), st: st, node: node,
		provision: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: obs.Namespace, Subsystem: "platform", Name: "provision_duration_seconds",
			Help:    "Time from a new agent's runtime start to its first healthy answer, by outcome (ok or failed).",
			Buckets: provisionBuckets}, []string{"outcome"}),
		crashes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: obs.Namespace, Subsystem: "platform", Name: "runtime_crashes_total",
			Help: "Runtimes that exited without being asked to."}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: obs.Namespace, Subsystem: "platform", Name: "runtime_restarts_total",
			Help: "Restarts of crashed runtimes, by outcome (ok or failed)."}, []string{"outcome"}),
		agentsDesc: prometheus.NewDesc("agenthost_platform_agents", "Agents this node runs, by status (read from the store at scrape time).", []string{"status"}, nil),
	}
	for _, o := range []string{"ok", "failed"} {
		m.provision.WithLabelValues(o)
		m.restarts.WithLabelValues(o)
	}
	reg.MustRegister(m.provision, m.crashes, m.restarts, m)
	return m
}

func outcome(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}

// Provisioned implements agents.Observer.
func (m *metrics) Provisioned(d time.Duration, err error) {
	m.provision.WithLabelValues(outcome(err)).Observe(d.Seconds())
}

// Crashed implements agents.Observer.
func (m *metrics) Crashed() { m.crashes.Inc() }

// Restarted implements agents.Observer.
func (m *metrics) Restarted(err error) { m.restarts.WithLabelValues(outcome(err)).Inc() }

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.agentsDesc }

// Collect implements prometheus.Collector: this node's agents by status,
// every status present (0 when none). A store that does not answer within
// 2 s leaves the family out of that scrape.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	list, err := m.st.NodeAgents(ctx, m.node())
	if err != nil {
		return
	}
	counts := map[store.AgentStatus]int{store.StatusProvisioning: 0, store.StatusRunning: 0, store.StatusStopped: 0, store.StatusError: 0}
	for _, a := range list {
		counts[a.Status]++
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(m.agentsDesc, prometheus.GaugeValue, float64(n), strings.ToLower(string(s)))
	}
}

// MetricsHandler serves the platform's Prometheus metrics. The platform
// does not mount it on its API listener, which organisations reach:
// `agenthost platform --metrics-addr` serves it on an operators' address.
func (s *Server) MetricsHandler() http.Handler { return obs.MetricsHandler(s.metrics.reg) }
