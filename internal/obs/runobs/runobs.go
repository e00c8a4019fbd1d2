// Package runobs observes a session engine (internal/engine) for
// internal/obs: the metrics of runs, model calls and tool calls, and their
// spans with the OpenTelemetry GenAI attributes. It is apart from obs so
// that servers without an engine (the relay) do not link one.
package runobs

import (
	"context"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/engine"
	"github.com/agenthost/agenthost/internal/obs"
	"github.com/agenthost/agenthost/internal/store"
)

// The gen_ai.* attributes of the OpenTelemetry GenAI semantic
// conventions that the spans carry.
const (
	attrOperation    = attribute.Key("gen_ai.operation.name")
	attrProvider     = attribute.Key("gen_ai.provider.name")
	attrSystem       = attribute.Key("gen_ai.system") // the older name of the provider, still read by most backends
	attrRequestModel = attribute.Key("gen_ai.request.model")
	attrInputTokens  = attribute.Key("gen_ai.usage.input_tokens")
	attrOutputTokens = attribute.Key("gen_ai.usage.output_tokens")
	attrCacheRead    = attribute.Key("gen_ai.usage.cache_read.input_tokens")
	attrCacheWrite   = attribute.Key("gen_ai.usage.cache_creation.input_tokens")
	attrConversation = attribute.Key("gen_ai.conversation.id")
	attrToolName     = attribute.Key("gen_ai.tool.name")
	attrToolCallID   = attribute.Key("gen_ai.tool.call.id")
	attrAgentName    = attribute.Key("gen_ai.agent.name")
)

// Runs observes one session engine: the metrics of its runs, model calls
// and tool calls, and their spans (a run's span is the child of the
// request that started it; its model and tool calls are its children).
// Wrap the engine's journal with Journal, start each run's span from the
// engine's TurnContext with StartTurn, and register the engine's gauges
// with Engine.
type Runs struct {
	agentName func() string

	runsStarted   prometheus.Counter
	runsEnded     *prometheus.CounterVec
	runSeconds    *prometheus.HistogramVec
	llmCalls      *prometheus.CounterVec
	llmSeconds    *prometheus.HistogramVec
	llmTokens     *prometheus.CounterVec
	llmCost       *prometheus.CounterVec
	toolCalls     *prometheus.CounterVec
	toolSeconds   *prometheus.HistogramVec
	reg           prometheus.Registerer
	registerGauge sync.Once

	mu    sync.Mutex
	turns map[string]*turnSpan // session id → its running turn
}

type turnSpan struct {
	ctx  context.Context
	span trace.Span
}

// NewRuns registers the run, model and tool metrics in reg. agentName, if
// not nil, names the agent on the spans (gen_ai.agent.name).
func NewRuns(reg prometheus.Registerer, agentName func() string) *Runs {
	r := &Runs{
		agentName: agentName,
		reg:       reg,
		turns:     map[string]*turnSpan{},
		runsStarted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: obs.Namespace, Name: "runs_started_total",
			Help: "Runs (turns of a session) started."}),
		runsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: obs.Namespace, Name: "runs_ended_total",
			Help: "Runs ended, by status: done (finished), failed, or interrupted (aborted, shut down, or found cut short by a crash)."}, []string{"status"}),
		runSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: obs.Namespace, Name: "run_duration_seconds",
			Help: "How long runs took, by status.", Buckets: obs.RunBuckets}, []string{"status"}),
		llmCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: obs.Namespace, Name: "llm_calls_total",
			Help: "Model calls answered, by provider and model."}, []string{"provider", "model"}),
		llmSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: obs.Namespace, Name: "llm_call_duration_seconds",
			Help: "How long model calls took, by provider and model.", Buckets: obs.RunBuckets}, []string{"provider", "model"}),
		llmTokens: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: obs.Namespace, Name: "llm_tokens_total",
			Help: "Tokens of model calls, by provider, model and type: input (uncached), output, cache_read, cache_write."}, []string{"provider", "model", "type"}),
		llmCost: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: obs.Namespace, Name: "llm_cost_dollars_total",
			Help: "Estimated cost of model calls in US dollars (the model registry's prices), by provider and model."}, []string{"provider", "model"}),
		toolCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: obs.Namespace, Name: "tool_calls_total",
			Help: "Tool calls ended, by tool and outcome (completed or failed; a refused call is failed)."}, []string{"tool", "outcome"}),
		toolSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: obs.Namespace, Name: "tool_call_duration_seconds",
			Help: "How long tool calls took, by tool.", Buckets: obs.RunBuckets}, []string{"tool"}),
	}
	for _, s := range []store.Status{store.StatusDone, store.StatusFailed, store.StatusInterrupted} {
		r.runsEnded.WithLabelValues(string(s))
	}
	reg.MustRegister(r.runsStarted, r.runsEnded, r.runSeconds, r.llmCalls, r.llmSeconds, r.llmTokens, r.llmCost, r.toolCalls, r.toolSeconds)
	return r
}

// Engine registers the gauges read from e at scrape time: sessions in
// memory, busy workers, worker capacity and the Start callers waiting for
// a worker. Call it once.
func (r *Runs) Engine(e *engine.Engine) {
	r.registerGauge.Do(func() {
		gauge := func(name, help string, f func() float64) prometheus.Collector {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: obs.Namespace, Name: name, Help: help}, f)
		}
		r.reg.MustRegister(
			gauge("sessions_active", "Sessions held in memory: running, queued or followed by a client.", func() float64 { return float64(e.LiveSessions()) }),
			gauge("workers_busy", "Workers running a turn now.", func() float64 { return float64(e.ActiveRuns()) }),
			gauge("workers", "Workers: the most turns that run at once.", func() float64 { return float64(e.Workers()) }),
			gauge("run_queue_depth", "Requests waiting for a free worker.", func() float64 { return float64(e.Waiting()) }),
		)
	})
}

// splitModel splits "provider/model" (a model without provider is its
// own provider).
func splitModel(name string) (provider, model string) {
	if p, m, ok := strings.Cut(name, "/"); ok {
		return p, m
	}
	return name, name
}

// StartTurn starts the span of the turn t, a child of parent (the span of
// the request that sent its input; invalid: a new trace), and returns ctx
// carrying it, for the engine's TurnContext. The span ends with the turn.
func (r *Runs) StartTurn(ctx context.Context, t *engine.Turn, parent trace.SpanContext) context.Context {
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	name, agentName := "invoke_agent", ""
	if r.agentName != nil {
		agentName = r.agentName()
	}
	attrs := []attribute.KeyValue{attrOperation.String("invoke_agent"), attrConversation.String(t.SessionID)}
	if agentName != "" {
		name += " " + agentName
		attrs = append(attrs, attrAgentName.String(agentName))
	}
	ctx, span := obs.Tracer().Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	if !span.IsRecording() {
		return ctx
	}
	r.mu.Lock()
	if old := r.turns[t.SessionID]; old != nil {
		old.span.End()
	}
	r.turns[t.SessionID] = &turnSpan{ctx: ctx, span: span}
	r.mu.Unlock()
	return ctx
}

// turnCtx is the context of the session's running turn (nil when it is not
// traced).
func (r *Runs) turnCtx(session string) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ts := r.turns[session]; ts != nil {
		return ts.ctx
	}
	return nil
}

// Journal wraps j: every happening is observed, then spelled by j.
func (r *Runs) Journal(j engine.Journal) engine.Journal {
	return engine.JournalFunc(func(h engine.Happening) []store.Event {
		r.observe(h)
		return j.Events(h)
	})
}

func (r *Runs) observe(h engine.Happening) {
	switch h := h.(type) {
	case engine.TurnStarted:
		r.runsStarted.Inc()
	case engine.ModelResult:
		provider, model := splitModel(h.Model)
		r.llmCalls.WithLabelValues(provider, model).Inc()
		r.llmSeconds.WithLabelValues(provider, model).Observe(h.Duration.Seconds())
		for typ, n := range map[string]int64{"input": h.Usage.Input, "output": h.Usage.Output, "cache_read": h.Usage.CacheRead, "cache_write": h.Usage.CacheWrite} {
			r.llmTokens.WithLabelValues(provider, model, typ).Add(float64(n))
		}
		r.llmCost.WithLabelValues(provider, model).Add(h.Cost)
		if ctx := r.turnCtx(h.SessionID); ctx != nil {
			_, span := obs.Tracer().Start(ctx, "chat "+model, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(h.Time.Add(-h.Duration)),
				trace.WithAttributes(attrOperation.String("chat"), attrProvider.String(provider), attrSystem.String(provider),
					attrRequestModel.String(model), attrInputTokens.Int64(h.Usage.Input+h.Usage.CacheRead+h.Usage.CacheWrite),
					attrOutputTokens.Int64(h.Usage.Output), attrCacheRead.Int64(h.Usage.CacheRead), attrCacheWrite.Int64(h.Usage.CacheWrite),
					attrConversation.String(h.SessionID)))
			span.End(trace.WithTimestamp(h.Time))
		}
	case engine.ToolResult:
		o := h.Outcome
		outcome := string(o.Status)
		if outcome == "" {
			outcome = "completed"
		}
		r.toolCalls.WithLabelValues(o.Name, outcome).Inc()
		r.toolSeconds.WithLabelValues(o.Name).Observe(o.Duration.Seconds())
		if ctx := r.turnCtx(h.SessionID); ctx != nil {
			_, span := obs.Tracer().Start(ctx, "execute_tool "+o.Name, trace.WithTimestamp(h.Time.Add(-o.Duration)),
				trace.WithAttributes(attrOperation.String("execute_tool"), attrToolName.String(o.Name), attrToolCallID.String(o.CallID),
					attrConversation.String(h.SessionID)))
			if o.Status == agent.ToolFailed {
				msg := "failed"
				if o.Err != nil {
					msg = o.Err.Error()
				}
				span.SetStatus(codes.Error, msg)
			}
			span.End(trace.WithTimestamp(h.Time))
		}
	case engine.TurnEnded:
		out := h.Outcome
		status := string(out.Status)
		r.runsEnded.WithLabelValues(status).Inc()
		r.runSeconds.WithLabelValues(status).Observe(out.Duration.Seconds())
		r.mu.Lock()
		ts := r.turns[h.SessionID]
		delete(r.turns, h.SessionID)
		r.mu.Unlock()
		if ts != nil {
			ts.span.SetAttributes(attribute.String("agenthost.run.status", status), attribute.String("agenthost.run.result", string(out.Result)),
				attrInputTokens.Int64(out.Usage.Input+out.Usage.CacheRead+out.Usage.CacheWrite), attrOutputTokens.Int64(out.Usage.Output))
			if out.Status == store.StatusFailed {
				msg := "failed"
				if out.Err != nil {
					msg = out.Err.Error()
				}
				ts.span.SetStatus(codes.Error, msg)
			}
			ts.span.End(trace.WithTimestamp(h.Time))
		}
	}
}
