package relayserver

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agenthost/agenthost/internal/testutil"
)

// TestRequestIDs: every relay route accepts the caller's X-Request-Id (or
// makes one), returns it, puts it on its access log line, and serves the
// request in a server span named by its route, in the caller's trace.
// Before, the relay had no request id, no access log and no span.
func TestRequestIDs(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); tp.Shutdown(context.Background()) })

	logs := &testutil.Buffer{}
	s := startRelay(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, c := range []struct {
		name, path, id, route string
		status                int
	}{
		{"search", "/api/agents?q=x", "caller-7", "GET /api/agents", 200},
		{"lookup", "/api/agents/0xnotanaddress", "", "GET /api/agents/{address}", 400},
		{"unknown", "/nope", "bad id with spaces", "/", 404},
		{"websocket without upgrade", "/ws/input", "caller-ws", "GET /ws/input", 426},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http"+strings.TrimPrefix(s.URL(), "ws")+c.path, nil)
			if c.id != "" {
				req.Header.Set("X-Request-Id", c.id)
			}
			req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.Header.Get("X-Request-Id")
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d", resp.StatusCode, c.status)
			}
			switch {
			case c.id != "" && !strings.Contains(c.id, " ") && got != c.id:
				t.Errorf("X-Request-Id %q, sent %q", got, c.id)
			case (c.id == "" || strings.Contains(c.id, " ")) && !strings.HasPrefix(got, "req_"):
				t.Errorf("X-Request-Id %q: want a fresh req_ id for %q", got, c.id)
			}
			line := ""
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "msg=request") && strings.Contains(l, "request_id="+got) {
					line = l
				}
			}
			if line == "" || !strings.Contains(line, fmt.Sprintf("status=%d", c.status)) {
				t.Fatalf("no access log line with request_id=%s:\n%s", got, logs.String())
			}
			var span *tracetest.SpanStub
			for _, sp := range exp.GetSpans() {
				for _, a := range sp.Attributes {
					if a.Key == "agenthost.request_id" && a.Value.AsString() == got {
						sp := sp
						span = &sp
					}
				}
			}
			if span == nil {
				t.Fatalf("no span with request id %s", got)
			}
			if want := "GET " + strings.TrimPrefix(c.route, "GET "); c.route != "/" && span.Name != want {
				t.Errorf("span %q, want %q", span.Name, want)
			}
			if span.SpanContext.TraceID().String() != traceID {
				t.Errorf("span in trace %s, want the caller's %s", span.SpanContext.TraceID(), traceID)
			}
		})
	}
}
