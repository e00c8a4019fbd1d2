package host

import (
	"encoding/json"
	"strings"

	"github.com/agenthost/agenthost/llm"
)

// Session is the conversation object a client receives and may pass back
// to continue (docs/protocol.md §2). Messages are agenthost's own message format
// (llm.Message); messages in the common {"role","content"} shape are
// accepted on input too.
type Session struct {
	SessionID string        `json:"session_id"`
	Messages  []llm.Message `json:"messages"`
	// Turn counts finished turns (prompts answered).
	Turn int `json:"turn"`
	// Iteration counts model calls over the whole conversation; it only
	// grows, so the copy with the higher iteration has seen more.
	Iteration int `json:"iteration"`
	// Updated is when the session last changed, in Unix seconds.
	Updated float64 `json:"updated"`
}

// UnmarshalJSON accepts messages in llm.Message form or {"role","content"}.
func (s *Session) UnmarshalJSON(b []byte) error {
	var raw struct {
		SessionID string        `json:"session_id"`
		Messages  []wireMessage `json:"messages"`
		Turn      int           `json:"turn"`
		Iteration int           `json:"iteration"`
		Updated   float64       `json:"updated"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*s = Session{SessionID: raw.SessionID, Turn: raw.Turn, Iteration: raw.Iteration, Updated: raw.Updated}
	for _, m := range raw.Messages {
		s.Messages = append(s.Messages, m.Message)
	}
	return nil
}

// wireMessage is an llm.Message that also accepts a plain "content" string.
type wireMessage struct{ llm.Message }

func (m *wireMessage) UnmarshalJSON(b []byte) error {
	type plain llm.Message
	var x struct {
		plain
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	m.Message = llm.Message(x.plain)
	if x.Content != nil && len(m.Parts) == 0 {
		m.Parts = []llm.Part{llm.TextPart(*x.Content)}
	}
	return nil
}

// merge applies docs/protocol.md's rule to a client's copy of a session and the
// server's: the higher iteration wins, a tie goes to the newer updated.
// serverNewer reports that the server's copy won and differs from the
// client's.
func merge(client, server *Session) (use *Session, serverNewer bool) {
	switch {
	case server == nil:
		return client, false
	case client == nil:
		return server, false
	case client.Iteration > server.Iteration:
		return client, false
	case client.Iteration == server.Iteration && client.Updated > server.Updated:
		return client, false
	case client.Iteration == server.Iteration && client.Updated == server.Updated:
		return server, false
	}
	return server, true
}

// ChatItem is one entry of the UI-friendly view of a conversation that
// responses carry beside the session: what a chat window shows.
type ChatItem struct {
	// Type is "user", "agent", "tool_call" or "tool_result".
	Type    string `json:"type"`
	ID      string `json:"id,omitempty"`
	Content string `json:"content,omitempty"`
	// Images counts images attached to a user message.
	Images int `json:"images,omitempty"`
	// ToolID, Name and Args describe tool calls and results.
	ToolID string          `json:"tool_id,omitempty"`
	Name   string          `json:"name,omitempty"`
	Args   json.RawMessage `json:"args,omitempty"`
	// Status is "completed" or "failed" for a tool result.
	Status string `json:"status,omitempty"`
	// Ts is when the message was written, Unix milliseconds.
	Ts int64 `json:"ts,omitempty"`
}

// chatItems turns messages into chat items, leaving out hidden context.
func chatItems(msgs []llm.Message) []ChatItem {
	items := []ChatItem{}
	for _, m := range msgs {
		if m.Hidden {
			continue
		}
		switch m.Role {
		case llm.RoleUser:
			it := ChatItem{Type: "user", ID: m.ID, Ts: m.Created}
			var text []string
			for _, p := range m.Parts {
				switch p.Type {
				case llm.PartText:
					text = append(text, p.Text)
				case llm.PartImage:
					it.Images++
				}
			}
			it.Content = strings.Join(text, "\n")
			items = append(items, it)
		case llm.RoleAssistant:
			if t := m.Text(); t != "" {
				items = append(items, ChatItem{Type: "agent", ID: m.ID, Content: t, Ts: m.Created})
			}
			for _, c := range m.ToolCalls() {
				items = append(items, ChatItem{Type: "tool_call", ToolID: c.ID, Name: c.Name, Args: c.Args, Ts: m.Created})
			}
		case llm.RoleTool:
			for _, p := range m.Parts {
				if p.ToolResult == nil {
					continue
				}
				st := "completed"
				if p.ToolResult.IsError {
					st = "failed"
				}
				items = append(items, ChatItem{Type: "tool_result", ToolID: p.ToolResult.CallID, Name: p.ToolResult.Name,
					Content: p.ToolResult.Content, Status: st, Ts: m.Completed})
			}
		}
	}
	return items
}
