package coderuntime

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agenthost/agenthost/internal/obs/obstest"
)

// TestRuntimeMetrics: /metrics answers only with the control token, passes
// promlint and promtool, and has counted a turn with a tool call (runs,
// model calls by provider and model, tool calls by tool and outcome,
// control API requests by route pattern).
func TestRuntimeMetrics(t *testing.T) {
	rg := newRig(t, nil)
	rg.send(t, "", "please use glob to list files")
	rg.waitIdle(t)

	resp, err := http.Get(rg.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics without the control token: %s, want 401", resp.Status)
	}
	fams := obstest.Check(t, obstest.ScrapeURL(t, rg.srv.URL+"/metrics", "Authorization", "Bearer "+testToken))
	for _, tc := range []struct {
		name   string
		labels map[string]string
	}{
		{"agenthost_runs_started_total", nil},
		{"agenthost_runs_ended_total", map[string]string{"status": "done"}},
		{"agenthost_llm_calls_total", map[string]string{"provider": "offline", "model": "demo"}},
		{"agenthost_tool_calls_total", map[string]string{"tool": "glob"}},
		{"agenthost_http_request_duration_seconds", map[string]string{"route": "/control/messages", "method": "POST", "code": "200"}},
		{"agenthost_store_commits_total", nil},
		{"agenthost_store_writes_total", nil},
	} {
		if got := fams.Value(tc.name, tc.labels); got < 1 {
			t.Errorf("%s%v = %v, want at least 1", tc.name, tc.labels, got)
		}
	}
	if fams.Value("agenthost_run_queue_depth", nil) < 0 || fams.Value("go_goroutines", nil) < 1 {
		t.Error("engine gauges or Go collector missing")
	}
}

// TestRuntimeTraceParent: a message sent by a caller with a span in its
// context (the platform) reaches the runtime as a traceparent: the
// runtime's request span and the turn's span are in the caller's trace,
// the turn a child of the request that sent it.
func TestRuntimeTraceParent(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); tp.Shutdown(context.Background()) })

	rg := newRig(t, nil)
	ctx, span := tp.Tracer("test").Start(ctxT(t), "platform request")
	if _, err := rg.c.Send(ctx, "", "hello there"); err != nil {
		t.Fatal(err)
	}
	span.End()
	rg.waitIdle(t)
	want := span.SpanContext().TraceID()
	var reqSpan, turn *tracetest.SpanStub
	spans := exp.GetSpans()
	for i, s := range spans {
		switch s.Name {
		case "POST /control/messages":
			reqSpan = &spans[i]
		case "invoke_agent coding":
			turn = &spans[i]
		}
	}
	if reqSpan == nil || turn == nil {
		t.Fatalf("spans %v: want the request's and the turn's", spanNames(spans))
	}
	if reqSpan.SpanContext.TraceID() != want || turn.SpanContext.TraceID() != want {
		t.Fatalf("trace ids %s, %s; want the caller's %s", reqSpan.SpanContext.TraceID(), turn.SpanContext.TraceID(), want)
	}
	if reqSpan.Parent.SpanID() != span.SpanContext().SpanID() || turn.Parent.SpanID() != reqSpan.SpanContext.SpanID() {
		t.Fatalf("parents: request %s (want %s), turn %s (want %s)", reqSpan.Parent.SpanID(), span.SpanContext().SpanID(),
			turn.Parent.SpanID(), reqSpan.SpanContext.SpanID())
	}
}

func spanNames(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}
