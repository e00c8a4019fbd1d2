package host

import (
	"encoding/json"

	"github.com/agenthost/agenthost/internal/engine"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/llm"
)

// wsEvents spells the engine's happenings as the WebSocket protocol's
// server frames (protocol.md §3): each with its type, session_id and ts;
// the event id is added when a frame is sent.
func wsEvents(h engine.Happening) []store.Event {
	switch h := h.(type) {
	case engine.TextDelta:
		return wsEvent("STREAM", h.SessionID, h.Time.UnixMilli(), map[string]any{"chunk": h.Text})
	case engine.ModelCall:
		return wsEvent("llm_call", h.SessionID, h.Time.UnixMilli(), map[string]any{"model": h.Model, "iteration": h.Iteration})
	case engine.ModelResult:
		return wsEvent("llm_result", h.SessionID, h.Time.UnixMilli(), map[string]any{"duration_ms": h.Duration.Milliseconds(),
			"usage": h.Usage, "model": h.Model, "cost": h.Cost})
	case engine.ToolCall:
		return wsEvent("tool_call", h.SessionID, h.Time.UnixMilli(), map[string]any{"tool_id": h.Call.ID, "name": h.Call.Name,
			"args": rawArgs(h.Call.Args)})
	case engine.ToolResult:
		o := h.Outcome
		text := o.Output
		if o.Err != nil {
			text = o.Err.Error()
		}
		return wsEvent("tool_result", h.SessionID, h.Time.UnixMilli(), map[string]any{"tool_id": o.CallID, "name": o.Name,
			"status": string(o.Status), "result": text, "timing_ms": o.Duration.Milliseconds()})
	case engine.MessageAdded:
		if h.Message.Role != llm.RoleTool || h.Error != "" {
			return nil
		}
		return wsEvent("session_sync", h.SessionID, h.Time.UnixMilli(), map[string]any{"session": sessionOf(h.SessionID, h.State)})
	case engine.RequestPending:
		fields := map[string]any{}
		if err := json.Unmarshal(h.Request.Data, &fields); err != nil {
			return nil
		}
		return wsEvent(h.Request.Kind, h.Request.SessionID, h.Time.UnixMilli(), fields)
	case engine.TurnEnded:
		if h.Recovered {
			return nil
		}
		out := h.Outcome
		if out.Status == store.StatusFailed {
			msg := "run failed"
			if out.Err != nil {
				msg = "run failed: " + out.Err.Error()
			}
			return wsEvent("ERROR", h.SessionID, h.Time.UnixMilli(), map[string]any{"message": msg, "code": "run_failed"})
		}
		sess := sessionOf(h.SessionID, h.State)
		return wsEvent("OUTPUT", h.SessionID, h.Time.UnixMilli(), map[string]any{"result": out.Text,
			"duration_ms": out.Duration.Milliseconds(), "status": string(out.Status), "session": sess, "chat_items": chatItems(sess.Messages)})
	}
	return nil
}

func wsEvent(typ, sessionID string, ts int64, fields map[string]any) []store.Event {
	fields["type"] = typ
	fields["session_id"] = sessionID
	fields["ts"] = ts
	b, err := json.Marshal(fields)
	if err != nil {
		return nil
	}
	return []store.Event{{Type: typ, Data: b}}
}
