package llm

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Model generates the next assistant message of a conversation. A Model is
// safe for concurrent use; per-call state lives in the Request.
type Model interface {
	// Name is the model's full name, "provider/model".
	Name() string
	// Generate asks the model for the next assistant message. Text is
	// reported to onDelta as it is produced (onDelta may be nil); the
	// complete message, including tool calls, is returned at the end.
	// Cancelling ctx stops the stream promptly.
	Generate(ctx context.Context, req *Request, onDelta func(Delta)) (*Response, error)
}

// Request is one model call.
type Request struct {
	System      string
	Messages    []Message
	Tools       []ToolSpec
	MaxTokens   int
	Temperature *float64
}

// Delta is a piece of streamed output.
type Delta struct {
	Text      string
	Reasoning string
}

// Response is a finished model call.
type Response struct {
	// Message is the assistant message, text and tool calls.
	Message Message
	Usage   Usage
	// StopReason is the provider's reason, normalised to "stop",
	// "tool_calls" or "length" where it maps.
	StopReason string
}

// Usage counts tokens. Input excludes cached input; Reasoning is the part of
// Output spent on hidden reasoning (already counted in Output).
type Usage struct {
	Input      int64 `json:"input"`
	Output     int64 `json:"output"`
	Reasoning  int64 `json:"reasoning"`
	CacheRead  int64 `json:"cache_read"`
	CacheWrite int64 `json:"cache_write"`
}

// Total is input + output + cache read + cache write, the figure billing
// dashboards show.
func (u Usage) Total() int64 { return u.Input + u.Output + u.CacheRead + u.CacheWrite }

// Add adds v to u.
func (u *Usage) Add(v Usage) {
	u.Input += v.Input
	u.Output += v.Output
	u.Reasoning += v.Reasoning
	u.CacheRead += v.CacheRead
	u.CacheWrite += v.CacheWrite
}

// ErrNoAPIKey is returned when a provider needs a key and none is configured.
var ErrNoAPIKey = errors.New("no API key configured")

// ErrUnknownModel is returned for a model name no registered provider serves.
var ErrUnknownModel = errors.New("unknown model")

// ErrProviderNotLinked is returned for a model whose provider is known but
// whose package is not linked into the program, e.g. "openai/gpt-4o-mini"
// in a program that does not import llm/openai. The error's text names the
// import that fixes it.
var ErrProviderNotLinked = errors.New("provider not linked into this program")

// APIError is a provider call that failed for good, after retries.
type APIError struct {
	Provider   string
	StatusCode int
	Message    string
	// RetryAfter is the provider's advice, when it gave one.
	RetryAfter time.Duration
}

// Retryable reports whether the failure is of a kind that may pass on a
// later attempt: rate limiting (429), timeouts and conflicts (408, 409),
// or server errors (5xx, 529 overloaded included).
func (e *APIError) Retryable() bool {
	switch {
	case e.StatusCode == 408, e.StatusCode == 409, e.StatusCode == 429, e.StatusCode >= 500:
		return true
	}
	return false
}

func (e *APIError) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("%s: %s", e.Provider, e.Message)
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.Provider, e.StatusCode, e.Message)
}
