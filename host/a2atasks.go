package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/agenthost/agenthost/internal/obs"
	"go.opentelemetry.io/otel/trace"
	"iter"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/agenthost/agenthost/internal/a2amap"
	"github.com/agenthost/agenthost/internal/engine"
	"github.com/agenthost/agenthost/internal/ids"
	"github.com/agenthost/agenthost/internal/store"
	"github.com/agenthost/agenthost/llm"
)

// The mapping (docs/a2a.md):
//
//   - contextId is a host session, owned like every session
//     (hostEngine.resolve): a caller's own session is continued; an id
//     that is not its own gives it a session derived from the caller and
//     the id, never someone else's.
//   - A task is one run: its id is "<session id>~<user message id>", and
//     its state, history and result are read back from the session's
//     conversation, so tasks are as durable as sessions.
//   - Text parts make the prompt, data parts are added to it as JSON, file
//     parts are attachments under the same limits as POST /input.
//   - A tool approval or an ask_user question is input-required, answered
//     by the next message that names the task; tasks/cancel interrupts.

// a2aTasks implements a2asrv.RequestHandler over the host's engine.
type a2aTasks struct {
	a2amap.Unsupported
	s *Server
}

func (h *a2aTasks) call(ctx context.Context) (a2aCall, error) {
	c, ok := a2aCallFrom(ctx)
	if !ok {
		return a2aCall{}, fmt.Errorf("%w: request was not admitted", a2a.ErrInvalidRequest)
	}
	return c, nil
}

// a2aError maps host and engine errors onto A2A's, keeping the host's
// message in the error's data.
func a2aError(err error) error {
	if err == nil {
		return nil
	}
	var kind error
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExpired):
		kind = a2a.ErrTaskNotFound
	case errors.Is(err, ErrBusy):
		return fmt.Errorf("%w: this context has a task running; wait for it, answer it or cancel it first", a2a.ErrInvalidRequest)
	case errors.Is(err, ErrOverloaded), errors.Is(err, engine.ErrShuttingDown):
		kind = a2a.ErrServerError
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		kind = a2a.ErrServerError
	default:
		var he *httpError
		if errors.As(err, &he) && he.Status < 500 {
			kind = a2a.ErrInvalidParams
		} else {
			kind = a2a.ErrInternalError
		}
	}
	return fmt.Errorf("%w: %w", kind, err)
}

// --- the methods ---

// OnGetTask implements tasks/get.
func (h *a2aTasks) OnGetTask(ctx context.Context, q *a2a.TaskQueryParams) (*a2a.Task, error) {
	c, err := h.call(ctx)
	if err != nil {
		return nil, err
	}
	t, err := h.task(ctx, c, q.ID)
	if err != nil {
		return nil, err
	}
	if q.HistoryLength != nil && *q.HistoryLength >= 0 && len(t.History) > *q.HistoryLength {
		t.History = t.History[len(t.History)-*q.HistoryLength:]
	}
	return t, nil
}

// OnCancelTask implements tasks/cancel: it interrupts the run and waits
// for its end to be recorded.
func (h *a2aTasks) OnCancelTask(ctx context.Context, p *a2a.TaskIDParams) (*a2a.Task, error) {
	c, err := h.call(ctx)
	if err != nil {
		return nil, err
	}
	t, err := h.task(ctx, c, p.ID)
	if err != nil {
		return nil, err
	}
	if t.Status.State.Terminal() {
		if t.Status.State == a2a.TaskStateCanceled {
			return t, nil
		}
		return nil, fmt.Errorf("%w: the task is %s", a2a.ErrTaskNotCancelable, t.Status.State)
	}
	sid, _, _ := a2amap.SplitTaskID(p.ID)
	// Follow first, then look again: the end cannot slip between.
	f, err := h.follow(ctx, sid, c)
	if err != nil {
		return nil, err
	}
	defer f.close()
	if t, err = h.task(ctx, c, p.ID); err != nil || t.Status.State.Terminal() {
		if err == nil && t.Status.State != a2a.TaskStateCanceled {
			err = fmt.Errorf("%w: the task is %s", a2a.ErrTaskNotCancelable, t.Status.State)
			t = nil
		}
		return t, err
	}
	if !h.s.eng.interrupt(sid, c.caller) {
		return nil, fmt.Errorf("%w: the task's run is not this caller's to interrupt, or has ended", a2a.ErrTaskNotCancelable)
	}
	for ev := range f.events(ctx) {
		if ev.Type == "OUTPUT" || ev.Type == "ERROR" {
			break
		}
		if ev.Type == a2aCheck {
			if t, err := h.task(ctx, c, p.ID); err != nil || t.Status.State.Terminal() {
				break
			}
		}
	}
	return h.task(ctx, c, p.ID)
}

// OnSendMessage implements message/send: it starts a run (or answers the
// task's pending question) and, unless configuration.blocking is false,
// returns the task once it completes, fails, is canceled or needs input.
func (h *a2aTasks) OnSendMessage(ctx context.Context, p *a2a.MessageSendParams) (a2a.SendMessageResult, error) {
	c, err := h.call(ctx)
	if err != nil {
		return nil, err
	}
	id, f, err := h.send(ctx, c, p)
	if err != nil {
		return nil, err
	}
	defer f.close()
	if p.Config == nil || p.Config.Blocking == nil || *p.Config.Blocking {
		for ev := range f.events(ctx) {
			if settles(ev.Type) {
				break
			}
			if ev.Type == a2aCheck {
				if t, err := h.task(ctx, c, id); err != nil || t.Status.State.Terminal() || t.Status.State == a2a.TaskStateInputRequired {
					break
				}
			}
		}
	}
	t, err := h.task(ctx, c, id)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// OnSendMessageStream implements message/stream: the task, then its
// status and artifact updates until it settles.
func (h *a2aTasks) OnSendMessageStream(ctx context.Context, p *a2a.MessageSendParams) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		c, err := h.call(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		id, f, err := h.send(ctx, c, p)
		if err != nil {
			yield(nil, err)
			return
		}
		defer f.close()
		t, err := h.task(ctx, c, id)
		if err != nil {
			yield(nil, err)
			return
		}
		if !yield(t, nil) {
			return
		}
		h.stream(ctx, c, t, f, yield)
	}
}

// OnResubscribeToTask implements tasks/resubscribe: the task as it is,
// then, while it runs, its updates until it settles.
func (h *a2aTasks) OnResubscribeToTask(ctx context.Context, p *a2a.TaskIDParams) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		c, err := h.call(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		sid, _, ok := a2amap.SplitTaskID(p.ID)
		if !ok {
			yield(nil, a2a.ErrTaskNotFound)
			return
		}
		// Follow first, then look: nothing between is lost.
		f, err := h.follow(ctx, sid, c)
		if err != nil {
			yield(nil, err)
			return
		}
		defer f.close()
		t, err := h.task(ctx, c, p.ID)
		if err != nil {
			yield(nil, err)
			return
		}
		if !yield(t, nil) || t.Status.State.Terminal() || t.Status.State == a2a.TaskStateInputRequired {
			return
		}
		h.stream(ctx, c, t, f, yield)
	}
}

// settles reports whether an event ends a task's wait: its end, or a
// question for the caller.
func settles(typ string) bool {
	return typ == "OUTPUT" || typ == "ERROR" || typ == kindApproval || typ == kindAsk
}

// --- starting and answering ---

// send starts the message's run, or answers its task's question, and
// returns the task followed from before its first event.
func (h *a2aTasks) send(ctx context.Context, c a2aCall, p *a2a.MessageSendParams) (a2a.TaskID, *a2aFollower, error) {
	msg := p.Message
	if msg == nil {
		return "", nil, fmt.Errorf("%w: params.message is required", a2a.ErrInvalidParams)
	}
	if msg.Role != "" && msg.Role != a2a.MessageRoleUser {
		return "", nil, fmt.Errorf("%w: message.role must be \"user\"", a2a.ErrInvalidParams)
	}
	if msg.TaskID != "" {
		f, err := h.answer(ctx, c, msg)
		return msg.TaskID, f, err
	}
	prompt, images, files, err := a2aInput(msg.Parts)
	if err != nil {
		return "", nil, err
	}
	rt := h.s.current()
	owner := uploadOwner{caller: c.caller, remote: c.remote}
	parts, err := attachments(rt.cfg, images, files, owner, h.s.now)
	if err != nil {
		return "", nil, a2aError(err)
	}
	e := h.s.eng
	r, err := e.resolve(ctx, c.caller, msg.ContextID, nil, false)
	if err != nil {
		return "", nil, a2aError(err)
	}
	mid := ids.Hex("msg_")
	sub := newSubscriber()
	in := engine.Input{SessionID: r.sess.SessionID, Owner: c.caller.Address, Prompt: prompt, Attended: true,
		Data:    turnData{uploads: uploadsDirOf(rt.cfg, owner), trace: trace.SpanContextFromContext(ctx), requestID: obs.RequestID(ctx)},
		Message: llm.Message{ID: mid, Role: llm.RoleUser, Parts: append([]llm.Part{llm.TextPart(prompt)}, parts...)}}
	if _, err := e.core.Start(ctx, in, sub); err != nil {
		e.unsubscribe(sub)
		return "", nil, a2aError(err)
	}
	return a2amap.TaskID(r.sess.SessionID, mid), &a2aFollower{s: h.s, sid: r.sess.SessionID, owner: c.caller.Address, sub: sub}, nil
}

// a2aInput turns a message's parts into a prompt and attachments: images
// go to the model as images, other files are saved as uploads.
func a2aInput(parts a2a.ContentParts) (prompt string, images []string, files []fileInput, err error) {
	in, err := a2amap.Parse(parts)
	if err != nil {
		return "", nil, nil, err
	}
	for _, f := range in.Files {
		if f.IsImage() {
			images = append(images, f.DataURL())
		} else {
			files = append(files, fileInput{Name: f.Name, Data: f.DataURL(), Type: f.MimeType})
		}
	}
	return in.Prompt, images, files, nil
}

// answer delivers a message naming a task to that task's pending
// question: an approval ("yes"/"no", or a data part {"approved": bool,
// "scope": "session", "feedback": "…"}) or an ask_user answer (the text,
// or a data part {"answer": ["…"]}).
func (h *a2aTasks) answer(ctx context.Context, c a2aCall, msg *a2a.Message) (*a2aFollower, error) {
	sid, _, ok := a2amap.SplitTaskID(msg.TaskID)
	if !ok {
		return nil, a2a.ErrTaskNotFound
	}
	if msg.ContextID != "" && msg.ContextID != sid {
		return nil, fmt.Errorf("%w: message.contextId is not the task's context", a2a.ErrInvalidParams)
	}
	t, err := h.task(ctx, c, msg.TaskID)
	if err != nil {
		return nil, err
	}
	if t.Status.State != a2a.TaskStateInputRequired {
		return nil, fmt.Errorf("%w: the task is %s, not waiting for input; to go on, send a message without taskId in context %s", a2a.ErrInvalidParams, t.Status.State, sid)
	}
	pending, err := h.s.eng.core.Pending(ctx, "", sid)
	if err != nil || len(pending) == 0 {
		return nil, fmt.Errorf("%w: the task is not waiting for input any more", a2a.ErrInvalidParams)
	}
	kind := pending[len(pending)-1].Kind
	var text string
	var data map[string]any
	for _, p := range msg.Parts {
		switch p := p.(type) {
		case a2a.TextPart:
			text += p.Text
		case a2a.DataPart:
			data = p.Data
		}
	}
	var reply any
	switch kind {
	case kindApproval:
		r := approvalResponse{}
		if data != nil {
			b, _ := json.Marshal(data)
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, fmt.Errorf("%w: the approval data part must be {\"approved\": bool, \"scope\"?: \"session\", \"feedback\"?: string}", a2a.ErrInvalidParams)
			}
		} else {
			switch strings.ToLower(strings.Trim(strings.TrimSpace(text), ".!")) {
			case "yes", "y", "approve", "approved", "allow", "ok":
				r.Approved = true
			case "always", "yes, always":
				r.Approved, r.Scope = true, "session"
			default:
				r.Feedback = text
			}
		}
		reply = r
	case kindAsk:
		var ans []string
		if a, ok := data["answer"].([]any); ok {
			for _, v := range a {
				ans = append(ans, fmt.Sprint(v))
			}
		} else if s, ok := data["answer"].(string); ok {
			ans = []string{s}
		} else if strings.TrimSpace(text) != "" {
			ans = []string{strings.TrimSpace(text)}
		}
		if len(ans) == 0 {
			return nil, fmt.Errorf("%w: answer the question with a text part (or a data part {\"answer\": [\"…\"]})", a2a.ErrInvalidParams)
		}
		reply = ans
	default:
		return nil, fmt.Errorf("%w: the task waits for something this endpoint cannot answer (%s)", a2a.ErrInvalidParams, kind)
	}
	f, err := h.follow(ctx, sid, c)
	if err != nil {
		return nil, err
	}
	if err := h.s.eng.answer(ctx, sid, c.caller, kind, reply); err != nil {
		f.close()
		if errors.Is(err, errNotWaiting) {
			return nil, fmt.Errorf("%w: the task is not waiting for input any more", a2a.ErrInvalidParams)
		}
		return nil, a2aError(err)
	}
	return f, nil
}

// --- reading tasks back ---

// task builds the task from the session's conversation and state.
func (h *a2aTasks) task(ctx context.Context, c a2aCall, id a2a.TaskID) (*a2a.Task, error) {
	sid, mid, ok := a2amap.SplitTaskID(id)
	if !ok {
		return nil, a2a.ErrTaskNotFound
	}
	e := h.s.eng
	ss, err := e.getSession(ctx, c.caller, sid)
	if err != nil {
		return nil, a2aError(err)
	}
	st, err := e.core.Conversation(ctx, ss)
	if err != nil {
		return nil, a2aError(err)
	}
	msgs := st.Messages
	start := -1
	for i, m := range msgs {
		if m.Role == llm.RoleUser && m.ID == mid {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, a2a.ErrTaskNotFound
	}
	end := len(msgs)
	for i := start + 1; i < len(msgs); i++ {
		if msgs[i].Role == llm.RoleUser {
			end = i
			break
		}
	}
	t := &a2a.Task{ID: id, ContextID: sid}
	var result string
	for _, m := range msgs[start:end] {
		switch m.Role {
		case llm.RoleUser:
			t.History = append(t.History, &a2a.Message{ID: m.ID, Role: a2a.MessageRoleUser, ContextID: sid, TaskID: id,
				Parts: a2a.ContentParts{a2a.TextPart{Text: m.Text()}}})
		case llm.RoleAssistant:
			if txt := m.Text(); txt != "" {
				result = txt
				t.History = append(t.History, &a2a.Message{ID: m.ID, Role: a2a.MessageRoleAgent, ContextID: sid, TaskID: id,
					Parts: a2a.ContentParts{a2a.TextPart{Text: txt}}})
			}
		}
	}
	state := a2a.TaskStateCompleted
	if end == len(msgs) {
		switch ss.Status {
		case store.StatusRunning:
			state = a2a.TaskStateWorking
		case store.StatusWaitingApproval:
			state = a2a.TaskStateInputRequired
		case store.StatusFailed:
			state = a2a.TaskStateFailed
		case store.StatusInterrupted:
			state = a2a.TaskStateCanceled
		}
		if state == a2a.TaskStateWorking || state == a2a.TaskStateInputRequired {
			pending, err := e.core.Pending(ctx, "", sid)
			if err != nil {
				return nil, a2aError(err)
			}
			state = a2a.TaskStateWorking
			if len(pending) > 0 {
				state = a2a.TaskStateInputRequired
				t.Status.Message = questionMessage(t, pending[len(pending)-1].Kind, pending[len(pending)-1].Data)
			}
		}
	}
	now := h.s.now().UTC()
	t.Status.State = state
	t.Status.Timestamp = &now
	switch state {
	case a2a.TaskStateCompleted, a2a.TaskStateCanceled:
		if result != "" {
			t.Artifacts = []*a2a.Artifact{a2amap.ResultArtifact(result)}
			t.Status.Message = a2amap.AgentMessage(t, result)
		}
	case a2a.TaskStateFailed:
		msg := ss.Error
		if msg == "" {
			msg = result
		}
		if msg == "" {
			msg = "the run failed"
		}
		t.Status.Message = a2amap.AgentMessage(t, msg)
	}
	return t, nil
}

// questionMessage is an input-required status message: what is asked in
// words, and the request itself as a data part.
func questionMessage(t a2a.TaskInfoProvider, kind string, data json.RawMessage) *a2a.Message {
	var fields map[string]any
	_ = json.Unmarshal(data, &fields)
	if fields == nil {
		fields = map[string]any{}
	}
	var text string
	switch kind {
	case kindApproval:
		args, _ := json.Marshal(fields["arguments"])
		text = fmt.Sprintf("The agent wants to run the tool %v with %s. Approve? Answer yes or no (or \"always\" for the rest of this context) in a message with this taskId.", fields["tool"], args)
	case kindAsk:
		text = fmt.Sprint(fields["text"])
		if opts, ok := fields["options"].([]any); ok && len(opts) > 0 {
			text += fmt.Sprintf(" (options: %v)", opts)
		}
		text += " Answer in a message with this taskId."
	}
	fields["kind"] = kind
	return a2a.NewMessageForTask(a2a.MessageRoleAgent, t, a2a.TextPart{Text: text}, a2a.DataPart{Data: fields})
}
