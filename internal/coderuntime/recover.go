package coderuntime

import (
	"fmt"

	"github.com/agenthost/agenthost/llm"
)

// recover loads the sessions and repairs what a runtime that died
// mid-turn left behind: pending permissions and questions are expired,
// turns that were running are marked interrupted and their unanswered tool
// calls get error results the model will read, and queued messages are
// queued again.
func (r *Runtime) recover() error {
	stored, err := r.st.sessions()
	if err != nil {
		return err
	}
	for _, ss := range stored {
		s := &session{id: ss.ID, title: ss.Title}
		r.sessions[s.id] = s
		r.order = append(r.order, s)
	}
	queued, err := r.st.promptsIn(promptQueued)
	if err != nil {
		return err
	}
	for _, p := range queued {
		if s := r.sessions[p.SessionID]; s != nil {
			s.queue = append(s.queue, p)
		}
	}

	notes := map[string]string{} // tool call id → why it did not run
	for _, kind := range []string{kindPermission, kindQuestion} {
		reqs, err := r.st.requests(kind, statePending)
		if err != nil {
			return err
		}
		for _, q := range reqs {
			err := r.st.write(func(w *writer) error {
				if err := finishRequest(w, kind, q.ID, stateExpired, nil); err != nil {
					return err
				}
				if kind == kindPermission {
					return w.event(q.SessionID, kind, permissionEvent{SessionID: q.SessionID, State: stateExpired, Permission: q.Data})
				}
				return w.event(q.SessionID, kind, questionEvent{SessionID: q.SessionID, State: stateExpired, Question: q.Data})
			})
			if err != nil {
				return err
			}
			if q.CallID != "" {
				notes[q.CallID] = fmt.Sprintf("the permission request %s expired unanswered because the runtime restarted; the call did not run", q.ID)
			}
			r.log.Info("expired a request left pending by an earlier run", "kind", kind, "id", q.ID, "session", q.SessionID)
		}
	}

	running, err := r.st.promptsIn(promptRunning)
	if err != nil {
		return err
	}
	for _, p := range running {
		msgs, err := r.st.messages(p.SessionID)
		if err != nil {
			return err
		}
		fix, asst := danglingResults(msgs, notes, r.nowMS())
		busy := false
		if s := r.sessions[p.SessionID]; s != nil {
			busy = len(s.queue) > 0
		}
		err = r.st.write(func(w *writer) error {
			if err := setPromptState(w, p.ID, promptInterrupted); err != nil {
				return err
			}
			if fix != nil {
				if err := addMessage(w, p.SessionID, *fix); err != nil {
					return err
				}
				shown := render([]llm.Message{*asst, *fix})[0]
				if err := w.event(p.SessionID, "message", messageEvent{SessionID: p.SessionID, Message: shown}); err != nil {
					return err
				}
			}
			return w.event(p.SessionID, "status", statusEvent{SessionID: p.SessionID, Busy: busy, AgentBusy: busy,
				Result: resultInterrupted, Error: "the runtime restarted during this turn"})
		})
		if err != nil {
			return err
		}
		r.log.Info("marked a turn interrupted by an earlier run", "session", p.SessionID, "message", p.ID)
	}
	return nil
}

// danglingResults returns a tool message answering the calls of the last
// assistant message that have no result yet (nil when there are none),
// and that assistant message.
func danglingResults(msgs []llm.Message, notes map[string]string, now int64) (*llm.Message, *llm.Message) {
	last := -1
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == llm.RoleAssistant {
			last = i
			break
		}
	}
	if last < 0 {
		return nil, nil
	}
	calls := msgs[last].ToolCalls()
	if len(calls) == 0 {
		return nil, nil
	}
	answered := map[string]bool{}
	for _, m := range msgs[last+1:] {
		for _, p := range m.Parts {
			if p.ToolResult != nil {
				answered[p.ToolResult.CallID] = true
			}
		}
	}
	fix := llm.Message{ID: newID("msg_"), Role: llm.RoleTool, Created: now, Completed: now}
	for _, c := range calls {
		if answered[c.ID] {
			continue
		}
		why := "interrupted: the runtime restarted before this call finished; check its effects before retrying"
		if n, ok := notes[c.ID]; ok {
			why = "interrupted: " + n
		} else if c.Name == "question" {
			why = "interrupted: the question expired unanswered because the runtime restarted; ask again if you still need the answer"
		}
		fix.Parts = append(fix.Parts, llm.Part{Type: llm.PartToolResult, ToolResult: &llm.ToolResult{
			CallID: c.ID, Name: c.Name, Content: "Error: " + why, IsError: true}})
	}
	if len(fix.Parts) == 0 {
		return nil, nil
	}
	asst := msgs[last]
	return &fix, &asst
}
