// Package openai is the OpenAI-compatible Chat Completions provider.
//
// It speaks the Chat Completions wire protocol through the official SDK
// (github.com/openai/openai-go), so besides OpenAI itself it serves every
// compatible server: OpenRouter, Ollama, vLLM, llama.cpp server, LM Studio.
// Importing the package registers the "openai" provider kind with llm; the
// built-in providers of that kind are then opened by name:
//
//	m, err := llm.Open("openai/gpt-4o-mini")  // OPENAI_API_KEY, OPENAI_BASE_URL
//	m, err := llm.Open("ollama/llama3.2")      // no key, OLLAMA_BASE_URL
//
// Responses are streamed (with stream_options.include_usage), text is
// reported as it arrives, parallel tool calls are assembled from deltas
// split across chunks, and usage includes cached and reasoning tokens.
// Failed calls are retried on 429, 5xx and connection errors, honouring
// Retry-After; a call that fails for good returns an *llm.APIError.
package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/shared"

	"github.com/agenthost/agenthost/llm"
)

func init() {
	llm.RegisterKind("openai", func(name, model string, rp llm.ResolvedProvider) (llm.Model, error) {
		retries := rp.MaxRetries
		if retries == 0 {
			retries = -1 // the registry already applied its default
		}
		return New(Config{
			Name: name, Provider: rp.Provider, Model: model, BaseURL: rp.BaseURL, APIKey: rp.APIKey,
			KeyOptional: true, // the registry checked the key
			MaxRetries:  retries,
		})
	})
}

// DefaultBaseURL is OpenAI's API.
const DefaultBaseURL = "https://api.openai.com/v1"

// DefaultMaxRetries is the number of retries when Config.MaxRetries is 0.
const DefaultMaxRetries = 3

// DefaultMaxRetryDelay is the longest Retry-After honoured when
// Config.MaxRetryDelay is 0.
const DefaultMaxRetryDelay = time.Minute

// Config configures a Model. The environment is not read here; llm.Open
// resolves OPENAI_API_KEY, OPENAI_BASE_URL and friends into it.
type Config struct {
	// Name is the model's full name ("provider/model"); default
	// Provider + "/" + Model.
	Name string
	// Provider names the provider in errors; default "openai".
	Provider string
	// Model is the model name sent on the wire ("gpt-4o-mini").
	Model string
	// BaseURL is the API root, ending in /v1; default DefaultBaseURL.
	BaseURL string
	// APIKey is sent as a bearer token. Without one New fails with
	// llm.ErrNoAPIKey unless KeyOptional is set (local servers).
	APIKey      string
	KeyOptional bool
	// MaxRetries bounds retries on 429, 5xx and connection errors; 0 means
	// DefaultMaxRetries, a negative value disables retries.
	MaxRetries int
	// MaxRetryDelay is the longest Retry-After the client waits for; a
	// longer one fails the call at once. 0 means DefaultMaxRetryDelay.
	MaxRetryDelay time.Duration
	// MaxTokensField is the request field that carries Request.MaxTokens:
	// "max_completion_tokens" (OpenAI's current name) or "max_tokens"
	// (what most compatible servers read). Default: the former for the
	// "openai" provider, the latter for others.
	MaxTokensField string
	// HTTPClient is the client to use; default a plain http.Client.
	HTTPClient *http.Client
}

// Model is an OpenAI-compatible chat model. It is safe for concurrent use.
type Model struct {
	cfg  Config
	chat openai.ChatCompletionService
}

// New returns a Model for cfg. It does no network I/O.
func New(cfg Config) (*Model, error) {
	if cfg.Provider == "" {
		cfg.Provider = "openai"
	}
	if cfg.Model == "" {
		return nil, fmt.Errorf("%s: no model name: %w", cfg.Provider, llm.ErrUnknownModel)
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Provider + "/" + cfg.Model
	}
	if cfg.APIKey == "" && !cfg.KeyOptional {
		return nil, fmt.Errorf("model %q: %w", cfg.Name, llm.ErrNoAPIKey)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.MaxRetryDelay <= 0 {
		cfg.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if cfg.MaxTokensField == "" {
		cfg.MaxTokensField = "max_tokens"
		if cfg.Provider == "openai" {
			cfg.MaxTokensField = "max_completion_tokens"
		}
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	// The service is built from explicit options only, so no OPENAI_*
	// variable leaks into a provider it was not meant for.
	opts := []option.RequestOption{
		option.WithHTTPClient(hc),
		option.WithBaseURL(cfg.BaseURL),
		option.WithMaxRetries(cfg.MaxRetries),
		option.WithMaxRetryDelay(cfg.MaxRetryDelay),
	}
	if cfg.APIKey != "" {
		opts = append(opts, option.WithAPIKey(cfg.APIKey))
	}
	return &Model{cfg: cfg, chat: openai.NewChatCompletionService(opts...)}, nil
}

// Name implements llm.Model.
func (m *Model) Name() string { return m.cfg.Name }

// Generate implements llm.Model: it streams one chat completion.
func (m *Model) Generate(ctx context.Context, req *llm.Request, onDelta func(llm.Delta)) (*llm.Response, error) {
	params, err := m.params(req)
	if err != nil {
		return nil, err
	}
	stream := m.chat.NewStreaming(ctx, params)
	defer stream.Close()

	var (
		acc       openai.ChatCompletionAccumulator
		id        string
		usage     openai.CompletionUsage
		reasoning strings.Builder
	)
	for stream.Next() {
		chunk := stream.Current()
		// Some compatible servers vary or omit the id per chunk; the
		// accumulator insists on one.
		if id == "" {
			id = chunk.ID
		}
		chunk.ID = id
		if chunk.JSON.Usage.Valid() && chunk.Usage.TotalTokens+chunk.Usage.PromptTokens+chunk.Usage.CompletionTokens > 0 {
			// Usage is a running total where servers send it more than once.
			usage = chunk.Usage
		}
		if !acc.AddChunk(chunk) {
			return nil, &llm.APIError{Provider: m.cfg.Provider, Message: "malformed stream chunk: " + truncate(chunk.RawJSON(), 200)}
		}
		for _, ch := range chunk.Choices {
			if ch.Index != 0 {
				continue
			}
			if r := deltaReasoning(ch.Delta); r != "" {
				reasoning.WriteString(r)
				if onDelta != nil {
					onDelta(llm.Delta{Reasoning: r})
				}
			}
			if ch.Delta.Content != "" && onDelta != nil {
				onDelta(llm.Delta{Text: ch.Delta.Content})
			}
		}
	}
	if err := stream.Err(); err != nil {
		return nil, m.wrapErr(ctx, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(acc.Choices) == 0 {
		return nil, &llm.APIError{Provider: m.cfg.Provider, Message: "stream ended without a choice"}
	}
	return m.response(acc.Choices[0], reasoning.String(), usage), nil
}

// deltaReasoning returns reasoning text carried by compatible servers in
// "reasoning_content" (DeepSeek, vLLM, llama.cpp) or "reasoning"
// (OpenRouter, Ollama).
func deltaReasoning(d openai.ChatCompletionChunkChoiceDelta) string {
	for _, k := range [...]string{"reasoning_content", "reasoning"} {
		// Unknown fields are kept raw (and not marked valid).
		f, ok := d.JSON.ExtraFields[k]
		if !ok || f.Raw() == "" {
			continue
		}
		var s string
		if json.Unmarshal([]byte(f.Raw()), &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

func (m *Model) response(choice openai.ChatCompletionChoice, reasoning string, u openai.CompletionUsage) *llm.Response {
	msg := llm.Message{Role: llm.RoleAssistant}
	if reasoning != "" {
		msg.Parts = append(msg.Parts, llm.Part{Type: llm.PartReasoning, Text: reasoning})
	}
	if choice.Message.Content != "" {
		msg.Parts = append(msg.Parts, llm.TextPart(choice.Message.Content))
	}
	for i, tc := range choice.Message.ToolCalls {
		if tc.Function.Name == "" {
			continue // a sparse slot nobody filled
		}
		callID := tc.ID
		if callID == "" {
			callID = fmt.Sprintf("call_%d", i)
		}
		args := json.RawMessage(tc.Function.Arguments)
		if strings.TrimSpace(tc.Function.Arguments) == "" {
			args = json.RawMessage("{}")
		}
		msg.Parts = append(msg.Parts, llm.Part{Type: llm.PartToolCall, ToolCall: &llm.ToolCall{ID: callID, Name: tc.Function.Name, Args: args}})
	}
	stop := choice.FinishReason
	switch stop {
	case "tool_calls", "function_call":
		stop = "tool_calls"
	case "":
		if len(msg.ToolCalls()) > 0 {
			stop = "tool_calls"
		} else {
			stop = "stop"
		}
	}
	cached := u.PromptTokensDetails.CachedTokens
	usage := llm.Usage{
		Input:      max(u.PromptTokens-cached-u.PromptTokensDetails.CacheWriteTokens, 0),
		Output:     u.CompletionTokens,
		Reasoning:  u.CompletionTokensDetails.ReasoningTokens,
		CacheRead:  cached,
		CacheWrite: u.PromptTokensDetails.CacheWriteTokens,
	}
	return &llm.Response{Message: msg, Usage: usage, StopReason: stop}
}

// params builds the wire request.
func (m *Model) params(req *llm.Request) (openai.ChatCompletionNewParams, error) {
	p := openai.ChatCompletionNewParams{
		Model:         shared.ChatModel(m.cfg.Model),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}
	if req.MaxTokens > 0 {
		if m.cfg.MaxTokensField == "max_completion_tokens" {
			p.MaxCompletionTokens = openai.Int(int64(req.MaxTokens))
		} else {
			p.MaxTokens = openai.Int(int64(req.MaxTokens))
		}
	}
	if req.Temperature != nil {
		p.Temperature = openai.Float(*req.Temperature)
	}
	if req.System != "" {
		p.Messages = append(p.Messages, openai.SystemMessage(req.System))
	}
	for _, msg := range req.Messages {
		p.Messages = append(p.Messages, messages(msg)...)
	}
	for _, t := range req.Tools {
		var schema map[string]any
		if len(t.Parameters) > 0 {
			if err := json.Unmarshal(t.Parameters, &schema); err != nil {
				return p, fmt.Errorf("%s: tool %q: parameters schema: %w", m.cfg.Provider, t.Name, err)
			}
		}
		if schema == nil {
			schema = map[string]any{"type": "object", "properties": map[string]any{}}
		}
		fn := shared.FunctionDefinitionParam{Name: t.Name, Parameters: shared.FunctionParameters(schema)}
		if t.Description != "" {
			fn.Description = openai.String(t.Description)
		}
		p.Tools = append(p.Tools, openai.ChatCompletionFunctionTool(fn))
	}
	return p, nil
}

// messages maps one llm message to wire messages: tool results become one
// "tool" message each, wherever they appear.
func messages(msg llm.Message) []openai.ChatCompletionMessageParamUnion {
	var out []openai.ChatCompletionMessageParamUnion
	var text []string
	var parts []openai.ChatCompletionContentPartUnionParam
	var calls []openai.ChatCompletionMessageToolCallUnionParam
	hasImage := false
	for _, part := range msg.Parts {
		switch part.Type {
		case llm.PartText:
			text = append(text, part.Text)
			parts = append(parts, openai.TextContentPart(part.Text))
		case llm.PartImage:
			if part.Image != nil {
				hasImage = true
				parts = append(parts, openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: part.Image.URL}))
			}
		case llm.PartToolCall:
			if tc := part.ToolCall; tc != nil {
				args := string(tc.Args)
				if strings.TrimSpace(args) == "" {
					args = "{}"
				}
				calls = append(calls, openai.ChatCompletionMessageToolCallUnionParam{OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
					ID: tc.ID, Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: tc.Name, Arguments: args},
				}})
			}
		case llm.PartToolResult:
			if tr := part.ToolResult; tr != nil {
				out = append(out, openai.ToolMessage(tr.Content, tr.CallID))
			}
		}
	}
	joined := strings.Join(text, "\n")
	switch msg.Role {
	case llm.RoleSystem:
		if joined != "" {
			out = append(out, openai.SystemMessage(joined))
		}
	case llm.RoleAssistant:
		if joined == "" && len(calls) == 0 {
			break
		}
		a := openai.ChatCompletionAssistantMessageParam{ToolCalls: calls}
		if joined != "" {
			a.Content.OfString = openai.String(joined)
		}
		out = append(out, openai.ChatCompletionMessageParamUnion{OfAssistant: &a})
	case llm.RoleUser, llm.RoleTool:
		switch {
		case hasImage:
			out = append(out, openai.UserMessage(parts))
		case joined != "":
			out = append(out, openai.UserMessage(joined))
		}
	}
	return out
}

// wrapErr turns a failed call into an *llm.APIError, or the context's
// error when the call was cancelled.
func (m *Model) wrapErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", m.cfg.Provider, ctx.Err())
	}
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		e := &llm.APIError{Provider: m.cfg.Provider, StatusCode: apiErr.StatusCode, Message: apiErr.Message}
		if e.Message == "" {
			e.Message = strings.TrimSpace(apiErr.RawJSON())
		}
		if e.Message == "" {
			e.Message = http.StatusText(apiErr.StatusCode)
		}
		if apiErr.Response != nil {
			e.RetryAfter = llm.RetryAfter(apiErr.Response.Header)
		}
		return e
	}
	var streamErr *ssestream.StreamError
	if errors.As(err, &streamErr) {
		// An error event inside a 200 stream.
		var ev struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
			} `json:"error"`
		}
		msg := streamErr.Message
		if json.Unmarshal(streamErr.Event.Data, &ev) == nil && ev.Error.Message != "" {
			msg = ev.Error.Message
			if ev.Error.Type != "" {
				msg = ev.Error.Type + ": " + msg
			}
		}
		return &llm.APIError{Provider: m.cfg.Provider, Message: "stream failed: " + msg}
	}
	return fmt.Errorf("%s: %w", m.cfg.Provider, err)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
