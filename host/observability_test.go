package host_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agenthost/agenthost/host"
	"github.com/agenthost/agenthost/internal/fakellm"
	"github.com/agenthost/agenthost/internal/obs/obstest"
	"github.com/agenthost/agenthost/internal/testutil"
)

// TestMetrics runs a turn that calls a tool, holds a WebSocket open and
// is refused once by the gate, then checks the host's /metrics: it passes
// promlint and `promtool check metrics`, and each family counted what
// happened (request histogram by route pattern and status, runs, model
// calls by provider and model with tokens, tool calls by tool and
// outcome, trust decisions, WebSocket connections, engine gauges, Go and
// process collectors).
func TestMetrics(t *testing.T) {
	h := startHost(t, "offline/demo", host.WithTrust("strict"))
	code, m := post(t, h, map[string]any{"prompt": "please use reverse on hello"})
	wantStatus(t, code, http.StatusUnauthorized, m) // strict: refused, counted as denied

	h2 := startHost(t, "offline/demo")
	code, m = post(t, h2, map[string]any{"prompt": "please use reverse on hello"})
	wantStatus(t, code, http.StatusOK, m)
	do(t, "GET", h2.URL+"/sessions/"+m["session_id"].(string), nil)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h2.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()

	fams := obstest.Check(t, obstest.Scrape(t, h2.MetricsHandler()))
	for _, tc := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"agenthost_http_request_duration_seconds", map[string]string{"route": "/input", "method": "POST", "code": "200"}, 1},
		{"agenthost_http_request_duration_seconds", map[string]string{"route": "/sessions/{id}", "method": "GET", "code": "200"}, 1},
		{"agenthost_http_requests_in_flight", nil, 1}, // the WebSocket
		{"agenthost_websocket_connections", nil, 1},
		{"agenthost_runs_started_total", nil, 1},
		{"agenthost_runs_ended_total", map[string]string{"status": "done"}, 1},
		{"agenthost_runs_ended_total", map[string]string{"status": "interrupted"}, 0},
		{"agenthost_run_duration_seconds", map[string]string{"status": "done"}, 1},
		{"agenthost_llm_calls_total", map[string]string{"provider": "offline", "model": "demo"}, 2},
		{"agenthost_llm_call_duration_seconds", map[string]string{"provider": "offline", "model": "demo"}, 2},
		{"agenthost_llm_tokens_total", map[string]string{"provider": "offline", "model": "demo", "type": "input"}, 1},
		{"agenthost_llm_tokens_total", map[string]string{"provider": "offline", "model": "demo", "type": "output"}, 1},
		{"agenthost_llm_tokens_total", map[string]string{"provider": "offline", "model": "demo", "type": "cache_read"}, 0},
		{"agenthost_llm_cost_dollars_total", map[string]string{"provider": "offline", "model": "demo"}, 0},
		{"agenthost_tool_calls_total", map[string]string{"tool": "reverse", "outcome": "completed"}, 1},
		{"agenthost_tool_call_duration_seconds", map[string]string{"tool": "reverse"}, 1},
		{"agenthost_trust_decisions_total", map[string]string{"outcome": "allowed"}, 2},
		{"agenthost_trust_decisions_total", map[string]string{"outcome": "denied"}, 0},
		{"agenthost_store_commits_total", nil, 2}, // a run's start and its end, at least
		{"agenthost_store_writes_total", nil, 2},
		{"agenthost_sessions_active", nil, 0},
		{"agenthost_workers_busy", nil, 0},
		{"agenthost_workers", nil, 1},
		{"agenthost_run_queue_depth", nil, 0},
		{"go_goroutines", nil, 1},
		{"process_open_fds", nil, 1},
	} {
		if got := fams.Value(tc.name, tc.labels); got < tc.min {
			t.Errorf("%s%v = %v, want at least %v", tc.name, tc.labels, got, tc.min)
		}
	}
	denied := obstest.Check(t, obstest.Scrape(t, h.MetricsHandler()))
	if got := denied.Value("agenthost_trust_decisions_total", map[string]string{"outcome": "denied"}); got < 1 {
		t.Errorf("strict host: denied decisions = %v, want 1", got)
	}
	// Route labels are patterns, never a caller's path.
	do(t, "GET", h2.URL+"/sessions/some-id-nobody-has", nil)
	do(t, "GET", h2.URL+"/no/such/path/x1", nil)
	text := obstest.Scrape(t, h2.MetricsHandler())
	if strings.Contains(text, "some-id-nobody-has") || strings.Contains(text, "x1") {
		t.Errorf("a caller's path reached a label:\n%s", text)
	}
}

// TestMetricsListener: the agent's own listener, which every caller
// reaches, does not serve /metrics; WithMetricsAddr serves them on a
// listener of their own, closed by Shutdown.
func TestMetricsListener(t *testing.T) {
	h := startHost(t, "offline/demo", host.WithMetricsAddr("127.0.0.1:0"))
	code, m, _ := do(t, "GET", h.URL+"/metrics", nil)
	wantStatus(t, code, http.StatusNotFound, m)
	addr := h.MetricsAddr()
	if addr == nil {
		t.Fatal("no metrics listener")
	}
	fams := obstest.Check(t, obstest.ScrapeURL(t, "http://"+addr.String()+"/metrics"))
	if fams.Value("agenthost_http_requests_in_flight", nil) < 0 {
		t.Fatal("the metrics listener does not serve the host's metrics")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.Shutdown(ctx)
	if resp, err := http.Get("http://" + addr.String() + "/metrics"); err == nil {
		resp.Body.Close()
		t.Fatal("the metrics listener outlived Shutdown")
	}
}

// syncBuffer is a log destination tests read while servers write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRequestIDs: a valid X-Request-Id is kept, an unsafe or overlong one
// replaced by a fresh id; either is returned in the response and is on
// the request's access log line and its error line; a 503 while shutting
// down is not logged at ERROR.
func TestRequestIDs(t *testing.T) {
	var logs syncBuffer
	h := startHost(t, "offline/demo", host.WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	for _, tc := range []struct {
		name, sent string
		kept       bool
	}{
		{"kept", "client-id_1.2:3", true},
		{"none", "", false},
		{"tab", "evil\tlevel=ERROR", false},
		{"non-ascii", "caf\u00e9", false},
		{"space", "a b", false},
		{"quote", `a"b`, false},
		{"too long", strings.Repeat("a", 129), false},
		{"longest", strings.Repeat("b", 128), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.sent != "" {
				hdr = []string{"X-Request-Id", tc.sent}
			}
			_, _, got := do(t, "GET", h.URL+"/sessions/nope-"+strings.ReplaceAll(tc.name, " ", "-"), nil, hdr...)
			id := got.Get("X-Request-Id")
			if tc.kept && id != tc.sent {
				t.Fatalf("X-Request-Id %q, want the caller's %q", id, tc.sent)
			}
			if !tc.kept && (id == tc.sent || !strings.HasPrefix(id, "req_")) {
				t.Fatalf("X-Request-Id %q: want a fresh req_ id instead of %q", id, tc.sent)
			}
			if !strings.Contains(logs.String(), `"request_id":"`+id+`"`) {
				t.Fatalf("no log line carries request_id %q:\n%s", id, logs.String())
			}
		})
	}
	// The access log line and the handler's own line of one request.
	_, _, got := do(t, "GET", h.URL+"/sessions/missing-one", nil, "X-Request-Id", "trace-me-1")
	if got.Get("X-Request-Id") != "trace-me-1" {
		t.Fatalf("id %q", got.Get("X-Request-Id"))
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"request_id":"trace-me-1"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) < 2 || !strings.Contains(strings.Join(lines, "\n"), `"msg":"request"`) || !strings.Contains(strings.Join(lines, "\n"), `"route":"/sessions/{id}"`) {
		t.Fatalf("want the access line and the refusal line with the id, got:\n%s", strings.Join(lines, "\n"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.Shutdown(ctx)
	do(t, "GET", h.URL+"/health", nil)
	code, m := post(t, h, map[string]any{"prompt": "hi"})
	wantStatus(t, code, http.StatusServiceUnavailable, m)
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Fatalf("an ERROR line without an error:\n%s", logs.String())
	}
}

// TestTraces: with a tracer provider installed (the in-memory exporter),
// a request carrying a traceparent gets a server span in that trace; the
// run it starts is a child span (gen_ai.operation.name invoke_agent), and
// the model call ("chat", with gen_ai.* provider, model and token usage)
// and the tool call ("execute_tool reverse") are the run's children.
func TestTraces(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); tp.Shutdown(context.Background()) })

	h := startHost(t, "offline/demo")
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	code, m, _ := do(t, "POST", h.URL+"/input", map[string]any{"prompt": "please use reverse on hello"},
		"traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	wantStatus(t, code, http.StatusOK, m)

	spans := exp.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
		if s.SpanContext.TraceID().String() != traceID {
			t.Errorf("span %q in trace %s, want the caller's %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
	}
	req, ok := byName["POST /input"]
	if !ok {
		t.Fatalf("no request span among %v", names(spans))
	}
	if req.SpanKind != trace.SpanKindServer || req.Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("request span kind %v parent %v", req.SpanKind, req.Parent.SpanID())
	}
	run, ok := byName["invoke_agent translator"]
	if !ok {
		t.Fatalf("no run span among %v", names(spans))
	}
	if run.Parent.SpanID() != req.SpanContext.SpanID() {
		t.Errorf("run span's parent %v, want the request span %v", run.Parent.SpanID(), req.SpanContext.SpanID())
	}
	chat, ok := byName["chat demo"]
	if !ok {
		t.Fatalf("no model span among %v", names(spans))
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, a := range chat.Attributes {
		attrs[a.Key] = a.Value
	}
	if attrs["gen_ai.operation.name"].AsString() != "chat" || attrs["gen_ai.provider.name"].AsString() != "offline" ||
		attrs["gen_ai.request.model"].AsString() != "demo" || attrs["gen_ai.usage.input_tokens"].AsInt64() <= 0 ||
		attrs["gen_ai.usage.output_tokens"].AsInt64() <= 0 {
		t.Errorf("model span attributes %v", chat.Attributes)
	}
	tool, ok := byName["execute_tool reverse"]
	if !ok {
		t.Fatalf("no tool span among %v", names(spans))
	}
	for _, s := range []tracetest.SpanStub{chat, tool} {
		if s.Parent.SpanID() != run.SpanContext.SpanID() {
			t.Errorf("%s's parent %v, want the run %v", s.Name, s.Parent.SpanID(), run.SpanContext.SpanID())
		}
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// TestTurnLogsCarryRequestID: the log lines a run writes after the
// request that started it (here "turn failed", the model refusing the
// call) carry that request's id, so an operator finds a failed turn from
// the id a client reports.
func TestTurnLogsCarryRequestID(t *testing.T) {
	srv := fakellm.NewOpenAI(t)
	t.Setenv("OPENAI_BASE_URL", srv.URL())
	t.Setenv("OPENAI_API_KEY", "test-key")
	srv.Handle(func(fakellm.Request) fakellm.Reply {
		return fakellm.Reply{Status: http.StatusBadRequest, Error: "this model refuses"}
	})
	var logs testutil.Buffer
	h := startHost(t, "openai/gpt-4o-mini", host.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	do(t, "POST", h.URL+"/input", map[string]any{"prompt": "hi"}, "X-Request-Id", "turn-req-1")
	// The line comes after the turn's end is announced (and answered).
	if err := logs.WaitFor(testutil.Context(t), `"msg":"turn failed"`); err != nil {
		t.Fatalf("%v:\n%s", err, logs.String())
	}
	var failed string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"msg":"turn failed"`) {
			failed = l
		}
	}
	if failed == "" {
		t.Fatalf("no \"turn failed\" line:\n%s", logs.String())
	}
	if !strings.Contains(failed, `"request_id":"turn-req-1"`) {
		t.Fatalf("the turn's log line lacks the request id of the request that started it:\n%s", failed)
	}
}
