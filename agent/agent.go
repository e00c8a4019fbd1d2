// Package agent runs an LLM with tools and a system prompt.
//
// Importing agent links the offline model only (DefaultModel, no network,
// no key). To use "openai/…" (and the OpenAI-compatible "ollama/…",
// "vllm/…", "openrouter/…") or "anthropic/…" models, import their
// providers; New fails with llm.ErrProviderNotLinked otherwise:
//
//	import _ "github.com/agenthost/agenthost/llm/openai"
//	import _ "github.com/agenthost/agenthost/llm/anthropic"
//
// An Agent is immutable once built and safe for concurrent runs, but hosts
// build a fresh one per request from a factory so that tools with state
// (open files, browsers) are never shared. A run reads and extends a
// Conversation, a plain value that serialises to JSON, and yields a stream
// of Events ending with a Result.
package agent

import (
	"fmt"
	"slices"

	"github.com/agenthost/agenthost/llm"
	// The offline model, DefaultModel, is always there. The SDK-backed
	// providers register when the program imports them (llm/openai,
	// llm/anthropic), so importing agent links neither SDK.
	_ "github.com/agenthost/agenthost/llm/offline"
)

// DefaultModel runs with no network and no key.
const DefaultModel = "offline/demo"

// DefaultMaxIterations bounds the model calls of one run.
const DefaultMaxIterations = 100

// Agent is an LLM, a system prompt and tools.
type Agent struct {
	name          string
	systemPrompt  string
	model         llm.Model
	modelName     string
	tools         []Tool
	byName        map[string]Tool
	maxIterations int
	maxTokens     int
	registry      *llm.Registry
	// toolsets are listed into tools by New and Derive, after the options.
	toolsets []Toolset
}

// Option configures an Agent.
type Option func(*Agent) error

// WithSystemPrompt sets the system prompt.
func WithSystemPrompt(p string) Option {
	return func(a *Agent) error { a.systemPrompt = p; return nil }
}

// WithModel chooses the model by name, "provider/model".
func WithModel(name string) Option {
	return func(a *Agent) error { a.modelName = name; return nil }
}

// WithLLM uses an already opened model.
func WithLLM(m llm.Model) Option {
	return func(a *Agent) error { a.model = m; return nil }
}

// WithTools adds tools.
func WithTools(tools ...Tool) Option {
	return func(a *Agent) error { a.tools = append(a.tools, tools...); return nil }
}

// WithMaxIterations bounds the model calls per run.
func WithMaxIterations(n int) Option {
	return func(a *Agent) error {
		if n < 1 {
			return fmt.Errorf("max iterations must be at least 1, got %d", n)
		}
		a.maxIterations = n
		return nil
	}
}

// WithMaxTokens bounds each model response.
func WithMaxTokens(n int) Option {
	return func(a *Agent) error { a.maxTokens = n; return nil }
}

// WithRegistry resolves the model and prices usage with r instead of
// llm.Default.
func WithRegistry(r *llm.Registry) Option {
	return func(a *Agent) error { a.registry = r; return nil }
}

// New builds an agent. With no model option it uses DefaultModel.
func New(name string, opts ...Option) (*Agent, error) {
	a := &Agent{name: name, maxIterations: DefaultMaxIterations, registry: llm.Default}
	for _, o := range opts {
		if err := o(a); err != nil {
			return nil, fmt.Errorf("agent %s: %w", name, err)
		}
	}
	if a.model == nil {
		if a.modelName == "" {
			a.modelName = DefaultModel
		}
		m, err := a.registry.Open(a.modelName)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", name, err)
		}
		a.model = m
	}
	if err := a.addToolsets(); err != nil {
		return nil, fmt.Errorf("agent %s: %w", name, err)
	}
	a.byName = make(map[string]Tool, len(a.tools))
	for _, t := range a.tools {
		n := t.Spec().Name
		if _, dup := a.byName[n]; dup {
			return nil, fmt.Errorf("agent %s: two tools named %q", name, n)
		}
		a.byName[n] = t
	}
	return a, nil
}

// Name returns the agent's name.
func (a *Agent) Name() string { return a.name }

// SystemPrompt returns the system prompt.
func (a *Agent) SystemPrompt() string { return a.systemPrompt }

// Model returns the model.
func (a *Agent) Model() llm.Model { return a.model }

// Registry returns the registry used for prices.
func (a *Agent) Registry() *llm.Registry { return a.registry }

// Tools returns the agent's tools.
func (a *Agent) Tools() []Tool { return slices.Clone(a.tools) }

// ToolNames returns the names of the agent's tools, in order.
func (a *Agent) ToolNames() []string {
	names := make([]string, len(a.tools))
	for i, t := range a.tools {
		names[i] = t.Spec().Name
	}
	return names
}

// MaxIterations returns the bound on model calls per run.
func (a *Agent) MaxIterations() int { return a.maxIterations }

// Derive returns a copy of a with opts applied over its settings; a is
// unchanged. Hosts use it to apply a configured model or system prompt to
// the agents their factory builds. Changing the model by name reopens it.
func (a *Agent) Derive(opts ...Option) (*Agent, error) {
	c := *a
	c.tools = slices.Clone(a.tools)
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, fmt.Errorf("agent %s: %w", a.name, err)
		}
	}
	if c.modelName != a.modelName && c.model == a.model {
		m, err := c.registry.Open(c.modelName)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", a.name, err)
		}
		c.model = m
	}
	if err := c.addToolsets(); err != nil {
		return nil, fmt.Errorf("agent %s: %w", a.name, err)
	}
	c.byName = make(map[string]Tool, len(c.tools))
	for _, t := range c.tools {
		n := t.Spec().Name
		if _, dup := c.byName[n]; dup {
			return nil, fmt.Errorf("agent %s: two tools named %q", a.name, n)
		}
		c.byName[n] = t
	}
	return &c, nil
}
