package coderuntime

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/agenthost/agenthost/internal/coding"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/llm"
)

// Message is one chat message in seed 003's shape.
type Message struct {
	ID   string      `json:"id"`
	Info MessageInfo `json:"info"`
}

// MessageInfo is a message's role, content and, for assistant messages,
// the time, cost and tokens of the model step that wrote it.
type MessageInfo struct {
	Role   string   `json:"role"`
	Parts  []Part   `json:"parts"`
	Time   *Time    `json:"time,omitempty"`
	Cost   *float64 `json:"cost,omitempty"`
	Tokens *Tokens  `json:"tokens,omitempty"`
	// Error is set on the assistant message of a turn whose model call
	// failed: the provider's message.
	Error *MessageError `json:"error,omitempty"`
}

// MessageError is why a model call failed.
type MessageError struct {
	Message string `json:"message"`
}

// Time is when a message was created and completed, in Unix seconds.
type Time struct {
	Created   int64 `json:"created"`
	Completed int64 `json:"completed,omitempty"`
}

// Part is one piece of a message: text, reasoning, a tool call with its
// state, or a file.
type Part struct {
	Type   string     `json:"type"`
	Text   string     `json:"text,omitempty"`
	Tool   string     `json:"tool,omitempty"`
	CallID string     `json:"callID,omitempty"`
	State  *ToolState `json:"state,omitempty"`
	URL    string     `json:"url,omitempty"`
	Mime   string     `json:"mime,omitempty"`
}

// ToolState is how a tool call stands: pending, completed or error.
type ToolState struct {
	Status string          `json:"status"`
	Input  json.RawMessage `json:"input"`
	Output string          `json:"output,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Tokens counts tokens as the seed does; Total is input + output + cache
// read + cache write.
type Tokens struct {
	Total     int64 `json:"total"`
	Input     int64 `json:"input"`
	Output    int64 `json:"output"`
	Reasoning int64 `json:"reasoning"`
	Cache     Cache `json:"cache"`
}

// Cache counts prompt-cache tokens.
type Cache struct {
	Read  int64 `json:"read"`
	Write int64 `json:"write"`
}

// Usage is a cost and its tokens.
type Usage struct {
	Cost   float64 `json:"cost"`
	Tokens Tokens  `json:"tokens"`
}

func (u *Usage) add(cost float64, t Tokens) {
	u.Cost += cost
	u.Tokens.Total += t.Total
	u.Tokens.Input += t.Input
	u.Tokens.Output += t.Output
	u.Tokens.Reasoning += t.Reasoning
	u.Tokens.Cache.Read += t.Cache.Read
	u.Tokens.Cache.Write += t.Cache.Write
}

func tokensOf(u llm.Usage) Tokens {
	return Tokens{Total: u.Total(), Input: u.Input, Output: u.Output, Reasoning: u.Reasoning,
		Cache: Cache{Read: u.CacheRead, Write: u.CacheWrite}}
}

// SessionHistory answers GET /control/messages?sessionId=.
type SessionHistory struct {
	SessionID string    `json:"sessionId"`
	Messages  []Message `json:"messages"`
	Usage     Usage     `json:"usage"`
	// Interrupted: the session's latest turn was cut short, by an abort
	// or by the runtime's end; it is stored, so it outlives restarts (the
	// platform's A2A reads such a turn's task as canceled).
	Interrupted bool `json:"interrupted,omitempty"`
}

// SessionMessages is one session of GET /control/messages.
type SessionMessages struct {
	SessionID string    `json:"sessionId"`
	Title     *string   `json:"title"`
	Messages  []Message `json:"messages"`
	Usage     Usage     `json:"usage"`
}

// AllMessages answers GET /control/messages.
type AllMessages struct {
	Sessions []SessionMessages `json:"sessions"`
}

// SessionStatus is one session of GET /control/status.
type SessionStatus struct {
	ID    string  `json:"id"`
	Title *string `json:"title"`
	Busy  bool    `json:"busy"`
}

// Status answers GET /control/status.
type Status struct {
	Busy     bool            `json:"busy"`
	Sessions []SessionStatus `json:"sessions"`
	// LastError is the failure of the most recent turn that failed, among
	// the sessions whose latest turn failed; absent when none did.
	LastError *TurnError `json:"lastError,omitempty"`
}

// TurnError is a turn whose model call failed: the provider's message,
// and when (Unix seconds).
type TurnError struct {
	SessionID string `json:"sessionId"`
	Message   string `json:"message"`
	Time      int64  `json:"time"`
}

// SendRequest is the body of POST /control/messages.
type SendRequest struct {
	Message   string `json:"message"`
	SessionID string `json:"sessionId,omitempty"`
	// NewSessionID, instead of SessionID, names the session the message
	// starts: a fresh id of the shape the runtime makes ("ses_" and 24
	// hex digits) that no session has. The platform picks it to save a
	// message's files in the session's own folder (POST /control/files
	// ?newSessionId=) before the message runs.
	NewSessionID string `json:"newSessionId,omitempty"`
}

// SendResult answers POST /control/messages.
type SendResult struct {
	SessionID string `json:"sessionId"`
	Sent      bool   `json:"sent"`
	MessageID string `json:"messageId"`
	Queued    bool   `json:"queued"`
}

// SessionUsage is one session of GET /control/usage.
type SessionUsage struct {
	SessionID string  `json:"sessionId"`
	Title     *string `json:"title"`
	Cost      float64 `json:"cost"`
	Tokens    Tokens  `json:"tokens"`
}

// UsageReport answers GET /control/usage.
type UsageReport struct {
	TotalCost   float64        `json:"totalCost"`
	TotalTokens Tokens         `json:"totalTokens"`
	Sessions    []SessionUsage `json:"sessions"`
}

// FileResult answers POST /control/files.
type FileResult struct {
	Path string `json:"path"`
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// PermissionList answers GET /control/permissions.
type PermissionList struct {
	Permissions []coding.Permission `json:"permissions"`
}

// QuestionList answers GET /control/questions.
type QuestionList struct {
	Questions []coding.PendingQuestion `json:"questions"`
}

// PermissionReplied answers a permission reply.
type PermissionReplied struct {
	Replied bool             `json:"replied"`
	Reply   coding.ReplyKind `json:"reply"`
}

func secs(ms int64) int64 { return ms / 1000 }

// render turns a conversation into the seed's messages: hidden and system
// messages are left out, and each tool result is folded into the tool part
// of the assistant message that made the call.
func render(msgs []llm.Message) []Message {
	out := []Message{}
	type at struct{ msg, part int }
	calls := map[string]at{}
	for _, m := range msgs {
		if m.Hidden {
			continue
		}
		switch m.Role {
		case llm.RoleUser, llm.RoleAssistant:
			rm := Message{ID: m.ID, Info: MessageInfo{Role: string(m.Role), Parts: []Part{}}}
			if m.Created != 0 {
				rm.Info.Time = &Time{Created: secs(m.Created), Completed: secs(m.Completed)}
			}
			for _, p := range m.Parts {
				switch p.Type {
				case llm.PartText:
					rm.Info.Parts = append(rm.Info.Parts, Part{Type: "text", Text: p.Text})
				case llm.PartReasoning:
					rm.Info.Parts = append(rm.Info.Parts, Part{Type: "reasoning", Text: p.Text})
				case llm.PartImage:
					if p.Image != nil {
						rm.Info.Parts = append(rm.Info.Parts, Part{Type: "file", URL: p.Image.URL, Mime: p.Image.MediaType()})
					}
				case llm.PartToolCall:
					if p.ToolCall == nil {
						continue
					}
					in := p.ToolCall.Args
					if len(in) == 0 {
						in = json.RawMessage("{}")
					}
					calls[p.ToolCall.ID] = at{len(out), len(rm.Info.Parts)}
					rm.Info.Parts = append(rm.Info.Parts, Part{Type: "tool", Tool: p.ToolCall.Name, CallID: p.ToolCall.ID,
						State: &ToolState{Status: "pending", Input: in}})
				}
			}
			if m.Role == llm.RoleAssistant {
				var u llm.Usage
				if m.Usage != nil {
					u = *m.Usage
				}
				cost := m.Cost
				tok := tokensOf(u)
				rm.Info.Cost, rm.Info.Tokens = &cost, &tok
			}
			out = append(out, rm)
		case llm.RoleTool:
			for _, p := range m.Parts {
				if p.ToolResult == nil {
					continue
				}
				a, ok := calls[p.ToolResult.CallID]
				if !ok {
					continue
				}
				st := out[a.msg].Info.Parts[a.part].State
				if p.ToolResult.IsError {
					st.Status, st.Error = "error", strings.TrimPrefix(p.ToolResult.Content, "Error: ")
				} else {
					st.Status, st.Output = "completed", p.ToolResult.Content
				}
			}
		}
	}
	return out
}

// renderFailed is the assistant message of a failed model call: what the
// model wrote before it failed, and the provider's message.
func renderFailed(m llm.Message, why string) Message {
	out := render([]llm.Message{m})[0]
	out.Info.Error = &MessageError{Message: why}
	return out
}

// renderHistory renders stored messages, the records of failed model calls
// among them.
func renderHistory(rows []store.Message) ([]Message, error) {
	var msgs []llm.Message
	failed := map[string]string{} // message id → error
	for _, r := range rows {
		var m llm.Message
		if err := json.Unmarshal(r.Data, &m); err != nil {
			return nil, fmt.Errorf("session %s: stored message: %w", r.SessionID, err)
		}
		if r.Error != "" {
			failed[m.ID] = r.Error
		}
		msgs = append(msgs, m)
	}
	out := render(msgs)
	if len(failed) > 0 {
		for i := range out {
			if why, ok := failed[out[i].ID]; ok {
				out[i].Info.Error = &MessageError{Message: why}
			}
		}
	}
	return out, nil
}

// usageOf sums the cost and tokens of every assistant message.
func usageOf(msgs []Message) Usage {
	var u Usage
	for _, m := range msgs {
		if m.Info.Tokens != nil && m.Info.Cost != nil {
			u.add(*m.Info.Cost, *m.Info.Tokens)
		}
	}
	return u
}
