// Package anthropic is the Anthropic Messages provider.
//
// It speaks the Messages API through the official SDK
// (github.com/anthropics/anthropic-sdk-go). Importing the package registers
// the "anthropic" provider kind with llm, so
//
//	m, err := llm.Open("anthropic/claude-sonnet-4-6") // ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL
//
// works. Responses are streamed; text and thinking are reported as they
// arrive, tool_use input is assembled from input_json_delta events, and
// usage includes cache-read and cache-write tokens. Failed calls are retried
// on 429, 5xx (529 overloaded included) and connection errors, honouring
// Retry-After; a call that fails for good returns an *llm.APIError.
package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/agenthost/agenthost/llm"
)

func init() {
	llm.RegisterKind("anthropic", func(name, model string, rp llm.ResolvedProvider) (llm.Model, error) {
		retries := rp.MaxRetries
		if retries == 0 {
			retries = -1 // the registry already applied its default
		}
		return New(Config{Name: name, Provider: rp.Provider, Model: model, BaseURL: rp.BaseURL, APIKey: rp.APIKey,
			MaxRetries: retries})
	})
}

// DefaultBaseURL is Anthropic's API.
const DefaultBaseURL = "https://api.anthropic.com"

// DefaultMaxTokens bounds a response when neither the request nor the
// Config does; the Messages API requires a bound.
const DefaultMaxTokens = 4096

// DefaultMaxRetries is the number of retries when Config.MaxRetries is 0.
const DefaultMaxRetries = 3

// DefaultMaxRetryDelay is the longest Retry-After honoured when
// Config.MaxRetryDelay is 0.
const DefaultMaxRetryDelay = time.Minute

// Config configures a Model. The environment is not read here; llm.Open
// resolves ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL into it.
type Config struct {
	// Name is the model's full name; default Provider + "/" + Model.
	Name string
	// Provider names the provider in errors; default "anthropic".
	Provider string
	// Model is the model name sent on the wire ("claude-sonnet-4-6").
	Model string
	// BaseURL is the API origin; default DefaultBaseURL.
	BaseURL string
	// APIKey is sent as x-api-key; New fails with llm.ErrNoAPIKey
	// without one.
	APIKey string
	// MaxTokens is used when a request sets none; default
	// DefaultMaxTokens.
	MaxTokens int
	// MaxRetries bounds retries on 429, 5xx and connection errors; 0 means
	// DefaultMaxRetries, a negative value disables retries.
	MaxRetries int
	// MaxRetryDelay is the longest Retry-After the client waits for; a
	// longer one fails the call at once. 0 means DefaultMaxRetryDelay.
	MaxRetryDelay time.Duration
	// NoCache turns off prompt caching. By default the system prompt and
	// the conversation so far are marked as cache breakpoints
	// (cache_control "ephemeral"), so each turn of an agent loop reads the
	// previous turns from the cache.
	NoCache bool
	// HTTPClient is the client to use; default a plain http.Client.
	HTTPClient *http.Client
}

// Model is an Anthropic model. It is safe for concurrent use.
type Model struct {
	cfg      Config
	messages anthropic.MessageService
}

// New returns a Model for cfg. It does no network I/O.
func New(cfg Config) (*Model, error) {
	if cfg.Provider == "" {
		cfg.Provider = "anthropic"
	}
	if cfg.Model == "" {
		return nil, fmt.Errorf("%s: no model name: %w", cfg.Provider, llm.ErrUnknownModel)
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Provider + "/" + cfg.Model
	}
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("model %q: set ANTHROPIC_API_KEY: %w", cfg.Name, llm.ErrNoAPIKey)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
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
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	// Explicit options only: no ANTHROPIC_* variable or profile file is
	// consulted behind the registry's back.
	svc := anthropic.NewMessageService(
		option.WithHTTPClient(hc),
		option.WithBaseURL(cfg.BaseURL),
		option.WithAPIKey(cfg.APIKey),
		option.WithMaxRetries(cfg.MaxRetries),
		option.WithMiddleware(capRetryAfter(cfg.MaxRetryDelay)),
	)
	return &Model{cfg: cfg, messages: svc}, nil
}

// capRetryAfter stops the SDK from retrying when the server asks for a
// longer wait than max (the SDK would otherwise wait any length).
func capRetryAfter(max time.Duration) option.Middleware {
	return func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		res, err := next(req)
		if err == nil && res != nil && res.StatusCode >= 400 && llm.RetryAfter(res.Header) > max {
			res.Header.Set("X-Should-Retry", "false")
		}
		return res, err
	}
}

// Name implements llm.Model.
func (m *Model) Name() string { return m.cfg.Name }

// Generate implements llm.Model: it streams one message.
func (m *Model) Generate(ctx context.Context, req *llm.Request, onDelta func(llm.Delta)) (*llm.Response, error) {
	params, err := m.params(req)
	if err != nil {
		return nil, err
	}
	stream := m.messages.NewStreaming(ctx, params)
	defer stream.Close()
	var acc anthropic.Message
	for stream.Next() {
		ev := stream.Current()
		if err := acc.Accumulate(ev); err != nil {
			return nil, &llm.APIError{Provider: m.cfg.Provider, Message: "malformed stream: " + err.Error()}
		}
		if ev.Type != "content_block_delta" || onDelta == nil {
			continue
		}
		switch ev.Delta.Type {
		case "text_delta":
			if ev.Delta.Text != "" {
				onDelta(llm.Delta{Text: ev.Delta.Text})
			}
		case "thinking_delta":
			if ev.Delta.Thinking != "" {
				onDelta(llm.Delta{Reasoning: ev.Delta.Thinking})
			}
		}
	}
	if err := stream.Err(); err != nil {
		return nil, m.wrapErr(ctx, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if acc.ID == "" && len(acc.Content) == 0 {
		return nil, &llm.APIError{Provider: m.cfg.Provider, Message: "stream ended without a message"}
	}
	return response(&acc), nil
}

func response(acc *anthropic.Message) *llm.Response {
	msg := llm.Message{Role: llm.RoleAssistant}
	for _, b := range acc.Content {
		switch b.Type {
		case "thinking":
			if b.Thinking != "" {
				msg.Parts = append(msg.Parts, llm.Part{Type: llm.PartReasoning, Text: b.Thinking})
			}
		case "text":
			if b.Text != "" {
				msg.Parts = append(msg.Parts, llm.TextPart(b.Text))
			}
		case "tool_use":
			args := json.RawMessage(b.Input)
			if len(args) == 0 || !json.Valid(args) {
				args = json.RawMessage("{}")
			}
			msg.Parts = append(msg.Parts, llm.Part{Type: llm.PartToolCall, ToolCall: &llm.ToolCall{ID: b.ID, Name: b.Name, Args: args}})
		}
	}
	stop := string(acc.StopReason)
	switch stop {
	case "end_turn", "stop_sequence", "":
		stop = "stop"
	case "tool_use":
		stop = "tool_calls"
	case "max_tokens":
		stop = "length"
	}
	u := acc.Usage
	usage := llm.Usage{
		Input:      u.InputTokens,
		Output:     u.OutputTokens,
		CacheRead:  u.CacheReadInputTokens,
		CacheWrite: u.CacheCreationInputTokens,
	}
	return &llm.Response{Message: msg, Usage: usage, StopReason: stop}
}

// params builds the wire request. Consecutive messages of one wire role are
// merged, since the Messages API wants user and assistant turns to
// alternate (tool results travel as user content).
func (m *Model) params(req *llm.Request) (anthropic.MessageNewParams, error) {
	p := anthropic.MessageNewParams{Model: anthropic.Model(m.cfg.Model), MaxTokens: int64(m.cfg.MaxTokens)}
	if req.MaxTokens > 0 {
		p.MaxTokens = int64(req.MaxTokens)
	}
	if req.Temperature != nil {
		p.Temperature = anthropic.Float(*req.Temperature)
	}
	var system []string
	if req.System != "" {
		system = append(system, req.System)
	}
	for _, msg := range req.Messages {
		if msg.Role == llm.RoleSystem {
			if t := msg.Text(); t != "" {
				system = append(system, t)
			}
			continue
		}
		role := anthropic.MessageParamRoleUser
		if msg.Role == llm.RoleAssistant {
			role = anthropic.MessageParamRoleAssistant
		}
		blocks, err := m.blocks(msg)
		if err != nil {
			return p, err
		}
		if len(blocks) == 0 {
			continue
		}
		if n := len(p.Messages); n > 0 && p.Messages[n-1].Role == role {
			p.Messages[n-1].Content = append(p.Messages[n-1].Content, blocks...)
			continue
		}
		p.Messages = append(p.Messages, anthropic.MessageParam{Role: role, Content: blocks})
	}
	if len(system) > 0 {
		p.System = []anthropic.TextBlockParam{{Text: strings.Join(system, "\n\n")}}
	}
	if !m.cfg.NoCache {
		// Two breakpoints: tools and system, and everything up to the
		// newest block. Prefixes shorter than the model's minimum are
		// simply not cached.
		if len(p.System) > 0 {
			p.System[0].CacheControl = anthropic.NewCacheControlEphemeralParam()
		}
		if n := len(p.Messages); n > 0 {
			blocks := p.Messages[n-1].Content
			if cc := blocks[len(blocks)-1].GetCacheControl(); cc != nil {
				*cc = anthropic.NewCacheControlEphemeralParam()
			}
		}
	}
	for _, t := range req.Tools {
		schema := anthropic.ToolInputSchemaParam{}
		if len(t.Parameters) > 0 {
			var s map[string]any
			if err := json.Unmarshal(t.Parameters, &s); err != nil {
				return p, fmt.Errorf("%s: tool %q: parameters schema: %w", m.cfg.Provider, t.Name, err)
			}
			schema.Properties = s["properties"]
			for _, r := range asSlice(s["required"]) {
				if name, ok := r.(string); ok {
					schema.Required = append(schema.Required, name)
				}
			}
			delete(s, "properties")
			delete(s, "required")
			delete(s, "type")
			if len(s) > 0 {
				schema.ExtraFields = s
			}
		}
		tool := anthropic.ToolUnionParamOfTool(schema, t.Name)
		if t.Description != "" {
			tool.OfTool.Description = anthropic.String(t.Description)
		}
		p.Tools = append(p.Tools, tool)
	}
	return p, nil
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// blocks maps the parts of one message to content blocks. Reasoning parts
// are not sent back: without their signature the API would refuse them.
func (m *Model) blocks(msg llm.Message) ([]anthropic.ContentBlockParamUnion, error) {
	var out []anthropic.ContentBlockParamUnion
	for _, part := range msg.Parts {
		switch part.Type {
		case llm.PartText:
			if part.Text != "" {
				out = append(out, anthropic.NewTextBlock(part.Text))
			}
		case llm.PartImage:
			if part.Image == nil {
				continue
			}
			b, err := imageBlock(*part.Image)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.cfg.Provider, err)
			}
			out = append(out, b)
		case llm.PartToolCall:
			if tc := part.ToolCall; tc != nil {
				args := tc.Args
				if len(args) == 0 || !json.Valid(args) {
					args = json.RawMessage("{}")
				}
				out = append(out, anthropic.NewToolUseBlock(tc.ID, args, tc.Name))
			}
		case llm.PartToolResult:
			if tr := part.ToolResult; tr != nil {
				out = append(out, anthropic.NewToolResultBlock(tr.CallID, tr.Content, tr.IsError))
			}
		}
	}
	return out, nil
}

// imageBlock sends a data: URL as a base64 source and other URLs as url
// sources.
func imageBlock(im llm.Image) (anthropic.ContentBlockParamUnion, error) {
	rest, ok := strings.CutPrefix(im.URL, "data:")
	if !ok {
		return anthropic.NewImageBlock(anthropic.URLImageSourceParam{URL: im.URL}), nil
	}
	meta, data, ok := strings.Cut(rest, ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return anthropic.ContentBlockParamUnion{}, errors.New("image: want a base64 data: URL")
	}
	return anthropic.NewImageBlockBase64(im.MediaType(), data), nil
}

// wrapErr turns a failed call into an *llm.APIError, or the context's
// error when the call was cancelled.
func (m *Model) wrapErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", m.cfg.Provider, ctx.Err())
	}
	var apiErr *anthropic.Error
	if errors.As(err, &apiErr) {
		e := &llm.APIError{Provider: m.cfg.Provider, StatusCode: apiErr.StatusCode, Message: errorMessage(apiErr.RawJSON())}
		if apiErr.Response != nil {
			e.RetryAfter = llm.RetryAfter(apiErr.Response.Header)
		}
		if e.StatusCode == 0 || (apiErr.Response != nil && apiErr.Response.StatusCode == http.StatusOK) {
			// An error event inside a 200 stream (overloaded_error, say).
			e.StatusCode = streamErrorStatus(string(apiErr.Type()))
		}
		if e.Message == "" {
			e.Message = http.StatusText(e.StatusCode)
		}
		return e
	}
	return fmt.Errorf("%s: %w", m.cfg.Provider, err)
}

// errorMessage extracts error.message from an Anthropic error body.
func errorMessage(raw string) string {
	var body struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(raw), &body) == nil && body.Error.Message != "" {
		if body.Error.Type != "" {
			return body.Error.Type + ": " + body.Error.Message
		}
		return body.Error.Message
	}
	return strings.TrimSpace(raw)
}

// streamErrorStatus maps the type of an error event sent mid-stream to the
// status the same error has as an HTTP response.
func streamErrorStatus(typ string) int {
	switch typ {
	case "overloaded_error":
		return 529
	case "rate_limit_error":
		return http.StatusTooManyRequests
	case "invalid_request_error":
		return http.StatusBadRequest
	case "api_error":
		return http.StatusInternalServerError
	}
	return 0
}
