package coderuntime

import (
	"encoding/json"

	"github.com/agenthost/agenthost/internal/engine"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/llm"
)

// The control API's events (docs/runtime-control.md): the engine's
// happenings in the seed's words.
type (
	statusEvent struct {
		SessionID string `json:"sessionId"`
		Busy      bool   `json:"busy"`
		AgentBusy bool   `json:"agentBusy"`
		Result    string `json:"result,omitempty"`
		Error     string `json:"error,omitempty"`
	}
	sessionEvent struct {
		SessionID string  `json:"sessionId"`
		Title     *string `json:"title"`
	}
	messageEvent struct {
		SessionID string  `json:"sessionId"`
		Message   Message `json:"message"`
	}
	deltaEvent struct {
		SessionID string `json:"sessionId"`
		Text      string `json:"text"`
	}
	permissionEvent struct {
		SessionID  string          `json:"sessionId"`
		State      string          `json:"state"`
		Permission json.RawMessage `json:"permission"`
		Reply      json.RawMessage `json:"reply,omitempty"`
	}
	questionEvent struct {
		SessionID string          `json:"sessionId"`
		State     string          `json:"state"`
		Question  json.RawMessage `json:"question"`
		Answers   json.RawMessage `json:"answers,omitempty"`
	}
)

// Kinds of request, named as their events and routes.
const (
	kindPermission = "permission"
	kindQuestion   = "question"
)

// controlEvents is the control API's Journal.
func controlEvents(h engine.Happening) []store.Event {
	switch h := h.(type) {
	case engine.SessionCreated:
		return events(ev("session", sessionEvent{SessionID: h.SessionID}))
	case engine.TurnStarted:
		return events(ev("status", statusEvent{SessionID: h.SessionID, Busy: true, AgentBusy: true}),
			ev("message", messageEvent{SessionID: h.SessionID, Message: render([]llm.Message{h.Message})[0]}))
	case engine.TextDelta:
		return events(ev("message.delta", deltaEvent{SessionID: h.SessionID, Text: h.Text}))
	case engine.MessageAdded:
		m := shown(h.Prior, h.Message)
		if h.Error != "" {
			m = renderFailed(h.Message, h.Error)
		}
		return events(ev("message", messageEvent{SessionID: h.SessionID, Message: m}))
	case engine.RequestPending:
		return requestEvent(h.Request)
	case engine.RequestResolved:
		return requestEvent(h.Request)
	case engine.Titled:
		t := h.Title
		return events(ev("session", sessionEvent{SessionID: h.SessionID, Title: &t}))
	case engine.TurnEnded:
		st := statusEvent{SessionID: h.SessionID, Busy: h.Busy, AgentBusy: h.AgentBusy, Result: string(h.Outcome.Result)}
		if h.Outcome.Err != nil && h.Outcome.Result != "completed" {
			st.Error = h.Outcome.Err.Error()
		}
		return events(ev("status", st))
	}
	return nil
}

func requestEvent(r store.Request) []store.Event {
	switch r.Kind {
	case kindPermission:
		return events(ev(kindPermission, permissionEvent{SessionID: r.SessionID, State: r.State, Permission: r.Data, Reply: r.Reply}))
	case kindQuestion:
		return events(ev(kindQuestion, questionEvent{SessionID: r.SessionID, State: r.State, Question: r.Data, Answers: r.Reply}))
	}
	return nil
}

func ev(typ string, data any) store.Event {
	b, err := json.Marshal(data)
	if err != nil {
		return store.Event{}
	}
	return store.Event{Type: typ, Data: b}
}

func events(evs ...store.Event) []store.Event {
	out := evs[:0]
	for _, e := range evs {
		if e.Type != "" {
			out = append(out, e)
		}
	}
	return out
}

// shown is how m appears in the history: a tool message shows as the
// assistant message whose calls it answers, with the results folded in.
func shown(prior []llm.Message, m llm.Message) Message {
	if m.Role != llm.RoleTool {
		return render([]llm.Message{m})[0]
	}
	for i := len(prior) - 1; i >= 0; i-- {
		if prior[i].Role == llm.RoleAssistant {
			return render([]llm.Message{prior[i], m})[0]
		}
	}
	return Message{ID: m.ID, Info: MessageInfo{Role: string(llm.RoleAssistant), Parts: []Part{}}}
}
