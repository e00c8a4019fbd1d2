package platform_test

import (
	"github.com/agenthost/agenthost/internal/testutil"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agenthost/agenthost/internal/obs/obstest"
	"github.com/agenthost/agenthost/internal/platform/agents"
)

// TestPlatformMetrics: an agent whose runtime keeps crashing is
// provisioned, restarted and ends ERROR; the platform's metrics (passing
// promlint and promtool) counted the provisioning, the crashes and the
// restart, show the agent by status, and time the API requests by route
// pattern — never by a path with an id in it.
func TestPlatformMetrics(t *testing.T) {
	r := newRig(t, false, agents.Config{Restart: agents.RestartPolicy{Attempts: 1, Backoff: 20 * time.Millisecond}},
		"-exit-code", "7", "-exit-after", "1500ms")
	c := r.env.Client(r.env.Token(t, "acme"))
	id := c.Do(t, "POST", "/api/v1/agents", map[string]any{"name": "crashy"}).Want(t, 200)["agentId"].(string)
	testutil.Eventually(t, 30*time.Second, "ERROR after repeated crashes", func() bool { return status(t, c, id)["status"] == "ERROR" })

	fams := obstest.Check(t, obstest.Scrape(t, r.env.Server.MetricsHandler()))
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"agenthost_platform_provision_duration_seconds", map[string]string{"outcome": "ok"}, 1},
		{"agenthost_platform_runtime_crashes_total", nil, 2},
		{"agenthost_platform_runtime_restarts_total", map[string]string{"outcome": "ok"}, 1},
		{"agenthost_platform_agents", map[string]string{"status": "error"}, 1},
		{"agenthost_platform_agents", map[string]string{"status": "running"}, 0},
		{"agenthost_http_request_duration_seconds", map[string]string{"route": "/api/v1/agents", "method": "POST", "code": "200"}, 1},
		{"agenthost_http_request_duration_seconds", map[string]string{"route": "/api/v1/agents/{agentId}", "method": "GET"}, 1},
	} {
		if got := fams.Value(tc.name, tc.labels); got != tc.want && !(tc.want > 0 && got >= tc.want) {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if text := obstest.Scrape(t, r.env.Server.MetricsHandler()); strings.Contains(text, id) {
		t.Errorf("an agent id reached a label")
	}
	if fams.Value("go_goroutines", nil) < 1 || fams.Value("process_open_fds", nil) < 1 {
		t.Error("no Go or process collector")
	}
}

// TestPlatformRequestIDs: the platform keeps a caller's valid
// X-Request-Id (else makes one), returns it, and logs the request with
// it, its route pattern and its organisation.
func TestPlatformRequestIDs(t *testing.T) {
	r := newRig(t, false, agents.Config{})
	tok := r.env.Token(t, "acme")
	for _, tc := range []struct{ sent, want string }{
		{"plat-req-1", "plat-req-1"},
		{"bad id with spaces", ""},
	} {
		req, _ := http.NewRequest("GET", r.env.URL+"/api/v1/agents", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Request-Id", tc.sent)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Get("X-Request-Id")
		if tc.want != "" && got != tc.want || tc.want == "" && (got == tc.sent || !strings.HasPrefix(got, "req_")) {
			t.Fatalf("sent %q, got X-Request-Id %q", tc.sent, got)
		}
		var line string
		for _, l := range strings.Split(r.env.Logs.String(), "\n") {
			if strings.Contains(l, "request_id="+got) && strings.Contains(l, "msg=request") {
				line = l
			}
		}
		if !strings.Contains(line, "route=/api/v1/agents") || !strings.Contains(line, "status=200") || !strings.Contains(line, "org=") {
			t.Fatalf("access log line for %s: %q\n%s", got, line, r.env.Logs.String())
		}
	}
}
