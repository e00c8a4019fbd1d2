// Package llm defines the model-facing types of agenthost: conversation
// messages with typed parts, tool specifications, streaming generation and
// usage accounting. Providers live in sub-packages (openai, anthropic,
// offline) and register themselves when they are imported, so a model is
// chosen with a string of the form "provider/model" and a program links
// only the provider SDKs it imports:
//
//	import _ "github.com/agenthost/agenthost/llm/openai"    // openai/…, ollama/…, vllm/…, openrouter/…
//	import _ "github.com/agenthost/agenthost/llm/anthropic" // anthropic/…
//
// Opening a model whose provider is not linked fails with
// ErrProviderNotLinked, whose text names the import to add.
package llm

import (
	"encoding/json"
	"strings"
)

// Role says who wrote a message.
type Role string

// The roles a message can have. Tool results travel in RoleTool messages so
// providers can map them to their own wire shapes.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
)

// PartType discriminates the content of a Part.
type PartType string

// The kinds of content a message part can carry.
const (
	PartText       PartType = "text"
	PartImage      PartType = "image"
	PartToolCall   PartType = "tool_call"
	PartToolResult PartType = "tool_result"
	PartReasoning  PartType = "reasoning"
)

// Part is one typed piece of a message. Exactly the field matching Type is
// set; the value is plain data so a conversation round-trips through JSON.
type Part struct {
	Type       PartType    `json:"type"`
	Text       string      `json:"text,omitempty"`
	Image      *Image      `json:"image,omitempty"`
	ToolCall   *ToolCall   `json:"tool_call,omitempty"`
	ToolResult *ToolResult `json:"tool_result,omitempty"`
}

// Image is image content, either a data: URL or an http(s) URL.
type Image struct {
	URL string `json:"url"`
}

// MediaType returns the media type of a data: URL ("image/png"), or "" for
// other URLs.
func (im Image) MediaType() string {
	rest, ok := strings.CutPrefix(im.URL, "data:")
	if !ok {
		return ""
	}
	mt, _, _ := strings.Cut(rest, ";")
	mt, _, _ = strings.Cut(mt, ",")
	return mt
}

// ToolCall is a model's request to run a tool.
type ToolCall struct {
	ID   string          `json:"id"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args"`
}

// ToolResult is the answer to one ToolCall.
type ToolResult struct {
	CallID  string `json:"call_id"`
	Name    string `json:"name"`
	Content string `json:"content"`
	IsError bool   `json:"is_error,omitempty"`
}

// Message is one turn of a conversation. Assistant messages also record the
// model that wrote them, their usage and cost, and when they were written, so
// hosts can report per-message accounting without a side table.
type Message struct {
	ID    string `json:"id,omitempty"`
	Role  Role   `json:"role"`
	Parts []Part `json:"parts"`
	// Hidden marks context the model sees but a chat UI never shows
	// (a platform's hiddenPrompt).
	Hidden    bool    `json:"hidden,omitempty"`
	Model     string  `json:"model,omitempty"`
	Usage     *Usage  `json:"usage,omitempty"`
	Cost      float64 `json:"cost,omitempty"`
	Created   int64   `json:"created,omitempty"`   // Unix milliseconds
	Completed int64   `json:"completed,omitempty"` // Unix milliseconds
}

// Text returns the concatenated text parts of m.
func (m Message) Text() string {
	var b strings.Builder
	for _, p := range m.Parts {
		if p.Type == PartText {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// ToolCalls returns the tool calls in m, in order.
func (m Message) ToolCalls() []ToolCall {
	var calls []ToolCall
	for _, p := range m.Parts {
		if p.Type == PartToolCall && p.ToolCall != nil {
			calls = append(calls, *p.ToolCall)
		}
	}
	return calls
}

// TextPart returns a text part.
func TextPart(s string) Part { return Part{Type: PartText, Text: s} }

// ImagePart returns an image part for a data: or http(s) URL.
func ImagePart(url string) Part { return Part{Type: PartImage, Image: &Image{URL: url}} }

// UserText returns a user message holding one text part.
func UserText(s string) Message { return Message{Role: RoleUser, Parts: []Part{TextPart(s)}} }

// ToolSpec describes a tool to a model.
type ToolSpec struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Parameters is the JSON Schema of the tool's argument object.
	Parameters json.RawMessage `json:"parameters"`
}
