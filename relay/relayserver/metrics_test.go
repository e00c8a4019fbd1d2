package relayserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agenthost/agenthost/relay"
)

// TestMetricsFormat parses /metrics as Prometheus does and lints it with
// promlint, the checks of `promtool check metrics`; after one relayed
// round trip the histograms have counted it, and the Go and process
// collectors are there.
func TestMetricsFormat(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, nil)
	id := identity(t, 1)
	runAnnouncer(t, s.URL(), id, relay.AnnounceInfo{}, echoHandler)
	cl := newClient(t, s)
	cl.send(map[string]any{"type": "INPUT", "to": id.Address(), "prompt": "count me"})
	cl.read()
	httpGet(t, httpURL(s)+"/health")

	text := metricsText(t, s)
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v\n%s", err, text)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}

	// value finds the sample of family name whose labels include want.
	value := func(name string, want map[string]string) *dto.Metric {
		t.Helper()
		f := families[name]
		if f == nil {
			t.Fatalf("no metric %s", name)
		}
	next:
		for _, m := range f.Metric {
			got := map[string]string{}
			for _, l := range m.Label {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue next
				}
			}
			return m
		}
		t.Fatalf("no sample of %s with %v", name, want)
		return nil
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		typ    dto.MetricType
	}{
		{"relay_connections_total", map[string]string{"kind": "agent"}, dto.MetricType_COUNTER},
		{"relay_frames_dropped_total", map[string]string{"reason": "agent_queue_full"}, dto.MetricType_COUNTER},
		{"relay_announce_failures_total", map[string]string{"reason": "bad_signature"}, dto.MetricType_COUNTER},
		{"relay_announces_total", nil, dto.MetricType_COUNTER},
		{"relay_agents_online", nil, dto.MetricType_GAUGE},
		{"relay_uptime_seconds", nil, dto.MetricType_GAUGE},
		{"relay_forward_duration_seconds", map[string]string{"direction": "to_agent"}, dto.MetricType_HISTOGRAM},
		{"relay_forward_duration_seconds", map[string]string{"direction": "to_client"}, dto.MetricType_HISTOGRAM},
		{"relay_announce_duration_seconds", nil, dto.MetricType_HISTOGRAM},
		{"relay_http_request_duration_seconds", map[string]string{"route": "health", "code": "200"}, dto.MetricType_HISTOGRAM},
		{"relay_connection_duration_seconds", map[string]string{"kind": "client"}, dto.MetricType_HISTOGRAM},
		{"go_goroutines", nil, dto.MetricType_GAUGE},
		{"go_memstats_heap_alloc_bytes", nil, dto.MetricType_GAUGE},
		{"process_cpu_seconds_total", nil, dto.MetricType_COUNTER},
		{"process_resident_memory_bytes", nil, dto.MetricType_GAUGE},
	} {
		value(tc.name, tc.labels)
		if got := families[tc.name].GetType(); got != tc.typ {
			t.Errorf("%s is a %s, want %s", tc.name, got, tc.typ)
		}
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"relay_agents_online", nil, 1},
		{"relay_client_sessions", nil, 1},
		{"relay_frames_forwarded_total", map[string]string{"direction": "to_client"}, 1},
	} {
		m := value(tc.name, tc.labels)
		got := m.GetGauge().GetValue() + m.GetCounter().GetValue()
		if got != tc.want {
			t.Errorf("%s%v = %g, want %g", tc.name, tc.labels, got, tc.want)
		}
	}
	// One frame each way was timed, and the agent's one ANNOUNCE.
	for _, dir := range []string{"to_agent", "to_client"} {
		if n := value("relay_forward_duration_seconds", map[string]string{"direction": dir}).GetHistogram().GetSampleCount(); n != 1 {
			t.Errorf("relay_forward_duration_seconds{direction=%q} counted %d frames, want 1", dir, n)
		}
	}
	if n := value("relay_announce_duration_seconds", nil).GetHistogram().GetSampleCount(); n < 1 {
		t.Errorf("relay_announce_duration_seconds counted %d ANNOUNCEs", n)
	}
}

// TestReady: /ready is 200 while the relay serves and 503 once its
// shutdown has begun.
func TestReady(t *testing.T) {
	checkGoroutines(t)
	s := startRelay(t, nil)
	if code, body := httpGet(t, httpURL(s)+"/ready"); code != http.StatusOK || !strings.Contains(string(body), `"ready"`) {
		t.Fatalf("/ready = %d %s", code, body)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/ready", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "shutting_down") {
		t.Fatalf("/ready after shutdown = %d %s", rec.Code, rec.Body)
	}
}
