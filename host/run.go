package host

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/agenthost/agenthost/agent"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/llm"
)

// runInput is one prompt to run, from any transport.
type runInput struct {
	caller    Caller
	sessionID string
	session   *Session
	prompt    string
	// parts are images and notes about uploaded files, after the prompt.
	parts []llm.Part
	// interactive runs have someone to approve tools and answer
	// questions (a WebSocket client); others refuse such calls.
	interactive bool
}

// outcome is how a run ended, as transports report it.
type outcome struct {
	Status   store.Status
	Result   string
	Err      error
	Duration time.Duration
	Session  *Session
}

// runHandle is a started run.
type runHandle struct {
	sessionID   string
	serverNewer bool
	live        *liveSession
	done        chan struct{}
	out         outcome // set before done closes
}

// answer is a person's reply to approval_needed or ask_user.
type answer struct {
	approval *approvalResponse
	ask      []string
}

type approvalResponse struct {
	Approved bool
	Scope    string
	Feedback string
}

// activeRun is a run in progress.
type activeRun struct {
	cancel context.CancelCauseFunc
	mu     sync.Mutex
	// waiting is "approval" or "ask" while the run waits for a person.
	waiting string
	answers chan answer
}

func (r *activeRun) deliver(a answer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	want := "ask"
	if a.approval != nil {
		want = "approval"
	}
	if r.waiting != want {
		return errNotWaiting
	}
	select {
	case r.answers <- a:
		r.waiting = ""
		return nil
	default:
		return errNotWaiting
	}
}

// start admits a run: it finds the session, reserves it (ErrBusy if it has
// a run), waits for a worker (ErrOverloaded past the queue), records the
// session as running and starts the run detached from ctx, which only
// bounds the wait. sub, if not nil, is subscribed before the first event.
func (e *engine) start(ctx context.Context, in runInput, sub *subscriber) (*runHandle, error) {
	if e.closing.Load() {
		return nil, ErrShuttingDown
	}
	sess, stored, newer, err := e.sessionFor(ctx, in.caller, in.sessionID, in.session)
	if err != nil {
		return nil, err
	}
	ls := e.acquire(sess.SessionID, in.caller.Address)
	ls.mu.Lock()
	if ls.run != nil {
		ls.mu.Unlock()
		e.release(ls)
		return nil, ErrBusy
	}
	run := &activeRun{answers: make(chan answer, 1)}
	ls.run = run
	ls.owner = in.caller.Address
	attach := sub != nil && sub.ls != ls
	if attach {
		ls.subs[sub] = struct{}{}
	}
	ls.mu.Unlock()
	if attach {
		// The subscriber holds its own reference, released by unsubscribe.
		e.acquire(ls.id, ls.owner)
		sub.ls = ls
	}
	abandon := func() {
		ls.mu.Lock()
		ls.run = nil
		ls.mu.Unlock()
		e.release(ls)
		if attach {
			e.unsubscribe(ls, sub)
		}
	}

	select {
	case e.slots <- struct{}{}:
	default:
		if e.waiting.Add(1) > int64(e.queue) {
			e.waiting.Add(-1)
			abandon()
			return nil, ErrOverloaded
		}
		select {
		case e.slots <- struct{}{}:
			e.waiting.Add(-1)
		case <-ctx.Done():
			e.waiting.Add(-1)
			abandon()
			return nil, ctx.Err()
		}
	}

	// Shutdown may have begun while this run waited for a worker; runs
	// are counted under e.mu so that shutdown waits for every one it let in.
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.slots
		abandon()
		return nil, ErrShuttingDown
	}
	e.runs.Add(1)
	e.mu.Unlock()

	now := e.now()
	row := store.Session{ID: sess.SessionID, Owner: in.caller.Address, Status: store.StatusRunning,
		Prompt: in.prompt, Created: now, Updated: now}
	// The input is part of the state recorded now, so a crash at any later
	// point keeps it; the run appends it again under the same id.
	input := &llm.Message{ID: agent.NewMessageID(), Role: llm.RoleUser, Created: now.UnixMilli(),
		Parts: append([]llm.Part{llm.TextPart(in.prompt)}, in.parts...)}
	sess.Messages = append(sess.Messages[:len(sess.Messages):len(sess.Messages)], *input)
	sess.Updated = unixSeconds(now)
	state, _ := json.Marshal(sess)
	row.State = state
	if stored != nil {
		row.Created = stored.Created
		err = e.st.UpdateSession(context.Background(), row)
	} else {
		err = e.st.CreateSession(context.Background(), row)
	}
	if err != nil {
		<-e.slots
		e.runs.Done()
		abandon()
		return nil, fmt.Errorf("recording session: %w", err)
	}

	runCtx, cancel := context.WithCancelCause(e.base)
	run.cancel = cancel
	h := &runHandle{sessionID: sess.SessionID, serverNewer: newer, live: ls, done: make(chan struct{})}
	go func() {
		defer e.runs.Done()
		defer cancel(nil)
		out, finish := e.execute(runCtx, ls, run, row, sess, input, in)
		h.out = out
		<-e.slots
		ls.mu.Lock()
		ls.run = nil
		ls.mu.Unlock()
		// OUTPUT (or ERROR) goes out only now: a client that answers it at
		// once, as the seed's app.js does, finds the session free.
		finish()
		e.release(ls)
		close(h.done)
	}()
	return h, nil
}

// execute runs the agent on a fresh instance from the factory and records
// every step. The run's last event (OUTPUT or ERROR) is left to finish,
// which the caller calls once the session's run slot is free; finish also
// waits until every event is delivered.
func (e *engine) execute(ctx context.Context, ls *liveSession, run *activeRun, row store.Session, sess *Session, input *llm.Message, in runInput) (outcome, func()) {
	rt := e.srv.current()
	start := e.now()
	conv := agent.Conversation{Messages: sess.Messages[:len(sess.Messages)-1]}
	base := len(conv.Messages)
	var res *agent.Result

	pub := e.newPublisher(ls)
	emit := func(typ string, fields map[string]any) {
		fields["type"] = typ
		fields["session_id"] = ls.id
		fields["ts"] = e.now().UnixMilli()
		b, err := json.Marshal(fields)
		if err != nil {
			e.log.Error("encoding event", "type", typ, "err", err)
			return
		}
		pub.send(typ, b)
	}
	saveState := func(status store.Status) {
		sess.Messages = conv.Messages
		sess.Updated = unixSeconds(e.now())
		row.State, _ = json.Marshal(sess)
		row.Status, row.Updated = status, e.now()
		if err := e.st.UpdateSession(context.Background(), row); err != nil {
			e.log.Error("saving session", "session", ls.id, "err", err)
		}
	}

	a, err := rt.newAgent()
	if err != nil {
		res = &agent.Result{Status: agent.StatusFailed, Err: fmt.Errorf("building the agent: %w", err)}
	} else {
		opts := []agent.RunOption{agent.WithClock(func() int64 { return e.now().UnixMilli() })}
		if rt.needs != nil {
			opts = append(opts, agent.WithApprover(e.approver(ls, run, in.interactive, rt, emit, saveState)))
		}
		if in.interactive {
			opts = append(opts, agent.WithAsker(e.asker(run, rt, emit, saveState)))
		}
		sinceSync := false
		for ev := range a.Run(ctx, &conv, []llm.Message{*input}, opts...) {
			switch ev.Type {
			case agent.EventText:
				emit("STREAM", map[string]any{"chunk": ev.Text})
			case agent.EventLLMCall:
				sess.Iteration++
				emit("llm_call", map[string]any{"model": ev.Model, "iteration": sess.Iteration})
			case agent.EventLLMResult:
				emit("llm_result", map[string]any{"duration_ms": ev.Duration.Milliseconds(), "usage": ev.Usage,
					"model": ev.Model, "cost": ev.Cost})
			case agent.EventToolCall:
				emit("tool_call", map[string]any{"tool_id": ev.ToolCall.ID, "name": ev.ToolCall.Name, "args": rawArgs(ev.ToolCall.Args)})
			case agent.EventToolResult:
				o := ev.ToolResult
				text := o.Output
				if o.Err != nil {
					text = o.Err.Error()
				}
				emit("tool_result", map[string]any{"tool_id": o.CallID, "name": o.Name, "status": string(o.Status),
					"result": text, "timing_ms": o.Duration.Milliseconds()})
				sinceSync = true
			case agent.EventMessage:
				// Each step is durable as it happens, so a crash keeps
				// the conversation up to the last message. The input was
				// saved by start, and the final answer is saved with the
				// result just below.
				m := ev.Message
				if m.Role != llm.RoleUser && !(m.Role == llm.RoleAssistant && len(m.ToolCalls()) == 0) {
					saveState(store.StatusRunning)
				}
				if sinceSync && ev.Message.Role == llm.RoleTool {
					emit("session_sync", map[string]any{"session": sess})
					sinceSync = false
				}
			case agent.EventResult:
				res = ev.Result
			}
		}
	}
	out := outcome{Result: res.Text, Err: res.Err, Duration: e.now().Sub(start)}
	switch res.Status {
	case agent.StatusCompleted, agent.StatusMaxIterations, agent.StatusRejected:
		out.Status = store.StatusDone
		if res.Status == agent.StatusRejected && out.Result == "" {
			out.Result = "The request was stopped: a tool call was rejected."
		}
	case agent.StatusAborted:
		out.Status = store.StatusInterrupted
	default:
		out.Status = store.StatusFailed
	}
	if len(conv.Messages) > base || out.Status == store.StatusDone {
		sess.Turn++
	}
	sess.Messages = conv.Messages
	sess.Updated = unixSeconds(e.now())
	out.Session = sess
	row.State, _ = json.Marshal(sess)
	row.Status, row.Result, row.Updated, row.Duration = out.Status, out.Result, e.now(), out.Duration
	row.Expires = e.now().Add(rt.cfg.ResultTTL)
	if out.Status == store.StatusFailed && out.Result == "" && out.Err != nil {
		row.Result = ""
	}
	if err := e.st.UpdateSession(context.Background(), row); err != nil {
		e.log.Error("saving session result", "session", ls.id, "err", err)
	}
	if out.Status == store.StatusFailed {
		msg := "run failed"
		if out.Err != nil {
			msg = "run failed: " + out.Err.Error()
		}
		e.log.Warn("run failed", "session", ls.id, "err", out.Err)
		return out, func() {
			emit("ERROR", map[string]any{"message": msg, "code": "run_failed"})
			pub.close()
		}
	}
	final := map[string]any{"result": out.Result, "duration_ms": out.Duration.Milliseconds(),
		"status": string(out.Status), "session": sess, "chat_items": chatItems(sess.Messages)}
	return out, func() {
		emit("OUTPUT", final)
		pub.close()
	}
}

// rawArgs keeps valid JSON arguments as they are and wraps anything else
// in a string, so an event always encodes.
func rawArgs(b json.RawMessage) any {
	if len(b) == 0 {
		return map[string]any{}
	}
	if json.Valid(b) {
		return b
	}
	return string(b)
}

// approver asks the client about tools that need approval.
func (e *engine) approver(ls *liveSession, run *activeRun, interactive bool, rt *runtime, emit func(string, map[string]any), save func(store.Status)) agent.Approver {
	return func(ctx context.Context, call llm.ToolCall) (agent.Decision, error) {
		if !rt.needs(call) {
			return agent.Decision{Allow: true}, nil
		}
		ls.mu.Lock()
		ok := ls.approved[call.Name]
		ls.mu.Unlock()
		if ok {
			return agent.Decision{Allow: true}, nil
		}
		if !interactive {
			return agent.Decision{Feedback: fmt.Sprintf("tool %s needs a person's approval, and this request came over plain HTTP where nobody can give it; tell the user to use the WebSocket API (/ws or /docs) for this", call.Name)}, nil
		}
		a, err := e.wait(ctx, run, "approval", rt, save, func() {
			fields := map[string]any{"tool": call.Name, "arguments": rawArgs(call.Args), "tool_id": call.ID}
			if d := rt.toolDescription(call.Name); d != "" {
				fields["description"] = d
			}
			emit("approval_needed", fields)
		})
		if err != nil {
			return agent.Decision{}, err
		}
		r := a.approval
		if r.Approved && r.Scope == "session" {
			ls.mu.Lock()
			ls.approved[call.Name] = true
			ls.mu.Unlock()
		}
		return agent.Decision{Allow: r.Approved, Feedback: r.Feedback}, nil
	}
}

// asker puts a tool's questions to the client, one ask_user per question.
func (e *engine) asker(run *activeRun, rt *runtime, emit func(string, map[string]any), save func(store.Status)) agent.Asker {
	return func(ctx context.Context, qs []agent.Question) ([][]string, error) {
		out := make([][]string, 0, len(qs))
		for _, q := range qs {
			opts := make([]string, len(q.Options))
			for i, o := range q.Options {
				opts[i] = o.Label
			}
			a, err := e.wait(ctx, run, "ask", rt, save, func() {
				text := q.Question
				if q.Header != "" {
					text = q.Header + ": " + text
				}
				emit("ask_user", map[string]any{"text": text, "options": opts, "multi_select": q.MultiSelect})
			})
			if err != nil {
				return nil, err
			}
			out = append(out, a.ask)
		}
		return out, nil
	}
}

// wait marks the run as waiting, sends the question, and waits for the
// answer, the run's end or the timeout.
func (e *engine) wait(ctx context.Context, run *activeRun, kind string, rt *runtime, save func(store.Status), ask func()) (answer, error) {
	run.mu.Lock()
	run.waiting = kind
	run.mu.Unlock()
	save(store.StatusWaitingApproval)
	ask()
	defer save(store.StatusRunning)
	t := time.NewTimer(rt.approveFor)
	defer t.Stop()
	select {
	case a := <-run.answers:
		return a, nil
	case <-ctx.Done():
		run.mu.Lock()
		run.waiting = ""
		run.mu.Unlock()
		return answer{}, context.Cause(ctx)
	case <-t.C:
		run.mu.Lock()
		run.waiting = ""
		run.mu.Unlock()
		return answer{}, fmt.Errorf("nobody answered within %s", rt.approveFor)
	}
}
