package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/llm"
)

// errRestarted is the error of a turn a crash cut short.
var errRestarted = errors.New("restarted during this turn")

// Recover repairs what a process that died mid-turn left behind, then
// starts the queued inputs: pending requests expire; turns that were
// running are marked interrupted, and the tool calls they left without a
// result get an error result the model will read (so the conversation
// stays valid for providers that insist on one); sessions still marked
// running become interrupted. Call it once, before serving.
func (e *Engine) Recover(ctx context.Context) error {
	now := e.now()
	notes := map[string]string{} // tool call id → why it did not run
	pending, err := e.st.Requests(ctx, "", store.RequestPending)
	if err != nil {
		return err
	}
	for _, r := range pending {
		r.State = StateExpired
		err := e.apply(nil, store.Change{Resolve: []store.Resolution{{ID: r.ID, Kind: r.Kind, State: StateExpired}},
			Events: e.events(r.SessionID, RequestResolved{Request: r, Time: now})})
		if err != nil {
			return err
		}
		if r.CallID != "" {
			notes[r.CallID] = fmt.Sprintf("the %s %s expired unanswered because the %s restarted; the call did not run",
				e.cfg.RequestNoun(r.Kind), r.ID, e.cfg.ProcessName)
		}
		e.log.Info("expired a request left pending by an earlier run", "kind", r.Kind, "id", r.ID, "session", r.SessionID)
	}
	queued, err := e.st.Inputs(ctx, store.InputQueued)
	if err != nil {
		return err
	}
	hasQueue := map[string]bool{}
	for _, in := range queued {
		hasQueue[in.SessionID] = true
	}
	running, err := e.st.Inputs(ctx, store.InputRunning)
	if err != nil {
		return err
	}
	for _, in := range running {
		if err := e.interrupted(ctx, in, notes, hasQueue[in.SessionID]); err != nil {
			return err
		}
	}
	defer e.index.drop() // InterruptRunning changes rows around apply
	if n, err := e.st.InterruptRunning(ctx, now, e.expiry(now)); err != nil {
		return err
	} else if n > 0 {
		e.log.Info("sessions left running by the previous process are interrupted", "count", n)
	}
	for _, in := range queued {
		var m llm.Message
		if err := json.Unmarshal(in.Data, &m); err != nil {
			e.log.Error("a queued input cannot be read; dropping it", "session", in.SessionID, "id", in.ID, "err", err)
			continue
		}
		ls := e.acquire(in.SessionID, "")
		ls.mu.Lock()
		ls.queue = append(ls.queue, &turnInput{in: Input{SessionID: in.SessionID, Prompt: m.Text(), Attended: true}, msg: m})
		e.startWorkerLocked(ls)
		ls.mu.Unlock()
		e.release(ls)
	}
	return nil
}

// expiry is when a session finished at now expires (zero: never).
func (e *Engine) expiry(now time.Time) time.Time {
	if ttl := e.resultTTL(); ttl > 0 {
		return now.Add(ttl)
	}
	return time.Time{}
}

// interrupted closes the turn of in, which a crash cut short.
func (e *Engine) interrupted(ctx context.Context, in store.Input, notes map[string]string, busy bool) error {
	now := e.now()
	row, err := e.st.GetSession(ctx, in.SessionID)
	if err != nil {
		return err
	}
	st, err := e.Conversation(ctx, row)
	if err != nil {
		return err
	}
	var c store.Change
	if fix := e.danglingResults(st.Messages, notes, now.UnixMilli()); fix != nil {
		c.Messages = []store.Message{{SessionID: in.SessionID, ID: fix.ID, Data: mustJSON(*fix)}}
		c.Events = e.events(in.SessionID, MessageAdded{SessionID: in.SessionID, Message: *fix, Prior: st.Messages, State: st, Time: now})
		st.Messages = append(st.Messages, *fix)
	}
	row.Status, row.Updated, row.Expires = store.StatusInterrupted, now, e.expiry(now)
	st.Updated = unixSeconds(now)
	row.State = meta(st)
	c.Update = &row
	in.State = store.InputInterrupted
	c.Inputs = []store.Input{in}
	out := Outcome{Status: store.StatusInterrupted, Result: ResultInterrupted,
		Err: fmt.Errorf("the %s %w", e.cfg.ProcessName, errRestarted), MessageID: in.ID}
	c.Events = append(c.Events, e.events(in.SessionID, TurnEnded{SessionID: in.SessionID, Outcome: out, Busy: busy, AgentBusy: busy,
		Recovered: true, State: st, Time: now})...)
	if err := e.apply(nil, c); err != nil {
		return err
	}
	e.log.Info("marked a turn interrupted by an earlier run", "session", in.SessionID, "message", in.ID)
	return nil
}

// danglingResults returns a tool message answering the calls of the last
// assistant message that have no result yet (nil when there are none).
func (e *Engine) danglingResults(msgs []llm.Message, notes map[string]string, now int64) *llm.Message {
	last := -1
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == llm.RoleAssistant {
			last = i
			break
		}
	}
	if last < 0 {
		return nil
	}
	calls := msgs[last].ToolCalls()
	if len(calls) == 0 {
		return nil
	}
	answered := map[string]bool{}
	for _, m := range msgs[last+1:] {
		for _, p := range m.Parts {
			if p.ToolResult != nil {
				answered[p.ToolResult.CallID] = true
			}
		}
	}
	fix := llm.Message{ID: agent.NewMessageID(), Role: llm.RoleTool, Created: now, Completed: now}
	for _, c := range calls {
		if answered[c.ID] {
			continue
		}
		why := fmt.Sprintf("interrupted: the %s restarted before this call finished; check its effects before retrying", e.cfg.ProcessName)
		if n, ok := notes[c.ID]; ok {
			why = "interrupted: " + n
		} else if c.Name == "question" {
			why = fmt.Sprintf("interrupted: the question expired unanswered because the %s restarted; ask again if you still need the answer", e.cfg.ProcessName)
		}
		fix.Parts = append(fix.Parts, llm.Part{Type: llm.PartToolResult, ToolResult: &llm.ToolResult{
			CallID: c.ID, Name: c.Name, Content: "Error: " + why, IsError: true}})
	}
	if len(fix.Parts) == 0 {
		return nil
	}
	return &fix
}
