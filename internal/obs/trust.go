package obs

import "github.com/prometheus/client_golang/prometheus"

// Outcome labels of trust decisions.
const (
	TrustAllowed = "allowed"
	TrustDenied  = "denied"
)

// TrustMetrics counts a gate's decisions.
type TrustMetrics struct{ decisions *prometheus.CounterVec }

// NewTrustMetrics registers agenthost_trust_decisions_total{outcome} in
// reg, allowed and denied from the start.
func NewTrustMetrics(reg prometheus.Registerer) *TrustMetrics {
	t := &TrustMetrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "trust_decisions_total",
		Help: "Trust gate decisions on callers, by outcome: allowed or denied."}, []string{"outcome"})}
	t.decisions.WithLabelValues(TrustAllowed)
	t.decisions.WithLabelValues(TrustDenied)
	reg.MustRegister(t.decisions)
	return t
}

// Decided counts one decision.
func (t *TrustMetrics) Decided(allowed bool) {
	if allowed {
		t.decisions.WithLabelValues(TrustAllowed).Inc()
	} else {
		t.decisions.WithLabelValues(TrustDenied).Inc()
	}
}
