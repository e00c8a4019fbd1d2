package host

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"

	"github.com/agenthost/agenthost/internal/engine"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/llm"
	"github.com/agenthost/agenthost/trust"
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
		sessJSON, err := json.Marshal(sess)
		if err != nil {
			return nil
		}
		evs := wsEvent("OUTPUT", h.SessionID, h.Time.UnixMilli(), map[string]any{"result": out.Text,
			"duration_ms": out.Duration.Milliseconds(), "status": string(out.Status), "chat_items": chatItems(sess.Messages)})
		for i := range evs {
			// The session goes in as encoded, not through a
			// json.RawMessage, which Marshal would scan and copy again.
			d := evs[i].Data
			b := make([]byte, 0, len(d)+len(sessJSON)+12)
			b = append(b, d[:len(d)-1]...)
			b = append(b, `,"session":`...)
			b = append(b, sessJSON...)
			evs[i].Data = append(b, '}')
			evs[i].Note = &outputNote{sessionID: h.SessionID, result: out.Text, session: sessJSON}
		}
		return evs
	}
	return nil
}

// outputNote is what an OUTPUT event's signature covers, kept beside the
// event so that signing it for each connection does not parse the event
// (the whole session) again. The session's digest is computed once, by
// the first connection that signs it.
type outputNote struct {
	sessionID, result string
	session           json.RawMessage

	once   sync.Once
	fields outputSigFields
	err    error
}

// outputSigFields are the fields an OUTPUT's signature covers besides the
// connection's own (event id, recipient, timestamp).
type outputSigFields struct {
	sessionID, resultSHA256, digest string
}

func (n *outputNote) sigFields() (outputSigFields, error) {
	n.once.Do(func() {
		n.fields, n.err = outputFields(n.sessionID, n.result, n.session)
		n.session = nil // no longer needed
	})
	return n.fields, n.err
}

// outputFields computes an OUTPUT's signed fields from its session id,
// result and session (JSON; empty or null for none).
func outputFields(sessionID, result string, session json.RawMessage) (outputSigFields, error) {
	sum := sha256.Sum256([]byte(result))
	f := outputSigFields{sessionID: sessionID, resultSHA256: hex.EncodeToString(sum[:])}
	if len(session) > 0 && string(session) != "null" {
		d, err := trust.BodyDigest(session, nil, nil)
		if err != nil {
			return f, err
		}
		f.digest = d
	}
	return f, nil
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
